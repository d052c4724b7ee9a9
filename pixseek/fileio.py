"""Atomic file writes, for every file pixseek reads back: caches, exports, checkpoints, manifests.

A reader sees the old file or the new one, never half of one: the content goes to a temporary file
beside the target (same folder, so the same file system; named per process and thread), optionally
fsync'ed, then ``os.replace`` puts it in place. On any error the temporary file is removed and the
target is untouched. (Bulk outputs such as a dataset's extracted pictures are written directly and
made valid by a marker file written last.)
"""

from __future__ import annotations

import contextlib
import os
import shutil
import threading
from collections.abc import Iterator
from pathlib import Path


def _temp_beside(path: Path, suffix: str = "") -> Path:
    # Hidden, unique per process, and ending like the target (np.save and friends add suffixes otherwise).
    return path.with_name(f".{path.name}.{os.getpid()}-{threading.get_ident()}.tmp{suffix}")


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, *, fsync: bool = False, keep_suffix: bool = False) -> Iterator[Path]:
    """Yield a temporary path to write ``path``'s new content to; it replaces ``path`` when the block ends.

    ``keep_suffix``: the temporary name ends in the target's suffix (for writers that append one, such
    as ``np.save``). ``fsync``: flush the content to disk before the swap.
    """
    target = Path(path)
    tmp = _temp_beside(target, target.suffix if keep_suffix else "")
    target.parent.mkdir(parents=True, exist_ok=True)
    try:
        yield tmp
        if fsync:
            with open(tmp, "rb") as f:
                os.fsync(f.fileno())
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise


def atomic_write(path: str | os.PathLike, data: bytes | str, *, fsync: bool = False) -> None:
    """Write ``data`` (text as UTF-8) to ``path`` atomically."""
    with atomic_path(path, fsync=fsync) as tmp:
        if isinstance(data, str):
            tmp.write_text(data, encoding="utf-8")
        else:
            tmp.write_bytes(data)


@contextlib.contextmanager
def atomic_dir(path: str | os.PathLike) -> Iterator[Path]:
    """Yield an empty temporary folder; it replaces the folder ``path`` when the block ends.

    The old folder is removed just before the swap, so a crash in that instant leaves no folder (which
    readers treat as "not there yet"), never a mix of old and new files.
    """
    target = Path(path)
    tmp = _temp_beside(target)
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    try:
        yield tmp
        shutil.rmtree(target, ignore_errors=True)
        os.replace(tmp, target)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
