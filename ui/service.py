"""What the page needs from an index, shared by every browser session of one ``pixseek ui`` process.

One :class:`Service` per data dir holds the open :class:`~pixseek.search.Engine` (model and vectors
loaded once) behind a lock, since Streamlit runs each session's script in its own thread. Every page
run calls :meth:`Service.sync`, which reopens the index if it appeared since and reloads the vectors
when the indexer has changed them on disk. Images are served by row id only.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from pixseek.errors import NotFoundError, PixseekError
from pixseek.search import Engine, Filter, Result, ScoreScale, Term
from pixseek.search.dupe_rule import dupe_rule
from pixseek.search.dupes import DupeReport, find_duplicates
from pixseek.search.groups import GroupPage
from pixseek.search.live import LiveEngine
from pixseek.search.stats import collect
from pixseek.search.uploads import DEFAULT_MAX_UPLOAD_BYTES, read_upload
from pixseek.store import DataDir, ImageRow, Store
from pixseek.store.photos import Facets
from pixseek.store.thumbs import Thumbs

THUMBS_IN_MEMORY = 2000  # ~20 MB of WebP thumbnails
DUPE_REPORTS = 4  # duplicate reports kept (one per choice of kinds and folder)


@dataclass(frozen=True)
class QuerySpec:
    """Everything that determines a query vector (and nothing that only changes the ranking)."""

    text: str = ""
    negative: str = ""
    upload: bytes | None = field(default=None, repr=False)
    upload_name: str = ""
    image_weight: float = 0.5  # share of the picture when both text and picture are given
    like_id: int | None = None  # "more like this": the stored vector of an indexed image

    @property
    def empty(self) -> bool:
        return not self.text.strip() and self.upload is None and self.like_id is None

    @property
    def key(self) -> tuple:
        digest = hash(self.upload) if self.upload is not None else None
        return (self.text.strip(), self.negative.strip(), digest, round(self.image_weight, 3), self.like_id)


class Service:
    def __init__(self, db_dir: str | None, max_upload_bytes: int = DEFAULT_MAX_UPLOAD_BYTES):
        self.data_dir = DataDir.resolve(db_dir)
        self.max_upload_bytes = max_upload_bytes
        self.live = LiveEngine(self.data_dir)
        self.lock = self.live.lock  # around every use of the engine's store
        self.thumbs = Thumbs(self.data_dir)
        self.encodes = 0  # query vectors computed (paging re-uses the last one)
        self._choices: tuple[int, list[str], list[str]] | None = None
        self._facets: tuple[tuple, Facets, list[tuple[str, int]]] | None = None
        self._thumbs: OrderedDict[str, bytes] = OrderedDict()  # content hash -> WebP, most recent last
        self._dupes: OrderedDict[tuple, tuple[DupeReport, float]] = OrderedDict()  # key -> (report, made at)
        self._dupe_runs: dict[tuple, threading.Lock] = {}  # key -> held while its search runs

    # --- the index ------------------------------------------------------------------------------
    def sync(self) -> Engine:
        """The engine, opened if the index has appeared, reloaded if the indexer changed it (shared with
        the search service: :class:`~pixseek.search.live.LiveEngine`).

        Raises IndexNotFoundError / EmptyIndexError / StoreError for the page's empty states.
        """
        return self.live.sync()

    @property
    def reloads(self) -> int:
        return self.live.reloads

    def facts(self) -> dict:
        return collect(self.data_dir)

    def errors(self, limit: int = 500) -> list[dict]:
        with self.lock:
            return self.sync().store.errors(limit)

    def choices(self) -> tuple[list[str], list[str]]:
        """(folders, formats) for the filter widgets, recomputed when the index changes."""
        with self.lock:
            eng = self.sync()
            gen = eng.store.generation
            if self._choices is None or self._choices[0] != gen:
                formats = [f for f, _ in eng.store.formats()]
                self._choices = (gen, eng.store.folders(), formats)
            return self._choices[1], self._choices[2]

    def facets(self, filter: Filter) -> tuple[Facets, list[tuple[str, int]]]:
        """(cameras and places, tags) with counts among the pictures ``filter`` selects (each facet
        ignoring its own part of the filter), kept until the index or the filter changes."""
        with self.lock:
            eng = self.sync()
            key = (eng.store.generation, filter)
            if self._facets is None or self._facets[0] != key:
                self._facets = (key, eng.facets(filter), eng.tag_counts(replace(filter, tags=()), limit=200))
            return self._facets[1], self._facets[2]

    def duplicates(self, kinds: tuple[str, ...], folder: str | None = None, *, fresh: bool = False) -> DupeReport:
        """Groups of near-duplicates (:func:`pixseek.search.dupes.find_duplicates`), kept until the index
        changes. The search runs on a read-only connection of its own, outside the lock: at 100k pictures
        it takes minutes (bench/RESULTS.md), and other sessions go on searching meanwhile. One search per
        choice at a time: a second session asking for the same waits for it and shares its report.
        ``fresh``: a report made after this call began, even when one is kept."""
        asked = time.monotonic()
        with self.lock:
            key = (self.sync().store.generation, tuple(kinds), folder)
            running = self._dupe_runs.setdefault(key, threading.Lock())
        with running:
            with self.lock:
                kept = self._dupes.get(key)
            if kept is not None and (not fresh or kept[1] > asked):
                return kept[0]
            with Store.open(self.data_dir, readonly=True) as store:
                ids = store.select_ids(Filter(folder=folder).validate()) if folder else None
                report = find_duplicates(store, dupe_rule(store), kinds=kinds, ids=ids)
            with self.lock:
                self._dupes[key] = (report, time.monotonic())
                while len(self._dupes) > DUPE_REPORTS:
                    gone, _ = self._dupes.popitem(last=False)
                    self._dupe_runs.pop(gone, None)
            return report

    # --- queries --------------------------------------------------------------------------------
    def encode(self, spec: QuerySpec) -> np.ndarray:
        """The query vector for ``spec``. Raises QueryError / QueryImageError / NotFoundError."""
        with self.lock:
            eng = self.sync()
            vector = self.encode_terms(eng, spec)
            self.encodes += 1
            return vector

    def encode_terms(self, eng: Engine, spec: QuerySpec) -> np.ndarray:
        """The page's inputs as weighted terms, combined by the engine as for the CLI and the API."""
        terms: list[Term] = []
        text = spec.text.replace('"', " ").strip()  # quote marks matter to the keyword index only
        if spec.like_id is not None:
            v = eng.store.vector(int(spec.like_id))
            if v is None:
                raise NotFoundError(f"image {spec.like_id} is no longer in the index")
            terms.append(Term("vector", v, 1.0))
        else:
            if spec.upload is not None:
                decoded = read_upload(
                    spec.upload,
                    spec.upload_name or "the upload",
                    max_bytes=self.max_upload_bytes,
                    max_pixels=eng.max_pixels,
                )
                terms.append(Term("image", decoded.image, spec.image_weight if text else 1.0))
            if text:
                terms.append(Term("text", text, 1.0 - spec.image_weight if spec.upload is not None else 1.0))
        if spec.negative.strip():
            terms.append(Term("text", spec.negative.strip(), -1.0))  # as `pixseek search --not`
        return eng.encode_terms(terms)

    def search(
        self,
        q: np.ndarray,
        k: int,
        *,
        filter: Filter | None = None,
        min_score: float | None = None,
        exclude: tuple[int, ...] = (),
    ) -> tuple[list[Result], float]:
        """(results, seconds) for a query vector; no encoding happens here."""
        t0 = time.perf_counter()
        with self.lock:
            res = self.sync().search_vector(q, k, filter=filter, min_score=min_score, exclude=exclude)
        return res, time.perf_counter() - t0

    def search_page(self, q: np.ndarray, n_groups: int, **options: Any) -> tuple[GroupPage, float]:
        """(the page of groups of identical files, seconds) for a query vector: :meth:`Engine.search_page`,
        whose options (filter, words, mode, sort, cut-off...) pass through; no encoding happens here."""
        t0 = time.perf_counter()
        with self.lock:
            page = self.sync().search_page(q, n_groups, **options)
        return page, time.perf_counter() - t0

    def score_scale(self) -> ScoreScale:
        """What strong / good / weak mean for this index and model (cached by the engine)."""
        with self.lock:
            return self.sync().score_scale()

    def selection_size(self, filter: Filter) -> int:
        with self.lock:
            return self.sync().count(filter)

    # --- pictures, by id only -------------------------------------------------------------------
    def row(self, image_id: int) -> ImageRow:
        with self.lock:
            return self.sync().get(int(image_id))

    def text_lines(self, image_id: int) -> list[str]:
        """The lines of text read in the picture (``pixseek index --ocr``), [] when none or not read."""
        with self.lock:
            return [line.text for line in self.sync().store.ocr_lines(int(image_id))]

    def same_content(self, image_id: int) -> tuple[int, ...]:
        """The ids of ``image_id`` and of every identical file (the same content hash)."""
        with self.lock:
            eng = self.sync()
            try:
                digest = eng.get(int(image_id)).hash
            except PixseekError:
                return (int(image_id),)
            return tuple(sorted(set(eng.store.ids_by_hash(digest)) | {int(image_id)}))

    def thumbnail(self, image_id: int, digest: str | None = None) -> bytes:
        """The thumbnail, from memory when it was served lately, else from the disk cache. With the content
        hash a search result carries, a thumbnail in memory costs no database read."""
        if digest is not None:
            with self.lock:
                data = self._thumbs.get(digest)
                if data is not None:
                    self._thumbs.move_to_end(digest)
                    return data
        row = self.row(image_id)
        with self.lock:
            data = self._thumbs.get(row.hash)
            if data is not None:
                self._thumbs.move_to_end(row.hash)
                return data
        data = self.thumbs.get(row)
        with self.lock:
            self._thumbs[row.hash] = data
            while len(self._thumbs) > THUMBS_IN_MEMORY:
                self._thumbs.popitem(last=False)
        return data

    def view(self, image_id: int) -> bytes:
        return self.thumbs.view(self.row(image_id))

    def original(self, image_id: int) -> bytes:
        return self.thumbs.original(self.row(image_id))
