"""Training over a locked pretrained image tower (the LiT recipe, both towers locked): only the head trains.

For an architecture whose config has an ``image_head`` (see :mod:`pixseek.models.heads`), the backbone
loads its pretrained weights from their package and never changes, and the text tower is locked too.
So every picture's pooled backbone features are computed once per view (view 0 as the picture is, then
``views - 1`` augmented ones; run through ONNX Runtime when present, 2-3x faster than torch on a CPU)
and cached on disk, and every caption's text vector once. A step is then the head on a batch of cached
features: thousands of steps a minute on two cores.

Loss: open_clip's ``ClipLoss`` between the head's output for one view of each concept and one of its
captions; ``anchor`` weighs an L2 pull of the class vectors towards their initial values (the class
names' text vectors), so the photo knowledge of ConSE is kept while the residual learns the rest.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from pixseek import settings
from pixseek.errors import TrainError
from pixseek.fileio import atomic_path
from pixseek.models import openclip
from pixseek.models.heads import fit_raw, pretrained_image_state, set_search

from .batches import augment, draw_batch, load_images
from .trainer import Trainer, _Run

log = logging.getLogger("pixseek")
CLASS_TEMPLATE = "a photo of a {}."
AUGMENT_SCALE = (0.45, 1.0)  # random resized crop of the cached augmented views
FEATURES_FORMAT = 3  # bump when what a cached feature file holds changes (3: views cropped as search crops)


def class_names() -> list[str]:
    """The 1,000 ImageNet class names in the classifier's order (timm's ImageNet info; first synonym)."""
    from timm.data import ImageNetInfo

    info = ImageNetInfo()
    return [info.index_to_description(i).split(",")[0].strip() for i in range(1000)]


class LockedTrainer(Trainer):
    """:class:`Trainer` for a locked backbone with a trainable head; same loop, checkpoints and export."""

    def _build(self) -> Any:
        model = super()._build()
        init = openclip.extras(self.cfg.arch).get("image_init")
        if init is None:
            raise TrainError(f"architecture {self.cfg.arch} names no pretrained image weights (image_init)")
        if not self.cfg.init:  # --init brings a trained head and backbone of its own
            loaded = model.load_state_dict(pretrained_image_state(init), strict=False)
            if loaded.unexpected_keys or any(k.startswith("visual.trunk.") for k in loaded.missing_keys):
                raise TrainError(f"the pretrained image weights do not fit {self.cfg.arch}")
        self._set_share(model, "w_train")
        set_search(model, False)  # trains the joint part; the raw part is fitted, not learned
        for name, p in model.named_parameters():
            trainable = name.startswith("visual.head.") and not name.startswith("visual.head.classifier.")
            p.requires_grad_(trainable or name == "logit_scale")
        return model

    def _set_share(self, model: Any, key: str) -> None:
        """A blended head trains at ConSE share ``w_train`` and searches at ``w`` (chosen on the
        validation split; see the model card)."""
        gate = openclip.extras(self.cfg.arch).get("image_head", {}).get("gate") or {}
        if key in gate and getattr(model.visual.head, "gated", False):
            w = float(gate[key])
            model.visual.head.gate_bias.fill_(math.log(w / (1 - w)))

    def export(self, model: Any) -> Path:
        self._set_share(model, "w")
        set_search(model, True)
        return super().export(model)

    def _text_vectors(self, model: Any, texts: list[str]) -> Any:
        import torch

        pooled = self._text_cache(model, texts)
        with torch.no_grad():
            return torch.nn.functional.normalize(model.text.proj(pooled).float(), dim=-1)

    def _features(self, model: Any, paths: list[Path]) -> Any:
        """[views, N, F] pooled backbone features (cached on disk by pictures, views, seed and weights)."""
        import torch

        facts: list = [FEATURES_FORMAT, self.cfg.views, self.cfg.seed, self.image_size, AUGMENT_SCALE]
        facts += [self.mean.flatten().tolist(), self.std.flatten().tolist()]
        for p in paths:  # the pictures themselves, not only their names
            try:
                st = Path(p).stat()
            except OSError as e:
                raise TrainError(f"cannot read training image {p}: {e.strerror or e}") from None
            facts.append([str(Path(p).resolve()), st.st_size, st.st_mtime_ns])
        h = hashlib.sha256(json.dumps(facts).encode())
        h.update(openclip.state_dict_sha256(model.visual.trunk).encode())
        path = settings.cache_dir() / "image-features" / f"{h.hexdigest()[:16]}.npy"
        if path.is_file():
            return torch.from_numpy(np.load(path).astype(np.float32))
        crop = model.visual.preprocess_cfg.get("resize_mode", "shortest") != "squash"
        images = load_images(paths, self.image_size, crop=crop)  # as search will see them
        gen = torch.Generator().manual_seed(self.cfg.seed)
        run = _trunk_runner(model.visual.trunk, self.image_size)
        out = np.empty((self.cfg.views, len(paths), model.visual.trunk.num_features), np.float16)
        for v in range(self.cfg.views):
            for i in range(0, len(paths), 64):
                x = images[i : i + 64].float().div(255)
                x = augment(x, gen, scale=AUGMENT_SCALE) if v else x
                out[v, i : i + 64] = run(((x - self.mean) / self.std).numpy())
            log.warning("features: view %d of %d done (%d pictures)", v + 1, self.cfg.views, len(paths))
        with atomic_path(path) as tmp, open(tmp, "wb") as f:
            np.save(f, out)
        return torch.from_numpy(out.astype(np.float32))

    def _setup(self) -> _Run:
        import random

        import torch
        from open_clip import ClipLoss

        cfg = self.cfg
        self.out.mkdir(parents=True, exist_ok=True)
        concepts, image_paths, captions = self._samples()
        random.seed(cfg.seed)
        torch.manual_seed(cfg.seed)
        model = self._build()
        head = model.visual.head
        if not cfg.init:  # the class vectors start as the class names' text vectors: ConSE
            with torch.no_grad():
                names = [CLASS_TEMPLATE.format(c) for c in class_names()]
                head.class_vectors.copy_(self._text_vectors(model, names))
        self.anchor_init = head.class_vectors.detach().clone()
        if cfg.anchor < 0:  # negative: class vectors stay as initialised
            head.class_vectors.requires_grad_(False)
        feats = self._features(model, image_paths)
        if getattr(head, "raw_dim", 0) and not cfg.init:  # the pictures as they are (view 0)
            fit_raw(head, feats[0])
        run = _Run(
            concepts,
            len(image_paths),
            len(captions),
            feats,
            self._text_vectors(model, captions),
            None,
            model,
            *self._optimizer(model),
            torch.Generator().manual_seed(cfg.seed),
            min(cfg.batch_size, len(concepts)),
            "cpu",
            ClipLoss(),
            {"step": 0, "total_steps": None, "seconds": 0.0},
        )
        self._resume(run)
        return run

    def _step(self, run: _Run, lr: float) -> float:
        import torch

        self._set_lr(run, lr)
        va, vb, tx = draw_batch(run.concepts, run.batch, run.gen)
        head = run.model.visual.head
        views = torch.randint(run.images.shape[0], (len(va),), generator=run.gen)
        f = torch.nn.functional.normalize(head(run.images[views, torch.tensor(va)]), dim=-1)
        scale = run.model.logit_scale.exp()
        loss = run.loss_fn(f, run.cached[tx], scale)
        if self.cfg.image_loss:  # another view (the other art style, where there is one) of each concept
            other = (views + 1 + torch.randint(max(1, run.images.shape[0] - 1), (len(vb),), generator=run.gen)) % (
                run.images.shape[0]
            )
            g = torch.nn.functional.normalize(head(run.images[other, torch.tensor(vb)]), dim=-1)
            loss = loss + self.cfg.image_loss * run.loss_fn(f, g, scale)
        if self.cfg.anchor > 0:
            loss = loss + self.cfg.anchor * (head.class_vectors - self.anchor_init).pow(2).sum(-1).mean()
        return self._apply(run, loss)


def _trunk_runner(trunk: Any, size: int) -> Any:
    """A function pixels (float32 NCHW) -> pooled features: the trunk in ONNX Runtime, else in torch."""
    import torch

    try:
        import onnxruntime as ort
    except ImportError:
        ort = None
    if ort is not None:
        with tempfile.TemporaryDirectory(prefix="pixseek-trunk-") as folder, torch.no_grad():
            path = Path(folder) / "trunk.onnx"
            torch.onnx.export(
                trunk.eval(),
                (torch.zeros(1, 3, size, size),),
                str(path),
                input_names=["x"],
                output_names=["y"],
                dynamic_axes={"x": {0: "b"}, "y": {0: "b"}},
                dynamo=False,
            )
            session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        return lambda x: session.run(None, {"x": x})[0]
    trunk = trunk.eval().to(memory_format=torch.channels_last)

    def run(x: np.ndarray) -> np.ndarray:
        with torch.inference_mode():
            return trunk(torch.from_numpy(x).to(memory_format=torch.channels_last)).numpy()

    return run
