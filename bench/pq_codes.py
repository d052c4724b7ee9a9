"""How many 4-bit PQ sub-quantizers IVF-PQ needs: recall@10 by re-rank depth for each code size.

    nice .venv/bin/python bench/pq_codes.py [--n 1000000] [--factories "IVF4096,PQ128x4fs IVF4096,PQ256x4fs"]

The same synthetic 512-d vectors and held-out queries as ``bench/scale.py`` (``bench/synthvec.py``, made in
RAM: 1M x 512 float32 is 2 GB), each index trained and filled by pixseek's own ``ann.train_index`` on a
sample of 40 vectors a list, then searched as ``search.engine`` does: k x depth candidates from the codes,
re-ranked exactly with the float vectors. Prints recall@10 of text-like / image queries for each nprobe
and depth (depth 1: the codes alone) and FAISS's time for 320 candidates. This is what picked
``auto``'s sub-quantizer count (``ann.choose_factory``).
"""

from __future__ import annotations

import argparse
import time

import numpy as np
from common import header, table
from synthvec import Corpus

from pixseek.store import ann

DEPTHS = (1, 8, 16, 32, 64)


def reranked(index, queries: np.ndarray, vectors: np.ndarray, depth: int, k: int = 10) -> np.ndarray:
    """Top-k row ids (1-based) after re-scoring k x depth candidates exactly."""
    _, ids = index.search(queries, k * depth)
    scores = np.einsum("qd,qkd->qk", queries, vectors[np.maximum(ids, 1) - 1])
    scores[ids < 0] = -np.inf
    return np.take_along_axis(ids, np.argsort(-scores, axis=1)[:, :k], axis=1)


def measure(factory: str, vectors: np.ndarray, sets: dict, truth: dict, nprobes: list[int]) -> list[list]:
    import faiss

    index = faiss.index_factory(vectors.shape[1], factory, faiss.METRIC_INNER_PRODUCT)
    n = len(vectors)
    rng = np.random.default_rng(0)
    sample = vectors[rng.choice(n, min(n, ann.TRAIN_PER_LIST * faiss.extract_index_ivf(index).nlist), replace=False)]
    t0 = time.perf_counter()
    ann.train_index(index, sample)
    train = time.perf_counter() - t0
    t0 = time.perf_counter()
    index.add_with_ids(vectors, np.arange(1, n + 1, dtype=np.int64))
    add = time.perf_counter() - t0
    print(f"{factory}: train {train:.0f} s, add {add:.0f} s", flush=True)
    rows = []
    both = np.concatenate(list(sets.values()))
    for nprobe in nprobes:
        faiss.ParameterSpace().set_index_parameters(index, f"nprobe={nprobe}")
        cells = []
        for depth in DEPTHS:
            r = [ann.recall_at(reranked(index, q, vectors, depth), truth[name]) for name, q in sets.items()]
            cells.append(" / ".join(f"{x:.3f}" for x in r))
        t0 = time.perf_counter()
        index.search(both, 320)
        ms = (time.perf_counter() - t0) * 1000 / len(both)
        rows.append([factory, nprobe, *cells, f"{ms:.2f}", f"{train:.0f} / {add:.0f}"])
        print(rows[-1], flush=True)
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--n", type=int, default=1_000_000)
    ap.add_argument("--factories", default="IVF4096,PQ128x4fs IVF4096,PQ256x4fs")
    ap.add_argument("--nprobes", default="8,16,32")
    a = ap.parse_args()
    corpus = Corpus(n=a.n, seed=0)
    vectors = np.concatenate([v for _, v in corpus.chunks()])
    sets = {"text": corpus.text_queries(100), "image": corpus.image_queries(100)}
    ids = np.arange(1, a.n + 1, dtype=np.int64)
    truth = {name: ann.exact_topk([(ids, vectors)], q, 10) for name, q in sets.items()}
    rows = []
    for factory in a.factories.split():
        rows += measure(factory, vectors, sets, truth, [int(x) for x in a.nprobes.split(",")])
    print(header(f"4-bit PQ code sizes at {a.n:,} synthetic 512-d vectors"))
    heads = [
        "index",
        "nprobe",
        *(f"recall@10 text / image, {'codes alone' if d == 1 else f'{d} x 10'}" for d in DEPTHS),
    ]
    print(table([*heads, "FAISS ms for 320", "train / add s"], rows))


if __name__ == "__main__":
    main()
