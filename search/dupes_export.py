"""The list of duplicates as a file: ``pixseek dupes --export FILE`` (.csv or .json), and the rows the
page can offer for download. Written atomically; pixseek's own files are never the target."""

from __future__ import annotations

import csv
import io
import json
import os
from pathlib import Path

from pixseek.errors import DuplicatesError
from pixseek.fileio import atomic_write

from .dupes import DupeReport

CSV_COLUMNS = (
    "group",
    "group_kind",
    "keep",
    "kind",
    "id",
    "path",
    "size",
    "width",
    "height",
    "format",
    "date",
    "score",
    "hash_distance",
)
FORMATS = (".csv", ".json")


def export_rows(report: DupeReport) -> list[dict]:
    """One row per file of every group, the kept file first in its group (``keep`` true)."""
    rows = []
    for g in report.groups:
        for f in g.files:
            d = f.to_dict()
            rows.append({"group": g.number, "group_kind": g.kind, **{k: d[k] for k in CSV_COLUMNS[2:] if k in d}})
    return rows


def to_csv(report: DupeReport) -> str:
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=list(CSV_COLUMNS), lineterminator="\n")
    w.writeheader()
    for row in export_rows(report):
        w.writerow({k: "" if v is None else v for k, v in row.items()})
    return buf.getvalue()


def write_export(report: DupeReport, path: str | os.PathLike) -> Path:
    """Write the report to ``path``: CSV (one row per file) or JSON (the groups, as ``--json`` prints
    them), chosen by the extension."""
    target = Path(os.path.abspath(os.fspath(path)))
    suffix = target.suffix.lower()
    if suffix not in FORMATS:
        raise DuplicatesError(f"cannot export to {target.name}: the name must end in .csv or .json")
    if target.name.startswith("pixseek.db"):
        raise DuplicatesError(f"{target} is pixseek's database: choose another name")
    if target.is_dir():
        raise DuplicatesError(f"{target} is a folder: give a file name ending in .csv or .json")
    text = to_csv(report) if suffix == ".csv" else json.dumps(report.to_dict(), indent=1) + "\n"
    try:
        atomic_write(target, text)
    except OSError as e:
        raise DuplicatesError(f"cannot write {target}: {e.strerror or e}") from None
    return target
