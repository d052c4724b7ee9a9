"""Text in pictures: how fast pixseek reads them, how much the detection gate saves, and how well it reads.

Sets (made once, cached under PIXSEEK_BENCH_CACHE/ocr):
* ``photos``: the 9 sample photos (samples/photos, scikit-image, CC0) and the 404 photographic stamps of
  Tux Paint (/tmp/data/tuxpaint or DATA_DIR/datasets/tuxpaint: `pixseek datasets fetch tuxpaint`), 93-512 px;
* ``camera``: the 9 sample photos enlarged to 4032x3024 (12 MP JPEG, q90, sensor-like noise): a phone
  photo's decoding and shrinking cost;
* ``screens``: Chromium screenshots (1280x800) of local HTML: the README and docs/architecture.md rendered,
  and Debian's HTML manuals under /usr/share/doc (Node.js API, Valgrind, libffi) where installed;
* ``drawn``: pictures with known words in 7 TrueType fonts, 14-48 px, on plain, coloured and photo
  backgrounds, some tilted, saved as JPEG: the accuracy set (word recall).

Figures: detection only and full reading (decode included), images/s with 1 and 2 readers and CPU
seconds per picture; the baseline beside them is rapidocr's own defaults (every picture through
detection and recognition, detection at >= 736 px on the shorter side). Then how many pictures the gate
sends to recognition, word recall and precision per recognition threshold, and the detection size.

Usage: python bench/ocr.py [--quick]   (--quick: a quarter of each set, for a smoke run)
"""

from __future__ import annotations

import argparse
import random
import re
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
from common import CACHE, FONTS, ROOT, dump_json, header, table, write_section
from PIL import Image, ImageDraw, ImageFilter, ImageFont

from pixseek.decode import decode_bytes, read_file
from pixseek.models import ocr

OUT = CACHE / "ocr"
WORDS = [
    "harbour",
    "lantern",
    "violet",
    "orchard",
    "marble",
    "falcon",
    "cobalt",
    "meadow",
    "quartz",
    "saddle",
    "ember",
    "willow",
    "tundra",
    "pepper",
    "glacier",
    "copper",
    "invoice",
    "ticket",
    "museum",
    "station",
    "bakery",
    "closed",
    "platform",
    "exit",
    "parking",
    "garden",
    "library",
    "coffee",
    "monday",
    "street",
    "river",
    "bridge",
    "market",
    "summer",
    "winter",
    "receipt",
    "total",
    "number",
    "open",
]
TOKEN = re.compile(r"[^\W_]+")


# --- sets --------------------------------------------------------------------------------------------
def photos() -> list[Path]:
    tux = next((p for p in (Path("/tmp/data/tuxpaint"), ROOT / "data" / "datasets" / "tuxpaint") if p.exists()), None)
    found = sorted((ROOT / "samples" / "photos").glob("*.jpg"))
    if tux is not None:
        found += sorted(p for p in tux.rglob("*") if p.suffix.lower() in (".png", ".jpg"))
    return found


def camera() -> list[Path]:
    out = []
    for i, src in enumerate(sorted((ROOT / "samples" / "photos").glob("*.jpg"))):
        p = OUT / "camera" / f"{src.stem}.jpg"
        if not p.exists():
            p.parent.mkdir(parents=True, exist_ok=True)
            img = Image.open(src).convert("RGB").resize((4032, 3024), Image.BICUBIC)
            noise = np.random.default_rng(i).normal(0, 6, (3024, 4032, 3))
            arr = np.clip(np.asarray(img, dtype=np.float32) + noise, 0, 255).astype(np.uint8)
            Image.fromarray(arr).save(p, "JPEG", quality=90)
        out.append(p)
    return out


def _pages() -> list[Path]:
    """Local HTML pages: the README and architecture page rendered, and Debian's manuals."""
    from markdown_it import MarkdownIt

    pages = []
    style = "<style>body{font-family:DejaVu Sans,sans-serif;max-width:60em;margin:2em auto;line-height:1.5}</style>"
    for md in (ROOT / "README.md", ROOT / "docs" / "architecture.md"):
        p = OUT / "html" / f"{md.stem}.html"
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text("<meta charset=utf-8>" + style + MarkdownIt("commonmark").enable("table").render(md.read_text()))
        pages.append(p)
    for folder in ("nodejs/api", "valgrind/html", "libffi8/html"):
        pages += sorted(Path("/usr/share/doc", folder).glob("*.html"))[:8]
    return pages


def screens(limit: int = 24) -> list[Path]:
    folder = OUT / "screens"
    have = sorted(folder.glob("*.png"))
    if len(have) >= limit:
        return have[:limit]
    from playwright.sync_api import sync_playwright

    folder.mkdir(parents=True, exist_ok=True)
    n = 0
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path="/usr/bin/chromium", headless=True, args=["--no-sandbox"])
        page = browser.new_page(viewport={"width": 1280, "height": 800})
        for html in _pages():
            for scroll in (0, 1600):
                if n >= limit:
                    break
                page.goto(html.as_uri(), wait_until="load")
                page.evaluate(f"window.scrollTo(0, {scroll})")
                page.screenshot(path=str(folder / f"{n:03d}-{html.stem}.png"))
                n += 1
        browser.close()
    return sorted(folder.glob("*.png"))[:limit]


def drawn(n: int = 48) -> tuple[list[Path], dict[str, list[str]]]:
    """Pictures with known words; returns (paths, words in each)."""
    folder, truth = OUT / "drawn", {}
    folder.mkdir(parents=True, exist_ok=True)
    rng = random.Random(15)
    backs = sorted((ROOT / "samples" / "photos").glob("*.jpg"))
    fonts = [f for f in FONTS if Path(f).exists()] or [None]
    paths = []
    for i in range(n):
        words = rng.sample(WORDS, rng.randint(1, 4))
        size, font_path = rng.choice([14, 18, 24, 32, 48]), fonts[i % len(fonts)]
        font = ImageFont.truetype(font_path, size) if font_path else ImageFont.load_default(size=size)
        kind = i % 3
        if kind == 2:  # a photo background, text on a light band
            img = Image.open(backs[i % len(backs)]).convert("RGB").resize((640, 480))
        else:
            img = Image.new("RGB", (640, 480), "white" if kind == 0 else tuple(rng.randint(150, 255) for _ in range(3)))
        d = ImageDraw.Draw(img)
        y = rng.randint(20, 120)
        for line in (words[:2], words[2:]):
            if not line:
                continue
            text = " ".join(line)
            x0, y0, x1, y1 = d.textbbox((30, y), text, font=font)
            if kind == 2:
                d.rectangle([x0 - 8, y0 - 6, x1 + 8, y1 + 6], fill=(240, 240, 230))
            d.text((30, y), text, fill=tuple(rng.randint(0, 80) for _ in range(3)), font=font)
            y += size * 2
        if i % 4 == 3:
            img = img.rotate(rng.choice([-6, -3, 3, 6]), expand=False, fillcolor="white", resample=Image.BICUBIC)
        if i % 5 == 4:
            img = img.filter(ImageFilter.GaussianBlur(0.8))
        p = folder / f"drawn{i:03d}.jpg"
        img.save(p, "JPEG", quality=80)
        paths.append(p)
        truth[p.name] = words
    return paths, truth


# --- measuring ---------------------------------------------------------------------------------------
def _decode(path: Path) -> Image.Image:
    return decode_bytes(read_file(path), min_side=ocr.DECODE_SIDE).image


def timed(paths: list[Path], work, workers: int, make=lambda: ocr.TextReader(threads=1)) -> tuple[float, float, list]:
    """(images/s wall, CPU s per picture, results) for ``work(reader, path)`` on ``workers`` threads,
    each with its own reader (made and warmed up before the clock starts)."""
    local = threading.local()
    ready = threading.Barrier(workers)

    def warm(_):
        local.reader = make()
        local.reader.read(Image.new("RGB", (64, 32), "white"))  # load the models outside the clock
        ready.wait()

    def one(p):
        return work(local.reader, p)

    with ThreadPoolExecutor(workers) as pool:
        list(pool.map(warm, range(workers)))
        t, c = time.perf_counter(), time.process_time()
        results = list(pool.map(one, paths))
        wall, cpu = time.perf_counter() - t, time.process_time() - c
    return len(paths) / wall, cpu / len(paths), results


def detect_only(reader, p):
    return reader.detect(ocr.to_bgr(_decode(p)))


def full(reader, p):
    return reader.read(_decode(p))


class Defaults:
    """The baseline: rapidocr as it comes (detection at >= 736 px on the shorter side, every box
    recognised), with the same one-thread sessions; the picture decoded whole."""

    def __init__(self) -> None:
        from rapidocr import RapidOCR

        self.engine = RapidOCR(
            params={
                "Global.log_level": "critical",
                "Global.use_cls": False,
                "EngineConfig.onnxruntime.intra_op_num_threads": 1,
                "EngineConfig.onnxruntime.inter_op_num_threads": 1,
            }
        )

    def read(self, image: Image.Image):
        return self.engine(ocr.to_bgr(image))


def baseline(paths: list[Path], workers: int) -> tuple[float, float]:
    ips, cpu, _ = timed(paths, lambda r, p: r.read(decode_bytes(read_file(p)).image), workers, make=Defaults)
    return ips, cpu


def recall(readings, paths, truth, min_score: float) -> tuple[float, float]:
    """(share of the drawn words found, share of the words read that were drawn) at a line threshold."""
    found = total = right = read = 0
    for r, p in zip(readings, paths):
        words = truth[p.name]
        lines = [ln for ln in r.lines if ocr.keep_line(ln.text, ln.score, min_score)]
        tokens = [t.lower() for ln in lines for t in TOKEN.findall(ln.text)]
        found += sum(w in tokens for w in words)
        total += len(words)
        right += sum(t in words for t in tokens)
        read += len(tokens)
    return found / max(total, 1), right / max(read, 1)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    args = ap.parse_args()
    ocr.check_available()
    cut = (lambda xs: xs[: max(2, len(xs) // 4)]) if args.quick else (lambda xs: xs)
    drawn_paths, truth = drawn()
    sets = {"photos": cut(photos()), "camera": cut(camera()), "screens": cut(screens()), "drawn": cut(drawn_paths)}
    rows = []
    for name, paths in sets.items():
        det_ips, det_cpu, det = timed(paths, detect_only, 2)
        full_ips, full_cpu, reads = timed(paths, full, 2)
        base_ips, base_cpu = baseline(paths, 2)
        some = paths[:: max(1, len(paths) // 16)][:16]  # the same pictures with 1 and 2 readers
        one, two = timed(some, full, 1)[0], timed(some, full, 2)[0]
        sent = sum(r.recognised > 0 for r in reads)
        with_text = sum(bool(r.lines) for r in reads)
        per_1000 = 1000 / full_ips / 60
        rows.append(
            [name, len(paths), det_ips, det_cpu, full_ips, full_cpu, per_1000, base_ips, base_cpu]
            + [f"{sent} ({sum(len(d[0]) > 0 for d in det)} with boxes)", with_text, f"{one:.2f} → {two:.2f}"]
        )
        print(rows[-1], flush=True)
    # thresholds: read once with none, then count what each threshold keeps
    sweep = []
    every_line = lambda: ocr.TextReader(threads=1, min_line_score=0.0, min_single_score=0.0)  # noqa: E731
    raw = {n: timed(sets[n], full, 2, make=every_line)[2] for n in ("drawn", "photos", "camera")}
    photo_lines = [ln for r in raw["photos"] + raw["camera"] for ln in r.lines]
    for t in (0.5, 0.6, 0.7, 0.8, 0.9, 0.95):
        rec, prec = recall(raw["drawn"], sets["drawn"], truth, t)
        on_photos = sum(ocr.keep_line(ln.text, ln.score, t, min_single=0.0) for ln in photo_lines)
        kept = sum(ocr.keep_line(ln.text, ln.score, t) for ln in photo_lines)  # one-character lines need more
        sweep.append([t, rec, prec, on_photos, kept])
    # detection size: time and recall
    sides = []
    for side in (640, 1024, 1536):
        reader = ocr.TextReader(det_side=side)
        reader.read(Image.new("RGB", (64, 32), "white"))
        for name in ("screens", "camera", "drawn"):
            some = sets[name][:8] if name == "screens" else sets[name]
            c = time.process_time()
            got = [reader.read(_decode(p)) for p in some]
            cpu = (time.process_time() - c) / len(some)
            words = recall(got, some, truth, ocr.MIN_LINE_SCORE)[0] if name == "drawn" else None
            lines = sum(len(r.lines) for r in got)
            sides.append([side, name, cpu, lines, "-" if words is None else f"{words:.3f}"])
    # recognition batch: lines per call (padded to the widest of them)
    batches = []
    for batch in (ocr.REC_BATCH, 6):
        reader = ocr.TextReader(rec_batch=batch)
        reader.read(Image.new("RGB", (64, 32), "white"))
        c = time.process_time()
        got = [reader.read(_decode(p)) for p in sets["screens"][:8]]
        batches.append([batch, (time.process_time() - c) / len(got), sum(len(r.lines) for r in got)])
    print(sweep, sides, batches, flush=True)
    dump_json("ocr", {"rows": rows, "sweep": sweep, "sides": sides, "batches": batches})
    _write(rows, sweep, sides, batches, sets, args.quick)


def _write(rows, sweep, sides, batches, sets, quick: bool) -> None:
    body = header("Text in pictures (OCR): speed, gate and accuracy (bench/ocr.py)") + (
        "\nrapidocr 3.10 with its bundled PP-OCRv6 small detection and recognition models on ONNX Runtime "
        f"(model version `{ocr.MODEL_VERSION}`: detection at <= {ocr.DET_SIDE} px, boxes >= {ocr.MIN_BOX_PX} px "
        f"and score >= {ocr.MIN_BOX_SCORE}, lines >= {ocr.MIN_LINE_SCORE}). One reader per thread, one ONNX "
        "Runtime thread each, 2 readers; decoding included. Baseline: rapidocr's defaults on the same pictures "
        "(detection at >= 736 px on the shorter side, every box recognised, no gate). Wall figures were taken "
        "on a shared machine: CPU s per picture is the steadier figure (2 cores: images/s <= 2 / CPU s).\n"
        + (" (--quick: a quarter of each set)\n" if quick else "")
    )
    body += "\n" + table(
        [
            "set",
            "pictures",
            "detect img/s",
            "detect CPU s/img",
            "read img/s",
            "read CPU s/img",
            "minutes per 1,000",
            "baseline img/s",
            "baseline CPU s/img",
            "sent to recognition",
            "with text kept",
            "read img/s, 1 → 2 readers (16 of them)",
        ],
        rows,
    )
    body += (
        "\n\nRecognition threshold (lines kept at or above it): word recall and precision on the drawn set, and "
        "lines kept on the photos and camera sets (pictures without text, apart from a few labels: "
        "what is kept there is mostly noise).\n\n"
    )
    body += table(
        [
            "line score >=",
            "drawn word recall",
            "drawn word precision",
            "lines on photos",
            f"... when one-character lines need {ocr.MIN_SINGLE_SCORE}",
        ],
        sweep,
    )
    body += "\n\nDetection size (longer side): CPU s per picture and what it finds.\n\n"
    body += table(["detection side px", "set", "CPU s/img", "lines kept", "drawn word recall"], sides)
    body += "\n\nRecognition batch (lines per call, padded to the widest): 8 screenshots.\n\n"
    body += table(["lines per call", "CPU s/img", "lines kept"], batches)
    body += "\n\nSources: " + ", ".join(f"{k} {len(v)}" for k, v in sets.items()) + " (see the module docstring).\n"
    write_section("ocr", body)


if __name__ == "__main__":
    main()
