"""Draw a small sample corpus (coloured shapes, named by what they show) for the demo command.

Usage: python scripts/make_samples.py OUT_DIR [N]
"""

from __future__ import annotations

import random
import sys
from pathlib import Path

from PIL import Image, ImageDraw

COLOURS = {
    "red": (220, 30, 30),
    "green": (30, 170, 60),
    "blue": (30, 70, 220),
    "yellow": (240, 210, 30),
    "purple": (140, 40, 170),
    "orange": (245, 140, 20),
    "black": (20, 20, 20),
    "white": (250, 250, 250),
}
SHAPES = ["circle", "square", "triangle", "star", "stripes"]


def draw(shape: str, colour, bg, rng: random.Random, size=(256, 192)) -> Image.Image:
    w, h = size
    img = Image.new("RGB", size, bg)
    d = ImageDraw.Draw(img)
    cx, cy, r = w // 2 + rng.randint(-30, 30), h // 2 + rng.randint(-20, 20), rng.randint(40, 80)
    if shape == "circle":
        d.ellipse([cx - r, cy - r, cx + r, cy + r], fill=colour)
    elif shape == "square":
        d.rectangle([cx - r, cy - r, cx + r, cy + r], fill=colour)
    elif shape == "triangle":
        d.polygon([(cx, cy - r), (cx - r, cy + r), (cx + r, cy + r)], fill=colour)
    elif shape == "star":
        import math

        pts = [
            (
                cx + (r if i % 2 == 0 else r // 2.5) * math.cos(math.pi * i / 5 - math.pi / 2),
                cy + (r if i % 2 == 0 else r // 2.5) * math.sin(math.pi * i / 5 - math.pi / 2),
            )
            for i in range(10)
        ]
        d.polygon(pts, fill=colour)
    else:
        for x in range(0, w, 24):
            d.rectangle([x, 0, x + 11, h], fill=colour)
    return img


def main(out: str, n: int = 300) -> None:
    rng = random.Random(0)
    root = Path(out)
    names = list(COLOURS)
    for i in range(n):
        shape = SHAPES[i % len(SHAPES)]
        colour = names[(i // len(SHAPES)) % len(names)]
        bg = names[(i * 3 + 1) % len(names)]
        if bg == colour:
            bg = "white" if colour != "white" else "black"
        img = draw(shape, COLOURS[colour], COLOURS[bg], rng)
        ext = [".jpg", ".png", ".webp"][i % 3]
        path = root / shape / f"{colour}-{shape}-on-{bg}-{i:03d}{ext}"
        path.parent.mkdir(parents=True, exist_ok=True)
        img.save(path, quality=90) if ext == ".jpg" else img.save(path)


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]) if len(sys.argv) > 2 else 300)
