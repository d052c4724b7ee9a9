"""Fault injection: SIGKILL at each named point of a run, and a full disk, lose nothing."""

from __future__ import annotations

import errno
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from imagegen import make_corpus

from pixseek import faults
from pixseek.errors import StoreError, VectorIndexError
from pixseek.index.indexer import Indexer
from pixseek.search.engine import Engine
from pixseek.store.database import Store
from pixseek.store.vectors import VectorIndex

N = 90


@pytest.fixture(scope="module")
def corpus_and_clean(tmp_path_factory, tiny):
    base = tmp_path_factory.mktemp("faults")
    root = base / "pics"
    make_corpus(root, N)
    clean = base / "clean"
    Indexer(clean, encoder=tiny, batch_size=8).run([root])
    st = Store.open(clean)
    vecs = {st.get([i])[i].path: st.vector(i) for (i,) in st.conn.execute("SELECT id FROM images")}
    st.close()
    return root, vecs


def _index(root: Path, db: Path, fault: str | None) -> subprocess.CompletedProcess:
    env = dict(os.environ)
    env.pop("PIXSEEK_FAULT", None)
    if fault:
        env["PIXSEEK_FAULT"] = fault
    return subprocess.run(
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
            "8",
            "--workers",
            "1",
        ],
        cwd=db.parent,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


def check_converged(db: Path, clean: dict[str, np.ndarray]) -> None:
    st = Store.open(db)
    try:
        assert st.integrity_check() == "ok"
        paths = [r[0] for r in st.conn.execute("SELECT path FROM images")]
        assert len(paths) == len(set(paths)) == len(clean)
        assert set(paths) == set(clean)
        vi = VectorIndex.load_file(st)
        assert vi.ntotal == st.count() == len(clean)
        for path, v in clean.items():
            row = st.get_by_path(path)
            assert np.allclose(st.vector(row.id), v, atol=1e-5)
            assert np.allclose(vi.reconstruct(row.id), v, atol=1e-5)
    finally:
        st.close()


# Two full runs in a row share one data dir: the second meets the first's committed work.
@pytest.mark.parametrize(
    "fault", ["scan:40", "decode:30", "embed:5", "commit:4", "committed:7", "faiss-write:1", "faiss-swap:1"]
)
def test_kill_at_each_point_then_rerun_converges(corpus_and_clean, tmp_path, fault):
    root, clean = corpus_and_clean
    db = tmp_path / "db"
    killed = _index(root, db, fault)
    assert killed.returncode == -9, (fault, killed.returncode, killed.stderr[-2000:])
    again = _index(root, db, None)
    assert again.returncode == 0, again.stderr
    check_converged(db, clean)


def test_disk_full_during_commit_keeps_the_index(corpus_and_clean, tmp_path, tiny, monkeypatch):
    root, clean = corpus_and_clean
    db = tmp_path / "db"
    monkeypatch.setenv("PIXSEEK_FAULT", "commit:5:enospc")
    faults.reset()
    try:
        with pytest.raises(StoreError) as ei:
            Indexer(db, encoder=tiny, batch_size=8, workers=0).run([root])
    finally:
        monkeypatch.delenv("PIXSEEK_FAULT")
        faults.reset()
    assert ei.value.message == (
        f"indexing stopped: the disk is full (writing to {db}); everything committed before is kept and searchable"
    )
    assert ei.value.hint == "free some space and run the same command again"
    st = Store.open(db)
    kept = st.count()
    assert st.integrity_check() == "ok" and 0 < kept < N
    st.close()
    with Engine.open(db, encoder=tiny) as eng:  # usable: the cache is rebuilt from SQLite
        assert len(eng.text("anything", 5)) == 5
    Indexer(db, encoder=tiny, batch_size=8, workers=0).run([root])
    check_converged(db, clean)


def test_disk_full_writing_faiss_keeps_the_old_file(corpus_and_clean, tmp_path, tiny, monkeypatch):
    root, clean = corpus_and_clean
    db = tmp_path / "db"
    Indexer(db, encoder=tiny, batch_size=8).run([root / "set0"])
    old = (db / "vectors.faiss").read_bytes()
    monkeypatch.setenv("PIXSEEK_FAULT", "faiss-write:1:enospc")
    faults.reset()
    try:
        with pytest.raises(VectorIndexError, match=r"^cannot write vector index .*: No space left on device$"):
            Indexer(db, encoder=tiny, batch_size=8, workers=0).run([root])
    finally:
        monkeypatch.delenv("PIXSEEK_FAULT")
        faults.reset()
    assert (db / "vectors.faiss").read_bytes() == old and not list(db.glob(".*.tmp"))
    with Engine.open(db, encoder=tiny) as eng:
        assert len(eng.text("anything", 50)) == 50  # stale cache noticed, rebuilt from SQLite
    Indexer(db, encoder=tiny, batch_size=8).run([root])
    check_converged(db, clean)


def test_a_fault_once_fires_only_in_the_process_that_claims_its_file(tmp_path, monkeypatch):
    """PIXSEEK_FAULT_ONCE: the first process to reach the count creates the file and fires; a process that
    finds the file made (a retried Ray task on a new worker) runs on."""
    claim = tmp_path / "fired"
    monkeypatch.setenv("PIXSEEK_FAULT", "decode:2:enospc")
    monkeypatch.setenv("PIXSEEK_FAULT_ONCE", str(claim))
    try:
        faults.reset()
        faults.point("decode")  # the first time: not its count
        with pytest.raises(OSError) as e:
            faults.point("decode")
        assert e.value.errno == errno.ENOSPC and claim.exists()
        faults.reset()  # another process: its own counts, the same file
        faults.point("decode")
        faults.point("decode")  # its count comes up, the file is made: no fault
        faults.point("decode")
    finally:
        monkeypatch.delenv("PIXSEEK_FAULT")
        monkeypatch.delenv("PIXSEEK_FAULT_ONCE")
        faults.reset()
