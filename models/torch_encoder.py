"""The torch implementation of :class:`~pixseek.models.encoder.Encoder`: an open_clip model in memory.

CUDA when asked for (bf16 autocast for the image tower, pinned non-blocking copies), else CPU. Loaded
models are cached per process: the second ``load`` of a spec is free.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import Any

import numpy as np

from . import openclip
from .heads import text_gain
from .registry import ModelSource, resolve


class TorchEncoder:
    runtime = "torch"

    def __init__(self, source: ModelSource, model: Any, model_id: str, device: str = "cpu"):
        import torch

        self.source, self.model_id, self.device = source, model_id, device
        self.model = model.to(device)  # open_clip CLIP / CustomTextCLIP, eval mode, frozen
        self._preprocess, self.tokenizer = openclip.transforms(model, source.arch)
        size = model.visual.image_size
        self.image_size = int(size[0] if isinstance(size, (tuple, list)) else size)
        with torch.inference_mode():
            self.dim = int(model.encode_text(self.tokenizer(["a"]).to(device)).shape[-1])
        self.text_gain = text_gain(model)

    @property
    def spec(self) -> str:
        return self.source.spec

    def preprocess(self, image: Any) -> Any:
        """PIL RGB image -> CHW float tensor (open_clip's validation transform)."""
        return self._preprocess(image)

    def encode_tensors(self, batch: Any) -> np.ndarray:
        import torch

        with torch.inference_mode():
            x = batch
            if self.device.startswith("cuda"):
                if not x.is_pinned():  # the DataLoader pins batches already
                    x = x.pin_memory()
                x = x.to(self.device, non_blocking=True)
                with torch.autocast("cuda", dtype=torch.bfloat16):
                    v = self.model.encode_image(x)
            else:
                v = self.model.encode_image(x)
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
            tokens = self.tokenizer(list(texts)).to(self.device)
            v = torch.nn.functional.normalize(self.model.encode_text(tokens).float(), dim=-1)
        return v.cpu().numpy().astype(np.float32, copy=False)


def pick_device(device: str | None = None) -> str:
    if device and device != "auto":
        return device
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def load(spec: str | None = None, device: str | None = None) -> TorchEncoder:
    """Resolve and load a model (cached per process)."""
    return _load(resolve(spec), pick_device(device))


@functools.lru_cache(maxsize=4)
def _load(src: ModelSource, device: str) -> TorchEncoder:
    model, model_id = openclip.build(src)
    return TorchEncoder(src, model, model_id, device)
