"""The first step of an index run: scan the roots and compare with the database, changing nothing.

A :class:`Plan` says which files are unchanged (same size and mtime), which must be read (new or
changed), which failed before and have not changed since, and which rows' files are gone, grouped by
content hash so that a file that moved can take its old row back.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field

from pixseek import faults
from pixseek.store import Store

from .pipeline import Job
from .scan import FileEntry, ScanError, scan


@dataclass
class Plan:
    listing: dict[str, FileEntry] = field(default_factory=dict)  # every image file found, by path
    scan_errors: list[ScanError] = field(default_factory=list)
    work: list[Job] = field(default_factory=list)  # files to read: new, or changed since indexed
    unchanged: int = 0
    known_failures: int = 0  # failed before with this size and mtime: not retried
    vanished_by_hash: dict[str, list[int]] = field(default_factory=dict)  # rows whose file is gone

    @property
    def gone(self) -> list[int]:
        """Row ids whose files are gone and were not claimed by a moved file (after the run)."""
        return [rid for ids in self.vanished_by_hash.values() for rid in ids]

    def claim_moved(self, digest: str | None) -> int | None:
        """The row of a vanished file with this content, taken off the list (a move), or None."""
        rows = self.vanished_by_hash.get(digest or "")
        if not rows:
            return None
        rid = rows.pop()
        if not rows:
            del self.vanished_by_hash[digest or ""]
        return rid


def make_plan(store: Store, roots: list[str], exclude: list[str], include_hidden: bool) -> Plan:
    plan = Plan()
    for item in scan(roots, exclude, include_hidden):
        faults.point("scan")
        if isinstance(item, ScanError):
            plan.scan_errors.append(item)
        else:
            plan.listing.setdefault(item.path, item)

    existing: dict[str, tuple[int, int, int, str]] = {}
    for root in roots:
        for rid, path, size, mtime_ns, digest in store.rows_under(root):
            existing[path] = (rid, size, mtime_ns, digest)

    for path in sorted(plan.listing):
        e = plan.listing[path]
        old = existing.get(path)
        if old is not None:
            if (old[1], old[2]) == (e.size, e.mtime_ns):
                plan.unchanged += 1
            else:
                plan.work.append(Job(e, old[0], old[3]))
        elif store.error_for(path) == (e.size, e.mtime_ns):
            plan.known_failures += 1
        else:
            plan.work.append(Job(e, None, None))

    vanished: dict[str, list[int]] = defaultdict(list)
    for path, (rid, _, _, digest) in existing.items():
        if path not in plan.listing:
            vanished[digest].append(rid)
    plan.vanished_by_hash = dict(vanished)
    return plan
