"""``pixseek index``: scan folders, embed what is new or changed, keep SQLite and FAISS in step.

Incremental by (size, mtime); identity by content hash, so moved or renamed files keep their vector
and identical copies reuse it. Bad files land in the errors table and never stop the run. Work is
committed one batch per transaction, so a killed run resumes where it stopped.
"""
from __future__ import annotations

import os
import sqlite3
import time
from collections import defaultdict
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Iterable

import numpy as np

from . import faults
from .decode import DEFAULT_MAX_PIXELS
from .embed import Embedder
from .errors import StoreError, VectorIndexError
from .lock import DirLock
from .paths import DataDir
from .pipeline import Job, Prepared, prepared_batches
from .scan import FileEntry, ScanError, normalize_roots, scan
from .store import Store, vec_to_blob
from .vectors import TUNING_QUERIES_FILE, VectorIndex
from .writer import Writer, write_error

PROMPTS = Path(__file__).resolve().parent / "prompts.txt"


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
class _Op:
    kind: str                   # 'add' | 'update' | 'move' | 'touch' | 'error'
    item: Prepared
    image_id: int | None = None
    needs_vector: bool = False
    vector: np.ndarray | None = field(default=None, repr=False)


class Indexer:
    def __init__(self, db_dir=None, *, model: str | None = None, embedder: Embedder | None = None,
                 device: str | None = None, batch_size: int | None = None, workers: int | None = None,
                 exclude: Iterable[str] = (), include_hidden: bool = False,
                 max_pixels: int = DEFAULT_MAX_PIXELS, progress: bool = False, export_encoders: bool = True,
                 index_type: str | None = None, runtime: str | None = None):
        """``index_type``: "auto" (by corpus size and memory) or a FAISS factory string; kept by the
        index for later runs. ``workers``: decode processes (default: cores + 1, at most 16).
        ``runtime``: "auto" (a CPU run embeds with the model's ONNX export when there is one) or
        "torch"; default from ``PIXSEEK_RUNTIME``."""
        self.data_dir = db_dir if isinstance(db_dir, DataDir) else DataDir.resolve(db_dir)
        self.index_type = index_type
        self.model_spec = model
        self.embedder = embedder
        self.device = device
        self.batch_size = max(1, int(batch_size)) if batch_size else None  # None: 256 on a GPU, else 64
        self.workers = workers
        self.exclude = list(exclude)
        self.include_hidden = include_hidden
        self.max_pixels = max_pixels
        self.progress = progress
        self.export_encoders = export_encoders
        self.runtime = runtime

    # --- model ------------------------------------------------------------------------------------
    def _embedder_for(self, store: Store) -> Embedder:
        if self.embedder is None:
            spec = self.model_spec or store.model_spec  # an existing index keeps its model
            self.embedder = Embedder.for_indexing(spec, self.device, self.runtime)
        e = self.embedder
        store.check_model(e.model_id, e.spec, e.dim, adopt=True)
        return e

    # --- the run ----------------------------------------------------------------------------------
    def rebuild_vectors(self) -> VectorIndex:
        with DirLock(self.data_dir):
            store = Store.open(self.data_dir)
            try:
                self._apply_index_type(store, store.dim)
                return VectorIndex.open(store, rebuild=True)
            finally:
                store.close()

    def run(self, paths: Iterable[str]) -> Summary:
        roots = normalize_roots(paths)
        try:
            self.data_dir.create()
        except OSError as e:
            raise StoreError(f"cannot create data dir {self.data_dir.root}: {e.strerror or e}") from None
        os.environ["PIXSEEK_FAULT_INDEXER_PID"] = str(os.getpid())  # for fault-injection tests only
        with DirLock(self.data_dir):
            store = Store.open(self.data_dir, create=True)
            try:
                return self._run(store, roots)
            except (OSError, sqlite3.OperationalError) as e:
                raise write_error(self.data_dir, e) from None
            finally:
                store.close()

    def _run(self, store: Store, roots: list[str]) -> Summary:
        t0 = time.perf_counter()
        # The model loads only when needed: a re-run with nothing new costs no model start-up.
        # An explicit, different --model is checked up front so a mismatch is refused at once.
        if store.model_spec is None or (self.model_spec and self.model_spec != store.model_spec):
            self._embedder_for(store)
        self._apply_index_type(store, store.dim)
        vi = VectorIndex.open(store)
        s = Summary()

        listing: dict[str, FileEntry] = {}
        scan_errors: list[ScanError] = []
        for item in scan(roots, self.exclude, self.include_hidden):
            faults.point("scan")
            if isinstance(item, ScanError):
                scan_errors.append(item)
            else:
                listing.setdefault(item.path, item)

        existing: dict[str, tuple[int, int, int, str]] = {}
        for root in roots:
            for rid, path, size, mtime_ns, digest in store.rows_under(root):
                existing[path] = (rid, size, mtime_ns, digest)

        work: list[Job] = []
        for path in sorted(listing):
            e = listing[path]
            old = existing.get(path)
            if old is not None:
                if (old[1], old[2]) == (e.size, e.mtime_ns):
                    s.unchanged += 1
                else:
                    work.append(Job(e, old[0], old[3]))
            elif store.error_for(path) == (e.size, e.mtime_ns):
                s.known_failures += 1
            else:
                work.append(Job(e, None, None))

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
        t_work = time.perf_counter()
        if work:
            self._embed_all(store, vi, emb, work, vanished_by_hash, s)

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
        if vi.stale_for(store):  # the corpus outgrew the index type or its tuning: rebuild and tune
            if emb is not None:
                self._save_tuning_queries(store, emb)
            vi = VectorIndex.build(store)
        vi.save(store)
        s.total = store.count()
        s.work_seconds = time.perf_counter() - t_work
        if emb is not None and self.export_encoders and getattr(emb, "runtime", "torch") == "torch":
            from .export import export_query_encoders

            # once per model: `pixseek search` starts without torch, later CPU runs index on ONNX Runtime
            export_query_encoders(emb.m)
        s.seconds = time.perf_counter() - t0
        return s

    def _apply_index_type(self, store: Store, dim: int | None) -> None:
        """Check ``--index-type`` before any work (a bad one must not fail a long run at the end)."""
        if not self.index_type:
            return
        kind = self.index_type.strip()
        if kind.lower() != "auto":
            import faiss

            from .ann import normalise_factory

            try:
                faiss.index_factory(dim or 256, normalise_factory(kind), faiss.METRIC_INNER_PRODUCT)
            except Exception as e:
                raise VectorIndexError(f"invalid --index-type {kind!r}: {str(e).splitlines()[0][:160]}",
                                       hint="use auto, Flat, HNSW32, IVF4096,Flat, IVF4096,SQ8 or IVF4096,PQ32") from None
        else:
            kind = "auto"
        if store.meta("index_type", "auto") != kind:
            store.set_meta(index_type=kind)

    def _workers(self, emb: Embedder) -> int:
        if self.workers is not None:
            return self.workers
        # About one per core: decoding is the bottleneck for small models, and a big model's threads
        # and the workers share the cores well enough (measured: bench/indexing.py).
        cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
        return min(16, cores + 1)  # one more than the cores: a worker waiting on the disk leaves a core idle

    def _save_tuning_queries(self, store: Store, emb: Embedder) -> None:
        """The model's vectors for index/prompts.txt: held-out text queries for tuning ANN search."""
        path = store.data_dir.root / TUNING_QUERIES_FILE
        if path.exists():
            return
        prompts = [ln.strip() for ln in PROMPTS.read_text().splitlines() if ln.strip() and not ln.startswith("#")]
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp.npy")
        try:
            from .export import prompt_vectors

            np.save(tmp, prompt_vectors(emb.model_id, prompts, emb.encode_texts))
            os.replace(tmp, path)
        except OSError:
            tmp.unlink(missing_ok=True)

    def _embed_all(self, store: Store, vi: VectorIndex, emb: Embedder, work: list[Job],
                   vanished_by_hash: dict[str, list[int]], s: Summary) -> None:
        """Workers decode, the model embeds, the writer thread commits: all three at once."""
        from tqdm import tqdm

        bar = tqdm(total=len(work), unit="img", desc="indexing", disable=not self.progress,
                   dynamic_ncols=True, leave=False)
        batches = prepared_batches(
            work, preprocess=emb.preprocess, min_side=emb.image_size, max_pixels=self.max_pixels,
            known_hashes=frozenset(vanished_by_hash), workers=self._workers(emb),
            batch_size=self.batch_size or (256 if emb.device.startswith("cuda") else 64),
            pin_memory=emb.device.startswith("cuda"))
        writer = Writer(self.data_dir, lambda st, ops: self._write(st, vi, emb.model_id, ops, s))
        writer.start()
        pos = 0
        try:
            for preps, tensors in batches:
                jobs = work[pos:pos + len(preps)]
                pos += len(preps)
                ops = [self._classify(store, job, prep, vanished_by_hash) for job, prep in zip(jobs, preps)]
                if tensors is not None:
                    faults.point("embed")
                    vecs = emb.encode_tensors(tensors)
                    with_tensor = [op for op in ops if op.item.has_tensor]
                    for op, v in zip(with_tensor, vecs):
                        if op.needs_vector:
                            op.vector = v
                            s.embedded += 1
                writer.put(ops)
                bar.update(len(ops))
                bar.set_postfix(added=s.added, failed=s.failed, refresh=False)
            writer.finish()
        finally:
            batches.close()
            if writer.is_alive():  # an interrupt or error: commit what is queued, then stop
                writer.q.put(None)
                writer.join()
            bar.close()

    def _classify(self, store: Store, job: Job, prep: Prepared, vanished_by_hash) -> _Op:
        if prep.error is not None:
            return _Op("error", prep)
        if job.old_id is not None:
            if prep.digest == job.old_hash:
                return _Op("touch", prep, job.old_id)
            return _Op("update", prep, job.old_id, needs_vector=True)
        if vanished_by_hash.get(prep.digest):
            rid = vanished_by_hash[prep.digest].pop()
            if not vanished_by_hash[prep.digest]:
                del vanished_by_hash[prep.digest]
            return _Op("move", prep, rid)
        if prep.has_tensor and store.ids_by_hash(prep.digest):
            return _Op("add", prep)  # an identical copy is indexed already: reuse its vector
        return _Op("add", prep, needs_vector=prep.has_tensor)

    def _write(self, store: Store, vi: VectorIndex, model_id: str, ops: list[_Op], s: Summary) -> None:
        """Commit one batch of ops in one transaction, then mirror it in the FAISS cache."""
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
                                       width=it.width, height=it.height, fmt=it.fmt, model_id=model_id,
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
                                             model_id=model_id, blob=blob, taken_at=it.taken_at)
                    add_ids.append(rid)
                    add_vecs.append(vec)
                    s.added += 1
            b.changed = bool(add_ids or removed or any(op.kind == "move" for op in ops))
        faults.point("committed")
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
