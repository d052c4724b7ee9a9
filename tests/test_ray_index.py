"""``pixseek index --ray``: decoding and embedding on Ray Data give the local run's rows, vectors and errors.

One local Ray for the module (2 CPUs, no dashboard): its workers run the same decode path and the same
tiny random-init model as the local indexer. A lost encoder worker (SIGKILL at the ``ray-embed`` fault
point) and a killed driver (SIGKILL after its second commit) must converge to the local run's result.
"""

from __future__ import annotations

import os
import signal
import socket
import sqlite3
import subprocess
import sys
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest
from imagegen import draw, encode, make_corpus, truncated

from pixseek import faults
from pixseek.errors import ModelMismatchError, RayIndexError
from pixseek.index import ray_run
from pixseek.index.indexer import Indexer
from pixseek.index.ray_run import Pool, plan_pool
from pixseek.store.database import Store
from pixseek.store.vectors import VectorIndex

ray = pytest.importorskip("ray")

BATCH = 8
BAD = {  # the bad files of the corpus, and the error rows they must give (stage, message)
    "zero.jpg": ("read", "empty file (0 bytes)"),
    "trunc.jpg": ("decode", "cannot decode JPEG: image file is truncated (0 bytes not processed)"),
    "text.png": ("decode", "not an image: the content is no format Pillow can read"),
}


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    """A local Ray for the module; its workers use the test session's caches, offline."""
    cache = tmp_path_factory.mktemp("ray-cache")
    env = {"HF_HUB_OFFLINE": "1", "XDG_CACHE_HOME": str(cache), "TOKENIZERS_PARALLELISM": "false"}
    ctx = ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, runtime_env={"env_vars": env})
    yield ctx.address_info["gcs_address"]
    ray.shutdown()


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    """40 drawn pictures in three folders, two identical copies, and three bad files."""
    root = tmp_path_factory.mktemp("ray-corpus") / "pics"
    make_corpus(root, 40)
    (root / "copy.png").write_bytes((root / "set1" / "img0001.png").read_bytes())
    (root / "zero.jpg").write_bytes(b"")
    (root / "trunc.jpg").write_bytes(truncated(encode(draw(5, (400, 300)), "JPEG", quality=95), 0.4))
    (root / "text.png").write_text("<html>not a picture</html>")
    return root


@pytest.fixture(scope="module")
def local(tmp_path_factory, corpus, tiny):
    """The local run's result: the reference."""
    db = tmp_path_factory.mktemp("ray-local") / "db"
    s = Indexer(db, encoder=tiny, batch_size=BATCH, workers=0).run([corpus])
    assert (s.added, s.failed) == (41, 3)
    return snapshot(db)


def snapshot(db: Path) -> dict:
    """Rows (id -> path, hash, model), vectors by id, and error rows (path -> stage, message)."""
    with Store.open(db) as st:
        rows = {i: (p, h, m) for i, p, h, m in st.conn.execute("SELECT id, path, hash, model_id FROM images")}
        vecs = {i: st.vector(i) for i in rows}
        errs = {os.path.basename(e["path"]): (e["stage"], e["message"]) for e in st.errors()}
        vi = VectorIndex.load_file(st)
        assert vi.ntotal == len(rows)
        for i, v in vecs.items():
            assert np.allclose(vi.reconstruct(i), v, atol=1e-5)  # FAISS mirrors SQLite
    return {"rows": rows, "vecs": vecs, "errors": errs}


def assert_same(got: dict, want: dict) -> None:
    assert got["rows"] == want["rows"]  # same ids, paths, hashes and model id
    for i, v in want["vecs"].items():
        assert np.allclose(got["vecs"][i], v, atol=1e-5), i
    assert got["errors"] == want["errors"]
    assert {k: want["errors"][k] for k in BAD} == BAD


def test_a_ray_run_gives_the_local_runs_ids_vectors_and_errors(cluster, corpus, local, tiny, tmp_path):
    db = tmp_path / "db"
    s = Indexer(db, encoder=tiny, batch_size=BATCH, ray=cluster).run([corpus])
    assert (s.added, s.failed, s.notes) == (41, 3, [])
    # The later of the two identical files reuses the first one's vector when that one's batch is committed
    # before it is classified (the writer thread commits while the next batch is read), else it is embedded
    # too: the same vector either way, as in a local run.
    assert s.embedded in (40, 41)
    assert_same(snapshot(db), local)
    # A second Ray run has nothing to do and starts no Ray work; a changed file is re-embedded on Ray.
    again = Indexer(db, encoder=tiny, batch_size=BATCH, ray=cluster).run([corpus])
    assert (again.added, again.updated, again.unchanged, again.embedded) == (0, 0, 41, 0)


@contextmanager
def injected(monkeypatch, spec: str, once: Path | None = None, deadline_s: int = 300):
    """PIXSEEK_FAULT=spec (and PIXSEEK_FAULT_ONCE=once) for the block, reaching the Ray workers; a run that
    has not ended after ``deadline_s`` fails the test instead of hanging it (Ray Data's own default is to
    retry a failed task forever)."""

    def too_long(*_):
        raise TimeoutError(f"the Ray run with PIXSEEK_FAULT={spec} was still going after {deadline_s} s")

    monkeypatch.setenv("PIXSEEK_FAULT", spec)
    if once is not None:
        monkeypatch.setenv("PIXSEEK_FAULT_ONCE", str(once))
    faults.reset()
    before = signal.signal(signal.SIGALRM, too_long)
    signal.alarm(deadline_s)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, before)
        monkeypatch.delenv("PIXSEEK_FAULT")
        monkeypatch.delenv("PIXSEEK_FAULT_ONCE", raising=False)
        faults.reset()


def test_a_lost_encoder_worker_is_replaced_and_the_run_converges(cluster, corpus, local, tiny, tmp_path, monkeypatch):
    """The first encoder actor SIGKILLs its own process before its second batch (a lost worker); Ray
    restarts it and retries the batch."""
    with injected(monkeypatch, "ray-embed:2"):
        s = Indexer(tmp_path / "db", encoder=tiny, batch_size=BATCH, ray=cluster).run([corpus])
    assert s.notes == ["a Ray encoder worker was lost and replaced; its batches were embedded again"]
    assert (s.added, s.failed) == (41, 3)
    assert_same(snapshot(tmp_path / "db"), local)


def test_a_decode_task_whose_worker_dies_is_retried_and_the_run_converges(
    cluster, corpus, local, tiny, tmp_path, monkeypatch
):
    """A decode task's worker SIGKILLs itself at its fifth file, once in the run (PIXSEEK_FAULT_ONCE: the
    retried task, on a new worker, runs on); Ray runs the task again and no file is lost or doubled."""
    fired = tmp_path / "fired"
    with injected(monkeypatch, "decode:5", once=fired):
        s = Indexer(tmp_path / "db", encoder=tiny, batch_size=BATCH, ray=cluster).run([corpus])
    assert fired.exists()  # a decode worker was killed
    assert (s.added, s.failed) == (41, 3)
    assert_same(snapshot(tmp_path / "db"), local)


def test_a_decode_task_that_keeps_dying_stops_the_run_in_one_line(cluster, corpus, local, tiny, tmp_path, monkeypatch):
    """Every decode worker dies at its fifth file: past its retries (one here, to keep the test short) the run
    stops with one line, and a run without the fault finishes from what is in the database."""
    db = tmp_path / "db"
    monkeypatch.setattr(ray_run, "TASK_RETRIES", 1)
    with injected(monkeypatch, "decode:5"), pytest.raises(RayIndexError) as e:
        Indexer(db, encoder=tiny, batch_size=BATCH, ray=cluster).run([corpus])
    assert str(e.value).startswith("the Ray run stopped: ")
    assert "\n" not in str(e.value)
    assert e.value.hint == "committed work is kept; run the same command again to resume"
    s = Indexer(db, encoder=tiny, batch_size=BATCH, ray=cluster).run([corpus])
    assert s.failed == 3
    assert_same(snapshot(db), local)


class _Renamed:
    """The tiny model under another model id: what the index records when a node's weights differ."""

    def __init__(self, enc):
        self._enc, self.model_id = enc, "tiny-random#0000000000000000"

    def __getattr__(self, name):
        return getattr(self._enc, name)


def test_an_encoder_with_other_weights_stops_the_run_in_one_line(cluster, corpus, tiny, tmp_path):
    with pytest.raises(ModelMismatchError) as e:
        Indexer(tmp_path / "db", encoder=_Renamed(tiny), batch_size=BATCH, ray=cluster).run([corpus])
    assert (
        str(e.value)
        == f"a Ray worker loaded {tiny.model_id} for tiny-random; the index is of tiny-random#0000000000000000"
    )
    with Store.open(tmp_path / "db") as st:
        assert st.count() == 0  # nothing committed from another model


def _cli(*args: str, env: dict | None = None, pre: str = "") -> subprocess.CompletedProcess:
    """``pixseek ARGS`` in a real process (``pre``: Python run before the CLI, to simulate an environment)."""
    code = f"import sys\n{pre}\nfrom pixseek.cli import main\nsys.argv = ['pixseek', *sys.argv[1:]]\nmain()"
    return subprocess.run(
        [sys.executable, "-c", code, *args], env=env, capture_output=True, text=True, timeout=240, check=False
    )


def test_a_killed_driver_resumes_from_what_it_committed(cluster, corpus, local, tiny, tmp_path):
    """The driver is SIGKILLed after its second commit; the next run re-plans from SQLite and finishes."""
    db = tmp_path / "db"
    args = ("index", str(corpus), "--db", str(db), "--model", "tiny-random", "--batch-size", str(BATCH))
    env = {**os.environ, "PIXSEEK_FAULT": "committed:2"}
    killed = _cli(*args, "--ray", cluster, env=env)
    assert killed.returncode == -9, killed.stderr
    con = sqlite3.connect(db / "pixseek.db")
    committed = con.execute("SELECT count(*) FROM images").fetchone()[0]
    con.close()
    assert 0 < committed < 41
    s = Indexer(db, encoder=tiny, batch_size=BATCH, ray=cluster).run([corpus])
    assert (s.added, s.unchanged, s.failed) == (41 - committed, committed, 3)
    assert_same(snapshot(db), local)


def test_without_ray_the_flag_says_in_one_line_how_to_get_it(tmp_path, corpus):
    db = tmp_path / "db"
    r = _cli("index", str(corpus), "--db", str(db), "--ray", pre="sys.modules['ray'] = None")
    assert r.returncode == 1
    assert r.stderr == (
        "Error: indexing on Ray needs the ray package, which is not installed (pip install 'pixseek[ray]')\n"
    )
    assert not db.exists()  # refused before any work


def test_a_path_after_ray_is_refused_with_the_order_that_works(tmp_path, corpus):
    r = _cli("index", "--ray", str(corpus), "--db", str(tmp_path / "db"))
    assert r.returncode == 1
    assert f"--ray takes auto, HOST:PORT or ray://HOST:PORT, not '{corpus}'" in r.stderr


@pytest.mark.parametrize(
    ("resources", "device", "pool"),
    [
        ({"CPU": 1.0}, None, Pool(1, 0, 0, "cpu")),  # the one CPU stays with the decode tasks
        ({"CPU": 2.0}, None, Pool(1, 1, 0, "cpu")),
        ({"CPU": 16.0}, None, Pool(2, 4, 0, "cpu")),  # half the CPUs embed, 4 threads an actor
        ({"CPU": 64.0, "GPU": 8.0}, None, Pool(8, 1, 1, "cuda")),  # one encoder per GPU
        ({"CPU": 8.0, "GPU": 8.0}, None, Pool(8, 0, 1, "cuda")),  # GPUs that would take every CPU take none
        ({"CPU": 16.0, "GPU": 2.0}, "cpu", Pool(2, 4, 0, "cpu")),  # --device cpu leaves the GPUs alone
    ],
)
def test_the_encoder_pool_leaves_cpus_to_decode(resources, device, pool):
    assert plan_pool(resources, device) == pool


def test_a_head_that_does_not_answer_is_one_line_at_once(tmp_path, corpus):
    with socket.socket() as sock:  # a loopback port nothing listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    r = _cli("index", str(corpus), "--db", str(tmp_path / "db"), "--ray", f"127.0.0.1:{port}")
    assert r.returncode == 1
    assert r.stderr == (
        f"Error: cannot reach the Ray cluster at 127.0.0.1:{port}: Connection refused (start its head with "
        "`ray start --head --port 6379`, or use --ray alone for a local Ray)\n"
    )
    assert not (tmp_path / "db").exists()
