"""What a photo's EXIF says about how and where it was taken: camera make and model, lens, GPS position.

Read from an open PIL image (:func:`read_exif`) in the same decode pass that reads the capture date
(:mod:`pixseek.decode`), or from a file's header alone for rows indexed before these were kept
(:func:`pixseek.decode.read_photo_meta`). EXIF is written by thousands of devices and apps, many of
them wrong, so every field is checked on its own and a bad one is dropped, never raised: a GPS block
with a zero denominator, an out-of-range or NaN coordinate, an unknown hemisphere or a "void" fix
gives no position, and the camera fields still count. ``0, 0`` (a receiver without a fix) is no
position either.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any

from PIL import Image

# Tags: Make and Model live in IFD0; LensMake and LensModel in the Exif sub-IFD; the rest in the GPS IFD.
EXIF_IFD, GPS_IFD = 0x8769, 0x8825
MAKE, MODEL, LENS_MAKE, LENS_MODEL = 0x010F, 0x0110, 0xA433, 0xA434
GPS_STATUS = 9
LAT_REF, LAT, LON_REF, LON, ALT_REF, ALT = 1, 2, 3, 4, 5, 6

MAX_TEXT = 120  # longer make/model/lens strings are cut (some writers pad or fill them with garbage)
ALT_RANGE = (-12_000.0, 100_000.0)  # metres: below the deepest trench or above a balloon is no altitude
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")
# Words in a make that a camera's display name leaves out ("NIKON CORPORATION" + "NIKON D750" -> "NIKON D750").
_COMPANY_WORDS = {"corporation", "corp", "corp.", "co.,ltd", "co.,ltd.", "company", "imaging", "optical", "inc", "inc."}


@dataclass(frozen=True)
class PhotoMeta:
    """What EXIF says about a photo; every field None when absent or unusable."""

    make: str | None = None
    model: str | None = None
    lens: str | None = None
    lat: float | None = None  # degrees, south negative
    lon: float | None = None  # degrees, west negative
    alt: float | None = None  # metres above sea level (negative below), only with a position

    @property
    def camera(self) -> str | None:
        return camera_name(self.make, self.model)

    @property
    def has_gps(self) -> bool:
        return self.lat is not None and self.lon is not None


def camera_name(make: str | None, model: str | None) -> str | None:
    """How people name a camera: the model alone when it already says the make ("Canon EOS R5",
    "NIKON D750" for make "NIKON CORPORATION"), else "make model" ("Apple iPhone 12 Pro")."""
    if not model:
        return make or None
    if not make:
        return model
    first = model.split()[0].casefold()
    words = {w.casefold() for w in make.split()} - _COMPANY_WORDS
    if first in words or model.casefold().startswith(make.casefold()):
        return model
    return f"{make} {model}"


def clean_text(value: Any) -> str | None:
    """An EXIF ASCII field as one tidy line, or None: bytes decoded, cut at the first NUL, control
    characters and runs of spaces removed; a value with no letter or digit ("----") is no value."""
    if value is None:
        return None
    if isinstance(value, bytes):
        value = value.decode("utf-8", "replace")
    if not isinstance(value, str):
        return None
    text = " ".join(_CONTROL.sub(" ", value.split("\x00", 1)[0]).split())[:MAX_TEXT].strip()
    return text if any(c.isalnum() for c in text) else None


def _number(value: Any) -> float | None:
    """A finite float from an EXIF rational or number, else None (a zero denominator reads as NaN)."""
    try:
        x = float(value)
    except (TypeError, ValueError, ZeroDivisionError, OverflowError):
        return None
    return x if math.isfinite(x) else None


def _degrees(value: Any, limit: float) -> float | None:
    """Degrees from EXIF's (degrees, minutes, seconds) rationals (or fewer parts), checked."""
    parts = value if isinstance(value, (tuple, list)) else (value,)
    if not 1 <= len(parts) <= 3:
        return None
    nums = [_number(p) for p in parts]
    if any(n is None or n < 0 for n in nums):
        return None
    d, m, s = (*nums, 0.0, 0.0)[:3]
    assert d is not None and m is not None and s is not None  # checked above
    if d > limit or m >= 60 or s >= 60:
        return None
    total = d + m / 60 + s / 3600
    return total if total <= limit else None


def _ref(value: Any) -> str | None:
    text = clean_text(value)
    return text[0].upper() if text else None


def _coordinate(gps: Any, ref_tag: int, tag: int, positive: str, negative: str, limit: float) -> float | None:
    if tag not in gps:
        return None
    deg = _degrees(gps[tag], limit)
    ref = _ref(gps.get(ref_tag)) or positive  # a missing hemisphere: north / east, as most readers do
    if deg is None or ref not in (positive, negative):
        return None
    return round(-deg if ref == negative else deg, 7)


def _altitude(gps: Any) -> float | None:
    alt = _number(gps.get(ALT)) if ALT in gps else None
    if alt is None or alt < 0:
        return None
    ref = gps.get(ALT_REF, 0)
    if isinstance(ref, bytes):
        ref = ref[0] if ref else 0
    if ref not in (0, 1):
        return None
    alt = -alt if ref == 1 else alt
    return round(alt, 2) if ALT_RANGE[0] <= alt <= ALT_RANGE[1] else None


def read_gps(gps: Any) -> tuple[float | None, float | None, float | None]:
    """(lat, lon, alt) from a GPS IFD mapping; all None unless both coordinates are usable."""
    try:
        if _ref(gps.get(GPS_STATUS)) == "V":  # "measurement void": the receiver says it has no fix
            return None, None, None
        lat = _coordinate(gps, LAT_REF, LAT, "N", "S", 90.0)
        lon = _coordinate(gps, LON_REF, LON, "E", "W", 180.0)
        if lat is None or lon is None or (lat == 0 and lon == 0):
            return None, None, None
        return lat, lon, _altitude(gps)
    except Exception:  # a GPS block this reader has not foreseen: no position, never a failure
        return None, None, None


def _lens(exif_ifd: Any) -> str | None:
    model = clean_text(exif_ifd.get(LENS_MODEL))
    make = clean_text(exif_ifd.get(LENS_MAKE))
    if not model:
        return None
    if make and not model.casefold().startswith(make.casefold()):
        return f"{make} {model}"[:MAX_TEXT]
    return model


def read_exif(img: Image.Image, *, header_only: bool = False) -> PhotoMeta:
    """Camera, lens and GPS position from ``img``'s EXIF (an empty PhotoMeta when it has none).

    ``header_only``: never decode pixels to find EXIF (Pillow loads a PNG whole to look for an eXIf chunk
    after its pixel data; a PNG whose EXIF is not in its header then reads as having none)."""
    try:
        if header_only and img.format == "PNG" and "exif" not in img.info:
            return PhotoMeta()
        exif = img.getexif()
    except Exception:  # corrupt EXIF must never fail a decode
        return PhotoMeta()
    fields: dict[str, Any] = {}
    for name, read in (
        ("make", lambda: clean_text(exif.get(MAKE))),
        ("model", lambda: clean_text(exif.get(MODEL))),
        ("lens", lambda: _lens(exif.get_ifd(EXIF_IFD))),
        ("gps", lambda: read_gps(exif.get_ifd(GPS_IFD))),
    ):
        try:
            fields[name] = read()
        except Exception:  # one broken field (a bad sub-IFD offset) leaves the others
            fields[name] = None
    lat, lon, alt = fields.pop("gps") or (None, None, None)
    return PhotoMeta(**fields, lat=lat, lon=lon, alt=alt)
