"""An indexer killed mid-run (kill -9 or Ctrl-C) loses nothing, and the re-run completes the job."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from imagegen import make_corpus

from pixseek.index.indexer import Indexer
from pixseek.store.database import Store, peek_count
from pixseek.store.vectors import VectorIndex

N = 160


def _start(root: Path, db: Path) -> subprocess.Popen:
    env = dict(os.environ)
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "pixseek",
            "index",
            str(root),
            "--db",
            str(db),
            "--model",
            "tiny-random",
            "--batch-size",
            "4",
            "--workers",
            "1",
        ],
        cwd=db.parent,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        # A runner started in the background (no job control) passes SIGINT on as ignored, and Python
        # then never turns it into KeyboardInterrupt: give the indexer the default disposition.
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )


def _wait_for_rows(proc, db: Path, at_least: int, timeout: float = 180) -> int:
    t0 = time.time()
    while time.time() - t0 < timeout:
        n = peek_count(db)
        if n >= at_least:
            return n
        if proc.poll() is not None:
            pytest.fail(f"indexer ended early: {proc.stderr.read()}")
        time.sleep(0.05)
    proc.kill()
    pytest.fail("indexer made no progress")


@pytest.fixture
def big_corpus(tmp_path):
    root = tmp_path / "many"
    make_corpus(root, N)
    return root


def _check_complete(db: Path, root: Path, clean: dict[str, np.ndarray]):
    st = Store.open(db)
    try:
        assert st.integrity_check() == "ok"
        paths = [r[0] for r in st.conn.execute("SELECT path FROM images")]
        assert len(paths) == len(set(paths)) == N
        assert set(paths) == {str(p) for p in root.rglob("*.*")}
        vi = VectorIndex.load_file(st)
        assert vi.ntotal == N
        for path, v in clean.items():
            row = st.get_by_path(path)
            assert np.allclose(st.vector(row.id), v, atol=1e-5)
    finally:
        st.close()


@pytest.fixture
def clean_vectors(big_corpus, tmp_path, tiny):
    db = tmp_path / "clean"
    Indexer(db, encoder=tiny).run([big_corpus])
    st = Store.open(db)
    out = {r[0]: st.vector(r[1]) for r in st.conn.execute("SELECT path, id FROM images")}
    st.close()
    return out


def test_kill_9_mid_run_then_rerun_completes(big_corpus, tmp_path, tiny, clean_vectors):
    db = tmp_path / "db"
    proc = _start(big_corpus, db)
    seen = _wait_for_rows(proc, db, 8)
    proc.send_signal(signal.SIGKILL)
    proc.communicate(timeout=30)  # waits, and closes its pipes
    partial = peek_count(db)
    assert 8 <= seen <= partial < N, (seen, partial)
    s = Indexer(db, encoder=tiny).run([big_corpus])
    assert s.added == N - partial and s.unchanged == partial and s.failed == 0
    _check_complete(db, big_corpus, clean_vectors)


def test_ctrl_c_exits_130_and_keeps_work(big_corpus, tmp_path, tiny, clean_vectors):
    db = tmp_path / "db"
    proc = _start(big_corpus, db)
    _wait_for_rows(proc, db, 8)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130
    assert err.strip().endswith("Interrupted: work committed so far is kept; run the same command again to resume.")
    partial = peek_count(db)
    assert 8 <= partial < N
    s = Indexer(db, encoder=tiny).run([big_corpus])
    assert s.added == N - partial
    _check_complete(db, big_corpus, clean_vectors)
