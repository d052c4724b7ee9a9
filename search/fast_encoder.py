"""Query encoders on ONNX Runtime: text and image queries without importing torch (fast cold start).

Uses what ``index/export.py`` wrote for a model id. Same outputs as the torch path: the tokenizer is
the model's own ``tokenizer.json`` run by the ``tokenizers`` package with the same padding and
truncation, and images go through the same resize / centre-crop / normalise steps on PIL.
"""
from __future__ import annotations

import html
import json
from pathlib import Path
from typing import Sequence

import numpy as np
from PIL import Image

from index.export import FORMAT, encoder_dir

try:
    from ftfy import fix_text as _fix
except ImportError:  # pragma: no cover - ftfy comes with open_clip
    def _fix(text: str) -> str:
        return text

_RESAMPLE = {"bicubic": Image.BICUBIC, "bilinear": Image.BILINEAR, "nearest": Image.NEAREST}


class FastEncoder:
    def __init__(self, folder: Path, meta: dict):
        import onnxruntime as ort

        self.folder = folder
        self.meta = meta
        self.model_id = meta["model_id"]
        self.dim = int(meta["dim"])
        self.image_size = int(meta["image_size"])
        opts = ort.SessionOptions()
        opts.log_severity_level = 3
        self._ort, self._opts = ort, opts
        self._image = None
        self._text = None
        self._tok = None
        self.has_text = (folder / "text.onnx").is_file() and meta.get("tokenizer", {}).get("kind") == "hf"

    @classmethod
    def load(cls, model_id: str | None) -> "FastEncoder | None":
        """The exported encoders for ``model_id``, or None (not exported, or onnxruntime missing)."""
        if not model_id:
            return None
        folder = encoder_dir(model_id)
        try:
            meta = json.loads((folder / "encoder.json").read_text())
        except (OSError, ValueError):
            return None
        if meta.get("format") != FORMAT or meta.get("model_id") != model_id:
            return None
        try:
            return cls(folder, meta)
        except ImportError:
            return None

    def _session(self, name: str):
        return self._ort.InferenceSession(str(self.folder / name), self._opts,
                                          providers=["CPUExecutionProvider"])

    # --- text -------------------------------------------------------------------------------------
    def _tokenize(self, texts: Sequence[str]) -> np.ndarray:
        if self._tok is None:
            from tokenizers import Tokenizer

            cfg = self.meta["tokenizer"]
            tok = Tokenizer.from_file(str(self.folder / "tokenizer.json"))
            tok.enable_truncation(max_length=cfg["context_length"])
            tok.enable_padding(length=cfg["context_length"], pad_id=cfg["pad_id"])
            self._tok = tok
        # open_clip's HFTokenizer cleans whitespace (and HTML entities) before tokenising
        clean = [" ".join(html.unescape(html.unescape(_fix(t))).split()) for t in texts]
        return np.array([e.ids for e in self._tok.encode_batch(clean)], dtype=np.int64)

    def encode_texts(self, texts: Sequence[str]) -> np.ndarray:
        if not self.has_text:
            raise RuntimeError("no exported text encoder")
        if self._text is None:
            self._text = self._session("text.onnx")
        return self._text.run(None, {"ids": self._tokenize(texts)})[0].astype(np.float32)

    # --- images -----------------------------------------------------------------------------------
    def preprocess(self, img: Image.Image) -> np.ndarray:
        s = self.image_size
        w, h = img.size
        if self.meta.get("resize_mode", "shortest") == "squash":
            img = img.resize((s, s), _RESAMPLE.get(self.meta.get("interpolation"), Image.BICUBIC))
        else:
            if w <= h:
                nw, nh = s, int(s * h / w)
            else:
                nw, nh = int(s * w / h), s
            if (nw, nh) != (w, h):
                img = img.resize((nw, nh), _RESAMPLE.get(self.meta.get("interpolation"), Image.BICUBIC))
            left, top = int(round((nw - s) / 2.0)), int(round((nh - s) / 2.0))
            img = img.crop((left, top, left + s, top + s))
        x = np.asarray(img.convert("RGB"), dtype=np.float32) / 255.0
        x = (x - np.array(self.meta["mean"], np.float32)) / np.array(self.meta["std"], np.float32)
        return x.transpose(2, 0, 1)

    def encode_images(self, images: Sequence[Image.Image]) -> np.ndarray:
        if self._image is None:
            self._image = self._session("image.onnx")
        x = np.stack([self.preprocess(im) for im in images]).astype(np.float32)
        return self._image.run(None, {"pixels": x})[0].astype(np.float32)
