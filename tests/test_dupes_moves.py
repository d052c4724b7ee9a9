"""Duplicates out of the way and back, through the command a user types: `pixseek dupes --move-to` moves
all but the kept file of each group (never overwriting, never into an indexed folder), writes an undo
log, and keeps the index consistent with the disk; `--undo` restores files and rows without
re-embedding. Also: the perceptual-hash migration on an existing index, exports, and the blocked range
search against brute force. Plumbing only, so the tiny random model and links by content and hash."""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import pytest
from imagegen import draw, save

from pixseek.errors import DuplicatesError
from pixseek.index.indexer import Indexer
from pixseek.phash import hamming
from pixseek.search.nearpairs import close_pairs
from pixseek.store import Store

LINKS = ("--kind", "exact", "--kind", "same")  # what the tiny random model can be trusted with


def cli(*args, expect: int = 0) -> subprocess.CompletedProcess:
    env = dict(os.environ, HF_HUB_OFFLINE="1", TOKENIZERS_PARALLELISM="false")
    out = subprocess.run(
        [sys.executable, "-m", "pixseek", *map(str, args)],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        cwd=tempfile.gettempdir(),
    )
    assert "Traceback" not in out.stderr, out.stderr[-3000:]
    assert out.returncode == expect, (args, out.stdout[-1500:], out.stderr[-1500:])
    return out


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def db_state(db: Path) -> dict[str, str]:
    """The data dir's files by content: the lock file (the last holder's pid), SQLite's shared-memory
    index and an empty write-ahead log (a reader's marks, not data) aside."""
    files = [
        p
        for p in sorted(db.iterdir())
        if p.is_file()
        and not p.name.endswith(("-shm", ".lock"))
        and not (p.name.endswith("-wal") and not p.stat().st_size)
    ]
    return {p.name: digest(p) for p in files}


def rows(db: Path) -> dict[str, tuple[int, bytes, str | None]]:
    """path -> (id, vector bytes, perceptual hash) of every indexed file."""
    con = sqlite3.connect(db / "pixseek.db")
    try:
        return {r[0]: (r[1], r[2], r[3]) for r in con.execute("SELECT path, id, vector, phash FROM images")}
    finally:
        con.close()


@pytest.fixture
def indexed(tmp_path, tiny):
    """(db, root, paths): a.png and an identical copy, b.png and a half-size JPEG of it, c.png alone."""
    root = tmp_path / "pics"
    a = draw(1, (400, 300))
    b = draw(2, (400, 300))
    p = {
        "a": save(a, root / "a.png"),
        "b": save(b, root / "b.png"),
        "c": save(draw(3, (400, 300)), root / "c.png"),
        "b-small": save(b.resize((200, 150)), root / "small" / "b.jpg", quality=85),
    }
    p["a-copy"] = root / "sub" / "a.png"
    p["a-copy"].parent.mkdir()
    p["a-copy"].write_bytes(p["a"].read_bytes())
    db = tmp_path / "db"
    s = Indexer(db, encoder=tiny, export_encoders=False, workers=0).run([root])
    assert (s.added, s.failed) == (5, 0)
    return db, root, p


def test_move_and_undo_round_trip_keeps_the_index_consistent(indexed, tmp_path):
    db, root, p = indexed
    before = rows(db)
    content = {k: digest(v) for k, v in p.items()}
    dest = tmp_path / "review"
    out = json.loads(cli("dupes", "--db", db, *LINKS, "--move-to", dest, "--json").stdout)
    assert (out["moved"], out["failed"], out["dry_run"]) == (2, 0, False)
    moved = {m["source"]: Path(m["target"]) for m in out["moves"]}
    assert moved == {
        str(p["a-copy"]): dest / str(p["a-copy"]).lstrip("/"),
        str(p["b-small"]): dest / str(p["b-small"]).lstrip("/"),
    }
    assert not p["a-copy"].exists() and not p["b-small"].exists()
    assert digest(moved[str(p["b-small"])]) == content["b-small"]
    log = Path(out["log"])
    assert log.parent == dest and log.name.startswith("pixseek-dupes-") and log.suffix == ".jsonl"
    lines = [json.loads(line) for line in log.read_text().splitlines()]
    assert lines[0]["pixseek"] == "pixseek-dupes-move" and lines[0]["data_dir"] == str(db)
    assert sorted((m["source"], m["status"], m["kind"]) for m in lines[1:]) == sorted(
        [(str(p["a-copy"]), "moved", "exact"), (str(p["b-small"]), "moved", "same")]
    )
    # the index forgot the moved files, and the next index run agrees with the disk
    assert set(rows(db)) == {str(p[k]) for k in ("a", "b", "c")}
    again = json.loads(cli("index", root, "--db", db, "--json").stdout)
    assert (again["added"], again["removed"], again["unchanged"], again["embedded"]) == (0, 0, 3, 0)
    assert json.loads(cli("dupes", "--db", db, *LINKS, "--json").stdout)["groups"] == []

    undo = cli("dupes", "--db", db, "--undo", log)
    assert undo.stdout.strip() == (
        "restored 2 files (2 back in the index); 0 already in place, 0 missing, 0 left alone"
    )
    assert {k: digest(v) for k, v in p.items()} == content and not moved[str(p["b-small"])].exists()
    assert rows(db) == before  # the same ids, vectors and hashes: nothing re-embedded
    again = json.loads(cli("index", root, "--db", db, "--json").stdout)
    assert (again["added"], again["updated"], again["unchanged"], again["embedded"]) == (0, 0, 5, 0)
    assert len(json.loads(cli("dupes", "--db", db, *LINKS, "--json").stdout)["groups"]) == 2
    assert cli("dupes", "--db", db, "--undo", log).stdout.startswith(
        "restored 0 files (0 back in the index); 2 already"
    )


def test_move_refuses_to_overwrite_and_changes_nothing(indexed, tmp_path):
    db, root, p = indexed
    dest = tmp_path / "review"
    taken = dest / str(p["b-small"]).lstrip("/")
    taken.parent.mkdir(parents=True)
    taken.write_bytes(b"mine")
    state, content = db_state(db), {k: digest(v) for k, v in p.items()}
    out = cli("dupes", "--db", db, *LINKS, "--move-to", dest, expect=1)
    assert out.stderr.strip() == (
        f"Error: {taken} already exists: pixseek never overwrites a file, so nothing moved "
        "(choose another --move-to folder)"
    )
    assert taken.read_bytes() == b"mine" and {k: digest(v) for k, v in p.items()} == content
    assert db_state(db) == state and sorted(os.listdir(dest)) == [str(p["b-small"]).lstrip("/").split("/")[0]]


def test_move_into_an_indexed_folder_is_refused(indexed):
    db, root, p = indexed
    out = cli("dupes", "--db", db, *LINKS, "--move-to", root / "dupes", expect=1)
    assert out.stderr.strip() == (
        f"Error: {root / 'dupes'} lies inside the indexed folder {root}: the next `pixseek index` would add "
        "the moved files back (choose a folder outside every indexed folder)"
    )
    assert not (root / "dupes").exists()


def test_a_dry_run_says_what_would_move_and_changes_nothing(indexed, tmp_path):
    db, root, p = indexed
    state = db_state(db)
    dest = tmp_path / "review"
    out = cli("dupes", "--db", db, *LINKS, "--move-to", dest, "--dry-run")
    lines = out.stdout.splitlines()
    assert sorted(lines[:2]) == sorted(
        f"would move {p[k]} -> {dest / str(p[k]).lstrip('/')}" for k in ("a-copy", "b-small")
    )
    size = p["a-copy"].stat().st_size + p["b-small"].stat().st_size
    assert lines[2] == f"would move 2 files ({size / 1e3:.1f} kB); nothing changed (dry run)"
    assert not dest.exists() and db_state(db) == state and p["a-copy"].exists()
    out = cli("dupes", "--db", db, "--dry-run", expect=2)
    assert "--dry-run goes with --move-to or --undo" in out.stderr


def test_undo_leaves_a_path_taken_again_alone(indexed, tmp_path):
    db, root, p = indexed
    dest = tmp_path / "review"
    out = json.loads(cli("dupes", "--db", db, *LINKS, "--move-to", dest, "--json").stdout)
    p["b-small"].write_bytes(b"a new file in its place")
    undo = cli("dupes", "--db", db, "--undo", out["log"])
    assert undo.stdout.strip() == "restored 1 file (1 back in the index); 0 already in place, 0 missing, 1 left alone"
    assert undo.stderr.strip() == f"left alone: {p['b-small']} exists again (nothing is overwritten)"
    assert p["b-small"].read_bytes() == b"a new file in its place" and p["a-copy"].exists()
    assert (dest / str(p["b-small"]).lstrip("/")).exists()
    assert str(p["a-copy"]) in rows(db) and str(p["b-small"]) not in rows(db)


def test_bad_exports_and_logs_are_one_line_errors(indexed, tmp_path):
    db, root, p = indexed
    out = cli("dupes", "--db", db, "--export", tmp_path / "list.txt", expect=1)
    assert out.stderr.strip() == "Error: cannot export to list.txt: the name must end in .csv or .json"
    notes = tmp_path / "notes.jsonl"
    notes.write_text('{"hello": 1}\n')
    out = cli("dupes", "--db", db, "--undo", notes, expect=1)
    assert out.stderr.strip() == f"Error: {notes} is not an undo log written by `pixseek dupes --move-to`"
    out = cli("dupes", "--db", db, "--undo", tmp_path / "nothing.jsonl", expect=1)
    assert out.stderr.strip().startswith(f"Error: cannot read undo log {tmp_path / 'nothing.jsonl'}: ")
    cli("dupes", "--db", db, *LINKS, "--export", tmp_path / "list.json")
    exported = json.loads((tmp_path / "list.json").read_text())
    shown = json.loads(cli("dupes", "--db", db, *LINKS, "--json").stdout)
    assert {**exported, "seconds": 0} == {**shown, "seconds": 0}


def test_an_existing_index_gets_its_hashes_without_reembedding(indexed):
    db, root, p = indexed
    before = rows(db)
    con = sqlite3.connect(db / "pixseek.db")  # the database as the pixseek before this migration left it
    from pixseek.store.migrations import MIGRATIONS

    n = len(MIGRATIONS)
    con.executescript(
        "ALTER TABLE images DROP COLUMN phash; DROP TABLE moved_dupes;"
        "DELETE FROM migrations WHERE name = 'm008_dupes';"
        f"UPDATE meta SET value = '{n - 1}' WHERE key = 'schema_version';"
    )
    con.close()
    out = cli("dupes", "--db", db, expect=1)
    assert out.stderr.strip() == (
        f"Error: database {db / 'pixseek.db'} has an older schema ({n - 1} of {n} migrations) "
        "(run `pixseek index` or `pixseek doctor` on it once to upgrade it)"
    )
    cli("doctor", "--db", db)  # upgrades the schema; the hashes are not there yet
    unhashed = json.loads(cli("dupes", "--db", db, "--json").stdout)
    assert unhashed["unhashed"] == 5 and unhashed["notes"][0].startswith("5 pictures have no perceptual hash yet")
    run = cli("index", root, "--db", db, "--json")
    s = json.loads(run.stdout)
    assert (s["hashed"], s["embedded"], s["added"], s["updated"], s["unchanged"]) == (5, 0, 0, 0, 5)
    after = rows(db)
    assert {k: v[:2] for k, v in after.items()} == {k: v[:2] for k, v in before.items()}  # vectors untouched
    for path, (_, _, h) in after.items():
        assert h is not None and hamming(h, before[path][2] or "") <= 2, path  # as the indexing pass hashes
    again = json.loads(cli("index", root, "--db", db, "--json").stdout)
    assert again["hashed"] == 0


def test_the_blocked_range_search_finds_every_pair_exactly(index_dir):
    db, _ = index_dir
    with Store.open(db, readonly=True) as store:
        ids, vecs = store.vectors_for(store.ids())
        scores = vecs @ vecs.T
        upper = np.sort(scores[np.triu_indices(len(ids), 1)])
        at = int(0.8 * len(upper))
        at += int(np.argmax(np.diff(upper[at:]) > 1e-4))  # between two scores, clear of rounding
        threshold = float(upper[at] + upper[at + 1]) / 2
        truth = {(int(ids[i]), int(ids[j])) for i, j in zip(*np.nonzero(np.triu(scores >= threshold, 1)))}
        got = close_pairs(store, ids, threshold, block=5, chunk=3, cache_bytes=1)  # many blocks, none kept
        assert set(zip(got.a.tolist(), got.b.tolist())) == truth and len(got) == len(truth) > 0
        assert np.allclose(got.score, [scores[list(ids).index(a), list(ids).index(b)] for a, b in zip(got.a, got.b)])
        with pytest.raises(DuplicatesError, match=r"^more than 3 pairs of pictures score "):
            close_pairs(store, ids, -1.0, max_pairs=3)
