"""Photos with real EXIF written by Pillow: camera make and model, lens, capture date, GPS (or garbage GPS)."""

from __future__ import annotations

import io
from pathlib import Path

from imagegen import draw
from PIL import Image, ImageDraw, ImageFont
from PIL.TiffImagePlugin import IFDRational

FONT = Path("/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf")


def dms(x: float) -> tuple[IFDRational, IFDRational, IFDRational]:
    """Degrees as EXIF writes them: (degrees, minutes, seconds) rationals of the absolute value."""
    x = abs(x)
    d = int(x)
    m = int((x - d) * 60)
    s = round((x - d - m / 60) * 3600 * 1000)
    return IFDRational(d, 1), IFDRational(m, 1), IFDRational(s, 1000)


def exif_block(
    make: str | None = None,
    model: str | None = None,
    lens: str | None = None,
    lens_make: str | None = None,
    gps: tuple[float, float] | tuple[float, float, float] | None = None,
    date: str | None = None,
    raw_gps: dict | None = None,
) -> Image.Exif:
    exif = Image.Exif()
    if make is not None:
        exif[0x010F] = make
    if model is not None:
        exif[0x0110] = model
    sub = exif.get_ifd(0x8769)
    if date:
        sub[0x9003] = date
    if lens:
        sub[0xA434] = lens
    if lens_make:
        sub[0xA433] = lens_make
    if gps is not None:
        g = exif.get_ifd(0x8825)
        lat, lon = gps[0], gps[1]
        g[1], g[2] = ("N" if lat >= 0 else "S"), dms(lat)
        g[3], g[4] = ("E" if lon >= 0 else "W"), dms(lon)
        if len(gps) == 3:
            alt = gps[2]
            g[5], g[6] = (b"\x01" if alt < 0 else b"\x00"), IFDRational(round(abs(alt) * 10), 10)
    if raw_gps is not None:
        g = exif.get_ifd(0x8825)
        g.update(raw_gps)
    return exif


def photo(seed: int, label: str = "", size: tuple[int, int] = (160, 120)) -> Image.Image:
    """A drawn picture with a caption written on it in a real font."""
    img = draw(seed, size)
    if label:
        font = ImageFont.truetype(str(FONT), 18) if FONT.exists() else ImageFont.load_default(size=18)
        ImageDraw.Draw(img).text((6, size[1] - 26), label, fill=(255, 255, 255), font=font)
    return img


def write_photo(path: Path, seed: int, fmt: str = "JPEG", **exif) -> Path:
    """``path`` with a drawn picture and the EXIF ``exif_block(**exif)`` makes."""
    path.parent.mkdir(parents=True, exist_ok=True)
    block = exif_block(**exif).tobytes()
    buf = io.BytesIO()
    if fmt == "HEIF":
        import pillow_heif

        pillow_heif.register_heif_opener()
    photo(seed, path.stem).save(buf, fmt, exif=block, **({"quality": 90} if fmt == "JPEG" else {}))
    path.write_bytes(buf.getvalue())
    return path
