"""Every pair of pictures whose vectors score at least a threshold: an exact range search, in blocks.

The FAISS cache cannot answer this: a range search over compressed codes (IVF-PQ, the choice for large
indexes) is approximate, and over the fast-scan variant quietly wrong. So the search runs over the
vectors in SQLite, the truth: they are read in blocks of ``block`` ids, and each block is scored against
itself and every later block (a flat inner-product scan, ``chunk`` rows at a time, in BLAS), keeping the
pairs at or above the threshold. Memory stays bounded whatever the size of the index: the blocks held at
once (at most ``cache_bytes`` of them, else read again), one ``chunk`` x ``block`` score matrix, and the
pairs found. A threshold so low that more than ``max_pairs`` pairs pass is refused, not run out of memory.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from pixseek.errors import DuplicatesError
from pixseek.store import Store

BLOCK = 16384  # ids per block read from SQLite (48 MiB of 768-d vectors)
CHUNK = 1024  # rows scored at once against a block: a 64 MiB score matrix
CACHE_BYTES = 512 << 20  # blocks kept between uses: an index of ~170k 768-d vectors is read once
MAX_PAIRS = 20_000_000  # ~400 MB of pairs: beyond it the threshold is no duplicate threshold


@dataclass(frozen=True)
class Pairs:
    """Pairs of ids (``a`` < ``b``) and their cosine scores, sorted by (a, b)."""

    a: np.ndarray
    b: np.ndarray
    score: np.ndarray

    def __len__(self) -> int:
        return len(self.a)


class _Blocks:
    """The vectors of ``ids`` (sorted) in blocks of ``size``, read from SQLite on demand, the most recently
    used kept up to ``cache_bytes``."""

    def __init__(self, store: Store, ids: np.ndarray, size: int, cache_bytes: int):
        self.store, self.ids, self.size = store, ids, size
        self.cache: OrderedDict[int, tuple[np.ndarray, np.ndarray]] = OrderedDict()
        self.cache_bytes = cache_bytes

    def __len__(self) -> int:
        return (len(self.ids) + self.size - 1) // self.size

    def __getitem__(self, k: int) -> tuple[np.ndarray, np.ndarray]:
        if k in self.cache:
            self.cache.move_to_end(k)
            return self.cache[k]
        want = self.ids[k * self.size : (k + 1) * self.size]
        got, vecs = self.store.vectors_between(int(want[0]), int(want[-1]))
        keep = np.isin(got, want)
        block = (got[keep], np.ascontiguousarray(vecs[keep]))
        self.cache[k] = block
        while len(self.cache) > 1 and sum(v.nbytes for _, v in self.cache.values()) > self.cache_bytes:
            self.cache.popitem(last=False)
        return block


def close_pairs(
    store: Store,
    ids: np.ndarray,
    threshold: float,
    *,
    block: int = BLOCK,
    chunk: int = CHUNK,
    cache_bytes: int = CACHE_BYTES,
    max_pairs: int = MAX_PAIRS,
    accept: Callable[[np.ndarray, np.ndarray, np.ndarray], np.ndarray] | None = None,
    progress: Callable[[int], None] | None = None,
) -> Pairs:
    """Every pair among ``ids`` whose vectors score ``>= threshold`` (cosine: the vectors are unit) and,
    if given, that ``accept(ids_a, ids_b, scores)`` (a boolean mask) keeps: a second test applied as the
    pairs are found, so that a low threshold with a strict test never holds the loose pairs.

    ``progress``: called with the number of score rows done after each chunk (the total is
    :func:`work`)."""
    ids = np.unique(np.asarray(ids, dtype=np.int64))
    blocks = _Blocks(store, ids, max(1, block), cache_bytes)
    found_a: list[np.ndarray] = []
    found_b: list[np.ndarray] = []
    found_s: list[np.ndarray] = []
    total = 0
    for i in range(len(blocks)):
        ids_i, vecs_i = blocks[i]
        for j in range(i, len(blocks)):
            ids_j, vecs_j = blocks[j] if j != i else (ids_i, vecs_i)
            for start in range(0, len(ids_i), chunk):
                scores = vecs_i[start : start + chunk] @ vecs_j.T
                if j == i:  # each pair once: only columns after the row's own
                    rows = np.arange(start, start + len(scores))[:, None]
                    scores[np.arange(len(ids_j))[None, :] <= rows] = -np.inf
                r, c = np.nonzero(scores >= threshold)
                a, b, s = ids_i[start + r], ids_j[c], scores[r, c].astype(np.float32)
                if accept is not None and len(a):
                    ok = accept(a, b, s)
                    a, b, s = a[ok], b[ok], s[ok]
                if len(a):
                    found_a.append(a)
                    found_b.append(b)
                    found_s.append(s)
                    total += len(a)
                    if total > max_pairs:
                        raise DuplicatesError(
                            f"more than {max_pairs:,} pairs of pictures score {threshold:.3f} or more: that "
                            "threshold groups pictures that merely look alike",
                            hint="raise --threshold (or leave it out for the model's own)",
                        )
                if progress is not None:
                    progress(len(scores))
    if not found_a:
        empty = np.zeros(0, np.int64)
        return Pairs(empty, empty.copy(), np.zeros(0, np.float32))
    a, b, s = np.concatenate(found_a), np.concatenate(found_b), np.concatenate(found_s)
    order = np.lexsort((b, a))
    return Pairs(a[order], b[order], s[order])


def work(n: int, block: int = BLOCK) -> int:
    """The score rows :func:`close_pairs` goes through for ``n`` ids (for a progress bar's total)."""
    blocks = (n + block - 1) // block
    return sum(min(block, n - i * block) * (blocks - i) for i in range(blocks))
