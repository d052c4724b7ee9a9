"""The search API: ``Engine.open(db_dir)`` then ``.text()``, ``.image()``, ``.similar()``, ``.query()``.

The one query path of the CLI, the page and the Python API: terms (texts, pictures, stored vectors,
with weights) -> one query vector (:mod:`pixseek.search.query`) -> ranked ids (FAISS, or exact
scoring of a filtered selection) -> :class:`Result` rows looked up in SQLite. The encoder loads
lazily (``similar`` needs none) and must be the model the index was built with.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np

from pixseek.decode import DEFAULT_MAX_PIXELS, open_image
from pixseek.errors import ImageError, ModelMismatchError, NotFoundError, QueryError, QueryImageError, VectorIndexError
from pixseek.models import Encoder, for_queries, load_torch
from pixseek.models.export import cached_text_vectors
from pixseek.store import DataDir, Filter, ImageRow, Store, VectorIndex
from pixseek.store.ann import prompts, saved_prompt_vectors

from .calibrate import ScoreScale, calibrate
from .cutoff import PICTURE_ONLY, TEXT_ONLY, Background, Cutoff, Recipe, Recipes, Rule, account, resolve
from .groups import Group, GroupPage, fetch_page
from .query import Term, build_terms, check_terms, combine
from .results import Result, Results

__all__ = ["Engine", "Result"]

# A filtered selection up to this size is scored exactly from the vectors in SQLite; a larger one is
# searched through FAISS with an ID selector (falling back to exact if the index returns too few).
EXACT_SELECTION = 20_000
# While an indexer runs, a search process rebuilds a flat index from SQLite at most this often.
REBUILD_INTERVAL = 30.0


class Engine:
    def __init__(
        self,
        store: Store,
        vectors: VectorIndex,
        *,
        model: str | None = None,
        device: str | None = None,
        encoder: Encoder | None = None,
        max_pixels: int = DEFAULT_MAX_PIXELS,
    ):
        self.store = store
        self.vectors = vectors
        self._model_spec = model
        self._device = device
        self._encoder = encoder
        self.max_pixels = max_pixels
        self._rebuilt_at = time.monotonic()
        self._scale: tuple[int, ScoreScale] | None = None  # (vectors' generation, its score scale)
        self._background: tuple[int, Background] | None = None  # (vectors' generation, cut-off background)
        self._recipes = Recipes()  # of the query vectors encode_terms made lately

    @classmethod
    def open(
        cls,
        db_dir: str | os.PathLike | DataDir | None = None,
        *,
        model: str | None = None,
        device: str | None = None,
        encoder: Encoder | None = None,
        max_pixels: int = DEFAULT_MAX_PIXELS,
        shared: bool = False,
    ) -> Engine:
        """Open the index in ``db_dir``. Raises IndexNotFoundError / EmptyIndexError / StoreError.

        ``model``: encode queries with this model spec's torch model (it must be the index's model).
        ``shared``: the engine will be used from several threads, one call at a time (the web UI).
        """
        dd = db_dir if isinstance(db_dir, DataDir) else DataDir.resolve(db_dir)
        store = Store.open(dd, shared=shared, readonly=True)  # a search never writes
        try:
            store.require_images()
            vectors = VectorIndex.open(store, save=False)
            engine = cls(store, vectors, model=model, device=device, encoder=encoder, max_pixels=max_pixels)
            if encoder is not None:
                engine._check_model(encoder)
        except BaseException:
            store.close()
            raise
        return engine

    def close(self) -> None:
        self.store.close()

    def __enter__(self) -> Engine:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- model ------------------------------------------------------------------------------------
    @property
    def model_id(self) -> str | None:
        return self.store.model_id

    @property
    def encoder(self) -> Encoder:
        """The query encoder: the one given, else the index model's ONNX export when there is one (no
        torch start-up), else its torch model (see :func:`pixseek.models.for_queries`)."""
        if self._encoder is None:
            if self._model_spec is not None:
                enc = load_torch(self._model_spec, self._device)
            else:
                enc = for_queries(self.store.model_id or "", self.store.model_spec, self._device, self._check_model)
            self._check_model(enc)
            self._encoder = enc
        return self._encoder

    def _check_model(self, enc: Encoder) -> None:
        if enc.model_id != self.store.model_id:
            raise ModelMismatchError(
                f"index in {self.store.data_dir.root} was built with model {self.store.model_id}, "
                f"not {enc.model_id}; search it with --model {self.store.model_spec}"
            )

    # --- freshness --------------------------------------------------------------------------------
    def refresh(self) -> bool:
        """Follow the indexer: True if the vectors were reloaded.

        When the database has moved on, the saved FAISS file is loaded if it matches (the indexer
        finished). While an indexer is mid-run the file lags behind; a flat index is then rebuilt from
        SQLite at most every REBUILD_INTERVAL seconds (an ANN index waits for the file). Meanwhile
        results stay correct: every hit is looked up in SQLite, so deleted rows never come back.
        """
        if self.store.generation == self.vectors.generation:
            return False
        try:
            self.vectors = VectorIndex.load_file(self.store)
            self._rebuilt_at = time.monotonic()
            return True
        except VectorIndexError:
            pass
        if self.vectors.trained:
            return False
        if time.monotonic() - self._rebuilt_at < REBUILD_INTERVAL:
            return False
        self.vectors = VectorIndex.build_usable(self.store)
        self._rebuilt_at = time.monotonic()
        return True

    # --- what a score means -----------------------------------------------------------------------
    def score_scale(self) -> ScoreScale:
        """Strong / good / weak thresholds for this index (:mod:`pixseek.search.calibrate`), computed
        once per generation of the vectors searched. The held-out prompts are encoded (once per model,
        cached) only when the indexer saved no vectors of them that fit the index."""
        generation = self.vectors.generation
        if self._scale is None or self._scale[0] != generation:
            text = saved_prompt_vectors(self.store)
            if text is None:
                enc = self.encoder
                text = cached_text_vectors(enc.model_id, prompts(), enc.encode_texts)
            self._scale = (generation, calibrate(self.store, text))
        return self._scale[1]

    def background(self) -> Background:
        """What the relevance cut-off reads (:mod:`pixseek.search.cutoff`), made once per generation of
        the vectors searched: a changed index gets a new one."""
        generation = self.vectors.generation
        if self._background is None or self._background[0] != generation:
            self._background = (generation, Background.of_store(self.store, lambda: self.encoder))
        return self._background[1]

    def cutoff(self, q: np.ndarray, recipe: Recipe | None = None, rule: Rule | None = None) -> Cutoff:
        """The score a result of query vector ``q`` needs to stand out from the background (its counts
        are filled by a search). ``recipe``: the kinds and weights of ``q``'s terms (:meth:`recipe`)."""
        return self.background().cutoff(q, recipe or self.recipe(q), rule or Rule())

    def recipe(self, q: np.ndarray) -> Recipe:
        """The kinds and weights of the terms query vector ``q`` was made of, as :meth:`encode_terms`
        recorded them (for its last few vectors); any other vector reads as a picture's."""
        return self._recipes.of(q)

    # --- encoding ---------------------------------------------------------------------------------
    def encode_text(self, text: str) -> np.ndarray:
        if not text or not text.strip():
            raise QueryError("empty query text")
        return self.encoder.encode_texts([text.strip()])[0]

    def encode_image(self, source: Any) -> np.ndarray:
        """``source``: a path, bytes, a file object or a PIL image."""
        label = source if isinstance(source, (str, os.PathLike)) else "upload"
        enc = self.encoder
        try:
            d = open_image(source, max_pixels=self.max_pixels, min_side=enc.image_size)
        except ImageError as e:
            raise QueryImageError(f"cannot read query image {label}: {e.message}") from None
        return enc.encode_images([d.image])[0]

    def encode_terms(self, terms: Sequence[Term]) -> np.ndarray:
        """One unit query vector for weighted terms (texts, pictures, stored vectors)."""
        check_terms(list(terms))
        vecs: list[np.ndarray] = []
        weights: list[float] = []
        kinds: list[str] = []
        texts = [t for t in terms if t.kind == "text"]
        if texts:
            tv = self.encoder.encode_texts([t.value for t in texts])
            vecs += list(tv)
            weights += [t.weight * self.encoder.text_gain for t in texts]
            kinds += ["text"] * len(texts)
        for t in terms:
            if t.kind == "image":
                vecs.append(self.encode_image(t.value))
            elif t.kind == "vector":
                vecs.append(np.asarray(t.value, dtype=np.float32))
            else:
                continue
            weights.append(t.weight)
            kinds.append(t.kind)
        q = combine(vecs, weights)
        self._recipes.remember(q, kinds, weights)
        return q

    # --- searching --------------------------------------------------------------------------------
    def _exact(self, q: np.ndarray, ids: Iterable[int], want: int) -> list[tuple[int, float]]:
        got, vecs = self.store.vectors_for(ids)
        if not len(got):
            return []
        scores = vecs @ np.asarray(q, dtype=np.float32).reshape(-1)
        top = np.argsort(-scores, kind="stable")[:want]
        return [(int(got[i]), float(scores[i])) for i in top]

    def count(self, filter: Filter | None = None) -> int:
        """Images in the index, or among those ``filter`` selects."""
        if filter is None or not filter.active:
            return self.store.count()
        return len(self.store.select_ids(filter))

    def rank(self, q: np.ndarray, want: int, filter: Filter | None = None) -> list[tuple[int, float]]:
        """The ``want`` best (id, score) pairs, among the images ``filter`` selects (all if None)."""
        rerank = self.vectors.rerank  # compressed codes: more candidates, re-scored exactly below
        if filter is None or not filter.active:
            scores, ids = self.vectors.search(q, want * rerank)
            pairs = [(int(i), float(s)) for i, s in zip(ids[0], scores[0]) if i >= 0]
            return self._exact(q, [i for i, _ in pairs], want) if rerank > 1 else pairs
        selected = self.store.select_ids(filter)
        if len(selected) <= EXACT_SELECTION:
            return self._exact(q, selected, want)
        scores, ids = self.vectors.search(q, want * rerank, ids=selected)
        pairs = [(int(i), float(s)) for i, s in zip(ids[0], scores[0]) if i >= 0]
        if len(pairs) < min(want, len(selected)):  # an ANN index may miss under a tight selector
            return self._exact(q, selected, want)
        return self._exact(q, [i for i, _ in pairs], want) if rerank > 1 else pairs

    def search_vector(
        self,
        q: np.ndarray,
        k: int = 20,
        *,
        exclude: Iterable[int] = (),
        min_score: float | None = None,
        offset: int = 0,
        filter: Filter | None = None,
        cutoff: str | Cutoff | None = None,
        recipe: Recipe | None = None,
    ) -> Results:
        """Results ``offset + 1`` .. ``offset + k`` for query vector ``q``, best first. ``cutoff="auto"``
        (or a :class:`Cutoff` from :meth:`cutoff`): only those that stand out from the background, and
        the :class:`Results` carry the threshold and what it dropped; None (default) keeps all."""
        if k < 1:
            raise QueryError("k must be at least 1")
        if offset < 0:
            raise QueryError("offset must be 0 or more")
        if min_score is not None and not math.isfinite(min_score):
            raise QueryError(f"minimum score {min_score} is not a finite number")
        cut = resolve(cutoff, lambda: self.cutoff(q, recipe))
        exclude = set(int(i) for i in exclude)
        want = offset + k + len(exclude)
        ranked = self.rank(q, want, filter)
        pairs = [(i, s) for i, s in ranked if i not in exclude]
        if cut is None:
            if min_score is not None:
                pairs = [(i, s) for i, s in pairs if s >= min_score]
            return Results(self.results(pairs[offset : offset + k], offset + 1))
        exhausted = len(ranked) < want
        page, cut = account(cut, pairs, (offset, k), min_score, exhausted, lambda: self._searched(filter, exclude))
        return Results(self.results(page, offset + 1), cut)

    def _searched(self, filter: Filter | None, exclude: set[int]) -> int:
        """Pictures a search covers: the selection (all if no filter) less the excluded ones in it."""
        if filter is None or not filter.active:
            return self.store.count() - len(self.store.get(exclude))
        selected = self.store.select_ids(filter)
        return len(selected) - len(exclude.intersection(selected.tolist()))

    def search_groups(
        self,
        q: np.ndarray,
        n_groups: int,
        *,
        filter: Filter | None = None,
        min_score: float | None = None,
        exclude: Iterable[int] = (),
        cutoff: str | Cutoff | None = None,
    ) -> tuple[list[Group], bool]:
        """(groups, whether more follow) of :meth:`search_page`, no cut-off unless asked for."""
        page = self.search_page(q, n_groups, filter=filter, min_score=min_score, exclude=exclude, cutoff=cutoff)
        return page.groups, page.more

    def search_page(
        self,
        q: np.ndarray,
        n_groups: int,
        *,
        filter: Filter | None = None,
        min_score: float | None = None,
        exclude: Iterable[int] = (),
        cutoff: str | Cutoff | None = "auto",
        recipe: Recipe | None = None,
    ) -> GroupPage:
        """What the search page shows: the first ``n_groups`` groups of identical files (raw results
        fetched in growing numbers, :func:`~pixseek.search.groups.fetch_groups`), whether more
        follow, and the relevance cut-off: on by default, ``cutoff=None`` is "show all"; once the
        groups above it run out, ``cutoff.below`` says how many pictures lie below it."""
        exclude = [int(i) for i in exclude]
        cut = resolve(cutoff, lambda: self.cutoff(q, recipe))

        def search(k: int) -> Results:
            return self.search_vector(q, k, exclude=exclude, min_score=min_score, filter=filter, cutoff=cut)

        return fetch_page(search, n_groups, self.store.count(), cut)

    def query(self, terms: Sequence[Term], k: int = 20, **kw: Any) -> Results:
        return self.search_vector(self.encode_terms(terms), k, **kw)

    def text(self, query: str, k: int = 20, **kw: Any) -> Results:
        return self.search_vector(self.encode_text(query), k, **{"recipe": TEXT_ONLY, **kw})

    def image(self, source: Any, k: int = 20, **kw: Any) -> Results:
        """``source``: a path, bytes, a file object or a PIL image."""
        return self.search_vector(self.encode_image(source), k, **{"recipe": PICTURE_ONLY, **kw})

    def similar(self, image_id: int, k: int = 20, **kw: Any) -> Results:
        """Images like indexed image ``image_id`` (itself excluded). Needs no model."""
        return self.search_vector(self._stored(image_id), k, exclude=[int(image_id)], **{"recipe": PICTURE_ONLY, **kw})

    def search(
        self,
        texts: Iterable[str] = (),
        images: Iterable[Any] = (),
        negatives: Iterable[str] = (),
        k: int = 20,
        *,
        similar: int | None = None,
        **kw: Any,
    ) -> Results:
        """CLI-style entry: strings with optional ``::W`` weights; ``similar``: an indexed image id whose
        stored vector joins the query (alone it is :meth:`similar`), itself excluded from the results."""
        texts, images, negatives = list(texts), list(images), list(negatives)
        if similar is None:
            return self.query(build_terms(texts, images, negatives), k, **kw)
        if not texts and not images and not negatives:
            return self.similar(similar, k, **kw)
        terms = [Term("vector", self._stored(similar), 1.0)]
        terms += build_terms(texts, images, negatives, allow_empty=True)
        return self.query(terms, k, exclude=[int(similar)], **kw)

    def _stored(self, image_id: int) -> np.ndarray:
        try:
            v = self.store.vector(int(image_id))
        except OverflowError:  # beyond SQLite's integers: no such row
            v = None
        if v is None:
            raise NotFoundError(f"no image with id {image_id} in the index")
        return v

    def results(self, pairs: Sequence[tuple[int, float]], start_rank: int = 1) -> list[Result]:
        """Results for ranked (id, score) pairs, skipping rows deleted since they were ranked."""
        rows = self.store.get(i for i, _ in pairs)
        out: list[Result] = []
        for i, s in pairs:
            r = rows.get(i)
            if r is not None:
                out.append(
                    Result(
                        start_rank + len(out),
                        i,
                        r.path,
                        s,
                        r.width,
                        r.height,
                        r.format,
                        r.size,
                        r.mtime_ns / 1e9,
                        r.taken_at,
                        r.hash or "",
                        r.root or "",
                    )
                )
        return out

    def get(self, image_id: int) -> ImageRow:
        row = self.store.get([int(image_id)]).get(int(image_id))
        if row is None:
            raise NotFoundError(f"no image with id {image_id} in the index")
        return row
