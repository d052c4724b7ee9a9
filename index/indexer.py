"""``pixseek index``: scan folders, embed what is new or changed, keep SQLite and FAISS in step.

A run has three steps: **plan** (:mod:`pixseek.index.plan`: scan and compare with the database),
**apply** (decode workers, the model and the writer thread at once, one transaction per batch) and
**finish** (remove rows of files that are gone, re-tune or save the FAISS cache, export the model),
then **tag** new pictures from their stored vectors (:mod:`pixseek.index.tagging`). Incremental by
(size, mtime); identity by content hash, so moved or renamed files keep their vector and identical
copies reuse it. Bad files land in the errors table and never stop the run. A killed run resumes.
"""

from __future__ import annotations

import os
import sqlite3
import time
from collections.abc import Callable, Generator, Iterable
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from pixseek import faults, sources
from pixseek.decode import DEFAULT_MAX_PIXELS
from pixseek.errors import ImageError, IndexNotFoundError, NoImagesError, StoreError
from pixseek.models import Encoder, export_for_cpu, for_indexing
from pixseek.models.export import cached_text_vectors
from pixseek.store import DataDir, Store, VectorIndex, ann, index_types
from pixseek.store.database import vec_to_blob
from pixseek.store.lock import DirLock

from . import guard
from . import ocr as ocr_stage
from .backfill import fill_photo_metadata
from .hashfill import fill_hashes
from .pipeline import Job, Prepared, default_batch, prepared_batches
from .places import place_for
from .plan import Plan, make_plan
from .scan import normalize_roots
from .tagging import tag_stage
from .writer import Writer, write_error

if TYPE_CHECKING:
    from .ray_run import RayBatches


@dataclass
class Summary:
    added: int = 0
    updated: int = 0
    moved: int = 0
    removed: int = 0
    unchanged: int = 0
    failed: int = 0
    known_failures: int = 0  # files that failed before and whose reason still holds (not retried)
    aliases: int = 0  # paths reaching a file indexed under another path (symlinks, hard links): skipped
    kept: int = 0  # rows whose files were not found, kept because the scan looked untrustworthy
    embedded: int = 0  # images that went through the model
    metadata_filled: int = 0  # rows indexed before camera and GPS were kept, given them now (no re-embedding)
    hashed: int = 0  # rows indexed before perceptual hashes were kept that got theirs (no re-embedding)
    tagged: int = 0  # images given zero-shot tags (new, changed, or all after a new tag setup)
    seconds: float = 0.0  # the whole run, model start-up included
    work_seconds: float = 0.0  # reading, decoding, embedding and writing (model start-up excluded)
    total: int = 0  # images in the index after the run
    notes: list[str] = field(default_factory=list)  # one line each, for the user (e.g. what was kept)
    ocr: ocr_stage.OcrSummary | None = None  # the OCR stage, when the run had one (--ocr)

    @property
    def images_per_s(self) -> float:
        """Embedding throughput: images through the model per second of work."""
        return self.embedded / self.work_seconds if self.work_seconds > 0 else 0.0

    def to_dict(self) -> dict:
        d = asdict(self)
        d["seconds"] = round(self.seconds, 3)
        d["work_seconds"] = round(self.work_seconds, 3)
        d["images_per_s"] = round(self.images_per_s, 1)
        d["ocr"] = self.ocr.to_dict() if self.ocr else None
        return d


def save_tuning_queries(data_dir: DataDir, enc: Encoder) -> None:
    """The index model's vectors of the ANN tuning prompts, into the data dir: computed once per model
    (kept beside its export) and reused by every index of that model."""
    ann.save_tuning_queries(data_dir, lambda texts: cached_text_vectors(enc.model_id, texts, enc.encode_texts))


@dataclass
class _Op:
    kind: str  # 'add' | 'update' | 'move' | 'touch' | 'error'
    item: Prepared
    image_id: int | None = None
    needs_vector: bool = False
    vector: np.ndarray | None = field(default=None, repr=False)


def _content(op: _Op, model_id: str) -> dict:
    """What a row records of a file's content and identity (insert and update alike)."""
    it, e = op.item, op.item.entry
    return {
        "size": e.size,
        "mtime_ns": e.mtime_ns,
        "digest": it.digest,
        "width": it.width,
        "height": it.height,
        "fmt": it.fmt,
        "model_id": model_id,
        "taken_at": it.taken_at,
        "phash": it.phash,
        "dev": e.dev,
        "inode": e.inode,
    }


class Indexer:
    def __init__(
        self,
        db_dir: str | os.PathLike | DataDir | None = None,
        *,
        model: str | None = None,
        encoder: Encoder | None = None,
        device: str | None = None,
        batch_size: int | None = None,
        workers: int | None = None,
        exclude: Iterable[str] = (),
        include_hidden: bool = False,
        max_pixels: int = DEFAULT_MAX_PIXELS,
        progress: bool = False,
        export_encoders: bool = True,
        index_type: str | None = None,
        runtime: str | None = None,
        prune: bool = False,
        on_new_index: Callable[[str], None] | None = None,
        ocr: bool = False,
        ocr_workers: int | None = None,
        ray: str | None = None,
    ):
        """``index_type``: "auto" (by corpus size and memory) or a FAISS factory string; kept by the
        index for later runs. ``workers``: decode processes (default: cores + 1, at most 16).
        ``runtime``: "auto" (a CPU run embeds with the model's ONNX export when there is one) or
        "torch"; default from ``PIXSEEK_RUNTIME``. ``prune``: remove the rows of files not found even when
        the scan looks untrustworthy (:mod:`pixseek.index.guard`). ``on_new_index``: called with the
        model's spec when a run gives an index without a model its model (the CLI says which, and why).
        ``ocr``: then read the text in pictures (:mod:`pixseek.index.ocr`) with ``ocr_workers`` readers.
        ``ray``: decode and embed on a Ray cluster (:mod:`pixseek.index.ray_run`): 'local' starts one on this
        machine, 'auto' joins the one running here, HOST:PORT a remote one; this process plans and commits."""
        self.data_dir = db_dir if isinstance(db_dir, DataDir) else DataDir.resolve(db_dir)
        self.index_type = index_type
        self.model_spec = model
        self.encoder = encoder
        self.device = device
        self.batch_size = max(1, int(batch_size)) if batch_size else None  # None: pipeline.default_batch
        self.workers = workers
        self.exclude = list(exclude)
        self.include_hidden = include_hidden
        self.max_pixels = max_pixels
        self.progress = progress
        self.export_encoders = export_encoders
        self.runtime = runtime
        self.prune = prune
        self.on_new_index = on_new_index
        self.ocr = ocr
        self.ocr_workers = ocr_workers
        self.ray = ray

    def _encoder_for(self, store: Store) -> Encoder:
        if self.encoder is None:
            spec = self.model_spec or store.model_spec  # an existing index keeps its model
            self.encoder = for_indexing(spec, self.device, self.runtime)
        e = self.encoder
        store.check_model(e.model_id, e.spec, e.dim, adopt=True)
        return e

    # --- entry points -----------------------------------------------------------------------------
    def _require_index(self) -> None:
        """Commands that change an existing index refuse a folder without one before taking its lock."""
        if not self.data_dir.exists():
            raise IndexNotFoundError(
                f"no pixseek index in {self.data_dir.root}", hint="build one with: pixseek index PATH"
            )

    def rebuild_vectors(self) -> VectorIndex:
        self._require_index()
        with DirLock(self.data_dir), Store.open(self.data_dir) as store:
            self._apply_index_type(store)
            return VectorIndex.open(store, rebuild=True)

    def forget(self, paths: Iterable[str | os.PathLike]) -> int:
        """Remove what was indexed at or under each path, on purpose (whether or not the path exists
        now); returns the number of images removed."""
        roots = []
        for p in paths:
            if not os.fspath(p).strip():
                raise NoImagesError("an empty path names no folder", hint="pixseek forget /path/to/folder")
            p = sources.normalize(os.fspath(p))  # a URL forgets its objects; file:// is a path
            roots.append(p if sources.is_url(p) else os.path.abspath(p))
        self._require_index()
        with DirLock(self.data_dir), Store.open(self.data_dir) as store:
            vi = VectorIndex.open(store)
            removed: list[int] = []
            with store.batch() as b:
                for root in roots:
                    removed += store.forget(root)
                b.changed = bool(removed)
                store.sync_keywords()
            vi.remove(removed)
            vi.generation = store.generation
            if vi.stale_for(store):
                vi = VectorIndex.build_usable(store)
            vi.save(store)
            return len(removed)

    def run(self, paths: Iterable[str | os.PathLike]) -> Summary:
        paths = list(paths)
        if self.ray is not None:  # a missing extra, a bad address or a URL: one line before any work
            from . import ray_run

            ray_run.check_run(self.ray, paths)
        roots = normalize_roots(paths)
        if self.ocr:
            ocr_stage.ocr.check_available()  # a missing extra is one line before any work, not after it
        try:
            self.data_dir.create()
        except OSError as e:
            raise StoreError(f"cannot create data dir {self.data_dir.root}: {e.strerror or e}") from None
        with DirLock(self.data_dir), Store.open(self.data_dir, create=True) as store:
            try:
                s = self._run(store, roots)
                if self.ocr:  # after the embedding: search works while it reads
                    s.ocr = ocr_stage.run_stage(
                        store, workers=self.ocr_workers, max_pixels=self.max_pixels, progress=self.progress
                    )
                    with store.batch():  # the text read joins the keyword index
                        store.sync_keywords()
                return s
            except (OSError, sqlite3.OperationalError) as e:
                raise write_error(self.data_dir, e) from None

    def _run(self, store: Store, roots: list[str]) -> Summary:
        t0 = time.perf_counter()
        # The model loads only when needed: a re-run with nothing new costs no model start-up.
        # An explicit, different --model is checked up front so a mismatch is refused at once.
        new = store.model_spec is None
        if new or (self.model_spec and self.model_spec != store.model_spec):
            self._encoder_for(store)
        self._apply_index_type(store)
        if new and self.encoder is not None and self.on_new_index is not None:
            self.on_new_index(self.encoder.spec)
        vi = VectorIndex.open(store)
        s = Summary()
        plan = make_plan(store, roots, self.exclude, self.include_hidden, self.max_pixels)
        s.unchanged, s.known_failures, s.aliases = plan.unchanged, plan.known_failures, plan.aliases
        self._record_scan_errors(store, plan, s)
        enc = self._encoder_for(store) if plan.work else None
        t_work = time.perf_counter()
        if enc is not None:
            self._apply(store, vi, enc, plan, s)
        self._finish(store, vi, roots, plan, enc, s)
        s.work_seconds = time.perf_counter() - t_work
        s.hashed = fill_hashes(
            store, plan, workers=self.decode_workers(), max_pixels=self.max_pixels, progress=self.progress
        )
        s.metadata_filled = fill_photo_metadata(store, roots, progress=self.progress)
        s.tagged = tag_stage(store, lambda: enc or self._encoder_for(store), s.notes, progress=self.progress)
        with store.batch():  # last: the keyword index reads names, EXIF, tags and what later stages added
            store.sync_keywords()
        if enc is not None and self.export_encoders:
            export_for_cpu(enc)  # once per model: later CPU runs and `pixseek search` skip torch
        s.seconds = time.perf_counter() - t0
        return s

    def _apply_index_type(self, store: Store) -> None:
        """Check ``--index-type`` before any work (a bad one must not fail a long run at the end)."""
        if self.index_type is None:
            return
        kind = index_types.check(self.index_type, store.dim)
        if store.meta("index_type", "auto") != kind:
            store.set_meta(index_type=kind)

    @staticmethod
    def _record_scan_errors(store: Store, plan: Plan, s: Summary) -> None:
        if plan.scan_errors:
            with store.batch():
                for err in plan.scan_errors:
                    store.record_error(err.path, err.stage, err.message)
            s.failed += len(plan.scan_errors)

    # --- apply: decode, embed, commit -------------------------------------------------------------
    def decode_workers(self) -> int:
        """Decode processes a run uses: ``workers`` when given, else about one per core."""
        if self.workers is not None:
            return self.workers
        # About one per core: decoding is the bottleneck for small models, and a big model's threads
        # and the workers share the cores well enough (measured: bench/indexing.py).
        cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
        return min(16, cores + 1)  # one more than the cores: a worker waiting on the disk leaves a core idle

    def _apply(self, store: Store, vi: VectorIndex, enc: Encoder, plan: Plan, s: Summary) -> None:
        """Workers decode, the model embeds, the writer thread commits: all three at once."""
        from tqdm import tqdm

        work = plan.work
        bar = tqdm(
            total=len(work), unit="img", desc="indexing", disable=not self.progress, dynamic_ncols=True, leave=False
        )
        batches, remote = self._batches(enc, plan)
        writer = Writer(self.data_dir, lambda st, ops: self._write(st, vi, enc.model_id, ops, s))
        writer.start()
        pos = 0
        try:
            for preps, tensors in batches:
                jobs = work[pos : pos + len(preps)]
                pos += len(preps)
                ops = [self._classify(store, job, prep, plan) for job, prep in zip(jobs, preps)]
                if tensors is not None and remote is not None:
                    self._assign(tensors, ops, s)  # vectors, embedded by the cluster's encoders
                elif tensors is not None:
                    self._embed(enc, tensors, ops, s)
                writer.put(ops)
                bar.update(len(ops))
                bar.set_postfix(added=s.added, failed=s.failed, refresh=False)
            writer.finish()
            if remote is not None and remote.restarted_batches:
                s.notes.append("a Ray encoder worker was lost and replaced; its batches were embedded again")
        finally:
            batches.close()
            writer.close()  # after an interrupt or error: commit what is queued, then stop
            bar.close()

    def _batches(self, enc: Encoder, plan: Plan) -> tuple[Generator, RayBatches | None]:
        """The apply step's input: ``(prepared, pixels or vectors)`` batches in work order, from the local
        decode workers (pixels, for ``enc``) or, with ``ray``, from a Ray cluster (vectors)."""
        known = frozenset(plan.vanished_by_hash)
        if self.ray is not None:  # decoded and embedded on the cluster; planned and committed here
            from .ray_run import RayBatches

            remote = RayBatches(
                plan.work,
                enc,
                address=self.ray,
                device=self.device,
                max_pixels=self.max_pixels,
                known_hashes=known,
                batch_size=self.batch_size,
            )
            return remote.batches(), remote
        cuda = enc.device.startswith("cuda")
        local = prepared_batches(
            plan.work,
            preprocess=enc.preprocess,
            min_side=enc.image_size,
            max_pixels=self.max_pixels,
            known_hashes=known,
            workers=self.decode_workers(),
            batch_size=self.batch_size or default_batch(cuda),
            pin_memory=cuda,
        )
        return local, None

    @staticmethod
    def _embed(enc: Encoder, tensors: object, ops: list[_Op], s: Summary) -> None:
        faults.point("embed")
        Indexer._assign(enc.encode_tensors(tensors), ops, s)

    @staticmethod
    def _assign(vecs: np.ndarray, ops: list[_Op], s: Summary) -> None:
        """Give the ops that need one their vector (``vecs``: one per op with pixels, in order)."""
        with_tensor = [op for op in ops if op.item.has_tensor]
        for op, v in zip(with_tensor, vecs):
            if op.needs_vector:
                op.vector = v
                s.embedded += 1

    @staticmethod
    def _classify(store: Store, job: Job, prep: Prepared, plan: Plan) -> _Op:
        if prep.error is not None:
            return _Op("error", prep)
        if job.old_id is not None:
            if prep.digest == job.old_hash:
                return _Op("touch", prep, job.old_id)
            return _Op("update", prep, job.old_id, needs_vector=True)
        moved_from = plan.claim_moved(prep.digest)
        if moved_from is not None:
            return _Op("move", prep, moved_from)
        if prep.has_tensor and prep.digest and store.ids_by_hash(prep.digest):
            return _Op("add", prep)  # an identical copy is indexed already: reuse its vector
        return _Op("add", prep, needs_vector=prep.has_tensor)

    # --- finish: removals, the FAISS cache --------------------------------------------------------
    def _finish(
        self, store: Store, vi: VectorIndex, roots: list[str], plan: Plan, enc: Encoder | None, s: Summary
    ) -> None:
        gone, kept = guard.judge(plan, self.prune)
        distrusted = {k.root for k in kept}
        seen = set(plan.listing) | {e.path for e in plan.scan_errors}
        with store.batch() as b:
            if gone:
                store.delete_images(gone)
                b.changed = True
            store.set_identities(plan.identities)
            for rs in plan.roots:
                if rs.path not in distrusted:
                    store.clear_errors_under(rs.path, keep=seen)
                    store.record_root(rs.path, rs.dev, rs.found)
        vi.remove(gone)
        s.removed = len(gone)
        s.kept = sum(k.rows for k in kept)
        s.notes += [k.line() for k in kept]
        vi.generation = store.generation
        if vi.stale_for(store):  # the corpus outgrew the index type or its tuning: rebuild and tune
            if enc is not None:
                save_tuning_queries(store.data_dir, enc)
            vi = VectorIndex.build_usable(store)
        vi.save(store)
        s.total = store.count()

    def _write(self, store: Store, vi: VectorIndex, model_id: str, ops: list[_Op], s: Summary) -> None:
        """Commit one batch of ops in one transaction, then mirror it in the FAISS cache."""
        added: list[tuple[int, np.ndarray]] = []  # (row id, vector) new in FAISS
        replaced: list[int] = []  # row ids whose old vector leaves FAISS
        with store.batch() as b:
            for op in ops:
                self._write_op(store, op, model_id, s, added, replaced)
            b.changed = bool(added or replaced or any(op.kind == "move" for op in ops))
        faults.point("committed")
        vi.remove(replaced)
        if added:
            vi.add(np.asarray([rid for rid, _ in added], dtype=np.int64), np.stack([v for _, v in added]))

    def _write_op(self, store: Store, op: _Op, model_id: str, s: Summary, added: list, replaced: list) -> None:
        it, e = op.item, op.item.entry
        if op.kind == "error":
            err = it.error or ImageError("unknown error")
            store.record_error(e.path, err.stage, err.message, e.size, e.mtime_ns, err.kind, err.limit)
            s.failed += 1
            return
        if op.kind == "add":
            blob, vec = self._vector_for(store, op)
            if blob is None or vec is None:
                # Same content as a file moved earlier in this run, whose row we reuse.
                store.record_error(e.path, "embed", "duplicate vanished before it was copied")
                s.failed += 1
                return
            rid = store.insert_image(path=e.path, root=e.root, blob=blob, **_content(op, model_id))
            self._write_photo(store, rid, it)
            added.append((rid, vec))
            s.added += 1
            return
        assert op.image_id is not None  # touch, move and update act on a row that exists
        if op.kind == "touch":
            store.touch_image(op.image_id, size=e.size, mtime_ns=e.mtime_ns)
            s.unchanged += 1
        elif op.kind == "move":
            store.move_image(
                op.image_id, path=e.path, root=e.root, size=e.size, mtime_ns=e.mtime_ns, dev=e.dev, inode=e.inode
            )
            s.moved += 1
        else:  # update: new content at the same path
            assert op.vector is not None
            store.update_image(op.image_id, blob=vec_to_blob(op.vector), **_content(op, model_id))
            self._write_photo(store, op.image_id, it)
            replaced.append(op.image_id)
            added.append((op.image_id, op.vector))
            s.updated += 1

    @staticmethod
    def _write_photo(store: Store, image_id: int, it: Prepared) -> None:
        """Camera, lens, GPS and place of a file decoded in this run (one not decoded, a copy of a file
        moved meanwhile, keeps exif_version NULL: the metadata stage at the end of the run reads it)."""
        if it.photo is not None:
            store.set_photo(image_id, it.photo, place_for(it.photo.lat, it.photo.lon))

    @staticmethod
    def _vector_for(store: Store, op: _Op) -> tuple[bytes | None, np.ndarray | None]:
        if op.vector is not None:
            return vec_to_blob(op.vector), op.vector
        # Identical content already indexed (a copy, or a second copy of a moved file): reuse it.
        for rid in store.ids_by_hash(op.item.digest or ""):
            blob = store.vector_blob(rid)
            if blob is not None:
                return blob, np.frombuffer(blob, dtype="<f4").copy()
        return None, None
