"""What a training batch is made of: pictures grouped by concept, loaded once, drawn and augmented.

A concept is one thing (an emoji, with its skin-tone variants); its variants each hold pictures (one per
art style) and captions. A batch never holds two pictures of one concept: the contrastive loss would
count them as negatives of each other.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from pixseek.decode import open_image
from pixseek.errors import PixseekError, TrainError

from .datasets import Sample


@dataclass
class Concept:
    variants: list[tuple[list[int], list[int]]]  # (image indices, caption indices) per variant


def group(samples: list[Sample]) -> tuple[list[Concept], list[Path], list[str]]:
    images: list[Path] = []
    captions: list[str] = []
    cap_ix: dict[str, int] = {}
    by_concept: dict[str, dict[str, tuple[list[int], list[int]]]] = defaultdict(dict)
    for s in samples:
        variant = str(s.extra.get("variant") or s.image)
        slot = by_concept[s.concept].setdefault(variant, ([], []))
        slot[0].append(len(images))
        images.append(s.image)
        for c in s.captions:
            if c not in cap_ix:
                cap_ix[c] = len(captions)
                captions.append(c)
            if cap_ix[c] not in slot[1]:
                slot[1].append(cap_ix[c])
    concepts = [Concept(list(v.values())) for _, v in sorted(by_concept.items())]
    return concepts, images, captions


def load_images(paths: list[Path], size: int, crop: bool = False) -> Any:
    """Every training picture as uint8 CHW at the model's input size (the whole set stays in memory):
    squashed to a square, or with ``crop`` as search sees it (short side resized, centre cropped)."""
    import torch
    from PIL import Image

    out = torch.empty((len(paths), 3, size, size), dtype=torch.uint8)
    for i, p in enumerate(paths):
        try:
            img = open_image(str(p)).image
        except PixseekError as e:
            raise TrainError(f"cannot read training image {p}: {e}") from None
        if crop and img.size[0] != img.size[1]:
            w, h = img.size
            nw, nh = (size, round(size * h / w)) if w <= h else (round(size * w / h), size)
            left, top = (nw - size) // 2, (nh - size) // 2
            img = img.resize((nw, nh), Image.Resampling.BICUBIC).crop((left, top, left + size, top + size))
        img = img.resize((size, size), Image.Resampling.BICUBIC) if img.size != (size, size) else img
        out[i] = torch.from_numpy(np.asarray(img, dtype=np.uint8).copy()).permute(2, 0, 1)
    return out


def augment(
    x: Any, gen: Any, *, scale: tuple[float, float] = (0.65, 1.0), max_shift: float = 0.12, jitter: float = 0.2
) -> Any:
    """Batched random resized crop (white padding) + brightness/contrast/saturation jitter; x in [0, 1]."""
    import torch
    import torch.nn.functional as F

    n = x.shape[0]
    s = torch.empty(n).uniform_(*scale, generator=gen).sqrt()
    ar = torch.empty(n).uniform_(-0.1, 0.1, generator=gen).exp()
    tx = torch.empty(n).uniform_(-max_shift, max_shift, generator=gen)
    ty = torch.empty(n).uniform_(-max_shift, max_shift, generator=gen)
    theta = torch.zeros(n, 2, 3)
    theta[:, 0, 0] = s * ar.sqrt()
    theta[:, 1, 1] = s / ar.sqrt()
    theta[:, 0, 2] = tx
    theta[:, 1, 2] = ty
    grid = F.affine_grid(theta.to(x.device), list(x.shape), align_corners=False)
    x = 1 - F.grid_sample(1 - x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    b = 1 + torch.empty(n, 1, 1, 1).uniform_(-jitter, jitter, generator=gen).to(x.device)
    c = 1 + torch.empty(n, 1, 1, 1).uniform_(-jitter, jitter, generator=gen).to(x.device)
    sat = 1 + torch.empty(n, 1, 1, 1).uniform_(-jitter, jitter, generator=gen).to(x.device)
    x = x * b
    mean = x.mean(dim=(1, 2, 3), keepdim=True)
    x = (x - mean) * c + mean
    gray = x.mean(dim=1, keepdim=True)
    x = (x - gray) * sat + gray
    return x.clamp(0, 1)


def draw_batch(concepts: list[Concept], batch: int, gen: Any) -> tuple[list[int], list[int], list[int]]:
    """``batch`` distinct concepts; two views of each (two pictures of one variant: its two art styles when it
    has them) and one of its captions, as (view a, view b, caption) indices."""
    import torch

    order = torch.randperm(len(concepts), generator=gen)[:batch].tolist()
    va, vb, tx = [], [], []
    for ci in order:
        var = concepts[ci].variants
        # The first variant is the base picture (manifest order): half the draws, so concepts
        # with many skin tones still see their plain emoji often.
        vi = (
            0
            if len(var) == 1 or float(torch.rand(1, generator=gen)) < 0.5
            else int(torch.randint(1, len(var), (1,), generator=gen))
        )
        imgs, caps = var[vi]
        pick = torch.randperm(len(imgs), generator=gen).tolist()
        va.append(imgs[pick[0]])
        vb.append(imgs[pick[1] if len(pick) > 1 else pick[0]])
        tx.append(caps[int(torch.randint(len(caps), (1,), generator=gen))])
    return va, vb, tx
