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

from pixseek import settings
from pixseek.errors import ModelMismatchError
from pixseek.index.indexer import Indexer, save_tuning_queries
from pixseek.index.pipeline import collate
from pixseek.models import cpu_only, for_indexing
from pixseek.models.export import cached_text_vectors, encoder_dir, exported_for, pointer_path, source_key
from pixseek.models.onnx_encoder import OnnxEncoder, preprocess_array
from pixseek.models.registry import resolve
from pixseek.models.torch_encoder import TorchEncoder
from pixseek.store import Store


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
    torch.save({k: v.clone() for k, v in tiny.model.state_dict().items()}, path)
    return f"pixseek-vit-tiny:{path}", path


def test_second_run_embeds_on_onnx_with_the_same_vectors(tmp_path, ckpt_model):
    spec, _ = ckpt_model
    corpus = tmp_path / "photos"
    make_corpus(corpus, 12)
    first = Indexer(tmp_path / "a", model=spec, batch_size=4)
    first.run([corpus])
    assert first.encoder.runtime == "torch"  # nothing exported yet: torch, then export
    assert exported_for(resolve(spec)) is not None
    second = Indexer(tmp_path / "b", model=spec, batch_size=4, workers=2)
    s = second.run([corpus])
    assert isinstance(second.encoder, OnnxEncoder) and not second.encoder.uses_torch  # no torch model
    assert s.added == 12 and s.embedded == 12
    a, b = vectors(tmp_path / "a"), vectors(tmp_path / "b")
    assert a.keys() == b.keys()
    for k in a:
        assert np.allclose(a[k], b[k], atol=1e-5), k
    with Store.open(tmp_path / "b") as st_b:
        assert st_b.model_id == first.encoder.model_id
    # ANN tuning prompts: encoded once per model (torch text tower here), then reused by every index
    save_tuning_queries(first.data_dir, first.encoder)
    save_tuning_queries(second.data_dir, second.encoder)
    assert not second.encoder.uses_torch
    assert np.array_equal(
        np.load(tmp_path / "a" / "tuning-queries.npy"), np.load(tmp_path / "b" / "tuning-queries.npy")
    )


def test_torch_runtime_and_changed_weights_skip_the_export(tmp_path, ckpt_model, monkeypatch):
    spec, path = ckpt_model
    corpus = tmp_path / "photos"
    make_corpus(corpus, 4)
    Indexer(tmp_path / "a", model=spec).run([corpus])
    assert isinstance(for_indexing(spec, "cpu"), OnnxEncoder)
    assert type(for_indexing(spec, "cpu", "torch")) is TorchEncoder
    monkeypatch.setenv("PIXSEEK_RUNTIME", "torch")
    assert type(for_indexing(spec, "cpu")) is TorchEncoder
    monkeypatch.delenv("PIXSEEK_RUNTIME")
    key = source_key(resolve(spec))
    os.utime(path, ns=(1, 1))  # the weights changed: another key, the export is not used for them
    assert source_key(resolve(spec)) != key
    assert exported_for(resolve(spec)) is None
    assert type(for_indexing(spec, "cpu")) is TorchEncoder


def test_stale_pointer_never_mixes_models(tmp_path, ckpt_model, tiny):
    spec, _ = ckpt_model
    corpus = tmp_path / "photos"
    make_corpus(corpus, 4)
    Indexer(tmp_path / "a", model=spec).run([corpus])
    # as if the pointer named another model's export: a copy of the export under another model id
    folder, meta = exported_for(resolve(spec))
    other = "someone-else#000000000000"
    shutil.copytree(folder, encoder_dir(other))
    (encoder_dir(other) / "encoder.json").write_text(json.dumps(dict(meta, model_id=other)))
    pointer_path(resolve(spec)).write_text(json.dumps({"model_id": other}))
    enc = for_indexing(spec, "cpu")
    assert isinstance(enc, OnnxEncoder) and enc.model_id == other
    with pytest.raises(ModelMismatchError, match="exported encoders are for someone-else"):
        enc.encode_texts(["a red square"])  # the torch model is loaded only to check and encode text


def test_pointer_to_a_missing_export_falls_back_to_torch(tmp_path, ckpt_model):
    spec, _ = ckpt_model
    corpus = tmp_path / "photos"
    make_corpus(corpus, 4)
    ix = Indexer(tmp_path / "a", model=spec)
    ix.run([corpus])
    folder, meta = exported_for(resolve(spec))
    shutil.rmtree(folder)
    assert exported_for(resolve(spec)) is None
    assert type(for_indexing(spec, "cpu")) is TorchEncoder


def test_preprocess_array_is_open_clips_transform(tiny):
    for size in ((97, 140), (300, 64), (64, 64), (1000, 999)):
        img = draw(5, size)
        ours = preprocess_array(
            img, tiny.image_size, tiny.model.visual.preprocess_cfg["mean"], tiny.model.visual.preprocess_cfg["std"]
        )
        assert np.allclose(ours, tiny.preprocess(img).numpy(), atol=1e-6), size


def test_onnx_preprocess_hands_over_uint8_and_embeds_as_float_pixels(tiny):
    from pixseek.models import export

    folder = export.export(tiny)
    assert folder is not None
    meta = export.read_export(tiny.model_id)[1]
    enc = OnnxEncoder(folder, meta)
    imgs = [draw(i, size) for i, size in enumerate(((97, 140), (300, 64), (64, 64)))]
    pixels = np.stack([enc.preprocess(im) for im in imgs])
    assert pixels.dtype == np.uint8 and pixels.shape == (3, tiny.image_size, tiny.image_size, 3)
    floats = np.stack([preprocess_array(im, enc.image_size, meta["mean"], meta["std"]) for im in imgs])
    import torch

    want = tiny.encode_tensors(torch.stack([tiny.preprocess(im) for im in imgs]))
    np.testing.assert_allclose(enc.encode_tensors(pixels), want, atol=1e-5)
    np.testing.assert_allclose(enc.encode_tensors(pixels), enc.encode_tensors(floats), atol=1e-6)


def test_image_tower_exports_fused_attention_checked_against_torch(tiny, tmp_path, monkeypatch):
    import onnx
    import torch

    from pixseek.models import export

    def ops(folder: Path) -> set[str]:
        return {n.op_type for n in onnx.load(str(folder / "image.onnx"), load_external_data=False).graph.node}

    folder = export.export(tiny)
    assert folder is not None
    blocks = len(tiny.model.visual.transformer.resblocks)
    assert export.read_export(tiny.model_id)[1]["fused_attention"] == blocks > 0
    assert "Attention" in ops(folder) and "Softmax" not in ops(folder)
    # the check compares ONNX Runtime's output with the torch tower's: a wrong graph fails it
    tower, shape = export._tower(tiny.model.float().eval(), "encode_image"), (2, 3, tiny.image_size, tiny.image_size)
    with torch.no_grad():
        assert export._matches_torch(folder / "image.onnx", tower, shape)
        assert not export._matches_torch(folder / "image.onnx", lambda x: tower(x).flip(-1), shape)
    # an export whose fused graph does not match torch is made again without fusing
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.setattr(export, "_matches_torch", lambda *a: False)
    plain = export.export(tiny)
    assert plain is not None
    assert export.read_export(tiny.model_id)[1]["fused_attention"] == 0
    assert "Attention" not in ops(plain) and "Softmax" in ops(plain)
    from pixseek.models.onnx_encoder import OnnxEncoder

    x = np.random.default_rng(1).integers(0, 256, (2, tiny.image_size, tiny.image_size, 3), dtype=np.uint8)
    meta = export.read_export(tiny.model_id)[1]
    np.testing.assert_allclose(
        OnnxEncoder(plain, meta).encode_tensors(x), OnnxEncoder(folder, meta).encode_tensors(x), atol=1e-5
    )


def test_only_plain_self_attention_is_fused_and_modules_come_back():
    import torch
    from torch import nn

    from pixseek.models.onnx_attention import fused_attention

    def block(mha: nn.Module) -> nn.Module:
        b = nn.Module()
        b.attn = mha
        return b

    torch.manual_seed(0)
    ok = nn.MultiheadAttention(16, 4, batch_first=True).eval()
    kept = [nn.MultiheadAttention(16, 4), nn.MultiheadAttention(16, 4, batch_first=True, add_bias_kv=True)]
    visual = nn.Module()
    visual.transformer = nn.Module()
    visual.transformer.resblocks = nn.ModuleList([block(ok), *(block(m) for m in kept)])
    x = torch.randn(3, 7, 16)
    with torch.no_grad(), fused_attention(visual) as n:
        assert n == 1
        fused = visual.transformer.resblocks[0].attn
        assert type(fused).__name__ == "FusedSelfAttention"
        assert [b.attn for b in visual.transformer.resblocks[1:]] == kept
        torch.testing.assert_close(fused(x, x, x)[0], ok(x, x, x, need_weights=False)[0], atol=1e-6, rtol=0)
        with pytest.raises(ValueError, match="self-attention without a mask"):
            fused(x, x, x, attn_mask=torch.zeros(7, 7))
        with pytest.raises(ValueError, match="self-attention without a mask"):
            fused(x, torch.randn(3, 7, 16), x)
    assert [b.attn for b in visual.transformer.resblocks] == [ok, *kept]
    with pytest.raises(RuntimeError), fused_attention(visual):
        raise RuntimeError("an export that fails")
    assert visual.transformer.resblocks[0].attn is ok


def test_ray_decode_tasks_send_what_the_onnx_encoder_embeds(tiny):
    from pixseek.index.ray_run import portable_preprocess
    from pixseek.models import export
    from pixseek.models.onnx_encoder import normalise

    folder = export.export(tiny)
    assert folder is not None
    meta = export.read_export(tiny.model_id)[1]
    enc = OnnxEncoder(folder, meta)
    for i, size in enumerate(((97, 140), (300, 64))):
        img = draw(i, size)
        ray_pixels = portable_preprocess(enc)(img)
        assert ray_pixels.dtype == np.float32 and ray_pixels.shape == (3, enc.image_size, enc.image_size)
        np.testing.assert_array_equal(ray_pixels, normalise(enc.preprocess(img)[None], meta["mean"], meta["std"])[0])


def test_collate_stacks_numpy_and_torch():
    import torch

    preps, x = collate([("a", np.zeros((3, 4, 4), np.float32)), ("b", None), ("c", np.ones((3, 4, 4), np.float32))])
    assert preps == ["a", "b", "c"] and isinstance(x, np.ndarray) and x.shape == (2, 3, 4, 4)
    _, t = collate([("a", torch.zeros(3, 4, 4))])
    assert isinstance(t, torch.Tensor) and t.shape == (1, 3, 4, 4)
    assert collate([("a", None)]) == (["a"], None)


def test_settings_and_cpu_detection(monkeypatch):
    monkeypatch.delenv("PIXSEEK_RUNTIME", raising=False)
    assert settings.runtime(None) == "auto" and settings.runtime("torch") == "torch"
    monkeypatch.setenv("PIXSEEK_RUNTIME", "TORCH")
    assert settings.runtime(None) == "torch"
    monkeypatch.setenv("PIXSEEK_RUNTIME", "bogus")
    assert settings.runtime(None) == "auto"
    assert cpu_only("cpu") and not cpu_only("cuda:1")
    monkeypatch.setattr(os.path, "exists", lambda p: False)
    assert cpu_only("auto") and cpu_only(None)  # no NVIDIA device node: CPU, without importing torch


def test_prompt_vectors_are_cached_per_model(tmp_path):
    calls = []

    def enc(texts):
        calls.append(list(texts))
        return np.ones((len(texts), 3), np.float32)

    v1 = cached_text_vectors("m#1", ["a", "b"], enc)
    v2 = cached_text_vectors("m#1", ["a", "b"], enc)
    v3 = cached_text_vectors("m#1", ["a", "c"], enc)  # other prompts: computed again
    assert calls == [["a", "b"], ["a", "c"]] and v1.shape == v2.shape == v3.shape == (2, 3)


def test_cli_second_run_does_not_import_open_clip(tmp_path, ckpt_model):
    spec, _ = ckpt_model
    corpus = tmp_path / "photos"
    make_corpus(corpus, 6)
    env = dict(os.environ)
    pixseek = str(Path(sys.executable).parent / "pixseek")
    subprocess.run(
        [pixseek, "index", str(corpus), "--db", str(tmp_path / "a"), "--model", spec],
        check=True,
        env=env,
        capture_output=True,
    )
    code = (
        "import sys, runpy; sys.argv = ['pixseek', 'index', %r, '--db', %r, '--model', %r, '--json'];"
        "\ntry:\n    runpy.run_module('pixseek', run_name='__main__')\nexcept SystemExit:\n    pass\n"
        "print('OPEN_CLIP' if 'open_clip' in sys.modules else 'NO_OPEN_CLIP')"
        % (str(corpus), str(tmp_path / "b"), spec)
    )
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    lines = out.stdout.strip().splitlines()
    assert json.loads(lines[0])["added"] == 6 and lines[-1] == "NO_OPEN_CLIP"
    forced = subprocess.run(
        [
            sys.executable,
            "-c",
            code.replace("'--json'", "'--json', '--runtime', 'torch'").replace(
                str(tmp_path / "b"), str(tmp_path / "c")
            ),
        ],
        env=env,
        capture_output=True,
        text=True,
        cwd=tmp_path,
    )
    assert forced.stdout.strip().splitlines()[-1] == "OPEN_CLIP"


def test_killed_onnx_run_leaves_no_worker_behind(tmp_path, ckpt_model):
    """Workers hand numpy batches over as shared-memory tensors: a worker whose indexer is killed exits
    (pickled through the result pipe, a batch filled it and the orphan blocked forever)."""
    spec, _ = ckpt_model
    corpus = tmp_path / "photos"
    make_corpus(corpus, 60)
    Indexer(tmp_path / "warm", model=spec).run([corpus])  # makes the export
    env = dict(os.environ, PIXSEEK_FAULT="embed:2:kill")
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "pixseek",
            "index",
            str(corpus),
            "--db",
            str(tmp_path / "db"),
            "--model",
            spec,
            "--batch-size",
            "8",
            "--workers",
            "2",
        ],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )  # pipes close only when every worker exits
    assert out.returncode == -9, out.stderr[-2000:]
    again = subprocess.run(
        [
            sys.executable,
            "-m",
            "pixseek",
            "index",
            str(corpus),
            "--db",
            str(tmp_path / "db"),
            "--model",
            spec,
            "--json",
        ],
        cwd=tmp_path,
        env=dict(os.environ),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert again.returncode == 0 and json.loads(again.stdout)["total"] == 60


def test_changed_weights_are_refused_by_search_with_the_index_message(tmp_path, ckpt_model):
    """The index's weights changed on disk after indexing: a text search (torch, the export has no text
    tower) refuses them and says which model the index holds and how to search it."""
    import torch

    from pixseek.models import openclip
    from pixseek.search import Engine

    spec, path = ckpt_model
    corpus = tmp_path / "photos"
    make_corpus(corpus, 4)
    db = tmp_path / "db"
    Indexer(db, model=spec).run([corpus])
    with Store.open(db) as st:
        indexed = st.model_id
    torch.save(openclip.create("pixseek-vit-tiny", seed=7).state_dict(), path)
    with Engine.open(db) as eng, pytest.raises(ModelMismatchError) as e:
        eng.text("a red square")
    assert str(e.value).startswith(f"index in {db} was built with model {indexed}, not pixseek-vit-tiny:tiny.pt#")
    assert str(e.value).endswith(f"; search it with --model {spec}")
