"""Judging a scan before rows are removed: an unmounted drive must not read as "every file was deleted".

A root's rows whose files were not found are removed only when the scan looks trustworthy. A root is
not trusted, and none of its rows are removed, when it yields no files but had some (an unmounted
mount point, an ejected disk, a share that is down), when it sits on another device than when it was
indexed, or when more than ``MAX_SHARE`` of its rows (and at least ``MIN_ROWS``) would go. New and
changed files are still indexed. ``pixseek index ROOT --prune`` (or ``pixseek forget``) removes them
on purpose.
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass

from .plan import Plan, RootScan

MAX_SHARE = 0.5
MIN_ROWS = 100


@dataclass
class Kept:
    root: str
    rows: int  # rows kept
    reason: str

    def line(self) -> str:
        return (
            f"kept {self.rows:,} indexed image{'s' if self.rows != 1 else ''} under {self.root} whose files "
            f"were not found: {self.reason}; if they are really gone, run: "
            f"pixseek index {shlex.quote(self.root)} --prune"
        )


def _distrust(rs: RootScan, going: int) -> str | None:
    """Why the scan of ``rs`` cannot be trusted to remove ``going`` of its rows, or None."""
    if rs.found == 0 and rs.had > 0:
        return "the folder shows no images now (an unmounted drive or share?)"
    if rs.known_dev is not None and rs.dev is not None and rs.dev != rs.known_dev:
        return "it is on another device than when it was indexed (a different disk mounted there?)"
    if going >= MIN_ROWS and going > MAX_SHARE * rs.had:
        return f"{going:,} of its {rs.had:,} images would go at once"
    return None


def judge(plan: Plan, prune: bool) -> tuple[list[int], list[Kept]]:
    """(row ids to remove, roots whose rows are kept and why). ``prune``: trust every scan."""
    gone = plan.gone
    if prune:
        return gone, []
    by_root: dict[str, list[int]] = {}
    for rid in gone:
        by_root.setdefault(plan.root_of.get(rid, ""), []).append(rid)
    remove: list[int] = []
    kept: list[Kept] = []
    for rs in plan.roots:
        rows = by_root.pop(rs.path, [])
        reason = _distrust(rs, len(rows)) if rows else None
        if reason is None:
            remove += rows
        else:
            kept.append(Kept(rs.path, len(rows), reason))
    return remove, kept
