"""A non-editable wheel: one import root, the bundled model and data inside, and the demo's path working
from a fresh virtualenv that has nothing of the repo (run from another folder, so the checkout cannot
stand in for the installed package)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SAMPLES = ROOT / "samples" / "twemoji"
SOURCE_DIRS = {
    "pixseek": "pixseek",
    "index": "pixseek/index",
    "search": "pixseek/search",
    "ui": "pixseek/ui",
    "train": "pixseek/train",
    "models": "pixseek/models",
    "store": "pixseek/store",
}
SKIP = shutil.ignore_patterns(
    ".venv", ".git", "data", "build", "dist", "artifacts", "__pycache__", "*.egg-info", "gpu-carry"
)


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    """The wheel built from a copy of the checkout (the build writes nothing into the repo)."""
    base = tmp_path_factory.mktemp("wheel")
    src = base / "src"
    shutil.copytree(ROOT, src, ignore=SKIP, symlinks=True)
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "-q",
            "--no-deps",
            "--no-build-isolation",
            "-w",
            str(base / "dist"),
            str(src),
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    (whl,) = (base / "dist").glob("pixseek-*.whl")
    return whl


@pytest.fixture(scope="module")
def fresh_venv(wheel, tmp_path_factory) -> Path:
    """A new virtualenv with the wheel installed (no editable link to the repo). Its dependencies are
    read from this test run's environment through a path entry: installing torch anew is no test."""
    venv = tmp_path_factory.mktemp("venv") / "fresh"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=120)
    site = Path(
        subprocess.run(
            [str(venv / "bin" / "python"), "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    )
    (site / "deps.pth").write_text(sysconfig.get_path("purelib") + "\n")
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "--python",
            str(venv / "bin" / "python"),
            "install",
            "-q",
            "--no-deps",
            str(wheel),
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    return venv


def test_wheel_holds_one_import_root_and_the_package_data(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())
    assert all(n.startswith(("pixseek/", "pixseek-0.1.0.dist-info/")) for n in names), sorted(names)[:20]
    for folder, installed in SOURCE_DIRS.items():  # every module of every product folder, under pixseek/
        for py in (ROOT / folder).glob("*.py"):
            assert f"{installed}/{py.name}" in names, (folder, py.name)
    data = {
        "pixseek/models/registry.json",
        "pixseek/models/weights/pixseek-emoji.safetensors",
        "pixseek/models/pixseek-emoji.md",
        "pixseek/models/weights/pixseek-photo.safetensors",
        "pixseek/models/pixseek-photo.md",
        "pixseek/store/prompts.txt",
        "pixseek/index/vocabulary.txt",
        "pixseek/index/tag_calibration.json",
        "pixseek/search/background.txt",
        "pixseek/ui/app.py",
        "pixseek/py.typed",
    }
    data |= {f"pixseek/models/configs/{p.name}" for p in (ROOT / "models" / "configs").glob("*.json")}
    assert data <= names, data - names
    assert not any(n.startswith("pixseek/tests/") or "/__pycache__/" in n for n in names)
    meta = zipfile.ZipFile(wheel).read("pixseek-0.1.0.dist-info/entry_points.txt").decode()
    assert "pixseek = pixseek.cli:main" in meta


def test_demo_path_runs_from_the_wheel(fresh_venv, tmp_path):
    env = {
        "PATH": f"{fresh_venv / 'bin'}:/usr/bin:/bin",
        "HOME": str(tmp_path),
        "HF_HUB_OFFLINE": "1",
        "XDG_CACHE_HOME": str(tmp_path / "cache"),
        "XDG_DATA_HOME": str(tmp_path / "share"),
        "TOKENIZERS_PARALLELISM": "false",
    }
    py, pixseek = str(fresh_venv / "bin" / "python"), str(fresh_venv / "bin" / "pixseek")

    def run(*args: str, exe: str = pixseek) -> str:
        out = subprocess.run([exe, *args], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
        assert out.returncode == 0, (args, out.stderr[-3000:])
        return out.stdout

    where = json.loads(
        run(
            "-c",
            "import json, pixseek.models.registry as r, pixseek.index as i; "
            "print(json.dumps([str(r.models_dir()), i.__file__]))",
            exe=py,
        )
    )
    assert all(p.startswith(str(fresh_venv)) for p in where), where  # the wheel's files, not the repo's
    db = str(tmp_path / "db")
    n = len(list(SAMPLES.glob("*.png")))
    summary = json.loads(run("index", str(SAMPLES), "--db", db, "--json"))
    assert (summary["added"], summary["failed"], summary["total"]) == (n, 0, n)
    assert json.loads(run("stats", "--db", db, "--json"))["model"] == "pixseek-photo"
    first = run("search", "--image", str(SAMPLES / "dog-face.png"), "--db", db, "-k", "3").splitlines()[0]
    assert first.split()[:2] == ["1", "1.0000"] and first.endswith("dog-face.png")
    assert "dog-face.png" in run("search", "dog", "--db", db, "-k", "5")
    # the page, from the wheel's own app.py
    page = (
        "import os; from importlib import resources; from streamlit.testing.v1 import AppTest\n"
        "at = AppTest.from_file(str(resources.files('pixseek.ui') / 'app.py'), default_timeout=120)\n"
        "at.query_params['q'] = 'dog'; at.run()\n"
        "assert not at.exception, [e.value for e in at.exception]\n"
        "import json\n"
        "cards = [e for e in at.main if getattr(getattr(e, 'proto', None), 'component_name', '') == 'pixseek_cards']\n"
        "print(len(json.loads(cards[0].proto.json)['cards']) if cards else 0)"  # the result cards' element
    )
    env["PIXSEEK_DB"] = db
    assert int(run("-c", page, exe=py).strip().splitlines()[-1]) > 0
    assert not os.path.exists(tmp_path / "pixseek")  # nothing of the repo beside the run
