"""Turn the bytes of one file into an RGB PIL image ready for a model, or a typed ImageError.

Handles: EXIF orientation, first frame of animations, alpha composed onto white, palette/16-bit/CMYK
modes, a pixel cap checked from the header before any pixel is decoded (decompression bombs), and
reduced-size decoding when the model needs far fewer pixels than the file has (``Image.draft`` for
JPEG, a box ``reduce`` for other formats).
"""

from __future__ import annotations

import io
import os
import stat
import time
import warnings
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageFile, ImageOps, UnidentifiedImageError

from .errors import ImageError
from .exif import PhotoMeta, read_exif

DEFAULT_MAX_PIXELS = 150_000_000  # 150 MP: medium-format photos pass, bombs do not
DEFAULT_MAX_FILE_BYTES = 1 << 30  # 1 GiB
IMAGE_EXTENSIONS = frozenset(
    {
        ".jpg",
        ".jpeg",
        ".jpe",
        ".jfif",
        ".png",
        ".webp",
        ".gif",
        ".bmp",
        ".dib",
        ".tif",
        ".tiff",
        ".heic",
        ".heif",
        ".hif",
        ".avif",
    }
)
# The format names Pillow gives (what the index records), and the file extensions people call them by.
FORMAT_NAMES: dict[str, tuple[str, ...]] = {
    "JPEG": ("jpg", "jpeg", "jpe", "jfif"),
    "PNG": ("png",),
    "WEBP": ("webp",),
    "GIF": ("gif",),
    "BMP": ("bmp", "dib"),
    "TIFF": ("tif", "tiff"),
    "HEIF": ("heic", "heif", "hif"),
    "AVIF": ("avif",),
    "MPO": ("mpo",),
}
# EXIF orientations that swap width and height.
_TRANSPOSED = {5, 6, 7, 8}

ImageFile.LOAD_TRUNCATED_IMAGES = False
Image.MAX_IMAGE_PIXELS = None  # we enforce our own cap from the header, with a clear message
_heif_registered = False


def register_formats() -> None:
    """Register HEIC/HEIF (and AVIF where Pillow lacks it) openers from pillow-heif, once."""
    global _heif_registered
    if _heif_registered:
        return
    _heif_registered = True
    try:
        import pillow_heif

        pillow_heif.register_heif_opener()
    except ImportError:  # pragma: no cover - pillow-heif is a dependency
        pass


@dataclass
class Decoded:
    image: Image.Image  # RGB, orientation applied, possibly reduced in size by draft()
    width: int  # displayed size of the original (after EXIF orientation)
    height: int
    format: str  # 'JPEG', 'PNG', ... as Pillow identified the content
    taken_at: float | None = None  # EXIF DateTimeOriginal (else DateTime) as a local-time epoch
    photo: PhotoMeta | None = None  # camera, lens and GPS from EXIF (None: not read, e.g. a query picture)


# EXIF tags: DateTimeOriginal lives in the Exif sub-IFD; DateTime (last change) in IFD0.
_EXIF_IFD, _DATETIME_ORIGINAL, _DATETIME = 0x8769, 0x9003, 0x0132


def _exif_date(img: Image.Image) -> float | None:
    """The capture time from EXIF, or None (no EXIF, no date, or a malformed one)."""
    try:
        exif = img.getexif()
        raw = exif.get_ifd(_EXIF_IFD).get(_DATETIME_ORIGINAL) or exif.get(_DATETIME)
        if not raw:
            return None
        if isinstance(raw, bytes):
            raw = raw.decode("ascii", "replace")
        t = time.strptime(str(raw).strip().rstrip("\x00")[:19], "%Y:%m:%d %H:%M:%S")
        if t.tm_year < 1826:  # before the first photograph: a placeholder like 0000:00:00
            return None
        return time.mktime(t)
    except Exception:  # corrupt EXIF must never fail a decode
        return None


def _orientation(img: Image.Image) -> int:
    try:
        return int(img.getexif().get(0x0112, 1) or 1)
    except Exception:  # corrupt EXIF: treat as upright
        return 1


def _to_rgb(img: Image.Image) -> Image.Image:
    mode = img.mode
    if mode in ("I;16", "I;16B", "I;16L", "I;16N", "I"):
        arr = np.asarray(img)
        top = 65535 if mode.startswith("I;16") else max(int(arr.max()), 1)
        arr = (arr.astype(np.float32) * (255.0 / max(top, 1))).clip(0, 255).astype(np.uint8)
        img = Image.fromarray(arr, "L")
    elif mode == "F":
        arr = np.asarray(img, dtype=np.float32)
        lo, hi = float(np.nanmin(arr)), float(np.nanmax(arr))
        arr = ((arr - lo) * (255.0 / (hi - lo or 1.0))).clip(0, 255).astype(np.uint8)
        img = Image.fromarray(arr, "L")
    if img.mode == "P":
        img = img.convert("RGBA" if "transparency" in img.info else "RGB")
    if img.mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        rgba = img.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        img = Image.alpha_composite(background, rgba)
    return img if img.mode == "RGB" else img.convert("RGB")


def decode_bytes(
    data: bytes,
    *,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    min_side: int | None = None,
    formats: tuple[str, ...] | None = None,
) -> Decoded:
    """Decode ``data``. ``min_side``: the model input size, lets JPEG decode at a reduced DCT scale.

    ``formats``: accept only these Pillow formats, identified from the content (not the file name).
    """
    register_formats()
    if not data:
        raise ImageError("empty file (0 bytes)", stage="read")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            img: Image.Image = Image.open(io.BytesIO(data), formats=formats)
    except UnidentifiedImageError:
        if formats:
            raise ImageError(
                "not a supported image: the content is none of " + ", ".join(formats), stage="decode"
            ) from None
        raise ImageError("not an image: the content is no format Pillow can read", stage="decode") from None
    except Exception as e:
        raise ImageError(f"cannot open image: {_one_line(e)}", stage="decode") from None
    fmt = img.format or "unknown"
    w, h = img.size
    if w <= 0 or h <= 0:
        raise ImageError(f"invalid image size {w}x{h}", stage="decode")
    if w * h > max_pixels:
        raise ImageError(
            f"too many pixels: {w}x{h} = {w * h:,} > cap {max_pixels:,} "
            f"(decompression bomb guard; raise it with --max-pixels)",
            stage="decode",
            kind="pixels",
            limit=max_pixels,
        )
    orientation = _orientation(img)
    taken_at = _exif_date(img)
    photo = read_exif(img)
    dw, dh = (h, w) if orientation in _TRANSPOSED else (w, h)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            if getattr(img, "n_frames", 1) > 1:
                img.seek(0)
            if min_side and fmt == "JPEG" and min(w, h) > 2 * min_side:
                img.draft("RGB", (min_side, min_side))
            img.load()
            if orientation != 1:
                try:
                    img = ImageOps.exif_transpose(img)
                except Exception:
                    pass  # corrupt EXIF block: keep the stored orientation
            rgb = _to_rgb(img)
            if min_side and fmt != "JPEG":
                # What draft() does for JPEG, for other formats: a cheap box reduction that keeps at
                # least twice the model's input size for the exact (antialiased) resize after it.
                factor = min(rgb.size) // (2 * min_side)
                if factor >= 2:
                    rgb = rgb.reduce(factor)
    except ImageError:
        raise
    except MemoryError:
        raise ImageError(f"out of memory decoding {w}x{h} image", stage="decode") from None
    except Exception as e:
        raise ImageError(f"cannot decode {fmt}: {_one_line(e)}", stage="decode") from None
    return Decoded(rgb, dw, dh, fmt, taken_at, photo)


def read_photo_meta(f) -> PhotoMeta:
    """Camera, lens and GPS from an open file's header alone, no pixels decoded (for rows indexed before
    pixseek kept them). Content that is no readable image gives an empty PhotoMeta, never an error."""
    register_formats()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with Image.open(f) as img:
                return read_exif(img, header_only=True)
    except Exception:  # not an image, a damaged header: no metadata
        return PhotoMeta()


def _one_line(e: BaseException) -> str:
    text = str(e).strip().splitlines()
    return text[0] if text else type(e).__name__


def open_image(source, *, max_pixels: int = DEFAULT_MAX_PIXELS, min_side: int | None = None) -> Decoded:
    """Decode a path, raw bytes, a file object or an already-open PIL image (used for queries)."""
    if isinstance(source, Image.Image):
        w, h = source.size
        if w * h > max_pixels:
            raise ImageError(f"too many pixels: {w}x{h} > cap {max_pixels:,}", kind="pixels", limit=max_pixels)
        return Decoded(_to_rgb(source), w, h, source.format or "PIL")
    if isinstance(source, (bytes, bytearray, memoryview)):
        return decode_bytes(bytes(source), max_pixels=max_pixels, min_side=min_side)
    if hasattr(source, "read"):
        return decode_bytes(source.read(DEFAULT_MAX_FILE_BYTES + 1), max_pixels=max_pixels, min_side=min_side)
    return decode_bytes(read_file(source), max_pixels=max_pixels, min_side=min_side)


def read_file(path: str | os.PathLike, size: int | None = None, *, missing: str = "") -> bytes:
    """The bytes of a regular file or an object at a URL, refused (ImageError) before reading when it is
    not a regular file (a FIFO, a device, a socket: reading those may never end) or larger than the cap.
    ``size``: the size a scan already knows, so an oversized file is never opened. ``missing``: the
    message for a file that is gone (an index run says it vanished). Every read goes through
    :func:`pixseek.sources.read_bytes`."""
    from . import sources

    gone = ImageError(missing or "cannot read: No such file or directory", stage="read", kind="io")
    too_big = ImageError(
        f"file larger than {DEFAULT_MAX_FILE_BYTES >> 20} MiB", stage="read", kind="size", limit=DEFAULT_MAX_FILE_BYTES
    )
    if (size or 0) > DEFAULT_MAX_FILE_BYTES:
        raise too_big
    where = os.fspath(path)
    try:
        if not sources.is_url(where):
            st = os.stat(where)
            if not stat.S_ISREG(st.st_mode):
                raise ImageError("not a regular file (a folder, device, FIFO or socket)", stage="read")
            if st.st_size > DEFAULT_MAX_FILE_BYTES:
                raise too_big
        data = sources.read_bytes(where, DEFAULT_MAX_FILE_BYTES + 1)
    except FileNotFoundError:
        raise gone from None
    except OSError as e:
        raise ImageError(
            f"cannot read: {e.strerror or _one_line(e)} (retried on every run)", stage="read", kind="io"
        ) from None
    if len(data) > DEFAULT_MAX_FILE_BYTES:  # it grew while being read
        raise too_big
    return data
