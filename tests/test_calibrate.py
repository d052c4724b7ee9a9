"""Strong / good / weak: score thresholds calibrated per model and index, checked on the bundled samples."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
from imagegen import make_corpus

from pixseek.errors import QueryError, StoreError
from pixseek.index.indexer import Indexer
from pixseek.models import load_torch
from pixseek.search import Engine, ScoreScale, calibrate
from pixseek.store import DataDir, Store
from pixseek.store.ann import prompts, save_tuning_queries

SAMPLES = Path(__file__).resolve().parent.parent / "samples"
GIBBERISH = ("xqzvw plmkj", "qwerty asdf zxcv")
# (text good, text strong), (image good, image strong) measured on samples/photos + samples/twemoji
# (345 pictures, every one in the sample); a model or protocol change moves them
MEASURED = {
    "pixseek-photo": ((0.2286, 0.2796), (0.6359, 0.8570)),
    "pixseek-emoji": ((0.4929, 0.6251), (0.6495, 0.8557)),
}


@pytest.fixture(scope="module", params=sorted(MEASURED))
def bundled(request, tmp_path_factory):
    """(model name, encoder, db, its score scale) for the bundled samples indexed by a bundled model."""
    enc = load_torch(request.param, "cpu")
    db = tmp_path_factory.mktemp(request.param) / "db"
    s = Indexer(db, encoder=enc).run([SAMPLES / "photos", SAMPLES / "twemoji"])
    assert (s.total, s.failed) == (345, 0)
    with Engine.open(db, encoder=enc) as eng:
        scale = eng.score_scale()
    return request.param, enc, db, scale


def test_thresholds_are_the_measured_ones_and_ordered(bundled):
    name, _, _, scale = bundled
    text, image = MEASURED[name]
    assert scale.text == pytest.approx(text, abs=1e-3) and scale.image == pytest.approx(image, abs=1e-3)
    assert scale.text[0] < scale.text[1] and scale.image[0] < scale.image[1]
    assert scale.image != scale.text and scale.image[0] > scale.text[0]


def _labels(eng: Engine, scale: ScoreScale, query: str) -> dict[str, str]:
    return {r.name: scale.label(r.score, "text") for r in eng.text(query, k=3)}


def test_real_queries_label_their_right_results_strong_or_good(bundled):
    name, enc, db, scale = bundled
    with Engine.open(db, encoder=enc) as eng:
        dog = _labels(eng, scale, "a dog")
        cat = _labels(eng, scale, "a cat")
    assert dog["dog.png"] == "strong"
    if name == "pixseek-photo":
        assert dog["dog-face.png"] == "good"
        assert cat["cat.jpg"] == "strong" and cat["cat-face.png"] == "good"
    else:  # pixseek-emoji knows dogs, and finds no cat among the samples: its wrong picks are no strong match
        assert dog["dog-face.png"] == "good"
        assert "strong" not in cat.values() and not any("cat" in n for n in cat)


@pytest.mark.parametrize("query", GIBBERISH)
def test_gibberish_labels_its_best_results_weak(bundled, query):
    _, enc, db, scale = bundled
    with Engine.open(db, encoder=enc) as eng:
        labels = _labels(eng, scale, query)
    assert list(labels.values()) == ["weak"] * 3, labels


def test_a_score_reads_by_the_kind_of_query(bundled):
    name, _, _, scale = bundled
    middle = (scale.text[1] + scale.image[0]) / 2  # above the text scale, below the picture scale
    assert scale.label(middle, "text") == "strong" and scale.label(middle, "image") == "weak"
    assert [scale.label(s, "image") for s in (scale.image[0], scale.image[1], 1.0)] == ["good", "strong", "strong"]
    assert scale.describe().startswith(f"text queries: good from {scale.text[0]:.3f}, strong from {scale.text[1]:.3f}")
    with pytest.raises(QueryError):
        scale.label(0.5, "video")


def test_deterministic_for_a_seed(bundled):
    _, enc, db, scale = bundled
    text = enc.encode_texts(prompts())
    with Store.open(db, readonly=True) as store:
        assert calibrate(store, text) == scale
        small = calibrate(store, text, sample=100, seed=3)
        assert calibrate(store, text, sample=100, seed=3) == small
        assert calibrate(store, text, sample=100, seed=4) != small  # the seed draws the sample


# --- the engine's cache, and what it encodes ---------------------------------------------------


def test_cached_per_generation_and_prompts_encoded_only_when_not_saved(tmp_path, tiny, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "fresh-cache"))  # no prompt vectors cached per model
    calls: list[int] = []
    encode = tiny.encode_texts
    monkeypatch.setattr(tiny, "encode_texts", lambda texts: calls.append(len(texts)) or encode(texts))
    root, db = tmp_path / "photos", tmp_path / "db"
    make_corpus(root, 12)
    Indexer(db, encoder=tiny, batch_size=8).run([root])
    calls.clear()  # the run encoded the tag vocabulary (pixseek.index.tagging), not the prompts
    with Engine.open(db, encoder=tiny) as eng:
        first = eng.score_scale()
        assert calls == [len(prompts())] and eng.score_scale() is first
        make_corpus(root, 12, start=12)
        Indexer(db, encoder=tiny, batch_size=8).run([root])
        assert eng.refresh()
        second = eng.score_scale()
        assert second is not first and second != first and calls == [len(prompts())]  # the cached vectors
    db2 = tmp_path / "db2"
    Indexer(db2, encoder=tiny, batch_size=8).run([root])
    save_tuning_queries(DataDir.resolve(db2), lambda texts: np.asarray(encode(texts)))
    calls.clear()
    with Engine.open(db2, encoder=tiny) as eng:
        assert eng.score_scale() == second and calls == []  # the saved vectors, same index content


def test_saved_vectors_of_another_size_are_not_used(tmp_path, tiny):
    root, db = tmp_path / "photos", tmp_path / "db"
    make_corpus(root, 8)
    Indexer(db, encoder=tiny, batch_size=8).run([root])
    with Store.open(db, readonly=True) as store:
        np.save(store.data_dir.tuning_queries, np.ones((5, (store.dim or 0) + 1), np.float32))
        with pytest.raises(StoreError):
            calibrate(store, None)
        with pytest.raises(StoreError):
            calibrate(store, np.ones((5, 3), np.float32))
    with Engine.open(db, encoder=tiny) as eng, Store.open(db, readonly=True) as store:
        assert eng.score_scale() == calibrate(store, tiny.encode_texts(prompts()))


def test_identical_content_is_no_picture_match(tmp_path, tiny):
    """Every picture also copied into a second folder: without leaving copies out, every picture's best
    match would be its copy (score 1) and both picture thresholds 1."""
    root, db = tmp_path / "photos", tmp_path / "db"
    make_corpus(root / "a", 12)
    shutil.copytree(root / "a", root / "b")
    Indexer(db, encoder=tiny, batch_size=8).run([root])
    with Store.open(db, readonly=True) as store:
        assert store.count() == 24
        scale = calibrate(store, tiny.encode_texts(prompts()))
    assert scale.image[0] < scale.image[1] < 0.999
