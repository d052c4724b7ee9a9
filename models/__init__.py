"""The model layer: models as data (the registry), encoders (torch and ONNX Runtime), export, runtime choice.

Index, search, train and the page use it; it uses none of them. Heavy libraries (torch, open_clip,
onnxruntime) load inside the functions that need them. Package data: ``registry.json``, ``configs/``,
``weights/`` and the model cards.
"""

from .encoder import Encoder, cpu_only, export_for_cpu, for_indexing, for_queries, load_torch
from .registry import ModelSource, default_model_spec, load_registry, registry_names, resolve

__all__ = [
    "Encoder",
    "ModelSource",
    "cpu_only",
    "default_model_spec",
    "export_for_cpu",
    "for_indexing",
    "for_queries",
    "load_registry",
    "load_torch",
    "registry_names",
    "resolve",
]
