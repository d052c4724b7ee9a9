"""``pixseek tags``: the zero-shot tags of an index with how many pictures carry each (read-only)."""

from __future__ import annotations

import json

import click

from .cli_common import db_option

# The options as pixseek.cli spells them (this module must not import it: cli registers this command).
MAX_SQL_INT = 2**63 - 1


@click.command("tags")
@db_option
@click.option("--limit", "-n", default=None, type=click.IntRange(1, MAX_SQL_INT), help="Only the N most used tags.")
@click.option("--json", "as_json", is_flag=True, help="Print the tags and the index's tagging facts as JSON.")
def tags_cmd(db, limit, as_json):
    """Zero-shot tags in the index, most used first, with how many pictures carry each.

    `pixseek index` tags new pictures from their stored vectors; filter by tag with
    `pixseek search --tag TAG`.

    Example:

        pixseek tags --limit 20
    """
    from .store import Store

    with Store.open(db, readonly=True) as store:
        state = store.tag_state()
        counts = store.tag_counts(limit=limit)
    if as_json:
        out = {
            "tags": [{"tag": t, "count": n} for t, n in counts],
            "vocabulary": state.vocabulary,
            "tagged": state.tagged,
            "images": state.images,
            "rule": state.source,
        }
        click.echo(json.dumps(out))
        return
    if state.key is None or not state.tagged:
        click.echo("no tags yet: `pixseek index PATH` tags the pictures it indexes")
        return
    width = max((len(t) for t, _ in counts), default=0)
    for tag, n in counts:
        click.echo(f"{tag:<{width}}  {n:>7}")  # tags come from the vocabulary: no control characters
    used = f"{len(counts)} of {state.vocabulary} tags in use" if limit is None else f"{state.vocabulary} tags"
    click.echo(f"{used}; {state.tagged} of {state.images} pictures tagged ({state.source})", err=True)
    if state.tagged < state.images:
        click.echo("`pixseek index` tags the rest", err=True)
