"""Which tags a picture gets: one rule for every model, its numbers calibrated per model.

For picture i and tag t with cosine score ``s[i, t]`` (the picture's vector against the tag's
prompt-ensemble vector):

1. **centre each tag** on its background: ``c = s - median_t``, the tag's median score over
   background pictures. Some prompts score high against everything ("a photo.", "a camera"); this
   takes that bias away;
2. **compare with the picture's other tags**: ``strength = (c - mean_i(c)) / std_i(c)``, in standard
   deviations of the picture's own centred scores over the whole vocabulary. It does not depend on a
   model's score scale (``pixseek-photo`` scores text √0.3 lower than its image half, ``pixseek-emoji``
   spreads wide), nor on what else the index holds;
3. **keep** the tags with ``strength >= threshold``, strongest first, at most ``max_per_image``.

The numbers come from one of two places:

* **calibrated** (``tag_calibration.json``, package data; ``bench/tags.py`` writes it): for a bundled
  model, keyed by its exact model id and the vocabulary's digest. The background is the model's scores
  over held-out calibration pictures; the threshold maximises F1 of tags against their captions.
  (Switching off, per model, the tags that were mostly wrong on the calibration pictures was tried and
  dropped: in 2-fold cross-validation within the calibration split it moved F1 by under 0.003.)
* **background of the index** (any other model, e.g. an open_clip one): the medians over a seeded
  sample of the index's own pictures (``BACKGROUND_SAMPLE``; medians resist a folder where half the
  pictures show one thing) and the fallback threshold ``FALLBACK_THRESHOLD``.
"""

from __future__ import annotations

import functools
import hashlib
import json
from dataclasses import dataclass, field
from importlib import resources

import numpy as np

from pixseek.errors import VocabularyError

from .vocabulary import Vocabulary

MAX_PER_IMAGE = 5  # a card shows a few tags; more are rarely right (bench/tags.py)
FALLBACK_THRESHOLD = 3.5  # strength for models without a calibration (see README: Tags)
BACKGROUND_SAMPLE = 2000  # index pictures whose scores give an uncalibrated model's tag medians
CALIBRATION_FILE = "tag_calibration.json"


@dataclass(frozen=True)
class TagRule:
    background: np.ndarray = field(repr=False)  # float32[tags]: each tag's median score over the background
    threshold: float
    max_per_image: int = MAX_PER_IMAGE
    source: str = ""  # where the numbers come from, for people

    @functools.cached_property
    def digest(self) -> str:
        h = hashlib.sha256(np.round(self.background.astype(np.float64), 4).tobytes())
        h.update(f"{self.threshold:.4f}|{self.max_per_image}".encode())
        return h.hexdigest()[:16]

    def strength(self, scores: np.ndarray) -> np.ndarray:
        """float32[n, tags]: each score in standard deviations above the picture's typical centred score."""
        c = np.asarray(scores, dtype=np.float32) - self.background[None, :]
        sd = np.maximum(c.std(axis=1, keepdims=True), 1e-6)
        return (c - c.mean(axis=1, keepdims=True)) / sd

    def keep(self, scores: np.ndarray) -> list[list[tuple[int, float, float]]]:
        """Per picture (a row of ``scores``): the kept tags as (tag index, score, strength), strongest first."""
        z = self.strength(scores)
        k = min(self.max_per_image, z.shape[1])
        top = np.argsort(-z, axis=1, kind="stable")[:, :k]
        out = []
        for i, row in enumerate(top):
            out.append([(int(t), float(scores[i, t]), float(z[i, t])) for t in row if z[i, t] >= self.threshold])
        return out


def from_background(scores: np.ndarray, source: str) -> TagRule:
    """The fallback rule: tag medians over ``scores`` (a sample of the index), the fallback threshold."""
    scores = np.asarray(scores, dtype=np.float32)
    if scores.ndim != 2 or not len(scores):
        raise VocabularyError("a tag background needs at least one picture's scores")
    return TagRule(np.median(scores, axis=0).astype(np.float32), FALLBACK_THRESHOLD, source=source)


# --- calibrated rules (package data) -------------------------------------------------------------


@functools.cache
def _calibrations() -> dict:
    try:
        text = resources.files(__package__).joinpath(CALIBRATION_FILE).read_text("utf-8")
    except FileNotFoundError:
        return {}
    try:
        return dict(json.loads(text))
    except (ValueError, TypeError) as e:
        raise VocabularyError(f"{CALIBRATION_FILE} is damaged: {e}") from None


def calibrated(model_id: str, vocab: Vocabulary, table: dict | None = None) -> TagRule | None:
    """The calibrated rule for ``model_id`` with ``vocab``, or None (another model, or a vocabulary the
    calibration was not made for)."""
    table = _calibrations() if table is None else table
    entry = table.get("models", {}).get(model_id)
    if entry is None or table.get("vocabulary") != vocab.digest:
        return None
    try:
        background = np.asarray([entry["background"][n] for n in vocab.names], dtype=np.float32)
        return TagRule(
            background,
            float(entry["threshold"]),
            int(entry.get("max_per_image", MAX_PER_IMAGE)),
            str(entry.get("source", "")),
        )
    except (KeyError, TypeError, ValueError) as e:
        raise VocabularyError(f"{CALIBRATION_FILE}: the entry for {model_id} is damaged ({e})") from None


# --- fitting (bench/tags.py) ----------------------------------------------------------------------


def scores_f1(pred: np.ndarray, truth: np.ndarray, judged: np.ndarray) -> tuple[float, float, float]:
    """Micro precision, recall and F1 of boolean [n, tags] ``pred`` against ``truth``, counting only
    the ``judged`` cells (a tag a test set cannot say anything about is left out)."""
    p, t = pred & judged, truth & judged
    tp = float((p & t).sum())
    precision = tp / max(float(p.sum()), 1.0)
    recall = tp / max(float(t.sum()), 1.0)
    return precision, recall, 2 * precision * recall / max(precision + recall, 1e-9)


def predicted(rule: TagRule, scores: np.ndarray) -> np.ndarray:
    """Boolean [n, tags]: the tags ``rule`` keeps for each picture."""
    pred = np.zeros(scores.shape, dtype=bool)
    for i, kept in enumerate(rule.keep(scores)):
        pred[i, [t for t, _, _ in kept]] = True
    return pred


def fit(scores: np.ndarray, truth: np.ndarray, judged: np.ndarray, source: str) -> TagRule:
    """The calibrated rule from labelled calibration pictures: tag medians over them and the threshold
    (in steps of 0.05) with the best F1."""
    base = from_background(scores, source)
    best: tuple[float, float] | None = None
    for t in np.arange(1.5, 6.0, 0.05):
        trial = TagRule(base.background, float(t), base.max_per_image, source)
        f1 = scores_f1(predicted(trial, scores), truth, judged)[2]
        if best is None or f1 > best[1]:
            best = (round(float(t), 2), f1)
    assert best is not None
    return TagRule(base.background, best[0], base.max_per_image, source)
