"""Perceptual hashes: a 64-bit fingerprint of how a picture looks, to tell a re-encoded or resized copy
from a merely similar picture.

The hash is ImageHash's pHash (the low frequencies of a 32 x 32 grey DCT, each bit "above the median"),
kept as 16 hex digits. Copies that were re-encoded or resized differ in 0 to 2 bits of 64; crops in 4 to
40; different photos in 20 or more (measured: bench/dupes.py). The index computes it from the picture it
decodes for the model (EXIF orientation applied), so it costs no extra read or decode.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import numpy as np

HASH_BITS = 64
HEX_DIGITS = HASH_BITS // 4
NO_HASH = np.uint64(0)  # the stand-in where a picture has no hash yet (see ``valid``)
_POPCOUNT = np.array([bin(i).count("1") for i in range(256)], dtype=np.uint8)


def perceptual_hash(image) -> str:
    """The pHash of a PIL image as 16 lower-case hex digits: ``str(imagehash.phash(image))``, bit for bit.

    ImageHash takes the DCT from ``scipy.fftpack``, whose import costs 0.3 s of CPU (SciPy 1.17 builds
    its array-API wrappers and parses docstrings at import), a tenth of a one-image index run. The DCT
    itself is SciPy's compiled pocketfft, so it is called here directly with the arguments
    ``scipy.fftpack.dct(x, axis=a)`` passes it (float64 input, type 2, no normalisation, one thread):
    the same code on the same numbers. Where SciPy's layout differs, ImageHash's own phash runs
    (``tests/test_dupes.py`` checks both agree)."""
    import imagehash

    dct = _pocketfft_dct()
    if dct is None:
        return str(imagehash.phash(image))
    pixels = np.asarray(image.convert("L").resize((32, 32), imagehash.ANTIALIAS), dtype=np.float64)
    coeffs = dct(dct(pixels, 2, (0,), 0, pixels, 1, None), 2, (1,), 0, None, 1, None)
    low = coeffs[:HASH_SIZE, :HASH_SIZE]
    return str(imagehash.ImageHash(low > np.median(low)))


HASH_SIZE = 8
_DCT: list = []  # [pypocketfft.dct or None], once found


def _pocketfft_dct():
    """SciPy's compiled ``pypocketfft.dct``, loaded from its file without running ``scipy.fft``'s package
    import (None: not found where SciPy keeps it)."""
    if not _DCT:
        _DCT.append(_load_pocketfft())
    return _DCT[0]


def _load_pocketfft():
    import importlib.machinery
    import importlib.util
    import sys

    name = "scipy.fft._pocketfft.pypocketfft"
    if name in sys.modules:
        return getattr(sys.modules[name], "dct", None)
    try:
        scipy = importlib.util.find_spec("scipy")
        if scipy is None or not scipy.submodule_search_locations:
            return None
        folder = Path(list(scipy.submodule_search_locations)[0]) / "fft" / "_pocketfft"
        for suffix in importlib.machinery.EXTENSION_SUFFIXES:
            path = folder / f"pypocketfft{suffix}"
            spec = importlib.util.spec_from_loader(name, importlib.machinery.ExtensionFileLoader(name, str(path)))
            if path.is_file() and spec is not None and spec.loader is not None:
                module = importlib.util.module_from_spec(spec)
                spec.loader.exec_module(module)
                return getattr(module, "dct", None)
    except Exception:  # another SciPy layout: ImageHash's phash, with its import
        return None
    return None


def warm() -> None:
    """Load ImageHash and the DCT now: done once in a parent process, forked decode workers inherit them
    instead of each paying the load."""
    import imagehash  # noqa: F401

    if _pocketfft_dct() is None:
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
