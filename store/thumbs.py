"""The thumbnail cache: small WebP copies of indexed images, made on first view, kept on disk.

Thumbnails live in ``<data dir>/thumbs/<hash[:2]>/<hash>-<side>.webp``, keyed by content hash, so a
moved or renamed file keeps its thumbnail and a changed file gets a new one. Files are written
atomically; a truncated or unreadable thumbnail is detected (RIFF length check) and made again.
Only rows of the index are ever read: callers pass an :class:`ImageRow`, never a path. A row's original
is a local file or a URL object, read through :mod:`pixseek.sources`.
"""

from __future__ import annotations

import contextlib
import io
import logging
import struct
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

from pixseek import sources
from pixseek.decode import DEFAULT_MAX_PIXELS, open_image
from pixseek.errors import ImageError
from pixseek.fileio import atomic_write

from .database import ImageRow
from .paths import DataDir

THUMB_SIDE = 320  # longest side in pixels: sharp in a 4-5 column grid on a HiDPI screen
VIEW_SIDE = 2048  # the "open" view: big enough to inspect, never the 50 MP original
log = logging.getLogger("pixseek")


@dataclass
class Audit:
    """What :meth:`Thumbs.audit` found in the cache."""

    ok: int = 0
    damaged: list[Path] = field(default_factory=list)  # truncated or unreadable files
    orphans: list[Path] = field(default_factory=list)  # of content no longer indexed, and stray temp files


def valid_webp(data: bytes) -> bool:
    """A complete RIFF/WEBP file: the header's length matches what is on disk."""
    if len(data) < 12 or data[:4] != b"RIFF" or data[8:12] != b"WEBP":
        return False
    return struct.unpack("<I", data[4:8])[0] + 8 == len(data)


class Thumbs:
    def __init__(self, data_dir: DataDir, side: int = THUMB_SIDE, max_pixels: int = DEFAULT_MAX_PIXELS):
        self.root = data_dir.thumbs
        self.side = int(side)
        self.max_pixels = max_pixels

    def path_for(self, digest: str) -> Path:
        if not digest or not all(c in "0123456789abcdef" for c in digest):
            raise ValueError(f"not a content hash: {digest!r}")
        return self.root / digest[:2] / f"{digest}-{self.side}.webp"

    def cached(self, row: ImageRow) -> bytes | None:
        try:
            data = self.path_for(row.hash).read_bytes()
        except OSError:
            return None
        return data if valid_webp(data) else None

    def get(self, row: ImageRow) -> bytes:
        """The thumbnail of ``row`` (WebP bytes), made and cached if missing or damaged.

        Raises ImageError when the original can no longer be read (moved away, deleted, damaged).
        """
        data = self.cached(row)
        if data is not None:
            return data
        if self.path_for(row.hash).exists():
            log.warning("thumbnail of %s was damaged; making it again", row.path)
        data = self._render(row, self.side, "WEBP", quality=80, method=4)
        if self._unchanged(row):  # never file a thumbnail of new content under the old hash
            self._write(self.path_for(row.hash), data)
        return data

    def view(self, row: ImageRow, side: int = VIEW_SIDE) -> bytes:
        """A JPEG of ``row`` no larger than ``side`` on its longest edge, for the full-image view."""
        return self._render(row, side, "JPEG", quality=90)

    def original(self, row: ImageRow) -> bytes:
        """The original file's bytes (for download). Raises ImageError when it cannot be read."""
        with self.open_original(row) as f:
            try:
                return f.read()
            except OSError as e:
                raise ImageError(f"cannot read {row.path}: {e.strerror or e}", stage="read") from None

    def open_original(self, row: ImageRow) -> BinaryIO:
        """The original file (or URL object), open for reading (to stream it). Raises ImageError when it
        cannot be opened or is no longer a regular file (a FIFO put in its place would block a read for ever)."""
        try:
            return sources.open_binary(row.path)
        except OSError as e:
            raise ImageError(f"cannot read {row.path}: {getattr(e, 'strerror', None) or e}", stage="read") from None

    # --- internals --------------------------------------------------------------------------------
    def _unchanged(self, row: ImageRow) -> bool:
        try:
            return sources.stat(row.path) == (row.size, row.mtime_ns)
        except OSError:
            return False

    def _render(self, row: ImageRow, side: int, fmt: str, **save) -> bytes:
        d = open_image(row.path, max_pixels=self.max_pixels, min_side=side)
        img = d.image
        img.thumbnail((side, side))
        buf = io.BytesIO()
        img.save(buf, fmt, **save)
        return buf.getvalue()

    @staticmethod
    def _write(path: Path, data: bytes) -> None:
        with contextlib.suppress(OSError):  # a read-only or full disk: serve the thumbnail without caching it
            atomic_write(path, data)

    # --- maintenance (pixseek doctor) -------------------------------------------------------------
    def audit(self, indexed_hashes: set[str]) -> Audit:
        """Check every cached thumbnail: complete, and of content that is still indexed."""
        out = Audit()
        for p in self.root.rglob("*.webp"):
            try:
                good = valid_webp(p.read_bytes())
            except OSError:
                good = False
            if not good:
                out.damaged.append(p)
            elif p.name.split("-", 1)[0] not in indexed_hashes:
                out.orphans.append(p)
            else:
                out.ok += 1
        out.orphans += self.root.rglob(".*.tmp")
        return out

    def remove(self, paths: Iterable[Path]) -> None:
        """Delete cached thumbnails (each is made again on its next view)."""
        for p in paths:
            if p.is_relative_to(self.root):
                p.unlink(missing_ok=True)
