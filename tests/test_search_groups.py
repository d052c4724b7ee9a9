"""Copies of one picture come back as one group: by content hash, in rank order, pages always full."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
from imagegen import draw, save

from pixseek.errors import QueryError
from pixseek.index.indexer import Indexer
from pixseek.search import Engine, Group, Result, group_copies


def _index(tiny, db: Path, roots: list[Path], added: int) -> None:
    s = Indexer(db, encoder=tiny, batch_size=8).run(roots)
    assert (s.added, s.failed) == (added, 0)


@pytest.fixture
def copies_index(tmp_path, tiny):
    """Root a/: picture 0 as dog.png, pictures 1..5, a symlink to a copy of picture 0 outside both
    roots. Root b/: a copy of picture 0 and a symlink to a/dog.png (an alias: the same file, no row of
    its own). Three rows share picture 0's content."""
    a, b, outside = tmp_path / "a", tmp_path / "b", tmp_path / "outside"
    save(draw(0, (160, 120)), a / "dog.png")
    for i in range(1, 6):
        save(draw(i, (160, 120)), a / f"p{i}.png")
    b.mkdir()
    shutil.copyfile(a / "dog.png", b / "dog-copy.png")
    outside.mkdir()
    shutil.copyfile(a / "dog.png", outside / "dog.png")
    os.symlink(outside / "dog.png", a / "linked-dog.png")
    os.symlink(a / "dog.png", b / "alias.png")
    db = tmp_path / "db"
    _index(tiny, db, [a, b], added=8)
    return db, a, b


def test_copies_in_two_folders_and_a_symlink_are_one_group(copies_index):
    db, a, b = copies_index
    with Engine.open(db) as eng:
        dog = eng.store.get_by_path(str(a / "dog.png"))
        assert dog is not None
        groups, more = eng.search_groups(eng.store.vector(dog.id), 3)
        assert more is True and len(groups) == 3
        first = groups[0]
        paths = {first.best.path, *(c.path for c in first.copies)}
        assert paths == {str(a / "dog.png"), str(b / "dog-copy.png"), str(a / "linked-dog.png")}
        assert first.n_copies == 2 and len(set(first.ids)) == 3 and first.best.id == first.ids[0]
        assert {r.hash for r in (first.best, *first.copies)} == {dog.hash} and len(dog.hash) > 8
        assert {r.root for r in (first.best, *first.copies)} == {str(a), str(b)}
        assert [c.rank for c in first.copies] == sorted(c.rank for c in first.copies)
        assert first.best.score == pytest.approx(1.0, abs=1e-5)
        assert all(c.score == pytest.approx(first.best.score, abs=1e-6) for c in first.copies)
        # the other pictures are groups of one, each its own content
        assert [g.n_copies for g in groups[1:]] == [0, 0]
        assert len({g.best.hash for g in groups}) == 3
        assert groups[1].best.rank == 4 and groups[2].best.rank == 5


def test_results_carry_hash_and_root(copies_index):
    db, a, b = copies_index
    with Engine.open(db) as eng:
        copy = eng.store.get_by_path(str(b / "dog-copy.png"))
        assert copy is not None
        (r,) = [r for r in eng.similar(eng.store.get_by_path(str(a / "p1.png")).id, 10) if r.id == copy.id]
        assert (r.hash, r.root) == (copy.hash, str(b))
        assert r.to_dict()["hash"] == copy.hash and r.to_dict()["root"] == str(b)


def test_exclude_and_min_score_apply_before_grouping(copies_index):
    db, a, _ = copies_index
    with Engine.open(db) as eng:
        dog = eng.store.get_by_path(str(a / "dog.png"))
        assert dog is not None
        q = eng.store.vector(dog.id)
        groups, more = eng.search_groups(q, 2, exclude=[dog.id])
        assert dog.id not in groups[0].ids and groups[0].n_copies == 1 and more is True
        only, more = eng.search_groups(q, 5, min_score=0.9999)
        assert [len(g.ids) for g in only] == [3] and more is False


@pytest.fixture
def crowded_index(tmp_path, tiny):
    """Ten files each of pictures 0 and 1 (nine copies in a folder of their own), pictures 2..6 once:
    7 pictures in 25 files."""
    root = tmp_path / "crowded"
    for pic in (0, 1):
        src = save(draw(pic, (128, 128)), root / f"src{pic}.png")
        (root / f"copies{pic}").mkdir()
        for n in range(9):
            shutil.copyfile(src, root / f"copies{pic}" / f"c{n}.png")
    for pic in range(2, 7):
        save(draw(pic, (128, 128)), root / f"single{pic}.png")
    db = tmp_path / "db"
    _index(tiny, db, [root], added=25)
    return db, root


def test_pages_fill_even_when_copies_outnumber_them(crowded_index):
    db, root = crowded_index
    with Engine.open(db) as eng:
        src0 = eng.store.get_by_path(str(root / "src0.png"))
        assert src0 is not None
        q = eng.store.vector(src0.id)
        assert {r.hash for r in eng.search_vector(q, 8)} == {src0.hash}  # the first raw page: one picture
        groups, more = eng.search_groups(q, 3)
        assert len(groups) == 3 and more is True
        assert groups[0].best.hash == src0.hash and groups[0].n_copies == 9
        assert len({g.best.hash for g in groups}) == 3
        ids = [i for g in groups for i in g.ids]
        assert len(ids) == len(set(ids))
        # every group holds all its files: 10 for each copied picture, 1 for the others
        sizes = {g.best.hash: len(g.ids) for g in groups}
        for g in groups:
            assert sizes[g.best.hash] == len(eng.store.ids_by_hash(g.best.hash))


def test_more_says_whether_another_picture_follows(crowded_index):
    db, root = crowded_index
    with Engine.open(db) as eng:
        src1 = eng.store.get_by_path(str(root / "src1.png"))
        assert src1 is not None
        q = eng.store.vector(src1.id)
        everything, more = eng.search_groups(q, 7)
        assert len(everything) == 7 and more is False
        assert sorted(len(g.ids) for g in everything) == [1, 1, 1, 1, 1, 10, 10]
        assert [g.best.hash for g in eng.search_groups(q, 6)[0]] == [g.best.hash for g in everything[:6]]
        assert eng.search_groups(q, 6)[1] is True
        assert eng.search_groups(q, 50) == (everything, False)
        with pytest.raises(QueryError):
            eng.search_groups(q, 0)


def _result(rank: int, id: int, digest: str) -> Result:
    return Result(rank, id, f"/p/{id}.png", 1.0 - rank / 10, 10, 10, "PNG", 1, 0.0, None, digest, "/p")


def test_group_copies_keeps_rank_order_and_never_groups_an_unknown_hash():
    rs = [_result(1, 10, "h1"), _result(2, 11, ""), _result(3, 12, "h2"), _result(4, 13, "h1"), _result(5, 14, "")]
    groups = group_copies(rs)
    assert [g.ids for g in groups] == [(10, 13), (11,), (12,), (14,)]
    assert groups[0] == Group(rs[0], (rs[3],)) and groups[0].n_copies == 1
    assert group_copies([]) == []
    assert groups[0].to_dict()["copies"][0]["id"] == 13
