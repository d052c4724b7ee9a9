"""Trust under misuse, through the command a user types (a real `pixseek` process each time): an unmounted
drive, bad options, stale failures, read-only and foreign databases, damaged metadata, values at the
edges, an index feeding on itself, hostile file names. Every call must end in one line or a result:
never a traceback, a hang, a write where none was asked for, or lost rows."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
from imagegen import draw, make_corpus, save

from pixseek.store.database import peek_count

N = 12


def cli(*args: str, expect: int | None = 0, timeout: float = 120):
    """Run ``pixseek ARGS``; check the exit status (None: any) and that nothing printed a traceback."""
    env = dict(os.environ, HF_HUB_OFFLINE="1", TOKENIZERS_PARALLELISM="false")
    out = subprocess.run(
        [sys.executable, "-m", "pixseek", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=timeout,
        cwd=tempfile.gettempdir(),
    )
    assert "Traceback" not in out.stderr, out.stderr[-3000:]
    if expect is not None:
        assert out.returncode == expect, (args, out.returncode, out.stdout[-1500:], out.stderr[-1500:])
    return out


def one_line_error(out: subprocess.CompletedProcess, starts: str) -> str:
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(starts), out.stderr
    return lines[0]


def count(db: Path) -> int:
    return peek_count(db)


def digest(*paths: Path) -> str:
    h = hashlib.sha256()
    for p in paths:
        h.update(p.read_bytes() if p.exists() else b"<missing>")
    return h.hexdigest()


@pytest.fixture(scope="module")
def template(tmp_path_factory):
    """A corpus of N drawn pictures indexed by the tiny model through the CLI, copied per test."""
    base = tmp_path_factory.mktemp("misuse")
    root = base / "photos"
    make_corpus(root, N)
    cli("index", str(root), "--db", str(base / "db"), "--model", "tiny-random", "--workers", "0")
    return base


@pytest.fixture
def indexed(template, tmp_path):
    shutil.copytree(template / "photos", tmp_path / "photos")
    shutil.copytree(template / "db", tmp_path / "db")
    # the rows name the template's paths: index the copy so they name this test's files
    con = sqlite3.connect(tmp_path / "db" / "pixseek.db")
    con.execute(
        "UPDATE images SET path = replace(path, ?, ?), root = replace(root, ?, ?), dev = NULL, inode = NULL",
        (str(template), str(tmp_path), str(template), str(tmp_path)),
    )
    con.execute("DELETE FROM roots")
    con.commit()
    con.close()
    return tmp_path / "db", tmp_path / "photos"


# --- 1. an unmounted drive ----------------------------------------------------------------------


def test_an_empty_root_keeps_its_rows_until_pruned(indexed, tmp_path):
    db, root = indexed
    cli("index", str(root), "--db", str(db))  # records the root as it is
    root.rename(tmp_path / "elsewhere")
    root.mkdir()  # the mount point of a drive that is not mounted
    out = cli("index", str(root), "--db", str(db))
    assert out.stdout.startswith("added 0, updated 0, moved 0, removed 0,")
    assert (
        f"kept {N} indexed images under {root} whose files were not found: the folder shows no images now" in out.stderr
    )
    assert f"if they are really gone, run: pixseek index {root} --prune" in out.stderr
    assert count(db) == N
    out = cli("index", str(root), "--db", str(db), "--prune")  # the advice works
    assert f"removed {N}," in out.stdout and count(db) == 0


def test_a_root_on_another_device_keeps_its_rows(indexed, monkeypatch):
    from pixseek.index import plan
    from pixseek.index.indexer import Indexer
    from pixseek.models import load_torch

    db, root = indexed
    tiny = load_torch("tiny-random", "cpu")
    Indexer(db, encoder=tiny).run([root])
    for p in sorted(root.rglob("*.png")):
        p.unlink()
    real = plan._device
    monkeypatch.setattr(plan, "_device", lambda path: real(path) + 1)  # another disk mounted there
    s = Indexer(db, encoder=tiny).run([root])
    assert s.removed == 0 and s.kept == 4 and "on another device than when it was indexed" in s.notes[0]
    monkeypatch.setattr(plan, "_device", real)
    s = Indexer(db, encoder=tiny).run([root])
    assert s.removed == 4 and s.kept == 0  # the same device again: a plain deletion


def test_most_of_a_large_root_going_at_once_is_kept(tmp_path, tiny):
    from pixseek.index.indexer import Indexer

    root, db = tmp_path / "many", tmp_path / "db"
    for i in range(230):
        save(draw(i, (24, 24)), root / f"p{i:03d}.png")
    Indexer(db, encoder=tiny, workers=0).run([root])
    for p in sorted(root.glob("*.png"))[:10]:
        p.unlink()
    assert Indexer(db, encoder=tiny, workers=0).run([root]).removed == 10  # a few deletions: removed
    for p in sorted(root.glob("*.png"))[:120]:
        p.unlink()
    s = Indexer(db, encoder=tiny, workers=0).run([root])
    assert (s.removed, s.kept) == (0, 120) and "120 of its 220 images would go at once" in s.notes[0]
    assert Indexer(db, encoder=tiny, workers=0, prune=True).run([root]).removed == 120


def test_a_root_that_is_gone_is_forgotten_on_purpose_and_doctor_names_working_commands(indexed, tmp_path):
    db, root = indexed
    victim = sorted(root.rglob("*.jpg"))[0]
    victim.unlink()
    advice = cli("doctor", "--db", str(db), "--check-only").stdout
    assert f"`pixseek index {root} --prune` removes them from the index" in advice
    cli("index", str(root), "--db", str(db), "--prune")
    assert count(db) == N - 1
    shutil.rmtree(root)
    out = cli("index", str(root), "--db", str(db), expect=1)
    one_line_error(
        out,
        f"Error: no such file or folder: {root} (if it is gone for good, drop what was indexed "
        f"there with: pixseek forget {root})",
    )
    advice = cli("doctor", "--db", str(db), "--check-only").stdout
    assert f"`pixseek forget {root}` removes them from the index" in advice
    assert cli("forget", str(root), "--db", str(db)).stdout.strip() == f"forgot {N - 1} images"
    assert count(db) == 0 and "ok      files: every indexed file is on disk" in cli("doctor", "--db", str(db)).stdout


# --- 2. bad index types -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "kind, why",
    [
        ("HNSW0", "HNSW takes 4 to 256 links per node, not 0"),
        ("IVF0,Flat", "IVF takes 1 to 1,048,576 inverted lists, not 0"),
        ("IVF16,PQ7", "PQ7: the number of sub-vectors must divide the vector size 128"),
        ("IVF16,PQ8x9fs", "PQ codes take 1 to 16 bits (4 with fs)"),
        ("IVF16,Bogus", "'Bogus' is no code type"),
        ("Flat;DROP", "not an index type pixseek knows"),
    ],
)
def test_a_bad_index_type_is_refused_and_never_saved(indexed, kind, why):
    db, root = indexed
    out = cli("index", str(root), "--db", str(db), "--index-type", kind, expect=1)
    one_line_error(out, f"Error: invalid --index-type {kind!r}: {why}")
    assert json.loads(cli("stats", "--db", str(db), "--json").stdout)["index_setting"] == "auto"


def test_a_type_the_corpus_cannot_train_yet_falls_back_to_exact_search(indexed):
    db, root = indexed
    out = cli("index", str(root), "--db", str(db), "--index-type", "IVF4,PQ16")  # valid, but 12 vectors
    assert "searching exactly until it can be built" in out.stderr
    probe = sorted(root.rglob("*.png"))[0]
    hits = cli("search", "--image", str(probe), "--db", str(db), "-k", "1").stdout
    assert hits.strip().endswith(str(probe))
    assert "--index-type" not in cli("search", "--similar", "1", "--db", str(db)).stderr  # no advice it cannot take
    cli("doctor", "--db", str(db))


def test_a_bad_setting_saved_by_an_older_version_never_reaches_faiss(indexed):
    db, root = indexed
    con = sqlite3.connect(db / "pixseek.db")
    con.execute("INSERT OR REPLACE INTO meta(key, value) VALUES('index_type', 'HNSW0')")
    con.commit()
    con.close()
    (db / "vectors.json").unlink()  # the cache must be rebuilt, with that setting
    out = cli("search", "--similar", "2", "--db", str(db), "-k", "3")
    assert len(out.stdout.splitlines()) == 3 and "searching exactly until it can be built" in out.stderr
    cli("doctor", "--db", str(db))
    cli("index", str(root), "--db", str(db))


# --- 3. failures that may pass ------------------------------------------------------------------


def test_a_raised_pixel_cap_retries_the_file_it_refused(indexed):
    db, root = indexed
    from PIL import Image

    Image.new("RGB", (3000, 3000), "red").save(root / "big.png")
    out = cli("index", str(root), "--db", str(db), "--max-pixels", "1000000")
    assert "1 file could not be indexed" in out.stderr
    assert "raise it with --max-pixels" in cli("errors", "--db", str(db)).stdout
    assert "added 0," in cli("index", str(root), "--db", str(db), "--max-pixels", "1000000").stdout  # same cap
    out = cli("index", str(root), "--db", str(db), "--max-pixels", "20000000")  # the advice, followed
    assert out.stdout.startswith("added 1,") and cli("errors", "--db", str(db)).stdout.strip() == "no errors"


def test_an_unreadable_file_is_retried_on_every_run(tmp_path, tiny, monkeypatch):
    import pixseek.sources as reads  # every read of an indexed file (pixseek.sources.read_bytes)
    from pixseek.index.indexer import Indexer
    from pixseek.store import Store

    root, db = tmp_path / "pics", tmp_path / "db"
    make_corpus(root, 3)
    locked = sorted(root.rglob("*.jpg"))[0]
    real_open = open

    def fake_open(path, *a, **k):
        if str(path) == str(locked):
            raise PermissionError(13, "Permission denied", str(path))
        return real_open(path, *a, **k)

    monkeypatch.setattr(reads, "open", fake_open, raising=False)
    assert Indexer(db, encoder=tiny, workers=0).run([root]).failed == 1
    with Store.open(db, readonly=True) as st:
        assert st.errors()[0]["message"] == "cannot read: Permission denied (retried on every run)"
    monkeypatch.setattr(reads, "open", real_open, raising=False)  # the permissions were fixed
    s = Indexer(db, encoder=tiny, workers=0).run([root])
    assert (s.added, s.failed, s.known_failures) == (1, 0, 0)


# --- 4. read-only and foreign databases ---------------------------------------------------------


@pytest.fixture
def read_only(tmp_path):
    """A folder on a read-only file system (a bind mount remounted read-only; as a non-root user, plain
    permission bits): what a backup disk or a read-only share looks like."""
    src, mnt = tmp_path / "src", tmp_path / "mnt"
    src.mkdir()
    mnt.mkdir()

    mounted: list[Path] = []  # (os.path.ismount cannot see a bind mount within one file system)

    def seal() -> None:
        if os.geteuid() != 0:
            for p in [src, *src.rglob("*")]:
                p.chmod(0o555 if p.is_dir() else 0o444)
            mnt.rmdir()
            mnt.symlink_to(src)
            return
        for cmd in (["mount", "--bind", str(src), str(mnt)], ["mount", "-o", "remount,bind,ro", str(mnt)]):
            done = subprocess.run(cmd, capture_output=True, text=True)
            if cmd[1] == "--bind" and done.returncode == 0:
                mounted.append(mnt)
            assert done.returncode == 0, f"cannot make a read-only mount for this test: {done.stderr}"

    yield src, mnt, seal
    for m in mounted:
        subprocess.run(["umount", str(m)], check=True)
    for p in [src, *src.rglob("*")]:
        p.chmod(0o755 if p.is_dir() else 0o644)


def test_a_read_only_index_is_searched_and_writers_say_why_not(indexed, read_only):
    db, root = indexed
    src, mnt, seal = read_only
    shutil.copytree(db, src / "db")
    shutil.copytree(root, src / "photos")
    seal()
    ro = mnt / "db"
    before = digest(*sorted(ro.iterdir()))
    assert "images           12" in cli("stats", "--db", str(ro)).stdout
    assert cli("errors", "--db", str(ro)).stdout.strip() == "no errors"
    assert len(cli("search", "--similar", "1", "--db", str(ro), "-k", "2").stdout.splitlines()) == 2
    cli("doctor", "--db", str(ro), "--check-only")
    for args in (["index", str(mnt / "photos")], ["doctor"], ["forget", str(mnt / "photos")]):
        out = cli(*args, "--db", str(ro), expect=1)
        said = "failed  database" if args == ["doctor"] else "Error"  # doctor reports as one of its checks
        line = one_line_error(out, f"{said}: cannot write to {ro}: ")
        assert line.endswith(
            "(a read-only index can be searched (search, stats, errors, doctor --check-only), not changed)"
        )
    assert digest(*sorted(ro.iterdir())) == before


@pytest.mark.parametrize(
    "command",
    [
        ["stats"],
        ["errors"],
        ["search", "--similar", "1"],
        ["doctor", "--check-only"],
        ["doctor"],
        ["index", "{root}"],
        ["forget", "{root}"],
    ],
)
def test_another_programs_database_is_refused_untouched(tmp_path, command):
    data = tmp_path / "theirs"
    data.mkdir()
    con = sqlite3.connect(data / "pixseek.db")
    con.execute("CREATE TABLE accounts (id INTEGER PRIMARY KEY, owner TEXT)")
    con.execute("INSERT INTO accounts(owner) VALUES ('someone')")
    con.commit()
    con.close()
    (tmp_path / "pics").mkdir()
    before = digest(data / "pixseek.db")
    args = [a.format(root=tmp_path / "pics") for a in command]
    out = cli(*args, "--db", str(data), expect=1)
    assert f"{data / 'pixseek.db'} is not a pixseek database (it holds tables accounts)" in out.stdout + out.stderr
    assert digest(data / "pixseek.db") == before and os.listdir(data) == ["pixseek.db"]


def test_a_db_option_naming_a_file_is_refused(tmp_path):
    (tmp_path / "pics").mkdir()
    other = tmp_path / "notes.db"
    other.write_bytes(b"mine")
    for args in (["index", str(tmp_path / "pics")], ["stats"], ["search", "x"]):
        out = cli(*args, "--db", str(other), expect=1)
        one_line_error(out, f"Error: {other} is a file, not a pixseek data dir")
    assert sorted(os.listdir(tmp_path)) == ["notes.db", "pics"] and other.read_bytes() == b"mine"


# --- 5. damaged metadata --------------------------------------------------------------------------


@pytest.mark.parametrize("sidecar", ["null", "5", '"text"', "[]", '{"generation": "1"}', "not json"])
def test_an_unreadable_sidecar_means_rebuild(indexed, sidecar):
    db, root = indexed
    (db / "vectors.json").write_text(sidecar)
    out = cli("search", "--similar", "1", "--db", str(db), "-k", "2")
    assert len(out.stdout.splitlines()) == 2 and "vector index sidecar is unreadable" in out.stderr
    assert json.loads(cli("stats", "--db", str(db), "--json").stdout)["vectors_in_sync"] is False
    assert "fixed   vector index: vector index sidecar is unreadable" in cli("doctor", "--db", str(db)).stdout
    assert json.loads(cli("stats", "--db", str(db), "--json").stdout)["vectors_in_sync"] is True
    cli("index", str(root), "--db", str(db))


def test_a_dropped_column_is_one_line_and_doctor_says_it_cannot_repair(indexed):
    db, _ = indexed
    con = sqlite3.connect(db / "pixseek.db")
    con.execute("ALTER TABLE images DROP COLUMN taken_at")
    con.commit()
    con.close()
    for args in (["search", "--similar", "1"], ["stats"]):
        one_line_error(
            cli(*args, "--db", str(db), expect=1),
            f"Error: database {db / 'pixseek.db'} is damaged: table images lacks column taken_at",
        )
    out = cli("doctor", "--db", str(db), expect=1)
    assert out.stderr.startswith("failed  database: database") and "lacks column taken_at" in out.stderr


@pytest.mark.parametrize("key, value", [("generation", "abc"), ("dim", "x"), ("dim", "64"), ("model_id", "other#1")])
def test_damaged_meta_is_repaired_from_the_rows_without_losing_vectors(indexed, key, value):
    db, _ = indexed
    con = sqlite3.connect(db / "pixseek.db")
    good = con.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()[0]
    con.execute("UPDATE meta SET value = ? WHERE key = ?", (value, key))
    con.commit()
    con.close()
    out = cli("search", "--similar", "1", "--db", str(db), expect=None)
    assert out.returncode in (0, 1) and len(out.stderr.strip().splitlines()) <= 2
    assert "failed  meta:" in cli("doctor", "--db", str(db), "--check-only", expect=1).stderr
    fixed = cli("doctor", "--db", str(db)).stdout
    assert "fixed   meta: repaired from the rows" in fixed and count(db) == N
    con = sqlite3.connect(db / "pixseek.db")
    now = con.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()[0]
    con.close()
    assert now == good or key == "generation"
    assert len(cli("search", "--similar", "1", "--db", str(db), "-k", "3").stdout.splitlines()) == 3


def test_check_only_during_an_index_run_says_a_run_is_in_progress(indexed, tmp_path):
    db, root = indexed
    make_corpus(root / "more", 150, start=100, subdirs=False)
    env = dict(os.environ, HF_HUB_OFFLINE="1")
    run = subprocess.Popen(
        [sys.executable, "-m", "pixseek", "index", str(root), "--db", str(db), "--batch-size", "2", "--workers", "0"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        deadline = time.time() + 120
        while count(db) < N + 4 and time.time() < deadline:
            time.sleep(0.1)
        out = cli("doctor", "--db", str(db), "--check-only")
        assert f"warning index run: an index run (pid {run.pid}) is writing to {db}" in out.stdout
        assert "failed" not in out.stdout
    finally:
        run.communicate(timeout=300)
    assert run.returncode == 0


# --- 6. values at the edges -----------------------------------------------------------------------


@pytest.mark.parametrize(
    "args, status",
    [
        (["search", "--similar", "99999999999999999999"], 2),
        (["search", "--similar", "-1"], 2),
        (["search", "--similar", "5000"], 1),
        (["search", "--similar", "1", "--min-side", "99999999999999999999"], 2),
        (["search", "--similar", "1", "--min-side", "9999999999"], 1),
        (["search", "--similar", "1", "--min-score", "nan"], 1),
        (["errors", "--limit", "99999999999999999999"], 2),
        (["search", "--similar", "1", "--type", "bogus"], 1),
        (["search", "--similar", "1", "--since", "2020-02-30"], 1),
        (["index", ""], 1),
        (["forget", ""], 1),
    ],
)
def test_values_at_the_edges_are_one_line(indexed, args, status):
    db, _ = indexed
    out = cli(*args, "--db", str(db), expect=status)
    assert len(out.stderr.strip().splitlines()) <= (1 if status == 1 else 4), out.stderr
    assert count(db) == N


def test_dates_at_the_ends_of_the_calendar_and_type_aliases(indexed):
    db, root = indexed
    wide = cli(
        "search", "--similar", "1", "--since", "0001-01-01", "--until", "9999-12-31", "--db", str(db), "-k", "50"
    ).stdout.splitlines()
    assert len(wide) == N - 1
    jpgs = cli("search", "--similar", "1", "--type", "jpg", "--type", ".JPEG", "--db", str(db), "-k", "50").stdout
    assert jpgs and all(line.endswith(".jpg") for line in jpgs.splitlines())


def test_similar_with_text_combines_both_instead_of_dropping_the_text(indexed):
    db, _ = indexed
    alone = cli("search", "--similar", "1", "--db", str(db), "-k", str(N), "--json").stdout
    both = cli(
        "search",
        "--similar",
        "1",
        "--image",
        str(sorted(indexed[1].rglob("*.png"))[-1]),
        "--db",
        str(db),
        "-k",
        str(N),
        "--json",
    ).stdout
    ids_alone = [r["id"] for r in json.loads(alone)]
    ids_both = [r["id"] for r in json.loads(both)]
    assert 1 not in ids_both and ids_alone != ids_both


@pytest.mark.parametrize("kind", ["fifo", "device", "folder"])
def test_query_images_that_are_not_regular_files_are_refused_at_once(indexed, tmp_path, kind):
    db, _ = indexed
    target = {"fifo": tmp_path / "pipe.png", "device": Path("/dev/zero"), "folder": tmp_path}[kind]
    if kind == "fifo":
        os.mkfifo(target)
    t0 = time.time()
    out = cli("search", "--image", str(target), "--db", str(db), expect=1, timeout=60)
    one_line_error(out, f"Error: cannot read query image {target}: not a regular file")
    assert time.time() - t0 < 30


def test_an_oversized_file_is_refused_from_its_size_without_reading_it(tmp_path, tiny, monkeypatch):
    import pixseek.sources as reads  # every read of an indexed file (pixseek.sources.read_bytes)
    from pixseek.index.indexer import Indexer
    from pixseek.store import Store

    root = tmp_path / "pics"
    make_corpus(root, 2)
    with open(root / "huge.jpg", "wb") as f:  # sparse: 2 GiB on paper, nothing on disk
        f.truncate(2 << 30)
    opened = []
    real_open = open
    monkeypatch.setattr(
        reads, "open", lambda p, *a, **k: (opened.append(str(p)), real_open(p, *a, **k))[1], raising=False
    )
    s = Indexer(tmp_path / "db", encoder=tiny, workers=0).run([root])
    assert (s.added, s.failed) == (2, 1) and str(root / "huge.jpg") not in opened
    with Store.open(tmp_path / "db", readonly=True) as st:
        assert st.errors()[0]["message"] == "file larger than 1024 MiB"


# --- 7. an index that feeds on itself, a folder counted twice -----------------------------------


def test_a_data_dir_inside_the_indexed_folder_is_skipped(tmp_path, tiny):
    from pixseek.index.indexer import Indexer
    from pixseek.store import Store
    from pixseek.store.thumbs import Thumbs

    root = tmp_path / "photos"
    make_corpus(root, 4)
    db = root / "pixseek-data"
    Indexer(db, encoder=tiny, workers=0).run([root])
    with Store.open(db, readonly=True) as st:
        Thumbs(st.data_dir).get(st.get([1])[1])  # the page made a thumbnail inside the indexed folder
    s = Indexer(db, encoder=tiny, workers=0).run([root])
    assert (s.added, s.total) == (0, 4)


def test_one_file_is_one_row_whatever_path_reaches_it(indexed, tmp_path):
    db, root = indexed
    alias = tmp_path / "alias"
    alias.symlink_to(root, target_is_directory=True)
    out = cli("index", str(alias), str(root), "--db", str(db))
    assert "added 0," in out.stdout and f"{N} paths reach files indexed under another path" in out.stderr
    os.link(sorted(root.rglob("*.png"))[0], root / "hardlink.png")
    assert "added 0," in cli("index", str(root), "--db", str(db)).stdout
    assert count(db) == N
    first = json.loads(cli("search", "--similar", "1", "--db", str(db), "-k", "1", "--json").stdout)[0]
    assert first["path"].startswith(str(root))


# --- 8. output that cannot attack the terminal --------------------------------------------------


def test_control_characters_in_names_are_escaped_for_the_terminal(tmp_path):
    root, db = tmp_path / "pics", tmp_path / "db"
    name = "\x1b[31mred\x07.png"
    save(draw(1), root / name)
    save(draw(2), root / "plain.png")
    cli("index", str(root), "--db", str(db), "--model", "tiny-random", "--workers", "0")
    out = cli("search", "--similar", "2", "--db", str(db), "-k", "1")
    assert "\x1b" not in out.stdout and "\x07" not in out.stdout and "\\x1b[31mred\\x07.png" in out.stdout
    exact = json.loads(cli("search", "--similar", "2", "--db", str(db), "-k", "1", "--json").stdout)
    assert exact[0]["path"] == str(root / name)


def test_writers_leave_nothing_beside_a_file_that_is_no_index(tmp_path):
    """An empty folder, a garbage pixseek.db, an empty one: one line, and not even a lock file appears."""
    empty, garbage, zero = tmp_path / "empty", tmp_path / "garbage", tmp_path / "zero"
    for d in (empty, garbage, zero):
        d.mkdir()
    (garbage / "pixseek.db").write_text("this is not sqlite\n" * 50)
    (zero / "pixseek.db").write_bytes(b"")
    (tmp_path / "pics").mkdir()
    for data in (empty, garbage, zero):
        before = sorted(os.listdir(data)), digest(data / "pixseek.db")
        for args in (["forget", str(tmp_path / "pics")], ["doctor"], ["index", "--rebuild-vectors"], ["stats"]):
            out = cli(*args, "--db", str(data), expect=1)
            assert len((out.stdout + out.stderr).strip().splitlines()) == 1, (data, args, out.stdout + out.stderr)
        assert (sorted(os.listdir(data)), digest(data / "pixseek.db")) == before, data
    out = cli("index", str(tmp_path / "pics"), "--db", str(garbage), expect=1)
    one_line_error(out, f"Error: cannot open database {garbage / 'pixseek.db'}: file is not a database")
    assert sorted(os.listdir(garbage)) == ["pixseek.db"]
    assert "added 0," in cli("index", str(tmp_path / "pics"), "--db", str(zero)).stdout  # an empty file: a new index
