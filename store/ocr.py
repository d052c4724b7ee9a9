"""Text read in pictures: what the OCR stage has to read, what it found, and the reads the page and a
keyword index need. Mixed into :class:`~pixseek.store.database.Store`; the SQL stays here.

Tables (migration ``m010_ocr``): ``ocr_images`` holds one row per picture read, with the content hash
and the OCR model it was read with and its ``status`` (``text``, ``none`` or ``error``); ``ocr_lines``
one row per line of text with its score and box (fractions of the picture's width and height, EXIF
orientation applied). Text is served only while the picture's content is the one that was read: a
changed file has no text until the stage reads it again (its ``images.updated_at`` moved on, which
tells a keyword index to refresh it). Each committed batch of the stage takes the next
``meta.ocr_generation``, so a keyword index can ask for the text that changed since it last looked.
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import NamedTuple

from . import keywords

# What a picture's OCR row must match for its text to be served: the row's content is the image's.
_CURRENT = "o.hash = i.hash"
# Pictures the stage has to read with model ?: never read, changed since, read by another model, or
# failed for a reason that may pass (I/O, or a pixel cap that a later run may raise: checked from the
# header, so trying again costs little).
_PENDING = (
    "FROM images i LEFT JOIN ocr_images o ON o.image_id = i.id WHERE o.image_id IS NULL OR o.hash != i.hash"
    " OR o.model != ? OR (o.status = 'error' AND o.kind IN ('io', 'pixels'))"
)


@dataclass(frozen=True)
class OcrLine:
    """One line of text in a picture: its box as (x0, y0, x1, y1) and as four corners, in fractions."""

    text: str
    score: float
    box: tuple[float, float, float, float]
    quad: tuple[tuple[float, float], ...]

    def to_dict(self) -> dict:
        return {"text": self.text, "score": self.score, "box": list(self.box), "quad": [list(p) for p in self.quad]}


@dataclass(frozen=True)
class OcrState:
    """Whether and how a picture was read: ``text``, ``none`` (no text found) or ``error``."""

    status: str
    model: str
    checked_at: float | None
    boxes: int  # boxes the detection pass found
    recognised: int  # boxes the gate sent to recognition


class OcrText(NamedTuple):
    image_id: int
    text: str  # the lines joined by newlines; "" when the picture holds no text
    generation: int  # the stage's batch that read it (see ``ocr_generation``)


@dataclass
class OcrJob:
    """A picture the stage has to read: its row, file, content, and an already-read twin (same content
    and model) whose text it can take without reading."""

    image_id: int
    path: str
    hash: str
    size: int
    mtime_ns: int
    twin: int | None = None


@dataclass
class OcrOutcome:
    """What reading one picture gave: lines as (text, score, corners), or an error and its kind."""

    job: OcrJob
    model: str  # the OCR model version that read it
    lines: list[tuple[str, float, tuple[tuple[float, float], ...]]] = field(default_factory=list)
    boxes: int = 0
    recognised: int = 0
    error: str | None = None
    kind: str | None = None  # content | io | ... (an ``io`` error is read again on the next run)

    @property
    def status(self) -> str:
        return "error" if self.error is not None else ("text" if self.lines else "none")


class OcrLog:
    conn: sqlite3.Connection

    def _set(self, key: str, value: str) -> None:
        raise NotImplementedError

    def meta(self, key: str, default: str | None = None) -> str | None:
        raise NotImplementedError

    # --- the stage -------------------------------------------------------------------------------
    def ocr_pending(self, model: str) -> list[OcrJob]:
        """Pictures to read with ``model``: never read, changed since, read by another model, or failed
        for a reason that may pass (I/O, a pixel cap). New and changed ones first, then the re-reads, by id."""
        q = (
            "SELECT i.id, i.path, i.hash, i.size, i.mtime_ns, "
            " (SELECT o2.image_id FROM images i2 JOIN ocr_images o2 ON o2.image_id = i2.id"
            "  WHERE i2.hash = i.hash AND o2.hash = i2.hash AND o2.model = ? AND o2.status != 'error' LIMIT 1)"
            f" {_PENDING} ORDER BY (o.image_id IS NOT NULL AND o.hash = i.hash), i.id"
        )
        return [OcrJob(*r) for r in self.conn.execute(q, (model, model))]

    @property
    def ocr_generation(self) -> int:
        """The last committed batch of the OCR stage (0: none yet)."""
        return int(self.meta("ocr_generation") or 0)

    def save_ocr(self, outcomes: Iterable[OcrOutcome]) -> int:
        """Record a batch of readings (call inside a transaction); returns the batch's generation. A
        picture whose row changed or went away since it was read is skipped."""
        gen = self.ocr_generation + 1
        now = time.time()
        for o in outcomes:
            j = o.job
            if not self.conn.execute("SELECT 1 FROM images WHERE id = ? AND hash = ?", (j.image_id, j.hash)).fetchone():
                continue
            self.conn.execute("DELETE FROM ocr_lines WHERE image_id = ?", (j.image_id,))
            self.conn.executemany(
                "INSERT INTO ocr_lines(image_id, line, text, score, x0, y0, x1, y1, quad) VALUES(?,?,?,?,?,?,?,?,?)",
                (
                    (j.image_id, n, text, score, *_bounds(quad), json.dumps([list(p) for p in quad]))
                    for n, (text, score, quad) in enumerate(o.lines)
                ),
            )
            self.conn.execute(
                "INSERT OR REPLACE INTO ocr_images(image_id, hash, model, status, kind, boxes, recognised, text,"
                " generation, checked_at) VALUES(?,?,?,?,?,?,?,?,?,?)",
                (j.image_id, j.hash, o.model, o.status, o.kind, o.boxes, o.recognised, _joined(o), gen, now),
            )
            if o.error is None:
                self.conn.execute("DELETE FROM errors WHERE path = ? AND stage = 'ocr'", (j.path,))
        self._set("ocr_generation", str(gen))
        return gen

    def ocr_reading_of(self, source_id: int, job: OcrJob) -> OcrOutcome | None:
        """The reading of picture ``source_id`` as ``job``'s (an identical file's), or None when the
        source is not a successful reading of that content (any more)."""
        src = self.conn.execute(
            "SELECT o.model, o.boxes, o.recognised FROM ocr_images o JOIN images i ON i.id = o.image_id"
            f" WHERE o.image_id = ? AND {_CURRENT} AND i.hash = ? AND o.status != 'error'",
            (int(source_id), job.hash),
        ).fetchone()
        if src is None:
            return None
        lines = [(ln.text, ln.score, ln.quad) for ln in self.ocr_lines(source_id)]
        return OcrOutcome(job, src[0], lines, src[1] or 0, src[2] or 0)

    # --- reads -----------------------------------------------------------------------------------
    def ocr_state(self, image_id: int) -> OcrState | None:
        """How the picture's current content was read, or None when it has not been (yet)."""
        r = self.conn.execute(
            "SELECT o.status, o.model, o.checked_at, o.boxes, o.recognised FROM ocr_images o"
            f" JOIN images i ON i.id = o.image_id WHERE o.image_id = ? AND {_CURRENT}",
            (int(image_id),),
        ).fetchone()
        return OcrState(r[0], r[1], r[2], r[3] or 0, r[4] or 0) if r else None

    def ocr_lines(self, image_id: int) -> list[OcrLine]:
        """The lines of text read in a picture, in reading order, with their boxes ([] when none or
        not read yet: :meth:`ocr_state` tells which)."""
        rows = self.conn.execute(
            "SELECT l.text, l.score, l.x0, l.y0, l.x1, l.y1, l.quad FROM ocr_lines l"
            " JOIN ocr_images o ON o.image_id = l.image_id JOIN images i ON i.id = l.image_id"
            f" WHERE l.image_id = ? AND {_CURRENT} ORDER BY l.line",
            (int(image_id),),
        )
        return [
            OcrLine(t, s, (x0, y0, x1, y1), tuple(tuple(p) for p in json.loads(q))) for t, s, x0, y0, x1, y1, q in rows
        ]

    def ocr_text(self, ids: Iterable[int]) -> dict[int, str]:
        """The text of each picture that has been read (current content), by id."""
        ids = [int(i) for i in ids]
        out: dict[int, str] = {}
        for k in range(0, len(ids), 500):
            chunk = ids[k : k + 500]
            q = (
                "SELECT o.image_id, o.text FROM ocr_images o JOIN images i ON i.id = o.image_id"
                f" WHERE o.image_id IN ({','.join('?' * len(chunk))}) AND {_CURRENT} AND o.status != 'error'"
            )
            out.update((r[0], r[1] or "") for r in self.conn.execute(q, chunk))
        return out

    def iter_ocr_text(self, since: int = 0) -> Iterator[OcrText]:
        """(image id, text, generation) of every picture read in a batch after generation ``since``
        (all of them by default), in generation order: what a keyword index adds or replaces; keep the
        largest generation seen for the next call. Pictures found without text come with "" (their old
        text, if any, must go). Not in it: rows the indexer deleted (their text went with them) or
        gave new content (no text until read again; :meth:`ocr_text` answers for them)."""
        q = (
            "SELECT o.image_id, coalesce(o.text, ''), o.generation FROM ocr_images o JOIN images i ON i.id = o.image_id"
            f" WHERE o.generation > ? AND {_CURRENT} AND o.status != 'error' ORDER BY o.generation, o.image_id"
        )
        for r in self.conn.execute(q, (int(since),)):
            yield OcrText(*r)

    def ocr_counts(self, model: str | None = None) -> dict[str, int]:
        """Pictures read (current content): with text, without, failed; and, given the model the stage
        reads with now, how many it has left to read."""
        row = self.conn.execute(
            "SELECT count(*), sum(o.status = 'text'), sum(o.status = 'none'), sum(o.status = 'error')"
            f" FROM ocr_images o JOIN images i ON i.id = o.image_id WHERE {_CURRENT}"
        ).fetchone()
        out = {"read": row[0] or 0, "with_text": row[1] or 0, "no_text": row[2] or 0, "failed": row[3] or 0}
        if model is not None:
            out["pending"] = self.conn.execute(f"SELECT count(*) {_PENDING}", (model,)).fetchone()[0]
        return out


def _bounds(quad: tuple[tuple[float, float], ...]) -> tuple[float, float, float, float]:
    xs, ys = [p[0] for p in quad], [p[1] for p in quad]
    return min(xs), min(ys), max(xs), max(ys)


def _joined(o: OcrOutcome) -> str | None:
    return None if o.error is not None else "\n".join(text for text, _, _ in o.lines)


# --- what the keyword index reads: the text in each picture (while it matches the picture's content) ------
def _read_since(conn: sqlite3.Connection, since: float) -> list[int]:
    return [r[0] for r in conn.execute("SELECT image_id FROM ocr_images WHERE checked_at >= ?", (since,))]


@keywords.source("ocr", "ocr_images", _read_since)
def _ocr_words(conn: sqlite3.Connection, ids: Sequence[int] | None) -> Iterable[tuple[int, str]]:
    where = f"AND o.image_id IN ({','.join('?' * len(ids))})" if ids is not None else ""
    sql = (
        "SELECT o.image_id, o.text FROM ocr_images o JOIN images i ON i.id = o.image_id AND i.hash = o.hash "
        f"WHERE o.status = 'text' {where}"
    )
    return conn.execute(sql, list(ids or ()))
