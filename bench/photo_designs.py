"""Compare pixseek-photo head designs at equal training time, on the photo *validation* split.

Each design trains its head for the same wall-clock seconds on the same cached backbone features
(emoji + Openclipart training pictures), then is scored on the Tux Paint ``val`` split (never the
``test`` split that the model card reports) and on emoji (trained and held-out concepts). Usage::

    python bench/photo_designs.py --emoji DIR/emoji/manifest.jsonl --openclipart DIR/openclipart/manifest.jsonl \\
        --photos DIR/tuxpaint/manifest.jsonl --seconds 90
"""

from __future__ import annotations

import argparse
import copy
import json
import time
from pathlib import Path

import numpy as np
import torch

from pixseek.decode import open_image
from pixseek.models.onnx_encoder import preprocess_array
from pixseek.train import photo_eval
from pixseek.train.datasets import read_manifest
from pixseek.train.locked import LockedTrainer, _trunk_runner
from pixseek.train.trainer import TrainConfig


def plain_features(trainer, model, paths: list[Path]) -> torch.Tensor:
    run = _trunk_runner(model.visual.trunk, 224)
    out = []
    for i in range(0, len(paths), 64):
        x = np.stack([preprocess_array(open_image(str(p)).image, 224, [0.5] * 3, [0.5] * 3) for p in paths[i : i + 64]])
        out.append(run(x))
    return torch.from_numpy(np.concatenate(out).astype(np.float32))


def embed(head, feats: torch.Tensor) -> np.ndarray:
    with torch.no_grad():
        return torch.nn.functional.normalize(head(feats), dim=-1).numpy()


def score(head, ev: dict) -> dict:
    out = {}
    img = embed(head, ev["photo_feats"])
    for lang, (idx, t) in ev["photo_text"].items():
        r = photo_eval.recall(img, t, own=list(idx))
        out[f"{lang} R@1"], out[f"{lang} R@10"] = r[1], r[10]
    out["P@5"] = photo_eval.precision_at(img, ev["cats"])
    out["zs"] = float(((img @ ev["protos"].T).argmax(1) == ev["truth"]).mean())
    eimg = embed(head, ev["emoji_feats"])
    sim = ev["emoji_text"] @ eimg.T
    rank = (sim > np.diag(sim)[:, None]).sum(1)
    for part in ("train", "heldout"):
        m = ev["emoji_split"] == part
        out[f"emoji {part} R@10"] = float((rank[m] < 10).mean())
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--emoji", required=True)
    ap.add_argument("--openclipart", required=True)
    ap.add_argument("--photos", required=True)
    ap.add_argument("--seconds", type=float, default=90)
    ap.add_argument("--split", default="val")
    ap.add_argument("--designs", default="all")
    args = ap.parse_args()

    cfg = TrainConfig(
        data=args.emoji, out="/tmp/photo-designs", arch="pixseek-lite0-minilm", more_data=(args.openclipart,)
    )
    tr = LockedTrainer(cfg)
    t0 = time.time()
    run = tr._setup()
    print(f"setup (features cached or computed) {time.time() - t0:.0f} s; {run.n_images} pictures", flush=True)
    model = run.model
    base_head = copy.deepcopy(model.visual.head)

    rows = photo_eval.items(Path(args.photos), args.split)
    cats = [s.extra["category"] for s in rows]
    classes = sorted(set(cats))
    ev: dict = {"cats": cats, "truth": np.array([classes.index(c) for c in cats])}
    ev["photo_feats"] = plain_features(tr, model, [s.image for s in rows])
    ev["photo_text"] = {"en": (np.arange(len(rows)), tr._text_vectors(model, [s.captions[0] for s in rows]).numpy())}
    for lang in photo_eval.LANGS:
        idx = [i for i, s in enumerate(rows) if s.extra.get(f"captions_{lang}")]
        caps = [rows[i].extra[f"captions_{lang}"][0] for i in idx]
        ev["photo_text"][lang] = (np.array(idx), tr._text_vectors(model, caps).numpy())
    protos = [tr._text_vectors(model, p).numpy().mean(0) for p in photo_eval.category_prompts(classes)]
    ev["protos"] = np.stack([p / np.linalg.norm(p) for p in protos])
    emoji = [s for s in read_manifest(Path(args.emoji)) if s.style == "twitter" and s.extra.get("kind") == "base"]
    ev["emoji_feats"] = plain_features(tr, model, [s.image for s in emoji])
    ev["emoji_text"] = tr._text_vectors(model, [s.captions[0] for s in emoji]).numpy()
    ev["emoji_split"] = np.array([s.split for s in emoji])
    ev["raw"] = photo_eval.precision_at(torch.nn.functional.normalize(ev["photo_feats"], dim=-1).numpy(), cats)
    print(f"raw backbone features P@5 {ev['raw']:.3f}", flush=True)

    results = {}
    for name, top_k in (("(a) ConSE top-10, no training", 10), ("(a') ConSE all classes, no training", 0)):
        h = copy.deepcopy(base_head)
        h.top_k = top_k
        results[name] = score(h, ev)
    designs = {
        "(b) MLP head only (no ConSE)": dict(anchor=-1, conse=False),
        "(c) ConSE frozen + MLP residual": dict(anchor=-1, conse=True),
        "(d) ConSE anchored (1.0) + residual": dict(anchor=1.0, conse=True),
        "(e) ConSE free + residual": dict(anchor=0.0, conse=True),
        "(f) gated t=0.15, ConSE frozen": dict(anchor=-1, conse=True, gate={"k": 4, "t": 0.15}),
        "(g) gated t=0.3, ConSE frozen": dict(anchor=-1, conse=True, gate={"k": 4, "t": 0.3}),
        "(h) gated t=0.3, ConSE free": dict(anchor=0.0, conse=True, gate={"k": 4, "t": 0.3}),
        "(i) gated t=0.5, ConSE frozen": dict(anchor=-1, conse=True, gate={"k": 4, "t": 0.5}),
        "(j) blend 1:1, ConSE frozen": dict(anchor=-1, conse=True, gate={"w": 0.5}),
        "(k) blend 1:1, ConSE free": dict(anchor=0.0, conse=True, gate={"w": 0.5}),
    }
    for name, d in designs.items():
        if args.designs != "all" and name[1] not in args.designs:
            continue
        h = copy.deepcopy(base_head)
        if "gate" in d:
            h = type(base_head)(1280, 1000, base_head.class_vectors.shape[1], 1024, 0, d["gate"])
            h.load_state_dict(
                {k: v for k, v in base_head.state_dict().items() if not k.startswith("mlp.2")}, strict=False
            )
        if not d["conse"]:
            with torch.no_grad():
                h.class_vectors.zero_()
            torch.nn.init.normal_(h.mlp[2].weight, std=0.02)
        model.visual.head = h
        tr.cfg.anchor = d["anchor"]
        tr.anchor_init = h.class_vectors.detach().clone()
        for n, p in model.named_parameters():
            p.requires_grad_(n == "logit_scale" or (n.startswith("visual.head.") and "classifier" not in n))
        h.class_vectors.requires_grad_(d["conse"] and d["anchor"] >= 0)
        run.model = model
        run.opt, run.params = tr._optimizer(model)
        with torch.no_grad():
            model.logit_scale.fill_(np.log(1 / 0.07))
        t0, step = time.time(), 0
        total = None
        while time.time() - t0 < args.seconds:
            lr = tr.get_lr(step, total or 10**9) if total else cfg.lr
            tr._step(run, lr)
            step += 1
            if step == 50:  # calibrate steps to the budget, then cosine over them
                total = int(args.seconds / ((time.time() - t0) / 50))
        results[name] = score(h, ev) | {"steps": step}
        print(name, json.dumps({k: round(v, 3) for k, v in results[name].items()}), flush=True)
        if "gate" in d and "k" not in d["gate"]:  # the same head with ConSE's share raised afterwards
            for w in (0.6, 0.7, 0.8):
                h.gate_bias.fill_(float(np.log(w / (1 - w))))
                print(f"   share {w}", json.dumps({k: round(v, 3) for k, v in score(h, ev).items()}), flush=True)
    print(json.dumps({"raw_p@5": ev["raw"], "results": results}, indent=1))


if __name__ == "__main__":
    main()
