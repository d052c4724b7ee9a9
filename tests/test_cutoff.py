"""The relevance cut-off: true matches kept and the tail dropped on the bundled emoji with their own
model, gibberish keeping nothing, "off" keeping everything, the background rebuilt when the index
changes, a too-small index, the counts it reports, and the CLI's --cutoff and JSON."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from imagegen import make_corpus

from pixseek.cli import cli as pixseek_cli
from pixseek.errors import QueryError
from pixseek.index.indexer import Indexer
from pixseek.models import load_torch
from pixseek.search import Cutoff, Engine, Term
from pixseek.search.cutoff import DEFAULT_RULE, MIN_PICTURES, PICTURE_ONLY, TEXT_ONLY, account, captions

TWEMOJI = Path(__file__).resolve().parent.parent / "samples" / "twemoji"
N_TWEMOJI = 336
CLOCKS = {"clock-face-nine-oclock", "clock-face-nine-thirty", "clock-face-three-oclock", "clock-face-three-thirty"}
GIBBERISH = ("xqzvw plmkj", "qwerty asdf zxcv", "zzkq vvbnm")


@pytest.fixture(scope="module")
def emoji(tmp_path_factory):
    """(encoder, db): the bundled Twemoji sample indexed by pixseek-emoji (it knows emoji by name)."""
    enc = load_torch("pixseek-emoji", "cpu")
    db = tmp_path_factory.mktemp("emoji") / "db"
    s = Indexer(db, encoder=enc).run([TWEMOJI])
    assert (s.total, s.failed) == (N_TWEMOJI, 0)
    return enc, db


def names(results) -> list[str]:
    return [Path(r.path).stem for r in results]


def invoke(*args, expect: int = 0) -> str:
    """The CLI in this process (the engine's code path is the same; a process start costs seconds)."""
    r = CliRunner().invoke(pixseek_cli, [str(a) for a in args], catch_exceptions=False)
    assert r.exit_code == expect, r.output
    return r.output


def cli(*args, expect: int = 0) -> subprocess.CompletedProcess:
    out = subprocess.run(
        [sys.executable, "-m", "pixseek", *map(str, args)],
        capture_output=True,
        text=True,
        env=dict(os.environ, HF_HUB_OFFLINE="1", TOKENIZERS_PARALLELISM="false"),
        timeout=300,
        cwd=tempfile.gettempdir(),
    )
    assert "Traceback" not in out.stderr, out.stderr[-3000:]
    assert out.returncode == expect, (args, out.returncode, out.stdout[-1500:], out.stderr[-1500:])
    return out


# --- meaning: a real set and its own model ----------------------------------------------------


def test_keeps_the_true_matches_and_drops_the_tail(emoji):
    enc, db = emoji
    with Engine.open(db, encoder=enc) as eng:
        clocks = eng.text("a clock face", k=20, cutoff="auto")
        dog = eng.text("a dog", k=20, cutoff="auto")
    assert set(names(clocks)) == CLOCKS  # every clock face of the sample, and nothing else
    cut = clocks.cutoff
    assert (cut.kept, cut.cut, cut.below) == (4, 16, N_TWEMOJI - 4)
    assert all(r.score >= cut.threshold for r in clocks) and cut.threshold == max(cut.floor, cut.spread_part)
    assert names(dog) == ["dog"] and dog.cutoff.cut == 19
    assert clocks.cutoff.describe() == f"4 above the cut-off (cut-off {cut.threshold:.4f}); 332 more below it"


def test_pictures_and_mixed_queries_keep_their_matches(emoji):
    enc, db = emoji
    with Engine.open(db, encoder=enc) as eng:
        clock = eng.store.get_by_path(str(TWEMOJI / "clock-face-nine-oclock.png"))
        like = eng.similar(clock.id, k=20, cutoff="auto")
        both = eng.query([Term("vector", eng.store.vector(clock.id), 0.5), Term("text", "a clock", 0.5)], cutoff="auto")
        mixed = eng.encode_terms([Term("text", "a clock", 0.5), Term("vector", eng.store.vector(clock.id), 0.5)])
        gain = enc.text_gain  # text weights are scaled by it, then the largest weight is 1
        assert eng.recipe(mixed) == (("text", round(min(1, gain), 4)), ("image", round(min(1, 1 / gain), 4)))
        assert eng.recipe(eng.store.vector(clock.id)) == PICTURE_ONLY  # a vector the engine did not make
        text_floor = eng.text("a clock face", cutoff="auto").cutoff.floor
    assert set(names(like)) == CLOCKS - {"clock-face-nine-oclock"}  # itself excluded, the other three kept
    assert set(names(both)) == CLOCKS and both.cutoff.cut == 16
    assert len({like.cutoff.floor, both.cutoff.floor, text_floor}) == 3  # each recipe has its own background


@pytest.mark.parametrize("query", GIBBERISH)
def test_gibberish_keeps_nothing(emoji, query):
    enc, db = emoji
    with Engine.open(db, encoder=enc) as eng:
        res = eng.text(query, k=20, cutoff="auto")
    assert res == [] and res.cutoff.applied
    assert (res.cutoff.kept, res.cutoff.cut, res.cutoff.below) == (0, 20, N_TWEMOJI)
    assert res.cutoff.describe() == f"nothing stood out (cut-off {res.cutoff.threshold:.4f}); 336 below it"


def test_off_returns_everything_asked_for(emoji):
    enc, db = emoji
    with Engine.open(db, encoder=enc) as eng:
        off = eng.text(GIBBERISH[0], k=25)
        every = eng.text("a clock face", k=N_TWEMOJI + 10)
    assert len(off) == 25 and off.cutoff is None
    assert len(every) == N_TWEMOJI and every.cutoff is None


def test_the_page_gets_groups_above_the_cut_off_and_what_lies_below(emoji):
    enc, db = emoji
    with Engine.open(db, encoder=enc) as eng:
        q = eng.encode_terms([Term("text", "a clock face")])
        assert eng.recipe(q) == TEXT_ONLY  # weights scaled: a text alone is a text alone
        page = eng.search_page(q, 24)
        first = eng.search_page(q, 2)
        show_all = eng.search_page(q, 24, cutoff=None)
    assert {g.best.name[:-4] for g in page.groups} == CLOCKS and not page.more
    assert (page.cutoff.kept, page.cutoff.below) == (4, N_TWEMOJI - 4)
    assert len(first.groups) == 2 and first.more and first.cutoff.below == N_TWEMOJI - 4  # read past it already
    assert len(show_all.groups) == 24 and show_all.more and show_all.cutoff is None


def test_min_score_above_the_cut_off_wins(emoji):
    enc, db = emoji
    with Engine.open(db, encoder=enc) as eng:
        auto = eng.text("a clock face", cutoff="auto")
        stricter = auto[1].score
        both = eng.text("a clock face", cutoff="auto", min_score=stricter)
    assert len(both) == 2 and both.cutoff.threshold == stricter and both.cutoff.below == N_TWEMOJI - 2


# --- the background: cached per index generation, graceful when too small ------------------------


def test_background_is_cached_and_rebuilt_when_the_index_changes(tmp_path, tiny):
    root, db = tmp_path / "pics", tmp_path / "db"
    make_corpus(root, MIN_PICTURES + 10)
    Indexer(db, encoder=tiny, batch_size=16).run([root])
    with Engine.open(db, encoder=tiny) as eng:
        bg = eng.background()
        first = eng.text("a red square", cutoff="auto").cutoff
        assert eng.background() is bg and bg.total == MIN_PICTURES + 10
        make_corpus(root, 12, start=MIN_PICTURES + 10)
        Indexer(db, encoder=tiny, batch_size=16).run([root])
        assert eng.refresh()
        assert eng.background() is not bg and eng.background().total == MIN_PICTURES + 22
        second = eng.text("a red square", cutoff="auto").cutoff
    assert first.applied and second.applied and second.median != first.median


def test_an_index_too_small_keeps_everything_and_says_why(tmp_path, tiny):
    root, db = tmp_path / "pics", tmp_path / "db"
    make_corpus(root, 12)
    Indexer(db, encoder=tiny, batch_size=16).run([root])
    reason = f"an index of 12 pictures is too small to tell matches from the rest ({MIN_PICTURES} needed)"
    with Engine.open(db, encoder=tiny) as eng:
        res = eng.text("a red square", k=20, cutoff="auto")
        page = eng.search_page(eng.encode_terms([Term("text", "a red square")]), 24)
    assert len(res) == 12 and not res.cutoff.applied and res.cutoff.reason == reason
    assert (res.cutoff.kept, res.cutoff.cut, res.cutoff.below) == (12, 0, None)
    assert len(page.groups) == 12 and page.cutoff.describe() == f"no cut-off: {reason}"
    out = invoke("search", "a red square", "--db", db, "--cutoff", "auto", "--model", "tiny-random")
    assert out.splitlines()[-1] == f"no cut-off: {reason}" and len(out.splitlines()) == 13


def test_a_bad_cutoff_value_is_refused(index_dir, tiny):
    db, _ = index_dir
    with Engine.open(db, encoder=tiny) as eng, pytest.raises(QueryError, match="neither 'auto' nor None"):
        eng.text("a red square", cutoff="sometimes")
    out = invoke("search", "a red square", "--db", db, "--cutoff", "sometimes", expect=2)
    assert "'sometimes' is not one of 'auto', 'off'" in out


def test_background_captions_are_package_data():
    caps = captions()
    assert len(caps) == 256 and len(set(caps)) == 256 and not any(c.startswith("#") for c in caps)
    assert DEFAULT_RULE.floor_quantile < 1 and TEXT_ONLY != PICTURE_ONLY


# --- the counts -------------------------------------------------------------------------------


def test_account_counts_kept_cut_and_below():
    cut = Cutoff(0.5, floor=0.5, spread_part=0.3, median=0.0, spread=0.1)
    ranking = [(i, s) for i, s in enumerate([0.9, 0.8, 0.6, 0.4, 0.3, 0.2])]
    page, c = account(cut, ranking, (0, 5), None, False, lambda: 100)
    assert [i for i, _ in page] == [0, 1, 2] and (c.kept, c.cut, c.below) == (3, 2, 97)
    page, c = account(cut, ranking[:2], (0, 2), None, False, lambda: 100)  # all asked for passed: not counted
    assert len(page) == 2 and (c.kept, c.cut, c.below) == (2, 0, None)
    page, c = account(cut, ranking, (3, 3), None, False, lambda: 100)  # a later page, past the last kept one
    assert page == [] and (c.kept, c.cut, c.below) == (0, 3, 97)
    page, c = account(cut, ranking, (0, 5), 0.7, True, lambda: 6)  # a higher minimum score is the threshold
    assert [i for i, _ in page] == [0, 1] and (c.threshold, c.kept, c.cut, c.below) == (0.7, 2, 0, 4)
    off = Cutoff(None, reason="too small")
    page, c = account(off, ranking, (0, 4), None, False, lambda: 100)
    assert len(page) == 4 and (c.kept, c.cut, c.below, c.applied) == (4, 0, None, False)


# --- the command line -------------------------------------------------------------------------


def test_cli_flag_text_and_json(emoji):
    _, db = emoji
    # by meaning alone: in hybrid mode the names holding "face" would join the clocks as word matches
    text = cli("search", "a clock face", "--db", db, "--cutoff", "auto", "--mode", "semantic").stdout.splitlines()
    assert len(text) == 5 and {Path(ln.split()[-1]).stem for ln in text[:4]} == CLOCKS
    assert text[-1].startswith("4 above the cut-off (cut-off 0.") and text[-1].endswith(
        "; 332 more below it (--cutoff off shows them)"
    )
    got = json.loads(
        cli("search", "a clock face", "--db", db, "--cutoff", "auto", "--mode", "semantic", "--json").stdout
    )
    assert {Path(r["path"]).stem for r in got["results"]} == CLOCKS
    c = got["cutoff"]
    assert (c["mode"], c["applied"], c["kept"], c["cut"], c["below"]) == ("auto", True, 4, 16, 332)
    assert c["threshold"] == max(c["floor"], c["spread_part"]) and c["reason"] == ""
    assert all(r["score"] >= c["threshold"] for r in got["results"])
    plain = json.loads(invoke("search", "a clock face", "--db", db, "--json"))  # off: the list, as before
    assert isinstance(plain, list) and len(plain) == 20
    empty = invoke("search", GIBBERISH[0], "--db", db, "--cutoff", "auto")
    assert empty.startswith("no good match: nothing stood out (cut-off 0.") and empty.endswith(
        "336 below it (--cutoff off shows them)\n"
    )


def test_cutoff_is_cheap_once_the_background_is_made(emoji):
    """Not a timing assertion: the background is made once per recipe, a query reads it."""
    enc, db = emoji
    with Engine.open(db, encoder=enc) as eng:
        bg = eng.background()
        q = eng.encode_terms([Term("text", "a banana")])
        eng.cutoff(q)
        bests = bg.bests(eng.recipe(q))
        eng.cutoff(eng.encode_terms([Term("text", "a red heart")]))
        assert bg.bests(eng.recipe(q)) is bests and len(bests) == 256 and np.isfinite(bests).all()
