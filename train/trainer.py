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

import contextlib
import hashlib
import json
import logging
import math
import os
import random
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from pixseek import settings
from pixseek.errors import TrainError
from pixseek.fileio import atomic_path, atomic_write
from pixseek.models import openclip, registry

from .batches import Concept, augment, draw_batch, group, load_images
from .datasets import read_manifest

log = logging.getLogger("pixseek")


@dataclass
class TrainConfig:
    data: str  # manifest (JSONL)
    out: str  # output folder: checkpoint.pt, NAME.safetensors + NAME.json, log
    arch: str = "pixseek-minilm-vit"  # a config in models/configs (or an open_clip architecture)
    name: str = "model"
    init: str | None = None  # fine-tune from this model spec instead of random init
    lock_text: bool = True  # freeze a pretrained (HF) text tower
    epochs: float | None = 30.0
    minutes: float | None = None  # wall-clock budget instead of epochs
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
    more_data: tuple = ()  # further manifests (--data repeated): every run trains on all of them
    views: int = 3  # locked backbone: cached views per picture (the first unaugmented)
    anchor: float = 0.0  # locked backbone: pull of the class vectors to their start (< 0: frozen)


@dataclass
class _Run:
    """Everything a training run holds while it loops."""

    concepts: list[Concept]
    n_images: int
    n_captions: int
    images: Any  # uint8 [N, 3, S, S]
    cached: Any  # pooled text features of a locked HF text tower, or None
    tokens: Any  # caption tokens when the text tower trains, or None
    model: Any
    opt: Any
    params: list
    gen: Any
    batch: int
    device: str
    loss_fn: Any
    state: dict = field(default_factory=dict)  # step, total_steps, seconds


class Trainer:
    def __init__(self, cfg: TrainConfig):
        self.cfg = cfg
        self.out = Path(cfg.out)

    # --- setup ------------------------------------------------------------------------------------
    def _build(self) -> Any:
        import torch

        cfg = openclip.model_config(self.cfg.arch)
        if cfg is None:
            raise TrainError(f"unknown architecture '{self.cfg.arch}' (configs live in {registry.configs_dir()})")
        self.hf_text = bool(cfg.get("text_cfg", {}).get("hf_model_name"))
        model = openclip.create(self.cfg.arch, seed=self.cfg.seed)
        if self.cfg.init:
            src = registry.resolve(self.cfg.init)
            if src.checkpoint is None:
                raise TrainError(f"--init needs a model with a checkpoint file, not '{self.cfg.init}'")
            openclip.load_weights(model, src.checkpoint, "text.transformer." if self.hf_text else None)
        if self.hf_text and self.cfg.lock_text:
            model.lock_text_tower(unlocked_layers=0, freeze_layer_norm=True)
        self.tokenizer = openclip.transforms(model, self.cfg.arch)[1]
        self.mean = torch.tensor(model.visual.preprocess_cfg["mean"]).view(1, 3, 1, 1)
        self.std = torch.tensor(model.visual.preprocess_cfg["std"]).view(1, 3, 1, 1)
        size = model.visual.image_size
        self.image_size = size[0] if isinstance(size, (tuple, list)) else int(size)
        own = registry.config_file(self.cfg.arch)
        self.arch_cfg = json.loads(own.read_text()) if own else cfg  # exported as written (pkg: kept)
        return model

    def _text_cache(self, model: Any, captions: list[str]) -> Any:
        """Pooled outputs of the locked HF text transformer for every caption (cached on disk)."""
        import torch

        text_cfg = json.dumps(self.arch_cfg.get("text_cfg", {}), sort_keys=True)
        key = hashlib.sha256(("\n".join(captions) + text_cfg).encode()).hexdigest()[:16]
        path = settings.cache_dir() / "text-features" / f"{key}.pt"
        if path.is_file():
            return torch.load(path, weights_only=True)
        feats = []
        text = model.text
        with torch.inference_mode():
            for i in range(0, len(captions), 256):
                tok = self.tokenizer(captions[i : i + 256])
                mask = (tok != text.config.pad_token_id).long()
                out = text.transformer(input_ids=tok, attention_mask=mask)
                feats.append(text.pooler(out, mask).float())
        feats = torch.cat(feats)
        with atomic_path(path) as tmp:
            torch.save(feats, tmp)
        return feats

    def _samples(self) -> tuple[list[Concept], list[Path], list[str]]:
        """(concepts, image paths, captions) of the training splits of every manifest (--data, repeatable)."""
        cfg = self.cfg
        samples = []
        for manifest in (cfg.data, *cfg.more_data):
            samples += [s for s in read_manifest(Path(manifest)) if s.split in cfg.splits]
        if not samples:
            raise TrainError(f"no training samples in {cfg.data} for splits {', '.join(cfg.splits)}")
        concepts, image_paths, captions = group(samples)
        if len(concepts) < 2:
            raise TrainError("training needs at least two concepts (contrastive loss)")
        return concepts, image_paths, captions

    def _setup(self) -> _Run:
        import torch
        from open_clip import ClipLoss

        cfg = self.cfg
        self.out.mkdir(parents=True, exist_ok=True)
        concepts, image_paths, captions = self._samples()
        random.seed(cfg.seed)
        np.random.seed(cfg.seed)
        torch.manual_seed(cfg.seed)
        device = cfg.device or ("cuda" if torch.cuda.is_available() else "cpu")
        model = self._build().to(device)
        images = load_images(image_paths, self.image_size)
        cached = self._text_cache(model, captions).to(device) if self.hf_text and cfg.lock_text else None
        run = _Run(
            concepts,
            len(image_paths),
            len(captions),
            images,
            cached,
            None if cached is not None else self.tokenizer(captions),
            model,
            *self._optimizer(model),
            torch.Generator().manual_seed(cfg.seed),
            min(cfg.batch_size, len(concepts)),
            device,
            ClipLoss(),
            {"step": 0, "total_steps": None, "seconds": 0.0},
        )
        self._resume(run)
        return run

    def _optimizer(self, model: Any) -> tuple[Any, list]:
        """AdamW with weight decay on matrices only (nanoGPT's configure_optimizers)."""
        import torch

        named = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
        decay = [p for n, p in named if p.ndim >= 2 and "embedding" not in n]
        no_decay = [p for n, p in named if not (p.ndim >= 2 and "embedding" not in n)]
        opt = torch.optim.AdamW(
            [{"params": decay, "weight_decay": self.cfg.weight_decay}, {"params": no_decay, "weight_decay": 0.0}],
            lr=self.cfg.lr,
            betas=(0.9, 0.98),
            eps=1e-6,
        )
        return opt, [p for _, p in named]

    def _resume(self, run: _Run) -> None:
        import torch

        ckpt = self.out / "checkpoint.pt"
        if not (self.cfg.resume and ckpt.is_file()):
            return
        saved = torch.load(ckpt, weights_only=True, map_location="cpu")
        run.model.load_state_dict(saved["model"], strict=False)
        run.opt.load_state_dict(saved["optimizer"])
        run.gen.set_state(saved["generator"])
        run.state.update(
            step=int(saved["step"]), total_steps=int(saved["total_steps"]), seconds=float(saved["seconds"])
        )
        log.warning("resuming from %s at step %d of %d", ckpt, run.state["step"], run.state["total_steps"])

    # --- one step ---------------------------------------------------------------------------------
    def get_lr(self, step: int, total: int) -> float:
        """Linear warm-up, then cosine decay to zero at ``total``."""
        warm = max(1, min(self.cfg.warmup, total // 10))  # short runs still get most steps at full rate
        if step < warm:
            return self.cfg.lr * (step + 1) / warm
        p = (step - warm) / max(1, total - warm)
        return 0.5 * self.cfg.lr * (1 + math.cos(math.pi * min(1.0, p)))

    def _step(self, run: _Run, lr: float) -> float:
        import torch

        self._set_lr(run, lr)
        va, vb, tx = draw_batch(run.concepts, run.batch, run.gen)
        xa = augment(run.images[va].float().div(255), run.gen)
        xb = augment(run.images[vb].float().div(255), run.gen)
        x = ((torch.cat([xa, xb]) - self.mean) / self.std).to(run.device, non_blocking=True)
        ctx = (
            torch.autocast("cuda", dtype=torch.bfloat16) if run.device.startswith("cuda") else contextlib.nullcontext()
        )
        with ctx:
            f = run.model.encode_image(x, normalize=True).float()
            if run.cached is not None:
                t = torch.nn.functional.normalize(run.model.text.proj(run.cached[tx]).float(), dim=-1)
            else:
                t = run.model.encode_text(run.tokens[tx].to(run.device), normalize=True).float()
        fa, fb = f[: run.batch], f[run.batch :]
        scale = run.model.logit_scale.exp()
        loss = 0.5 * (run.loss_fn(fa, t, scale) + run.loss_fn(fb, t, scale))
        if self.cfg.image_loss:
            loss = loss + self.cfg.image_loss * run.loss_fn(fa, fb, scale)
        return self._apply(run, loss)

    @staticmethod
    def _set_lr(run: _Run, lr: float) -> None:
        for g in run.opt.param_groups:
            g["lr"] = lr

    @staticmethod
    def _apply(run: _Run, loss: Any) -> float:
        """One optimiser step on ``loss`` (clipped gradients, temperature kept in CLIP's range)."""
        import torch

        run.opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(run.params, 1.0)
        run.opt.step()
        with torch.no_grad():
            run.model.logit_scale.clamp_(0, math.log(100))
        return float(loss.detach())

    # --- the loop ---------------------------------------------------------------------------------
    def _total_steps(self, run: _Run) -> int:
        """Steps for ``--epochs``, or for ``--minutes`` from the time of three calibration steps (which
        count as training)."""
        if run.state["total_steps"] is not None:
            return run.state["total_steps"]
        if self.cfg.minutes:
            t0 = time.perf_counter()
            for _ in range(3):
                self._step(run, self.get_lr(0, 10**9))
                run.state["step"] += 1
            per = (time.perf_counter() - t0) / 3
            run.state["seconds"] += time.perf_counter() - t0
            return max(run.state["step"] + 1, int(self.cfg.minutes * 60 / per))
        steps_per_epoch = max(1, len(run.concepts) // run.batch)
        return max(1, int(round((self.cfg.epochs or 1) * steps_per_epoch)))

    def run(self) -> dict:
        from tqdm import tqdm

        run = self._setup()
        run.model.train()
        total = run.state["total_steps"] = self._total_steps(run)
        bar = tqdm(
            total=total, initial=run.state["step"], unit="step", disable=not self.cfg.progress, dynamic_ncols=True
        )
        try:
            with open(self.out / "train_log.jsonl", "a") as logf:
                first, last, ema = self._loop(run, total, logf, bar)
        finally:
            bar.close()
        run.model.eval()
        weights = self.export(run.model)
        return {
            "steps": run.state["step"],
            "total_steps": total,
            "first_loss": first,
            "last_loss": last,
            "ema_loss": ema,
            "seconds": round(run.state["seconds"], 1),
            "weights": str(weights),
            "concepts": len(run.concepts),
            "images": run.n_images,
            "captions": run.n_captions,
            "config": asdict(self.cfg),
        }

    def _loop(self, run: _Run, total: int, logf: Any, bar: Any) -> tuple[float | None, float | None, float | None]:
        first = last = ema = None
        t_saved = time.perf_counter()
        while run.state["step"] < total:
            lr = self.get_lr(run.state["step"], total)
            t = time.perf_counter()
            loss = self._step(run, lr)
            run.state["seconds"] += time.perf_counter() - t
            run.state["step"] += 1
            step = run.state["step"]
            first = loss if first is None else first
            last = loss
            ema = loss if ema is None else 0.95 * ema + 0.05 * loss
            ips = 2 * run.batch / max(time.perf_counter() - t, 1e-9)
            bar.update(1)
            bar.set_postfix(loss=f"{ema:.3f}", img_s=f"{ips:.0f}", refresh=False)
            if step % 20 == 0 or step == total:
                scale = round(run.model.logit_scale.detach().exp().item(), 2)
                logf.write(
                    json.dumps(
                        {
                            "step": step,
                            "loss": round(loss, 4),
                            "ema": round(ema, 4),
                            "lr": lr,
                            "scale": scale,
                            "img_s": round(ips, 1),
                        }
                    )
                    + "\n"
                )
                logf.flush()
            if step % self.cfg.checkpoint_every == 0 or step == total or time.perf_counter() - t_saved > 120:
                self._save_checkpoint(run)
                t_saved = time.perf_counter()
        return first, last, ema

    # --- files ------------------------------------------------------------------------------------
    def _trainable_state(self, model: Any) -> dict:
        skip = "text.transformer." if self.hf_text else None
        return {
            k: v.detach().cpu().contiguous() for k, v in model.state_dict().items() if not (skip and k.startswith(skip))
        }

    def _save_checkpoint(self, run: _Run) -> None:
        import torch

        with atomic_path(self.out / "checkpoint.pt") as tmp:
            torch.save(
                {
                    "model": self._trainable_state(run.model),
                    "optimizer": run.opt.state_dict(),
                    "generator": run.gen.get_state(),
                    "step": run.state["step"],
                    "total_steps": run.state["total_steps"],
                    "seconds": run.state["seconds"],
                },
                tmp,
            )

    def export(self, model: Any) -> Path:
        """fp16 safetensors of everything but a package-provided text transformer, config beside it."""
        from safetensors.torch import save_file

        weights = self.out / f"{self.cfg.name}.safetensors"
        state = {k: (v.half() if v.is_floating_point() else v) for k, v in self._trainable_state(model).items()}
        with atomic_path(weights) as tmp:
            save_file(state, str(tmp), metadata={"arch": self.cfg.arch, "format": "pt"})
            os.chmod(tmp, 0o644)
        atomic_write(self.out / f"{self.cfg.name}.json", json.dumps(self.arch_cfg, indent=2) + "\n")
        return weights
