"""``pixseek doctor``: check a data dir and repair what can be rebuilt.

Checks, in order: the SQLite file (``PRAGMA integrity_check``, the tables and columns the migrations
make), the index facts in ``meta`` against what the rows say (vector size, model, generation), every
stored vector (length, finite values, model), the FAISS cache against the database, the thumbnail cache,
and indexed files that are gone from disk. Meta values are repaired from the data, caches rebuilt, and
rows with unusable vectors removed so the next ``pixseek index`` re-embeds those files; good vectors are
never removed because a counter was wrong. A damaged database cannot be repaired here: that is
reported, and the exit status says so. ``--check-only`` opens the database read-only and changes
nothing; while an index run holds the data dir it says so instead of calling its caches stale.
"""

from __future__ import annotations

import os
import shlex
from dataclasses import dataclass, field

import numpy as np

from pixseek import sources
from pixseek.errors import IndexLockedError, PixseekError, VectorIndexError
from pixseek.store import DataDir, Store, VectorIndex
from pixseek.store.lock import DirLock
from pixseek.store.migrations import SCHEMA_VERSION
from pixseek.store.thumbs import Thumbs


@dataclass
class Finding:
    check: str
    status: str  # 'ok' | 'fixed' | 'warning' | 'failed'
    detail: str

    def line(self) -> str:
        return f"{self.status:<8}{self.check}: {self.detail}"


@dataclass
class Report:
    findings: list[Finding] = field(default_factory=list)

    def add(self, check: str, status: str, detail: str) -> None:
        self.findings.append(Finding(check, status, detail))

    @property
    def failed(self) -> bool:
        return any(f.status == "failed" for f in self.findings)

    @property
    def exit_code(self) -> int:
        return 1 if self.failed else 0


def _check_database(dd: DataDir, r: Report, repair: bool) -> Store | None:
    try:
        store = Store.open(dd, readonly=not repair)
    except PixseekError as e:
        r.add("database", "failed", e.message + (f" ({e.hint})" if e.hint else ""))
        return None
    res = store.integrity_check()
    if res != "ok":
        r.add(
            "database",
            "failed",
            f"integrity check: {res} (restore {dd.db} from a backup, or move it away and index again)",
        )
        store.close()
        return None
    r.add("database", "ok", f"{store.count():,} images, schema {store.meta('schema_version')}, integrity ok")
    return store


def _meta_from_data(store: Store) -> dict[str, str]:
    """Meta values that disagree with the rows (or cannot be read), with what the rows say instead."""
    fixes: dict[str, str] = {}
    if store.meta("schema_version") != str(SCHEMA_VERSION):  # every migration is recorded: say so again
        fixes["schema_version"] = str(SCHEMA_VERSION)
    lengths, models = store.vector_profile()
    if lengths:
        common_len, common_n = lengths.most_common(1)[0]
        try:
            dim = store.dim
        except PixseekError:
            dim = None
        # Only when most rows agree with each other and not with meta: then meta is the damaged one.
        if common_len % 4 == 0 and common_n * 2 > sum(lengths.values()) and dim != common_len // 4:
            fixes["dim"] = str(common_len // 4)
        common_model, model_n = models.most_common(1)[0]
        if model_n * 2 > sum(models.values()) and store.model_id != common_model:
            fixes["model_id"] = common_model
    try:
        _ = store.generation
    except PixseekError:
        fixes["generation"] = "1"  # any new value: the FAISS cache no longer matches and is rebuilt
    return fixes


def _check_meta(store: Store, r: Report, repair: bool) -> bool:
    """False when meta is damaged and was not repaired (the checks after it would mislead)."""
    fixes = _meta_from_data(store)
    if not fixes:
        r.add("meta", "ok", f"vector size {store.dim}, model {store.model_id}, generation {store.generation}")
        return True
    what = ", ".join(f"{k} {store.meta(k)!r} -> {v!r}" for k, v in fixes.items())
    if not repair:
        r.add("meta", "failed", f"index facts disagree with the rows: {what} (`pixseek doctor` repairs it)")
        return False
    if "generation" in fixes:
        fixes["generation"] = str(_max_generation(store) + 1)
        what = ", ".join(f"{k} {store.meta(k)!r} -> {v!r}" for k, v in fixes.items())
    store.set_meta(**fixes)
    r.add("meta", "fixed", f"repaired from the rows: {what}")
    return True


def _max_generation(store: Store) -> int:
    sidecar = VectorIndex.sidecar(store.data_dir)
    return max(int(sidecar.get("generation") or 0), 0)


def _check_vectors(store: Store, r: Report, repair: bool) -> bool:
    """False when unusable vectors remain (check-only): the checks that read vectors would stop on them."""
    dim = store.dim
    if dim is None:
        r.add("vectors", "ok", "no model recorded yet (empty index)")
        return True
    bad = store.unusable_vectors()
    if not bad:
        r.add("vectors", "ok", f"all {store.count():,} vectors have {dim} finite values from {store.model_id}")
        return True
    if not repair:
        r.add("vectors", "failed", f"{len(bad)} unusable vectors (e.g. row {bad[0][0]}: {bad[0][1]})")
        r.add("vector index", "warning", "not checked until the vectors are repaired (`pixseek doctor`)")
        return False
    with store.batch() as b:
        store.delete_images(rid for rid, _ in bad)
        b.changed = True
    r.add(
        "vectors",
        "fixed",
        f"removed {len(bad)} rows with unusable vectors (e.g. row {bad[0][0]}: "
        f"{bad[0][1]}); `pixseek index` will embed those files again",
    )
    return True


def _check_empty_cache(store: Store, r: Report, repair: bool) -> None:
    """No images: no vector index is needed, and a leftover one (of an earlier database) goes."""
    leftovers = [p for p in (store.data_dir.faiss, store.data_dir.faiss_meta) if p.exists()]
    if not leftovers:
        r.add("vector index", "ok", "none needed (no images)")
    elif not repair:
        r.add("vector index", "warning", "a vector index of images the database does not have is left over")
    else:
        for p in leftovers:
            p.unlink()
        r.add("vector index", "fixed", "removed a vector index of images the database does not have")


def _check_faiss(store: Store, r: Report, repair: bool, busy: bool = False) -> None:
    """``busy``: an index run holds the data dir (check-only): a cache behind the database is expected."""
    try:
        vi = VectorIndex.load_file(store)
    except VectorIndexError as e:
        if store.count() == 0:
            _check_empty_cache(store, r, repair)
            return
        if busy:
            r.add("vector index", "warning", f"{e.message} (the index run saves it when it ends)")
            return
        if not repair:
            r.add("vector index", "failed", e.message)
            return
        vi = VectorIndex.build_usable(store)
        vi.save(store)
        r.add("vector index", "fixed", f"{e.message}; rebuilt from the database ({vi.ntotal:,} vectors, {vi.factory})")
        return
    mismatch = 0
    exact = "Flat" in vi.factory and "IVF" not in vi.factory  # only a flat index gives vectors back as stored
    for rid in store.ids(limit=64):
        stored = store.vector(int(rid))
        try:
            if stored is None or (exact and not np.allclose(vi.reconstruct(int(rid)), stored, atol=1e-6)):
                mismatch += 1
        except RuntimeError:
            mismatch += 1
    if mismatch:
        if not repair:
            r.add("vector index", "failed", f"{mismatch} sampled vectors differ from the database")
            return
        vi = VectorIndex.build_usable(store)
        vi.save(store)
        r.add("vector index", "fixed", f"{mismatch} sampled vectors differed from the database; rebuilt")
        return
    extra = f", {vi.params}, measured recall@10 {vi.recall:.3f}" if vi.params and vi.recall is not None else ""
    r.add("vector index", "ok", f"{vi.ntotal:,} vectors in sync ({vi.factory}{extra})")


def _check_thumbnails(store: Store, r: Report, repair: bool) -> None:
    thumbs = Thumbs(store.data_dir)
    if not thumbs.root.exists():
        r.add("thumbnails", "ok", "no cache yet (made on first view in the UI)")
        return
    found = thumbs.audit(store.hashes())
    if not found.damaged and not found.orphans:
        r.add("thumbnails", "ok", f"{found.ok:,} cached, none damaged")
        return
    if not repair:
        r.add(
            "thumbnails", "warning", f"{len(found.damaged)} damaged, {len(found.orphans)} of images no longer indexed"
        )
        return
    thumbs.remove(found.damaged + found.orphans)
    r.add(
        "thumbnails",
        "fixed",
        f"removed {len(found.damaged)} damaged and {len(found.orphans)} orphaned "
        f"thumbnails (damaged ones are made again on next view); {found.ok:,} fine",
    )


def _check_files(store: Store, r: Report) -> None:
    missing, unchecked, why = [], 0, ""
    for p in store.paths():
        try:
            if not sources.exists(p):
                missing.append(p)
        except (OSError, PixseekError) as e:  # a URL that cannot be reached is not a missing file
            unchecked, why = unchecked + 1, why or str(e)
    if unchecked:
        r.add("files", "warning", f"{unchecked:,} indexed files at URLs could not be checked ({why})")
    if not missing:
        if not unchecked:
            r.add("files", "ok", "every indexed file is on disk")
        return
    row = store.get_by_path(missing[0])
    root = row.root if row is not None else sources.parent(missing[0])
    here = sources.is_url(root) or os.path.isdir(root)
    how = f"pixseek index {shlex.quote(root)} --prune" if here else f"pixseek forget {shlex.quote(root)}"
    r.add(
        "files",
        "warning",
        f"{len(missing):,} indexed files are gone from disk (e.g. {missing[0]}); "
        f"if they are gone for good, `{how}` removes them from the index",
    )


def run(db_dir=None, *, repair: bool = True) -> Report:
    dd = db_dir if isinstance(db_dir, DataDir) else DataDir.resolve(db_dir)
    r = Report()
    if not dd.exists():
        r.add("database", "failed", f"no pixseek index in {dd.root} (build one with: pixseek index PATH)")
        return r
    if not repair:
        holder = DirLock.holder(dd)
        if holder is not None:
            r.add(
                "index run",
                "warning",
                f"an index run (pid {holder}) is writing to {dd.root}; this is how things stand mid-run",
            )
        return _run(dd, r, repair, busy=holder is not None)
    try:
        with DirLock(dd):  # no indexer may write while the doctor repairs
            return _run(dd, r, repair)
    except IndexLockedError as e:
        r.add("lock", "failed", e.message + " (run pixseek doctor when it is done, or --check-only)")
        return r
    except PixseekError as e:  # a database that is no database, or not ours: nothing was written
        r.add("database", "failed", e.message + (f" ({e.hint})" if e.hint else ""))
        return r


def _run(dd: DataDir, r: Report, repair: bool, busy: bool = False) -> Report:
    store = _check_database(dd, r, repair)
    if store is None:
        return r
    with store:
        if not _check_meta(store, r, repair):
            return r
        if _check_vectors(store, r, repair):
            _check_faiss(store, r, repair, busy)
        _check_thumbnails(store, r, repair)
        _check_files(store, r)
    return r
