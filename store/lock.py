"""The data-dir lock: one writer (``pixseek index`` or ``pixseek doctor``) per data dir at a time.

An exclusive, non-blocking ``flock`` on ``DATA_DIR/lock``, holding the owner's pid for the message the
next writer sees. The kernel drops it when the process dies, and forked decode workers close their
copy at fork, so a killed indexer never leaves a data dir locked.
"""

from __future__ import annotations

import fcntl
import os

from pixseek.errors import IndexLockedError, StoreError

from .database import check_ours
from .paths import DataDir

_HELD_LOCKS: set[int] = set()


def _drop_locks_in_child() -> None:
    # A forked decode worker must not keep the data-dir lock alive after the indexer is killed.
    for fd in list(_HELD_LOCKS):
        try:
            os.close(fd)
        except OSError:
            pass
    _HELD_LOCKS.clear()


os.register_at_fork(after_in_child=_drop_locks_in_child)


class DirLock:
    """An exclusive, non-blocking lock on a data dir, held for the whole run (released on exit/kill)."""

    def __init__(self, data_dir: DataDir):
        self._data_dir = data_dir
        self.path = data_dir.lock
        self.fd: int | None = None

    def __enter__(self) -> DirLock:
        check_ours(self._data_dir)  # never even a lock file beside another program's database
        try:
            self.fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as e:  # a read-only disk or folder, or one that is not ours to write
            raise StoreError(
                f"cannot write to {self.path.parent}: {e.strerror or e}",
                hint="a read-only index can be searched (search, stats, errors, doctor --check-only), not changed",
            ) from None
        try:
            fcntl.flock(self.fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(self.fd, 32, 0).decode(errors="replace").strip() or "?"
            os.close(self.fd)
            self.fd = None
            raise IndexLockedError(
                f"another pixseek index (pid {holder}) is writing to {self.path.parent}; wait for it to finish"
            ) from None
        os.ftruncate(self.fd, 0)
        os.pwrite(self.fd, str(os.getpid()).encode(), 0)
        _HELD_LOCKS.add(self.fd)
        return self

    @staticmethod
    def holder(data_dir: DataDir) -> int | None:
        """The pid of the writer holding ``data_dir``'s lock now, or None; reads only (never takes it)."""
        try:
            fd = os.open(data_dir.lock, os.O_RDONLY)
        except OSError:
            return None
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
            fcntl.flock(fd, fcntl.LOCK_UN)
            return None
        except BlockingIOError:
            text = os.pread(fd, 32, 0).decode(errors="replace").strip()
            return int(text) if text.isdigit() else -1
        finally:
            os.close(fd)

    def __exit__(self, *exc: object) -> None:
        if self.fd is not None:
            _HELD_LOCKS.discard(self.fd)
            os.close(self.fd)
            self.fd = None
