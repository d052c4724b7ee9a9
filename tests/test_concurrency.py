"""Searching while the indexer adds, changes and removes files; two indexers on one data dir."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
from imagegen import draw, make_corpus, save

from pixseek.index.indexer import Indexer
from pixseek.search.engine import Engine
from pixseek.store.database import Store


def search_loop(db: Path, stop: threading.Event, stats: dict) -> None:
    """Query continuously (random unit vectors: no model needed); record errors and bad results."""
    rng = np.random.default_rng(0)
    eng = Engine.open(db)
    try:
        while not stop.is_set():
            try:
                if eng.refresh():
                    stats["reloads"] += 1
                q = rng.standard_normal(eng.vectors.dim).astype(np.float32)
                # One read transaction: the engine's row lookup and this check see the same snapshot
                # (checked later, a row could have been deleted after the results were returned).
                with eng.store.snapshot():
                    res = eng.search_vector(q / np.linalg.norm(q), 10)
                    live = eng.store.get(r.id for r in res)
                for r in res:  # every result is a row that exists, with its current path
                    if r.id not in live or live[r.id].path != r.path:
                        stats["stale"] += 1
                stats["queries"] += 1
            except Exception as e:
                stats["errors"].append(repr(e))
    finally:
        eng.close()


def test_search_during_indexing(tmp_path, tiny):
    root = tmp_path / "pics"
    make_corpus(root, 40)
    db = tmp_path / "db"
    Indexer(db, encoder=tiny, batch_size=4).run([root])
    stats = {"queries": 0, "reloads": 0, "stale": 0, "errors": []}
    stop = threading.Event()
    t = threading.Thread(target=search_loop, args=(db, stop, stats))
    t.start()
    try:
        for step in range(4):
            newest = make_corpus(root / f"new{step}", 10, start=100 + 10 * step, subdirs=False)  # add
            for p in sorted(root.glob("set0/*"))[:2]:
                save(draw(500 + step), p)  # change
            shutil.rmtree(root / f"set{1 + step % 2}", ignore_errors=True)  # remove
            Indexer(db, encoder=tiny, batch_size=4).run([root])
            time.sleep(0.2)
    finally:
        stop.set()
        t.join(60)
    assert stats["errors"] == [] and stats["stale"] == 0
    assert stats["queries"] > 20 and stats["reloads"] >= 1
    # the newest pictures are found once the engine has reloaded
    with Engine.open(db) as eng:
        st = eng.store
        row = st.get_by_path(str(newest[0]))
        assert eng.similar(row.id, 1) and eng.search_vector(st.vector(row.id), 1)[0].id == row.id
        assert eng.vectors.ntotal == st.count()


def test_two_indexers_one_refuses(tmp_path):
    root = tmp_path / "pics"
    make_corpus(root, 150)
    db = tmp_path / "db"
    env = dict(os.environ)
    cmd = [
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
        "2",
        "--workers",
        "0",
    ]
    first = subprocess.Popen(cmd, cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 120
    while not (db / "pixseek.db").exists() and time.time() < deadline:
        time.sleep(0.05)
    time.sleep(0.5)
    second = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    out, err = first.communicate(timeout=300)
    assert first.returncode == 0, err
    assert second.returncode == 1
    assert second.stderr.startswith(f"Error: another pixseek index (pid {first.pid}) is writing to {db}")
    with Store.open(db) as st:
        assert st.count() == 150 and st.integrity_check() == "ok"


def test_hostile_file_names_index_and_search(tmp_path, tiny):
    """Quotes, newlines, SQL fragments and LIKE wildcards in names: stored and found as they are."""
    from pixseek.store.filters import Filter

    root = tmp_path / 'it\'s a "folder"; DROP TABLE images; --'
    names = [
        'it\'s "quoted".jpg',
        "new\nline.png",
        "x'); DROP TABLE images; --.jpg",
        "100%_wild*card?.png",
        "back\\slash.webp",
        "tab\there.jpg",
        "ünïcödé 日本.png",
        " leading space.jpg",
    ]
    for i, n in enumerate(names):
        save(draw(900 + i), root / n)
    db = tmp_path / "db"
    s = Indexer(db, encoder=tiny, batch_size=4).run([root])
    assert s.added == len(names) and s.failed == 0
    with Engine.open(db, encoder=tiny) as eng:
        st = eng.store
        assert st.integrity_check() == "ok" and "images" in st.db.table_names()
        for n in names:
            row = st.get_by_path(str(root / n))
            assert row is not None, n
            assert eng.similar(row.id, 3) and eng.search_vector(st.vector(row.id), 1)[0].path == str(root / n)
        inside = eng.search_vector(eng.encode_text("x"), 50, filter=Filter(folder=str(root)))
        assert sorted(r.name for r in inside) == sorted(names)
