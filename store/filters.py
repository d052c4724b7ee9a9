"""Metadata filters that narrow the candidates *before* ranking: folder, file type, date, size, tags.

A :class:`Filter` has two faces: the parameterised SQL ``WHERE`` clause the store selects ids with
(:meth:`Store.select_ids`), and a description for people. The matching row ids are then handed to
the vector search (exact scoring of a small selection, or a FAISS ``IDSelector`` for a large one),
so a filtered query still returns its k best matches instead of whatever survives a post-filter.
"""

from __future__ import annotations

import datetime as dt
import math
import os
from dataclasses import dataclass

from pixseek.decode import FORMAT_NAMES
from pixseek.errors import QueryError

MAX_SIDE = 2**31 - 1  # a shorter side beyond any image (and within SQLite's integers)

# Paths equal to a root or inside it, as an index range scan: "root/" <= path < "root0" ('0' follows '/').
# SQL with three parameters, bound with under_params(root).
UNDER_SQL = "path = ? OR (path >= ? AND path < ?)"


def under_params(root: str) -> tuple[str, str, str]:
    prefix = root.rstrip("/") + "/"
    return root, prefix, prefix[:-1] + chr(ord("/") + 1)


# The date a picture carries: its EXIF capture time when the indexer found one, else the file time.
DATE_SQL = "COALESCE(taken_at, mtime_ns / 1e9)"


def _day_start(d: dt.date) -> float:
    """The epoch time a local day starts; days beyond what the platform's clock can express are -inf or
    +inf (the calendar's ends, 0001-01-01 and 9999-12-31, are valid dates)."""
    try:
        return dt.datetime(d.year, d.month, d.day).timestamp()
    except (OverflowError, OSError, ValueError):
        return -math.inf if d.year < 1970 else math.inf


def _day_end(d: dt.date) -> float:
    return math.inf if d == dt.date.max else _day_start(d + dt.timedelta(days=1))


MAX_TAG_LENGTH = 100


def normalize_tag(tag: str) -> str:
    """A tag as the index stores it: lower case, single spaces (``" Ice  Cream"`` -> ``"ice cream"``)."""
    return " ".join(str(tag).lower().split())


def format_name(name: str) -> str:
    """``jpg`` -> ``JPEG``: the format name the index records, from it or a usual extension."""
    key = str(name).strip().lstrip(".").upper()
    for fmt, extensions in FORMAT_NAMES.items():
        if key == fmt or key.lower() in extensions:
            return fmt
    raise QueryError(f"unknown file type {name!r}: use one of {', '.join(FORMAT_NAMES)} (or an extension such as jpg)")


@dataclass(frozen=True)
class Filter:
    folder: str | None = None  # an absolute folder: images in it or below it
    formats: tuple[str, ...] = ()  # Pillow format names ('JPEG', 'PNG', ...); empty = all
    date_from: dt.date | None = None  # inclusive, local time
    date_to: dt.date | None = None  # inclusive, local time (the whole day)
    min_side: int = 0  # the shorter side, in pixels
    tags: tuple[str, ...] = ()  # zero-shot tags the picture must all have (pixseek.index.tagging)

    @property
    def active(self) -> bool:
        return bool(self.folder or self.formats or self.date_from or self.date_to or self.min_side > 0 or self.tags)

    def validate(self) -> Filter:
        if self.folder is not None:
            if "\x00" in self.folder:
                raise QueryError("folder filter contains a NUL character")
            if not os.path.isabs(self.folder):
                raise QueryError(f"folder filter must be an absolute path, not {self.folder!r}")
        if self.date_from and self.date_to and self.date_from > self.date_to:
            raise QueryError(f"date range is empty: {self.date_from} is after {self.date_to}")
        if self.min_side < 0:
            raise QueryError("minimum size must be 0 or more pixels")
        if self.min_side > MAX_SIDE:
            raise QueryError(f"minimum size must be at most {MAX_SIDE:,} pixels")
        for f in self.formats:
            format_name(f)
        for tag in self.tags:
            name = normalize_tag(tag)
            if not name:
                raise QueryError("an empty tag names nothing: give a tag such as dog (`pixseek tags` lists them)")
            if "\x00" in name or len(name) > MAX_TAG_LENGTH:
                raise QueryError(f"not a tag: {name[:40]!r} (a tag is at most {MAX_TAG_LENGTH} characters, no NUL)")
        return self

    def sql(self) -> tuple[str, list]:
        """``(where, params)``; every value is a bound parameter, never pasted into the SQL."""
        self.validate()
        clauses: list[str] = []
        params: list = []
        if self.folder:
            # normpath folds "a/../b" and trailing slashes, so the range test sees a clean prefix.
            folder = os.path.normpath(self.folder)
            clauses.append(f"({UNDER_SQL})")
            params += list(under_params(folder))
        if self.formats:
            clauses.append(f"format IN ({','.join('?' * len(self.formats))})")
            params += [format_name(f) for f in self.formats]
        if self.date_from:
            clauses.append(f"{DATE_SQL} >= ?")
            params.append(_day_start(self.date_from))
        if self.date_to:
            clauses.append(f"{DATE_SQL} < ?")
            params.append(_day_end(self.date_to))
        if self.min_side > 0:
            clauses.append("MIN(width, height) >= ?")
            params.append(int(self.min_side))
        for tag in dict.fromkeys(normalize_tag(t) for t in self.tags):  # every tag must match
            clauses.append("id IN (SELECT image_id FROM tags WHERE tag = ?)")
            params.append(tag)
        return (" AND ".join(clauses) or "1"), params

    def describe(self) -> str:
        parts = []
        if self.folder:
            parts.append(f"in {self.folder}")
        if self.formats:
            parts.append("type " + "/".join(self.formats))
        if self.date_from or self.date_to:
            parts.append(f"dated {self.date_from or '…'} to {self.date_to or '…'}")
        if self.min_side:
            parts.append(f"at least {self.min_side} px")
        if self.tags:
            parts.append("tagged " + " + ".join(dict.fromkeys(normalize_tag(t) for t in self.tags)))
        return ", ".join(parts) or "no filter"


def parse_date(text: str | None) -> dt.date | None:
    """``YYYY-MM-DD`` -> date (for the CLI); raises QueryError with the expected form."""
    if not text:
        return None
    try:
        return dt.date.fromisoformat(text.strip())
    except ValueError:
        raise QueryError(f"invalid date {text!r}: use YYYY-MM-DD") from None
