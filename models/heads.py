"""Image heads over a locked pretrained image classifier, and how its weights arrive from a package.

:class:`ConseHead` turns the pooled features of an ImageNet classifier into the text tower's space:
ConSE (Norouzi et al. 2014, "Zero-Shot Learning by Convex Combination of Semantic Embeddings") - the
class probabilities times the text vectors of the class names - plus a learned MLP residual for what
the 1,000 classes do not name. At initialisation (residual zero) it *is* ConSE over the text tower:
the zero-training baseline; training only moves it from there.

With ``raw`` in its config, the search vector also carries the backbone's own features (their top PCA
axes, fitted on the training pictures by :func:`fit_raw`) beside the joint part, and the text tower pads
its vectors with zeros (:class:`TextPad`): text scores come from the joint part alone, image-to-image
scores blend both. Training sees the joint part only (:func:`set_search`).

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
            self,
            features: int,
            classes: int,
            dim: int,
            hidden: int,
            top_k: int = 0,
            gate: dict | None = None,
            raw: dict | None = None,
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
            self.raw_dim = int(raw["dim"]) if raw else 0  # search vectors carry the features' top PCA axes
            self.search = True  # False while training: the joint part only
            if raw:  # fitted by fit_raw on the training pictures; stored with the weights
                self.register_buffer("raw_mean", torch.zeros(features))
                self.register_buffer("raw_axes", torch.zeros(self.raw_dim, features))
                self.register_buffer("raw_share", torch.tensor(float(raw["share"])), persistent=False)

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

        def joint(self, x: Any) -> Any:
            """The part of the vector that meets text."""
            conse = self.probabilities(x) @ self.class_vectors
            if not self.gated:
                return conse + self.mlp(x)
            g = self.confidence(x)
            normalize = nn.functional.normalize
            return g * normalize(conse, dim=-1) + (1 - g) * normalize(self.mlp(x), dim=-1)

        def forward(self, x: Any) -> Any:
            joint = self.joint(x)
            if not (self.raw_dim and self.search):
                return joint
            normalize = nn.functional.normalize
            raw = normalize((x - self.raw_mean) @ self.raw_axes.T, dim=-1)
            share = self.raw_share
            return torch.cat([(1 - share).sqrt() * normalize(joint, dim=-1), share.sqrt() * raw], dim=-1)

    class TextPad(nn.Module):
        """Zeros after a text vector, where the image vectors carry their backbone features: text scores
        come from the joint part alone; image-to-image scores blend both."""

        def __init__(self, extra: int):
            super().__init__()
            self.extra = extra
            self.search = True

        def forward(self, x: Any) -> Any:
            return nn.functional.pad(x, (0, self.extra)) if self.search else x

    return ConseHead, TextPad


def install_head(model: Any, spec: dict) -> None:
    """Replace open_clip's projection of a timm image tower by the head ``spec`` names."""
    if spec.get("type") != "conse":
        raise CheckpointError(f"unknown image head type {spec.get('type')!r}")
    trunk = model.visual.trunk
    dim = model.text_projection.shape[1] if getattr(model, "text_projection", None) is not None else None
    dim = dim or int(spec["dim"])
    head, pad = _module()
    raw = spec.get("raw")
    model.visual.head = head(
        trunk.num_features,
        int(spec["classes"]),
        dim,
        int(spec["hidden"]),
        int(spec.get("top_k", 0)),
        spec.get("gate"),
        raw,
    )
    if raw:
        if type(getattr(model.text, "proj", None)).__name__ != "Identity":
            raise CheckpointError("an image head with raw features needs a text tower without a projection")
        model.text.proj = pad(int(raw["dim"]))


def set_search(model: Any, on: bool) -> None:
    """Search vectors (joint + raw features, text padded) when ``on``; the joint part alone (training)."""
    parts: list[Any] = [getattr(model.visual, "head", None), getattr(getattr(model, "text", None), "proj", None)]
    for part in parts:
        if hasattr(part, "search"):
            part.search = on


def text_gain(model: Any) -> float:
    """1 / sqrt(1 - raw share) for a head whose image vectors carry raw features, else 1: a text vector
    meets only the joint part, so a text term weighs that much more when it joins a picture in one query
    (then it counts as it would against the joint part alone)."""
    head: Any = getattr(model.visual, "head", None)
    if not getattr(head, "raw_dim", 0):
        return 1.0
    return float((1 - head.raw_share.float()).rsqrt())


def fit_raw(head: Any, feats: Any) -> None:
    """Centre and PCA axes of the pooled features ``feats`` [N, F] (the training pictures) for the raw
    part of the search vectors: float64, each axis signed so its largest entry is positive, so that
    reruns give the same tensors."""
    import torch

    x = feats.double()
    mean = x.mean(0)
    values, vectors = torch.linalg.eigh(torch.cov((x - mean).T))
    axes = vectors.T.flip(0)[: head.raw_dim]  # largest variance first
    signs = axes.gather(1, axes.abs().argmax(1, keepdim=True)).sign()
    with torch.no_grad():
        head.raw_mean.copy_(mean.float())
        head.raw_axes.copy_((axes * signs).float())


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
