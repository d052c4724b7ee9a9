"""``pixseek index``: scan folders, embed what is new or changed, keep SQLite and FAISS in step.

Incremental by (size, mtime); identity by content hash, so moved or renamed files keep their vector
and identical copies reuse it. Bad files land in the errors table and never stop the run. Work is
committed one batch per transaction, so a killed run resumes where it stopped.
"""
from __future__ import annotations

import fcntl
import hashlib
import os
import time
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from typing import Callable, Iterable, Iterator

import numpy as np

from .decode import DEFAULT_MAX_FILE_BYTES, DEFAULT_MAX_PIXELS, decode_bytes
from .embed import Embedder
from .errors import ImageError, IndexLockedError
from .paths import DataDir
from .scan import FileEntry, ScanError, normalize_roots, scan
from .store import Store, vec_to_blob
from .vectors import VectorIndex


@dataclass
class Summary:
    added: int = 0
    updated: int = 0
    moved: int = 0
    removed: int = 0
    unchanged: int = 0
    failed: int = 0
    known_failures: int = 0     # files that failed before and have not changed since (not retried)
    embedded: int = 0           # images that went through the model
    seconds: float = 0.0        # the whole run, model start-up included
    work_seconds: float = 0.0   # reading, decoding, embedding and writing (model start-up excluded)
    total: int = 0              # images in the index after the run

    @property
    def images_per_s(self) -> float:
        """Embedding throughput: images through the model per second of work."""
        return self.embedded / self.work_seconds if self.work_seconds > 0 else 0.0

    def to_dict(self) -> dict:
        d = asdict(self)
        d["seconds"] = round(self.seconds, 3)
        d["work_seconds"] = round(self.work_seconds, 3)
        d["images_per_s"] = round(self.images_per_s, 1)
        return d


@dataclass
class Prepared:
    entry: FileEntry
    digest: str | None = None
    tensor: object = None
    width: int | None = None
    height: int | None = None
    fmt: str | None = None
    taken_at: float | None = None
    error: ImageError | None = None


@dataclass
class _Op:
    kind: str                   # 'add' | 'update' | 'move' | 'touch' | 'error'
    item: Prepared
    image_id: int | None = None
    needs_vector: bool = False
    vector: np.ndarray | None = field(default=None, repr=False)


class DirLock:
    """An exclusive, non-blocking lock on a data dir, held for the whole run (released on exit/kill)."""

    def __init__(self, data_dir: DataDir):
        self.path = data_dir.lock
        self.fd: int | None = None

    def __enter__(self) -> "DirLock":
        self.fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(self.fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(self.fd, 32, 0).decode(errors="replace").strip() or "?"
            os.close(self.fd)
            self.fd = None
            raise IndexLockedError(f"another pixseek index (pid {holder}) is writing to {self.path.parent}; "
                                   f"wait for it to finish") from None
        os.ftruncate(self.fd, 0)
        os.pwrite(self.fd, str(os.getpid()).encode(), 0)
        return self

    def __exit__(self, *exc) -> None:
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None


def _ordered_map(fn: Callable, items: Iterable, workers: int) -> Iterator:
    """Map ``fn`` over ``items`` with a thread pool, in order, keeping a bounded number in flight."""
    if workers <= 1:
        yield from map(fn, items)
        return
    ahead = workers * 4
    with ThreadPoolExecutor(workers, thread_name_prefix="pixseek-decode") as pool:
        pending = []
        for it in items:
            pending.append(pool.submit(fn, it))
            if len(pending) >= ahead:
                yield pending.pop(0).result()
        for fut in pending:
            yield fut.result()


class Indexer:
    def __init__(self, db_dir=None, *, model: str | None = None, embedder: Embedder | None = None,
                 device: str | None = None, batch_size: int = 64, workers: int | None = None,
                 exclude: Iterable[str] = (), include_hidden: bool = False,
                 max_pixels: int = DEFAULT_MAX_PIXELS, progress: bool = False, export_encoders: bool = True):
        self.data_dir = db_dir if isinstance(db_dir, DataDir) else DataDir.resolve(db_dir)
        self.model_spec = model
        self.embedder = embedder
        self.device = device
        self.batch_size = max(1, int(batch_size))
        self.workers = workers if workers is not None else min(4, os.cpu_count() or 1)
        self.exclude = list(exclude)
        self.include_hidden = include_hidden
        self.max_pixels = max_pixels
        self.progress = progress
        self.export_encoders = export_encoders

    # --- model ------------------------------------------------------------------------------------
    def _embedder_for(self, store: Store) -> Embedder:
        if self.embedder is None:
            spec = self.model_spec or store.model_spec  # an existing index keeps its model
            self.embedder = Embedder.from_spec(spec, self.device)
        e = self.embedder
        store.check_model(e.model_id, e.spec, e.dim, adopt=True)
        return e

    # --- the run ----------------------------------------------------------------------------------
    def rebuild_vectors(self) -> VectorIndex:
        with DirLock(self.data_dir):
            store = Store.open(self.data_dir)
            try:
                return VectorIndex.open(store, rebuild=True)
            finally:
                store.close()

    def run(self, paths: Iterable[str]) -> Summary:
        roots = normalize_roots(paths)
        self.data_dir.create()
        with DirLock(self.data_dir):
            store = Store.open(self.data_dir, create=True)
            try:
                return self._run(store, roots)
            finally:
                store.close()

    def _run(self, store: Store, roots: list[str]) -> Summary:
        t0 = time.perf_counter()
        # The model loads only when needed: a re-run with nothing new costs no model start-up.
        # An explicit, different --model is checked up front so a mismatch is refused at once.
        if store.model_spec is None or (self.model_spec and self.model_spec != store.model_spec):
            self._embedder_for(store)
        vi = VectorIndex.open(store)
        s = Summary()

        listing: dict[str, FileEntry] = {}
        scan_errors: list[ScanError] = []
        for item in scan(roots, self.exclude, self.include_hidden):
            if isinstance(item, ScanError):
                scan_errors.append(item)
            else:
                listing.setdefault(item.path, item)

        existing: dict[str, tuple[int, int, int, str]] = {}
        for root in roots:
            for rid, path, size, mtime_ns, digest in store.rows_under(root):
                existing[path] = (rid, size, mtime_ns, digest)

        work: list[tuple[FileEntry, int | None, str | None]] = []
        for path in sorted(listing):
            e = listing[path]
            old = existing.get(path)
            if old is not None:
                if (old[1], old[2]) == (e.size, e.mtime_ns):
                    s.unchanged += 1
                else:
                    work.append((e, old[0], old[3]))
            elif store.error_for(path) == (e.size, e.mtime_ns):
                s.known_failures += 1
            else:
                work.append((e, None, None))

        vanished_by_hash: dict[str, list[int]] = defaultdict(list)
        for path, (rid, _, _, digest) in existing.items():
            if path not in listing:
                vanished_by_hash[digest].append(rid)

        if scan_errors:
            with store.batch():
                for err in scan_errors:
                    store.record_error(err.path, err.stage, err.message)
            s.failed += len(scan_errors)

        emb = self._embedder_for(store) if work else None
        min_side = emb.image_size if emb else None
        t_work = time.perf_counter()

        def prepare(job: tuple[FileEntry, int | None, str | None]) -> Prepared:
            entry, old_id, old_hash = job
            p = Prepared(entry)
            try:
                with open(entry.path, "rb") as f:
                    data = f.read(DEFAULT_MAX_FILE_BYTES + 1)
            except FileNotFoundError:
                p.error = ImageError("file vanished during indexing", stage="read")
                return p
            except OSError as e:
                p.error = ImageError(f"cannot read: {e.strerror or e}", stage="read")
                return p
            if len(data) > DEFAULT_MAX_FILE_BYTES:
                p.error = ImageError(f"file larger than {DEFAULT_MAX_FILE_BYTES >> 20} MiB", stage="read")
                return p
            p.digest = hashlib.blake2b(data, digest_size=16).hexdigest()
            if p.digest == old_hash or (old_id is None and p.digest in vanished_by_hash):
                return p  # same content as a row we have: no decode needed
            try:
                d = decode_bytes(data, max_pixels=self.max_pixels, min_side=min_side)
                p.width, p.height, p.fmt, p.taken_at = d.width, d.height, d.format, d.taken_at
                p.tensor = emb.preprocess(d.image)
            except ImageError as e:
                p.error = e
            except Exception as e:  # a decoder bug must not stop the run
                p.error = ImageError(f"cannot decode: {type(e).__name__}: {str(e)[:200]}")
            return p

        from tqdm import tqdm

        bar = tqdm(total=len(work), unit="img", desc="indexing", disable=not self.progress or not work,
                   dynamic_ncols=True, leave=False)
        ops: list[_Op] = []
        n_vec = 0
        try:
            for job, prep in zip(work, _ordered_map(prepare, work, self.workers)):
                op = self._classify(store, job, prep, vanished_by_hash)
                ops.append(op)
                n_vec += op.needs_vector
                if n_vec >= self.batch_size or len(ops) >= 4 * self.batch_size:
                    self._flush(store, vi, emb, ops, s)
                    bar.update(len(ops))
                    bar.set_postfix(added=s.added, failed=s.failed, refresh=False)
                    ops, n_vec = [], 0
            if ops:
                self._flush(store, vi, emb, ops, s)
                bar.update(len(ops))
        finally:
            bar.close()

        gone = [rid for ids in vanished_by_hash.values() for rid in ids]
        with store.batch() as b:
            if gone:
                store.delete_images(gone)
                b.changed = True
            for root in roots:
                store.clear_errors_under(root, keep=set(listing) | {e.path for e in scan_errors})
        vi.remove(gone)
        s.removed = len(gone)
        vi.generation = store.generation
        vi.save(store)
        s.total = store.count()
        s.work_seconds = time.perf_counter() - t_work
        if emb is not None and self.export_encoders:
            from .export import export_query_encoders

            export_query_encoders(emb.m)  # once per model: lets `pixseek search` start without torch
        s.seconds = time.perf_counter() - t0
        return s

    def _classify(self, store: Store, job, prep: Prepared, vanished_by_hash) -> _Op:
        entry, old_id, old_hash = job
        if prep.error is not None:
            return _Op("error", prep)
        if old_id is not None:
            if prep.digest == old_hash:
                return _Op("touch", prep, old_id)
            return _Op("update", prep, old_id, needs_vector=True)
        if vanished_by_hash.get(prep.digest):
            rid = vanished_by_hash[prep.digest].pop()
            if not vanished_by_hash[prep.digest]:
                del vanished_by_hash[prep.digest]
            return _Op("move", prep, rid)
        if prep.tensor is not None and store.ids_by_hash(prep.digest):
            return _Op("add", prep)  # an identical copy is indexed already: reuse its vector
        return _Op("add", prep, needs_vector=prep.tensor is not None)

    def _flush(self, store: Store, vi: VectorIndex, emb: Embedder, ops: list[_Op], s: Summary) -> None:
        import torch

        to_embed = [op for op in ops if op.needs_vector]
        if to_embed:
            vecs = emb.encode_tensors(torch.stack([op.item.tensor for op in to_embed]))
            for op, v in zip(to_embed, vecs):
                op.vector = v
            s.embedded += len(to_embed)
        add_ids, add_vecs, removed = [], [], []
        with store.batch() as b:
            for op in ops:
                it, e = op.item, op.item.entry
                if op.kind == "error":
                    store.record_error(e.path, it.error.stage, it.error.message, e.size, e.mtime_ns)
                    s.failed += 1
                elif op.kind == "touch":
                    store.touch_image(op.image_id, size=e.size, mtime_ns=e.mtime_ns)
                    s.unchanged += 1
                elif op.kind == "move":
                    store.move_image(op.image_id, path=e.path, root=e.root, size=e.size, mtime_ns=e.mtime_ns)
                    s.moved += 1
                elif op.kind == "update":
                    store.update_image(op.image_id, size=e.size, mtime_ns=e.mtime_ns, digest=it.digest,
                                       width=it.width, height=it.height, fmt=it.fmt, model_id=emb.model_id,
                                       blob=vec_to_blob(op.vector), taken_at=it.taken_at)
                    removed.append(op.image_id)
                    add_ids.append(op.image_id)
                    add_vecs.append(op.vector)
                    s.updated += 1
                else:  # add
                    blob, vec = self._vector_for(store, op)
                    if blob is None:
                        # Same content as a file moved earlier in this run, whose row we reuse.
                        store.record_error(e.path, "embed", "duplicate vanished before it was copied")
                        s.failed += 1
                        continue
                    rid = store.insert_image(path=e.path, root=e.root, size=e.size, mtime_ns=e.mtime_ns,
                                             digest=it.digest, width=it.width, height=it.height, fmt=it.fmt,
                                             model_id=emb.model_id, blob=blob, taken_at=it.taken_at)
                    add_ids.append(rid)
                    add_vecs.append(vec)
                    s.added += 1
            b.changed = bool(add_ids or removed or any(op.kind == "move" for op in ops))
        vi.remove(removed)
        if add_ids:
            vi.add(np.asarray(add_ids, dtype=np.int64), np.stack(add_vecs))

    @staticmethod
    def _vector_for(store: Store, op: _Op) -> tuple[bytes | None, np.ndarray | None]:
        if op.vector is not None:
            return vec_to_blob(op.vector), op.vector
        # Identical content already indexed (a copy, or a second copy of a moved file): reuse it.
        for rid in store.ids_by_hash(op.item.digest):
            blob = store.vector_blob(rid)
            if blob is not None:
                return blob, np.frombuffer(blob, dtype="<f4").copy()
        return None, None
