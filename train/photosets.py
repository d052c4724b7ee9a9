"""Two datasets from Debian packages, written as caption manifests (see :mod:`pixseek.train.datasets`).

* ``tuxpaint`` - the **photo test set**: the photographic stamps of ``tuxpaint-stamps-default``
  (Tux Paint, GPL-2.0-or-later): every PNG stamp outside ``symbols/``, road signs, flags and the
  ``cartoon`` folders, each with the English description from its ``.txt`` file and the German,
  Spanish and French ones (``captions_de`` ...), its folder as ``category``. Split by category:
  a category is ``val`` (for choosing between designs) when the first byte of sha1(category) < 86
  (a third), else ``test`` (for reporting). No model of pixseek trains on it.
* ``openclipart`` - **training pictures**: the Openclipart 0.18 collection (public domain) from
  ``openclipart-png`` with titles and keywords from ``openclipart-svg``'s metadata.

Pictures are composed onto white and stored as RGB PNGs no larger than 256 px a side.
"""

from __future__ import annotations

import hashlib
import io
import json
import re
import tempfile
from collections.abc import Iterator
from pathlib import Path

from pixseek.errors import DatasetError
from pixseek.fileio import atomic_write

from . import debian

TUXPAINT = debian.DebPackage(
    "tuxpaint-stamps-default",
    "2022.06.04-1",
    "main/t/tuxpaint-stamps",
    "6db6c1bfc870a47f1499d6203b083522eacb57c5f9c87d468f2e92eb6d9d5f34",
    "GPL-2.0-or-later",
)
OPENCLIPART_PNG = debian.DebPackage(
    "openclipart-png",
    "0.18+dfsg-19",
    "main/o/openclipart",
    "f07f1545a2970c2cf3fa339bc2405da1a95cf2b1827bfa05bf73eb1c20291c02",
    "public-domain",
)
OPENCLIPART_SVG = debian.DebPackage(
    "openclipart-svg",
    "0.18+dfsg-19",
    "main/o/openclipart",
    "989712d90d57dfa3230049f553bb43b76c30ee4d4b8c5f6e106e33f7db5cbdc5",
    "public-domain",
)
LANGUAGES = ("de", "es", "fr")
SKIPPED = ("symbols/", "town/roadsigns/", "town/flags/")
VAL_BELOW = 86  # first sha1 byte of the category < 86 -> 'val' (86/256 = a third)
MAX_SIDE = 256
MAX_PIXELS = 16_000_000  # a handful of Openclipart PNGs are poster-sized (up to 230 MP): skipped
NOT_KEYWORDS = {"unsorted", "clip art", "clipart", "image", "media", "png", "svg", "public domain", "externalsource"}
TUXPAINT_ATTRIBUTION = (
    "Photographs from Tux Paint's stamps (tuxpaint-stamps-default 2022.06.04, Debian), (c) 2002-2022 "
    "Bill Kendrick and the Tux Paint contributors, GPL-2.0-or-later. Descriptions and their translations "
    "from the same package.\n"
)
OPENCLIPART_ATTRIBUTION = "Openclipart 0.18 (Debian openclipart-png / openclipart-svg): public domain.\n"


def split_of(category: str) -> str:
    return "val" if hashlib.sha1(category.encode()).digest()[0] < VAL_BELOW else "test"


def _on_white(data: bytes):
    from PIL import Image

    with Image.open(io.BytesIO(data)) as im:
        if im.size[0] * im.size[1] > MAX_PIXELS:
            raise ValueError(f"{im.size[0]}x{im.size[1]} pixels is more than a training picture needs")
        rgba = im.convert("RGBA")
    rgba.thumbnail((MAX_SIDE, MAX_SIDE), Image.Resampling.LANCZOS)
    white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
    return Image.alpha_composite(white, rgba).convert("RGB")


def _finish(dest: Path, rows: list[dict], attribution: str, version: str) -> Path:
    if not rows:
        raise DatasetError(f"no pictures found for the dataset in {dest}")
    manifest = dest / "manifest.jsonl"
    atomic_write(manifest, "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))
    atomic_write(dest / "ATTRIBUTION.txt", attribution)
    atomic_write(dest / "COMPLETE", version + "\n")  # last: the dataset is whole
    return manifest


def _complete(dest: Path) -> Path | None:
    manifest = dest / "manifest.jsonl"
    return manifest if manifest.is_file() and (dest / "COMPLETE").is_file() else None


# --- Tux Paint stamps: the photo test set --------------------------------------------------------


def tuxpaint_captions(text: str) -> dict[str, str]:
    """A stamp's ``.txt``: the first line is English, ``LANG.utf8=...`` lines are translations."""
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    out = {"en": lines[0]} if lines and "=" not in lines[0] else {}
    for ln in lines[1:]:
        lang, _, value = ln.partition(".utf8=")
        if lang in LANGUAGES and value.strip():
            out[lang] = value.strip()
    return out


def _is_photo_stamp(rel: str) -> bool:
    return rel.endswith(".png") and "cartoon" not in rel.split("/") and not rel.startswith(SKIPPED)


def fetch_tuxpaint(dest: Path, local: Path | None = None) -> Path:
    """Build the photo test set in ``dest`` (idempotent); returns the manifest path."""
    dest = Path(dest)
    if (done := _complete(dest)) is not None:
        return done
    dest.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="pixseek-deb-") as tmp:
        deb = debian.fetch(TUXPAINT, Path(tmp), local)
        pngs: dict[str, bytes] = {}
        texts: dict[str, str] = {}
        for rel, data in debian.files(deb, "usr/share/tuxpaint/stamps/"):
            if _is_photo_stamp(rel):
                pngs[rel[:-4]] = data
            elif rel.endswith(".txt"):
                texts[rel[:-4]] = data.decode("utf-8", "replace")
    rows = []
    for stem in sorted(pngs):
        caps = tuxpaint_captions(texts.get(stem, ""))
        if "en" not in caps:
            continue
        category = stem.rpartition("/")[0] or "stamps"
        out = dest / "images" / f"{stem}.png"
        out.parent.mkdir(parents=True, exist_ok=True)
        _on_white(pngs[stem]).save(out, optimize=True)
        row = {"image": f"images/{stem}.png", "captions": [caps["en"]], "concept": stem, "category": category}
        row.update({f"captions_{lang}": [caps[lang]] for lang in LANGUAGES if lang in caps})
        row.update({"license": TUXPAINT.license, "split": split_of(category)})
        rows.append(row)
    return _finish(dest, rows, TUXPAINT_ATTRIBUTION, TUXPAINT.version)


# --- Openclipart: training pictures with titles --------------------------------------------------

_AGENT = re.compile(r"<cc:Agent>.*?</cc:Agent>", re.S)  # creator / publisher: their names are no caption
_TITLE = re.compile(r"<dc:title>\s*([^<]*?)\s*</dc:title>", re.S)
_SUBJECT = re.compile(r"<dc:subject>(.*?)</dc:subject>", re.S)
_LI = re.compile(r"<rdf:li>\s*([^<]*?)\s*</rdf:li>")


def openclipart_captions(svg: str, folder: str) -> list[str]:
    """Title, title with its folder, and the keywords of one Openclipart SVG (as far as they exist);
    the creator's name, which some files give as title or keyword, is no caption."""
    import html

    head = svg[:20000]
    agents = {html.unescape(t).strip().lower() for a in _AGENT.findall(head) for t in _TITLE.findall(a)}
    head = _AGENT.sub("", head)
    titles = [html.unescape(t) for t in _TITLE.findall(head)]
    title = next((t for t in titles if t and t.lower() not in agents | {"open clip art library"}), "")
    subject = _SUBJECT.search(head)
    words = [html.unescape(k) for k in _LI.findall(subject.group(1))] if subject else []
    skip = NOT_KEYWORDS | agents
    keywords = [k for k in dict.fromkeys(w.strip().lower() for w in words) if k and k not in skip]
    where = folder.replace("/", " ").replace("_", " ")
    caps = [title, f"{title}, {where}" if title else where, ", ".join(keywords[:6])]
    return [c for c in dict.fromkeys(caps) if c]


def _openclipart_metadata(svg_deb: Path) -> dict[str, list[str]]:
    out = {}
    for rel, data in debian.files(svg_deb, "usr/share/openclipart/svg/"):
        if rel.endswith(".svg"):
            stem = rel[:-4]
            out[stem] = openclipart_captions(data.decode("utf-8", "replace"), stem.rpartition("/")[0])
    return out


def _openclipart_rows(png_deb: Path, meta: dict[str, list[str]], dest: Path) -> Iterator[dict]:
    from PIL import Image

    for rel, data in debian.files(png_deb, "usr/share/openclipart/png/"):
        stem = rel[:-4]
        caps = meta.get(stem)
        if not rel.endswith(".png") or not caps:
            continue
        out = dest / "images" / rel
        out.parent.mkdir(parents=True, exist_ok=True)
        try:
            picture = _on_white(data)
        except (OSError, ValueError, Image.DecompressionBombError):
            continue  # a broken or absurdly large PNG in the collection: skip it
        try:
            picture.save(out)
        except OSError as e:  # a full disk is no broken picture: stop, and leave the dataset incomplete
            raise DatasetError(f"cannot write {out}: {e.strerror or e}") from None
        yield {"image": f"images/{rel}", "captions": caps, "concept": stem, "license": "public-domain"}


def fetch_openclipart(dest: Path, local: Path | None = None) -> Path:
    """Build the Openclipart training set in ``dest`` (idempotent); returns the manifest path."""
    dest = Path(dest)
    if (done := _complete(dest)) is not None:
        return done
    dest.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="pixseek-deb-") as tmp:
        meta = _openclipart_metadata(debian.fetch(OPENCLIPART_SVG, Path(tmp), local))
        rows = list(_openclipart_rows(debian.fetch(OPENCLIPART_PNG, Path(tmp), local), meta, dest))
    return _finish(dest, rows, OPENCLIPART_ATTRIBUTION, OPENCLIPART_PNG.version)
