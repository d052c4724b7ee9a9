"""What a search hands out: one ranked :class:`Result` per indexed file, and :class:`Results`, a list of
them that also carries the relevance cut-off of the search (its own module so that the engine and the
grouping of copies, :mod:`pixseek.search.groups`, can both use it without a cycle)."""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import asdict, dataclass

from .cutoff import Cutoff


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

    @property
    def name(self) -> str:
        return os.path.basename(self.path)

    @property
    def folder(self) -> str:
        return os.path.dirname(self.path)

    def to_dict(self) -> dict:
        d = asdict(self)
        d["score"] = round(float(self.score), 6)
        return d


class Results(list[Result]):
    """A page of results (a list of :class:`Result`) and, when a relevance cut-off was asked for, its
    :class:`~pixseek.search.cutoff.Cutoff`: the threshold used and how many results it dropped."""

    def __init__(self, items: Iterable[Result] = (), cutoff: Cutoff | None = None):
        super().__init__(items)
        self.cutoff = cutoff
