"""Perceptual hashes: a 64-bit fingerprint of how a picture looks, to tell a re-encoded or resized copy
from a merely similar picture.

The hash is ImageHash's pHash (the low frequencies of a 32 x 32 grey DCT, each bit "above the median"),
kept as 16 hex digits. Copies that were re-encoded or resized differ in 0 to 2 bits of 64; crops in 4 to
40; different photos in 20 or more (measured: bench/dupes.py). The index computes it from the picture it
decodes for the model (EXIF orientation applied), so it costs no extra read or decode.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

HASH_BITS = 64
HEX_DIGITS = HASH_BITS // 4
NO_HASH = np.uint64(0)  # the stand-in where a picture has no hash yet (see ``valid``)
_POPCOUNT = np.array([bin(i).count("1") for i in range(256)], dtype=np.uint8)


def perceptual_hash(image) -> str:
    """The pHash of a PIL image as 16 lower-case hex digits (ImageHash, imported on first use)."""
    import imagehash

    return str(imagehash.phash(image))


def warm() -> None:
    """Import ImageHash (and SciPy's DCT) now: done once in a parent process, forked decode workers
    inherit it instead of each paying the import."""
    import imagehash  # noqa: F401
    import scipy.fftpack  # noqa: F401


def hamming(a: str, b: str) -> int:
    """Bits that differ between two hex hashes."""
    return (int(a, 16) ^ int(b, 16)).bit_count()


def to_ints(hashes: Iterable[str | None]) -> tuple[np.ndarray, np.ndarray]:
    """(uint64 hashes, bool: hash known) for hex hashes; None or a malformed value is unknown."""
    values, known = [], []
    for h in hashes:
        try:
            ok = h is not None and len(h) == HEX_DIGITS
            values.append(int(h, 16) if ok else 0)  # type: ignore[arg-type]
        except ValueError:
            ok = False
            values.append(0)
        known.append(ok)
    return np.asarray(values, dtype=np.uint64).reshape(-1), np.asarray(known, dtype=bool).reshape(-1)


def hamming_many(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Bits that differ between uint64 hashes ``a`` and ``b`` (same shape, or broadcastable)."""
    x = np.bitwise_xor(np.asarray(a, dtype=np.uint64), np.asarray(b, dtype=np.uint64))
    flat = np.ascontiguousarray(x).reshape(-1)
    return _POPCOUNT[flat.view(np.uint8)].reshape(-1, 8).sum(axis=1, dtype=np.int64).reshape(x.shape)
