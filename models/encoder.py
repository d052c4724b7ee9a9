"""What an encoder is, and which one to use: the choice of runtime is made here and nowhere else.

An :class:`Encoder` turns pictures and texts into unit vectors of one model. Two implementations:
:class:`~pixseek.models.torch_encoder.TorchEncoder` (open_clip in torch: GPU, training, export) and
:class:`~pixseek.models.onnx_encoder.OnnxEncoder` (the model's ONNX export: no torch at start-up, a
faster CPU forward pass). Both give the same vectors under the same model id.

* :func:`for_indexing` - on a CPU, the export made from exactly these weights when there is one
  (``runtime="torch"`` or ``$PIXSEEK_RUNTIME=torch`` keeps torch); on a GPU, torch.
* :func:`for_queries` - the export of an index's model id when there is one (``pixseek search`` then
  starts without torch), else torch.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from typing import Any, Protocol, TypeAlias

import numpy as np

from pixseek import settings
from pixseek.errors import ModelMismatchError

from . import export
from .registry import resolve


class Encoder(Protocol):
    """Pictures and texts -> float32 unit vectors of one model (rows of a 2-d array)."""

    model_id: str  # NAME#HASH of the weights: every vector is tagged with it
    dim: int
    image_size: int  # the square input side the image tower takes
    device: str
    runtime: str  # 'torch' | 'onnx'
    text_gain: float  # how much a text term weighs beside a picture in one query (1 but for pixseek-photo)

    @property
    def spec(self) -> str: ...

    def preprocess(self, image: Any) -> Any:
        """PIL RGB image -> pixels ready for :meth:`encode_tensors` once stacked (torch: a normalised CHW
        tensor; ONNX: HWC uint8, normalised by ``encode_tensors``)."""

    def encode_tensors(self, batch: Any) -> np.ndarray:
        """Stacked preprocessed images -> float32 unit vectors, one row each."""

    def encode_images(self, images: Sequence) -> np.ndarray: ...

    def encode_texts(self, texts: Sequence[str]) -> np.ndarray: ...


Check: TypeAlias = Callable[[Encoder], None]  # raises when an encoder is not the model wanted


def cpu_only(device: str | None) -> bool:
    """Whether embedding will run on the CPU, deciding 'auto' without importing torch where no NVIDIA
    device node exists."""
    if device and device != "auto":
        return device == "cpu"
    if not any(os.path.exists(p) for p in ("/dev/nvidiactl", "/dev/nvidia0", "/dev/dxg")):
        return True
    import torch

    return not torch.cuda.is_available()


def load_torch(spec: str | None, device: str | None = None) -> Any:
    """The torch encoder of ``spec`` (cached per process)."""
    from .torch_encoder import load

    return load(spec, device)


def _same_weights(model_id: str, spec: str | None) -> Check:
    def check(enc: Encoder) -> None:
        if enc.model_id != model_id:
            raise ModelMismatchError(
                f"the exported encoders are for {model_id}, the weights of {spec} are {enc.model_id}"
            )

    return check


def for_indexing(spec: str | None = None, device: str | None = None, runtime: str | None = None) -> Encoder:
    """The encoder an index run embeds with (see the module docstring)."""
    if settings.runtime(runtime) == "auto" and cpu_only(device):
        src = resolve(spec)
        found = export.exported_for(src)
        if found is not None:
            folder, meta = found
            try:
                return _onnx(folder, meta, src.spec, "cpu", _same_weights(meta["model_id"], src.spec), indexing=True)
            except Exception:
                pass
    return load_torch(spec, device)


def for_queries(model_id: str, spec: str | None, device: str | None = None, check: Check | None = None) -> Encoder:
    """The encoder for queries against an index of ``model_id`` (made from ``spec``). ``check`` sees
    every torch encoder before it is used, and raises if it is another model (default: a
    ModelMismatchError that names both)."""
    check = check or _same_weights(model_id, spec)
    found = export.read_export(model_id)
    if found is not None:
        try:
            return _onnx(found[0], found[1], spec, device, check, indexing=False)
        except ImportError:  # no onnxruntime
            pass
    enc = load_torch(spec, device)
    check(enc)
    return enc


def _onnx(
    folder: Any, meta: dict, spec: str | None, torch_device: str | None, check: Check, *, indexing: bool
) -> Encoder:
    """The export's encoder; text goes to the torch model of ``spec`` (checked) when it has no text tower."""
    from .onnx_encoder import OnnxEncoder

    def text_fallback() -> Encoder:
        enc = load_torch(spec, torch_device)
        check(enc)
        return enc

    return OnnxEncoder(folder, meta, spec, for_indexing=indexing, text_fallback=text_fallback)


def export_for_cpu(enc: Encoder) -> None:
    """After a torch run: export the model's towers once, so later CPU runs and searches skip torch."""
    from .torch_encoder import TorchEncoder

    if isinstance(enc, TorchEncoder):
        export.export(enc)
