"""The relevance cut-off: per query, the score below which results are the irrelevant tail.

A ranking always has a first result, even for gibberish, and its scores fall off smoothly, so a
fixed minimum score is either too strict for one query or too lenient for the next. The cut-off
reads two things from the index itself (a seeded sample of up to ``SAMPLE`` pictures) and keeps a
result only when it passes both:

* **the background floor**: what *background queries* reach as their best match in the sample.
  A background query has the query's recipe (the kinds and weights of its terms) with a random
  caption in place of each text (``background.txt``, package data: captions composed from word
  lists by ``scripts/make_background_captions.py``, written without looking at any index) and a
  random picture of the index in place of each picture (its own copies left out of its scores). The
  floor is the ``floor_quantile`` of their best scores: a result must beat the best match of most
  queries that were not written for this collection. This is what makes gibberish keep nothing.
* **standing out**: the query's own scores over the sample give a robust centre and spread
  (median, 1.4826 × median absolute deviation); a result must lie ``z_min`` spreads above the
  centre. This is what drops the tail of a query whose scores are all high.

threshold = max(floor, median + z_min × spread). Both parts come in the model's own units, so the
same rule serves ``pixseek-photo`` (text scores on a √0.3 scale), ``pixseek-emoji`` and open_clip
models alike. The background's best scores are computed once per recipe and generation of the
index (:class:`Background`, held by the engine, as the strong / good / weak scale is); a query then
costs one product with the sample (a few milliseconds). An index of fewer than ``MIN_PICTURES``
pictures has too little to read: the cut-off is not applied and says why.
"""

from __future__ import annotations

import hashlib
import math
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, replace
from importlib import resources

import numpy as np

from pixseek.errors import QueryError, StoreError
from pixseek.models import Encoder
from pixseek.models.export import cached_text_vectors
from pixseek.store import Store

from .calibrate import _sample

SAMPLE = 4000  # pictures the statistics are read from (seeded; all of them in a smaller index)
RECIPES_KEPT = 64  # recipes remembered for the query vectors made lately
BACKGROUND_QUERIES = 256  # background queries per recipe
MIN_PICTURES = 30  # below this the cut-off is not applied (too little to read a distribution from)
MAD_SCALE = 1.4826  # median absolute deviation -> standard deviation of a normal distribution

Recipe = tuple[tuple[str, float], ...]  # ((kind: "text" | "image", weight as combined), ...)
TEXT_ONLY: Recipe = (("text", 1.0),)
PICTURE_ONLY: Recipe = (("image", 1.0),)


@dataclass(frozen=True)
class Rule:
    """The cut-off's constants, chosen on the validation split of bench/cutoff.py's sets."""

    floor_quantile: float = 0.1  # of the background queries' best scores
    z_min: float = 3.5  # spreads above the query's median score


DEFAULT_RULE = Rule()


@dataclass(frozen=True)
class Cutoff:
    """The cut-off of one query: the score a result needs, how it was reached, and what it dropped.

    ``threshold`` is the score a result needed (the minimum score instead, when one was given and is
    higher), None when no cut-off applies (``reason`` says why). After a search, ``kept`` and ``cut``
    count the results of the window asked for (offset .. offset + k) that passed it and that it
    dropped; ``below`` counts the searched pictures under the threshold, or is None when every
    result asked for passed it (the ranking did not reach the threshold, so they were not counted).
    """

    threshold: float | None
    floor: float | None = None  # the background part
    spread_part: float | None = None  # median + z_min x spread
    median: float | None = None
    spread: float | None = None
    reason: str = ""
    kept: int = 0
    cut: int = 0
    below: int | None = None

    @property
    def applied(self) -> bool:
        return self.threshold is not None

    def to_dict(self) -> dict:
        d = asdict(self)
        for key in ("threshold", "floor", "spread_part", "median", "spread"):
            if d[key] is not None:
                d[key] = round(float(d[key]), 6)
        return {"mode": "auto", "applied": self.applied, **d}

    def describe(self) -> str:
        """One line for people: what the cut-off kept and what it left below."""
        if not self.applied:
            return f"no cut-off: {self.reason}"
        head = f"{self.kept} above the cut-off" if self.kept else "nothing stood out"
        below = f"; {self.below}{' more' if self.kept else ''} below it" if self.below else ""
        return f"{head} (cut-off {self.threshold:.4f}){below}"


def resolve(mode: str | Cutoff | None, make: Callable[[], Cutoff]) -> Cutoff | None:
    """A search's ``cutoff=`` argument: None (no cut-off), "auto" (``make()`` one) or a made one."""
    if mode is None or isinstance(mode, Cutoff):
        return mode
    if mode != "auto":
        raise QueryError(f"cut-off {mode!r} is neither 'auto' nor None")
    return make()


def captions() -> list[str]:
    """The background captions (package data ``background.txt``)."""
    text = resources.files("pixseek.search").joinpath("background.txt").read_text(encoding="utf-8")
    return [ln.strip() for ln in text.splitlines() if ln.strip() and not ln.startswith("#")]


class Recipes:
    """The recipes of the last ``RECIPES_KEPT`` query vectors the engine made, by the vectors' bytes
    (a page encodes a query once and searches with its vector many times)."""

    def __init__(self) -> None:
        self._by_digest: OrderedDict[bytes, Recipe] = OrderedDict()

    def remember(self, q: np.ndarray, kinds: Sequence[str], weights: Sequence[float]) -> None:
        """Remember that ``q`` combines terms of these kinds with these weights (:func:`recipe_of`)."""
        key = _digest(q)
        self._by_digest[key] = recipe_of(kinds, weights)
        self._by_digest.move_to_end(key)
        while len(self._by_digest) > RECIPES_KEPT:
            self._by_digest.popitem(last=False)

    def of(self, q: np.ndarray) -> Recipe:
        """``q``'s recipe; a vector made elsewhere (a stored picture's) reads as a picture's."""
        return self._by_digest.get(_digest(q), PICTURE_ONLY)


def _digest(q: np.ndarray) -> bytes:
    return hashlib.blake2b(np.ascontiguousarray(q, dtype=np.float32).tobytes(), digest_size=16).digest()


def recipe_of(kinds: Sequence[str], weights: Sequence[float]) -> Recipe:
    """A query's recipe from its terms' kinds ("text", "image", "vector": a stored picture) and the
    weights they were combined with, scaled so that the largest is 1."""
    scale = max((abs(float(w)) for w in weights), default=1.0) or 1.0  # only the ratios shape a query
    out = []
    for kind, w in zip(kinds, weights):
        if kind not in ("text", "image", "vector"):
            raise QueryError(f"unknown term kind {kind!r}")
        out.append(("text" if kind == "text" else "image", round(float(w) / scale, 4)))
    return tuple(out)


class Background:
    """What one index generation offers the cut-off: a seeded sample of its pictures (vectors and
    content codes, identical files sharing a code), the model's background caption vectors, and the
    background queries' best scores computed so far, one array per recipe."""

    def __init__(
        self,
        vectors: np.ndarray,
        codes: np.ndarray,
        caption_vectors: Callable[[], np.ndarray],
        *,
        total: int,
        seed: int = 0,
    ):
        """``caption_vectors``: returns the model's vectors of :func:`captions`; called the first time
        a recipe has a text in it (a search by picture needs no text encoder)."""
        self.vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        self.codes = np.asarray(codes)
        self.total = int(total)  # pictures in the index (the sample holds up to SAMPLE of them)
        self.seed = seed
        self._caption_vectors = caption_vectors
        self._captions: np.ndarray | None = None
        self._bests: dict[Recipe, np.ndarray] = {}

    @classmethod
    def of_store(cls, store: Store, encoder: Callable[[], Encoder], seed: int = 0) -> Background:
        """The background of the index in ``store``: a sample of up to ``SAMPLE`` of its pictures, and
        the captions encoded by ``encoder()`` (once per model, cached beside its export) when needed."""
        _, vectors, codes = _sample(store, SAMPLE, seed)

        def caption_vectors() -> np.ndarray:
            enc = encoder()
            return cached_text_vectors(enc.model_id, captions(), enc.encode_texts)

        return cls(vectors, codes, caption_vectors, total=store.count(), seed=seed)

    @property
    def captions(self) -> np.ndarray:
        if self._captions is None:
            v = np.asarray(self._caption_vectors(), dtype=np.float32)
            if v.ndim != 2 or not len(v) or v.shape[1] != self.vectors.shape[1]:
                raise StoreError(f"background caption vectors of shape {v.shape} do not fit this index")
            self._captions = _unit(v)
        return self._captions

    @property
    def usable(self) -> str:
        """Why no cut-off can be read from this index ("" when one can)."""
        if self.total < MIN_PICTURES:
            too_small = f"an index of {self.total} pictures is too small to tell matches from the rest"
            return f"{too_small} ({MIN_PICTURES} needed)"
        return ""

    def bests(self, recipe: Recipe) -> np.ndarray:
        """The best score of each background query of ``recipe`` over the sample (cached)."""
        if recipe not in self._bests:
            self._bests[recipe] = self._compute(recipe)
        return self._bests[recipe]

    def _compute(self, recipe: Recipe) -> np.ndarray:
        rng = np.random.default_rng(self.seed)
        n, out = BACKGROUND_QUERIES, []
        texts = [_draw(rng, len(self.captions), n) for kind, _ in recipe if kind == "text"]
        pictures = [_draw(rng, len(self.vectors), n) for kind, _ in recipe if kind == "image"]
        weights = np.asarray([w for _, w in recipe], dtype=np.float32)
        kinds = [k for k, _ in recipe]
        for start in range(0, n, 64):
            sl = slice(start, min(n, start + 64))
            parts, ti, pi = [], iter(texts), iter(pictures)
            chosen = [next(pi)[sl] if k == "image" else next(ti)[sl] for k in kinds]
            for kind, idx in zip(kinds, chosen):
                parts.append(self.vectors[idx] if kind == "image" else self.captions[idx])
            q = np.einsum("t,tnd->nd", weights, np.stack(parts))
            keep = np.linalg.norm(q, axis=1) > 1e-6  # terms that cancel out make no query
            scores = _unit(q[keep]) @ self.vectors.T
            for kind, idx in zip(kinds, chosen):
                if kind == "image":  # a picture never counts as its own match, nor do its copies
                    scores[self.codes[idx[keep]][:, None] == self.codes[None, :]] = -np.inf
            top = scores.max(axis=1)
            out.append(top[np.isfinite(top)])
        return np.concatenate(out) if out else np.zeros(0, np.float32)

    def cutoff(self, q: np.ndarray, recipe: Recipe, rule: Rule = DEFAULT_RULE) -> Cutoff:
        """The cut-off for unit query vector ``q`` made with ``recipe``."""
        if not recipe or not any(w > 0 for _, w in recipe):
            raise QueryError("a cut-off needs a query with at least one positive term")
        if self.usable:
            return Cutoff(None, reason=self.usable)
        scores = self.vectors @ np.asarray(q, dtype=np.float32).reshape(-1)
        median = float(np.median(scores))
        spread = MAD_SCALE * float(np.median(np.abs(scores - median)))
        bests = self.bests(recipe)
        if not len(bests) or not math.isfinite(spread) or spread <= 1e-9:
            return Cutoff(None, median=median, spread=spread, reason="the scores of this index do not spread out")
        floor = float(np.quantile(bests.astype(np.float64), rule.floor_quantile))
        part = median + rule.z_min * spread
        return Cutoff(max(floor, part), floor=floor, spread_part=part, median=median, spread=spread)


def _draw(rng: np.random.Generator, population: int, n: int) -> np.ndarray:
    """``n`` indices into ``population``: each at most once while there are enough."""
    if population >= n:
        return rng.permutation(population)[:n]
    return rng.integers(0, population, n)


def _unit(v: np.ndarray) -> np.ndarray:
    return v / np.maximum(np.linalg.norm(v, axis=-1, keepdims=True), 1e-12)


def account(
    cut: Cutoff,
    pairs: Sequence[tuple[int, float]],
    window: tuple[int, int],
    min_score: float | None,
    exhausted: bool,
    searched: Callable[[], int],
) -> tuple[list[tuple[int, float]], Cutoff]:
    """Apply ``cut`` to a ranking: the (id, score) pairs of the window (offset, k) that pass it (and
    ``min_score``), and the cut-off with its counts (see :class:`Cutoff`).

    ``pairs``: the best-first ranking, at least offset + k long unless ``exhausted`` (it holds every
    picture searched); ``searched``: how many pictures the search covered (called only when needed).
    """
    offset, k = window
    base = [p for p in pairs if min_score is None or p[1] >= min_score][offset : offset + k]
    if cut.threshold is None:
        return base, replace(cut, kept=len(base), cut=0, below=None)
    need = cut.threshold if min_score is None else max(min_score, cut.threshold)
    above = [p for p in pairs if p[1] >= need]
    page = above[offset : offset + k]
    reached = exhausted or len(above) < len(pairs)  # the ranking went below the threshold
    below = max(0, searched() - len(above)) if reached else None
    return page, replace(cut, threshold=need, kept=len(page), cut=len(base) - len(page), below=below)
