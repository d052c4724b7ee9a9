from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


@pytest.fixture(scope="session")
def session_cache(tmp_path_factory):
    return tmp_path_factory.mktemp("xdg-cache")


@pytest.fixture(autouse=True)
def _isolated_env(tmp_path, monkeypatch, session_cache):
    """No test touches the user's data or cache dirs (the cache of exported encoders is per session)."""
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg-data"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(session_cache))
    monkeypatch.delenv("PIXSEEK_DB", raising=False)
    monkeypatch.delenv("PIXSEEK_MODEL", raising=False)


@pytest.fixture(scope="session")
def tiny():
    """The tiny random-init model (loaded once per session)."""
    from index.embed import Embedder

    return Embedder.from_spec("tiny-random", "cpu")


@pytest.fixture
def db(tmp_path) -> Path:
    return tmp_path / "db"


@pytest.fixture
def corpus(tmp_path) -> Path:
    from imagegen import make_corpus

    root = tmp_path / "photos"
    make_corpus(root, 24)
    return root


@pytest.fixture
def index_dir(tiny, db, corpus):
    """(db dir, corpus root) with the corpus indexed by the tiny model."""
    from index.indexer import Indexer

    s = Indexer(db, embedder=tiny, batch_size=8).run([corpus])
    assert s.added == 24
    return db, corpus
