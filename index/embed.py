"""Embedding with a loaded model: image tensors and texts -> L2-normalised float32 vectors.

CUDA when available (bf16 autocast for the image tower, pinned non-blocking copies), else CPU.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np

from .models import LoadedModel, load


class Embedder:
    runtime = "torch"

    def __init__(self, model: LoadedModel):
        self.m = model

    @classmethod
    def from_spec(cls, spec: str | None = None, device: str | None = None) -> "Embedder":
        return cls(load(spec, device))

    @classmethod
    def for_indexing(cls, spec: str | None = None, device: str | None = None, runtime: str | None = None):
        """On a CPU, the model's ONNX export when it has one for exactly these weights
        (:mod:`index.onnx_embed`: faster start and forward pass); else the torch model."""
        from .onnx_embed import OnnxEmbedder, cpu_only, runtime_setting

        if runtime_setting(runtime) == "auto" and cpu_only(device):
            emb = OnnxEmbedder.for_spec(spec)
            if emb is not None:
                return emb
        return cls.from_spec(spec, device)

    @property
    def model_id(self) -> str:
        return self.m.model_id

    @property
    def spec(self) -> str:
        return self.m.spec

    @property
    def dim(self) -> int:
        return self.m.dim

    @property
    def image_size(self) -> int:
        return self.m.image_size

    @property
    def device(self) -> str:
        return self.m.device

    def preprocess(self, image):
        """PIL RGB image -> CHW float tensor (open_clip's validation transform)."""
        return self.m.preprocess(image)

    def encode_tensors(self, batch) -> np.ndarray:
        import torch

        with torch.inference_mode():
            x = batch
            if self.device.startswith("cuda"):
                if not x.is_pinned():  # the DataLoader pins batches already
                    x = x.pin_memory()
                x = x.to(self.device, non_blocking=True)
                with torch.autocast("cuda", dtype=torch.bfloat16):
                    v = self.m.model.encode_image(x)
            else:
                v = self.m.model.encode_image(x)
            v = torch.nn.functional.normalize(v.float(), dim=-1)
        return v.cpu().numpy().astype(np.float32, copy=False)

    def encode_images(self, images: Sequence) -> np.ndarray:
        import torch

        if not images:
            return np.zeros((0, self.dim), np.float32)
        return self.encode_tensors(torch.stack([self.preprocess(im) for im in images]))

    def encode_texts(self, texts: Sequence[str]) -> np.ndarray:
        import torch

        if not texts:
            return np.zeros((0, self.dim), np.float32)
        with torch.inference_mode():
            tokens = self.m.tokenizer(list(texts)).to(self.device)
            v = self.m.model.encode_text(tokens)
            v = torch.nn.functional.normalize(v.float(), dim=-1)
        return v.cpu().numpy().astype(np.float32, copy=False)
