"""What a search hands out: one ranked :class:`Result` per indexed file (its own module so that the
engine and the grouping of copies, :mod:`pixseek.search.groups`, can both use it without a cycle)."""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass


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
    tags: tuple[str, ...] = ()  # its strongest zero-shot tags, strongest first (pixseek.index.tagging)

    @property
    def name(self) -> str:
        return os.path.basename(self.path)

    @property
    def folder(self) -> str:
        return os.path.dirname(self.path)

    def to_dict(self) -> dict:
        d = asdict(self)
        d["score"] = round(float(self.score), 6)
        d["tags"] = list(self.tags)
        return d
