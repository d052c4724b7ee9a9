"""ONNX query encoders: exported at index time, same vectors as torch, used by search without torch."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
from imagegen import draw
from PIL import Image

from pixseek.models.export import encoder_dir, export, read_export
from pixseek.models.onnx_encoder import OnnxEncoder
from pixseek.search import Engine


def test_index_run_exports_image_encoder_matching_torch(index_dir, tiny):
    db, corpus = index_dir
    folder = encoder_dir(tiny.model_id)
    meta = json.loads((folder / "encoder.json").read_text())
    assert meta["model_id"] == tiny.model_id and meta["image_size"] == 64
    assert "tokenizer" not in meta  # open_clip's own tokenizer needs torch: text stays on torch
    fast = OnnxEncoder(*read_export(tiny.model_id))
    imgs = [draw(i, (97 + 13 * i, 140)) for i in range(4)] + [Image.open(next(corpus.rglob("*.png"))).convert("RGB")]
    assert np.allclose(fast.encode_images(imgs), tiny.encode_images(imgs), atol=2e-4)
    assert read_export("some-other#model") is None


def test_engine_uses_fast_encoder_for_images(index_dir, tiny):
    db, corpus = index_dir
    probe = sorted(corpus.rglob("*.jpg"))[0]
    with Engine.open(db) as eng:
        res = eng.image(probe, k=1)
        assert eng.encoder.runtime == "onnx" and not eng.encoder.uses_torch  # no torch model was loaded
    assert res[0].path == str(probe) and res[0].score > 0.999


def test_export_does_not_change_the_live_model(tiny):
    img = [draw(3, (80, 80))]
    before = tiny.encode_images(img), tiny.encode_texts(["a red square"])
    export(tiny, force=True)
    after = tiny.encode_images(img), tiny.encode_texts(["a red square"])
    assert np.array_equal(before[0], after[0]) and np.array_equal(before[1], after[1])


def test_export_is_idempotent_and_atomic(tiny):
    d = export(tiny)
    mtime = (d / "encoder.json").stat().st_mtime_ns
    assert export(tiny) == d
    assert (d / "encoder.json").stat().st_mtime_ns == mtime
    assert not list(d.parent.glob("*.tmp"))


def test_cli_image_search_runs_without_importing_torch(index_dir, tmp_path, session_cache):
    db, corpus = index_dir
    probe = sorted(corpus.rglob("*.png"))[0]
    code = (
        "import sys, runpy; sys.argv = ['pixseek', 'search', '--image', %r, '--db', %r, '-k', '1'];"
        "import pixseek.cli as c\ntry:\n    c.main()\nexcept SystemExit:\n    pass\n"
        "print('TORCH' if 'torch' in sys.modules else 'NO-TORCH')"
    ) % (str(probe), str(db))
    env = {"PATH": "/usr/bin:/bin", "XDG_CACHE_HOME": str(session_cache), "HF_HUB_OFFLINE": "1"}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert lines[0].endswith(str(probe)) and lines[-1] == "NO-TORCH", out.stdout
