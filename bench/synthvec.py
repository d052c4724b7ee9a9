"""Synthetic CLIP-like image vectors for scale benchmarks, made on demand by row id (never stored).

A vector is a pure function of its row id and the seed, so a 10M-row corpus is generated chunk by chunk
(bounded memory, no file), and any row can be made again for a re-rank or a check:

* ``C`` cluster centres on the unit sphere around a shared mean direction (CLIP image vectors sit in a
  cone: random pairs have cosine ~0.5), spread with a power-law spectrum (variance of the i-th of ``dim``
  random orthogonal directions ~ 1/(i+1)), so the data has the low effective dimension of real
  embeddings rather than isotropic noise, which would make every neighbour equally far;
* row ``i`` belongs to centre ``floor(C * u(i)**1.5)`` (skewed cluster sizes, as real collections
  have: many near-duplicate product shots, few of a rare subject) and is its centre plus noise of the
  same spectrum, normalised;
* "text-like" queries are centres pushed along a fixed direction away from the image cone (CLIP's
  modality gap: a caption's best matches score ~0.3, not ~0.9), plus noise.

Randomness is counter-based (a SplitMix64 hash of seed, row id and coordinate, then Box-Muller), so
chunking does not change a vector. Used by ``bench/scale.py`` and ``bench/scale_sqlite.py``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

BLOCK = 16  # rows made by one generator: a row is re-made with its 15 neighbours (~40 us)
RANK = 128  # noise directions: the top of a 1/(i+1) spectrum over ``dim`` (real embeddings have
# an effective dimension of tens to low hundreds, not ``dim``)


def normals(ids: np.ndarray, n: int, salt: int) -> np.ndarray:
    """float32[len(ids), n] standard normals, a function of (salt, row id) only: row ``i`` is row
    ``i % BLOCK`` of the block made by a Philox generator keyed by (salt, i // BLOCK)."""
    ids = np.asarray(ids, dtype=np.int64)
    out = np.empty((len(ids), n), dtype=np.float32)
    blocks = ids // BLOCK
    order = np.argsort(blocks, kind="stable")
    sorted_blocks = blocks[order]
    starts = np.flatnonzero(np.r_[True, sorted_blocks[1:] != sorted_blocks[:-1]]) if len(ids) else []
    for lo, hi in zip(starts, [*starts[1:], len(ids)]):
        rows = order[lo:hi]
        gen = np.random.Generator(np.random.Philox(key=[int(sorted_blocks[lo]), salt]))
        out[rows] = gen.standard_normal((BLOCK, n), dtype=np.float32)[ids[rows] % BLOCK]
    return out


def uniforms(ids: np.ndarray, salt: int) -> np.ndarray:
    """float64[len(ids)] in [0, 1), a function of (salt, row id) only."""
    x = np.asarray(ids, dtype=np.uint64) * np.uint64(0x9E3779B97F4A7C15) + np.uint64(salt)
    x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return ((x ^ (x >> np.uint64(31))) >> np.uint64(11)).astype(np.float64) / float(1 << 53)


def _unit(x: np.ndarray) -> np.ndarray:
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


@dataclass
class Corpus:
    """``n`` synthetic image vectors of size ``dim``; rows are numbered 1..n like SQLite row ids."""

    n: int
    dim: int = 512
    centres: int = 4096
    seed: int = 0
    mean: float = 1.0  # weight of the shared direction (the image cone)
    spread: float = 1.2  # centres' spread around it
    noise: float = 0.55  # a row's spread around its centre
    gap: float = 1.6  # text-like queries: push away from the image cone
    _basis: np.ndarray = field(init=False, repr=False)
    _noise_basis: np.ndarray = field(init=False, repr=False)
    _centres: np.ndarray = field(init=False, repr=False)
    _mean_dir: np.ndarray = field(init=False, repr=False)
    _gap_dir: np.ndarray = field(init=False, repr=False)

    def __post_init__(self) -> None:
        rng = np.random.default_rng(self.seed)
        q, _ = np.linalg.qr(rng.standard_normal((self.dim, self.dim)))
        scale = np.sqrt(1.0 / np.arange(1, self.dim + 1))
        scale /= np.linalg.norm(scale)  # unit expected norm
        self._basis = (scale[:, None] * q.T).astype(np.float32)  # z @ basis: power-law spectrum
        top = scale[:RANK] / np.linalg.norm(scale[:RANK])  # a row's noise: the top RANK directions
        self._noise_basis = (top[:, None] * q.T[:RANK]).astype(np.float32)
        dirs = _unit(rng.standard_normal((2, self.dim)))
        self._mean_dir, self._gap_dir = dirs[0], dirs[1]
        z = rng.standard_normal((self.centres, self.dim)).astype(np.float32)
        self._centres = _unit(self.mean * self._mean_dir + self.spread * (z @ self._basis))

    def cluster_of(self, ids: np.ndarray) -> np.ndarray:
        u = uniforms(np.asarray(ids), self.seed * 7 + 1)
        return np.minimum((self.centres * u**1.5).astype(np.int64), self.centres - 1)

    def vectors(self, ids: np.ndarray) -> np.ndarray:
        """float32[len(ids), dim], unit length: the vectors of these row ids (any order, any chunking)."""
        ids = np.asarray(ids, dtype=np.int64)
        z = normals(ids, RANK, self.seed * 7 + 3)
        return _unit(self._centres[self.cluster_of(ids)] + self.noise * (z @ self._noise_basis))

    def chunks(self, batch: int = 65536, start: int = 1, stop: int | None = None):
        """(ids, vectors) for rows start..stop-1 (default: all), ``batch`` rows at a time."""
        stop = self.n + 1 if stop is None else stop
        for lo in range(start, stop, batch):
            ids = np.arange(lo, min(lo + batch, stop), dtype=np.int64)
            yield ids, self.vectors(ids)

    def image_queries(self, count: int) -> np.ndarray:
        """Held-out image vectors (rows beyond the corpus: same distribution, not in it)."""
        return self.vectors(np.arange(self.n + 1_000_001, self.n + 1_000_001 + count))

    def text_queries(self, count: int, salt: int = 0) -> np.ndarray:
        """Held-out "text-like" queries: a centre pushed across the modality gap, plus noise."""
        ids = np.arange(count, dtype=np.int64) + 10**12 + salt * count
        k = self.cluster_of(ids)
        z = normals(ids, RANK, self.seed * 7 + 5)
        return _unit(self._centres[k] + self.gap * self._gap_dir + 1.5 * self.noise * (z @ self._noise_basis))
