"""Where pixseek keeps its data: one data dir holding the SQLite database and the FAISS cache.

Resolution order: an explicit ``--db DIR`` (or ``db_dir=`` argument), then ``$PIXSEEK_DB``, then
``$XDG_DATA_HOME/pixseek`` (``~/.local/share/pixseek``).
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

ENV_DB = "PIXSEEK_DB"
DB_FILE = "pixseek.db"
FAISS_FILE = "vectors.faiss"
FAISS_META_FILE = "vectors.json"
LOCK_FILE = "index.lock"


def default_data_dir() -> Path:
    env = os.environ.get(ENV_DB)
    if env:
        return Path(env).expanduser()
    xdg = os.environ.get("XDG_DATA_HOME") or os.path.join(os.path.expanduser("~"), ".local", "share")
    return Path(xdg) / "pixseek"


def cache_dir() -> Path:
    xdg = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(xdg) / "pixseek"


@dataclass(frozen=True)
class DataDir:
    root: Path

    @classmethod
    def resolve(cls, db_dir: str | os.PathLike | None = None) -> "DataDir":
        root = Path(db_dir).expanduser() if db_dir else default_data_dir()
        # Accept the database file itself as well as its folder.
        if root.name == DB_FILE or (root.suffix == ".db" and root.is_file()):
            root = root.parent
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

    def exists(self) -> bool:
        return self.db.is_file()

    def create(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
