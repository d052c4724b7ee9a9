"""Image heads over a locked pretrained image classifier, and how its weights arrive from a package.

:class:`ConseHead` turns the pooled features of an ImageNet classifier into the text tower's space:
ConSE (Norouzi et al. 2014, "Zero-Shot Learning by Convex Combination of Semantic Embeddings") - the
class probabilities times the text vectors of the class names - plus a learned MLP residual for what
the 1,000 classes do not name. At initialisation (residual zero) it *is* ConSE over the text tower:
the zero-training baseline; training only moves it from there.

A config names the head and the backbone's pretrained file (``image_head``, ``image_init``); open_clip
never sees those keys (:mod:`pixseek.models.openclip` strips them and calls :func:`install_head`).
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

from pixseek.errors import CheckpointError

from .registry import package_path


@functools.cache
def _module() -> Any:
    import torch
    from torch import nn

    class ConseHead(nn.Module):
        """pooled features -> p(class) @ class_vectors + mlp(features); or, gated, a blend of the two
        directions weighted by the backbone's confidence (its top class probability)."""

        def __init__(
            self, features: int, classes: int, dim: int, hidden: int, top_k: int = 0, gate: dict | None = None
        ):
            super().__init__()
            self.classifier = nn.Linear(features, classes)  # the backbone's own classifier, locked
            self.class_vectors = nn.Parameter(torch.zeros(classes, dim))
            self.log_sharpness = nn.Parameter(torch.zeros(()))
            self.mlp = nn.Sequential(nn.Linear(features, hidden), nn.GELU(), nn.Linear(hidden, dim))
            self.top_k = top_k  # 0: every class; k: ConSE's top-k renormalised
            self.gated = gate is not None
            if gate is not None:  # g = sigmoid(k * (log max p - log t) + logit w): ConSE's share
                w = float(gate.get("w", 0.5))
                self.register_buffer("gate_k", torch.tensor(float(gate.get("k", 0.0))))
                self.register_buffer("gate_log_t", torch.tensor(float(gate.get("t", 1.0))).log())
                self.register_buffer("gate_bias", torch.tensor(w / (1 - w)).log())
                nn.init.normal_(self.mlp[2].weight, std=0.02)
            else:  # the residual starts at zero: the head starts as plain ConSE
                nn.init.zeros_(self.mlp[2].weight)
            nn.init.zeros_(self.mlp[2].bias)

        def probabilities(self, x: Any) -> Any:
            logits = self.classifier(x) * self.log_sharpness.exp()
            if self.top_k:
                kth = logits.topk(self.top_k, dim=-1).values[..., -1:]
                logits = logits.masked_fill(logits < kth, float("-inf"))
            return logits.softmax(dim=-1)

        def confidence(self, x: Any) -> Any:
            """The gate: how much the backbone's own top class can be trusted for this picture."""
            top = self.classifier(x).log_softmax(dim=-1).max(dim=-1, keepdim=True).values
            return torch.sigmoid(self.gate_k * (top - self.gate_log_t) + self.gate_bias)

        def forward(self, x: Any) -> Any:
            conse = self.probabilities(x) @ self.class_vectors
            if not self.gated:
                return conse + self.mlp(x)
            g = self.confidence(x)
            normalize = nn.functional.normalize
            return g * normalize(conse, dim=-1) + (1 - g) * normalize(self.mlp(x), dim=-1)

    return ConseHead


def install_head(model: Any, spec: dict) -> None:
    """Replace open_clip's projection of a timm image tower by the head ``spec`` names."""
    if spec.get("type") != "conse":
        raise CheckpointError(f"unknown image head type {spec.get('type')!r}")
    trunk = model.visual.trunk
    dim = model.text_projection.shape[1] if getattr(model, "text_projection", None) is not None else None
    dim = dim or int(spec["dim"])
    head = _module()
    model.visual.head = head(
        trunk.num_features, int(spec["classes"]), dim, int(spec["hidden"]), int(spec.get("top_k", 0)), spec.get("gate")
    )


def pretrained_image_state(init: dict) -> dict:
    """The backbone's pretrained tensors named as ``visual.trunk.*`` / ``visual.head.classifier.*``.

    ``init``: ``file`` (``pkg:module/path`` or a path), ``arch`` (the timm model the file fits) and
    ``classifier`` (the prefix of the file's classifier tensors). The file is a plain state dict
    (loaded with ``weights_only=True``); its other tensors map onto timm's names in order, shapes
    checked one by one."""
    import timm
    import torch

    ref = str(init["file"])
    path = Path(package_path(ref) if ref.startswith("pkg:") else ref)
    try:
        sd = torch.load(path, weights_only=True, map_location="cpu")
    except FileNotFoundError:
        raise CheckpointError(f"no pretrained image weights at {path}") from None
    except Exception as e:
        raise CheckpointError(f"cannot load pretrained image weights {path}: {type(e).__name__}") from None
    cls_prefix = str(init["classifier"])
    body = [(k, v) for k, v in sd.items() if not k.startswith(cls_prefix)]
    target = timm.create_model(str(init["arch"]), pretrained=False, num_classes=0).state_dict()
    if len(body) != len(target):
        raise CheckpointError(f"{path} has {len(body)} backbone tensors, {init['arch']} needs {len(target)}")
    out = {}
    for (src, value), (name, want) in zip(body, target.items(), strict=True):
        if tuple(value.shape) != tuple(want.shape):
            raise CheckpointError(f"{path}: {src} {tuple(value.shape)} does not fit {name} {tuple(want.shape)}")
        out[f"visual.trunk.{name}"] = value
    out["visual.head.classifier.weight"] = sd[f"{cls_prefix}weight"]
    out["visual.head.classifier.bias"] = sd[f"{cls_prefix}bias"]
    return out
