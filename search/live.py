"""One engine for a long-lived process that follows the index: the search page and the search service.

A :class:`LiveEngine` holds the open :class:`~pixseek.search.Engine` (model and vectors loaded once)
for every thread of the process. :meth:`LiveEngine.sync` opens the index if it has appeared since the
process started and reloads the vectors when an index run has changed them (``Engine.refresh``).
The engine's store is one SQLite connection: hold :attr:`LiveEngine.lock` around ``sync`` and every
use of the store (ranking, rows). Encoding needs no lock of the caller's (the engine serialises its
encoder), so ``Engine.prepare`` may run outside it once the encoder has loaded (:meth:`warm`).
"""

from __future__ import annotations

import os
import threading

from pixseek.decode import DEFAULT_MAX_PIXELS
from pixseek.errors import IndexNotFoundError
from pixseek.models import Encoder
from pixseek.store import DataDir

from .engine import Engine


class LiveEngine:
    def __init__(
        self,
        db_dir: str | os.PathLike | DataDir | None,
        *,
        encoder: Encoder | None = None,
        model: str | None = None,
        device: str | None = None,
        max_pixels: int = DEFAULT_MAX_PIXELS,
    ):
        self.data_dir = db_dir if isinstance(db_dir, DataDir) else DataDir.resolve(db_dir)
        self.lock = threading.RLock()
        self.engine: Engine | None = None
        self.max_pixels = max_pixels
        self.reloads = 0  # times the vectors were reloaded after an index run
        self._encoder, self._model, self._device = encoder, model, device

    def sync(self) -> Engine:
        """The engine, opened if the index has appeared, reloaded if an index run changed it.

        Raises IndexNotFoundError / EmptyIndexError / StoreError while there is nothing to search.
        """
        with self.lock:
            if self.engine is None:
                if not self.data_dir.exists():
                    raise IndexNotFoundError(
                        f"no pixseek index in {self.data_dir.root}", hint="build one with: pixseek index PATH"
                    )
                self.engine = Engine.open(
                    self.data_dir,
                    shared=True,
                    encoder=self._encoder,
                    model=self._model,
                    device=self._device,
                    max_pixels=self.max_pixels,
                )
            elif self.engine.refresh():
                self.reloads += 1
            return self.engine

    def warm(self) -> Engine:
        """:meth:`sync`, with the query encoder loaded and one text encoded (an ONNX session is made on
        its first use), so the first query pays no start-up."""
        with self.lock:
            eng = self.sync()
            if not eng.encoder_loaded:
                eng.encode_text("a photo")
            return eng

    def close(self) -> None:
        with self.lock:
            if self.engine is not None:
                self.engine.close()
                self.engine = None
