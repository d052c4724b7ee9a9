"""The ONNX Runtime implementation of :class:`~pixseek.models.encoder.Encoder`: a model's exported towers.

No torch and no open_clip: images go through open_clip's validation transform re-done on PIL and numpy
(:func:`crop_array` in the decode workers, :func:`normalise` on the batch; :func:`preprocess_array` is
both for one picture), text through the model's own ``tokenizer.json`` run by the ``tokenizers``
package with the same padding and truncation. Vectors equal the torch path's to float precision
(same model id). An export without a text tower (open_clip's own tokenizer needs torch) answers text
through ``text_fallback``, a torch encoder loaded only when a text is first encoded.
"""

from __future__ import annotations

import html
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

HEAVY_TOWER_BYTES = 64 << 20  # an exported image tower this big runs with spinning threads (see below)
_RESAMPLE = {
    "bicubic": Image.Resampling.BICUBIC,
    "bilinear": Image.Resampling.BILINEAR,
    "nearest": Image.Resampling.NEAREST,
}


def clean_text(text: str) -> str:
    """open_clip's HFTokenizer clean-up (ftfy, HTML entities, whitespace) before tokenising (ftfy is
    imported here: an index run encodes no text, and its import costs 0.1 s)."""
    try:
        from ftfy import fix_text as _fix
    except ImportError:  # pragma: no cover - ftfy comes with open_clip

        def _fix(text: str) -> str:
            return text

    return " ".join(html.unescape(html.unescape(_fix(text))).split())


def crop_array(
    img: Image.Image, size: int, interpolation: str = "bicubic", resize_mode: str = "shortest"
) -> np.ndarray:
    """PIL image -> HWC uint8 RGB pixels, resized (shortest side, or squashed) with PIL and centre-cropped
    as open_clip's validation transform does: the first half of :func:`preprocess_array`."""
    w, h = img.size
    resample = _RESAMPLE.get(interpolation, Image.Resampling.BICUBIC)
    if resize_mode == "squash":
        img = img.resize((size, size), resample)
    else:
        nw, nh = (size, int(size * h / w)) if w <= h else (int(size * w / h), size)
        if (nw, nh) != (w, h):
            img = img.resize((nw, nh), resample)
        left, top = int(round((nw - size) / 2.0)), int(round((nh - size) / 2.0))
        img = img.crop((left, top, left + size, top + size))
    return np.asarray(img.convert("RGB"), dtype=np.uint8)


def normalise(pixels: np.ndarray, mean: Sequence[float], std: Sequence[float]) -> np.ndarray:
    """NHWC uint8 pixels -> NCHW float32, scaled to [0, 1] and normalised: one multiply-add a channel
    into the output (8x cheaper than float arithmetic on the whole HWC array and a transpose; equal to
    ``(x / 255 - mean) / std`` within 1e-6)."""
    mean32, std32 = np.asarray(mean, np.float32), np.asarray(std, np.float32)
    scale, offset = 1.0 / (255.0 * std32), -mean32 / std32
    n, h, w, c = pixels.shape
    out = np.empty((n, c, h, w), np.float32)
    for k in range(c):
        np.multiply(pixels[..., k], scale[k], out=out[:, k], dtype=np.float32, casting="unsafe")
        out[:, k] += offset[k]
    return out


def preprocess_array(
    img: Image.Image,
    size: int,
    mean: Sequence[float],
    std: Sequence[float],
    interpolation: str = "bicubic",
    resize_mode: str = "shortest",
) -> np.ndarray:
    """PIL image -> CHW float32, as open_clip's validation transform: resize (shortest side, or squash)
    with PIL, centre crop, scale to [0, 1], normalise."""
    return normalise(crop_array(img, size, interpolation, resize_mode)[None], mean, std)[0]


def _cores() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def _busy() -> bool:
    """Whether other work already keeps this machine's cores busy (1-minute load average >= cores)."""
    try:
        return os.getloadavg()[0] >= _cores()
    except (AttributeError, OSError):  # no load average (Windows)
        return False


class OnnxEncoder:
    """A model's exported towers (``folder`` with ``encoder.json``, see :mod:`pixseek.models.export`).

    ``for_indexing``: tuned for a long batch run (one thread per core; spinning threads for a heavy
    tower) and the image tower opened at once, so a damaged file fails before any work. Otherwise ONNX
    Runtime's defaults and sessions opened on first use (a query encodes one thing).
    """

    runtime = "onnx"
    device = "cpu"

    def __init__(
        self,
        folder: Path,
        meta: dict,
        spec: str | None = None,
        *,
        for_indexing: bool = False,
        text_fallback: Callable[[], Any] | None = None,
    ):
        import onnxruntime as ort

        self.folder, self.meta, self.spec = folder, meta, spec or meta["model_id"]
        self.model_id: str = meta["model_id"]
        self.dim = int(meta["dim"])
        self.text_gain = float(meta.get("text_gain", 1.0))
        self.image_size = int(meta["image_size"])
        self.has_text = (folder / "text.onnx").is_file() and meta.get("tokenizer", {}).get("kind") == "hf"
        self._ort, self._for_indexing = ort, for_indexing
        self._text_fallback = text_fallback
        self._fallback: Any = None
        self._image: Any = None
        self._text: Any = None
        if for_indexing:
            self._image = self._session("image.onnx")

    @property
    def uses_torch(self) -> bool:
        """Whether a torch model had to be loaded (for text, when the export has no text tower)."""
        return self._fallback is not None

    def _session(self, name: str) -> Any:
        from .ort_cache import open_session

        return open_session(self._ort, self.folder / name, lambda: self._options(name))

    def _options(self, name: str) -> Any:
        opts = self._ort.SessionOptions()
        opts.log_severity_level = 3
        if self._for_indexing:
            opts.intra_op_num_threads = _cores()
            # ORT's threads spin-wait between operators. For a heavy tower (ViT-B class) on free cores
            # that is ~15 % faster and the model is the bottleneck; a light tower is decode-bound, and
            # spinning takes the cores the decode workers need (bench/indexing.py, 8 MP JPEGs: ~10 %
            # slower). On busy cores a spinning thread burns the time slice its sibling needs: 150 small
            # PNGs with ViT-B-32 took 120 / 80 s spinning and 69 / 48 s not (2 cores, load 11-17,
            # interleaved). File size stands for cost, the load average for busy cores.
            heavy = (self.folder / "image.onnx").stat().st_size >= HEAVY_TOWER_BYTES
            spin = heavy and not _busy()
            opts.add_session_config_entry("session.intra_op.allow_spinning", "1" if spin else "0")
        return opts

    def preprocess(self, image: Image.Image) -> np.ndarray:
        """PIL image -> HWC uint8 pixels, resized and cropped; :meth:`encode_tensors` normalises a batch
        of them. Decode workers hand over a quarter of the bytes of float pixels, and the normalising
        is one pass over the batch (:func:`normalise`)."""
        m = self.meta
        return crop_array(image, self.image_size, m.get("interpolation", "bicubic"), m.get("resize_mode", "shortest"))

    def encode_tensors(self, batch: Any) -> np.ndarray:
        """Pixels -> unit vectors: NHWC uint8 from :meth:`preprocess`, or normalised NCHW float32 (numpy,
        or a torch tensor)."""
        if self._image is None:
            self._image = self._session("image.onnx")
        x = np.asarray(batch.numpy() if hasattr(batch, "numpy") else batch)
        if x.dtype == np.uint8 and x.ndim == 4 and x.shape[-1] == 3:
            x = normalise(x, self.meta["mean"], self.meta["std"])
        x = np.ascontiguousarray(x, dtype=np.float32)
        return np.asarray(self._image.run(None, {"pixels": x})[0], dtype=np.float32)

    def encode_images(self, images: Sequence) -> np.ndarray:
        if not images:
            return np.zeros((0, self.dim), np.float32)
        return self.encode_tensors(np.stack([self.preprocess(im) for im in images]))

    def encode_texts(self, texts: Sequence[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dim), np.float32)
        if not self.has_text:
            if self._text_fallback is None:
                raise RuntimeError(f"the export of {self.model_id} has no text encoder")
            if self._fallback is None:
                self._fallback = self._text_fallback()
            return self._fallback.encode_texts(texts)
        if self._text is None:
            self._text = (self._tokenizer(), self._session("text.onnx"))
        tok, sess = self._text
        ids = np.array([e.ids for e in tok.encode_batch([clean_text(t) for t in texts])], dtype=np.int64)
        return np.asarray(sess.run(None, {"ids": ids})[0], dtype=np.float32)

    def _tokenizer(self) -> Any:
        """The exported tokenizer.json with the model's padding and truncation (``tokenizers`` package)."""
        from tokenizers import Tokenizer

        cfg = self.meta["tokenizer"]
        tok = Tokenizer.from_file(str(self.folder / "tokenizer.json"))
        tok.enable_truncation(max_length=cfg["context_length"])
        tok.enable_padding(length=cfg["context_length"], pad_id=cfg["pad_id"])
        return tok
