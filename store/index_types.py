"""Which FAISS index types a user may ask for (``--index-type``), and checking one before it is used.

User input never reaches a FAISS assertion: a type string is parsed against the grammar below first
(``HNSW0`` is refused here, not by an abort inside FAISS), then built, trained, filled and searched
on a small synthetic sample in a forked child process, so that whatever FAISS does with it (an
exception, an abort) happens there. Only a type that passes both is saved.

Grammar (what the README documents), optionally after ``IDMap,`` or ``IDMap2,``::

    Flat | HNSW<M>                                 M: 4..256 links per node
    IVF<lists>[_HNSW<M>],<codes>                   lists: 1..1048576
    codes: Flat | SQ4 | SQ6 | SQ8 | SQfp16 | PQ<m>[x<bits>[fs]]   m divides the vector size; bits 1..16,
                                                                   4 with fs (fast scan)
"""

from __future__ import annotations

import multiprocessing
import re

from pixseek.errors import VectorIndexError

from .ann import AUTO, normalise_factory

MAX_LISTS = 1 << 20
TRIAL_LISTS = 64  # the trial builds the same structure with at most this many lists (seconds, not hours)
TRIAL_SECONDS = 120
_HINT = "use auto, Flat, HNSW32, IVF4096,Flat, IVF4096,SQ8 or IVF4096,PQ32 (README: Speed and scale)"

_HNSW = re.compile(r"HNSW(\d+)")
_IVF = re.compile(r"IVF(\d+)(?:_HNSW(\d+))?")
_CODES = re.compile(r"Flat|SQ4|SQ6|SQ8|SQfp16|PQ(\d+)(?:x(\d+)(fs)?)?")


def _bad(kind: str, why: str) -> VectorIndexError:
    return VectorIndexError(f"invalid --index-type {kind!r}: {why}", hint=_HINT)


def _check_links(kind: str, m: str | None) -> None:
    if m is not None and not 4 <= int(m) <= 256:
        raise _bad(kind, f"HNSW takes 4 to 256 links per node, not {int(m)}")


def parse(kind: str, dim: int) -> str:
    """The normalised factory string for ``kind``, or VectorIndexError saying what is wrong. No FAISS."""
    text = kind.strip()
    body = re.sub(r"^IDMap2?,", "", text)
    parts = body.split(",")
    if len(parts) == 1 and parts[0].lower() == "flat":
        return normalise_factory("Flat")
    if len(parts) == 1 and (m := _HNSW.fullmatch(parts[0])):
        _check_links(text, m.group(1))
        return normalise_factory(text)
    if len(parts) != 2 or not (ivf := _IVF.fullmatch(parts[0])):
        raise _bad(text, "not an index type pixseek knows")
    lists = int(ivf.group(1))
    if not 1 <= lists <= MAX_LISTS:
        raise _bad(text, f"IVF takes 1 to {MAX_LISTS:,} inverted lists, not {lists:,}")
    _check_links(text, ivf.group(2))
    codes = _CODES.fullmatch(parts[1])
    if codes is None:
        raise _bad(text, f"{parts[1]!r} is no code type (Flat, SQ4, SQ6, SQ8, SQfp16, PQ<m>[x<bits>[fs]])")
    if codes.group(1) is not None:
        subvectors, bits, fast = int(codes.group(1)), int(codes.group(2) or 8), bool(codes.group(3))
        if subvectors < 1 or dim % subvectors:
            raise _bad(text, f"PQ{subvectors}: the number of sub-vectors must divide the vector size {dim}")
        if not 1 <= bits <= 16 or (fast and bits != 4):
            raise _bad(text, "PQ codes take 1 to 16 bits (4 with fs)")
    return normalise_factory(text)


def _trial(factory: str, dim: int) -> None:
    """In the child: build, train, fill and search ``factory`` (with few lists) on random unit vectors."""
    import faiss
    import numpy as np

    small = re.sub(r"IVF(\d+)", lambda m: f"IVF{min(int(m.group(1)), TRIAL_LISTS)}", factory)
    rng = np.random.default_rng(0)
    x = rng.standard_normal((max(TRIAL_LISTS * 40, 10_000), dim)).astype(np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    index = faiss.index_factory(dim, small, faiss.METRIC_INNER_PRODUCT)
    index.train(x)
    index.add_with_ids(x[:2000], np.arange(2000, dtype=np.int64))
    index.search(x[:5], 10)


def _child(factory: str, dim: int, out: object) -> None:
    try:
        _trial(factory, dim)
        out.put("")  # type: ignore[attr-defined]
    except Exception as e:
        out.put(str(e).strip().splitlines()[0][:160] if str(e).strip() else type(e).__name__)  # type: ignore[attr-defined]


def check(kind: str, dim: int | None) -> str:
    """``auto``, or ``kind`` as typed once it parses and FAISS builds, trains and searches it in a
    child process; else one-line VectorIndexError. ``dim`` unknown (no model yet): 256 for the trial."""
    text = kind.strip()
    if text.lower() == AUTO:
        return AUTO
    dim = dim or 256
    factory = parse(text, dim)
    ctx = multiprocessing.get_context("fork")
    out = ctx.Queue()
    child = ctx.Process(target=_child, args=(factory, dim, out), daemon=True)
    child.start()
    child.join(TRIAL_SECONDS)
    if child.is_alive():
        child.kill()
        child.join()
        raise _bad(text, f"FAISS did not build it within {TRIAL_SECONDS} s")
    if child.exitcode != 0:
        raise _bad(text, f"FAISS stopped on it (exit {child.exitcode})")
    error = out.get(timeout=5)
    out.close()
    if error:
        raise _bad(text, error)
    return text
