"""The FAISS cache of the vectors in SQLite, keyed by SQLite row id.

The index file is written atomically (temp file + ``os.replace``) with a JSON sidecar naming the
database generation, model id, dim and count it was built from. On load both are checked against
the database; a missing, corrupt or stale file is rebuilt from SQLite (with a logged notice). With
GPUs present, searches run on a GPU copy of the index.
"""
from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass
from typing import Iterable

import numpy as np

from .errors import VectorIndexError
from .store import Store

log = logging.getLogger("pixseek")
DEFAULT_FACTORY = "IDMap2,Flat"


def _faiss():
    import faiss

    return faiss


def new_index(dim: int, factory: str = DEFAULT_FACTORY):
    faiss = _faiss()
    index = faiss.index_factory(dim, factory, faiss.METRIC_INNER_PRODUCT)
    return index


@dataclass
class VectorIndex:
    index: object                 # faiss CPU index (IDMap2 over flat IP)
    model_id: str
    dim: int
    generation: int
    factory: str = DEFAULT_FACTORY
    _gpu: object = None

    @property
    def ntotal(self) -> int:
        return int(self.index.ntotal)

    # --- persistence ------------------------------------------------------------------------------
    def save(self, store: Store) -> None:
        faiss = _faiss()
        dd = store.data_dir
        tmp = dd.faiss.with_name(f".{dd.faiss.name}.{os.getpid()}.tmp")
        meta_tmp = dd.faiss_meta.with_name(f".{dd.faiss_meta.name}.{os.getpid()}.tmp")
        try:
            faiss.write_index(self.index, str(tmp))
            with open(tmp, "rb") as f:
                os.fsync(f.fileno())
            meta = {"generation": self.generation, "model_id": self.model_id, "dim": self.dim,
                    "count": self.ntotal, "factory": self.factory, "size": tmp.stat().st_size}
            meta_tmp.write_text(json.dumps(meta))
            # The sidecar is replaced last: a crash in between leaves a file whose size or
            # generation does not match, which load() treats as stale and rebuilds.
            os.replace(tmp, dd.faiss)
            os.replace(meta_tmp, dd.faiss_meta)
        except OSError as e:
            for p in (tmp, meta_tmp):
                try:
                    p.unlink()
                except OSError:
                    pass
            raise VectorIndexError(f"cannot write vector index {dd.faiss}: {e.strerror or e}") from None

    @classmethod
    def load_file(cls, store: Store) -> "VectorIndex":
        """Load the file and check it against the database; raise VectorIndexError if unusable."""
        faiss = _faiss()
        dd = store.data_dir
        if not dd.faiss.is_file() or not dd.faiss_meta.is_file():
            raise VectorIndexError("vector index file is missing")
        try:
            meta = json.loads(dd.faiss_meta.read_text())
        except (OSError, ValueError):
            raise VectorIndexError("vector index sidecar is unreadable") from None
        if meta.get("size") != dd.faiss.stat().st_size:
            raise VectorIndexError("vector index file does not match its sidecar (partial write?)")
        if meta.get("generation") != store.generation:
            raise VectorIndexError(
                f"vector index is stale (built at generation {meta.get('generation')}, "
                f"database is at {store.generation})")
        if meta.get("model_id") != store.model_id or meta.get("dim") != store.dim:
            raise VectorIndexError("vector index was built with another model")
        try:
            index = faiss.read_index(str(dd.faiss))
        except Exception as e:
            raise VectorIndexError(f"vector index file is corrupt: {str(e).splitlines()[0][:120]}") from None
        if index.ntotal != store.count() or index.ntotal != meta.get("count") or index.d != store.dim:
            raise VectorIndexError(
                f"vector index holds {index.ntotal} vectors, database has {store.count()}")
        return cls(index, meta["model_id"], int(meta["dim"]), int(meta["generation"]),
                   meta.get("factory", DEFAULT_FACTORY))

    @classmethod
    def build(cls, store: Store, factory: str = DEFAULT_FACTORY) -> "VectorIndex":
        dim = store.dim
        if dim is None:
            raise VectorIndexError("database has no model yet")
        index = new_index(dim, factory)
        generation = store.generation
        for ids, vecs in store.iter_vectors():
            index.add_with_ids(vecs, ids)
        return cls(index, store.model_id or "", dim, generation, factory)

    @classmethod
    def open(cls, store: Store, *, rebuild: bool = False, save: bool = True) -> "VectorIndex":
        """The index for ``store``: loaded if in sync, else rebuilt from SQLite (and saved)."""
        if not rebuild:
            try:
                return cls.load_file(store)
            except VectorIndexError as e:
                if store.count() or store.data_dir.faiss.exists():
                    log.warning("%s; rebuilding it from the database", e)
        vi = cls.build(store)
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
            self.index.remove_ids(ids)
            self._gpu = None

    def add(self, ids: np.ndarray, vecs: np.ndarray) -> None:
        if len(ids):
            self.index.add_with_ids(np.ascontiguousarray(vecs, dtype=np.float32),
                                    np.ascontiguousarray(ids, dtype=np.int64))
            self._gpu = None

    # --- search -----------------------------------------------------------------------------------
    def _searcher(self):
        faiss = _faiss()
        if self._gpu is None:
            self._gpu = self.index
            if faiss.get_num_gpus() > 0 and self.ntotal > 0:
                try:
                    self._gpu = faiss.index_cpu_to_all_gpus(self.index)
                except Exception as e:  # an index type without a GPU version: stay on CPU
                    log.info("vector search stays on CPU: %s", e)
        return self._gpu

    def search(self, queries: np.ndarray, k: int, *, ids: np.ndarray | None = None
               ) -> tuple[np.ndarray, np.ndarray]:
        """(scores[nq, k], ids[nq, k]); ids of -1 mean 'no result' (fewer than k vectors).

        ``ids``: search only among these row ids (a FAISS ``IDSelectorBatch``, applied inside the
        search on the CPU index, since GPU indexes take no selector).
        """
        q = np.ascontiguousarray(np.atleast_2d(queries), dtype=np.float32)
        k = max(1, min(int(k), max(self.ntotal, 1)))
        if ids is None:
            return self._searcher().search(q, k)
        faiss = _faiss()
        sel = faiss.IDSelectorBatch(np.ascontiguousarray(ids, dtype=np.int64))
        return self.index.search(q, k, params=faiss.SearchParameters(sel=sel))

    def reconstruct(self, image_id: int) -> np.ndarray:
        return self.index.reconstruct(int(image_id))

    @property
    def on_gpu(self) -> bool:
        return self._searcher() is not self.index
