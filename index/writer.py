"""The indexer's database writer: a thread that commits batches while the model embeds the next one,
and the one-line message for a write that fails (disk full, read-only disk, I/O error)."""
from __future__ import annotations

import errno
import queue
import threading
from typing import Callable

from .errors import StoreError
from .paths import DataDir
from .store import Store


def write_error(dd: DataDir, e: BaseException) -> StoreError:
    """A failed write (disk full, read-only disk, I/O error) as one line; committed work is kept."""
    full = getattr(e, "errno", None) == errno.ENOSPC or "disk is full" in str(e)
    what = "the disk is full" if full else (getattr(e, "strerror", None) or str(e).splitlines()[0])
    return StoreError(f"indexing stopped: {what} (writing to {dd.root}); everything committed before is "
                      f"kept and searchable", hint="free some space and run the same command again" if full
                      else "fix the cause and run the same command again")


class Writer(threading.Thread):
    """Applies batches of ops to SQLite and the FAISS cache on its own connection, while the model
    embeds the next batch. At most ``depth`` batches wait; an error stops it and is re-raised to the
    indexer on its next ``put`` or on ``finish``."""

    def __init__(self, data_dir: DataDir, write: Callable[[Store, list], None], depth: int = 2):
        super().__init__(name="pixseek-writer", daemon=True)
        self.data_dir, self.write = data_dir, write
        self.q: queue.Queue = queue.Queue(depth)
        self.error: BaseException | None = None
        self.done = 0

    def run(self) -> None:
        store = Store.open(self.data_dir)
        try:
            while True:
                ops = self.q.get()
                if ops is None:
                    return
                if self.error is None:
                    try:
                        self.write(store, ops)
                        self.done += len(ops)
                    except BaseException as e:  # noqa: BLE001 - handed to the indexer thread
                        self.error = e
        finally:
            store.close()

    def _raise(self) -> None:
        if self.error is not None:
            raise self.error

    def put(self, ops: list) -> None:
        self._raise()
        while True:
            try:
                self.q.put(ops, timeout=0.5)
                return
            except queue.Full:
                self._raise()
                if not self.is_alive():
                    raise RuntimeError("the database writer stopped")

    def finish(self) -> None:
        """Wait for every queued batch to be committed (or dropped after an error), then stop."""
        if self.is_alive():
            self.q.put(None)
            self.join()
        self._raise()
