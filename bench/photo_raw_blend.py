"""How much of the backbone's own features pixseek-photo's *search* vectors carry, on the photo
*validation* split.

A search vector is ``[sqrt(1 - s) * joint ; sqrt(s) * PCA_k(features - mean)]`` (unit parts), and a
text vector is ``[text ; 0]``: text scores are the joint cosine times ``sqrt(1 - s)`` (same ranking),
image-to-image scores are ``(1 - s) * joint cosine + s * feature cosine``. This sweeps the share s and
the PCA size k (mean and axes fitted on the training pictures' features, as ``pixseek train`` does)
and prints image→image same-category precision@5. Usage::

    python bench/photo_raw_blend.py --emoji DIR/emoji/manifest.jsonl --openclipart DIR/openclipart/manifest.jsonl \\
        --photos DIR/tuxpaint/manifest.jsonl
"""

from __future__ import annotations

import argparse
import copy
from pathlib import Path

import torch
from photo_designs import plain_features

from pixseek.models import load_torch
from pixseek.models.heads import fit_raw
from pixseek.train import photo_eval
from pixseek.train.locked import LockedTrainer
from pixseek.train.trainer import TrainConfig

SHARES = (0.0, 0.5, 0.6, 0.7, 0.8, 1.0)
DIMS = (128, 256, 384, 1280)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--emoji", required=True)
    ap.add_argument("--openclipart", required=True)
    ap.add_argument("--photos", required=True)
    ap.add_argument("--split", default="val")
    args = ap.parse_args()
    torch.set_grad_enabled(False)
    tr = LockedTrainer(
        TrainConfig(data=args.emoji, out="/tmp/photo-raw", arch="pixseek-lite0-minilm", more_data=(args.openclipart,))
    )
    run = tr._setup()  # the cached training features (view 0: the pictures as they are)
    head = load_torch("pixseek-photo", "cpu").model.float().visual.head
    rows = photo_eval.items(Path(args.photos), args.split)
    cats = [s.extra["category"] for s in rows]
    feats = plain_features(tr, run.model, [s.image for s in rows])
    unit = torch.nn.functional.normalize
    joint = unit(head.joint(feats), dim=-1)
    print(
        f"{len(rows)} photos ({args.split}); uncentred raw features P@5 "
        f"{photo_eval.precision_at(unit(feats, dim=-1).numpy(), cats):.3f}"
    )
    print("| PCA k | " + " | ".join(f"s = {s}" for s in SHARES) + " |")
    print("| --- |" + " --- |" * len(SHARES))
    for k in DIMS:
        h = copy.deepcopy(head)
        h.raw_dim = k
        h.raw_axes = torch.zeros(k, feats.shape[1])
        fit_raw(h, run.images[0])
        raw = unit((feats - h.raw_mean) @ h.raw_axes.T, dim=-1)
        cells = []
        for s in SHARES:
            v = torch.cat([(1 - s) ** 0.5 * joint, s**0.5 * raw], dim=-1)
            cells.append(f"{photo_eval.precision_at(v.numpy(), cats):.3f}")
        print(f"| {k} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
