"""Benchmark corpora, made once and cached under data/bench/ (PIXSEEK_BENCH_CACHE).

* ``large``: JPEG photos of >= 8 MP (3264x2448, quality 90). Each is a rendered scene: a sky-to-ground
  gradient, several bundled pictures scaled up and placed at random, and per-pixel sensor-like noise,
  so the file size (~3 MB) and the decoding cost are those of real camera photos.
* ``medium``: JPEG photos of 1-3 MP (1280x960 to 2048x1536, quality 90), made like ``large``.
* ``small``: PNGs of 96-256 px: bundled pictures re-coloured, rotated and resized.
* ``tiny``: many 64-96 px PNGs, for the memory benchmark.
"""

from __future__ import annotations

import os
import sys
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
from common import CACHE, ROOT
from PIL import Image, ImageEnhance

SAMPLES = sorted((ROOT / "samples" / "twemoji").glob("*.png"))
LARGE_SIZE = (3264, 2448)


def _sample(i: int) -> Image.Image:
    return Image.open(SAMPLES[i % len(SAMPLES)]).convert("RGBA")


def _large(args) -> None:
    _photo(args, LARGE_SIZE)


MEDIUM_SIZES = ((1280, 960), (1600, 1200), (1920, 1080), (2048, 1536), (1536, 1152))


def _medium(args) -> None:
    _photo(args, MEDIUM_SIZES[args[0] % len(MEDIUM_SIZES)], scale=0.5)


def _photo(args, size: tuple[int, int], scale: float = 1.0) -> None:
    i, path = args
    rng = np.random.default_rng(i)
    w, h = size
    top, bottom = rng.integers(60, 230, 3), rng.integers(20, 200, 3)
    t = np.linspace(0, 1, h, dtype=np.float32)[:, None, None]
    base = (top * (1 - t) + bottom * t).repeat(w, axis=1)
    img = Image.fromarray(base.astype(np.uint8), "RGB")
    for _ in range(int(rng.integers(2, 6))):
        s = _sample(int(rng.integers(0, 10**6)))
        side = int(int(rng.integers(500, 1600)) * scale)
        s = s.resize((side, side), Image.BICUBIC)
        img.paste(s, (int(rng.integers(0, w - side)), int(rng.integers(0, h - side))), s)
    full = _noise(*LARGE_SIZE[::-1])
    if (w, h) == LARGE_SIZE:
        noise = np.roll(full, (int(rng.integers(0, h)), int(rng.integers(0, w))), axis=(0, 1))
    else:  # a window of the noise (rolling all 8 MP of it would cost more than the picture)
        y, x = int(rng.integers(0, full.shape[0] - h + 1)), int(rng.integers(0, full.shape[1] - w + 1))
        noise = full[y : y + h, x : x + w]
    arr = np.asarray(img, dtype=np.int16) + noise
    Image.fromarray(arr.clip(0, 255).astype(np.uint8)).save(path, "JPEG", quality=90)


_NOISE = None


def _noise(h: int, w: int) -> np.ndarray:
    """Sensor-like noise (sigma 12), drawn once per process and shifted per picture."""
    global _NOISE
    if _NOISE is None:
        _NOISE = np.random.default_rng(0).normal(0, 12, (h, w, 3)).astype(np.int16)
    return _NOISE


def _small(args) -> None:
    i, path = args
    rng = np.random.default_rng(10_000 + i)
    s = _sample(i)
    bg = Image.new("RGBA", s.size, tuple(int(c) for c in rng.integers(180, 256, 3)) + (255,))
    img = Image.alpha_composite(bg, s).convert("RGB").rotate(float(rng.uniform(-20, 20)), fillcolor="white")
    img = ImageEnhance.Color(img).enhance(float(rng.uniform(0.6, 1.4)))
    side = int(rng.integers(96, 257))
    img.resize((side, side), Image.BICUBIC).save(path, "PNG")


def _tiny(args) -> None:
    i, path = args
    s = _sample(i).convert("RGB").resize((64 + i % 33, 64 + i % 33))
    s.save(path, "PNG", compress_level=1)


KINDS = {
    "large": (_large, ".jpg", 1),
    "medium": (_medium, ".jpg", 1),
    "small": (_small, ".png", 1),
    "tiny": (_tiny, ".png", 1000),
}


def corpus(kind: str, n: int) -> Path:
    """The folder holding the first ``n`` files of corpus ``kind`` (made on first use)."""
    fn, ext, per_dir = KINDS[kind]
    root = CACHE / "corpora" / kind
    todo = []
    for i in range(n):
        sub = root / (f"{i // per_dir:04d}" if per_dir > 1 else "")
        p = sub / f"{kind}-{i:06d}{ext}"
        if not p.exists():
            todo.append((i, p))
    if todo:
        for _, p in todo:
            p.parent.mkdir(parents=True, exist_ok=True)
        print(f"making {len(todo)} {kind} images in {root} ...", file=sys.stderr, flush=True)
        with ProcessPoolExecutor(os.cpu_count() or 1) as pool:
            list(pool.map(fn, todo, chunksize=16))
    return root


def files(kind: str, n: int) -> list[Path]:
    root = corpus(kind, n)
    ext = KINDS[kind][1]
    return sorted(root.rglob(f"*{ext}"))[:n]


def subset(kind: str, n: int) -> Path:
    """A folder of symlinks to exactly the first ``n`` files (so a run indexes that many)."""
    src = files(kind, n)
    d = CACHE / "subsets" / f"{kind}-{n}"
    if not d.exists() or len(list(d.iterdir())) != n:
        d.mkdir(parents=True, exist_ok=True)
        for p in src:
            link = d / p.name
            if not link.exists():
                link.symlink_to(p)
    return d


if __name__ == "__main__":
    kind, n = sys.argv[1], int(sys.argv[2])
    print(corpus(kind, n))
