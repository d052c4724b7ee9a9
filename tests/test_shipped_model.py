"""The bundled emoji model (pixseek-emoji): meaningful on the bundled samples, stable figures."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from pixseek.index.indexer import Indexer
from pixseek.models import load_torch, resolve
from pixseek.search import Engine
from pixseek.train.evaluate import evaluate

ROOT = Path(__file__).resolve().parent.parent
FIXTURE = Path(__file__).resolve().parent / "fixtures" / "emoji-mini"
SAMPLES = ROOT / "samples" / "twemoji"

# query -> a file that must be in the top 5 over the bundled samples
SEMANTIC = {
    "dog": "dog-face.png",
    "puppy": "dog.png",  # a paraphrase: the pretrained text tower at work
    "a slice of pizza": "slice-of-pizza.png",
    "hamburger": "hamburger.png",
    "red heart": "heavy-black-heart.png",
    "car": "automobile.png",
    "airplane": "airplane.png",
    "guitar": "guitar.png",
    "rainbow": "rainbow.png",
    "tree": "evergreen-tree.png",
}


@pytest.fixture(scope="module")
def shipped():
    return load_torch("pixseek-emoji", "cpu")


def test_it_is_bundled_and_small():
    src = resolve("pixseek-emoji")
    assert src.kind == "file" and src.checkpoint.stat().st_size <= 25 * 1024 * 1024


@pytest.fixture(scope="module")
def samples_index(tmp_path_factory, shipped):
    db = tmp_path_factory.mktemp("samples") / "db"
    s = Indexer(db, encoder=shipped).run([SAMPLES])
    assert s.failed == 0 and s.total == len(list(SAMPLES.glob("*.png")))
    return db


@pytest.mark.parametrize("query, expected", sorted(SEMANTIC.items()))
def test_text_queries_find_the_right_emoji(samples_index, shipped, query, expected):
    with Engine.open(samples_index, encoder=shipped) as eng:
        top = [r.name for r in eng.text(query, k=5)]
    assert expected in top, (query, top)


def test_eval_regression_on_fixture(shipped):
    want = json.loads((FIXTURE / "expected.json").read_text())
    got = evaluate(None, FIXTURE / "manifest.jsonl", encoder=shipped)
    assert got["model"] == want["model"]
    assert got["gallery"] == want["gallery"] == 48
    for part in ("trained", "heldout"):
        for key, value in want[part].items():
            # one query flipping rank is 1/24: anything larger means the model or the protocol changed
            assert abs(got[part][key] - value) < 0.042, (part, key, got[part][key], value)
    assert got["chance"] == want["chance"]


def test_onnx_text_encoder_matches_torch(shipped):
    from pixseek.models.export import export, read_export
    from pixseek.models.onnx_encoder import OnnxEncoder

    export(shipped)
    fast = OnnxEncoder(*read_export(shipped.model_id))
    assert fast.has_text
    texts = ["dog", "a slice of pizza  with   cheese", "Fish &amp; chips", "x" * 300]
    assert np.allclose(fast.encode_texts(texts), shipped.encode_texts(texts), atol=2e-4)
