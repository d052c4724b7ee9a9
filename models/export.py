"""Export a torch model's towers to ONNX, and find the export again: by model id, or by its source.

Written once per model id (after an index run, when the model is loaded anyway) into
``$XDG_CACHE_HOME/pixseek/encoders/<model id>/``: ``image.onnx`` (normalised pixels -> unit vector),
``text.onnx`` (token ids -> unit vector, only for Hugging Face tokenizers, which the ``tokenizers``
package runs without torch) and ``encoder.json`` (preprocessing and tokenizer facts). A pointer file
``encoders/by-source/<source key>.json`` names the model id made from exactly these weights, so
indexing can use the export without loading the weights to learn their id.
"""

from __future__ import annotations

import contextlib
import copy
import hashlib
import json
import logging
import os
import re
import shutil
import warnings
from collections.abc import Callable
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from pixseek import settings
from pixseek.fileio import atomic_dir, atomic_path, atomic_write

from .registry import ModelSource, config_file, source_config, text_tower_dir

if TYPE_CHECKING:
    from .torch_encoder import TorchEncoder

log = logging.getLogger("pixseek")
FORMAT = 1


def encoder_dir(model_id: str) -> Path:
    return settings.cache_dir() / "encoders" / re.sub(r"[^A-Za-z0-9._-]+", "_", model_id)


def read_export(model_id: str | None) -> tuple[Path, dict] | None:
    """(folder, encoder.json) of ``model_id``'s export, or None (none, another format, damaged)."""
    if not model_id:
        return None
    folder = encoder_dir(model_id)
    try:
        meta = json.loads((folder / "encoder.json").read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT or meta.get("model_id") != model_id:
        return None
    if not (folder / "image.onnx").is_file():
        return None
    return folder, meta


# --- finding an export by the weights it was made from -------------------------------------------


def _stat(path: Path) -> list | None:
    try:
        st = os.stat(path)
        return [str(Path(path).resolve()), st.st_size, st.st_mtime_ns]
    except OSError:
        return None


def _version(dist: str) -> str | None:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


def source_key(src: ModelSource) -> str:
    """What identifies a model spec's weights without loading them: the spec's fields, the files behind
    it (path, size, mtime) and the library versions that build random weights. A changed file gives a
    new key, so a stale export is never used for it."""
    files = [src.checkpoint, src.config_file, config_file(src.arch)]
    try:
        tower = text_tower_dir(source_config(src))
        if tower is not None:
            files.append(tower / "model.safetensors")
    except Exception:
        files.append(Path("missing-text-tower"))
    facts = {
        "spec": src.spec,
        "name": src.name,
        "arch": src.arch,
        "kind": src.kind,
        "tag": src.tag,
        "seed": src.seed,
        "files": [_stat(f) for f in files if f is not None],
        "open_clip": _version("open_clip_torch"),
        "torch": _version("torch") if src.kind == "random" else None,
    }
    return hashlib.sha256(json.dumps(facts, sort_keys=True, default=str).encode()).hexdigest()[:24]


def pointer_path(src: ModelSource) -> Path:
    """The file naming the model id exported from exactly these weights."""
    return settings.cache_dir() / "encoders" / "by-source" / f"{source_key(src)}.json"


def exported_for(src: ModelSource) -> tuple[Path, dict] | None:
    """(folder, encoder.json) of the export made from exactly these weights, or None."""
    try:
        model_id = json.loads(pointer_path(src).read_text())["model_id"]
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return read_export(model_id)


def _write_pointer(enc: TorchEncoder) -> None:
    try:
        atomic_write(pointer_path(enc.source), json.dumps({"model_id": enc.model_id, "spec": enc.spec}))
    except OSError as e:
        log.info("could not record the export of %s: %s", enc.model_id, e)


# --- text vectors cached beside the export ------------------------------------------------------


def cached_text_vectors(model_id: str, texts: list[str], encode: Callable[[list[str]], np.ndarray]) -> np.ndarray:
    """The model's vectors for ``texts``, computed once per model and kept beside its export (the ANN
    tuning prompts: every new index of that model reuses them)."""
    digest = hashlib.sha256("\n".join(texts).encode()).hexdigest()[:12]
    path = encoder_dir(model_id) / f"prompts-{digest}.npy"
    with contextlib.suppress(OSError, ValueError):
        v = np.load(path)
        if v.shape[0] == len(texts):
            return v
    v = np.asarray(encode(texts), dtype=np.float32)
    with contextlib.suppress(OSError), atomic_path(path, keep_suffix=True) as tmp:
        np.save(tmp, v)
    return v


# --- exporting ------------------------------------------------------------------------------------


def export(enc: TorchEncoder, *, force: bool = False) -> Path | None:
    """Export ``enc``'s towers (idempotent). Returns the folder, or None when export is not possible
    (logged: export is an optimisation and never fails the caller)."""
    dest = encoder_dir(enc.model_id)
    if read_export(enc.model_id) is not None and not force:
        _write_pointer(enc)
        return dest
    try:
        import onnx  # noqa: F401  (the exporter needs it)
        import torch
    except ImportError:
        return None
    fastpath = torch.backends.mha.get_fastpath_enabled()
    try:
        # nn.MultiheadAttention's inference fast path (_native_multi_head_attention) has no ONNX form
        torch.backends.mha.set_fastpath_enabled(False)
        with atomic_dir(dest) as tmp:
            for kept in dest.glob("prompts-*.npy"):  # vectors of the same model id stay valid
                shutil.copy(kept, tmp / kept.name)
            _export_towers(enc, tmp)
        _write_pointer(enc)
        return dest
    except Exception as e:
        log.info("could not export query encoders for %s: %s", enc.model_id, str(e).splitlines()[0][:200])
        return None
    finally:
        torch.backends.mha.set_fastpath_enabled(fastpath)


def _export_towers(enc: TorchEncoder, folder: Path) -> None:
    import torch

    model = copy.deepcopy(enc.model).float().eval().cpu()  # tracing must not touch the live model
    meta: dict[str, Any] = {"format": FORMAT, "model_id": enc.model_id, "dim": enc.dim, "image_size": enc.image_size}
    meta["text_gain"] = enc.text_gain
    meta.update(_preprocess_facts(model))
    with warnings.catch_warnings(), torch.inference_mode(False), torch.no_grad():
        warnings.simplefilter("ignore")
        x = torch.zeros(2, 3, enc.image_size, enc.image_size)
        meta["fused_attention"] = _export_image_tower(model, x, folder / "image.onnx")
        tok_file = _tokenizer_file(enc)
        if tok_file is not None:
            ids = enc.tokenizer(["a photo", "two words here"])
            _trace(_tower(model, "encode_text"), ids, folder / "text.onnx", "ids")
            shutil.copy(tok_file, folder / "tokenizer.json")
            pad = int(getattr(model.text.config, "pad_token_id", 0) or 0)
            meta["tokenizer"] = {"kind": "hf", "context_length": int(ids.shape[1]), "pad_id": pad}
    (folder / "encoder.json").write_text(json.dumps(meta, indent=1))


def _tower(model: Any, method: str) -> Any:
    """One tower of ``model`` as a torch Module with L2-normalised output, as the torch path returns it."""
    import torch

    class Tower(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.m = model  # a submodule: its weights export as initializers

        def forward(self, x: Any) -> Any:
            return torch.nn.functional.normalize(getattr(self.m, method)(x), dim=-1)

    return Tower()


def _export_image_tower(model: Any, example: Any, path: Path) -> int:
    """Export the image tower, its self-attention fused where it can be (:mod:`.onnx_attention`) and the
    result checked against torch; the plain graph when fusing is not possible or not exact. Returns
    the number of fused attention blocks."""
    from .onnx_attention import fused_attention

    tower = _tower(model, "encode_image")
    with fused_attention(model.visual) as fused:
        if fused:
            try:
                _trace(tower, example, path, "pixels", {"com.microsoft": 1})
            except Exception as e:  # an exporter that cannot write it: the plain graph below
                log.info("fused attention not exported: %s", str(e).splitlines()[0][:200])
                fused = 0
    if fused and _matches_torch(path, tower, tuple(example.shape)):
        return fused
    if fused:
        log.info("the fused-attention export differs from the torch model: exporting the plain graph")
    _trace(tower, example, path, "pixels")
    return 0


def _matches_torch(path: Path, tower: Any, shape: tuple, tolerance: float = 1e-5) -> bool:
    """Whether ONNX Runtime's output of the exported tower equals torch's on random pixels of ``shape``."""
    import torch

    try:
        import onnxruntime as ort

        x = np.random.default_rng(0).standard_normal(shape, dtype=np.float32)
        want = tower(torch.from_numpy(x)).numpy()
        got = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(None, {"pixels": x})[0]
        return bool(np.abs(got - want).max() <= tolerance)
    except Exception as e:  # no ONNX Runtime, or it cannot run the graph
        log.info("fused-attention export not usable: %s", str(e).splitlines()[0][:200])
        return False


def _trace(module: Any, example: Any, path: Path, input_name: str, custom_opsets: dict | None = None) -> None:
    import torch

    torch.onnx.export(
        module,
        (example,),
        str(path),
        input_names=[input_name],
        output_names=["embedding"],
        dynamic_axes={input_name: {0: "batch"}, "embedding": {0: "batch"}},
        dynamo=False,
        opset_version=17,
        custom_opsets=custom_opsets,
    )


def _preprocess_facts(model: Any) -> dict[str, Any]:
    pre = getattr(model.visual, "preprocess_cfg", {})
    return {
        "mean": list(pre.get("mean", (0.48145466, 0.4578275, 0.40821073))),
        "std": list(pre.get("std", (0.26862954, 0.26130258, 0.27577711))),
        "interpolation": pre.get("interpolation", "bicubic"),
        "resize_mode": pre.get("resize_mode", "shortest"),
    }


def _tokenizer_file(enc: TorchEncoder) -> Path | None:
    """tokenizer.json of a Hugging Face tokenizer (open_clip's HFTokenizer keeps it as .tokenizer)."""
    path = getattr(getattr(enc.tokenizer, "tokenizer", None), "name_or_path", None)
    if path and (Path(path) / "tokenizer.json").is_file():
        return Path(path) / "tokenizer.json"
    return None
