"""URL inputs (``pixseek index s3://bucket/prefix``): listed and read through fsspec, on a local S3 (moto's
server on 127.0.0.1, fake credentials), giving the local run's vectors and error reasons; the page's and
the service's thumbnails, filters and keywords on URL rows; one line for what cannot be read; one Ray run.
"""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from pathlib import Path

import numpy as np
import pytest
from imagegen import draw, encode, make_corpus, truncated

from pixseek.errors import DuplicatesError, NoImagesError
from pixseek.index import pipeline
from pixseek.index.indexer import Indexer
from pixseek.store import Filter
from pixseek.store.database import Store
from pixseek.store.thumbs import valid_webp

pytest.importorskip("s3fs")
moto_server = pytest.importorskip("moto.server")

PIXSEEK = Path(sys.executable).parent / "pixseek"
BATCH = 8
BAD = {  # bad objects and the reasons a local run gives the same files
    "zero.jpg": ("read", "empty file (0 bytes)"),
    "trunc.jpg": ("decode", "cannot decode JPEG: image file is truncated (0 bytes not processed)"),
}
CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_CONFIG_FILE": "/dev/null",
    "AWS_SHARED_CREDENTIALS_FILE": "/dev/null",
}


@pytest.fixture(scope="module")
def s3():
    """A local S3 endpoint for the module, and the settings that point pixseek (and its children) at it."""
    import logging

    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # the server's access log
    server = moto_server.ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    env = {**CREDENTIALS, "PIXSEEK_S3_ENDPOINT": f"http://{host}:{port}"}
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    import fsspec

    yield fsspec.filesystem("s3", client_kwargs={"endpoint_url": env["PIXSEEK_S3_ENDPOINT"]}), env
    for k, v in saved.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v
    server.stop()


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> Path:
    """12 drawn pictures in set0..set2 and two bad files."""
    root = tmp_path_factory.mktemp("urls") / "pics"
    make_corpus(root, 12)
    (root / "zero.jpg").write_bytes(b"")
    (root / "trunc.jpg").write_bytes(truncated(encode(draw(5, (400, 300)), "JPEG", quality=95), 0.4))
    return root


def upload(fs, folder: Path) -> str:
    """The folder's files as objects of a new bucket; returns the URL of their prefix."""
    bucket = f"pics-{uuid.uuid4().hex[:12]}"
    fs.mkdir(bucket)
    for p in sorted(folder.rglob("*")):
        if p.is_file():
            fs.pipe(f"{bucket}/pics/{p.relative_to(folder).as_posix()}", p.read_bytes())
    fs.invalidate_cache()
    return f"s3://{bucket}/pics"


@pytest.fixture(scope="module")
def local(tmp_path_factory, folder, tiny, session_cache):
    """The local run of the folder: vectors and errors by name relative to the folder (the reference)."""
    db = tmp_path_factory.mktemp("urls-local") / "db"
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("XDG_CACHE_HOME", str(session_cache))
        s = Indexer(db, encoder=tiny, batch_size=BATCH, workers=0).run([folder])
    assert (s.added, s.failed) == (12, 2)
    return snapshot(db, str(folder))


def snapshot(db: Path, root: str) -> dict:
    with Store.open(db) as st:
        rows = list(st.conn.execute("SELECT id, path FROM images ORDER BY id"))
        vecs = {p[len(root) + 1 :]: st.vector(i) for i, p in rows}
        errs = {e["path"][len(root) + 1 :]: (e["stage"], e["message"]) for e in st.errors()}
    return {"vecs": vecs, "errors": errs}


def assert_same(got: dict, want: dict) -> None:
    assert sorted(got["vecs"]) == sorted(want["vecs"])
    for name, v in want["vecs"].items():
        assert np.allclose(got["vecs"][name], v, atol=1e-5), name
    assert got["errors"] == want["errors"] == BAD


def test_an_s3_prefix_indexes_as_its_folder_does_and_follows_changes(s3, folder, local, tiny, tmp_path, monkeypatch):
    fs, _ = s3
    url = upload(fs, folder)
    db = tmp_path / "db"
    monkeypatch.setattr(pipeline, "MIN_WORK_FOR_WORKERS", 1)  # forked decode workers read the URLs
    s = Indexer(db, encoder=tiny, batch_size=BATCH, workers=2).run([url + "/"])
    assert (s.added, s.failed, s.notes) == (12, 2, [])
    assert_same(snapshot(db, url), local)
    with Store.open(db) as st:
        paths = [p for (p,) in st.conn.execute("SELECT path FROM images")]
        assert all(p.startswith(url + "/set") for p in paths)
        assert st.root_info(url) == (None, 14)
    # A second run has no work; a rewritten object is embedded again, a deleted one forgotten.
    again = Indexer(db, encoder=tiny, batch_size=BATCH).run([url])
    assert (again.added, again.updated, again.unchanged, again.embedded, again.failed) == (0, 0, 12, 0, 0)
    changed, gone = f"{url}/set0/img0000.jpg", f"{url}/set1/img0001.png"
    fs.pipe(changed.removeprefix("s3://"), (folder / "set2" / "img0002.webp").read_bytes())
    fs.rm(gone.removeprefix("s3://"))
    after = Indexer(db, encoder=tiny, batch_size=BATCH).run([url])
    assert (after.added, after.updated, after.removed, after.unchanged, after.embedded) == (0, 1, 1, 10, 1)
    with Store.open(db) as st:
        assert st.get_by_path(gone) is None
        assert np.allclose(st.vector(st.get_by_path(changed).id), local["vecs"]["set2/img0002.webp"], atol=1e-5)
    # s3a:// is another spelling of the same root: nothing new, nothing gone
    aliased = Indexer(db, encoder=tiny, batch_size=BATCH).run([url.replace("s3://", "s3a://", 1)])
    assert (aliased.added, aliased.removed, aliased.unchanged, aliased.embedded) == (0, 0, 11, 0)


def test_an_object_rewritten_in_the_same_second_at_the_same_size_reads_as_changed(s3):
    """Object stores give whole seconds: the ETag's fingerprint in mtime_ns tells the two contents apart."""
    from pixseek import sources

    fs, _ = s3
    bucket = f"pics-{uuid.uuid4().hex[:12]}"
    fs.mkdir(bucket)
    fs.pipe(f"{bucket}/a.png", b"x" * 100)
    before = sources.stat(f"s3://{bucket}/a.png")
    fs.pipe(f"{bucket}/a.png", b"y" * 100)
    after = sources.stat(f"s3://{bucket}/a.png")
    assert before[0] == after[0] == 100
    assert before[1] != after[1] and abs(before[1] - after[1]) < 2_000_000_000


def test_url_rows_serve_thumbnails_originals_filters_and_keywords(s3, folder, tiny, tmp_path):
    from fastapi.testclient import TestClient

    from pixseek.search import Engine
    from pixseek.service.app import create_app
    from pixseek.service.backend import Backend

    fs, _ = s3
    url = upload(fs, folder)
    db = tmp_path / "db"
    Indexer(db, encoder=tiny, batch_size=BATCH, workers=0).run([url])
    with Store.open(db) as st:
        row = st.get_by_path(f"{url}/set1/img0001.png")
        ids = st.select_ids(Filter(folder=f"{url}/set1/").validate())
        want = sorted(f"{url}/set1/{p.name}" for p in (folder / "set1").iterdir())
        assert len(want) == 4 and sorted(r.path for r in st.get(ids).values()) == want
        assert st.select_ids(Filter(folder=url.rsplit("/", 1)[0] + "/pic").validate()).size == 0
    with Engine.open(db, encoder=tiny) as eng:
        hits = eng.search(["set1"], mode="keyword", k=20)
        assert {os.path.dirname(r.path) for r in hits} == {f"{url}/set1"}
    backend = Backend(db, encoder=tiny)
    try:
        client = TestClient(create_app(backend), base_url="http://127.0.0.1")
        thumb = client.get(f"/thumbs/{row.id}")
        assert thumb.status_code == 200 and valid_webp(thumb.content)
        original = client.get(f"/images/{row.id}")
        assert original.status_code == 200
        assert original.content == (folder / "set1" / "img0001.png").read_bytes()
        view = client.get(f"/images/{row.id}", params={"size": "view"})
        assert view.status_code == 200 and view.content[:2] == b"\xff\xd8"
    finally:
        backend.close()
    # The thumbnail was cached: the object unchanged.
    assert any((db / "thumbs").rglob(f"{row.hash}-320.webp"))


def test_dupes_refuse_to_move_url_rows(s3, folder, tiny, tmp_path):
    from pixseek.index.dupe_moves import move_duplicates
    from pixseek.search.dupe_rule import dupe_rule
    from pixseek.search.dupes import find_duplicates

    fs, _ = s3
    url = upload(fs, folder)
    fs.pipe(url.removeprefix("s3://") + "/copy.png", (folder / "set0" / "img0000.jpg").read_bytes())
    db = tmp_path / "db"
    Indexer(db, encoder=tiny, batch_size=BATCH, workers=0).run([url])
    with Store.open(db, readonly=True) as st:
        report = find_duplicates(st, dupe_rule(st), kinds=["exact"])
    assert len(report.groups) == 1
    with pytest.raises(DuplicatesError) as e:
        move_duplicates(db, report.groups, tmp_path / "dest")
    moved = report.groups[0].others[0].path
    assert str(e.value) == (
        f"{moved} is an object at a URL: pixseek moves only local files (and never deletes one), so nothing moved"
    )
    assert not (tmp_path / "dest").exists()
    with Store.open(db, readonly=True) as st:
        assert st.count() == 13 and all(st.get_by_path(f.path) is not None for f in report.groups[0].files)


def test_a_url_that_cannot_be_checked_is_not_called_missing():
    """doctor's file check: gone is gone, but a protocol whose package is missing cannot say."""
    from pixseek import sources

    with pytest.raises(OSError, match="reading gs:// URLs needs the gcsfs package, which is not installed"):
        sources.exists("gs://some-bucket/a.png")  # gcsfs is not installed here


def _cli(*args: str, env: dict, pre: str = "") -> subprocess.CompletedProcess:
    code = f"{pre}from pixseek.cli import main; main()"
    full = {**os.environ, **env, "HF_HUB_OFFLINE": "1"}
    return subprocess.run(
        [sys.executable, "-c", code, *args], capture_output=True, text=True, env=full, timeout=120, check=False
    )


def test_what_cannot_be_read_is_one_line(s3, tmp_path):
    _, env = s3
    db = str(tmp_path / "db")
    r = _cli("index", "s3://no-such-bucket-here/photos", "--db", db, env=env)
    assert (r.returncode, r.stdout) == (1, "")
    assert r.stderr == (
        "Error: no such bucket, object or prefix: s3://no-such-bucket-here/photos (check the name; if it is gone "
        "for good, drop what was indexed there with: pixseek forget s3://no-such-bucket-here/photos)\n"
    )
    r = _cli("index", "s3://pics/x", "--db", db, env=env, pre="import sys; sys.modules['s3fs'] = None; ")
    assert (r.returncode, r.stderr) == (
        1,
        "Error: reading s3:// URLs needs the s3fs package, which is not installed (pip install 'pixseek[s3]')\n",
    )
    r = _cli("index", "nope://bucket/x", "--db", db, env=env)
    assert r.stderr == (
        "Error: no fsspec implementation reads nope:// URLs (use a local path, or a protocol fsspec knows "
        "(s3://, gs://))\n"
    )
    assert not (tmp_path / "db").exists()  # refused before any work
    with pytest.raises(NoImagesError, match="names no bucket"):
        Indexer(tmp_path / "db2").run(["s3://"])


def test_a_ray_run_of_an_s3_prefix_gives_the_local_runs_vectors(s3, folder, local, tiny, tmp_path):
    ray = pytest.importorskip("ray")
    fs, env = s3
    url = upload(fs, folder)
    cache = tmp_path / "ray-cache"
    workers_env = {"HF_HUB_OFFLINE": "1", "XDG_CACHE_HOME": str(cache), "TOKENIZERS_PARALLELISM": "false", **env}
    ctx = ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, runtime_env={"env_vars": workers_env})
    try:
        s = Indexer(tmp_path / "db", encoder=tiny, batch_size=BATCH, ray=ctx.address_info["gcs_address"]).run([url])
    finally:
        ray.shutdown()
    assert (s.added, s.failed, s.notes) == (12, 2, [])
    assert_same(snapshot(tmp_path / "db", url), local)
