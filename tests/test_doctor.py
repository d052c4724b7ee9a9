"""`pixseek doctor`: detects damage, repairs what can be rebuilt, exits non-zero when it cannot."""

from __future__ import annotations

import json
import os

from click.testing import CliRunner

from pixseek.cli import cli
from pixseek.index.doctor import run
from pixseek.index.indexer import Indexer
from pixseek.search.engine import Engine
from pixseek.store.database import Store
from pixseek.store.lock import DirLock
from pixseek.store.migrations import SCHEMA_VERSION
from pixseek.store.paths import DataDir
from pixseek.store.thumbs import Thumbs


def _status(report) -> dict[str, str]:
    return {f.check: f.status for f in report.findings}


def test_healthy_index_is_all_ok(index_dir):
    db, _ = index_dir
    r = run(db)
    assert _status(r) == {
        "database": "ok",
        "meta": "ok",
        "vectors": "ok",
        "vector index": "ok",
        "thumbnails": "ok",
        "files": "ok",
    }
    assert r.exit_code == 0
    assert r.findings[0].detail == f"24 images, schema {SCHEMA_VERSION}, integrity ok"


def test_faiss_damage_is_repaired_and_search_works(index_dir, tiny):
    db, _ = index_dir
    dd = DataDir.resolve(db)
    with Engine.open(db, encoder=tiny) as eng:
        before = [r.id for r in eng.text("a red square", 5)]
    data = dd.faiss.read_bytes()
    dd.faiss.write_bytes(data[: len(data) // 3])  # truncated
    r = run(db)
    assert _status(r)["vector index"] == "fixed" and r.exit_code == 0
    assert "does not match its sidecar" in next(f.detail for f in r.findings if f.check == "vector index")
    meta = json.loads(dd.faiss_meta.read_text())
    meta["generation"] -= 1
    dd.faiss_meta.write_text(json.dumps(meta))  # stale
    assert _status(run(db, repair=False))["vector index"] == "failed"
    assert _status(run(db))["vector index"] == "fixed"
    assert _status(run(db))["vector index"] == "ok"
    with Engine.open(db, encoder=tiny) as eng:
        assert [r.id for r in eng.text("a red square", 5)] == before


def test_bad_vector_rows_removed_then_reindexed(index_dir, tiny):
    db, root = index_dir
    st = Store.open(db)
    st.conn.execute("UPDATE images SET vector = x'0000' WHERE id = 3")
    path = st.get([3])[3].path
    st.close()
    r = run(db)
    assert _status(r)["vectors"] == "fixed"
    assert "removed 1 rows with unusable vectors (e.g. row 3: 2 bytes, expected 512)" in r.findings[2].detail
    s = Indexer(db, encoder=tiny).run([root])
    assert s.added == 1 and s.total == 24
    st = Store.open(db)
    assert st.get_by_path(path) is not None
    st.close()


def test_thumbnails_and_missing_files(index_dir):
    db, root = index_dir
    dd = DataDir.resolve(db)
    st = Store.open(db)
    rows = st.get([1, 2])
    st.close()
    th = Thumbs(dd)
    th.get(rows[1]), th.get(rows[2])
    th.path_for(rows[1].hash).write_bytes(b"RIFF\x00")  # damaged
    orphan = th.path_for("ab" * 16)
    orphan.parent.mkdir(parents=True, exist_ok=True)
    orphan.write_bytes(th.get(rows[2]))  # an image no longer indexed
    os.remove(rows[2].path)
    r = run(db)
    st_ = _status(r)
    assert st_["thumbnails"] == "fixed" and st_["files"] == "warning" and r.exit_code == 0
    assert not orphan.exists() and not th.path_for(rows[1].hash).exists()
    assert "1 indexed files are gone from disk" in r.findings[-1].detail


def test_corrupt_database_fails_with_exit_1(index_dir, tmp_path):
    db, _ = index_dir
    dbfile = DataDir.resolve(db).db
    for p in (dbfile.with_name("pixseek.db-wal"), dbfile.with_name("pixseek.db-shm")):
        p.unlink(missing_ok=True)
    data = bytearray(dbfile.read_bytes())
    data[:100] = b"\x00" * 100
    dbfile.write_bytes(bytes(data))
    res = CliRunner().invoke(cli, ["doctor", "--db", str(db)])
    assert res.exit_code == 1
    assert res.stderr.startswith("failed  database: cannot open database ")


def test_doctor_waits_for_no_indexer_and_cli_lines(index_dir):
    db, _ = index_dir
    with DirLock(DataDir.resolve(db)):
        r = run(db)
    assert _status(r) == {"lock": "failed"} and r.exit_code == 1
    res = CliRunner().invoke(cli, ["doctor", "--db", str(db)])
    assert res.exit_code == 0
    assert res.stdout.splitlines()[0] == f"ok      database: 24 images, schema {SCHEMA_VERSION}, integrity ok"
    res = CliRunner().invoke(cli, ["doctor", "--db", str(db / "nope")])
    assert res.exit_code == 1 and "no pixseek index in" in res.stderr
