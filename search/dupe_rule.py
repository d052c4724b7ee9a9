"""When two pictures are near-duplicates, per model: the score thresholds ``pixseek dupes`` and "hide
near-duplicates" use.

A cosine score means different things in different models (two unrelated pictures score about 0.16 on
average with ``pixseek-photo``, about 0.5 with open_clip's ViT-B-32), so the thresholds are read in a
model's own units: as a fraction of the *background distance*, 1 minus the median score of two random
pictures. Two links come out of it (:mod:`pixseek.search.dupes`):

* **near-duplicate** - score ``>= similar`` = 1 - ``SIMILAR_FRACTION`` x background distance, whatever
  the hashes say (crops, edits, bursts, and re-encodes too);
* **same picture** - perceptual hashes within ``same_bits`` bits *and* score ``>= same_floor`` =
  1 - ``SAME_FRACTION`` x background distance: the hash recognises a re-encode or a resize that moved the
  vector a long way (small clip art does), the floor keeps two different flat pictures whose hashes
  collide apart.

The fractions and bits were measured on resized, re-encoded and cropped copies of the sample photos,
Tux Paint's photo stamps and Openclipart drawings against every pair of different pictures
(``bench/dupes.py``; figures in bench/RESULTS.md). The background of a bundled model was measured on the
same pictures (``MODEL_BACKGROUND``); for another model it is read from the index itself (a seeded sample
of up to ``SAMPLE`` pictures of distinct content) when it holds at least ``MIN_SAMPLE``, else taken as
``DEFAULT_BACKGROUND`` (what CLIP models show).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from pixseek.errors import QueryError
from pixseek.store import Store

SAME_BITS = 6  # of 64: re-encodes and resizes differ by 0-2, crops by 4-40, different pictures by 20+
SIMILAR_FRACTION = 0.12  # of the background distance: a near-duplicate, whatever the hashes
SAME_FRACTION = 0.45  # ... within which matching hashes make two pictures the same picture
# Median score of two different pictures, measured on 613 originals (the sample photos, the 407 Tux Paint
# stamps, 200 Openclipart drawings): 187,578 pairs.
MODEL_BACKGROUND = {"pixseek-photo": 0.1766}
DEFAULT_BACKGROUND = 0.5
SAMPLE = 2000
MIN_SAMPLE = 200


@dataclass(frozen=True)
class DupeRule:
    similar: float  # score from which two pictures are near-duplicates
    same_floor: float  # score from which two pictures with matching hashes are the same picture
    same_bits: int  # perceptual-hash bits (of 64) within which hashes match
    source: str  # where the thresholds come from, for people

    def describe(self) -> str:
        return (
            f"near-duplicates score {self.similar:.3f} or more; the same picture: hashes within "
            f"{self.same_bits} bits and score {self.same_floor:.3f} or more; {self.source}"
        )

    def to_dict(self) -> dict:
        return {
            "similar": self.similar,
            "same_floor": self.same_floor,
            "same_bits": self.same_bits,
            "source": self.source,
        }


def model_name(model_id: str | None) -> str:
    """``pixseek-photo#1a2b...`` -> ``pixseek-photo``."""
    return (model_id or "").split("#", 1)[0]


def background(store: Store, *, sample: int = SAMPLE, seed: int = 0) -> tuple[float, str]:
    """(median score of two random pictures of distinct content, where it comes from) for the index's
    model."""
    name = model_name(store.model_id)
    if name in MODEL_BACKGROUND:
        return MODEL_BACKGROUND[name], f"calibrated for {name}"
    ids, contents, _ = store.dupe_basis()
    _, first = np.unique(np.asarray(contents, dtype=object), return_index=True)
    ids = np.sort(ids[first])
    if len(ids) < MIN_SAMPLE:
        return DEFAULT_BACKGROUND, f"a typical CLIP background ({name or 'unknown model'}, {len(ids)} pictures)"
    if len(ids) > sample:
        ids = np.sort(np.random.default_rng(seed).choice(ids, sample, replace=False))
    _, vecs = store.vectors_for(ids)
    scores = vecs @ vecs.T
    median = float(np.median(scores[np.triu_indices(len(vecs), 1)]))
    return round(median, 4), f"from this index's background ({name}, median pair score {median:.3f})"


def dupe_rule(store: Store, *, threshold: float | None = None, same_bits: int | None = None) -> DupeRule:
    """The rule for the index in ``store``; ``threshold`` (the near-duplicate score) and ``same_bits``
    override the calibrated values (the same-picture floor stays at most the threshold)."""
    if same_bits is not None and not 0 <= int(same_bits) <= 64:
        raise QueryError(f"hash bits {same_bits} must be between 0 and 64")
    if threshold is not None and not -1.0 <= float(threshold) <= 1.0:
        raise QueryError(f"threshold {threshold} is not a score between -1 and 1")
    median, source = background(store)
    distance = 1.0 - median
    similar = round(1.0 - SIMILAR_FRACTION * distance, 4)
    floor = round(1.0 - SAME_FRACTION * distance, 4)
    if threshold is not None:
        similar, floor, source = float(threshold), min(floor, float(threshold)), "threshold given"
    bits = SAME_BITS if same_bits is None else int(same_bits)
    return DupeRule(similar, floor, bits, source)
