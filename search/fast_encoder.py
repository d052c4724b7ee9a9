"""Query encoders on ONNX Runtime: text and image queries without importing torch (fast cold start).

Uses what ``index/export.py`` wrote for a model id. Same outputs as the torch path: the tokenizer is
the model's own ``tokenizer.json`` run by the ``tokenizers`` package with the same padding and
truncation, and images go through the same resize / centre-crop / normalise steps on PIL.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Sequence

import numpy as np
from PIL import Image

from index.export import FORMAT, encoder_dir
from index.onnx_embed import has_hf_text, hf_tokenizer, preprocess_array, tokenize


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
        self.has_text = has_hf_text(folder, meta)

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
            self._tok = hf_tokenizer(self.folder, self.meta)
        return tokenize(self._tok, texts)

    def encode_texts(self, texts: Sequence[str]) -> np.ndarray:
        if not self.has_text:
            raise RuntimeError("no exported text encoder")
        if self._text is None:
            self._text = self._session("text.onnx")
        return self._text.run(None, {"ids": self._tokenize(texts)})[0].astype(np.float32)

    # --- images -----------------------------------------------------------------------------------
    def preprocess(self, img: Image.Image) -> np.ndarray:
        m = self.meta
        return preprocess_array(img, self.image_size, m["mean"], m["std"], m.get("interpolation", "bicubic"),
                                m.get("resize_mode", "shortest"))

    def encode_images(self, images: Sequence[Image.Image]) -> np.ndarray:
        if self._image is None:
            self._image = self._session("image.onnx")
        x = np.stack([self.preprocess(im) for im in images]).astype(np.float32)
        return self._image.run(None, {"pixels": x})[0].astype(np.float32)
