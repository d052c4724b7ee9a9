"""What every CLI module shares: the ``--db`` option and text made safe for a terminal (a module of its
own, so that command modules registered by :mod:`pixseek.cli` can use them without an import cycle)."""

from __future__ import annotations

import re

import click

_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")

db_option = click.option(
    "--db",
    "db",
    type=click.Path(file_okay=True),
    help="Data dir holding the index (default $PIXSEEK_DB or ~/.local/share/pixseek).",
)


def show(text: str) -> str:
    """Text for a terminal: control characters (a file name may hold ESC sequences) as escapes."""
    return _CONTROL.sub(lambda m: m.group().encode("unicode_escape").decode("ascii"), text)


def folder_arg(folder: str | None) -> str | None:
    """A ``--in FOLDER`` value: a local folder made absolute, or a URL prefix (``s3://bucket/photos``) as given."""
    import os

    from .sources import is_url, normalize

    if not folder:
        return None
    return normalize(folder) if is_url(folder) else os.path.abspath(folder)
