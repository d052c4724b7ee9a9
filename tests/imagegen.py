"""Real images drawn with Pillow for tests: varied shapes, colours, sizes and formats."""

from __future__ import annotations

import io
import random
from pathlib import Path

from PIL import Image, ImageDraw

FORMATS = {".jpg": "JPEG", ".png": "PNG", ".webp": "WEBP", ".bmp": "BMP", ".tif": "TIFF", ".gif": "GIF"}


def draw(seed: int, size: tuple[int, int] | None = None) -> Image.Image:
    """A distinct picture per seed: coloured background, gradient, and several random shapes."""
    rng = random.Random(seed)
    w, h = size or (rng.randint(96, 320), rng.randint(96, 320))
    bg = tuple(rng.randint(0, 255) for _ in range(3))
    img = Image.new("RGB", (w, h), bg)
    d = ImageDraw.Draw(img)
    # a gradient band so images differ at low frequency too
    c2 = tuple(rng.randint(0, 255) for _ in range(3))
    horizontal = rng.random() < 0.5
    span = w if horizontal else h
    for t in range(0, span, 4):
        a = t / max(span - 1, 1)
        col = tuple(int(bg[j] * (1 - a) + c2[j] * a) for j in range(3))
        if horizontal:
            d.rectangle([t, 0, t + 3, h // 2], fill=col)
        else:
            d.rectangle([0, t, w // 2, t + 3], fill=col)
    for _ in range(rng.randint(2, 6)):
        col = tuple(rng.randint(0, 255) for _ in range(3))
        x0, y0 = rng.randint(0, w - 10), rng.randint(0, h - 10)
        x1, y1 = rng.randint(x0 + 5, w), rng.randint(y0 + 5, h)
        kind = rng.choice(["ellipse", "rect", "poly", "line"])
        if kind == "ellipse":
            d.ellipse([x0, y0, x1, y1], fill=col)
        elif kind == "rect":
            d.rectangle([x0, y0, x1, y1], fill=col)
        elif kind == "poly":
            d.polygon([(rng.randint(0, w), rng.randint(0, h)) for _ in range(rng.randint(3, 6))], fill=col)
        else:
            d.line([x0, y0, x1, y1], fill=col, width=rng.randint(2, 12))
    return img


def save(img: Image.Image, path: Path, **kw) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    fmt = FORMATS.get(path.suffix.lower())
    if fmt == "JPEG":
        kw.setdefault("quality", 90)
    img.save(path, fmt, **kw)
    return path


def make_corpus(
    root: Path, n: int, *, start: int = 0, exts=(".jpg", ".png", ".webp"), subdirs: bool = True
) -> list[Path]:
    paths = []
    for i in range(start, start + n):
        sub = f"set{i % 3}" if subdirs else ""
        p = root / sub / f"img{i:04d}{exts[i % len(exts)]}"
        save(draw(i), p)
        paths.append(p)
    return paths


def jpeg_with_orientation(img: Image.Image, orientation: int) -> bytes:
    """JPEG bytes whose pixels are ``img`` stored as-is, with an EXIF orientation tag."""
    exif = Image.Exif()
    exif[0x0112] = orientation
    buf = io.BytesIO()
    img.save(buf, "JPEG", quality=95, exif=exif.tobytes())
    return buf.getvalue()


def truncated(data: bytes, keep: float = 0.5) -> bytes:
    return data[: max(16, int(len(data) * keep))]


def encode(img: Image.Image, fmt: str, **kw) -> bytes:
    buf = io.BytesIO()
    img.save(buf, fmt, **kw)
    return buf.getvalue()
