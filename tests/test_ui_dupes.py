"""The duplicates page through Streamlit's AppTest: the groups ``pixseek dupes`` finds, side by side with
the kept file first; the kinds and folder choices; the list as CSV; the move command; the page reads
only; going back to the search keeps the query."""

from __future__ import annotations

import hashlib
import shutil
import sqlite3
from pathlib import Path

import pytest
from imagegen import make_corpus
from pagetest import cards, open_page, unmd
from PIL import Image
from streamlit.testing.v1 import AppTest

from pixseek.index.indexer import Indexer
from pixseek.search import Engine
from pixseek.search.dupes import KIND_WORDS, size_text
from pixseek.search.dupes_export import to_csv

PAGE = "dupes_page.py"


@pytest.fixture(scope="module")
def dupe_index(tmp_path_factory, tiny):
    """(db, root): 12 drawn pictures, an identical copy of one in backup/, a half-size re-encode of
    another in small/, indexed by the tiny model."""
    base = tmp_path_factory.mktemp("uidupes")
    root = base / "photos"
    paths = make_corpus(root, 12)
    (root / "backup").mkdir()
    (root / "small").mkdir()
    shutil.copy(paths[0], root / "backup" / paths[0].name)
    img = Image.open(paths[4]).convert("RGB")
    half = img.resize((img.width // 2, img.height // 2), Image.Resampling.LANCZOS)
    half.save(root / "small" / "half.jpg", quality=80)
    db = base / "db"
    s = Indexer(db, encoder=tiny, batch_size=8).run([root])
    assert (s.added, s.failed) == (14, 0)
    return db, root


def _ok(at: AppTest) -> None:
    assert not at.exception, [e.value for e in at.exception]


def _open(db, monkeypatch, query: str | None = None) -> AppTest:
    at = open_page(db, monkeypatch, query=query)
    at.switch_page(PAGE).run()
    _ok(at)
    return at


def _headers(at: AppTest) -> list[str]:
    return [m.value for m in at.markdown if m.value.startswith("**Group ")]


def _names(at: AppTest) -> list[str]:
    """The file names shown, in page order (the first line of each file's facts)."""
    return [unmd(m.value.split("**")[1]) for m in at.markdown if m.value.startswith("**") and "  \n" in m.value]


def _expected(report) -> list[str]:
    return [
        f"**Group {g.number}** :{('blue', 'orange', 'violet')[('exact', 'same', 'similar').index(g.kind)]}-badge"
        f"[{KIND_WORDS[g.kind]}] {len(g.files)} files · {size_text(sum(f.size for f in g.others))} to move"
        for g in report.groups
    ]


def _digest(db: Path) -> dict[str, str]:
    """The index's files (the database, the vector index) by content; the page's thumbnail cache and
    SQLite's shared-memory files aside."""
    with sqlite3.connect(db / "pixseek.db") as conn:  # a write still in the WAL lands in the file first
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    files = [p for p in db.iterdir() if p.is_file() and not p.name.endswith(("-wal", "-shm"))]
    assert files
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(files)}


def test_groups_side_by_side_as_pixseek_dupes_finds_them(dupe_index, monkeypatch):
    db, root = dupe_index
    before = _digest(db)
    at = _open(db, monkeypatch)
    with Engine.open(db) as eng:
        report = eng.duplicates()
    assert report.groups and _headers(at) == _expected(report)
    exact = next(g for g in report.groups if g.kind == "exact")
    assert {f.path for f in exact.files} == {str(root / "set0" / "img0000.jpg"), str(root / "backup" / "img0000.jpg")}
    linked = next(g for g in report.groups if str(root / "small" / "half.jpg") in {f.path for f in g.files})
    assert str(root / "set1" / "img0004.png") in {f.path for f in linked.files}
    shown = _names(at)
    assert shown == [Path(f.path).name for g in report.groups for f in g.files]  # every group, kept file first
    keeps = [m.value for m in at.markdown if m.value.startswith(":green-badge[")]
    assert len(keeps) == len(report.groups)
    d = report.to_dict()["summary"]
    summary = next(m.value for m in at.markdown if " groups** (" in m.value)
    assert summary.startswith(f"**{d['groups']} groups** (1 identical files, ")
    assert f"**{d['movable']} files ({size_text(d['movable_bytes'])})** could be moved away" in summary
    assert at.get("download_button")[0].proto.label == "Download the list (CSV)"
    assert to_csv(report).splitlines()[0].startswith("group,")
    assert at.code[0].value == (
        "# what would move, changing nothing:\n"
        f"pixseek dupes --db {db} --move-to FOLDER --dry-run\n"
        "# move:\n"
        f"pixseek dupes --db {db} --move-to FOLDER"
    )
    assert _digest(db) == before  # the page only reads


def test_kinds_and_folder_choose_the_groups(dupe_index, monkeypatch):
    db, root = dupe_index
    at = _open(db, monkeypatch)
    at.multiselect(key="d_kinds").set_value(["exact"]).run()
    _ok(at)
    with Engine.open(db) as eng:
        exact = eng.duplicates(kinds=["exact"])
    assert [g.kind for g in exact.groups] == ["exact"] and _headers(at) == _expected(exact)
    assert at.code[0].value.splitlines()[1] == f"pixseek dupes --db {db} --kind exact --move-to FOLDER --dry-run"
    at.selectbox(key="d_folder").set_value(str(root / "set2")).run()
    _ok(at)
    assert at.success[0].value == "No duplicates among 4 pictures." and not _headers(at)
    at.multiselect(key="d_kinds").set_value([]).run()
    _ok(at)
    assert at.info[0].value == "Choose at least one kind of duplicate."


def test_back_to_the_search_keeps_the_query(dupe_index, monkeypatch):
    db, _ = dupe_index
    at = open_page(db, monkeypatch, query="a red square")
    _ok(at)
    first = [c["id"] for c in cards(at)]
    assert first
    at.switch_page(PAGE).run()
    _ok(at)
    assert not cards(at) and _headers(at)
    at.query_params.clear()  # the browser drops the search's URL on the way to another page
    at.switch_page("search_page.py").run()
    _ok(at)
    assert at.text_input(key="q").value == "a red square"
    assert [c["id"] for c in cards(at)] == first
