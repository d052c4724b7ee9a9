"""The FAISS cache of the vectors in SQLite, keyed by SQLite row id.

The index file is written atomically (temp file + ``os.replace``) with a JSON sidecar naming the
database generation, model id, dim and count it was built from, the index type and its tuned search
parameter. On load both are checked against the database; a missing, corrupt or stale file is rebuilt
from SQLite (with a logged notice). The index type is exact flat or an ANN type chosen and tuned by
:mod:`pixseek.store.ann`; with GPUs present, searches run on a GPU copy of the index.
"""

from __future__ import annotations

import contextlib
import json
import logging
import re
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np

from pixseek import faults
from pixseek.errors import VectorIndexError
from pixseek.fileio import atomic_path

from . import ann, index_types
from .database import Store
from .paths import DataDir

log = logging.getLogger("pixseek")
DEFAULT_FACTORY = "IDMap2,Flat"
# The sidecar's fields and their types; anything else means "rebuild the cache".
_SIDECAR: dict[str, tuple[type, ...]] = {
    "generation": (int,),
    "model_id": (str,),
    "dim": (int,),
    "count": (int,),
    "size": (int,),
    "factory": (str,),
    "params": (str,),
    "recall": (int, float, type(None)),
    "tuned_n": (int,),
    "rerank": (int,),
}
_PARAMS = re.compile(r"(nprobe|efSearch)=\d{1,7}")
GPU_MAX_K = 2048  # FAISS GPU k-selection limit (GPU_MAX_SELECTION_K); deeper searches use the CPU index


# Searches of at most this many queries run on one OpenMP thread. On a busy machine FAISS's parallel
# region waits for its slowest thread: one query on 20,000 x 512 flat took 11.7 ms p50 on 1 thread and
# 49 ms on 2 (4.2x), on 200,000 x 512 137 vs 300 ms, for a quarter of the CPU; at 64 queries a call, 2
# threads were 10-25 % faster (bench/faiss_threads.py, 2 cores, load 12-18).
FEW_QUERIES = 8


def _faiss():
    import faiss

    return faiss


@contextlib.contextmanager
def _threads_for(nq: int) -> Iterator[None]:
    """One OpenMP thread for a search of a few queries (see FEW_QUERIES), restored afterwards (the
    setting is per calling thread)."""
    if nq > FEW_QUERIES:
        yield
        return
    faiss = _faiss()
    before = faiss.omp_get_max_threads()
    faiss.omp_set_num_threads(1)
    try:
        yield
    finally:
        faiss.omp_set_num_threads(before)


@dataclass
class VectorIndex:
    index: Any  # faiss CPU index: IDMap2 over flat IP, or an ANN type keyed by row id
    model_id: str
    dim: int
    generation: int
    factory: str = DEFAULT_FACTORY
    params: str = ""  # tuned search parameter, e.g. "nprobe=16"
    recall: float | None = None  # its measured recall@10 against exact search
    tuned_n: int = 0  # corpus size when it was built and tuned
    rerank_depth: int = 0  # compressed codes: candidates per result re-scored exactly (tuned)
    dirty: bool = False  # removals the index type cannot apply (HNSW): rebuild before saving
    _gpu: Any = None

    @property
    def rerank(self) -> int:
        """Candidates per wanted result re-scored exactly (compressed codes), else 1."""
        if not ann.is_compressed(self.factory):
            return 1
        return self.rerank_depth or ann.RERANK

    def candidates(self, want: int) -> int:
        """How many results to ask FAISS for when ``want`` are wanted: ``want`` x :attr:`rerank`, capped at
        ``ann.MAX_RERANK_ROWS`` rows to re-score but never under twice ``want`` (the depth is tuned for
        10 results; a request for 100,000 at depth 64 would read 6.4M vectors from SQLite)."""
        depth = self.rerank
        if depth <= 1:
            return want
        return max(min(want * depth, ann.MAX_RERANK_ROWS), 2 * want)

    @property
    def ntotal(self) -> int:
        return int(self.index.ntotal)

    @property
    def trained(self) -> bool:
        """An ANN type (IVF, HNSW) that is trained/tuned on the corpus: far too costly to rebuild on the
        fly, unlike an exact flat index."""
        return "IVF" in self.factory or "HNSW" in self.factory

    # --- persistence ------------------------------------------------------------------------------
    def save(self, store: Store) -> None:
        faiss = _faiss()
        dd = store.data_dir
        try:
            # The sidecar is replaced last: a crash in between leaves a file whose size or generation
            # does not match, which load() treats as stale and rebuilds.
            with atomic_path(dd.faiss_meta) as meta_tmp:
                with atomic_path(dd.faiss, fsync=True) as tmp:
                    faiss.write_index(self.index, str(tmp))
                    meta = {
                        "generation": self.generation,
                        "model_id": self.model_id,
                        "dim": self.dim,
                        "count": self.ntotal,
                        "factory": self.factory,
                        "params": self.params,
                        "recall": self.recall,
                        "tuned_n": self.tuned_n,
                        "rerank": self.rerank,
                        "size": tmp.stat().st_size,
                    }
                    meta_tmp.write_text(json.dumps(meta))
                    faults.point("faiss-write")
                faults.point("faiss-swap")
        except OSError as e:
            raise VectorIndexError(f"cannot write vector index {dd.faiss}: {e.strerror or e}") from None

    @staticmethod
    def sidecar(data_dir: DataDir) -> dict[str, Any]:
        """What the saved index's sidecar says (generation, count, factory, params, recall...), or {}
        when it is missing, unreadable, or any field is missing or of the wrong type."""
        try:
            meta = json.loads(data_dir.faiss_meta.read_text())
        except (OSError, ValueError, UnicodeDecodeError):
            return {}
        if not isinstance(meta, dict):
            return {}
        for key, types in _SIDECAR.items():
            value = meta.get(key)
            if not isinstance(value, types) or isinstance(value, bool):
                return {}
        if meta["params"] and not _PARAMS.fullmatch(meta["params"]):
            return {}
        return meta

    @classmethod
    def load_file(cls, store: Store) -> VectorIndex:
        """Load the file and check it against the database; raise VectorIndexError if unusable."""
        faiss = _faiss()
        dd = store.data_dir
        if not dd.faiss.is_file() or not dd.faiss_meta.is_file():
            raise VectorIndexError("vector index file is missing")
        meta = cls.sidecar(dd)
        if not meta:
            raise VectorIndexError("vector index sidecar is unreadable")
        if meta.get("size") != dd.faiss.stat().st_size:
            raise VectorIndexError("vector index file does not match its sidecar (partial write?)")
        if meta.get("generation") != store.generation:
            raise VectorIndexError(
                f"vector index is stale (built at generation {meta.get('generation')}, "
                f"database is at {store.generation})"
            )
        if meta.get("model_id") != store.model_id or meta.get("dim") != store.dim:
            raise VectorIndexError("vector index was built with another model")
        try:
            index = faiss.read_index(str(dd.faiss))
        except Exception as e:
            raise VectorIndexError(f"vector index file is corrupt: {str(e).splitlines()[0][:120]}") from None
        if index.ntotal != store.count() or index.ntotal != meta.get("count") or index.d != store.dim:
            raise VectorIndexError(f"vector index holds {index.ntotal} vectors, database has {store.count()}")
        vi = cls(
            index,
            meta["model_id"],
            meta["dim"],
            meta["generation"],
            meta["factory"],
            meta["params"],
            meta["recall"],
            meta["tuned_n"],
            meta["rerank"],
        )
        if vi.params:
            faiss.ParameterSpace().set_index_parameters(vi.index, vi.params)
        return vi

    @classmethod
    def build(
        cls, store: Store, factory: str | None = None, *, target: float = ann.TARGET_RECALL, seed: int = 0
    ) -> VectorIndex:
        """Build from SQLite. ``factory``: a FAISS factory string, or None/"auto" for the store's
        setting (``pixseek index --index-type``), whose default picks by size and memory."""
        dim = store.dim
        if dim is None:
            raise VectorIndexError("database has no model yet")
        generation, n = store.generation, store.count()
        chosen = ann.chosen_factory(factory or store.meta("index_type"), n, dim)
        full = index_types.parse(chosen, dim)  # a setting is parsed before FAISS sees it, whoever saved it
        t0 = time.perf_counter()
        try:
            index = _faiss().index_factory(dim, full, _faiss().METRIC_INNER_PRODUCT)
            if not index.is_trained:
                cls._train(index, chosen, store, seed)
            for ids, vecs in store.iter_vectors():
                index.add_with_ids(vecs, ids)
        except RuntimeError as e:  # FAISS refused it for this corpus
            why = str(e).strip().splitlines()[0][:160] if str(e).strip() else type(e).__name__
            raise VectorIndexError(f"cannot build index type {chosen}: {why}") from None
        vi = cls(index, store.model_id or "", dim, generation, full, tuned_n=n)
        if ann.param_name(full):
            t = ann.tune_for(
                index, full, store, vi._rerank_fn(store) if vi.rerank > 1 else None, target=target, seed=seed
            )
            vi.params, vi.recall, vi.rerank_depth = t.params, t.recall, t.rerank
            log.info(
                "built %s over %d vectors in %.1f s: %s gives recall@10 %.3f on %d held-out queries",
                full,
                n,
                time.perf_counter() - t0,
                t.params,
                t.recall or 0,
                t.queries,
            )
        return vi

    @classmethod
    def build_usable(cls, store: Store) -> VectorIndex:
        """:meth:`build`, or exact search (with a notice) when the index type set for this index cannot
        be built on its vectors yet (too few to train) or at all (a setting saved by an older pixseek)."""
        try:
            return cls.build(store)
        except VectorIndexError as e:
            if (store.meta("index_type") or ann.AUTO) == ann.AUTO:
                raise
            log.warning("%s; searching exactly until it can be built", e)
            return cls.build(store, factory="Flat")

    @staticmethod
    def _train(index: Any, factory: str, store: Store, seed: int) -> None:
        """Train ``index`` (IVF k-means, codebooks) on a sample of the stored vectors; ``factory`` as
        the user wrote it, for the message."""
        nlist = _faiss().extract_index_ivf(index).nlist if "IVF" in factory else 256
        sample = store.sample_vectors(max(nlist * ann.TRAIN_PER_LIST, 10_000), seed=seed)
        if len(sample) < nlist:
            raise VectorIndexError(
                f"index type {factory} needs at least {nlist} vectors to train, the index has {len(sample)}",
                hint="use --index-type auto",
            )
        ann.train_index(index, sample)

    def _rerank_fn(self, store: Store):
        def rerank(queries: np.ndarray, ids: np.ndarray, k: int) -> np.ndarray:
            out = np.full((len(queries), k), -1, dtype=np.int64)
            for qi, (q, cand) in enumerate(zip(queries, ids)):
                got, vecs = store.vectors_for(c for c in cand if c >= 0)
                order = np.argsort(-(vecs @ q), kind="stable")[:k]
                out[qi, : len(order)] = got[order]
            return out

        return rerank

    def stale_for(self, store: Store) -> bool:
        """True when the index type or its tuning no longer fits the corpus (rebuild it)."""
        return self.dirty or ann.needs_rebuild(
            self.factory, self.tuned_n, store.meta("index_type"), store.count(), self.dim
        )

    @classmethod
    def open(cls, store: Store, *, rebuild: bool = False, save: bool = True) -> VectorIndex:
        """The index for ``store``: loaded if in sync, else rebuilt from SQLite and saved (``save=False``,
        for read commands: kept in memory only)."""
        if not rebuild:
            try:
                return cls.load_file(store)
            except VectorIndexError as e:
                if store.count() or store.data_dir.faiss.exists():
                    where = "" if save else " (in memory: `pixseek doctor` or `pixseek index` saves it)"
                    log.warning("%s; rebuilding it from the database%s", e, where)
        vi = cls.build_usable(store)
        if save:
            try:
                vi.save(store)
            except VectorIndexError as e:  # read-only data dir: search still works from memory
                log.warning("%s", e)
        return vi

    # --- updates ----------------------------------------------------------------------------------
    def remove(self, ids: Iterable[int]) -> None:
        ids = np.fromiter((int(i) for i in ids), dtype=np.int64)
        if len(ids):
            try:
                self.index.remove_ids(ids)
            except RuntimeError:  # HNSW cannot remove: searches skip the rows, the next save rebuilds
                self.dirty = True
            self._gpu = None

    def add(self, ids: np.ndarray, vecs: np.ndarray) -> None:
        if len(ids):
            self.index.add_with_ids(
                np.ascontiguousarray(vecs, dtype=np.float32), np.ascontiguousarray(ids, dtype=np.int64)
            )
            self._gpu = None

    # --- search -----------------------------------------------------------------------------------
    def _searcher(self):
        faiss = _faiss()
        if self._gpu is None:
            self._gpu = self.index
            if faiss.get_num_gpus() > 0 and self.ntotal > 0:
                try:
                    gpu = faiss.index_cpu_to_all_gpus(self.index)
                    if self.params:
                        faiss.GpuParameterSpace().set_index_parameters(gpu, self.params)
                    self._gpu = gpu
                except Exception as e:  # an index type without a GPU version: stay on CPU
                    log.info("vector search stays on CPU: %s", e)
        return self._gpu

    def search(self, queries: np.ndarray, k: int, *, ids: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """(scores[nq, k], ids[nq, k]); ids of -1 mean 'no result' (fewer than k vectors).

        ``ids``: search only among these row ids (a FAISS ``IDSelectorBatch``, applied inside the
        search on the CPU index, since GPU indexes take no selector).
        """
        q = np.ascontiguousarray(np.atleast_2d(queries), dtype=np.float32)
        k = max(1, min(int(k), max(self.ntotal, 1)))
        if ids is None:
            searcher = self._searcher() if k <= GPU_MAX_K else self.index
            with _threads_for(len(q)):
                return searcher.search(q, k)
        faiss = _faiss()
        sel = faiss.IDSelectorBatch(np.ascontiguousarray(ids, dtype=np.int64))
        name, _, value = self.params.partition("=")
        if name == "nprobe":
            params = faiss.SearchParametersIVF(sel=sel, nprobe=int(value))
        elif name == "efSearch":
            params = faiss.SearchParametersHNSW(sel=sel, efSearch=int(value))
        else:
            params = faiss.SearchParameters(sel=sel)
        with _threads_for(len(q)):
            return self.index.search(q, k, params=params)

    def reconstruct(self, image_id: int) -> np.ndarray:
        return self.index.reconstruct(int(image_id))

    @property
    def on_gpu(self) -> bool:
        return self._searcher() is not self.index
