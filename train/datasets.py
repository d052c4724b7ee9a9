"""Training data: the emoji dataset (fetched with ``npm pack``) and the generic caption manifest.

Manifest format (JSONL, one image per line)::

    {"image": "twitter/1f436.png", "captions": ["dog face", "dog face, an animal-mammal emoji"],
     "concept": "1F436", "style": "twitter", "license": "CC-BY-4.0", "split": "train"}

Only ``image`` and ``caption`` (a string) or ``captions`` (a list) are required; image paths are
relative to the manifest's folder (or absolute). ``concept`` groups pictures of the same thing (a batch
never holds two of one concept); ``split`` is ``train`` or ``heldout``.

The emoji split is fixed and documented: a base emoji (with all its skin-tone variants) is held out
when the first byte of sha1(unified code) is below 20 % of 256 (51), i.e. about 20 % of concepts are
never trained on.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import subprocess
import tarfile
import tempfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from pixseek.errors import DatasetError
from pixseek.fileio import atomic_write

EMOJI_VERSION = "16.0.0"
EMOJI_PACKAGES = {
    "data": ("emoji-datasource", "MIT"),
    "twitter": ("emoji-datasource-twitter", "CC-BY-4.0"),
    "google": ("emoji-datasource-google", "Apache-2.0"),
}
STYLES = ("twitter", "google")
HELDOUT_BELOW = 51  # first sha1 byte < 51 -> held out (51/256 = 19.9 %)
SKIN_TONES = {
    "1F3FB": "light skin tone",
    "1F3FC": "medium-light skin tone",
    "1F3FD": "medium skin tone",
    "1F3FE": "medium-dark skin tone",
    "1F3FF": "dark skin tone",
}
ATTRIBUTION = (
    "Twemoji graphics (c) Twitter, Inc and other contributors, licensed CC-BY 4.0 "
    "(https://creativecommons.org/licenses/by/4.0/); Noto Emoji (c) Google, Apache-2.0; "
    "emoji metadata from emoji-datasource (MIT, iamcal)."
)


@dataclass
class Sample:
    image: Path
    captions: list[str]
    concept: str
    style: str = ""
    license: str = ""
    split: str = "train"
    extra: dict = field(default_factory=dict)


def concept_split(concept: str) -> str:
    return "heldout" if hashlib.sha1(concept.upper().encode()).digest()[0] < HELDOUT_BELOW else "train"


def emoji_captions(name: str, short_names: Iterable[str], subcategory: str, tones: Iterable[str] = ()) -> list[str]:
    name = name.lower().strip()
    tone = ", ".join(tones)
    base = f"{name}, {tone}" if tone else name
    sub = subcategory.replace("-", " ")
    caps = [base, f"{base}, a{'n' if sub[:1] in 'aeiou' else ''} {sub} emoji"]
    for s in short_names:
        s = s.replace("_", " ").replace("-", " ").strip()
        if s and s != name:
            caps.append(f"{s}, {tone}" if tone else s)
    return list(dict.fromkeys(caps))


def _safe_members(tar: tarfile.TarFile, wanted) -> Iterator[tuple[tarfile.TarInfo, str]]:
    for m in tar:
        if not m.isfile():
            continue
        parts = Path(m.name).parts
        if ".." in parts or os.path.isabs(m.name):
            continue
        key = wanted(m.name)
        if key:
            yield m, key


def _npm_pack(package: str, dest: Path) -> Path:
    if shutil.which("npm") is None:
        raise DatasetError("the npm client is needed to fetch the emoji dataset (install Node.js/npm)")
    try:
        out = subprocess.run(
            ["npm", "pack", f"{package}@{EMOJI_VERSION}", "--silent"],
            cwd=dest,
            capture_output=True,
            text=True,
            timeout=600,
        )
    except subprocess.TimeoutExpired:
        raise DatasetError(f"npm pack {package} timed out") from None
    if out.returncode != 0:
        first = (out.stderr.strip().splitlines() or ["unknown error"])[-1]
        raise DatasetError(f"npm pack {package}@{EMOJI_VERSION} failed: {first}")
    return dest / out.stdout.strip().splitlines()[-1]


def fetch_emoji(dest: Path, tarballs: Path | None = None, progress: bool = False) -> Path:
    """Fetch (or take from ``tarballs``) the three packages, extract 64 px art on white, write the manifest.

    Returns the manifest path. Idempotent: an existing complete dataset is kept.
    """
    from PIL import Image

    dest = Path(dest)
    manifest = dest / "manifest.jsonl"
    if manifest.is_file() and (dest / "COMPLETE").is_file():
        return manifest
    dest.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="pixseek-emoji-") as tmp:
        tmpdir = Path(tmp)
        packs = {}
        for key, (package, _) in EMOJI_PACKAGES.items():
            local = tarballs / f"{package}-{EMOJI_VERSION}.tgz" if tarballs else None
            packs[key] = local if local and local.is_file() else _npm_pack(package, tmpdir)
        try:
            with tarfile.open(packs["data"]) as tar:
                data = tar.extractfile(tar.getmember("package/emoji.json"))
                if data is None:
                    raise KeyError("package/emoji.json is not a file")
                emoji = json.load(data)
        except (tarfile.TarError, KeyError, ValueError) as e:
            raise DatasetError(f"cannot read emoji.json from {packs['data']}: {e}") from None
        for style in STYLES:
            out_dir = dest / style
            out_dir.mkdir(exist_ok=True)
            prefix = f"package/img/{style}/64/"
            with tarfile.open(packs[style]) as tar:
                for m, name in _safe_members(
                    tar, lambda n, prefix=prefix: n[len(prefix) :] if n.startswith(prefix) else None
                ):
                    if "/" in name or not name.endswith(".png"):
                        continue
                    member = tar.extractfile(m)
                    if member is None:
                        continue
                    rgba = Image.open(io.BytesIO(member.read())).convert("RGBA")
                    white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
                    Image.alpha_composite(white, rgba).convert("RGB").save(out_dir / name, optimize=True)
    rows = list(_emoji_rows(emoji, dest))
    atomic_write(manifest, "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))
    atomic_write(dest / "ATTRIBUTION.txt", ATTRIBUTION + "\n")
    atomic_write(dest / "COMPLETE", EMOJI_VERSION + "\n")  # last: the dataset is whole
    return manifest


def _emoji_rows(emoji: list[dict], dest: Path) -> Iterator[dict]:
    for e in sorted(emoji, key=lambda x: x.get("sort_order", 0)):
        concept = e["unified"].upper()
        split = concept_split(concept)
        name = e.get("name") or e.get("short_name", "")
        variants: list[tuple[str, list[str], str, str]] = [(e["image"], [], concept, "base")]
        for tone_key, v in (e.get("skin_variations") or {}).items():
            tones = [SKIN_TONES.get(t, t) for t in tone_key.split("-")]
            variants.append((v["image"], tones, v["unified"].upper(), "skin"))
        for image, tones, unified, kind in variants:
            caps = emoji_captions(name, e.get("short_names") or [], e.get("subcategory", ""), tones)
            for style in STYLES:
                if not (dest / style / image).is_file():
                    continue
                yield {
                    "image": f"{style}/{image}",
                    "captions": caps,
                    "concept": concept,
                    "variant": unified,
                    "kind": kind,
                    "style": style,
                    "license": EMOJI_PACKAGES[style][1],
                    "split": split,
                    "category": e.get("category", ""),
                    "subcategory": e.get("subcategory", ""),
                }


def read_manifest(path: Path) -> list[Sample]:
    """Read a JSONL manifest; raises DatasetError naming the first bad line."""
    path = Path(path)
    if not path.is_file():
        raise DatasetError(f"no manifest at {path}", hint="pixseek datasets fetch emoji")
    base = path.parent
    out: list[Sample] = []
    with open(path, encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            line = line.strip()
            if not line:
                continue
            try:
                row = json.loads(line)
                caps = row.get("captions") or ([row["caption"]] if row.get("caption") else [])
                if not caps or not all(isinstance(c, str) and c.strip() for c in caps):
                    raise ValueError("needs 'caption' or a non-empty 'captions' list")
                img = Path(row["image"])
            except (ValueError, KeyError, TypeError) as e:
                raise DatasetError(f"{path}:{n}: bad manifest line ({e})") from None
            known = {"image", "caption", "captions", "concept", "style", "license", "split"}
            out.append(
                Sample(
                    img if img.is_absolute() else base / img,
                    caps,
                    str(row.get("concept") or row["image"]),
                    row.get("style", ""),
                    row.get("license", ""),
                    row.get("split", "train"),
                    {k: v for k, v in row.items() if k not in known},
                )
            )
    if not out:
        raise DatasetError(f"manifest {path} is empty")
    return out
