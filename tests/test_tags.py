"""Zero-shot tags end to end: the tagging stage of `pixseek index`, the migration on an existing index,
re-tagging, `pixseek tags`, `pixseek search --tag`, tags on results, and tags that mean something
with a bundled model."""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import numpy as np
from imagegen import draw, make_corpus, save

from pixseek.index import tag_rule, vocabulary
from pixseek.index.indexer import Indexer
from pixseek.index.tagging import tag_index
from pixseek.search import Engine, Filter
from pixseek.store import Store

ROOT = Path(__file__).resolve().parent.parent


def cli(*args, expect: int = 0) -> subprocess.CompletedProcess:
    env = dict(os.environ, HF_HUB_OFFLINE="1", TOKENIZERS_PARALLELISM="false")
    out = subprocess.run(
        [sys.executable, "-m", "pixseek", *map(str, args)], capture_output=True, text=True, env=env, timeout=120
    )
    assert "Traceback" not in out.stderr, out.stderr[-3000:]
    assert out.returncode == expect, (args, out.returncode, out.stdout[-1500:], out.stderr[-1500:])
    return out


def tagged_ids(db: Path, tag: str) -> set[int]:
    with Store.open(db, readonly=True) as st:
        return {int(i) for i in st.select_ids(Filter(tags=(tag,)))}


def state(db: Path):
    with Store.open(db, readonly=True) as st:
        return st.tag_state()


def test_index_tags_every_picture_then_only_new_and_changed_ones(index_dir, tiny):
    db, corpus = index_dir
    s = state(db)
    assert (s.tagged, s.images, s.vocabulary) == (24, 24, len(vocabulary.bundled().tags))
    assert s.source == "uncalibrated model: tag medians over 24 pictures of this index, strength from 3.5"
    with Store.open(db, readonly=True) as st:
        rows = st.conn.execute("SELECT image_id, tag, score, strength FROM tags").fetchall()
        assert rows and all(z >= tag_rule.FALLBACK_THRESHOLD for *_, z in rows)
        assert max(np.bincount([r[0] for r in rows])) <= tag_rule.MAX_PER_IMAGE
    assert Indexer(db, encoder=tiny).run([corpus]).tagged == 0  # nothing new: nothing scored

    changed = sorted(corpus.rglob("*.png"))[0]
    save(draw(1000), corpus / "new.png")
    save(draw(1001), changed)
    os.utime(changed, ns=(1, 1))
    with Store.open(db) as st:
        changed_id = st.get_by_path(str(changed)).id
    s = Indexer(db, encoder=tiny).run([corpus])
    assert (s.added, s.updated, s.tagged) == (1, 1, 2)  # the changed picture's old tags went with its vector
    with Store.open(db, readonly=True) as st:
        assert st.tag_state().tagged == 25 and changed_id not in st.untagged_ids()

    changed.unlink()
    s = Indexer(db, encoder=tiny).run([corpus])
    assert (s.removed, s.tagged) == (1, 0)
    with Store.open(db, readonly=True) as st:
        for table in ("tags", "tagged"):
            assert not st.conn.execute(f"SELECT 1 FROM {table} WHERE image_id = ?", (changed_id,)).fetchall()


def test_an_index_from_before_tags_gains_them_on_its_next_run_without_re_embedding(index_dir, tiny):
    db, corpus = index_dir
    con = sqlite3.connect(db / "pixseek.db")
    con.executescript(
        "DROP TRIGGER tags_image_deleted; DROP TRIGGER tags_vector_changed; DROP TABLE tags; DROP TABLE tagged; "
        "DROP TABLE tag_vocab; DELETE FROM migrations WHERE name = 'm009_tags'; DELETE FROM meta WHERE key LIKE 'tags%'"
    )
    before = dict(con.execute("SELECT id, vector FROM images"))
    con.close()
    digest = hashlib.sha256((db / "pixseek.db").read_bytes()).hexdigest()
    err = cli("tags", "--db", db, expect=1).stderr.strip()  # a read-only command: it refuses, writes nothing
    assert re.fullmatch(
        r"Error: database \S+pixseek.db has an older schema \(\d+ of \d+ migrations\) "
        r"\(run `pixseek index` or `pixseek doctor` on it once to upgrade it\)",
        err,
    ), err
    assert hashlib.sha256((db / "pixseek.db").read_bytes()).hexdigest() == digest

    s = Indexer(db, encoder=tiny).run([corpus])
    assert (s.embedded, s.unchanged, s.tagged) == (0, 24, 24)
    with Store.open(db, readonly=True) as st:
        assert dict(st.conn.execute("SELECT id, vector FROM images")) == before
        assert st.tag_state().tagged == 24 and st.tag_counts()


def test_a_new_vocabulary_calibration_or_model_tags_every_picture_again(index_dir, tiny, monkeypatch):
    db, corpus = index_dir
    small = vocabulary.parse("[thing]\ndog | a dog | |\ncat | a cat | |\n[style]\nphoto | a photo.; a snapshot. | |\n")
    with Store.open(db) as st:
        assert tag_index(st, lambda: tiny, vocab=small) == 24
        assert st.tag_state().vocabulary == 3 and {t for t, _ in st.tag_counts()} <= {"dog", "cat", "photo"}
    assert Indexer(db, encoder=tiny).run([corpus]).tagged == 24  # the bundled vocabulary again
    assert state(db).vocabulary == len(vocabulary.bundled().tags)

    names = vocabulary.bundled().names
    entry = {
        "threshold": -100,
        "max_per_image": 2,
        "source": "calibrated for a test",
        "background": dict.fromkeys(names, 0),
    }
    table = {"vocabulary": vocabulary.bundled().digest, "models": {tiny.model_id: entry}}
    monkeypatch.setattr(tag_rule, "_calibrations", lambda: table)
    assert Indexer(db, encoder=tiny).run([corpus]).tagged == 24
    with Store.open(db, readonly=True) as st:
        assert st.tag_state().source == "calibrated for a test"
        assert {len(v) for v in st.tags_for(st.ids()).values()} == {2}
    assert Indexer(db, encoder=tiny).run([corpus]).tagged == 0

    with Store.open(db) as st:  # the setup names the model: another model id scores every picture again
        st.set_meta(model_id="tiny-random#another")
        assert tag_index(st, lambda: tiny) == 24


def test_an_uncalibrated_background_is_measured_again_when_the_index_doubles(index_dir, tiny):
    db, corpus = index_dir
    make_corpus(corpus / "more", 12, start=100)
    assert Indexer(db, encoder=tiny).run([corpus]).tagged == 12  # 36 < 2 x 24: the background holds
    make_corpus(corpus / "more", 12, start=200)
    assert Indexer(db, encoder=tiny).run([corpus]).tagged == 48
    assert state(db).source == "uncalibrated model: tag medians over 48 pictures of this index, strength from 3.5"


def test_pixseek_tags_lists_tags_with_counts_and_never_writes(index_dir):
    db, _ = index_dir
    with Store.open(db, readonly=True) as st:
        counts = st.tag_counts()
    files = {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in db.iterdir() if p.is_file()}
    out = cli("tags", "--db", db)
    width = max(len(t) for t, _ in counts)
    assert out.stdout.splitlines() == [f"{t:<{width}}  {n:>7}" for t, n in counts]
    assert out.stderr.splitlines() == [
        f"{len(counts)} of {len(vocabulary.bundled().tags)} tags in use; 24 of 24 pictures tagged "
        "(uncalibrated model: tag medians over 24 pictures of this index, strength from 3.5)"
    ]
    assert cli("tags", "--db", db, "--limit", "2").stdout.splitlines() == [
        f"{t:<{max(len(t) for t, _ in counts[:2])}}  {n:>7}" for t, n in counts[:2]
    ]
    got = json.loads(cli("tags", "--db", db, "--json", "-n", "3").stdout)
    assert got == {
        "tags": [{"tag": t, "count": n} for t, n in counts[:3]],
        "vocabulary": len(vocabulary.bundled().tags),
        "tagged": 24,
        "images": 24,
        "rule": "uncalibrated model: tag medians over 24 pictures of this index, strength from 3.5",
    }
    assert counts == sorted(counts, key=lambda c: (-c[1], c[0]))
    assert {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in db.iterdir() if p.is_file()} == files

    with Store.open(db) as st:
        st.reset_tags("k", "", [])
    assert cli("tags", "--db", db).stdout == "no tags yet: `pixseek index PATH` tags the pictures it indexes\n"
    assert cli("tags", "--db", db.parent / "nothing", expect=1).stderr.startswith("Error: no pixseek index in ")


def test_search_by_tags_all_must_match_and_results_carry_their_tags(index_dir):
    from click.testing import CliRunner

    from pixseek.cli import cli as command

    db, _ = index_dir
    with Store.open(db, readonly=True) as st:
        (first, n1), (second, _) = st.tag_counts()[:2]
    one = json.loads(cli("search", "a picture", "--tag", first, "--db", db, "-k", "100", "--json").stdout)
    assert {r["id"] for r in one} == tagged_ids(db, first) and len(one) == n1
    assert all(first in r["tags"] for r in one)
    run = CliRunner().invoke(command, ["search", "--tag", first.upper(), "--tag", second, "--db", str(db), "--json"])
    both = json.loads(run.stdout)  # with only --tag, the tags' names are the query
    assert {r["id"] for r in both} == tagged_ids(db, first) & tagged_ids(db, second)
    err = cli("search", "x", "--tag", "giraffee", "--db", db, expect=1).stderr.strip()
    assert err == "Error: unknown tag 'giraffee' (did you mean giraffe? `pixseek tags` lists them)"
    err = cli("search", "x", "--tag", " ", "--db", db, expect=1).stderr.strip()
    assert err == "Error: an empty tag names nothing: give a tag such as dog (`pixseek tags` lists them)"

    with Engine.open(db) as eng:
        results = eng.similar(1, k=24)
        with Store.open(db, readonly=True) as st:
            stored = st.tags_for(st.ids())
            counts = st.tag_counts()
        for r in results:
            assert r.tags == tuple(t.tag for t in stored.get(r.id, []))
            assert r.to_dict()["tags"] == list(r.tags)
        assert eng.image_tags(1) == stored.get(1, [])
        assert eng.tag_counts() == counts
        facet = eng.tag_counts(Filter(tags=(first,)))
        assert dict(facet)[first] == n1 and all(n <= n1 for _, n in facet)


def test_a_bundled_model_tags_what_the_pictures_show(tmp_path):
    folder = tmp_path / "emoji"
    folder.mkdir()
    want = {"dog.png": "dog", "cat-face.png": "cat", "banana.png": "banana", "airplane.png": "airplane"}
    for name in [*want, "slice-of-pizza.png"]:
        shutil.copy(ROOT / "samples" / "twemoji" / name, folder / name)
    db = tmp_path / "db"
    assert Indexer(db, model="pixseek-emoji", export_encoders=False).run([folder]).tagged == 5
    with Store.open(db, readonly=True) as st:
        assert st.tag_state().source.startswith("calibrated for pixseek-emoji on ")
        tags = st.tags_for(st.ids())
        paths = {i: Path(r.path).name for i, r in st.get(st.ids()).items()}
    assert {paths[i]: t[0].tag for i, t in tags.items() if paths[i] in want} == want  # the strongest tag
    with Engine.open(db) as eng:
        assert [Path(r.path).name for r in eng.text("a dog", k=5, filter=Filter(tags=("dog",)))] == ["dog.png"]


def test_a_model_that_cannot_load_leaves_the_tags_as_they_were(index_dir):
    from pixseek.errors import ModelUnavailableError
    from pixseek.index.tagging import tag_stage

    db, _ = index_dir

    def gone():
        raise ModelUnavailableError("the weights of gone#1 are not on this machine")

    with Store.open(db) as st:
        st.set_meta(model_id="gone#1")  # no cached tag vectors for it: the encoder is needed
        notes: list[str] = []
        assert tag_stage(st, gone, notes) == 0
        assert notes == [
            "tags not updated: the weights of gone#1 are not on this machine (the next `pixseek index` tries again)"
        ]
        assert st.tag_state().tagged == 24
