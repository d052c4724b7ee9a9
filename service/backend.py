"""What the search service does, without HTTP: queries through ``Engine.prepare`` + ``Engine.run`` (the one
query path of the CLI and the Python API), pictures by row id only, the index's facts.

Threads: FastAPI runs each request in a thread of its pool, and the engine's store is one SQLite
connection, so every use of the store holds the :class:`~pixseek.search.live.LiveEngine` lock. Encoding
a query (the expensive part) runs outside it, serialised by the engine's own encoder lock, so one
request ranks while another encodes (``split_locks``; ``False`` holds the one lock for the whole query,
which is what ``bench/serve.py`` compares it with). Uploads are decoded outside both locks, and
thumbnails are made outside them too (only the row is read under the lock).
"""

from __future__ import annotations

import os
import threading
import time
from dataclasses import dataclass
from typing import Any, BinaryIO

from pixseek.decode import DEFAULT_MAX_PIXELS
from pixseek.models import Encoder
from pixseek.search import Engine, Filter, Prepared, Result
from pixseek.search.live import LiveEngine
from pixseek.search.stats import collect
from pixseek.search.uploads import DEFAULT_MAX_UPLOAD_BYTES, read_upload
from pixseek.store import DataDir, ImageRow
from pixseek.store.thumbs import Thumbs


@dataclass(frozen=True)
class Upload:
    data: bytes
    name: str = "the upload"
    weight: float = 1.0


@dataclass(frozen=True)
class Ask:
    """One query as the service receives it (after the HTTP layer has parsed and checked its types)."""

    texts: tuple[str, ...] = ()  # each with an optional ::W weight, as on the command line
    negatives: tuple[str, ...] = ()
    uploads: tuple[Upload, ...] = ()
    similar: int | None = None
    mode: str = "hybrid"
    k: int = 20
    offset: int = 0
    min_score: float | None = None
    filter: Filter | None = None


@dataclass(frozen=True)
class Answer:
    results: list[Result]
    labels: list[str | None]  # strong / good / weak per result (None where the score is no cosine)
    more: bool  # whether results follow this page
    seconds: float


class Backend:
    def __init__(
        self,
        db_dir: str | os.PathLike | DataDir | None,
        *,
        encoder: Encoder | None = None,
        max_upload_bytes: int = DEFAULT_MAX_UPLOAD_BYTES,
        max_pixels: int = DEFAULT_MAX_PIXELS,
        split_locks: bool = True,
    ):
        self.live = LiveEngine(db_dir, encoder=encoder, max_pixels=max_pixels)
        self.data_dir = self.live.data_dir
        self.thumbs = Thumbs(self.data_dir)
        self.max_upload_bytes = max_upload_bytes
        self.split_locks = split_locks
        self.queries = 0
        self._count = threading.Lock()

    # --- the index --------------------------------------------------------------------------------
    def engine(self) -> Engine:
        """The synced engine with its encoder loaded (raises while there is no index to search)."""
        return self.live.warm()

    def warm(self) -> Engine:
        """Load everything a first query would wait for: the index, the encoder, the score scale."""
        with self.live.lock:
            eng = self.live.warm()
            eng.score_scale()
            return eng

    def stats(self) -> dict:
        facts = collect(self.data_dir)
        facts["service"] = {"queries": self.queries, "reloads": self.live.reloads}
        return facts

    def close(self) -> None:
        self.live.close()

    # --- queries ----------------------------------------------------------------------------------
    def search(self, ask: Ask) -> Answer:
        """One page of results (``ask.k`` from ``ask.offset``) and whether more follow."""
        t0 = time.perf_counter()
        side = self.engine().encoder.image_size if ask.uploads else None
        images = [  # decoded (or refused) one after the other, outside the locks, at a scale the model can use
            (
                read_upload(
                    u.data, u.name, max_bytes=self.max_upload_bytes, max_pixels=self.live.max_pixels, min_side=side
                ).image,
                u.weight,
            )
            for u in ask.uploads
        ]
        terms: dict[str, Any] = {"similar": ask.similar, "mode": ask.mode}
        if self.split_locks and ask.similar is None:
            prepared = self.engine().prepare(ask.texts, images, ask.negatives, **terms)  # encodes, unlocked
            with self.live.lock:
                results, labels = self._run(self.live.sync(), prepared, ask)
        else:
            with self.live.lock:
                eng = self.engine()
                results, labels = self._run(eng, eng.prepare(ask.texts, images, ask.negatives, **terms), ask)
        with self._count:
            self.queries += 1
        more = len(results) > ask.k
        return Answer(results[: ask.k], labels[: ask.k], more, time.perf_counter() - t0)

    @staticmethod
    def _run(eng: Engine, prepared: Prepared, ask: Ask) -> tuple[list[Result], list[str | None]]:
        """Rank (one result more than asked for, to tell whether more follow) and label each score."""
        results = eng.run(prepared, ask.k + 1, offset=ask.offset, filter=ask.filter, min_score=ask.min_score)
        if prepared.vector is None or not results:
            return results, [None] * len(results)
        scale = eng.score_scale()
        return results, [scale.label(r.score, prepared.kind) for r in results]

    # --- pictures, by id only ---------------------------------------------------------------------
    def row(self, image_id: int) -> ImageRow:
        with self.live.lock:
            return self.live.sync().get(int(image_id))

    def thumbnail(self, row: ImageRow) -> bytes:
        """The thumbnail of a row from :meth:`row` (made and cached on first use, outside the lock)."""
        return self.thumbs.get(row)

    def view(self, image_id: int) -> tuple[ImageRow, bytes]:
        row = self.row(image_id)
        return row, self.thumbs.view(row)

    def original(self, image_id: int) -> tuple[ImageRow, BinaryIO]:
        row = self.row(image_id)
        return row, self.thumbs.open_original(row)
