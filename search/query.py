"""Query terms: texts, images and negative texts with weights, combined into one query vector.

A term's weight may be written as a ``::W`` suffix (``"at night::0.5"``, the convention of prompt
weighting): positive terms pull, ``--not`` terms push away. The combined vector is the weighted sum
of the L2-normalised term embeddings, normalised again, so a score stays a cosine similarity.
"""

from __future__ import annotations

import math
import os
import re
from dataclasses import dataclass
from typing import Any

import numpy as np

from pixseek.errors import QueryError

_WEIGHT = re.compile(r"^(?P<value>.*?)::(?P<weight>[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?)$", re.S)


@dataclass(frozen=True)
class Term:
    kind: str  # 'text' | 'image' | 'vector'
    value: Any  # str for text; path / bytes / PIL image for image; np.ndarray for vector
    weight: float = 1.0


def split_weight(raw: str, *, is_path: bool = False) -> tuple[str, float]:
    """``"dog::0.5"`` -> ("dog", 0.5). A path that exists as written is never split."""
    if is_path and os.path.exists(raw):
        return raw, 1.0
    m = _WEIGHT.match(raw)
    if not m:
        return raw, 1.0
    return m.group("value"), float(m.group("weight"))


def build_terms(texts=(), images=(), negatives=(), *, allow_empty: bool = False) -> list[Term]:
    """Terms from CLI-style strings (weights as ``::W`` suffixes). An image is a path (``::W`` allowed),
    bytes, a file object or a PIL image (weight 1), or a ``(picture, weight)`` pair. Raises QueryError
    when empty (``allow_empty``: the caller adds a term of its own, such as a stored vector)."""
    terms: list[Term] = []
    for raw in texts:
        value, w = split_weight(str(raw))
        if value.strip():
            terms.append(Term("text", value.strip(), w))
    for raw in images:
        if isinstance(raw, str):
            value, w = split_weight(raw, is_path=True)
            terms.append(Term("image", value, w))
        elif isinstance(raw, tuple) and len(raw) == 2:  # (picture, weight): an upload with its weight
            terms.append(Term("image", raw[0], float(raw[1])))
        else:
            terms.append(Term("image", raw, 1.0))
    for raw in negatives:
        value, w = split_weight(str(raw))
        if value.strip():
            terms.append(Term("text", value.strip(), -abs(w)))
    if not allow_empty:
        check_terms(terms)
    return terms


def check_terms(terms: list[Term]) -> None:
    if not terms:
        raise QueryError("empty query: give a text, --image PATH, or both")
    if not any(t.weight > 0 for t in terms):
        raise QueryError("a query needs at least one positive term (--not alone has nothing to rank by)")
    for t in terms:
        if t.kind == "text" and not str(t.value).strip():
            raise QueryError("empty query text")
        if not math.isfinite(t.weight):
            raise QueryError(f"weight {t.weight} is not a finite number")


def combine(vectors: list[np.ndarray], weights: list[float]) -> np.ndarray:
    """Weighted sum of unit vectors, renormalised. Raises QueryError if the terms cancel out."""
    q = np.zeros_like(vectors[0], dtype=np.float32)
    for v, w in zip(vectors, weights):
        n = float(np.linalg.norm(v))
        q += np.float32(w) * (v / n if n > 0 else v)
    norm = float(np.linalg.norm(q))
    if norm < 1e-6:
        raise QueryError("the query terms cancel each other out; change their weights")
    return (q / norm).astype(np.float32)
