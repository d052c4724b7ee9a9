"""``pixseek train``: contrastive image-caption training of an open_clip model (the CLIP recipe).

Batches hold distinct concepts only. Each concept contributes two views (its two art styles when it has
them, else two augmentations of one picture) and one caption; the loss is open_clip's ``ClipLoss``
between each view and the captions plus, weighted by ``image_loss``, between the two views (which
teaches the image tower that a Twemoji and a Noto picture of one emoji are the same thing). Learnable
temperature, AdamW, linear warm-up + cosine decay, batched augmentation (random resized crop +
colour jitter), fixed seed, resumable checkpoints (tensors only, loaded with ``weights_only=True``),
bf16 autocast on CUDA. A locked pretrained Hugging Face text tower is run once per caption and cached.
"""
from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import random
import time
from collections import defaultdict
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from index.errors import PixseekError

from .datasets import Sample, read_manifest

log = logging.getLogger("pixseek")


class TrainError(PixseekError):
    """Training could not start or continue."""


@dataclass
class TrainConfig:
    data: str                          # manifest (JSONL)
    out: str                           # output folder: checkpoint.pt, NAME.safetensors + NAME.json, log
    arch: str = "pixseek-minilm-vit"   # a config in models/configs (or an open_clip architecture)
    name: str = "model"
    init: str | None = None            # fine-tune from this model spec instead of random init
    lock_text: bool = True             # freeze a pretrained (HF) text tower
    epochs: float | None = 30.0
    minutes: float | None = None       # wall-clock budget instead of epochs
    batch_size: int = 256
    lr: float = 2e-3
    weight_decay: float = 0.1
    warmup: int = 100
    image_loss: float = 1.0
    seed: int = 0
    splits: tuple = ("train",)
    device: str | None = None
    checkpoint_every: int = 200
    resume: bool = True
    progress: bool = False
    extra: dict = field(default_factory=dict)


@dataclass
class _Concept:
    variants: list[tuple[list[int], list[int]]]   # (image indices, caption indices) per variant


def _group(samples: list[Sample]) -> tuple[list[_Concept], list[Path], list[str]]:
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
    concepts = [_Concept(list(v.values())) for _, v in sorted(by_concept.items())]
    return concepts, images, captions


def _load_images(paths: list[Path], size: int) -> "torch.Tensor":
    import torch
    from PIL import Image

    from index.decode import open_image

    out = torch.empty((len(paths), 3, size, size), dtype=torch.uint8)
    for i, p in enumerate(paths):
        try:
            img = open_image(str(p)).image
        except PixseekError as e:
            raise TrainError(f"cannot read training image {p}: {e}") from None
        img = img.resize((size, size), Image.BICUBIC) if img.size != (size, size) else img
        out[i] = torch.from_numpy(np.asarray(img, dtype=np.uint8).copy()).permute(2, 0, 1)
    return out


def augment(x, gen, *, scale=(0.65, 1.0), max_shift=0.12, jitter=0.2):
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


class Trainer:
    def __init__(self, cfg: TrainConfig):
        self.cfg = cfg
        self.out = Path(cfg.out)

    # --- model ------------------------------------------------------------------------------------
    def _build(self):
        import open_clip
        import open_clip.factory as ocf
        import torch

        from index import models

        models._register_configs()
        cfg = ocf.get_model_config(self.cfg.arch)
        if cfg is None:
            raise TrainError(f"unknown architecture '{self.cfg.arch}' (configs live in {models.CONFIGS_DIR})")
        self.hf_text = bool(cfg.get("text_cfg", {}).get("hf_model_name"))
        if self.hf_text:
            models.quiet_transformers()
        torch.manual_seed(self.cfg.seed)
        logging.disable(logging.WARNING)
        try:
            model = open_clip.create_model(self.cfg.arch, pretrained=None, pretrained_text=self.hf_text)
        finally:
            logging.disable(logging.NOTSET)
        if self.cfg.init:
            src = models.resolve(self.cfg.init)
            if src.checkpoint is None:
                raise TrainError(f"--init needs a model with a checkpoint file, not '{self.cfg.init}'")
            models.load_weights(model, src.checkpoint, "text.transformer." if self.hf_text else None)
        if self.hf_text and self.cfg.lock_text:
            model.lock_text_tower(unlocked_layers=0, freeze_layer_norm=True)
        self.tokenizer = open_clip.get_tokenizer(self.cfg.arch)
        self.mean = torch.tensor(model.visual.preprocess_cfg["mean"]).view(1, 3, 1, 1)
        self.std = torch.tensor(model.visual.preprocess_cfg["std"]).view(1, 3, 1, 1)
        size = model.visual.image_size
        self.image_size = size[0] if isinstance(size, (tuple, list)) else int(size)
        self.arch_cfg = json.loads((models.CONFIGS_DIR / f"{self.cfg.arch}.json").read_text()) \
            if (models.CONFIGS_DIR / f"{self.cfg.arch}.json").is_file() else cfg
        return model

    def _text_cache(self, model, captions: list[str]):
        """Pooled outputs of the locked HF text transformer for every caption (cached on disk)."""
        import torch

        text_cfg = json.dumps(self.arch_cfg.get("text_cfg", {}), sort_keys=True)
        key = hashlib.sha256(("\n".join(captions) + text_cfg).encode()).hexdigest()[:16]
        from index.paths import cache_dir

        path = cache_dir() / "text-features" / f"{key}.pt"
        path.parent.mkdir(parents=True, exist_ok=True)
        if path.is_file():
            return torch.load(path, weights_only=True)
        feats = []
        text = model.text
        with torch.inference_mode():
            for i in range(0, len(captions), 256):
                tok = self.tokenizer(captions[i:i + 256])
                mask = (tok != text.config.pad_token_id).long()
                out = text.transformer(input_ids=tok, attention_mask=mask)
                feats.append(text.pooler(out, mask).float())
        feats = torch.cat(feats)
        tmp = path.with_suffix(f".{os.getpid()}.tmp")
        torch.save(feats, tmp)
        os.replace(tmp, path)
        return feats

    # --- run --------------------------------------------------------------------------------------
    def run(self) -> dict:
        import torch
        from open_clip import ClipLoss
        from tqdm import tqdm

        cfg = self.cfg
        self.out.mkdir(parents=True, exist_ok=True)
        samples = [s for s in read_manifest(Path(cfg.data)) if s.split in cfg.splits]
        if not samples:
            raise TrainError(f"no training samples in {cfg.data} for splits {', '.join(cfg.splits)}")
        concepts, image_paths, captions = _group(samples)
        if len(concepts) < 2:
            raise TrainError("training needs at least two concepts (contrastive loss)")
        random.seed(cfg.seed)
        np.random.seed(cfg.seed)
        torch.manual_seed(cfg.seed)
        device = cfg.device or ("cuda" if torch.cuda.is_available() else "cpu")
        model = self._build().to(device)
        images = _load_images(image_paths, self.image_size)
        cached = self._text_cache(model, captions).to(device) if self.hf_text and cfg.lock_text else None
        tokens = None if cached is not None else self.tokenizer(captions)

        params = [p for p in model.parameters() if p.requires_grad]
        decay = [p for n, p in model.named_parameters() if p.requires_grad and p.ndim >= 2
                 and "embedding" not in n]
        no_decay = [p for n, p in model.named_parameters() if p.requires_grad and not (p.ndim >= 2
                    and "embedding" not in n)]
        opt = torch.optim.AdamW([{"params": decay, "weight_decay": cfg.weight_decay},
                                 {"params": no_decay, "weight_decay": 0.0}], lr=cfg.lr, betas=(0.9, 0.98),
                                eps=1e-6)
        bs = min(cfg.batch_size, len(concepts))
        steps_per_epoch = max(1, len(concepts) // bs)
        loss_fn = ClipLoss()
        gen = torch.Generator().manual_seed(cfg.seed)
        state = {"step": 0, "total_steps": None, "seconds": 0.0}
        ckpt = self.out / "checkpoint.pt"
        if cfg.resume and ckpt.is_file():
            saved = torch.load(ckpt, weights_only=True, map_location="cpu")
            model.load_state_dict(saved["model"], strict=False)
            opt.load_state_dict(saved["optimizer"])
            gen.set_state(saved["generator"])
            state.update(step=int(saved["step"]), total_steps=int(saved["total_steps"]),
                         seconds=float(saved["seconds"]))
            log.warning("resuming from %s at step %d of %d", ckpt, state["step"], state["total_steps"])

        def step_once(step: int) -> float:
            order = torch.randperm(len(concepts), generator=gen)[:bs].tolist()
            va, vb, tx = [], [], []
            for ci in order:
                var = concepts[ci].variants
                # The first variant is the base picture (manifest order): half the draws, so concepts
                # with many skin tones still see their plain emoji often.
                vi = 0 if len(var) == 1 or float(torch.rand(1, generator=gen)) < 0.5 \
                    else int(torch.randint(1, len(var), (1,), generator=gen))
                imgs, caps = var[vi]
                pick = torch.randperm(len(imgs), generator=gen).tolist()
                va.append(imgs[pick[0]])
                vb.append(imgs[pick[1] if len(pick) > 1 else pick[0]])
                tx.append(caps[int(torch.randint(len(caps), (1,), generator=gen))])
            xa = augment(images[va].float().div(255), gen)
            xb = augment(images[vb].float().div(255), gen)
            x = ((torch.cat([xa, xb]) - self.mean) / self.std).to(device, non_blocking=True)
            ctx = torch.autocast("cuda", dtype=torch.bfloat16) if device.startswith("cuda") else _null()
            with ctx:
                f = model.encode_image(x, normalize=True).float()
                if cached is not None:
                    t = torch.nn.functional.normalize(model.text.proj(cached[tx]).float(), dim=-1)
                else:
                    t = model.encode_text(tokens[tx].to(device), normalize=True).float()
            fa, fb = f[:bs], f[bs:]
            scale = model.logit_scale.exp()
            loss = 0.5 * (loss_fn(fa, t, scale) + loss_fn(fb, t, scale))
            if cfg.image_loss:
                loss = loss + cfg.image_loss * loss_fn(fa, fb, scale)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(params, 1.0)
            opt.step()
            with torch.no_grad():
                model.logit_scale.clamp_(0, math.log(100))
            return float(loss.detach())

        def set_lr(step: int, total: int) -> float:
            warm = max(1, min(cfg.warmup, total // 10))  # short runs still get most steps at full rate
            if step < warm:
                lr = cfg.lr * (step + 1) / warm
            else:
                p = (step - warm) / max(1, total - warm)
                lr = 0.5 * cfg.lr * (1 + math.cos(math.pi * min(1.0, p)))
            for g in opt.param_groups:
                g["lr"] = lr
            return lr

        model.train()
        if state["total_steps"] is None:
            if cfg.minutes:
                t0 = time.perf_counter()
                set_lr(0, 10 ** 9)
                for _ in range(3):  # calibration steps count as training
                    step_once(state["step"])
                    state["step"] += 1
                per = (time.perf_counter() - t0) / 3
                state["seconds"] += time.perf_counter() - t0
                state["total_steps"] = max(state["step"] + 1, int(cfg.minutes * 60 / per))
            else:
                state["total_steps"] = max(1, int(round((cfg.epochs or 1) * steps_per_epoch)))
        total = state["total_steps"]
        logf = open(self.out / "train_log.jsonl", "a")
        bar = tqdm(total=total, initial=state["step"], unit="step", disable=not cfg.progress, dynamic_ncols=True)
        first_loss = last_loss = None
        ema = None
        t_last = time.perf_counter()
        try:
            while state["step"] < total:
                lr = set_lr(state["step"], total)
                t = time.perf_counter()
                loss = step_once(state["step"])
                state["seconds"] += time.perf_counter() - t
                state["step"] += 1
                first_loss = loss if first_loss is None else first_loss
                last_loss = loss
                ema = loss if ema is None else 0.95 * ema + 0.05 * loss
                ips = 2 * bs / max(time.perf_counter() - t, 1e-9)
                bar.update(1)
                bar.set_postfix(loss=f"{ema:.3f}", img_s=f"{ips:.0f}", refresh=False)
                if state["step"] % 20 == 0 or state["step"] == total:
                    logf.write(json.dumps({"step": state["step"], "loss": round(loss, 4), "ema": round(ema, 4),
                                           "lr": lr, "scale": round(model.logit_scale.detach().exp().item(), 2),
                                           "img_s": round(ips, 1)}) + "\n")
                    logf.flush()
                if state["step"] % cfg.checkpoint_every == 0 or state["step"] == total \
                        or time.perf_counter() - t_last > 120:
                    self._save_checkpoint(model, opt, gen, state)
                    t_last = time.perf_counter()
        finally:
            bar.close()
            logf.close()
        model.eval()
        weights = self.export(model)
        return {"steps": state["step"], "total_steps": total, "first_loss": first_loss, "last_loss": last_loss,
                "ema_loss": ema, "seconds": round(state["seconds"], 1), "weights": str(weights),
                "concepts": len(concepts), "images": len(image_paths), "captions": len(captions),
                "config": {k: v for k, v in asdict(cfg).items() if k != "extra"}}

    def _trainable_state(self, model) -> dict:
        skip = "text.transformer." if self.hf_text else None
        return {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()
                if not (skip and k.startswith(skip))}

    def _save_checkpoint(self, model, opt, gen, state) -> None:
        import torch

        ckpt = self.out / "checkpoint.pt"
        tmp = ckpt.with_suffix(".tmp")
        torch.save({"model": self._trainable_state(model), "optimizer": opt.state_dict(),
                    "generator": gen.get_state(), "step": state["step"], "total_steps": state["total_steps"],
                    "seconds": state["seconds"]}, tmp)
        os.replace(tmp, ckpt)

    def export(self, model) -> Path:
        """fp16 safetensors of everything but a package-provided text transformer, config beside it."""
        from safetensors.torch import save_file

        weights = self.out / f"{self.cfg.name}.safetensors"
        state = {k: (v.half() if v.is_floating_point() else v) for k, v in self._trainable_state(model).items()}
        tmp = weights.with_suffix(".tmp")
        save_file(state, str(tmp), metadata={"arch": self.cfg.arch, "format": "pt"})
        os.chmod(tmp, 0o644)
        os.replace(tmp, weights)
        (self.out / f"{self.cfg.name}.json").write_text(json.dumps(self.arch_cfg, indent=2) + "\n")
        return weights


class _null:
    def __enter__(self):
        return self

    def __exit__(self, *a):
        return False
