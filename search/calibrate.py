"""What a score means in this index: strong / good / weak, calibrated per model and index.

A cosine score means nothing to a user: its range differs by model (good text matches score about 0.3
with ``pixseek-photo``, 0.5 to 0.7 with ``pixseek-emoji``, where a caption's scores over pictures it
does not describe spread so wide that the best of a few hundred reaches 0.45). So the index itself
sets the scale, from background distributions of held-out queries:

* **text**: the held-out caption prompts (``store/prompts.txt``, the ANN tuning queries the indexer
  saves as vectors; :func:`pixseek.store.ann.saved_prompt_vectors`) scored against a seeded sample of
  the index's pictures;
* **image**: sampled pictures scored against the same sample, without self pairs or identical content.

A search shows a query's *best* matches, and the best of N pictures is far above a random pair's
score even when nothing fits (the best of 345 sits at the 99.7th percentile of that query's scores:
a "1 in 100 random pairs" threshold calls gibberish a good match). So the scale is read from each
held-out query's best match, the one the page would show it first:

* **good** (``GOOD_QUANTILE`` = 0.5): at least what the best match of half the held-out queries
  reaches, i.e. above the first result of a typical query;
* **strong** (``STRONG_QUANTILE`` = 0.9): what only the best-served 1 in 10 held-out queries reach.

Beyond ``sample`` pictures a held-out query's best match is that of the sample, a little below its
best over the whole index: labels of a large index lean lenient.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from pixseek.errors import QueryError, StoreError
from pixseek.store import Store
from pixseek.store.ann import saved_prompt_vectors

GOOD_QUANTILE = 0.5  # of held-out queries' best-match scores: better than a typical query's first result
STRONG_QUANTILE = 0.9  # ... what only the best-served 1 in 10 held-out queries' first results reach
IMAGE_QUERIES = 1000  # sampled pictures used as image queries (each against the whole sample)
KINDS = ("text", "image")


@dataclass(frozen=True)
class ScoreScale:
    """Score thresholds (good, strong) for text-only queries and for queries with a picture in them."""

    text: tuple[float, float]
    image: tuple[float, float]

    def thresholds(self, kind: str) -> tuple[float, float]:
        """(good, strong) for ``kind``: "text" (text-only queries) or "image" (a picture or stored
        vector in the query)."""
        if kind not in KINDS:
            raise QueryError(f"score kind {kind!r} is neither 'text' nor 'image'")
        return self.text if kind == "text" else self.image

    def label(self, score: float, kind: str) -> str:
        """ "strong", "good" or "weak" for a result's ``score`` in a query of ``kind``."""
        good, strong = self.thresholds(kind)
        if score >= strong:
            return "strong"
        return "good" if score >= good else "weak"

    def describe(self) -> str:
        t, i = self.text, self.image
        return (
            f"text queries: good from {t[0]:.3f}, strong from {t[1]:.3f}; "
            f"picture queries: good from {i[0]:.3f}, strong from {i[1]:.3f}"
        )


def calibrate(store: Store, text_vectors: np.ndarray | None, *, sample: int = 4000, seed: int = 0) -> ScoreScale:
    """The score scale of the index in ``store`` (deterministic for a given ``seed``).

    ``text_vectors``: the index model's vectors of :func:`pixseek.store.ann.prompts`; None takes the
    ones the indexer saved (a StoreError when there are none: encode the prompts and pass them).
    """
    if sample < 2:
        raise QueryError("the calibration sample needs at least 2 pictures")
    store.require_images()
    text = _text_queries(store, text_vectors)
    ids, vecs, codes = _sample(store, sample, seed)
    text_best = (text @ vecs.T).max(axis=1)
    order = np.random.default_rng(seed + 1).permutation(len(ids))[:IMAGE_QUERIES]
    image_best = _image_best(vecs, codes, np.sort(order))
    return ScoreScale(text=_thresholds(text_best), image=_thresholds(image_best))


def _text_queries(store: Store, text_vectors: np.ndarray | None) -> np.ndarray:
    text = saved_prompt_vectors(store) if text_vectors is None else np.asarray(text_vectors, dtype=np.float32)
    if text is None:
        raise StoreError(
            f"no saved prompt vectors in {store.data_dir.root}",
            hint="encode pixseek.store.ann.prompts() with the index's model and pass them",
        )
    if text.ndim != 2 or not len(text) or text.shape[1] != store.dim:
        raise StoreError(f"prompt vectors of shape {text.shape} do not fit an index of {store.dim}-d vectors")
    return text / np.maximum(np.linalg.norm(text, axis=1, keepdims=True), 1e-12)


def _sample(store: Store, n: int, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(ids, vectors, content codes) of up to ``n`` pictures drawn with ``seed``, in id order; pictures
    with the same content hash share a code (an unknown hash is a code of its own)."""
    ids = store.ids()
    if len(ids) > n:
        ids = np.sort(np.random.default_rng(seed).choice(ids, n, replace=False))
    got, vecs = store.vectors_for(ids)
    rows = store.get(got.tolist())
    keys = [rows[i].hash if i in rows and rows[i].hash else f"id:{i}" for i in got.tolist()]
    _, codes = np.unique(np.asarray(keys, dtype=object), return_inverse=True)
    return got, vecs, codes.reshape(-1)


def _image_best(vecs: np.ndarray, codes: np.ndarray, queries: np.ndarray, chunk: int = 256) -> np.ndarray:
    """Each query picture's best score against the other pictures of the sample (not itself, nor a
    picture with identical content); pictures with nothing else to compare are left out."""
    best: list[np.ndarray] = []
    for start in range(0, len(queries), chunk):
        q = queries[start : start + chunk]
        scores = vecs[q] @ vecs.T
        scores[codes[q][:, None] == codes[None, :]] = -np.inf
        top = scores.max(axis=1)
        best.append(top[np.isfinite(top)])
    return np.concatenate(best) if best else np.zeros(0, np.float32)


def _thresholds(best: np.ndarray) -> tuple[float, float]:
    """(good, strong) from best-match scores. None to read (a one-picture index has no image pairs):
    only an identical vector (score 1) is strong, anything else weak."""
    if not len(best):
        return (1.0, 1.0)
    good, strong = np.quantile(best.astype(np.float64), [GOOD_QUANTILE, STRONG_QUANTILE])
    return (round(float(good), 4), round(float(strong), 4))
