"""The indexer's database writer: a thread that commits batches while the model embeds the next one,
and the one-line message for a write that fails (disk full, read-only disk, I/O error)."""

from __future__ import annotations

import errno
import queue
import threading
from collections.abc import Callable

from pixseek.errors import StoreError
from pixseek.store import DataDir, Store


def write_error(dd: DataDir, e: BaseException) -> StoreError:
    """A failed write (disk full, read-only disk, I/O error) as one line; committed work is kept."""
    full = getattr(e, "errno", None) == errno.ENOSPC or "disk is full" in str(e)
    what = "the disk is full" if full else (getattr(e, "strerror", None) or str(e).splitlines()[0])
    return StoreError(
        f"indexing stopped: {what} (writing to {dd.root}); everything committed before is kept and searchable",
        hint="free some space and run the same command again"
        if full
        else "fix the cause and run the same command again",
    )


class Writer(threading.Thread):
    """Applies batches of ops to SQLite and the FAISS cache on its own connection, while the model
    embeds the next batch. At most ``depth`` batches wait; an error stops it and is re-raised to the
    indexer on its next ``put`` or on ``finish``. Ended by a sentinel: :meth:`finish` (all committed,
    errors raised) or :meth:`close` (after an interrupt: commit what is queued, raise nothing)."""

    def __init__(self, data_dir: DataDir, write: Callable[[Store, list], None], depth: int = 2):
        super().__init__(name="pixseek-writer", daemon=True)
        self.data_dir, self.write = data_dir, write
        self._q: queue.Queue = queue.Queue(depth)
        self.error: BaseException | None = None

    def run(self) -> None:
        with Store.open(self.data_dir) as store:
            while True:
                ops = self._q.get()
                if ops is None:
                    return
                if self.error is None:
                    try:
                        self.write(store, ops)
                    except BaseException as e:
                        self.error = e

    def _raise(self) -> None:
        if self.error is not None:
            raise self.error

    def put(self, ops: list) -> None:
        self._raise()
        while True:
            try:
                self._q.put(ops, timeout=0.5)
                return
            except queue.Full:
                self._raise()
                if not self.is_alive():
                    raise RuntimeError("the database writer stopped") from None

    def finish(self) -> None:
        """Wait for every queued batch to be committed (or dropped after an error), then stop; raise
        the error that stopped it, if any."""
        self.close()
        self._raise()

    def close(self) -> None:
        """Stop once the queued batches are committed (safe to call twice, and after an error)."""
        if self.is_alive():
            self._q.put(None)
            self.join()
