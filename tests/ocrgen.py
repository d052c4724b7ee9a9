"""Pictures with known words for the OCR tests, drawn with Pillow in a TrueType font."""

from __future__ import annotations

from pathlib import Path

from PIL import Image, ImageDraw, ImageFont

FONTS = Path("/usr/share/fonts/truetype/dejavu")


def font(size: int, bold: bool = False) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    """DejaVu Sans where the system has it, else Pillow's own scalable default font."""
    path = FONTS / ("DejaVuSans-Bold.ttf" if bold else "DejaVuSans.ttf")
    return ImageFont.truetype(str(path), size) if path.exists() else ImageFont.load_default(size=size)


def screenshot(lines: list[str], size: tuple[int, int] = (420, 150)) -> Image.Image:
    """A window-like picture: a title bar and dark text on white, one entry per line."""
    img = Image.new("RGB", size, "white")
    d = ImageDraw.Draw(img)
    d.rectangle([0, 0, size[0], 22], fill=(60, 70, 90))
    for n, text in enumerate(lines):
        d.text((16, 34 + 34 * n), text, fill=(20, 20, 20), font=font(22))
    return img


def sign(word: str, size: tuple[int, int] = (360, 240), at: tuple[int, int] = (40, 60)) -> Image.Image:
    """A green road sign with one word in white on a sky-and-grass scene."""
    w, h = size
    img = Image.new("RGB", size, (140, 190, 235))
    d = ImageDraw.Draw(img)
    d.rectangle([0, h * 2 // 3, w, h], fill=(70, 140, 60))
    f = font(34, bold=True)
    x0, y0, x1, y1 = d.textbbox(at, word, font=f)
    d.rectangle([x0 - 12, y0 - 10, x1 + 12, y1 + 10], fill=(20, 100, 40))
    d.text(at, word, fill="white", font=f)
    return img


def plain(size: tuple[int, int] = (320, 240)) -> Image.Image:
    """A picture without any text: a gradient sky, a sun and a hill."""
    w, h = size
    img = Image.new("RGB", size)
    d = ImageDraw.Draw(img)
    for y in range(h):
        t = y / h
        d.line([(0, y), (w, y)], fill=(int(90 + 120 * t), int(140 + 80 * t), 230))
    d.ellipse([w - 90, 20, w - 30, 80], fill=(250, 210, 60))
    d.pieslice([-w // 2, h // 2, w * 3 // 2, h * 2], 180, 360, fill=(60, 130, 70))
    return img


def label(text: str, size: int = 16, canvas: tuple[int, int] = (480, 360)) -> Image.Image:
    """A small name tag in a corner of :func:`plain`'s scene: black text in a white box with a thin border
    (the kind of small print whose detection boxes score ~0.45, below the first gate's 0.6)."""
    img = plain(canvas)
    d = ImageDraw.Draw(img)
    f = font(size)
    x0, y0, x1, y1 = d.textbbox((12, 12), text, font=f)
    d.rectangle([x0 - 4, y0 - 3, x1 + 4, y1 + 3], fill="white", outline="black")
    d.text((12, 12), text, fill=(0, 0, 0), font=f)
    return img
