"""``pixseek text ID|PATH``: the text read in one indexed picture (``pixseek index --ocr`` reads it).

Read-only: opens the index without writing. Registered on the ``pixseek`` group by :mod:`pixseek.cli`.
"""

from __future__ import annotations

import json
import os
import time

import click

from .cli_common import db_option
from .cli_common import show as _show
from .errors import NotFoundError


def _find(store, picture: str):
    """The row of an index id or of a path (as given, or as the index spells it)."""
    if picture.isdigit() and not os.path.exists(picture):
        row = store.get([int(picture)]).get(int(picture))
        if row is None:
            raise NotFoundError(f"no image with id {picture} in the index")
        return row
    for path in dict.fromkeys((os.path.abspath(picture), os.path.realpath(picture))):
        row = store.get_by_path(path)
        if row is not None:
            return row
    raise NotFoundError(f"{picture} is not in the index", hint="index it with: pixseek index PATH --ocr")


@click.command("text")
@click.argument("picture")
@db_option
@click.option("--json", "as_json", is_flag=True, help="Print the lines, scores and boxes as JSON.")
def text_cmd(picture, db, as_json):
    """Show the text read in one indexed picture (PICTURE: its path or index id), line by line with the
    recogniser's score; `pixseek index --ocr` reads it.

    Example: pixseek text ~/Pictures/receipt.jpg"""
    from .store import Store

    with Store.open(db, readonly=True) as store:
        row = _find(store, picture)
        state = store.ocr_state(row.id)
        lines = store.ocr_lines(row.id)
    if as_json:
        out = {"id": row.id, "path": row.path, "status": state.status if state else "unread"}
        if state:
            out.update(model=state.model, checked_at=state.checked_at)
        click.echo(json.dumps({**out, "lines": [ln.to_dict() for ln in lines]}))
        return
    if state is None:
        click.echo(_show(f"{row.path}: not read yet (run `pixseek index --ocr`)"))
        return
    when = time.strftime("%Y-%m-%d %H:%M", time.localtime(state.checked_at or 0))
    if state.status == "error":
        click.echo(_show(f"{row.path}: could not be read ({when}; see `pixseek errors`)"))
        return
    n = len(lines)
    what = f"{n} line{'s' if n != 1 else ''} of text" if n else "no text found"
    click.echo(_show(f"{row.path}: {what} (read {when})"))
    for ln in lines:
        click.echo(_show(f"{ln.score:.2f}  {ln.text}"))
