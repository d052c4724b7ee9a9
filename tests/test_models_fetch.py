"""`pixseek models` (the table a newcomer chooses from), `pixseek models fetch` (weights into the Hugging
Face cache) and the line `pixseek index` prints when a new index gets its model. Never the network: the
hub cache is a folder laid out by hand, the hub a thread on 127.0.0.1 (tests/fakehub.py)."""

from __future__ import annotations

import fnmatch
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import tomllib
from pathlib import Path

import pytest
from click.testing import CliRunner
from fakehub import COMMIT, FakeHub, cache_file
from imagegen import make_corpus

from pixseek.cli import cli
from pixseek.models import catalog, hub

ROOT = Path(__file__).resolve().parent.parent
CLIP = "ViT-B-32:laion2b_s34b_b79k"
CLIP_REPO = "laion/CLIP-ViT-B-32-laion2B-s34B-b79K"
XLM = "xlm-roberta-base-ViT-B-32:laion5b_s13b_b90k"
XLM_REPO = "laion/CLIP-ViT-B-32-xlm-roberta-base-laion5B-s13B-b90k"
HF_VARS = ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "HF_ENDPOINT", "HF_HOME", "HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE")
PROXIES = ("HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy", "HTTP_PROXY", "http_proxy")


def pixseek(*args: str, env: dict[str, str], expect: int = 0) -> subprocess.CompletedProcess:
    """A real `pixseek` process with only the Hugging Face settings given in ``env``."""
    base = {k: v for k, v in os.environ.items() if k not in HF_VARS + PROXIES}
    out = subprocess.run(
        [sys.executable, "-m", "pixseek", *args],
        capture_output=True,
        text=True,
        env={**base, "TOKENIZERS_PARALLELISM": "false", **env},
        timeout=300,
        cwd=tempfile.gettempdir(),
    )
    assert "Traceback" not in out.stderr, out.stderr[-3000:]
    assert out.returncode == expect, (args, out.returncode, out.stdout[-2000:], out.stderr[-2000:])
    return out


@pytest.fixture
def cache(tmp_path, monkeypatch) -> Path:
    """An empty hub cache, also for this process (pixseek reads HF_HUB_CACHE when it looks)."""
    # huggingface_hub reads its variables once, on import: import it before they point here, or every
    # later test of this process (open_clip's own lookups) would see this test's cache
    import huggingface_hub.constants  # noqa: F401

    path = tmp_path / "hf-cache"
    path.mkdir()
    for name in HF_VARS:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HF_HUB_CACHE", str(path))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    return path


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# --- the table -----------------------------------------------------------------------------------


def test_the_table_lists_the_registry_then_the_recommended_models(tmp_path, cache):
    # a registry of our own: a model added to registry.json shows up with no other change
    reg = tmp_path / "registry"
    shutil.copytree(ROOT / "models" / "configs", reg / "configs")
    (reg / "weights").symlink_to(ROOT / "models" / "weights")
    entries = json.loads((ROOT / "models" / "registry.json").read_text())
    entries["models"]["brand-new"] = {
        "arch": "pixseek-vit-tiny",
        "weights": "random",
        "description": "a model added to the registry a minute ago",
        "languages": "Welsh",
        "imagenet_top1": 12.5,
        "source": "our own eval",
    }
    entries["default"] = "tiny-random"
    (reg / "registry.json").write_text(json.dumps(entries))
    cache_file(cache, CLIP_REPO, "open_clip_model.safetensors")
    out = pixseek("models", env={"PIXSEEK_MODELS": str(reg), "HF_HUB_CACHE": str(cache), "HF_HUB_OFFLINE": "1"})
    lines = out.stdout.splitlines()
    assert lines[0] == "Models for --model (* marks the default for new indexes)"
    assert lines[2].split() == ["NAME", "PARAMS", "SIZE", "INPUT", "LANGUAGES", "LICENCE", "IMAGENET", "ON", "DISK"]
    assert lines[3] == "bundled with pixseek: offline, nothing to download"
    rows = {m.group(1): line for line in lines if (m := re.match(r"[* ] (\S+) ", line))}
    assert rows["tiny-random"].startswith("* tiny-random") and rows["tiny-random"].endswith("built in")
    assert rows["pixseek-emoji"].startswith("  pixseek-emoji") and "7.3 MB" in rows["pixseek-emoji"]
    new = rows["brand-new"].split()
    assert new[:2] == ["brand-new", "-"] and "Welsh" in new and "12.5%" in new and new[-1] == "in"
    assert "      a model added to the registry a minute ago" in lines
    assert lines.index("pretrained open_clip models for photos: `pixseek models fetch NAME` downloads one") > (
        lines.index(rows["vit-b-32-random"])
    )
    clip = rows["clip-b32"].split()
    assert clip == ["clip-b32", "151", "M", "~605", "MB", "224", "px", "English", "MIT", "66.6%", "[2]", "yes"]
    assert rows["mobileclip-s2"].split()[1:7] == ["99", "M", "~396", "MB", "256", "px"]
    assert rows["mobileclip-s2"].split()[-3:] == ["74.4%", "[3]", "no"]
    assert rows["siglip-b16"].split()[-3:] == ["76.0%", "[2]", "no"]
    assert "~100 (XLM-R)" in rows["multilingual-b32"]
    assert any(line.startswith(f"      --model {XLM}: LAION's multilingual CLIP (XLM-RoBERTa") for line in lines)
    assert "[1] our own eval" in lines
    assert any(line.startswith("[2] open_clip's benchmark table, docs/openclip_results.csv") for line in lines)
    assert any(line.startswith("[3] the MobileCLIP-S2 model card") for line in lines)


def test_on_disk_reads_the_hub_cache_without_the_network(cache):
    by_name = {r.name: r for r in catalog.rows()}
    assert by_name["clip-b32"].on_disk == "no" and by_name["pixseek-emoji"].on_disk == "yes"
    cache_file(cache, CLIP_REPO, "open_clip_pytorch_model.bin")  # the .bin counts too (open_clip's fallback)
    cache_file(cache, "timm/ViT-B-16-SigLIP", "open_clip_model.safetensors")  # weights, no tokenizer yet
    by_name = {r.name: r for r in catalog.rows()}
    assert by_name["clip-b32"].on_disk == "yes" and by_name["siglip-b16"].on_disk == "partly"
    cache_file(cache, "timm/ViT-B-16-SigLIP", "tokenizer.json", b"{}")
    assert {r.name: r for r in catalog.rows()}["siglip-b16"].on_disk == "yes"


def test_models_json_keeps_its_keys_and_adds_the_catalog(cache):
    r = CliRunner().invoke(cli, ["models", "--json"], catch_exceptions=False)
    assert r.exit_code == 0
    got = json.loads(r.stdout)
    assert got["default"] == "pixseek-photo" and "tiny-random" in got["models"]
    specs = [row["spec"] for row in got["catalog"]]
    assert specs[:4] == ["pixseek-photo", "pixseek-emoji", "tiny-random", "vit-b-32-random"]
    assert specs[4:] == [CLIP, "ViT-B-16-SigLIP:webli", "MobileCLIP-S2:datacompdr", XLM]
    assert set(got["sources"]) == {"openclip", "mobileclip"}


def test_the_catalog_agrees_with_open_clip():
    """The table reads hub repos and input sizes from files, fetch asks open_clip: they must agree."""
    import open_clip
    from open_clip.pretrained import _get_safe_alternatives

    for name in ("open_clip_pytorch_model.bin", "pytorch_model.bin", "open_clip_model.safetensors"):
        assert hub.safe_alternatives(name) == list(_get_safe_alternatives(name))
    for c in catalog.recommended():
        arch, tag = c["spec"].split(":")
        assert open_clip.get_pretrained_cfg(arch, tag)["hf_hub"] == c["hf_hub"], c["spec"]
        cfg = open_clip.get_model_config(arch)
        assert hub.input_size(arch) == cfg["vision_cfg"]["image_size"]
        text = cfg["text_cfg"]
        assert hub.text_repos(arch) == tuple(
            dict.fromkeys(text[k] for k in ("hf_tokenizer_name", "hf_model_name") if k in text)
        )
    assert hub.text_repos("pixseek-minilm-vit") == ()  # a tower shipped in a package needs no hub


def test_catalog_json_is_package_data():
    data = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]
    assert any(fnmatch.fnmatch("catalog.json", g) for g in data["pixseek.models"])


# --- fetch ---------------------------------------------------------------------------------------


def test_fetch_offline_says_in_one_line_what_to_do(cache):
    out = pixseek("models", "fetch", "clip-b32", env={"HF_HUB_CACHE": str(cache), "HF_HUB_OFFLINE": "1"}, expect=1)
    assert out.stdout == ""
    assert out.stderr == (
        f"Error: cannot fetch {CLIP}: offline (HF_HUB_OFFLINE is set) (download "
        f"https://huggingface.co/{CLIP_REPO}/resolve/main/open_clip_model.safetensors elsewhere and use "
        f"--model ViT-B-32:/path/to/open_clip_model.safetensors, or run `pixseek models fetch {CLIP}` on a "
        f"machine with a network and copy {cache}/models--laion--CLIP-ViT-B-32-laion2B-s34B-b79K to the same "
        "place here)\n"
    )


def test_fetch_without_a_network_names_the_tokenizer_too(cache):
    port = closed_port()
    env = {"HF_HUB_CACHE": str(cache), "HF_ENDPOINT": f"http://127.0.0.1:{port}"}
    out = pixseek("models", "fetch", XLM, env=env, expect=1)
    assert out.stderr == (
        f"Error: cannot fetch {XLM}: no network (127.0.0.1:{port} cannot be reached) (download "
        f"http://127.0.0.1:{port}/{XLM_REPO}/resolve/main/open_clip_model.safetensors elsewhere and use "
        "--model xlm-roberta-base-ViT-B-32:/path/to/open_clip_model.safetensors (its tokenizer still comes from "
        f"the hub: xlm-roberta-base), or run `pixseek models fetch {XLM}` on a machine with a network and copy "
        f"{cache}/models--laion--CLIP-ViT-B-32-xlm-roberta-base-laion5B-s13B-b90k and "
        f"{cache}/models--xlm-roberta-base to the same place here)\n"
    )


def test_fetch_downloads_from_the_hub_into_the_cache(cache):
    weights = os.urandom(3000)
    repos = {
        XLM_REPO: {"open_clip_pytorch_model.bin": weights},  # no safetensors: open_clip's second choice
        "xlm-roberta-base": {
            "config.json": b'{"model_type": "xlm-roberta"}',
            "tokenizer.json": b"{}",
            "model.safetensors": b"not wanted: the CLIP checkpoint holds the text weights",
        },
    }
    with FakeHub(repos) as fake:
        env = {"HF_HUB_CACHE": str(cache), "HF_ENDPOINT": fake.url}
        out = pixseek("models", "fetch", "multilingual-b32", env=env)
        landed = cache / f"models--{XLM_REPO.replace('/', '--')}" / "snapshots" / COMMIT / "open_clip_pytorch_model.bin"
        assert out.stdout.splitlines() == [
            f"{XLM}: downloaded: {landed}",
            f"use it with: pixseek index PATH --model {XLM} (for a new index: an existing one keeps its model)",
        ]
        assert landed.read_bytes() == weights
        text = cache / "models--xlm-roberta-base" / "snapshots" / COMMIT
        assert sorted(p.name for p in text.iterdir()) == ["config.json", "tokenizer.json"]
        asked = [(m, p) for m, p in fake.requests if "/resolve/" in p]
        assert asked[:2] == [
            ("HEAD", f"/{XLM_REPO}/resolve/main/open_clip_model.safetensors"),
            ("HEAD", f"/{XLM_REPO}/resolve/main/open_clip_pytorch_model.bin"),
        ]
        n = len(fake.requests)
        # a second fetch, even offline, finds it and asks the hub nothing
        again = pixseek("models", "fetch", XLM, "--json", env={**env, "HF_HUB_OFFLINE": "1"})
        assert json.loads(again.stdout) == {"spec": XLM, "kind": "pretrained", "path": str(landed), "already": True}
        assert len(fake.requests) == n
    # where open_clip itself looks for XLM offline, it finds the fetched file
    probe = (
        "import open_clip, sys\n"
        "from open_clip.pretrained import download_pretrained\n"
        f"print(download_pretrained(open_clip.get_pretrained_cfg('{XLM.split(':')[0]}', '{XLM.split(':')[1]}')))"
    )
    base = {k: v for k, v in os.environ.items() if k not in HF_VARS + PROXIES}
    found = subprocess.run(
        [sys.executable, "-c", probe],
        capture_output=True,
        text=True,
        env={**base, "HF_HUB_CACHE": str(cache), "HF_HUB_OFFLINE": "1"},
        timeout=300,
    )
    assert found.stdout.strip() == str(landed), found.stderr[-2000:]


def test_fetch_says_already_on_disk_without_the_network(cache):
    path = cache_file(cache, CLIP_REPO, "open_clip_model.safetensors")
    out = pixseek(
        "models", "fetch", CLIP, env={"HF_HUB_CACHE": str(cache), "HF_ENDPOINT": f"http://127.0.0.1:{closed_port()}"}
    )
    assert out.stdout.splitlines() == [
        f"{CLIP}: already on disk: {path}",
        f"use it with: pixseek index PATH --model {CLIP} (for a new index: an existing one keeps its model)",
    ]


@pytest.mark.parametrize(
    "name, code, stdout, stderr",
    [
        ("pixseek-emoji", 0, "pixseek-emoji ships with pixseek: nothing to fetch (use --model pixseek-emoji)\n", ""),
        ("tiny-random", 0, "tiny-random ships with pixseek: nothing to fetch (use --model tiny-random)\n", ""),
        (
            "nonsense",
            1,
            "",
            "Error: unknown model 'nonsense': give a name from `pixseek models` (pixseek-photo, pixseek-emoji, "
            "tiny-random, vit-b-32-random, clip-b32, siglip-b16, mobileclip-s2, multilingual-b32) or an open_clip "
            "ARCH:TAG (pixseek models)\n",
        ),
        (
            "NoSuchArch:x",
            1,
            "",
            "Error: unknown model architecture 'NoSuchArch' in 'NoSuchArch:x' (see `pixseek "
            "models` for the names pixseek knows)\n",
        ),
    ],
)
def test_fetch_answers_names_that_need_no_download(cache, name, code, stdout, stderr):
    r = CliRunner().invoke(cli, ["models", "fetch", name], catch_exceptions=False)
    assert (r.exit_code, r.stdout, r.stderr) == (code, stdout, stderr)


def test_fetch_of_a_local_checkpoint_needs_nothing(cache, tmp_path):
    ckpt = tmp_path / "mine.safetensors"
    ckpt.write_bytes(b"x")
    r = CliRunner().invoke(cli, ["models", "fetch", f"ViT-B-32:{ckpt}"], catch_exceptions=False)
    assert (r.exit_code, r.stdout) == (
        0,
        f"ViT-B-32:{ckpt} is a local file: nothing to fetch (use --model ViT-B-32:{ckpt})\n",
    )


# --- which model a new index gets ----------------------------------------------------------------


@pytest.fixture
def tiny_default(tmp_path, monkeypatch):
    """A registry whose default is the tiny model (quick to load)."""
    reg = tmp_path / "registry"
    shutil.copytree(ROOT / "models" / "configs", reg / "configs")
    entries = json.loads((ROOT / "models" / "registry.json").read_text())
    entries["default"] = "tiny-random"
    entries["models"] = {"tiny-random": entries["models"]["tiny-random"]}
    (reg / "registry.json").write_text(json.dumps(entries))
    monkeypatch.setenv("PIXSEEK_MODELS", str(reg))
    return reg


@pytest.mark.parametrize(
    "args, env, line",
    [
        (
            [],
            {},
            "model: tiny-random (the default for new indexes; --model NAME to choose, `pixseek models` lists them)",
        ),
        (["--model", "tiny-random"], {}, "model: tiny-random (from --model)"),
        ([], {"PIXSEEK_MODEL": "tiny-random"}, "model: tiny-random (from $PIXSEEK_MODEL)"),
    ],
)
def test_a_new_index_says_which_model_and_why(tmp_path, tiny_default, monkeypatch, args, env, line):
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    root = tmp_path / "pics"
    make_corpus(root, 4)
    db = tmp_path / "db"
    run = ["index", str(root), "--db", str(db), "--workers", "0", *args]
    r = CliRunner().invoke(cli, run, catch_exceptions=False)
    assert r.exit_code == 0, r.output
    assert r.stderr.splitlines() == [line]
    assert r.stdout.startswith("added 4, ")
    r = CliRunner().invoke(cli, run, catch_exceptions=False)  # an existing index keeps its model, quietly
    assert r.exit_code == 0 and r.stderr == ""
