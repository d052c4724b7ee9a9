"""Where pixseek keeps its data: one data dir holding the SQLite database and the FAISS cache.

Resolution order: an explicit ``--db DIR`` (or ``db_dir=`` argument), then ``$PIXSEEK_DB``, then
``$XDG_DATA_HOME/pixseek`` (``~/.local/share/pixseek``); see :mod:`pixseek.settings`.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from pixseek import settings
from pixseek.errors import StoreError

DB_FILE = "pixseek.db"
FAISS_FILE = "vectors.faiss"
FAISS_META_FILE = "vectors.json"
LOCK_FILE = "index.lock"
THUMB_DIR = "thumbs"
TUNING_QUERIES_FILE = "tuning-queries.npy"


@dataclass(frozen=True)
class DataDir:
    root: Path

    @classmethod
    def resolve(cls, db_dir: str | os.PathLike | None = None) -> DataDir:
        """The data dir named by ``db_dir`` (a folder, or its ``pixseek.db``), else the settings' default.

        Any other file is refused: pixseek never puts a ``pixseek.db`` beside a file it was pointed at.
        """
        root = Path(db_dir).expanduser() if db_dir else settings.data_dir()
        if root.name == DB_FILE:  # the database file itself: its folder
            root = root.parent
        elif root.is_file():
            raise StoreError(
                f"{root} is a file, not a pixseek data dir", hint="give the folder that holds (or will hold) pixseek.db"
            )
        return cls(root.absolute())

    @property
    def db(self) -> Path:
        return self.root / DB_FILE

    @property
    def faiss(self) -> Path:
        return self.root / FAISS_FILE

    @property
    def faiss_meta(self) -> Path:
        return self.root / FAISS_META_FILE

    @property
    def lock(self) -> Path:
        return self.root / LOCK_FILE

    @property
    def thumbs(self) -> Path:
        return self.root / THUMB_DIR

    @property
    def tuning_queries(self) -> Path:
        return self.root / TUNING_QUERIES_FILE

    def exists(self) -> bool:
        """Whether an index is here: a database file with something in it (an empty one is none yet)."""
        try:
            return self.db.is_file() and self.db.stat().st_size > 0
        except OSError:
            return False

    def create(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
