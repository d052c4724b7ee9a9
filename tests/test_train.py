"""`pixseek train` on a tiny manifest: the loss goes down, the checkpoint loads, resume continues."""

from __future__ import annotations

import json

import numpy as np
import pytest
from imagegen import save

from pixseek.models import load_torch
from pixseek.train.trainer import TrainConfig, Trainer, TrainError

COLOURS = ["red", "green", "blue", "yellow", "purple", "orange", "black", "white"]


@pytest.fixture
def manifest(tmp_path):
    from PIL import Image, ImageDraw

    rgb = {
        "red": (220, 30, 30),
        "green": (30, 170, 60),
        "blue": (30, 70, 220),
        "yellow": (240, 210, 30),
        "purple": (140, 40, 170),
        "orange": (245, 140, 20),
        "black": (20, 20, 20),
        "white": (250, 250, 250),
    }
    lines = []
    for c in COLOURS:
        for style, shape in (("a", "ellipse"), ("b", "rectangle")):
            img = Image.new("RGB", (64, 64), (128, 128, 128))
            getattr(ImageDraw.Draw(img), shape)([8, 8, 56, 56], fill=rgb[c])
            p = tmp_path / "imgs" / style / f"{c}.png"
            save(img, p)
            lines.append(
                {
                    "image": f"imgs/{style}/{c}.png",
                    "captions": [f"{c}", f"a {c} shape"],
                    "concept": c,
                    "style": style,
                    "split": "train",
                }
            )
    m = tmp_path / "m.jsonl"
    m.write_text("".join(json.dumps(x) + "\n" for x in lines))
    return m


def test_scratch_training_lowers_loss_and_exports_loadable_weights(manifest, tmp_path):
    out = tmp_path / "run"
    cfg = TrainConfig(
        data=str(manifest),
        out=str(out),
        arch="pixseek-vit-tiny",
        name="tiny",
        epochs=40,
        batch_size=8,
        lr=3e-3,
        warmup=5,
        seed=0,
        device="cpu",
    )
    r = Trainer(cfg).run()
    assert r["steps"] == 40 and r["concepts"] == 8 and r["images"] == 16
    log = [json.loads(x) for x in (out / "train_log.jsonl").read_text().splitlines()]
    assert log[-1]["ema"] < log[0]["ema"] * 0.8, log
    emb = load_torch(str(out / "tiny.safetensors"), "cpu")
    assert emb.model_id.startswith("tiny.safetensors#")
    # the trained model ranks each colour's caption closest to its own picture more often than chance
    from PIL import Image

    imgs = [Image.open(manifest.parent / "imgs" / "a" / f"{c}.png").convert("RGB") for c in COLOURS]
    sims = emb.encode_texts(COLOURS) @ emb.encode_images(imgs).T
    assert (sims.argmax(1) == np.arange(8)).sum() >= 3


def test_resume_continues_from_checkpoint(manifest, tmp_path):
    out = tmp_path / "run"
    base = dict(
        data=str(manifest),
        out=str(out),
        arch="pixseek-vit-tiny",
        name="m",
        batch_size=8,
        warmup=2,
        device="cpu",
        checkpoint_every=5,
    )
    Trainer(TrainConfig(**base, epochs=5)).run()
    ck = out / "checkpoint.pt"
    import torch

    saved = torch.load(ck, weights_only=True)
    assert saved["step"] == 5 and saved["total_steps"] == 5
    # a longer run in the same folder would restart its schedule; resuming keeps step and total
    saved["total_steps"] = 9
    torch.save(saved, ck)
    r = Trainer(TrainConfig(**base, epochs=5)).run()
    assert r["steps"] == 9
    assert len((out / "train_log.jsonl").read_text().splitlines()) >= 1


def test_locked_pretrained_text_tower_caches_text_and_ships_small_weights(manifest, tmp_path):
    out = tmp_path / "run"
    cfg = TrainConfig(
        data=str(manifest),
        out=str(out),
        arch="pixseek-minilm-vit",
        name="lit",
        epochs=3,
        batch_size=8,
        warmup=1,
        device="cpu",
    )
    r = Trainer(cfg).run()
    assert r["steps"] == 3
    from safetensors import safe_open

    with safe_open(str(out / "lit.safetensors"), "pt") as f:
        keys = list(f.keys())
        assert not any(k.startswith("text.transformer.") for k in keys)  # MiniLM comes from its package
        assert any(k.startswith("text.proj") for k in keys) and "logit_scale" in keys
        assert f.get_tensor("visual.conv1.weight").dtype.is_floating_point
    emb = load_torch(str(out / "lit.safetensors"), "cpu")
    v = emb.encode_texts(["puppy", "a young dog"])
    assert v.shape == (2, 256)


def test_bad_data_is_a_clear_error(tmp_path):
    m = tmp_path / "one.jsonl"
    from PIL import Image

    Image.new("RGB", (8, 8)).save(tmp_path / "x.png")
    m.write_text('{"image": "x.png", "caption": "only one"}\n')
    with pytest.raises(TrainError, match="^training needs at least two concepts"):
        Trainer(TrainConfig(data=str(m), out=str(tmp_path / "o"), arch="pixseek-vit-tiny")).run()


def test_every_data_manifest_is_trained_on(tmp_path):
    """`--data A --data B`: the concepts of both manifests (the base trainer once read only the first)."""
    from PIL import Image

    for name, colors in (("a", ("red", "blue")), ("b", ("green", "black", "white"))):
        rows = []
        for c in colors:
            Image.new("RGB", (32, 32), c).save(tmp_path / f"{c}.png")
            rows.append({"image": f"{c}.png", "captions": [f"a {c} square"], "concept": c})
        (tmp_path / f"{name}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    cfg = TrainConfig(data=str(tmp_path / "a.jsonl"), more_data=(str(tmp_path / "b.jsonl"),), out=str(tmp_path / "o"))
    concepts, paths, captions = Trainer(cfg)._samples()
    assert sorted(p.name for p in paths) == ["black.png", "blue.png", "green.png", "red.png", "white.png"]
    assert len(concepts) == 5 and len(captions) == 5
