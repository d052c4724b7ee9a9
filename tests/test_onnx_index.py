"""CPU indexing on ONNX Runtime: a model's second and later runs embed with its export, no torch model."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from imagegen import draw, make_corpus

from index.embed import Embedder
from index.export import exported_for, prompt_vectors, source_key
from index.indexer import Indexer
from index.models import resolve
from index.onnx_embed import OnnxEmbedder, cpu_only, preprocess_array, runtime_setting
from index.pipeline import _collate
from index.store import Store

ROOT = Path(__file__).resolve().parent.parent


def vectors(db) -> dict[str, np.ndarray]:
    st = Store.open(db)
    try:
        return {p: np.frombuffer(b, np.float32) for p, b in st.conn.execute("SELECT path, vector FROM images")}
    finally:
        st.close()


@pytest.fixture
def ckpt_model(tmp_path, tiny):
    """A checkpoint file of the tiny model (a file source, whose key follows the file)."""
    import torch

    path = tmp_path / "weights" / "tiny.pt"
    path.parent.mkdir()
    torch.save({k: v.clone() for k, v in tiny.m.model.state_dict().items()}, path)
    return f"pixseek-vit-tiny:{path}", path


def test_second_run_embeds_on_onnx_with_the_same_vectors(tmp_path, ckpt_model):
    spec, _ = ckpt_model
    corpus = tmp_path / "photos"
    make_corpus(corpus, 12)
    first = Indexer(tmp_path / "a", model=spec, batch_size=4)
    first.run([corpus])
    assert first.embedder.runtime == "torch"  # nothing exported yet: torch, then export
    assert exported_for(resolve(spec)) is not None
    second = Indexer(tmp_path / "b", model=spec, batch_size=4, workers=2)
    s = second.run([corpus])
    assert isinstance(second.embedder, OnnxEmbedder) and second.embedder._torch is None  # no torch model
    assert s.added == 12 and s.embedded == 12
    a, b = vectors(tmp_path / "a"), vectors(tmp_path / "b")
    assert a.keys() == b.keys()
    for k in a:
        assert np.allclose(a[k], b[k], atol=1e-5), k
    st_a, st_b = Store.open(tmp_path / "a"), Store.open(tmp_path / "b")
    assert st_b.model_id == first.embedder.model_id
    # ANN tuning prompts: encoded once per model (torch text tower here), then reused by every index
    first._save_tuning_queries(st_a, first.embedder)
    second._save_tuning_queries(st_b, second.embedder)
    assert second.embedder._torch is None
    assert np.array_equal(np.load(tmp_path / "a" / "tuning-queries.npy"), np.load(tmp_path / "b" / "tuning-queries.npy"))
    st_a.close()
    st_b.close()


def test_torch_runtime_and_changed_weights_skip_the_export(tmp_path, ckpt_model, monkeypatch):
    spec, path = ckpt_model
    corpus = tmp_path / "photos"
    make_corpus(corpus, 4)
    Indexer(tmp_path / "a", model=spec).run([corpus])
    assert isinstance(Embedder.for_indexing(spec, "cpu"), OnnxEmbedder)
    assert type(Embedder.for_indexing(spec, "cpu", "torch")) is Embedder
    monkeypatch.setenv("PIXSEEK_RUNTIME", "torch")
    assert type(Embedder.for_indexing(spec, "cpu")) is Embedder
    monkeypatch.delenv("PIXSEEK_RUNTIME")
    key = source_key(resolve(spec))
    os.utime(path, ns=(1, 1))  # the weights changed: another key, the export is not used for them
    assert source_key(resolve(spec)) != key
    assert exported_for(resolve(spec)) is None
    assert type(Embedder.for_indexing(spec, "cpu")) is Embedder


def test_stale_pointer_never_mixes_models(tmp_path, ckpt_model, tiny):
    spec, _ = ckpt_model
    corpus = tmp_path / "photos"
    make_corpus(corpus, 4)
    Indexer(tmp_path / "a", model=spec).run([corpus])
    emb = OnnxEmbedder.for_spec(spec)
    emb.model_id = "someone-else#000000000000"  # as if the pointer named another model's export
    with pytest.raises(RuntimeError, match="exported encoders are for someone-else"):
        emb.encode_texts(["a red square"])  # the torch model is loaded only to check and encode text


def test_pointer_to_a_missing_export_falls_back_to_torch(tmp_path, ckpt_model):
    spec, _ = ckpt_model
    corpus = tmp_path / "photos"
    make_corpus(corpus, 4)
    ix = Indexer(tmp_path / "a", model=spec)
    ix.run([corpus])
    folder, meta = exported_for(resolve(spec))
    shutil.rmtree(folder)
    assert exported_for(resolve(spec)) is None
    assert type(Embedder.for_indexing(spec, "cpu")) is Embedder


def test_preprocess_array_is_open_clips_transform(tiny):
    for size in ((97, 140), (300, 64), (64, 64), (1000, 999)):
        img = draw(5, size)
        ours = preprocess_array(img, tiny.image_size, tiny.m.model.visual.preprocess_cfg["mean"],
                                tiny.m.model.visual.preprocess_cfg["std"])
        assert np.allclose(ours, tiny.preprocess(img).numpy(), atol=1e-6), size


def test_collate_stacks_numpy_and_torch():
    import torch

    preps, x = _collate([("a", np.zeros((3, 4, 4), np.float32)), ("b", None), ("c", np.ones((3, 4, 4), np.float32))])
    assert preps == ["a", "b", "c"] and isinstance(x, np.ndarray) and x.shape == (2, 3, 4, 4)
    _, t = _collate([("a", torch.zeros(3, 4, 4))])
    assert isinstance(t, torch.Tensor) and t.shape == (1, 3, 4, 4)
    assert _collate([("a", None)]) == (["a"], None)


def test_settings_and_cpu_detection(monkeypatch):
    monkeypatch.delenv("PIXSEEK_RUNTIME", raising=False)
    assert runtime_setting(None) == "auto" and runtime_setting("torch") == "torch"
    monkeypatch.setenv("PIXSEEK_RUNTIME", "TORCH")
    assert runtime_setting(None) == "torch"
    monkeypatch.setenv("PIXSEEK_RUNTIME", "bogus")
    assert runtime_setting(None) == "auto"
    assert cpu_only("cpu") and not cpu_only("cuda:1")
    monkeypatch.setattr(os.path, "exists", lambda p: False)
    assert cpu_only("auto") and cpu_only(None)  # no NVIDIA device node: CPU, without importing torch


def test_prompt_vectors_are_cached_per_model(tmp_path):
    calls = []

    def enc(texts):
        calls.append(list(texts))
        return np.ones((len(texts), 3), np.float32)

    v1 = prompt_vectors("m#1", ["a", "b"], enc)
    v2 = prompt_vectors("m#1", ["a", "b"], enc)
    v3 = prompt_vectors("m#1", ["a", "c"], enc)  # other prompts: computed again
    assert calls == [["a", "b"], ["a", "c"]] and v1.shape == v2.shape == v3.shape == (2, 3)


def test_cli_second_run_does_not_import_open_clip(tmp_path, ckpt_model):
    spec, _ = ckpt_model
    corpus = tmp_path / "photos"
    make_corpus(corpus, 6)
    env = dict(os.environ)
    pixseek = str(Path(sys.executable).parent / "pixseek")
    subprocess.run([pixseek, "index", str(corpus), "--db", str(tmp_path / "a"), "--model", spec], check=True,
                   env=env, capture_output=True)
    code = ("import sys, runpy; sys.argv = ['pixseek', 'index', %r, '--db', %r, '--model', %r, '--json'];"
            "\ntry:\n    runpy.run_module('pixseek.cli', run_name='__main__')\nexcept SystemExit:\n    pass\n"
            "print('OPEN_CLIP' if 'open_clip' in sys.modules else 'NO_OPEN_CLIP')"
            % (str(corpus), str(tmp_path / "b"), spec))
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, cwd=ROOT)
    assert out.returncode == 0, out.stderr
    lines = out.stdout.strip().splitlines()
    assert json.loads(lines[0])["added"] == 6 and lines[-1] == "NO_OPEN_CLIP"
    forced = subprocess.run([sys.executable, "-c", code.replace("'--json'", "'--json', '--runtime', 'torch'")
                             .replace(str(tmp_path / "b"), str(tmp_path / "c"))],
                            env=env, capture_output=True, text=True, cwd=ROOT)
    assert forced.stdout.strip().splitlines()[-1] == "OPEN_CLIP"


def test_killed_onnx_run_leaves_no_worker_behind(tmp_path, ckpt_model):
    """Workers hand numpy batches over as shared-memory tensors: a worker whose indexer is killed exits
    (pickled through the result pipe, a batch filled it and the orphan blocked forever)."""
    spec, _ = ckpt_model
    corpus = tmp_path / "photos"
    make_corpus(corpus, 60)
    Indexer(tmp_path / "warm", model=spec).run([corpus])  # makes the export
    env = dict(os.environ, PIXSEEK_FAULT="embed:2:kill")
    out = subprocess.run([sys.executable, "-m", "pixseek.cli", "index", str(corpus), "--db", str(tmp_path / "db"),
                          "--model", spec, "--batch-size", "8", "--workers", "2"], cwd=ROOT, env=env,
                         capture_output=True, text=True, timeout=120)  # pipes close only when every worker exits
    assert out.returncode == -9, out.stderr[-2000:]
    again = subprocess.run([sys.executable, "-m", "pixseek.cli", "index", str(corpus), "--db", str(tmp_path / "db"),
                            "--model", spec, "--json"], cwd=ROOT, env=dict(os.environ), capture_output=True,
                           text=True, timeout=300)
    assert again.returncode == 0 and json.loads(again.stdout)["total"] == 60
