"""The first step of an index run: scan the roots and compare with the database, changing nothing.

A :class:`Plan` says which files are unchanged (same size and mtime), which must be read (new or
changed), which failed before and have not changed since (and whose reason still holds), which paths
reach a file that is indexed already under another path (a symlink, a bind mount, a hard link: one
file is one row), and which rows' files are gone, grouped by content hash so that a moved file can take
its old row back. It also records, per root, what the guard against unmounted drives needs.
"""

from __future__ import annotations

import os
from collections import defaultdict
from dataclasses import dataclass, field

from pixseek import faults, sources
from pixseek.store import Store
from pixseek.store.database import ErrorRecord

from .pipeline import Job
from .scan import FileEntry, ScanError, scan


@dataclass
class RootScan:
    """One root of the run: enough to tell "files were deleted" from "the drive is not there"."""

    path: str
    dev: int | None  # the device it is on now
    known_dev: int | None  # the device it was on when last indexed (None: never indexed)
    had: int = 0  # rows under it before the run
    found: int = 0  # image files the scan found under it


@dataclass
class Plan:
    listing: dict[str, FileEntry] = field(default_factory=dict)  # every image file found, by path
    scan_errors: list[ScanError] = field(default_factory=list)
    work: list[Job] = field(default_factory=list)  # files to read: new, or changed since indexed
    unchanged: int = 0
    known_failures: int = 0  # failed before, unchanged since, and the reason still holds: not retried
    aliases: int = 0  # paths that reach a file indexed under another path
    identities: list[tuple[int, int, int]] = field(default_factory=list)  # (row, dev, inode) to record
    roots: list[RootScan] = field(default_factory=list)
    root_of: dict[int, str] = field(default_factory=dict)  # row id -> the root it was found under
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


def retry(err: ErrorRecord, entry: FileEntry, max_pixels: int) -> bool:
    """Whether a file that failed before is worth reading again: it changed, or its reason may be gone
    (an I/O or permission error, a pixel cap that has been raised since)."""
    if (err.size, err.mtime_ns) != (entry.size, entry.mtime_ns):
        return True
    if err.kind == "pixels":
        return err.limit_value is None or max_pixels > err.limit_value
    return err.kind not in ("content", "size")  # io, and errors recorded before kinds were: retried


def _device(path: str) -> int | None:
    if sources.is_url(path):
        return None  # an object store has no device: the guard judges a URL root by its counts alone
    try:
        return os.stat(path).st_dev
    except OSError:
        return None


def make_plan(store: Store, roots: list[str], exclude: list[str], include_hidden: bool, max_pixels: int) -> Plan:
    plan = Plan()
    for item in scan(roots, exclude, include_hidden):
        faults.point("scan")
        if isinstance(item, ScanError):
            plan.scan_errors.append(item)
        else:
            plan.listing.setdefault(item.path, item)

    existing: dict[str, tuple[int, int, int, str, int | None, int | None]] = {}
    for root in roots:
        known = store.root_info(root)
        rs = RootScan(root, _device(root), known[0] if known else None)
        for rid, path, size, mtime_ns, digest, dev, inode in store.rows_under(root):
            existing[path] = (rid, size, mtime_ns, digest, dev, inode)
            plan.root_of[rid] = root
            rs.had += 1
        rs.found = sum(1 for e in plan.listing.values() if e.root == root)
        plan.roots.append(rs)

    new_paths = []
    seen: set[tuple[int, int]] = set()  # identities of files this run keeps a row for
    for path in sorted(plan.listing):
        e, old = plan.listing[path], existing.get(path)
        if old is None:
            new_paths.append(path)
            continue
        if e.inode:  # a URL has no device and inode: its path is its identity
            seen.add((e.dev, e.inode))
        if e.inode and (old[4], old[5]) != (e.dev, e.inode):
            plan.identities.append((old[0], e.dev, e.inode))
        if (old[1], old[2]) == (e.size, e.mtime_ns):
            plan.unchanged += 1
        else:
            plan.work.append(Job(e, old[0], old[3]))
    for path in new_paths:
        e = plan.listing[path]
        if e.inode and ((e.dev, e.inode) in seen or _indexed_elsewhere(store, e)):
            plan.aliases += 1
            continue
        if e.inode:
            seen.add((e.dev, e.inode))
        err = store.error_for(path)
        if err is not None and not retry(err, e, max_pixels):
            plan.known_failures += 1
        else:
            plan.work.append(Job(e, None, None))
    plan.work.sort(key=lambda job: job.entry.path)

    vanished: dict[str, list[int]] = defaultdict(list)
    for path, (rid, _, _, digest, _, _) in existing.items():
        if path not in plan.listing:
            vanished[digest].append(rid)
    plan.vanished_by_hash = dict(vanished)
    return plan


def _indexed_elsewhere(store: Store, e: FileEntry) -> bool:
    """Whether a row under another path holds this very file (same device and inode, still there)."""
    for _, other in store.rows_by_identity(e.dev, e.inode):
        if other != e.path:
            try:
                if os.path.samefile(other, e.path):
                    return True
            except OSError:
                continue  # that path is gone: not an alias (a move, which the content hash finds)
    return False
