"""CPU embedding on ONNX Runtime: the model's exported towers (``index/export.py``), no open_clip, no
torch model.

On a CPU, ``pixseek index`` embeds with the ONNX image tower the first run of a model exported: it
starts without importing open_clip or building the model (seconds saved on every run), and ONNX
Runtime's kernels run a ViT forward pass faster than torch's on the CPUs measured (bench/RESULTS.md).
The export is found by the model spec's source key (its files and versions), so changed weights are
never embedded with a stale export. Vectors match the torch path to float precision (same model id,
same pixels: :func:`preprocess_array` is open_clip's validation transform on PIL). Text goes through
the exported text tower when there is one, else through the torch model, loaded only then.
``PIXSEEK_RUNTIME=torch`` or ``pixseek index --runtime torch`` keeps indexing on torch.
"""
from __future__ import annotations

import html
import os
from pathlib import Path
from typing import Sequence

import numpy as np
from PIL import Image

try:
    from ftfy import fix_text as _fix
except ImportError:  # pragma: no cover - ftfy comes with open_clip
    def _fix(text: str) -> str:
        return text

RUNTIMES = ("auto", "torch")
HEAVY_TOWER_BYTES = 64 << 20  # an exported image tower this big runs with spinning threads (see below)
_RESAMPLE = {"bicubic": Image.BICUBIC, "bilinear": Image.BILINEAR, "nearest": Image.NEAREST}


def clean_text(text: str) -> str:
    """open_clip's HFTokenizer clean-up (ftfy, HTML entities, whitespace) before tokenising."""
    return " ".join(html.unescape(html.unescape(_fix(text))).split())


def has_hf_text(folder: Path, meta: dict) -> bool:
    return (folder / "text.onnx").is_file() and meta.get("tokenizer", {}).get("kind") == "hf"


def hf_tokenizer(folder: Path, meta: dict):
    """The exported tokenizer.json with the model's padding and truncation (``tokenizers`` package)."""
    from tokenizers import Tokenizer

    cfg = meta["tokenizer"]
    tok = Tokenizer.from_file(str(folder / "tokenizer.json"))
    tok.enable_truncation(max_length=cfg["context_length"])
    tok.enable_padding(length=cfg["context_length"], pad_id=cfg["pad_id"])
    return tok


def tokenize(tok, texts: Sequence[str]) -> np.ndarray:
    return np.array([e.ids for e in tok.encode_batch([clean_text(t) for t in texts])], dtype=np.int64)


def preprocess_array(img: Image.Image, size: int, mean, std, interpolation: str = "bicubic",
                     resize_mode: str = "shortest") -> np.ndarray:
    """PIL image -> CHW float32, as open_clip's validation transform: resize (shortest side, or squash)
    with PIL, centre crop, scale to [0, 1], normalise."""
    w, h = img.size
    resample = _RESAMPLE.get(interpolation, Image.BICUBIC)
    if resize_mode == "squash":
        img = img.resize((size, size), resample)
    else:
        if w <= h:
            nw, nh = size, int(size * h / w)
        else:
            nw, nh = int(size * w / h), size
        if (nw, nh) != (w, h):
            img = img.resize((nw, nh), resample)
        left, top = int(round((nw - size) / 2.0)), int(round((nh - size) / 2.0))
        img = img.crop((left, top, left + size, top + size))
    x = np.asarray(img.convert("RGB"), dtype=np.float32) / 255.0
    x = (x - np.asarray(mean, np.float32)) / np.asarray(std, np.float32)
    return np.ascontiguousarray(x.transpose(2, 0, 1))


def runtime_setting(runtime: str | None = None) -> str:
    r = (runtime or os.environ.get("PIXSEEK_RUNTIME") or "auto").strip().lower()
    return r if r in RUNTIMES else "auto"


def cpu_only(device: str | None) -> bool:
    """Whether embedding will run on the CPU, deciding 'auto' without importing torch where no NVIDIA
    device node exists."""
    if device and device not in ("auto",):
        return device == "cpu"
    if not any(os.path.exists(p) for p in ("/dev/nvidiactl", "/dev/nvidia0", "/dev/dxg")):
        return True
    import torch

    return not torch.cuda.is_available()


class OnnxTowers:
    """A model's exported towers on ONNX Runtime: open_clip's preprocessing on PIL, the image tower, and
    the text tower with its Hugging Face tokenizer when the export has one. Sessions open on first use.
    Shared by the indexer (:class:`OnnxEmbedder`) and torch-free search (``search.fast_encoder``)."""

    def __init__(self, folder: Path, meta: dict):
        import onnxruntime as ort

        self.folder, self.meta = folder, meta
        self.model_id = meta["model_id"]
        self.dim = int(meta["dim"])
        self.image_size = int(meta["image_size"])
        self.has_text = has_hf_text(folder, meta)
        self._ort, self._opts = ort, self._options(ort)
        self._image = None
        self._text = None

    def _options(self, ort):
        opts = ort.SessionOptions()
        opts.log_severity_level = 3
        return opts

    def _session(self, name: str):
        return self._ort.InferenceSession(str(self.folder / name), self._opts, providers=["CPUExecutionProvider"])

    def preprocess(self, image) -> np.ndarray:
        m = self.meta
        return preprocess_array(image, self.image_size, m["mean"], m["std"], m.get("interpolation", "bicubic"),
                                m.get("resize_mode", "shortest"))

    def encode_tensors(self, batch) -> np.ndarray:
        """Preprocessed NCHW pixels (numpy, or a torch tensor from the decode workers) -> unit vectors."""
        if self._image is None:
            self._image = self._session("image.onnx")
        x = np.ascontiguousarray(batch.numpy() if hasattr(batch, "numpy") else batch, dtype=np.float32)
        return np.asarray(self._image.run(None, {"pixels": x})[0], dtype=np.float32)

    def encode_images(self, images: Sequence) -> np.ndarray:
        if not images:
            return np.zeros((0, self.dim), np.float32)
        return self.encode_tensors(np.stack([self.preprocess(im) for im in images]))

    def _encode_texts_onnx(self, texts: Sequence[str]) -> np.ndarray:
        if self._text is None:
            self._text = (hf_tokenizer(self.folder, self.meta), self._session("text.onnx"))
        tok, sess = self._text
        return np.asarray(sess.run(None, {"ids": tokenize(tok, texts)})[0], dtype=np.float32)


class OnnxEmbedder(OnnxTowers):
    """The :class:`index.embed.Embedder` interface over an exported image (and text) tower."""

    device = "cpu"
    runtime = "onnx"

    def __init__(self, folder: Path, meta: dict, spec: str, threads: int | None = None):
        self._spec, self._threads = spec, threads
        super().__init__(folder, meta)
        self._image = self._session("image.onnx")  # a damaged file fails here, before any work
        self._torch = None

    def _options(self, ort):
        opts = super()._options(ort)
        cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
        opts.intra_op_num_threads = self._threads or cores
        # ORT's threads spin-wait between operators. For a heavy tower (ViT-B class) that is ~15 % faster
        # and the model is the bottleneck; a light tower is decode-bound, and spinning takes the cores the
        # decode workers need (bench/indexing.py, 8 MP JPEGs: ~10 % slower). File size stands for cost.
        heavy = (self.folder / "image.onnx").stat().st_size >= HEAVY_TOWER_BYTES
        opts.add_session_config_entry("session.intra_op.allow_spinning", "1" if heavy else "0")
        return opts

    @classmethod
    def for_spec(cls, spec: str | None) -> "OnnxEmbedder | None":
        """The exported encoders for exactly these weights, or None (never exported, weights changed,
        onnxruntime missing)."""
        from .export import exported_for
        from .models import resolve

        src = resolve(spec)
        found = exported_for(src)
        if found is None:
            return None
        try:
            return cls(found[0], found[1], src.spec)
        except Exception:  # noqa: BLE001 - no onnxruntime, or a damaged file: torch does the job
            return None

    @property
    def spec(self) -> str:
        return self._spec

    def _torch_embedder(self):
        """The torch model, loaded on first use only (text without an exported text tower)."""
        if self._torch is None:
            from .embed import Embedder

            emb = Embedder.from_spec(self._spec, "cpu")
            if emb.model_id != self.model_id:  # the pointer and the weights disagree: never mix models
                raise RuntimeError(f"exported encoders are for {self.model_id}, the weights are {emb.model_id}")
            self._torch = emb
        return self._torch

    @property
    def m(self):
        return self._torch_embedder().m

    def encode_texts(self, texts: Sequence[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dim), np.float32)
        if self.has_text:
            return self._encode_texts_onnx(texts)
        return self._torch_embedder().encode_texts(texts)
