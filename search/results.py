"""What a search hands out: one ranked :class:`Result` per indexed file, and :class:`Results`, a list of
them that also carries the relevance cut-off of the search (its own module so that the engine and the
grouping of copies, :mod:`pixseek.search.groups`, can both use it without a cycle)."""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from pixseek.errors import QueryError
from pixseek.exif import camera_name
from pixseek.store.rows import ImageRow, Place

from .cutoff import Cutoff

# How results may be ordered: by score (the ranking), or the ranked matches by date, newest or oldest first.
SORTS = ("score", "newest", "oldest")

MEANING = "image meaning"  # a result's ``why`` when its vector matched the query


@dataclass(frozen=True)
class Result:
    rank: int
    id: int
    path: str
    score: float
    width: int | None
    height: int | None
    format: str | None
    size: int
    mtime: float
    taken_at: float | None = None  # EXIF capture time, when the file had one
    hash: str = ""  # the file's content hash: identical files (copies) share it; "" when unknown
    root: str = ""  # the indexed root folder the file was found under
    camera_make: str | None = None  # EXIF Make, Model and lens, as the file says them
    camera_model: str | None = None
    lens: str | None = None
    latitude: float | None = None  # EXIF GPS position in degrees (south and west negative)
    longitude: float | None = None
    altitude: float | None = None  # metres above sea level
    place: Place | None = None  # the named place nearest to the position (offline GeoNames)

    why: tuple[str, ...] = ()  # what it matched on: "image meaning", "file name", "text in image", ...
    tags: tuple[str, ...] = ()  # its strongest zero-shot tags, strongest first (pixseek.index.tagging)

    @classmethod
    def from_row(
        cls, rank: int, score: float, r: ImageRow, why: tuple[str, ...] = (), tags: tuple[str, ...] = ()
    ) -> Result:
        return cls(
            rank,
            r.id,
            r.path,
            score,
            r.width,
            r.height,
            r.format,
            r.size,
            r.mtime_ns / 1e9,
            r.taken_at,
            r.hash or "",
            r.root or "",
            r.camera_make,
            r.camera_model,
            r.lens,
            r.gps_lat,
            r.gps_lon,
            r.gps_alt,
            r.place,
            why,
            tags,
        )

    @property
    def name(self) -> str:
        return os.path.basename(self.path)

    @property
    def folder(self) -> str:
        return os.path.dirname(self.path)

    @property
    def date(self) -> float:
        """When the picture was taken (EXIF) if known, else the file's modification time (epoch seconds)."""
        return self.taken_at if self.taken_at is not None else self.mtime

    @property
    def camera(self) -> str | None:
        """The camera as people name it ("Canon EOS R5", "Apple iPhone 12 Pro"), or None."""
        return camera_name(self.camera_make, self.camera_model)

    @property
    def place_name(self) -> str | None:
        """ "Paris, Île-de-France, France", or None."""
        return self.place.name if self.place else None

    def to_dict(self) -> dict:
        d = dataclasses.asdict(self)
        d["score"] = round(float(self.score), 6)
        d["why"] = list(self.why)
        d["date"] = self.date
        d["camera"] = self.camera
        d["place"] = self.place.to_dict() if self.place else None
        d["tags"] = list(self.tags)
        return d


def by_date(results: Sequence[Result], sort: str) -> list[Result]:
    """``results`` in the order ``sort`` asks for, ranks renumbered from the first one's rank: "score"
    keeps the ranking; "newest" / "oldest" order by date (EXIF capture time, else file time), ties in
    ranking order."""
    if sort not in SORTS:
        raise QueryError(f"unknown sort {sort!r}: use one of {', '.join(SORTS)}")
    if sort == "score" or not results:
        return list(results)
    ordered = sorted(results, key=lambda r: r.date, reverse=sort == "newest")  # stable: ties keep their rank order
    first = min(r.rank for r in results)
    return [dataclasses.replace(r, rank=first + i) for i, r in enumerate(ordered)]


class Results(list[Result]):
    """A page of results (a list of :class:`Result`) and, when a relevance cut-off was asked for, its
    :class:`~pixseek.search.cutoff.Cutoff`: the threshold used and how many results it dropped."""

    def __init__(self, items: Iterable[Result] = (), cutoff: Cutoff | None = None):
        super().__init__(items)
        self.cutoff = cutoff
