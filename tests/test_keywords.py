"""Keywords: the FTS5 index over file names and folders, quoted phrases, hybrid fusion and why each
result matched; the migration that adds the index to an existing database without re-embedding."""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import subprocess
import sys

import numpy as np
import pytest
from imagegen import draw, make_corpus, save

from pixseek.errors import QueryError
from pixseek.index.indexer import Indexer
from pixseek.search import Engine
from pixseek.search.hybrid import parse
from pixseek.store import Store, keywords
from pixseek.store.keywords import Match


def test_parse_splits_phrases_words_and_the_text_to_embed():
    p = parse('a photo of "Exit Only" sign at the café')
    assert p.match == Match(("Exit Only",), ("sign", "café"))
    assert p.text == "a photo of Exit Only sign at the café"
    assert parse('an "unclosed quote').match == Match((), ("unclosed", "quote"))
    assert parse('""  the').match.empty
    assert Match(('say "hi"',), ("c", "3po")).expression() == '"say ""hi""" AND ("c" OR "3po"*)'


@pytest.fixture
def named(tmp_path, tiny):
    """Drawn pictures whose names and folders carry words, indexed by the tiny model."""
    root = tmp_path / "pics"
    make_corpus(root / "misc", 12)
    files = {
        "holiday-2024/IMG_20240501_sunset_beach.jpg": 101,
        "holiday-2024/beach towel then sunset.png": 102,
        "receipts/Café invoice 17.png": 103,
        "receipts/exit only.png": 104,
    }
    for rel, seed in files.items():
        save(draw(seed), root / rel)
    db = tmp_path / "db"
    Indexer(db, encoder=tiny, batch_size=8).run([root])
    return db, root


def _names(results):
    return [os.path.basename(r.path) for r in results]


def test_keyword_mode_finds_names_folders_prefixes_and_accents(named, tiny):
    db, _ = named
    with Engine.open(db, encoder=tiny) as eng:
        assert _names(eng.search(["cafe"], mode="keyword")) == ["Café invoice 17.png"]
        got = eng.search(["2024"], mode="keyword")  # "2024*" also finds the 20240501 in the name
        assert set(_names(got)) == {"IMG_20240501_sunset_beach.jpg", "beach towel then sunset.png"}
        by_name = {os.path.basename(r.path): r.why for r in got}
        assert by_name["IMG_20240501_sunset_beach.jpg"] == ("file name", "folder")
        assert by_name["beach towel then sunset.png"] == ("folder",)
        assert eng.search(["receipts"], mode="keyword", k=5)[0].why == ("folder",)
        assert eng.search(["C-3PO zebra"], mode="keyword") == []  # FTS5 syntax in the query is only text


def test_quoted_words_match_literally_in_every_mode(named, tiny):
    db, _ = named
    with Engine.open(db, encoder=tiny) as eng:
        for mode in ("keyword", "hybrid", "semantic"):
            got = eng.search(['"sunset beach"'], mode=mode, k=10)
            assert _names(got) == ["IMG_20240501_sunset_beach.jpg"], mode  # not "beach towel then sunset"
        assert eng.search(['"beach sunset"'], mode="hybrid") == []
        # unquoted, both files hold both words
        assert {"IMG_20240501_sunset_beach.jpg", "beach towel then sunset.png"} <= set(
            _names(eng.search(["sunset beach"], mode="keyword"))
        )


def test_hybrid_fuses_meaning_and_words_and_says_why(named, tiny):
    db, root = named
    with Engine.open(db, encoder=tiny) as eng:
        semantic = eng.search(["an invoice"], mode="semantic", k=16)
        assert all(r.why == ("image meaning",) for r in semantic)
        hybrid = eng.search(["an invoice"], k=16)
        assert hybrid[0].path.endswith("Café invoice 17.png")  # the only keyword match leads the fusion
        assert "file name" in hybrid[0].why
        assert {r.path for r in hybrid} - {r.path for r in semantic} <= {hybrid[0].path}
        # the score stays the cosine of the query and the picture, whatever the ranking
        q = eng.encode_text("an invoice")
        v = eng.store.vector(hybrid[0].id)
        assert hybrid[0].score == pytest.approx(float(q @ v), abs=1e-5)
        # paging: offsets walk the same fused order
        first, second = eng.search(["an invoice"], k=8), eng.search(["an invoice"], k=8, offset=8)
        assert [r.id for r in first + second] == [r.id for r in hybrid]
        # filters narrow the keyword side too
        from pixseek.store import Filter

        got = eng.search(["invoice"], mode="keyword", filter=Filter(folder=str(root / "holiday-2024")))
        assert got == []


def test_keyword_search_errors_are_one_line(named, tiny):
    db, _ = named
    with Engine.open(db, encoder=tiny) as eng:
        with pytest.raises(QueryError, match="^a keyword search needs words to look for$"):
            eng.search(["the of a"], mode="keyword")
        with pytest.raises(QueryError, match="^unknown search mode 'fuzzy': use hybrid, semantic, keyword$"):
            eng.search(["x"], mode="fuzzy")


def test_index_runs_keep_the_keyword_rows_in_line(named, tiny):
    db, root = named
    shutil.move(root / "receipts" / "exit only.png", root / "receipts" / "way out.png")
    Indexer(db, encoder=tiny, batch_size=8).run([root])
    with Engine.open(db, encoder=tiny) as eng:
        assert eng.search(["exit"], mode="keyword") == []
        assert _names(eng.search(["way out"], mode="keyword")) == ["way out.png"]
    Indexer(db, encoder=tiny).forget([root / "receipts"])
    with Engine.open(db, encoder=tiny) as eng:
        assert eng.search(["invoice"], mode="keyword") == []
        n_rows = eng.store.conn.execute("SELECT count(*) FROM keywords").fetchone()[0]
        assert n_rows == eng.store.count() == 14


def test_migration_fills_an_existing_index_without_re_embedding(named):
    db, _ = named
    path = db / "pixseek.db"
    conn = sqlite3.connect(path)
    before = conn.execute("SELECT id, vector, updated_at FROM images ORDER BY id").fetchall()
    # the database as the previous pixseek left it: no keyword tables, the migration not recorded
    conn.execute("DROP TABLE keywords")
    conn.execute("DROP TABLE keywords_state")
    conn.execute("DELETE FROM migrations WHERE name = 'm006_keywords'")
    conn.commit()
    conn.close()
    with Store.open(db) as store:  # opened for writing (an index run or doctor): migrated
        assert store.conn.execute("SELECT vector, updated_at FROM images ORDER BY id").fetchall() == [
            (v, t) for _, v, t in before
        ]
        found = keywords.rank(store.conn, Match((), ("invoice",)), 5)
        assert [store.get([i])[i].path.endswith("Café invoice 17.png") for i, _ in found] == [True]


def test_cli_mode_and_why(named):
    db, _ = named
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    cmd = [sys.executable, "-m", "pixseek", "search", "--db", str(db), "--mode", "keyword"]
    out = subprocess.run([*cmd, "invoice", "--json"], capture_output=True, text=True, env=env, timeout=120)
    assert out.returncode == 0, out.stderr
    (hit,) = json.loads(out.stdout)
    assert hit["path"].endswith("Café invoice 17.png") and hit["why"] == ["file name"]
    out = subprocess.run([*cmd, "invoice"], capture_output=True, text=True, env=env, timeout=120)
    assert out.stdout.rstrip().endswith("Café invoice 17.png  [file name]")
    out = subprocess.run([*cmd, "the"], capture_output=True, text=True, env=env, timeout=120)
    assert out.returncode == 1
    hint = '(e.g. pixseek search --mode keyword "invoice")'
    assert out.stderr.strip() == f"Error: a keyword search needs words to look for {hint}"


def test_keyword_rank_is_bounded_and_ordered_by_bm25(named):
    db, _ = named
    with Store.open(db, readonly=True) as store:
        got = keywords.rank(store.conn, Match((), ("sunset", "beach", "towel")), 10)
        assert len(got) == 2 and got[0][1] >= got[1][1]
        assert np.all(np.isfinite([s for _, s in got]))
        assert len(keywords.rank(store.conn, Match((), ("sunset",)), 1)) == 1
        assert keywords.rank(store.conn, Match(), 10) == []


def test_the_sync_touches_only_what_changed(named, tiny):
    db, root = named
    with Store.open(db) as store, store.transaction():
        assert keywords.sync(store.conn) == 0  # nothing changed since the index run's sync
    save(draw(7), root / "receipts" / "parking ticket.png")
    Indexer(db, encoder=tiny, batch_size=8).run([root])
    with Store.open(db) as store:
        (new_id,) = [i for i, _ in keywords.rank(store.conn, Match((), ("parking",)), 5)]
        with store.transaction():
            store.conn.execute("UPDATE keywords SET name = 'stale' WHERE rowid = ?", (new_id,))
            assert keywords.sync(store.conn) == 0  # the digest says the row is in line: not rewritten
            assert keywords.sync(store.conn, full=True) == 0  # nor by a full pass (digests, not the text)
        got = keywords.matched_fields(
            store.conn, Match((), ("cafe",)), [r[0] for r in store.conn.execute("SELECT id FROM images")]
        )
        assert sorted(f for fields in got.values() for f in fields) == ["file name"]  # "Café invoice", accents folded
