"""The emoji dataset fetcher (from small packed tarballs of the real layout) and the manifest reader."""

from __future__ import annotations

import io
import json
import tarfile

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from pixseek.train.datasets import DatasetError, concept_split, emoji_captions, fetch_emoji, read_manifest

EMOJI = [
    {
        "name": "DOG FACE",
        "unified": "1F436",
        "image": "1f436.png",
        "short_names": ["dog"],
        "category": "Animals & Nature",
        "subcategory": "animal-mammal",
        "sort_order": 2,
    },
    {
        "name": "WAVING HAND SIGN",
        "unified": "1F44B",
        "image": "1f44b.png",
        "short_names": ["wave"],
        "category": "People & Body",
        "subcategory": "hand-fingers-open",
        "sort_order": 1,
        "skin_variations": {"1F3FD": {"unified": "1F44B-1F3FD", "image": "1f44b-1f3fd.png"}},
    },
    {
        "name": "Egypt Flag",
        "unified": "1F1EA-1F1EC",
        "image": "1f1ea-1f1ec.png",
        "short_names": ["flag-eg"],
        "category": "Flags",
        "subcategory": "country-flag",
        "sort_order": 3,
    },
]


def _add(tar, name, data: bytes):
    info = tarfile.TarInfo(name)
    info.size = len(data)
    tar.addfile(info, io.BytesIO(data))


def _png(colour):
    img = Image.new("RGBA", (64, 64), (0, 0, 0, 0))
    img.paste(colour + (255,), (16, 16, 48, 48))
    buf = io.BytesIO()
    img.save(buf, "PNG")
    return buf.getvalue()


@pytest.fixture
def tarballs(tmp_path):
    d = tmp_path / "tgz"
    d.mkdir()
    with tarfile.open(d / "emoji-datasource-16.0.0.tgz", "w:gz") as t:
        _add(t, "package/emoji.json", json.dumps(EMOJI).encode())
    for style, colour in (("twitter", (200, 0, 0)), ("google", (0, 0, 200))):
        with tarfile.open(d / f"emoji-datasource-{style}-16.0.0.tgz", "w:gz") as t:
            for img in ("1f436.png", "1f44b.png", "1f44b-1f3fd.png", "1f1ea-1f1ec.png"):
                _add(t, f"package/img/{style}/64/{img}", _png(colour))
            _add(t, f"package/img/{style}/32/1f436.png", _png(colour))  # other sizes are ignored
            _add(t, f"package/img/{style}/64/../../../../evil.png", b"x")  # traversal is ignored
    return d


def test_fetch_writes_manifest_and_art_on_white(tmp_path, tarballs):
    dest = tmp_path / "emoji"
    manifest = fetch_emoji(dest, tarballs)
    rows = [json.loads(line) for line in manifest.read_text().splitlines()]
    assert len(rows) == 8 and {r["style"] for r in rows} == {"twitter", "google"}
    wave = [r for r in rows if r["variant"] == "1F44B-1F3FD" and r["style"] == "twitter"][0]
    assert wave["captions"] == [
        "waving hand sign, medium skin tone",
        "waving hand sign, medium skin tone, a hand fingers open emoji",
        "wave, medium skin tone",
    ]
    assert wave["concept"] == "1F44B" and wave["license"] == "CC-BY-4.0"
    dog = [r for r in rows if r["concept"] == "1F436" and r["style"] == "google"][0]
    assert dog["captions"] == ["dog face", "dog face, an animal mammal emoji", "dog"]
    assert dog["license"] == "Apache-2.0" and dog["split"] == concept_split("1F436")
    with Image.open(dest / "twitter" / "1f436.png") as im:
        px = np.asarray(im)
        assert im.mode == "RGB"
    assert tuple(px[0, 0]) == (255, 255, 255) and tuple(px[32, 32]) == (200, 0, 0)
    assert not (tmp_path / "evil.png").exists()
    assert "CC-BY 4.0" in (dest / "ATTRIBUTION.txt").read_text()
    samples = read_manifest(manifest)
    assert samples[0].image.is_file() and samples[0].captions


def test_split_is_fixed_and_about_a_fifth():
    codes = [f"1F{i:03X}" for i in range(2000)]
    held = sum(concept_split(c) == "heldout" for c in codes)
    assert 0.17 < held / len(codes) < 0.23
    assert concept_split("1F600") == "heldout" and concept_split("1F436") == concept_split("1f436")


def test_captions_dedupe_and_article():
    assert emoji_captions("Apple", ["apple"], "fruit") == ["apple", "apple, a fruit emoji"]
    assert emoji_captions("ox", ["ox"], "animal-mammal") == ["ox", "ox, an animal mammal emoji"]


def test_generic_manifest_and_errors(tmp_path):
    Image.new("RGB", (8, 8)).save(tmp_path / "a.png")
    m = tmp_path / "m.jsonl"
    m.write_text('{"image": "a.png", "caption": "a black square"}\n\n')
    s = read_manifest(m)
    assert s[0].image == tmp_path / "a.png" and s[0].captions == ["a black square"] and s[0].concept == "a.png"
    m.write_text('{"image": "a.png", "caption": "x"}\n{"image": "b.png"}\n')
    with pytest.raises(DatasetError) as e:
        read_manifest(m)
    assert str(e.value) == f"{m}:2: bad manifest line (needs 'caption' or a non-empty 'captions' list)"
    with pytest.raises(DatasetError, match="^no manifest at "):
        read_manifest(tmp_path / "none.jsonl")


def test_cli_fetch(tmp_path, tarballs):
    from pixseek.cli import cli

    r = CliRunner().invoke(
        cli, ["datasets", "fetch", "emoji", "--dest", str(tmp_path / "e"), "--tarballs", str(tarballs), "--json"]
    )
    assert r.exit_code == 0, r.output
    out = json.loads(r.stdout)
    assert out["images"] == 8 and out["concepts"] == 3
    assert out["heldout_concepts"] == sum(concept_split(c) == "heldout" for c in ("1F436", "1F44B", "1F1EA-1F1EC"))
