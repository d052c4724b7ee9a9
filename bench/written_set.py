"""The *written words* set (``written-v1``): real pictures with words drawn on them, for measuring search
for text that only the picture carries (bench/hybrid_ocr.py).

Sources: the Tux Paint photo stamps (tuxpaint-stamps-default 2022.06.04, GPL-2.0-or-later) and Openclipart
0.18 PNGs (public domain), both from ``pixseek datasets fetch`` (default /tmp/data/{tuxpaint,openclipart}).
Each of the TEXTS is drawn on one picture, a third of them on a second one too, in one of six styles:

* ``sign``: a board with a border on the picture (a post below it), 20-56 px;
* ``label``: a small tag in a corner, 13-20 px;
* ``caption``: a band under the picture, 16-30 px;
* ``overlay``: big words straight on the picture, with an outline, 30-72 px;
* ``tilted``: a sign turned by 8-25 degrees;
* ``screenshot``: a window (title bar, a picture thumbnail, 5-9 lines of interface text, one of them the text),
  800x500 to 1280x800, 14-20 px.

Seven TrueType fonts (DejaVu, Liberation), random dark or light colours against the board, saved as JPEG
(q 80-92) or PNG. Distractors: pictures from the same sources without text, among them a picture of each
LURE concept (the word ``frog`` is written on something else, and a real frog is in the gallery: what a
picture's meaning suggests, and what is written, disagree). File names are opaque (sha1 of the recipe, one
flat folder). Everything is drawn from a fixed seed: the same set on every machine with the same sources.
"""

from __future__ import annotations

import hashlib
import json
import random
import re
from dataclasses import asdict, dataclass
from pathlib import Path

from common import FONTS
from PIL import Image, ImageDraw, ImageFont

VERSION = "written-v1"
# Words and phrases people photograph or screenshot: shop signs, notices, labels, names, numbers.
TEXTS = """bakery|pharmacy|no parking|exit only|fresh bread|car wash|open 24 hours|platform 4|harbour master|
fish market|private road|keep left|bus stop|post office|city library|ice cream|hot coffee|free wifi|wet paint|
staff only|danger|closed|welcome home|happy birthday|lost cat|garage sale|beware of the dog|gate B12|room 204|
ticket office|taxi rank|lemonade 50 cents|Lisbon 2019|Maria|Oskar|invoice 2291|receipt|grandma's apple pie|
summer camp|team photo|project kestrel|version 3.2|deadline friday|meeting at noon|fire exit|no smoking|
quiet please|lift out of order|toilets|information|departures|arrivals|customs|pull|push|sale 50%|
buy one get one free|best before 12/08|tomato soup|olive oil|sea salt|green tea|oat milk|dark chocolate|
room for rent|bicycle repair|vintage records|flower shop|second hand books|pizza napoli|noodle bar|
dentist|veterinary clinic|yoga class|chess club|swimming pool|town hall|museum of clocks|zoo entrance|
lighthouse road|mill lane|station street|river walk|north beach|camp site|picnic area|dog park|
slow down|school zone|road closed|detour|dead end|one way|speed limit 30|weight limit 7t|
wifi password sunflower|battery low|update available|download complete|connection lost|access denied|
error 404|settings saved|out of stock|sold out|thank you|see you soon|good luck|congratulations|
merry christmas|happy new year|best friends forever|kitchen rules|wash your hands|mind the gap""".replace(
    "\n", ""
).split("|")
# Concept words written on an unrelated picture while a textless picture of the concept (Tux Paint) is in
# the gallery: the image's meaning points elsewhere than the text.
LURES = ["frog", "pelican", "giraffe", "violin", "pineapple", "teapot", "kangaroo", "firetruck", "lobster",
         "broccoli", "owl", "trumpet", "zebra", "hedgehog", "strawberry", "penguin"]  # fmt: skip
# Lines of a screenshot around the text (interface words; a query may share a word with them, as in life).
FILLER = """File  Edit  View  Window  Help|Name  Size  Modified|Search the web|Last updated 3 minutes ago|
Show details|Cancel  OK|Documents / Notes|Recent files|Sort by date|Saved to cloud|Share  Export  Print|
Syncing 12 items|Tuesday 14:32|Page 2 of 9|Reply  Forward|Font size 12|Zoom 100%|Drafts (3)|
Select all|Copy link""".replace("\n", "").split("|")
STYLES = ("sign", "label", "caption", "overlay", "tilted", "screenshot")
N_DISTRACTORS = 110  # pictures without drawn text, besides the lure concepts' pictures
TOKEN = re.compile(r"\w+", re.UNICODE)


def tokens(text: str) -> list[str]:
    return [t.lower() for t in TOKEN.findall(text)]


@dataclass
class Picture:
    file: str  # the opaque name in the set's folder
    source: str  # the picture it was made from (source set / path)
    style: str  # one of STYLES, or "none" for a distractor
    text: str  # the text drawn ("" for a distractor)
    lines: list[str]  # every line drawn (a screenshot's interface lines too)


def _sources(tux: Path, clip: Path) -> tuple[list[str], dict[str, str]]:
    """(every source picture as "set/relative path", {Tux Paint concept: picture})."""
    rows = [json.loads(x) for x in (tux / "manifest.jsonl").read_text().splitlines() if x.strip()]
    by_concept = {r["concept"]: f"tuxpaint/{r['image']}" for r in rows}
    pics = sorted(by_concept.values())
    pics += sorted(f"openclipart/{p.relative_to(clip)}" for p in (clip / "images").rglob("*.png"))
    return pics, by_concept


def _open(name: str, tux: Path, clip: Path, side: int) -> Image.Image:
    kind, rel = name.split("/", 1)
    img = Image.open((tux if kind == "tuxpaint" else clip) / rel)
    img = img.convert("RGBA")
    back = Image.new("RGBA", img.size, (255, 255, 255, 255))
    img = Image.alpha_composite(back, img).convert("RGB")
    scale = side / max(img.size)
    return img.resize((max(1, round(img.width * scale)), max(1, round(img.height * scale))), Image.LANCZOS)


def _font(rng: random.Random, lo: int, hi: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    size = rng.randint(lo, hi)
    fonts = [f for f in FONTS if Path(f).exists()]
    return ImageFont.truetype(rng.choice(fonts), size) if fonts else ImageFont.load_default(size=size)


def _colours(rng: random.Random) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """(board, ink) with a clear contrast, either way round."""
    dark = tuple(rng.randint(0, 70) for _ in range(3))
    light = tuple(rng.randint(200, 255) for _ in range(3))
    return (dark, light) if rng.random() < 0.5 else (light, dark)


def _board(text: str, rng: random.Random, lo: int, hi: int) -> Image.Image:
    """A sign: the text on a bordered board, as an RGBA layer."""
    font = _font(rng, lo, hi)
    board, ink = _colours(rng)
    probe = ImageDraw.Draw(Image.new("RGB", (1, 1)))
    x0, y0, x1, y1 = probe.textbbox((0, 0), text, font=font)
    pad = max(6, (y1 - y0) // 2)
    layer = Image.new("RGBA", (x1 - x0 + 2 * pad, y1 - y0 + 2 * pad), (0, 0, 0, 0))
    d = ImageDraw.Draw(layer)
    d.rounded_rectangle([0, 0, layer.width - 1, layer.height - 1], radius=pad // 2, fill=board, outline=ink, width=2)
    d.text((pad - x0, pad - y0), text, fill=ink, font=font)
    return layer


def _paste(img: Image.Image, layer: Image.Image, rng: random.Random) -> Image.Image:
    if layer.width > img.width - 8 or layer.height > img.height - 8:  # a big sign: a bigger canvas
        grown = Image.new("RGB", (max(img.width, layer.width + 16), max(img.height, layer.height + 16)), "white")
        grown.paste(img, ((grown.width - img.width) // 2, (grown.height - img.height) // 2))
        img = grown
    x = rng.randint(4, img.width - layer.width - 4)
    y = rng.randint(4, img.height - layer.height - 4)
    img.paste(layer, (x, y), layer)
    return img


def draw(style: str, text: str, base: Image.Image, thumb: Image.Image, rng: random.Random) -> tuple[Image.Image, list]:
    """One picture with ``text`` drawn on ``base`` in ``style``; (picture, lines drawn)."""
    img = base.copy()
    if style == "sign":
        return _paste(img, _board(text, rng, 20, 56), rng), [text]
    if style == "tilted":
        layer = _board(text, rng, 24, 56).rotate(rng.choice([-1, 1]) * rng.randint(8, 25), expand=True)
        return _paste(img, layer, rng), [text]
    if style == "label":
        font = _font(rng, 13, 20)
        d = ImageDraw.Draw(img)
        x, y = rng.choice([(8, 8), (8, img.height - 40), (img.width // 2, img.height - 40)])
        box = d.textbbox((x, y), text, font=font)
        d.rectangle([box[0] - 4, box[1] - 3, box[2] + 4, box[3] + 3], fill="white", outline="black")
        d.text((x, y), text, fill=(0, 0, 0), font=font)
        return img, [text]
    if style == "caption":
        font = _font(rng, 16, 30)
        board, ink = _colours(rng)
        band = int(font.size * 2.2) if hasattr(font, "size") else 48
        out = Image.new("RGB", (img.width, img.height + band), board)
        out.paste(img, (0, 0))
        d = ImageDraw.Draw(out)
        w = d.textlength(text, font=font)
        d.text(((out.width - w) / 2, img.height + band * 0.2), text, fill=ink, font=font)
        return out, [text]
    if style == "overlay":
        font = _font(rng, 30, 72)
        ink, stroke = _colours(rng)
        d = ImageDraw.Draw(img)
        box = d.textbbox((0, 0), text, font=font, stroke_width=2)
        if box[2] > img.width - 8:  # too wide: a wider canvas
            wide = Image.new("RGB", (box[2] + 24, img.height), "white")
            wide.paste(img, ((wide.width - img.width) // 2, 0))
            img, d = wide, ImageDraw.Draw(wide)
        x = rng.randint(4, max(4, img.width - box[2] - 4))
        y = rng.randint(4, max(4, img.height - box[3] - 4))
        d.text((x, y), text, fill=ink, font=font, stroke_width=2, stroke_fill=stroke)
        return img, [text]
    return _screenshot(text, thumb, rng)


def _screenshot(text: str, thumb: Image.Image, rng: random.Random) -> tuple[Image.Image, list]:
    w, h = rng.choice([(800, 500), (1024, 640), (1280, 800)])
    img = Image.new("RGB", (w, h), (250, 250, 250) if rng.random() < 0.7 else (40, 42, 48))
    ink = (20, 20, 20) if img.getpixel((0, 0))[0] > 128 else (230, 230, 230)
    d = ImageDraw.Draw(img)
    d.rectangle([0, 0, w, 28], fill=tuple(rng.randint(40, 110) for _ in range(3)))
    font = _font(rng, 14, 20)
    title = rng.choice(FILLER)
    d.text((12, 6), title, fill="white", font=font)
    t = thumb.copy()
    t.thumbnail((w // 3, h // 2))
    img.paste(t, (w - t.width - 20, 48))
    lines = rng.sample(FILLER, rng.randint(4, 8))
    lines.insert(rng.randint(0, len(lines)), text)
    step = int(font.size * 1.9) if hasattr(font, "size") else 30
    for n, line in enumerate(lines):
        d.text((24, 48 + n * step), line, fill=ink, font=font)
    return img, [title, *lines]


def build(folder: Path, tux: Path, clip: Path, split: str = "test") -> list[Picture]:
    """Make the set under ``folder`` (kept when its manifest says this version); returns its manifest.
    ``split``: "test" (``written-v1``, what bench/hybrid_ocr.py reports) or "val" (``written-v1-val``: the
    same texts drawn from another seed on other pictures, to choose thresholds on; bench/ocr_gate.py)."""
    version = VERSION if split == "test" else f"{VERSION}-{split}"
    manifest = folder / "manifest.json"
    if manifest.is_file():
        data = json.loads(manifest.read_text())
        have = all((folder / "pictures" / p["file"]).is_file() for p in data["pictures"])
        if data.get("version") == version and have:
            return [Picture(**p) for p in data["pictures"]]
    rng = random.Random({"test": 16, "val": 17}[split])
    pics, by_concept = _sources(tux, clip)
    lure_pics = {pic for c, pic in by_concept.items() if c.rsplit("/", 1)[-1] in LURES}
    pool = [p for p in pics if p not in lure_pics]
    rng.shuffle(pool)
    texts = [t.strip() for t in TEXTS if t.strip()] + list(LURES)
    out: list[Picture] = []
    (folder / "pictures").mkdir(parents=True, exist_ok=True)
    for n, text in enumerate(texts):
        for _copy in range(2 if n % 3 == 0 else 1):
            base_name, thumb_name = pool.pop(), pool[rng.randrange(len(pool))]
            style = STYLES[len(out) % len(STYLES)]
            base = _open(base_name, tux, clip, rng.choice([480, 640, 800, 1024]))
            img, lines = draw(style, text, base, _open(thumb_name, tux, clip, 320), rng)
            source = base_name if style != "screenshot" else thumb_name
            out.append(_save(folder, img, rng, version, source, (style, text, lines)))
    for name in sorted(lure_pics) + pool[:N_DISTRACTORS]:
        img = _open(name, tux, clip, rng.choice([480, 640, 800, 1024]))
        out.append(_save(folder, img, rng, version, name, ("none", "", [])))
    manifest.write_text(json.dumps({"version": version, "pictures": [asdict(p) for p in out]}, indent=0))
    return out


def _save(folder: Path, img: Image.Image, rng: random.Random, version: str, source: str, drawn: tuple) -> Picture:
    style, text, lines = drawn
    png = rng.random() < 0.3
    name = hashlib.sha1(f"{version}/{source}/{style}/{text}".encode()).hexdigest()[:16] + (".png" if png else ".jpg")
    path = folder / "pictures" / name
    if png:
        img.save(path, "PNG")
    else:
        img.save(path, "JPEG", quality=rng.randint(80, 92))
    return Picture(name, source, style, text, list(lines))


def relevant(pictures: list[Picture], text: str) -> set[str]:
    """The pictures whose drawn lines hold ``text``'s words in a row (what a right answer is)."""
    want = tokens(text)
    out = set()
    for p in pictures:
        for line in p.lines:
            have = tokens(line)
            if any(have[i : i + len(want)] == want for i in range(len(have) - len(want) + 1)):
                out.add(p.file)
    return out
