"""What the database hands out: an indexed image's row, a failed file's record, and vector BLOBs."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class ErrorRecord:
    """A file that failed: its size and mtime then, why (``kind``) and the limit in force."""

    size: int | None
    mtime_ns: int | None
    kind: str | None  # content | io | pixels | size (None: recorded before kinds were kept)
    limit_value: int | None


@dataclass
class ImageRow:
    id: int
    path: str
    root: str
    size: int
    mtime_ns: int
    hash: str
    width: int | None
    height: int | None
    format: str | None
    added_at: float
    updated_at: float
    taken_at: float | None = None

    @property
    def date(self) -> float:
        """When the picture was taken (EXIF) if known, else the file's modification time."""
        return self.taken_at if self.taken_at is not None else self.mtime_ns / 1e9


IMAGE_COLUMNS = "id, path, root, size, mtime_ns, hash, width, height, format, added_at, updated_at, taken_at"


def vec_to_blob(v: np.ndarray) -> bytes:
    """A vector as the database stores it: little-endian float32 bytes."""
    return np.ascontiguousarray(v, dtype="<f4").tobytes()
