"""Query pictures from the browser: size cap, type sniffed from the content, the indexer's pixel cap.

An upload is decoded in memory and only ever used as a query: it is never written to disk and never
added to the index.
"""

from __future__ import annotations

from pixseek.decode import DEFAULT_MAX_PIXELS, Decoded, decode_bytes
from pixseek.errors import ImageError, QueryImageError, UploadTooLargeError

# What a query picture may be, as Pillow names the format it finds in the bytes.
UPLOAD_FORMATS = ("JPEG", "PNG", "WEBP", "GIF", "BMP", "TIFF", "HEIF", "AVIF")  # JPEG covers MPO
DEFAULT_MAX_UPLOAD_BYTES = 20 << 20


def read_upload(
    data: bytes,
    name: str = "upload",
    *,
    max_bytes: int = DEFAULT_MAX_UPLOAD_BYTES,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    min_side: int | None = None,
) -> Decoded:
    """Decode an uploaded query picture or raise QueryImageError with a one-line reason
    (UploadTooLargeError when it is over the byte or the pixel cap). ``min_side``: the model's input
    side, to decode a large picture at a reduced scale (it is only ever a query)."""
    if len(data) > max_bytes:
        raise UploadTooLargeError(f"{name} is {len(data) / 2**20:.1f} MiB; the limit is {max_bytes / 2**20:.0f} MiB")
    try:
        return decode_bytes(data, max_pixels=max_pixels, formats=UPLOAD_FORMATS, min_side=min_side)
    except ImageError as e:
        error = UploadTooLargeError if e.kind in ("pixels", "size") else QueryImageError
        raise error(f"cannot use {name}: {e.message}") from None
