"""Choosing, training and tuning the FAISS index: exact while that is fast, ANN beyond, by measured recall.

All of ANN tuning lives here; :mod:`pixseek.store.vectors` keeps the chosen index on disk and searches it.

* :func:`choose_factory` picks the index type from the corpus size and a memory budget: exact flat
  inner product up to ``FLAT_MAX`` vectors, then IVF with float codes while they fit the budget, then
  IVF with 8-bit scalar codes, then IVF-PQ. Any FAISS ``index_factory`` string may be given instead.
* :func:`tune` picks the search parameter (``nprobe`` for IVF, ``efSearch`` for HNSW) as the smallest
  value whose recall@10 against exact search, on held-out query vectors (text prompts, and image
  vectors), reaches the target. Compressed codes are measured the way they are searched: candidates
  re-ranked exactly with the float vectors from SQLite.
* The held-out text queries are ``prompts.txt`` (package data), encoded by the index's model when an
  index run needs them (:func:`save_tuning_queries`); image queries are sampled from the index.
* On a machine with GPUs, IVF training (k-means) and the exact ground truth run on the GPU.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib import resources
from typing import TYPE_CHECKING, Any

import numpy as np

from pixseek import settings
from pixseek.fileio import atomic_path

if TYPE_CHECKING:
    from .database import Store
    from .paths import DataDir

log = logging.getLogger("pixseek")
AUTO = "auto"

FLAT_MAX = 200_000  # exact search up to here: ~10 ms a query for 256-d vectors on 2 cores
TARGET_RECALL = 0.95
RERANK = 4  # compressed codes: fetch k x RERANK candidates, re-score them exactly
RERANKS = (4, 8, 16, 32, 64)  # ... deeper when the codes are too coarse for the target at RERANK
MAX_RERANK_ROWS = 20_000  # a query re-scores at most this many candidates (~40 MB of 512-d vectors)
TRAIN_PER_LIST = 40  # k-means training points per inverted list (FAISS wants >= 39)
KMEANS_ITERATIONS = 10  # enough for IVF assignment quality; 2.5x cheaper than FAISS's 25
NPROBES = (1, 2, 4, 8, 12, 16, 24, 32, 48, 64, 96, 128, 192, 256, 384, 512, 1024)
ID_BYTES = 8  # an IVF list keeps each vector's int64 row id beside its code
EF_SEARCHES = (16, 24, 32, 48, 64, 96, 128, 192, 256, 384, 512, 1024)


def memory_budget() -> int:
    """Bytes the vector index may take in RAM: a quarter of physical memory ($PIXSEEK_INDEX_MEMORY)."""
    env = settings.index_memory()
    if env is not None:
        return env
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") // 4
    except (ValueError, OSError):
        return 4 << 30


def nlist_for(n: int) -> int:
    """Inverted lists: about 4·sqrt(n), a power of two, at least 16."""
    return max(16, 2 ** round(math.log2(4 * math.sqrt(max(n, 1)))))


def choose_factory(n: int, dim: int, budget: int | None = None) -> str:
    """The index type for ``n`` vectors of size ``dim`` within ``budget`` bytes of RAM. An IVF index
    holds each vector's code and its 8-byte row id (``ID_BYTES``): at 10^8 vectors the ids alone are
    0.8 GB, as much as 8-byte PQ codes (docs/scale.md)."""
    budget = memory_budget() if budget is None else budget
    if n <= FLAT_MAX:
        return "Flat"
    nlist = nlist_for(n)
    if n * (dim * 4 + ID_BYTES) <= budget:
        return f"IVF{nlist},Flat"
    if n * (dim + ID_BYTES) <= budget:
        return f"IVF{nlist},SQ8"
    # 4-bit fast-scan PQ: m/2 bytes a vector, SIMD-scanned; trains in seconds where 8-bit PQ takes
    # minutes on a few cores (measured: 0.9 s vs 66 s for 20k 256-d vectors on 2 cores). The most
    # sub-vectors that fit, down to 2 dimensions each: at 1M 512-d vectors PQ256x4fs's codes alone
    # find 0.57-0.60 of the true top 10 of text-like queries against PQ128x4fs's 0.40, and reach 0.95
    # with 80 candidates re-ranked where PQ128x4fs needs 640 (bench/RESULTS.md, "A 10M-vector index").
    fits = (
        m for m in (256, 128, 64, 32, 16, 8) if dim % m == 0 and m <= dim // 2 and n * (m // 2 + ID_BYTES) <= budget
    )
    return f"IVF{nlist},PQ{next(fits, 8)}x4fs"


def normalise_factory(factory: str) -> str:
    """'IVF1024,Flat' -> 'IDMap2,IVF1024,Flat' (ids must be SQLite row ids); IVF indexes carry ids."""
    f = factory.strip()
    if f.lower() == "flat":
        f = "Flat"
    if f.startswith("IDMap"):
        return f
    return f if f.startswith("IVF") else "IDMap2," + f


def chosen_factory(setting: str | None, n: int, dim: int) -> str:
    """The factory an index of ``n`` vectors gets under the index-type ``setting`` (as the user wrote it)."""
    requested = setting or AUTO
    return choose_factory(n, dim) if requested == AUTO else requested


def wanted_factory(setting: str | None, n: int, dim: int) -> str:
    """:func:`chosen_factory`, normalised as the index is built (ids are SQLite row ids)."""
    return normalise_factory(chosen_factory(setting, n, dim))


def needs_rebuild(factory: str, tuned_n: int, setting: str | None, n: int, dim: int) -> bool:
    """True when the index type or its tuning no longer fits a corpus of ``n`` vectors: another type is
    wanted (or, auto, more inverted lists), or the corpus halved or doubled since tuning."""
    if wanted_factory(setting, n, dim) != factory:
        return True
    return bool(tuned_n and param_name(factory) and not tuned_n / 2 <= n <= tuned_n * 2)


def is_compressed(factory: str) -> bool:
    return bool(re.search(r"(PQ\d|SQ\d|SQfp16|LSH|RQ|LSQ)", factory))


def param_name(factory: str) -> str | None:
    if "IVF" in factory:
        return "nprobe"
    if "HNSW" in factory:
        return "efSearch"
    return None


@dataclass
class Tuning:
    params: str = ""  # a ParameterSpace string, e.g. "nprobe=16"
    rerank: int = 1  # candidates per result re-scored exactly (compressed codes)
    recall: float | None = None  # recall@10 vs exact, measured on the tuning queries
    queries: int = 0
    table: list = field(default_factory=list)  # (value, recall, ms/query) tried


def exact_topk(blocks: Any, queries: np.ndarray, k: int) -> np.ndarray:
    """Row ids of the exact top-k by inner product over ``(ids, vectors)`` blocks (faiss contrib's
    blockwise ground truth: bounded memory, on the GPU when there is one)."""
    import faiss
    from faiss.contrib.exhaustive_search import knn_ground_truth

    all_ids: list[np.ndarray] = []

    def vectors() -> Any:
        for ids, vecs in blocks:
            all_ids.append(ids)
            yield vecs

    _, pos = knn_ground_truth(
        np.ascontiguousarray(queries, dtype=np.float32), vectors(), k, metric_type=faiss.METRIC_INNER_PRODUCT
    )
    ids = np.concatenate(all_ids) if all_ids else np.zeros(1, np.int64)
    return np.where(pos >= 0, ids[np.maximum(pos, 0)], -1)


def recall_at(found: np.ndarray, truth: np.ndarray, k: int = 10) -> float:
    """Share of the true top-k that ``found`` holds. Not faiss contrib's ``knn_intersection_measure``:
    that counts a shared -1 ("no result", a corpus smaller than k) as a hit and needs equal widths."""
    hits = sum(len(set(f[:k]) & set(t[:k]) - {-1}) for f, t in zip(found, truth))
    total = sum(len(set(t[:k]) - {-1}) for t in truth)
    return hits / max(total, 1)


def train_index(index, sample: np.ndarray) -> None:
    """Train (IVF k-means, PQ/SQ codebooks), on the GPU when there is one."""
    import faiss

    if index.is_trained:
        return
    try:
        faiss.extract_index_ivf(index).cp.niter = KMEANS_ITERATIONS
    except (RuntimeError, AttributeError):
        pass  # not an IVF index
    if faiss.get_num_gpus() > 0:
        try:
            ivf = faiss.extract_index_ivf(index)
            clus = faiss.index_cpu_to_all_gpus(faiss.IndexFlatIP(ivf.d))
            ivf.clustering_index = clus
        except Exception as e:  # no IVF, or no GPU build of this kind: train on the CPU
            log.info("index training stays on CPU: %s", e)
    try:
        index.train(np.ascontiguousarray(sample, dtype=np.float32))
    finally:
        try:  # the GPU assignment index lives only as long as this call: no dangling pointer after it
            faiss.extract_index_ivf(index).clustering_index = None
        except (RuntimeError, AttributeError):
            pass


def tune(
    index: Any,
    factory: str,
    query_sets: list[tuple[np.ndarray, np.ndarray]],
    rerank_fn: Callable[[np.ndarray, np.ndarray, int], np.ndarray] | None = None,
    k: int = 10,
    target: float = TARGET_RECALL,
) -> Tuning:
    """Smallest nprobe / efSearch whose recall@k reaches ``target`` on *every* query set (text
    prompts and image vectors are measured apart: text queries sit farther from the image vectors
    and are the ones a coarse index fails first), or the best value found."""
    import faiss

    name = param_name(factory)
    query_sets = [(q, t) for q, t in query_sets if len(q)]
    t = Tuning(queries=sum(len(q) for q, _ in query_sets))
    if name is None or not query_sets:
        return t
    values = list(NPROBES if name == "nprobe" else EF_SEARCHES)
    if name == "nprobe":
        nlist = faiss.extract_index_ivf(index).nlist
        values = [v for v in values if v <= nlist] or [nlist]
    ps = faiss.ParameterSpace()
    best = (1, values[0], -1.0)  # (re-rank depth, parameter value, recall): the best seen so far
    for depth in RERANKS if rerank_fn is not None else (1,):
        for v in values:
            ps.set_index_parameters(index, f"{name}={v}")
            recalls, n, t0 = [], 0, time.perf_counter()
            for queries, truth in query_sets:
                _, ids = index.search(queries, k * depth)
                if rerank_fn is not None:
                    ids = rerank_fn(queries, ids, k)
                recalls.append(recall_at(ids, truth, k))
                n += len(queries)
            r = min(recalls)
            t.table.append((depth, v, [round(x, 4) for x in recalls], round((time.perf_counter() - t0) * 1000 / n, 3)))
            if r > best[2] + 1e-9:
                best = (depth, v, r)
            if r >= target:
                break
        if best[2] >= target:
            break
    t.rerank, t.params, t.recall = best[0], f"{name}={best[1]}", best[2]
    ps.set_index_parameters(index, t.params)
    return t


# --- tuning queries -------------------------------------------------------------------------------


def prompts() -> list[str]:
    """The held-out text prompts ANN search is tuned on (package data ``prompts.txt``)."""
    text = resources.files("pixseek.store").joinpath("prompts.txt").read_text(encoding="utf-8")
    return [ln.strip() for ln in text.splitlines() if ln.strip() and not ln.startswith("#")]


def save_tuning_queries(data_dir: DataDir, encode: Callable[[list[str]], np.ndarray]) -> None:
    """Store the index model's vectors of :func:`prompts` in the data dir, once (``encode`` runs only
    when they are missing)."""
    path = data_dir.tuning_queries
    if path.exists():
        return
    with contextlib.suppress(OSError), atomic_path(path, keep_suffix=True) as tmp:
        np.save(tmp, np.asarray(encode(prompts()), dtype=np.float32))


def saved_prompt_vectors(store: Store) -> np.ndarray | None:
    """The index model's vectors of :func:`prompts` as the indexer saved them, or None when they are
    missing, unreadable or of another vector size than the index's."""
    try:
        text = np.load(store.data_dir.tuning_queries)
    except (OSError, ValueError):
        return None
    if text.ndim != 2 or not len(text) or text.shape[1] != store.dim:
        return None
    return np.ascontiguousarray(text, dtype=np.float32)


def tuning_queries(store: Store, n_images: int = 200, seed: int = 0) -> list[np.ndarray]:
    """Held-out query sets for tuning: the model's vectors for the text prompts (saved by the indexer),
    and image vectors sampled from the index (the "more like this" case)."""
    text = saved_prompt_vectors(store)
    sets = [] if text is None else [text]
    sets.append(np.ascontiguousarray(store.sample_vectors(n_images, seed=seed + 1), dtype=np.float32))
    return sets


def tune_for(index: Any, factory: str, store: Store, rerank_fn: Any, *, target: float, seed: int) -> Tuning:
    """Tune ``index`` (built from ``store``) on its held-out query sets against exact search."""
    sets = [(q, exact_topk(store.iter_vectors(), q, 10)) for q in tuning_queries(store, seed=seed)]
    return tune(index, factory, sets, rerank_fn, target=target)
