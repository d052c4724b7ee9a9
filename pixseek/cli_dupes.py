"""``pixseek dupes``: list, export, move away and restore near-duplicates (registered in pixseek.cli)."""

from __future__ import annotations

import json
import os
import sys

import click

from .cli_common import db_option, folder_arg
from .cli_common import show as _show


def _mb(n: int) -> str:
    from .search.dupes import size_text

    return size_text(n)


def _plural(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"


def _day(t: float) -> str:
    from .search.dupes import day_text

    return day_text(t)


def _print_report(report) -> None:
    from .search.dupes import KIND_WORDS

    for g in report.groups:
        movable = sum(f.size for f in g.others)
        click.echo(f"group {g.number}: {KIND_WORDS[g.kind]}, {len(g.files)} files, {_mb(movable)} to move")
        for f in g.files:
            dims = f"{f.width}x{f.height}" if f.width and f.height else "?"
            why = (
                ""
                if f.keep or f.kind == "exact"  # identical bytes: nothing to add
                else f"  score {f.score:.3f}" + (f", hash {f.hash_distance}" if f.hash_distance is not None else "")
            )
            label = "keep" if f.keep else f.kind
            click.echo(_show(f"  {label:<8}{dims:>11} {_mb(f.size):>9}  {_day(f.date)}  {f.path}{why}"))
    d = report.to_dict()["summary"]
    rule = report.rule
    if not report.groups:
        click.echo(f"no duplicates among {_plural(report.images, 'picture')}")
    else:
        kinds = ", ".join(f"{k} {d[k]}" for k in ("exact", "same", "similar") if d[k])
        click.echo(
            f"{_plural(d['groups'], 'group')} ({kinds}), {d['files']} files; {d['movable']} could be moved "
            f"({_mb(d['movable_bytes'])}): pixseek dupes --move-to FOLDER"
        )
    click.echo(f"({rule.describe()})", err=True)
    for note in report.notes:
        click.echo(_show(note), err=True)


@click.command("dupes")
@db_option
@click.option(
    "--threshold",
    type=click.FloatRange(-1.0, 1.0),
    default=None,
    metavar="SCORE",
    help="Cosine score from which two pictures are near-duplicates (default: calibrated for the index's model).",
)
@click.option(
    "--hash-bits",
    type=click.IntRange(0, 64),
    default=None,
    help="Perceptual-hash bits (of 64) within which a near-duplicate is the same picture (default 6).",
)
@click.option(
    "--kind",
    "kinds",
    multiple=True,
    type=click.Choice(["exact", "same", "similar"]),
    help="Only links of this kind (repeatable): exact (identical files), same (re-encoded or resized), "
    "similar (crops, edits, bursts). Default: all.",
)
@click.option("--in", "folder", default=None, metavar="FOLDER", help="Only pictures in FOLDER or below it.")
@click.option("--json", "as_json", is_flag=True, help="Print the groups (or what was moved) as JSON.")
@click.option(
    "--export",
    "export",
    type=click.Path(dir_okay=False),
    default=None,
    metavar="FILE",
    help="Write the list to FILE: .csv (one row per file) or .json.",
)
@click.option(
    "--move-to",
    "move_to",
    type=click.Path(file_okay=False),
    default=None,
    metavar="FOLDER",
    help="Move all but the kept file of each group to FOLDER (their absolute paths below it), with an undo log.",
)
@click.option("--log", "log", type=click.Path(dir_okay=False), default=None, help="Undo log path for --move-to.")
@click.option(
    "--undo",
    "undo",
    type=click.Path(dir_okay=False),
    default=None,
    metavar="LOG",
    help="Put the files of a --move-to undo log back, and their pictures back in the index.",
)
@click.option("--dry-run", is_flag=True, help="With --move-to or --undo: say what would happen, change nothing.")
def dupes_cmd(db, threshold, hash_bits, kinds, folder, as_json, export, move_to, log, undo, dry_run):
    """Find near-duplicates: identical files, the same picture re-encoded or resized, and similar shots.

    Read-only unless --move-to or --undo; pixseek never deletes a file.

    \b
    Example:
        pixseek dupes                          # groups, a file to keep in each
        pixseek dupes --kind exact --kind same --move-to ~/dupes-review
        pixseek dupes --undo ~/dupes-review/pixseek-dupes-20250101-120000.jsonl
    """
    if undo:
        if move_to or export or threshold is not None or hash_bits is not None or kinds or folder:
            raise click.UsageError("--undo takes only --db, --json and --dry-run")
        return _undo(db, undo, dry_run, as_json)
    if dry_run and not move_to:
        raise click.UsageError("--dry-run goes with --move-to or --undo")
    if log and not move_to:
        raise click.UsageError("--log goes with --move-to")
    from .search.dupe_rule import dupe_rule
    from .search.dupes import find_duplicates
    from .store import Filter, Store

    with Store.open(db, readonly=True) as store:  # finding duplicates never writes
        store.require_images()
        rule = dupe_rule(store, threshold=threshold, same_bits=hash_bits)
        ids = store.select_ids(Filter(folder=folder_arg(folder)).validate()) if folder else None
        progress = sys.stderr.isatty() and not as_json
        report = find_duplicates(store, rule, kinds=kinds or None, ids=ids, progress=progress)
    if export:
        from .search.dupes_export import write_export

        write_export(report, export)
    if move_to:
        return _move(db, report, move_to, log, dry_run, as_json)
    if as_json:
        click.echo(json.dumps(report.to_dict()))
        return
    _print_report(report)
    if export:
        click.echo(_show(f"list written to {export}"), err=True)


def _move(db, report, move_to, log, dry_run, as_json) -> None:
    from .index.dupe_moves import move_duplicates

    r = move_duplicates(db, report.groups, move_to, log=log, dry_run=dry_run)
    if as_json:
        click.echo(json.dumps(r.to_dict()))
        return
    if dry_run:
        for m in r.moves:
            click.echo(_show(f"would move {m.source} -> {m.target}"))
        size = sum(m.size for m in r.moves)
        click.echo(f"would move {_plural(len(r.moves), 'file')} ({_mb(size)}); nothing changed (dry run)")
        return
    for m in r.failed:
        click.echo(_show(f"could not move {m.source}: {m.error}"), err=True)
    size = sum(m.size for m in r.moved)
    click.echo(_show(f"moved {_plural(len(r.moved), 'file')} ({_mb(size)}) to {os.path.abspath(move_to)}"))
    if r.moves:
        click.echo(_show(f"undo: pixseek dupes --undo {r.log}"))


def _undo(db, log, dry_run, as_json) -> None:
    from .index.dupe_moves import undo_moves

    r = undo_moves(db, log, dry_run=dry_run)
    if as_json:
        click.echo(json.dumps(r.to_dict()))
        return
    for path in r.blocked:
        click.echo(_show(f"left alone: {path} exists again (nothing is overwritten)"), err=True)
    for line in r.failed:
        click.echo(_show(f"could not move back {line}"), err=True)
    for path in r.missing:
        click.echo(_show(f"missing: {path} is in neither place"), err=True)
    done = (
        f"would restore {_plural(len(r.restored), 'file')}"
        if dry_run
        else (f"restored {_plural(len(r.restored), 'file')} ({r.rows} back in the index)")
    )
    click.echo(
        f"{done}; {len(r.in_place)} already in place, {len(r.missing)} missing, "
        f"{len(r.blocked) + len(r.failed)} left alone"
    )
