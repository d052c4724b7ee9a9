"""Query encoders on ONNX Runtime: text and image queries without importing torch (fast cold start).

Uses what ``index/export.py`` wrote for a model id. Same outputs as the torch path: the tokenizer is
the model's own ``tokenizer.json`` run by the ``tokenizers`` package with the same padding and
truncation, and images go through the same resize / centre-crop / normalise steps on PIL.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np

from index.export import read_export
from index.onnx_embed import OnnxTowers


class FastEncoder(OnnxTowers):
    """Query encoding for a model id from its export (default ONNX Runtime threading)."""

    @classmethod
    def load(cls, model_id: str | None) -> "FastEncoder | None":
        """The exported encoders for ``model_id``, or None (not exported, or onnxruntime missing)."""
        found = read_export(model_id)
        if found is None:
            return None
        try:
            return cls(*found)
        except ImportError:
            return None

    def encode_texts(self, texts: Sequence[str]) -> np.ndarray:
        if not self.has_text:
            raise RuntimeError("no exported text encoder")
        return self._encode_texts_onnx(texts)
