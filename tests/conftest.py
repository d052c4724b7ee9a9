from __future__ import annotations

import os
from pathlib import Path

import pytest

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
    from pixseek.models import load_torch

    return load_torch("tiny-random", "cpu")


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
    from pixseek.index.indexer import Indexer

    s = Indexer(db, encoder=tiny, batch_size=8).run([corpus])
    assert s.added == 24
    return db, corpus


@pytest.fixture
def ui_index(tmp_path, tiny):
    """(db, root): 24 drawn pictures, one broken file, three dated 2018, indexed by the tiny model."""
    import datetime as dt
    import time

    from imagegen import make_corpus

    from pixseek.index.indexer import Indexer

    root = tmp_path / "photos"
    make_corpus(root, 24)  # set0..set2, .jpg/.png/.webp
    (root / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    old = time.mktime(dt.datetime(2018, 5, 5, 12).timetuple())
    for p in sorted((root / "set2").iterdir())[:3]:
        os.utime(p, (old, old))
    db = tmp_path / "db"
    s = Indexer(db, encoder=tiny, batch_size=8).run([root])
    assert (s.added, s.failed) == (24, 1)
    return db, root
