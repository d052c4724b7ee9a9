"""Hybrid fusion policy (search/hybrid.py, chosen by bench/fusion.py on validation data): the written
answer leads when only the keyword index finds it, a match through tags alone counts as the policy says,
and on the bundled emoji with their own model "a dog" puts the dog first, not the hot dog."""

from __future__ import annotations

from pathlib import Path

import pytest

from pixseek.index.indexer import Indexer
from pixseek.models import load_torch
from pixseek.search import Engine, hybrid

TWEMOJI = Path(__file__).resolve().parent.parent / "samples" / "twemoji"


def _pairs(ids: list[int]) -> list[tuple[int, float]]:
    return [(i, 1.0 - n / 100) for n, i in enumerate(ids)]


@pytest.fixture
def policy(monkeypatch):
    def set_(weight: float, ties: str, tag_only: float) -> None:
        monkeypatch.setattr(hybrid, "KEYWORD_WEIGHT", weight)
        monkeypatch.setattr(hybrid, "TIES", ties)
        monkeypatch.setattr(hybrid, "TAG_ONLY_WEIGHT", tag_only)

    return set_


def test_the_shipped_policy_ties_a_keyword_only_first_pick_with_a_meaning_only_one():
    # the written-words case: the vector's first pick (1) holds no such text; the keyword index's
    # only match (2) is not among the vector's candidates at all. At 1 : 1 they tie, and meaning wins
    # the tie (the "a dog" guard: the browser tests' index puts hot-dog.png first otherwise).
    assert (hybrid.KEYWORD_WEIGHT, hybrid.TIES, hybrid.TAG_ONLY_WEIGHT) == (1.0, "meaning", 0.0)
    fused = hybrid._fuse(_pairs([1, 3, 4]), _pairs([2]), "hybrid")
    assert fused[:2] == [1, 2]


def test_ties_go_where_the_policy_says(policy):
    semantic, found = _pairs([1, 3]), _pairs([2, 4])  # 1 and 2 sum alike at equal weights
    policy(1.0, "meaning", 1.0)
    assert hybrid._fuse(semantic, found, "hybrid") == [1, 2, 3, 4]
    policy(1.0, "words", 1.0)
    assert hybrid._fuse(semantic, found, "hybrid") == [2, 1, 4, 3]
    policy(2.0, "meaning", 1.0)  # a heavier keyword ranking needs no tie-break
    assert hybrid._fuse(semantic, found, "hybrid")[:2] == [2, 4]


def test_a_match_through_tags_alone_counts_as_the_policy_says(policy):
    semantic, found = _pairs([1, 3, 5]), _pairs([9, 2])  # 9: its words only in its tags
    policy(1.0, "meaning", 1.0)
    assert hybrid._fuse(semantic, found, "hybrid", {9})[:2] == [1, 9]
    policy(1.0, "meaning", 0.5)  # half a keyword share: below the next word match and meaning's second
    fused = hybrid._fuse(semantic, found, "hybrid", {9})
    assert fused[0] == 1 and fused.index(9) > max(fused.index(2), fused.index(3))
    policy(1.0, "meaning", 0.0)  # out of the keyword ranking, which closes up: 2 takes its first place
    fused = hybrid._fuse(semantic, found, "hybrid", {9})
    assert 9 not in fused and fused[:2] == [1, 2]
    assert hybrid._fuse(semantic, found, "keyword", {9}) == [9, 2]  # keyword mode keeps its own order


@pytest.fixture(scope="module")
def emoji(tmp_path_factory):
    """The bundled Twemoji sample indexed (with its zero-shot tags) by its own bundled model."""
    enc = load_torch("pixseek-emoji", "cpu")
    db = tmp_path_factory.mktemp("emoji") / "db"
    s = Indexer(db, encoder=enc).run([TWEMOJI])
    assert s.failed == 0 and s.tagged == s.total
    return enc, db


def test_a_dog_puts_the_dog_first_not_the_hot_dog(emoji):
    enc, db = emoji
    with Engine.open(db, encoder=enc) as eng:
        results = eng.search(["a dog"], k=10)
    got = [Path(r.path).stem for r in results]
    why = {Path(r.path).stem: r.why for r in results}
    assert got[0] in {"dog", "dog-face"}, got
    assert got.index("hot-dog") > max(got.index("dog"), got.index("dog-face")), got
    assert "file name" in why["hot-dog"] and "image meaning" not in why["hot-dog"]
    # bison.png holds "dog" only among its zero-shot tags: no longer lifted by them (it was 4th)
    assert "bison" not in got[:5] and all(r.why != ("tag",) for r in results[:5]), [r.why for r in results]
