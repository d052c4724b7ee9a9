"""The search API: ``Engine.open(db_dir)`` then ``.search()``, ``.text()``, ``.image()``, ``.similar()``.

The one query path of the CLI, the page, the search service and the Python API: terms (texts,
pictures, stored vectors, with weights) -> one query vector (:mod:`pixseek.search.query`) -> ranked
ids (FAISS, or exact scoring of a filtered selection; fused with the keyword index,
:mod:`pixseek.search.hybrid`) -> :class:`Result` rows looked up in SQLite. The encoder loads lazily
(``similar`` needs none) and must be the model the index was built with.

:meth:`Engine.search` is :meth:`Engine.prepare` (the query vector: the encoder's work) then
:meth:`Engine.run` (the ranking: the store's). A process that shares one engine between threads (the
search service) runs the two apart: ``prepare`` reads the store only for ``similar``, and the encoder
is serialised by the engine's own lock, so one thread may encode while another ranks.
"""

from __future__ import annotations

import math
import os
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from pixseek.decode import DEFAULT_MAX_PIXELS, open_image
from pixseek.errors import ImageError, ModelMismatchError, NotFoundError, QueryError, QueryImageError, VectorIndexError
from pixseek.models import Encoder, for_queries, load_torch
from pixseek.models.export import cached_text_vectors
from pixseek.store import DataDir, Filter, ImageRow, Store, VectorIndex
from pixseek.store.ann import prompts, saved_prompt_vectors
from pixseek.store.photos import Facets
from pixseek.store.tags import TagScore

from . import hybrid
from .calibrate import ScoreScale, calibrate
from .cutoff import PICTURE_ONLY, TEXT_ONLY, Background, Cutoff, Recipe, Recipes, Rule, account, resolve
from .dupe_rule import DupeRule, dupe_rule
from .dupes import DupeReport, find_duplicates, near_duplicate_ids
from .groups import Group, GroupPage, fetch_page
from .query import Term, build_terms, check_terms, combine, split_weight
from .results import MEANING, SORTS, Result, Results, by_date

__all__ = ["Engine", "Prepared", "Result"]

# A filtered selection up to this size is scored exactly from the vectors in SQLite; a larger one is
# searched through FAISS with an ID selector (falling back to exact if the index returns too few).
EXACT_SELECTION = 20_000
# While an indexer runs, a search process rebuilds a flat index from SQLite at most this often.
REBUILD_INTERVAL = 30.0
RESULT_TAGS = 5  # tags a result carries (its strongest)


@dataclass(frozen=True)
class Prepared:
    """A query ready to rank (:meth:`Engine.prepare`): its vector and the words for the keyword index."""

    vector: np.ndarray | None  # the unit query vector; None in keyword mode
    parsed: hybrid.Parsed | None  # the text's words and quoted phrases; None when the vector alone ranks
    mode: str  # hybrid | semantic | keyword
    kind: str  # "image" when a picture or a stored vector is in the query, else "text" (the score scale)
    exclude: tuple[int, ...] = ()  # ids never returned (the image of ``similar``)


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
        self._dupe_rule: tuple[int, DupeRule] | None = None  # (vectors' generation, its duplicate rule)
        self._encoding = threading.Lock()  # one encode at a time, whichever thread asks (the service)
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
            with self._encoding:
                if self._encoder is None:
                    if self._model_spec is not None:
                        enc = load_torch(self._model_spec, self._device)
                    else:
                        enc = for_queries(
                            self.store.model_id or "", self.store.model_spec, self._device, self._check_model
                        )
                    self._check_model(enc)
                    self._encoder = enc
        return self._encoder

    @property
    def encoder_loaded(self) -> bool:
        return self._encoder is not None

    def _encode_texts(self, texts: Sequence[str]) -> np.ndarray:
        enc = self.encoder
        with self._encoding:
            return enc.encode_texts(texts)

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
                text = cached_text_vectors(self.encoder.model_id, prompts(), self._encode_texts)
            self._scale = (generation, calibrate(self.store, text))
        return self._scale[1]

    def dupe_rule(self) -> DupeRule:
        """When two pictures of this index are near-duplicates (:mod:`pixseek.search.dupe_rule`), once
        per generation of the vectors."""
        generation = self.vectors.generation
        if self._dupe_rule is None or self._dupe_rule[0] != generation:
            self._dupe_rule = (generation, dupe_rule(self.store))
        return self._dupe_rule[1]

    def duplicates(self, kinds: Iterable[str] | None = None, filter: Filter | None = None) -> DupeReport:
        """Groups of near-duplicates among the index's pictures (those ``filter`` selects), for a review
        page: see :func:`pixseek.search.dupes.find_duplicates`. Reads only; time grows with the square of
        the pictures (bench/RESULTS.md: minutes at 100k on 2 cores), so a page should cache it."""
        ids = self.store.select_ids(filter) if filter is not None and filter.active else None
        return find_duplicates(self.store, self.dupe_rule(), kinds=kinds, ids=ids)

    def near_duplicates(self, ids: Sequence[int], *, copies: bool = True) -> dict[int, int]:
        """{hidden id: the better-ranked id it repeats} among ranked result ids (see
        :func:`pixseek.search.dupes.near_duplicate_ids`)."""
        return near_duplicate_ids(self.store, ids, self.dupe_rule(), copies=copies)

    def _hider(self, shown_first: Iterable[int], *, copies: bool) -> Callable[[list[int]], set[int]]:
        """For fused rankings: the ids among a ranked list that repeat a better one or ``shown_first``."""
        first = sorted(int(i) for i in shown_first)

        def hide(ranked: list[int]) -> set[int]:
            return set(self.near_duplicates(first + ranked, copies=copies))

        return hide

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
        return self._encode_texts([text.strip()])[0]

    def encode_image(self, source: Any) -> np.ndarray:
        """``source``: a path, bytes, a file object or a PIL image."""
        label = source if isinstance(source, (str, os.PathLike)) else "upload"
        enc = self.encoder
        try:
            d = open_image(source, max_pixels=self.max_pixels, min_side=enc.image_size)
        except ImageError as e:
            raise QueryImageError(f"cannot read query image {label}: {e.message}") from None
        with self._encoding:  # decoding (above) runs unserialised
            return enc.encode_images([d.image])[0]

    def encode_terms(self, terms: Sequence[Term]) -> np.ndarray:
        """One unit query vector for weighted terms (texts, pictures, stored vectors)."""
        check_terms(list(terms))
        vecs: list[np.ndarray] = []
        weights: list[float] = []
        kinds: list[str] = []
        texts = [t for t in terms if t.kind == "text"]
        if texts:
            tv = self._encode_texts([t.value for t in texts])
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
            scores, ids = self.vectors.search(q, self.vectors.candidates(want))
            pairs = [(int(i), float(s)) for i, s in zip(ids[0], scores[0]) if i >= 0]
            return self._exact(q, [i for i, _ in pairs], want) if rerank > 1 else pairs
        self.store.check_tags(filter.tags)
        return self.rank_among(q, want, self.store.select_ids(filter))

    def rank_among(self, q: np.ndarray, want: int, selected: np.ndarray) -> list[tuple[int, float]]:
        """The ``want`` best (id, score) pairs among the ids ``selected``."""
        rerank = self.vectors.rerank
        if len(selected) <= EXACT_SELECTION:
            return self._exact(q, selected, want)
        scores, ids = self.vectors.search(q, self.vectors.candidates(want), ids=selected)
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
        sort: str = "score",
        hide_dupes: bool = False,
        hide_copies: bool = True,
        cutoff: str | Cutoff | None = None,
        recipe: Recipe | None = None,
    ) -> Results:
        """Results ``offset + 1`` .. ``offset + k`` for query vector ``q``, best first. ``sort``: "score"
        (the ranking), or "newest" / "oldest": the first ``offset + k`` matches (after ``min_score``,
        ``filter`` and the cut-off) ordered by date (EXIF capture time, else file time). ``hide_dupes``:
        leave out near-duplicates of a better-ranked result or of an excluded picture (identical files too,
        unless ``hide_copies`` is False), ranking deeper so that ``k`` results still come back when there
        are that many. ``cutoff="auto"`` (or a :class:`Cutoff` from :meth:`cutoff`): only those that stand
        out from the background, and the :class:`Results` carry the threshold and what it dropped."""
        if sort not in SORTS:
            raise QueryError(f"unknown sort {sort!r}: use one of {', '.join(SORTS)}")
        if k < 1:
            raise QueryError("k must be at least 1")
        if offset < 0:
            raise QueryError("offset must be 0 or more")
        if min_score is not None and not math.isfinite(min_score):
            raise QueryError(f"minimum score {min_score} is not a finite number")
        cut = resolve(cutoff, lambda: self.cutoff(q, recipe))
        exclude = set(int(i) for i in exclude)
        want = offset + k + len(exclude)
        while True:
            ranked = self.rank(q, want, filter)
            pairs = [(i, s) for i, s in ranked if i not in exclude]
            if not hide_dupes:
                break
            # the excluded pictures (the one a "more like this" starts from) count as shown first
            shown = [i for i, s in pairs if min_score is None or s >= min_score]
            hidden = self.near_duplicates(sorted(exclude) + shown, copies=hide_copies)
            pairs = [(i, s) for i, s in pairs if i not in hidden]
            below = min_score is not None and len(ranked) and ranked[-1][1] < min_score
            if len(pairs) >= offset + k or len(ranked) < want or below or want >= self.store.count():
                break
            want *= 2
        window = (0, offset + k) if sort != "score" else (offset, k)
        if cut is None:
            if min_score is not None:
                pairs = [(i, s) for i, s in pairs if s >= min_score]
            page = pairs[window[0] : window[0] + window[1]]
        else:
            exhausted = len(ranked) < want
            page, cut = account(cut, pairs, window, min_score, exhausted, lambda: self._searched(filter, exclude))
        if sort != "score":
            return Results(by_date(self.results(page), sort)[offset:], cut)
        return Results(self.results(page, offset + 1), cut)

    def _searched(self, filter: Filter | None, exclude: set[int]) -> int:
        """Pictures a search covers: the selection (all if no filter) less the excluded ones in it."""
        if filter is None or not filter.active:
            return self.store.count() - len(self.store.get(exclude))
        selected = self.store.select_ids(filter)
        return len(selected) - len(exclude.intersection(selected.tolist()))

    def search_groups(self, q: np.ndarray, n_groups: int, **options: Any) -> tuple[list[Group], bool]:
        """(groups, whether more follow) of :meth:`search_page` (same options), no cut-off unless asked for."""
        page = self.search_page(q, n_groups, **{"cutoff": None, **options})
        return page.groups, page.more

    def search_page(
        self,
        q: np.ndarray,
        n_groups: int,
        *,
        filter: Filter | None = None,
        min_score: float | None = None,
        exclude: Iterable[int] = (),
        words: str = "",
        mode: str = "semantic",
        kind: str = "text",
        sort: str = "score",
        hide_dupes: bool = False,
        cutoff: str | Cutoff | None = "auto",
        recipe: Recipe | None = None,
    ) -> GroupPage:
        """What the search page shows: the first ``n_groups`` groups of identical files (raw results
        fetched in growing numbers, :func:`~pixseek.search.groups.fetch_groups`), whether more follow,
        and the relevance cut-off: on by default, ``cutoff=None`` is "show all"; once the groups above
        it run out, ``cutoff.below`` says how many pictures lie below it. ``words``: the query's text,
        for the keyword index in ``hybrid`` and ``keyword`` modes (and its quoted phrases in every mode);
        ``kind``: "image" when a picture is in the query (for the score scale). ``sort``: as in
        :meth:`search_vector`. ``hide_dupes``: near-duplicates of a better-ranked picture are left out
        (copies still fold into their card)."""
        exclude = [int(i) for i in exclude]
        hybrid.check_mode(mode)
        parsed = hybrid.parse(words) if words.strip() else None
        if mode == "keyword" and (parsed is None or parsed.match.empty):
            raise QueryError("a keyword search needs words to look for")
        fused = parsed is not None and not parsed.match.empty and (mode != "semantic" or parsed.match.phrases)
        cut = resolve(cutoff, lambda: self.cutoff(q, recipe)) if mode != "keyword" else None

        def search(k: int) -> Results:
            if fused and parsed is not None:
                return hybrid.search(
                    self,
                    q,
                    parsed.match,
                    k,
                    mode=mode,
                    filter=filter,
                    min_score=min_score,
                    exclude=frozenset(exclude),
                    meaning_floor=lambda: self.score_scale().thresholds(kind)[0],
                    sort=sort,
                    hide=self._hider(exclude, copies=False) if hide_dupes else None,
                    cut=cut,
                )
            return self.search_vector(
                q,
                k,
                exclude=exclude,
                min_score=min_score,
                filter=filter,
                sort=sort,
                hide_dupes=hide_dupes,
                hide_copies=False,
                cutoff=cut,
            )

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
        mode: str = "hybrid",
        **kw: Any,
    ) -> Results:
        """CLI-style entry: strings with optional ``::W`` weights; ``similar``: an indexed image id whose
        stored vector joins the query (alone it is :meth:`similar`), itself excluded from the results.
        An image may also be bytes, a file object, a PIL image or a ``(picture, weight)`` pair.

        ``mode`` (for queries with text): ``hybrid`` fuses the vector ranking with the keyword index
        (file names, folders, text in pictures, camera, place, tags), ``semantic`` ranks by the vector
        alone, ``keyword`` by the keyword index alone. Quoted phrases must appear literally in every
        mode (:mod:`pixseek.search.hybrid`). ``kw``: ``offset``, ``filter``, ``min_score``, ``exclude``.
        """
        if kw.get("filter") is not None:
            self.store.check_tags(kw["filter"].tags)  # an unknown tag is refused before any model loads
        return self.run(self.prepare(texts, images, negatives, similar=similar, mode=mode), k, **kw)

    def prepare(
        self,
        texts: Iterable[str] = (),
        images: Iterable[Any] = (),
        negatives: Iterable[str] = (),
        *,
        similar: int | None = None,
        mode: str = "hybrid",
    ) -> Prepared:
        """The first half of :meth:`search`: the query's vector (encoded) and words (parsed). Reads the
        store only for ``similar``. Raises QueryError, QueryImageError, NotFoundError."""
        texts, images, negatives = list(texts), list(images), list(negatives)
        hybrid.check_mode(mode)
        words = [v for v, w in (split_weight(str(t)) for t in texts) if w > 0 and v.strip()]
        parsed = hybrid.parse(" ".join(words)) if words else None
        if parsed is not None:  # the encoder reads the texts without their quote marks
            texts = [t.replace('"', " ") for t in texts]
        if mode == "keyword":
            if parsed is None or parsed.match.empty:
                raise QueryError(
                    "a keyword search needs words to look for", hint='e.g. pixseek search --mode keyword "invoice"'
                )
            if images or negatives or similar is not None:
                raise QueryError("a keyword search takes words only (no --image, --not or --similar)")
            return Prepared(None, parsed, mode, "text")
        exclude = (int(similar),) if similar is not None else ()
        if similar is not None and not texts and not images and not negatives:
            q = self._stored(similar)
        elif similar is not None:
            terms = [Term("vector", self._stored(similar), 1.0)]
            q = self.encode_terms(terms + build_terms(texts, images, negatives, allow_empty=True))
        else:
            q = self.encode_terms(build_terms(texts, images, negatives))
        kind = "image" if images or similar is not None else "text"
        if parsed is None or parsed.match.empty or (mode == "semantic" and not parsed.match.phrases):
            parsed = None  # the vector alone ranks
        return Prepared(q, parsed, mode, kind, exclude)

    def run(self, prepared: Prepared, k: int = 20, **kw: Any) -> Results:
        """The second half of :meth:`search`: rank a prepared query. ``kw``: ``offset``, ``filter``,
        ``min_score``, ``exclude``."""
        if kw.get("filter") is not None:
            self.store.check_tags(kw["filter"].tags)
        exclude = list(prepared.exclude) + [int(i) for i in kw.pop("exclude", ())]
        if prepared.parsed is None:
            if prepared.vector is None:
                raise QueryError("a query needs a vector or words to rank by")
            return self.search_vector(prepared.vector, k, exclude=exclude, **kw)
        kw["exclude"] = exclude
        return self._fused(prepared.vector, prepared.parsed, k, prepared.mode, prepared.kind, kw)

    def _fused(self, q: np.ndarray | None, parsed: hybrid.Parsed, k: int, mode: str, kind: str, kw: dict) -> Results:
        if k < 1:
            raise QueryError("k must be at least 1")
        cut = resolve(kw.get("cutoff"), lambda: self.cutoff(q, kw.get("recipe"))) if q is not None else None
        return hybrid.search(
            self,
            q,
            parsed.match,
            k,
            mode=mode,
            offset=int(kw.get("offset", 0)),
            filter=kw.get("filter"),
            min_score=kw.get("min_score"),
            exclude=frozenset(int(i) for i in kw.get("exclude", ())),
            meaning_floor=lambda: self.score_scale().thresholds(kind)[0],
            sort=kw.get("sort", "score"),
            hide=self._hider(kw.get("exclude", ()), copies=True) if kw.get("hide_dupes") else None,
            cut=cut,
        )

    def _stored(self, image_id: int) -> np.ndarray:
        try:
            v = self.store.vector(int(image_id))
        except OverflowError:  # beyond SQLite's integers: no such row
            v = None
        if v is None:
            raise NotFoundError(f"no image with id {image_id} in the index")
        return v

    def results(
        self, pairs: Sequence[tuple[int, float]], start_rank: int = 1, why: dict[int, tuple[str, ...]] | None = None
    ) -> list[Result]:
        """Results for ranked (id, score) pairs, skipping rows deleted since they were ranked; ``why``: what
        each matched on (the image's meaning when not given)."""
        rows = self.store.get(i for i, _ in pairs)
        tags = self.store.tags_for(rows, RESULT_TAGS)
        out: list[Result] = []
        for i, s in pairs:
            r = rows.get(i)
            if r is not None:
                r_why = why.get(i, ()) if why is not None else (MEANING,)
                r_tags = tuple(t.tag for t in tags.get(i, ()))
                out.append(Result.from_row(start_rank + len(out), s, r, r_why, r_tags))
        return out

    def facets(self, filter: Filter | None = None) -> Facets:
        """Cameras, countries and towns with counts among the pictures ``filter`` selects, for a sidebar
        (each facet ignores its own part of the filter: :meth:`Store.facets`)."""
        return self.store.facets(filter)

    # --- tags -------------------------------------------------------------------------------------
    def tag_counts(self, filter: Filter | None = None, limit: int | None = None) -> list[tuple[str, int]]:
        """(tag, pictures) of the tags in use, most used first; with ``filter``, among the pictures it
        selects (the page's tag facet)."""
        return self.store.tag_counts(filter if filter is not None and filter.active else None, limit)

    def image_tags(self, image_id: int) -> list[TagScore]:
        """Every tag of one picture with its score and strength, strongest first (the detail view)."""
        return self.store.tags_for([int(image_id)]).get(int(image_id), [])

    def get(self, image_id: int) -> ImageRow:
        row = self.store.get([int(image_id)]).get(int(image_id))
        if row is None:
            raise NotFoundError(f"no image with id {image_id} in the index")
        return row
