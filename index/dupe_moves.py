"""``pixseek dupes --move-to FOLDER`` and ``--undo LOG``: duplicates out of the way, and back.

pixseek never deletes a user's file. A move takes every file of a group but the kept one to
``FOLDER/<its absolute path>`` (so two files never meet under one name, and the path says where it came
from). What holds:

* **Nothing is overwritten.** Every target is checked free before the first move, and each move is a
  hard link then an unlink (the link fails on an existing name); across file systems the file is copied
  beside its target (content and times), linked into place the same way, and only then removed.
* **The undo log** (JSON lines: a header, then one line per file) is written atomically before the first
  move and again after the last with each file's outcome. Undo reads the disk, not the outcomes, so a
  log left by an interrupted move still undoes whatever did move.
* **The index follows.** A moved file's row leaves ``images`` (search no longer shows it; the next index
  run finds nothing missing) and is kept whole in ``moved_dupes``. Undo puts the files back and their rows
  with them, so the next index run finds the files unchanged and embeds nothing. The destination must lie
  outside every indexed folder: inside one, the next index run would add the moved files back.
* One writer: the data dir's lock is held throughout, so no index run interleaves.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import shutil
import time
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path

from pixseek import sources
from pixseek.errors import DuplicatesError, IndexNotFoundError
from pixseek.fileio import atomic_write
from pixseek.store import DataDir, Store, VectorIndex
from pixseek.store.lock import DirLock

LOG_KIND = "pixseek-dupes-move"
LOG_VERSION = 1
BATCH = 256  # files moved between two commits of their rows


@dataclass
class Move:
    """One file to move, and (after the move) what became of it."""

    id: int
    source: str
    target: str
    size: int
    mtime_ns: int
    group: int
    kind: str  # its link to the kept file: exact, same or similar
    keep: str  # the kept file's path
    status: str = "planned"  # planned | moved | failed
    error: str | None = None


@dataclass
class MoveReport:
    moves: list[Move]
    log: Path
    dry_run: bool

    @property
    def moved(self) -> list[Move]:
        return [m for m in self.moves if m.status == "moved"]

    @property
    def failed(self) -> list[Move]:
        return [m for m in self.moves if m.status == "failed"]

    def to_dict(self) -> dict:
        return {
            "dry_run": self.dry_run,
            "log": None if self.dry_run else str(self.log),
            "moved": len(self.moved),
            "failed": len(self.failed),
            "bytes": sum(m.size for m in (self.moves if self.dry_run else self.moved)),
            "moves": [asdict(m) for m in self.moves],
        }


@dataclass
class UndoReport:
    restored: list[str] = field(default_factory=list)  # files moved back now
    in_place: list[str] = field(default_factory=list)  # already back at their path (or never moved)
    missing: list[str] = field(default_factory=list)  # gone from both places: nothing to restore
    blocked: list[str] = field(default_factory=list)  # another file holds the original path: left alone
    failed: list[str] = field(default_factory=list)  # "path: reason" of files that could not be moved back
    rows: int = 0  # index rows put back
    dry_run: bool = False

    def to_dict(self) -> dict:
        return asdict(self)


def _under(path: str, folder: str) -> bool:
    folder = folder.rstrip("/") or "/"
    return path == folder or path.startswith(folder if folder == "/" else folder + "/")


def target_for(dest: Path, source: str) -> Path:
    """Where a file goes: its absolute path below ``dest``."""
    return dest / source.lstrip("/")


def plan_moves(store: Store, groups: Iterable, dest: str | os.PathLike) -> list[Move]:
    """The moves for ``groups`` (each :class:`~pixseek.search.dupes.DupeGroup`: all files but the kept
    one), checked against the index and the disk; a DuplicatesError says what stands in the way."""
    folder = Path(os.path.abspath(os.fspath(dest)))
    inside = next((r for r in store.indexed_roots() if _under(str(folder), r)), None)
    if inside is not None:
        raise DuplicatesError(
            f"{folder} lies inside the indexed folder {inside}: the next `pixseek index` would add the moved "
            "files back",
            hint="choose a folder outside every indexed folder",
        )
    groups = list(groups)
    rows = store.get(f.id for g in groups for f in g.others)
    moves: list[Move] = []
    for g in groups:
        for f in g.others:
            row = rows.get(f.id)
            if row is None or row.path != f.path:
                raise DuplicatesError(
                    f"{f.path} is no longer in the index as it was when the groups were found",
                    hint="run `pixseek dupes` again",
                )
            if sources.is_url(row.path):
                raise DuplicatesError(
                    f"{row.path} is an object at a URL: pixseek moves only local files (and never deletes one), "
                    "so nothing moved",
                    hint="limit the move to local folders: pixseek dupes --in FOLDER --move-to DEST",
                )
            t = target_for(folder, row.path)
            moves.append(Move(row.id, row.path, str(t), row.size, row.mtime_ns, g.number, f.kind or "", g.keep.path))
    _check(moves)
    return moves


def _check(moves: list[Move]) -> None:
    """Refuse before anything moves: a source changed or gone, or a target already taken."""
    for m in moves:
        try:
            st = os.stat(m.source)  # a symlink is moved as the link, and checked as what it points to
        except OSError as e:
            raise DuplicatesError(
                f"cannot move {m.source}: {e.strerror or e}", hint="run `pixseek index` on its folder first"
            ) from None
        if (st.st_size, st.st_mtime_ns) != (m.size, m.mtime_ns):
            raise DuplicatesError(
                f"{m.source} changed since it was indexed: nothing moved",
                hint="run `pixseek index` on its folder first",
            )
        if os.path.lexists(m.target):
            raise DuplicatesError(
                f"{m.target} already exists: pixseek never overwrites a file, so nothing moved",
                hint="choose another --move-to folder",
            )


def default_log(dest: str | os.PathLike) -> Path:
    stamp = dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    return Path(os.path.abspath(os.fspath(dest))) / f"pixseek-dupes-{stamp}.jsonl"


def move_duplicates(
    data_dir: DataDir | str | os.PathLike | None,
    groups: Iterable,
    dest: str | os.PathLike,
    *,
    log: str | os.PathLike | None = None,
    dry_run: bool = False,
) -> MoveReport:
    """Move all but the kept file of each group below ``dest``, writing the undo log ``log`` (default:
    ``dest/pixseek-dupes-TIME.jsonl``). ``dry_run``: check and plan only; nothing is written."""
    dd = data_dir if isinstance(data_dir, DataDir) else DataDir.resolve(data_dir)
    if not dd.exists():
        raise IndexNotFoundError(f"no pixseek index in {dd.root}", hint="build one with: pixseek index PATH")
    log_path = Path(os.path.abspath(os.fspath(log))) if log else default_log(dest)
    if os.path.lexists(log_path):
        raise DuplicatesError(f"{log_path} already exists: an undo log is never overwritten", hint="give --log")
    if dry_run:  # reads only: no lock, no migration, nothing written
        with Store.open(dd, readonly=True) as store:
            return MoveReport(plan_moves(store, groups, dest), log_path, dry_run)
    with DirLock(dd), Store.open(dd) as store:
        moves = plan_moves(store, groups, dest)
        report = MoveReport(moves, log_path, dry_run)
        if not moves:
            return report
        header = {"pixseek": LOG_KIND, "version": LOG_VERSION, "data_dir": str(dd.root), "dest": str(dest)}
        _write_log(log_path, {**header, "created_at": time.time()}, moves)
        vi = VectorIndex.open(store)
        try:
            for start in range(0, len(moves), BATCH):
                batch = moves[start : start + BATCH]
                for m in batch:
                    _move_one(m)
                with store.batch() as b:
                    gone = store.set_aside(((m.id, m.target) for m in batch if m.status == "moved"), str(log_path))
                    b.changed = bool(gone)
                vi.remove(gone)
        finally:
            _write_log(log_path, {**header, "created_at": time.time()}, moves)
            vi.generation = store.generation
            if vi.stale_for(store):
                vi = VectorIndex.build_usable(store)
            vi.save(store)
        return report


def _move_one(m: Move) -> None:
    try:
        move_file(m.source, m.target)
        m.status = "moved"
    except OSError as e:
        m.status, m.error = "failed", e.strerror or str(e)


def move_file(source: str | os.PathLike, target: str | os.PathLike) -> None:
    """Move one file without ever replacing an existing ``target`` (FileExistsError), keeping its
    content, size and modification time."""
    src, dst = Path(source), Path(target)
    dst.parent.mkdir(parents=True, exist_ok=True)
    if os.path.lexists(dst):
        raise FileExistsError(17, "File exists", str(dst))
    try:
        os.link(src, dst, follow_symlinks=False)  # fails, never replaces, when dst exists
    except FileExistsError:
        raise
    except OSError:  # another file system, or one without hard links: copy beside the target first
        tmp = dst.with_name(f".{dst.name}.pixseek-{os.getpid()}.tmp")
        shutil.copy2(src, tmp, follow_symlinks=False)
        try:
            try:
                os.link(tmp, dst)
            except FileExistsError:
                raise
            except OSError:  # no hard links there: the name was free a moment ago
                if os.path.lexists(dst):
                    raise FileExistsError(17, "File exists", str(dst)) from None
                os.rename(tmp, dst)
        finally:
            if os.path.lexists(tmp):
                os.unlink(tmp)
    try:
        os.unlink(src)
    except OSError:  # the source stays (a read-only folder): take back the new name, so no copy lingers
        os.unlink(dst)
        raise


def _write_log(path: Path, header: dict, moves: list[Move]) -> None:
    lines = [json.dumps(header)] + [json.dumps(asdict(m)) for m in moves]
    atomic_write(path, "\n".join(lines) + "\n", fsync=True)


def read_log(path: str | os.PathLike) -> tuple[dict, list[Move]]:
    """(header, moves) of an undo log; a DuplicatesError when it is not one."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise DuplicatesError(f"cannot read undo log {path}: {getattr(e, 'strerror', None) or e}") from None
    try:
        lines = [json.loads(line) for line in text.splitlines() if line.strip()]
        header = lines[0]
        if not isinstance(header, dict) or header.get("pixseek") != LOG_KIND:
            raise ValueError("no pixseek header")
        names = set(Move.__dataclass_fields__)
        moves = [Move(**{k: v for k, v in line.items() if k in names}) for line in lines[1:]]
    except (ValueError, TypeError, IndexError, AttributeError):
        raise DuplicatesError(f"{path} is not an undo log written by `pixseek dupes --move-to`") from None
    return header, moves


def undo_moves(data_dir: DataDir | str | os.PathLike | None, log: str | os.PathLike, *, dry_run: bool = False):
    """Put the files of an undo log back where they were, and their rows back in the index. A file whose
    original path is taken again is left where it is (nothing is overwritten)."""
    header, moves = read_log(log)
    dd = data_dir if isinstance(data_dir, DataDir) else DataDir.resolve(data_dir or header.get("data_dir"))
    if not dd.exists():
        raise IndexNotFoundError(f"no pixseek index in {dd.root}", hint="give the --db the files were moved from")
    report = UndoReport(dry_run=dry_run)
    with DirLock(dd), Store.open(dd) as store:
        back: list[Move] = []
        for m in moves:
            if m.status == "failed":
                continue
            at_source, at_target = os.path.lexists(m.source), os.path.lexists(m.target)
            if at_source:
                (report.blocked if at_target else report.in_place).append(m.source)
                if not at_target:
                    back.append(m)
            elif not at_target:
                report.missing.append(m.source)
            else:
                try:
                    if not dry_run:
                        move_file(m.target, m.source)
                except OSError as e:
                    report.failed.append(f"{m.source}: {e.strerror or e}")
                    continue
                report.restored.append(m.source)
                back.append(m)
        if not dry_run:
            report.rows = _restore_rows(store, back)
    return report


def _restore_rows(store: Store, back: list[Move]) -> int:
    """Rows of files now back at their paths, unchanged (same size and time), into the index again."""
    kept = store.set_aside_rows(m.id for m in back)
    vi = VectorIndex.open(store)
    restored: list[tuple[int, bytes]] = []
    with store.batch() as b:
        for m in back:
            row = kept.get(m.id)
            if row is None or row.path != m.source:
                continue
            try:
                st = os.stat(m.source)
            except OSError:
                continue
            if (st.st_size, st.st_mtime_ns) != (row.size, row.mtime_ns):
                continue  # changed meanwhile: the next index run treats it as new
            rid = store.restore_aside(row)
            if rid is not None:
                restored.append((rid, row.vector))
        b.changed = bool(restored)
    if restored:
        import numpy as np

        ids = np.asarray([r for r, _ in restored], dtype=np.int64)
        vecs = np.stack([np.frombuffer(v, dtype="<f4") for _, v in restored]).astype(np.float32)
        vi.add(ids, vecs)
    vi.generation = store.generation
    if vi.stale_for(store):
        vi = VectorIndex.build_usable(store)
    vi.save(store)
    return len(restored)
