"""Reading the text in a picture: PP-OCR text detection and recognition on ONNX Runtime, offline.

The ``ocr`` extra installs ``rapidocr``, whose wheel carries the PP-OCRv6 detection and recognition
models (Apache-2.0). pixseek hands it those files by path, so nothing is ever downloaded. A picture is
read in two passes (thresholds measured in ``bench/ocr.py``):

* **detect** on a copy whose longer side is at most :data:`DET_SIDE` px (a large photo is shrunk first:
  detection cost grows with the pixels, and text too small to find at that size is too small to read);
* **gate**: boxes lower than :data:`MIN_BOX_PX` px at that size or with a detection score below
  :data:`MIN_BOX_SCORE` are dropped; a picture with no box left is "no text" and skips recognition;
* **recognise** each kept box, cropped from the picture as decoded (up to twice the detection size, so
  small print keeps its detail), and keep the lines that score at least :data:`MIN_LINE_SCORE` and hold
  a letter or a digit (a line of one character: :data:`MIN_SINGLE_SCORE`).

:data:`MODEL_VERSION` names the models and these thresholds: an index records it per picture, and a
picture read by another version is read again. A :class:`TextReader` is not thread-safe: one per thread.
"""

from __future__ import annotations

import importlib.util
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from pixseek.errors import ImageError, OcrError

DET_MODEL = "PP-OCRv6_det_small.onnx"
REC_MODEL = "PP-OCRv6_rec_small.onnx"
DET_SIDE = 1024  # detection runs on at most this many pixels along the longer side
DECODE_SIDE = 1024  # decode at least this many pixels along the shorter side (JPEG draft, box reduce)
MIN_BOX_PX = 8  # boxes lower than this at detection size are specks, not readable text
# Detection score (mean text probability inside the box) a box needs. Gate 1 had 0.6, which dropped small
# clear print (labels and captions of 13-30 px score 0.3-0.57). bench/ocr_gate.py, validation split of the
# written-words set: word recall 0.964 at 0.3 against 0.812 at 0.6 (labels 0.963 against 0.593), for 26 CPU s
# per 1,000 small photos against 21 (186 of 413 recognised against 123; 15 lines kept on them against 6).
MIN_BOX_SCORE = 0.3
MIN_LINE_SCORE = 0.8  # recognition score a line needs to be kept
MIN_SINGLE_SCORE = 0.98  # ... and a line of one letter or digit (on photos, all of those below were noise)
REC_BATCH = 1  # lines per recognition call: batches pad every line to the widest (6: +20-38 % CPU on screenshots)
ENGINE_BOX_SCORE = 0.3  # what the detector itself keeps (the gate decides after it)
GATE_VERSION = 2  # bump when the thresholds above change: pictures are read again
MODEL_VERSION = f"{Path(DET_MODEL).stem}+{Path(REC_MODEL).stem}/gate{GATE_VERSION}"
INSTALL_HINT = "pip install 'pixseek[ocr]'"
_WORDLIKE = re.compile(r"[^\W_]")  # a letter or a digit, in any script


@dataclass(frozen=True)
class TextLine:
    """One line of text: what it says, the recogniser's score (0-1), and its box as four corners
    (top-left, top-right, bottom-right, bottom-left) in fractions of the picture's width and height."""

    text: str
    score: float
    quad: tuple[tuple[float, float], ...]


@dataclass
class Reading:
    """What one picture holds: its lines in reading order, and what the detection pass found."""

    lines: list[TextLine] = field(default_factory=list)
    boxes: int = 0  # boxes the detection pass found
    recognised: int = 0  # boxes past the gate, sent to recognition

    @property
    def text(self) -> str:
        return "\n".join(line.text for line in self.lines)


def available() -> bool:
    """Whether the ``ocr`` extra (rapidocr) is installed (checked without importing it)."""
    return importlib.util.find_spec("rapidocr") is not None


def _model_files() -> tuple[Path, Path]:
    if not available():
        raise OcrError("reading text in pictures needs the rapidocr package, which is not installed", INSTALL_HINT)
    spec = importlib.util.find_spec("rapidocr")
    assert spec is not None and spec.origin is not None
    folder = Path(spec.origin).parent / "models"
    det, rec = folder / DET_MODEL, folder / REC_MODEL
    for f in (det, rec):
        if not f.is_file():
            raise OcrError(f"the installed rapidocr lacks its bundled model {f.name}", hint=INSTALL_HINT)
    return det, rec


def check_available() -> None:
    """Raise OcrError (one line, with the install command) unless pictures can be read here."""
    _model_files()


def to_bgr(image: Image.Image) -> np.ndarray:
    """An RGB PIL picture as the contiguous BGR uint8 array OpenCV and rapidocr expect."""
    rgb = np.asarray(image.convert("RGB"), dtype=np.uint8)
    return np.ascontiguousarray(rgb[:, :, ::-1])


def _shrink(img: np.ndarray, side: int) -> tuple[np.ndarray, float]:
    """``img`` with its longer side at most ``side`` px, and the factor applied."""
    import cv2

    h, w = img.shape[:2]
    scale = min(1.0, side / max(h, w))
    if scale >= 1.0:
        return img, 1.0
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    return cv2.resize(img, size, interpolation=cv2.INTER_AREA), scale


def _box_height(quad: np.ndarray) -> float:
    return float(max(np.linalg.norm(quad[0] - quad[3]), np.linalg.norm(quad[1] - quad[2])))


class TextReader:
    """Reads pictures with the bundled PP-OCR models (loaded on first use). ``threads``: ONNX Runtime
    threads per model (pixseek runs one reader per core, each with one thread). The thresholds default
    to the module's constants (the benchmark sweeps them)."""

    def __init__(
        self,
        threads: int = 1,
        *,
        det_side: int = DET_SIDE,
        min_box_px: float = MIN_BOX_PX,
        min_box_score: float = MIN_BOX_SCORE,
        min_line_score: float = MIN_LINE_SCORE,
        min_single_score: float = MIN_SINGLE_SCORE,
        rec_batch: int = REC_BATCH,
    ):
        self.threads = max(1, int(threads))
        self.det_side, self.min_box_px = det_side, min_box_px
        self.min_box_score, self.min_line_score, self.rec_batch = min_box_score, min_line_score, rec_batch
        self.min_single_score = min_single_score
        self._engine: Any = None

    def _load(self) -> Any:
        if self._engine is None:
            det, rec = _model_files()
            try:
                from rapidocr import RapidOCR

                self._engine = RapidOCR(
                    params={
                        "Global.log_level": "critical",
                        "Global.use_cls": False,
                        "Global.max_side_len": 2 * self.det_side,
                        "Det.model_path": str(det),
                        "Det.limit_type": "max",
                        "Det.limit_side_len": self.det_side,
                        "Det.box_thresh": min(ENGINE_BOX_SCORE, self.min_box_score),
                        "Rec.model_path": str(rec),
                        "Rec.rec_batch_num": self.rec_batch,
                        "EngineConfig.onnxruntime.intra_op_num_threads": self.threads,
                        "EngineConfig.onnxruntime.inter_op_num_threads": 1,
                    }
                )
            except Exception as e:  # a broken install: one line, not a traceback
                raise OcrError(f"cannot load the OCR models: {_one_line(e)}", hint=INSTALL_HINT) from None
        return self._engine

    def detect(self, img: np.ndarray) -> tuple[list[np.ndarray], list[float], float]:
        """(box quads at detection size, their scores, the detection size / ``img`` size) of a BGR array."""
        small, scale = _shrink(img, self.det_side)
        out = self._load()(small, use_det=True, use_cls=False, use_rec=False)
        boxes = getattr(out, "boxes", None)
        if boxes is None or len(boxes) == 0:
            return [], [], scale
        scores = list(getattr(out, "scores", None) or [1.0] * len(boxes))
        return [np.asarray(b, dtype=np.float32) for b in boxes], [float(s) for s in scores], scale

    def read(self, image: Image.Image) -> Reading:
        """The text in ``image`` (RGB, upright). Raises ImageError(stage 'ocr') when the models fail on it."""
        try:
            return self._read(to_bgr(image))
        except OcrError:
            raise
        except Exception as e:
            raise ImageError(f"cannot read text: {_one_line(e)}", stage="ocr") from None

    def _read(self, img: np.ndarray) -> Reading:
        from rapidocr.utils.process_img import get_rotate_crop_image

        boxes, scores, scale = self.detect(img)
        kept = [b for b, s in zip(boxes, scores) if s >= self.min_box_score and _box_height(b) >= self.min_box_px]
        reading = Reading(boxes=len(boxes), recognised=len(kept))
        if not kept:
            return reading
        h, w = img.shape[:2]
        quads = [np.clip(b / scale, 0, [w - 1, h - 1]).astype(np.float32) for b in kept]
        crops = [get_rotate_crop_image(img, q.copy()) for q in quads]
        rec = self._load().recognize_txt(crops)
        for q, text, score in zip(quads, rec.txts or (), rec.scores or ()):
            text = str(text).strip()
            if keep_line(text, float(score), self.min_line_score, self.min_single_score):
                corners = tuple((round(float(x) / w, 5), round(float(y) / h, 5)) for x, y in q)
                reading.lines.append(TextLine(text, round(float(score), 4), corners))
        return reading


def keep_line(text: str, score: float, min_score: float = MIN_LINE_SCORE, min_single: float = MIN_SINGLE_SCORE) -> bool:
    """Whether a recognised line is text worth keeping: scored at least ``min_score`` and holding a
    letter or a digit; a line of a single one needs ``min_single`` (or ``min_score`` if higher)."""
    chars = len(_WORDLIKE.findall(text))
    return chars > 0 and score >= (min_score if chars > 1 else max(min_score, min_single))


def _one_line(e: BaseException) -> str:
    text = str(e).strip().splitlines()
    return text[0][:300] if text else type(e).__name__
