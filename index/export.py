"""Export a loaded model's query encoders to ONNX, so ``pixseek search`` can start without torch.

Written once per model id, after an index run (the model is loaded then anyway), into
``$XDG_CACHE_HOME/pixseek/encoders/<model id>/``: ``text.onnx`` (token ids -> unit vector),
``image.onnx`` (normalised pixels -> unit vector) and ``encoder.json`` (preprocessing and tokenizer
facts). The text encoder is exported only for Hugging Face tokenizers, which the ``tokenizers``
package runs without torch; other models answer text queries through torch as before.
The read side lives in ``search/fast_encoder.py``.
"""
from __future__ import annotations

import copy
import json
import logging
import os
import re
import shutil
import warnings
from pathlib import Path

from .models import CONFIGS_DIR, LoadedModel, ModelSource
from .paths import cache_dir

log = logging.getLogger("pixseek")
FORMAT = 1


def encoder_dir(model_id: str) -> Path:
    return cache_dir() / "encoders" / re.sub(r"[^A-Za-z0-9._-]+", "_", model_id)


def exported(model_id: str) -> bool:
    return (encoder_dir(model_id) / "encoder.json").is_file()


def _stat(path) -> list | None:
    try:
        st = os.stat(path)
        return [str(Path(path).resolve()), st.st_size, st.st_mtime_ns]
    except OSError:
        return None


def _version(dist: str) -> str | None:
    from importlib import metadata

    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


def source_key(src: ModelSource) -> str:
    """What identifies a model spec's weights without loading them: the spec's fields, the files behind
    it (path, size, mtime) and the library versions that build random weights. A changed file gives a
    new key, so a stale export is never used for it."""
    import hashlib

    files = [src.checkpoint, src.config_file, CONFIGS_DIR / f"{src.arch}.json"]
    cfg = src.extra.get("model_cfg") if src.extra else None
    if cfg is None and (CONFIGS_DIR / f"{src.arch}.json").is_file():
        try:
            cfg = json.loads((CONFIGS_DIR / f"{src.arch}.json").read_text())
        except (OSError, ValueError):
            cfg = None
    hf = (cfg or {}).get("text_cfg", {}).get("hf_model_name")
    if isinstance(hf, str):
        try:
            from .models import package_path

            folder = package_path(hf) if hf.startswith("pkg:") else hf
            files.append(Path(folder) / "model.safetensors")
        except Exception:  # noqa: BLE001 - a text tower that cannot be found: no key match, torch decides
            files.append(Path(hf))
    facts = {"spec": src.spec, "name": src.name, "arch": src.arch, "kind": src.kind, "tag": src.tag,
             "seed": src.seed, "files": [_stat(f) for f in files if f is not None],
             "open_clip": _version("open_clip_torch"), "torch": _version("torch") if src.kind == "random" else None}
    return hashlib.sha256(json.dumps(facts, sort_keys=True, default=str).encode()).hexdigest()[:24]


def _pointer(src: ModelSource) -> Path:
    return cache_dir() / "encoders" / "by-source" / f"{source_key(src)}.json"


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
    return folder, meta


def exported_for(src: ModelSource) -> tuple[Path, dict] | None:
    """(folder, encoder.json) of the export made from exactly these weights, or None."""
    try:
        model_id = json.loads(_pointer(src).read_text())["model_id"]
    except (OSError, ValueError, KeyError, TypeError):
        return None
    found = read_export(model_id)
    return found if found is not None and (found[0] / "image.onnx").is_file() else None


def _write_pointer(m: LoadedModel) -> None:
    try:
        p = _pointer(m.source)
        p.parent.mkdir(parents=True, exist_ok=True)
        tmp = p.with_name(f".{p.name}.{os.getpid()}.tmp")
        tmp.write_text(json.dumps({"model_id": m.model_id, "spec": m.spec}))
        os.replace(tmp, p)
    except OSError as e:
        log.info("could not record the export of %s: %s", m.model_id, e)


def prompt_vectors(model_id: str, prompts: list[str], encode) -> "object":
    """The model's vectors for ``prompts`` (the ANN tuning queries), computed once per model and kept
    beside its exported encoders, so every new index of that model reuses them."""
    import hashlib

    import numpy as np

    digest = hashlib.sha256("\n".join(prompts).encode()).hexdigest()[:12]
    path = encoder_dir(model_id) / f"prompts-{digest}.npy"
    try:
        v = np.load(path)
        if v.shape[0] == len(prompts):
            return v
    except (OSError, ValueError):
        pass
    v = np.asarray(encode(prompts), dtype=np.float32)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.stem}.{os.getpid()}.tmp.npy")
        np.save(tmp, v)
        os.replace(tmp, path)
    except OSError:
        pass
    return v


def _tokenizer_file(m: LoadedModel) -> Path | None:
    """tokenizer.json of a Hugging Face tokenizer (open_clip's HFTokenizer keeps it as .tokenizer)."""
    path = getattr(getattr(m.tokenizer, "tokenizer", None), "name_or_path", None)
    if path and (Path(path) / "tokenizer.json").is_file():
        return Path(path) / "tokenizer.json"
    return None


def export_query_encoders(m: LoadedModel, *, force: bool = False) -> Path | None:
    """Export (idempotent). Returns the folder, or None when export is not possible (logged)."""
    dest = encoder_dir(m.model_id)
    if exported(m.model_id) and not force:
        _write_pointer(m)
        return dest
    try:
        import onnx  # noqa: F401  (the exporter needs it)
        import torch
    except ImportError:
        return None
    tmp = dest.with_name(dest.name + f".{os.getpid()}.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    model = copy.deepcopy(m.model).float().eval().cpu()  # tracing must not touch the live model

    class Encode(torch.nn.Module):
        """One tower with L2-normalised output, as the torch path returns it."""

        def __init__(self, method: str):
            super().__init__()
            self.m, self.method = model, method

        def forward(self, x):
            return torch.nn.functional.normalize(getattr(self.m, self.method)(x), dim=-1)

    meta = {"format": FORMAT, "model_id": m.model_id, "dim": m.dim, "image_size": m.image_size}
    pre = getattr(model.visual, "preprocess_cfg", {})
    meta.update(mean=list(pre.get("mean", (0.48145466, 0.4578275, 0.40821073))),
                std=list(pre.get("std", (0.26862954, 0.26130258, 0.27577711))),
                interpolation=pre.get("interpolation", "bicubic"), resize_mode=pre.get("resize_mode", "shortest"))
    fastpath = torch.backends.mha.get_fastpath_enabled()
    try:
        # nn.MultiheadAttention's inference fast path (_native_multi_head_attention) has no ONNX form
        torch.backends.mha.set_fastpath_enabled(False)
        with warnings.catch_warnings(), torch.inference_mode(False), torch.no_grad():
            warnings.simplefilter("ignore")
            x = torch.zeros(2, 3, m.image_size, m.image_size)
            torch.onnx.export(Encode("encode_image"), (x,), str(tmp / "image.onnx"), input_names=["pixels"],
                              output_names=["embedding"], dynamic_axes={"pixels": {0: "batch"},
                                                                        "embedding": {0: "batch"}},
                              dynamo=False, opset_version=17)
            tok_file = _tokenizer_file(m)
            if tok_file is not None:
                ids = m.tokenizer(["a photo", "two words here"])
                torch.onnx.export(Encode("encode_text"), (ids,), str(tmp / "text.onnx"), input_names=["ids"],
                                  output_names=["embedding"], dynamic_axes={"ids": {0: "batch"},
                                                                            "embedding": {0: "batch"}},
                                  dynamo=False, opset_version=17)
                shutil.copy(tok_file, tmp / "tokenizer.json")
                meta["tokenizer"] = {"kind": "hf", "context_length": int(ids.shape[1]),
                                     "pad_id": int(getattr(model.text.config, "pad_token_id", 0) or 0)}
        (tmp / "encoder.json").write_text(json.dumps(meta, indent=1))
        for kept in dest.glob("prompts-*.npy"):  # vectors of the same model id stay valid
            shutil.copy(kept, tmp / kept.name)
        shutil.rmtree(dest, ignore_errors=True)
        os.replace(tmp, dest)
        _write_pointer(m)
        return dest
    except Exception as e:  # export is an optimisation: never fail the caller
        log.info("could not export query encoders for %s: %s", m.model_id, str(e).splitlines()[0][:200])
        shutil.rmtree(tmp, ignore_errors=True)
        return None
    finally:
        torch.backends.mha.set_fastpath_enabled(fastpath)
