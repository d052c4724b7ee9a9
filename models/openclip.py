"""Building torch models with open_clip: configs, weights, model ids. Used by the torch encoder and train.

pixseek's configs reach open_clip through its public ``add_model_config``, which reads config files:
each is written, with its ``pkg:`` references resolved to this install's folders, into a temporary
folder private to the process (removed at exit), so no other install's paths can leak in. An open_clip
built-in of the same name wins, as it always did. A model id is ``NAME#HASH``, HASH the first 12 hex digits of the
sha256 of the checkpoint (with the text tower's file when it comes from a package), or of the seeded
random weights.
"""

from __future__ import annotations

import atexit
import contextlib
import hashlib
import json
import logging
import os
import shutil
import socket
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from pixseek import settings
from pixseek.errors import CheckpointError, ModelUnavailableError
from pixseek.fileio import atomic_write

from .registry import ModelSource, own_configs, resolve_config, source_config, text_tower_dir

_registered: set[str] = set()
PIXSEEK_KEYS = ("preprocess_cfg", "image_head", "image_init")  # config keys pixseek applies, not open_clip
_extras: dict[str, dict] = {}  # arch -> its PIXSEEK_KEYS
_folder: tuple[int, Path] | None = None  # (pid, folder) of this process's resolved configs


# --- configs -------------------------------------------------------------------------------------


def _remove_folder(pid: int, folder: Path) -> None:
    if os.getpid() == pid:  # never from a forked child: the folder is its parent's
        shutil.rmtree(folder, ignore_errors=True)


def _config_folder() -> Path:
    global _folder
    if _folder is None or _folder[0] != os.getpid():
        _folder = (os.getpid(), Path(tempfile.mkdtemp(prefix="pixseek-configs-")))
        atexit.register(_remove_folder, *_folder)
    return _folder[1]


def _register(name: str, cfg: dict) -> None:
    """Make config ``name`` known to open_clip (create_model, get_tokenizer), once per process."""
    import open_clip

    if name in _registered or name in open_clip.list_models():
        return
    _extras[name] = {k: cfg[k] for k in PIXSEEK_KEYS if k in cfg}
    plain = {k: v for k, v in resolve_config(cfg).items() if k not in PIXSEEK_KEYS}
    text = json.dumps(plain, indent=1, sort_keys=True)
    try:
        path = _config_folder() / f"{name}.json"
        path.write_text(text)  # a private folder: nobody reads it half-written
    except OSError as e:
        raise CheckpointError(f"cannot prepare model config {name} for open_clip: {e.strerror or e}") from None
    open_clip.add_model_config(path)
    _registered.add(name)


def register_configs() -> None:
    """Make every config in ``configs/`` known to open_clip."""
    for name, cfg in own_configs().items():
        _register(name, cfg)


def model_config(arch: str) -> dict | None:
    """open_clip's view of architecture ``arch`` (pixseek's configs included), or None if unknown."""
    import open_clip

    register_configs()
    return open_clip.get_model_config(arch)


def extras(arch: str) -> dict:
    """What pixseek's config of ``arch`` sets beyond open_clip: its preprocessing, image head and the
    backbone's pretrained file (see :mod:`pixseek.models.heads`)."""
    register_configs()
    return _extras.get(arch, {})


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


def first_line(e: BaseException) -> str:
    lines = str(e).strip().splitlines()
    return lines[0] if lines else type(e).__name__


def create(arch: str, *, seed: int | None = None, text_weights: bool = True) -> Any:
    """A new open_clip model of ``arch`` on the CPU with random weights (from torch's global generator,
    seeded with ``seed`` when given), except a Hugging Face text tower, which loads its pretrained
    weights from its (local) folder unless ``text_weights`` is False (a full checkpoint brings them:
    no need to download a multilingual transformer only to overwrite it)."""
    import open_clip
    import torch

    hf_text = hf_text_tower(arch)
    if hf_text:
        quiet_transformers()
    if seed is not None:
        torch.manual_seed(seed)
    more = extras(arch)
    logging.disable(logging.WARNING)  # open_clip logs "initialized randomly" on the root logger
    try:
        model = open_clip.create_model(
            arch,
            pretrained=None,
            pretrained_text=hf_text and text_weights,
            device="cpu",
            force_preprocess_cfg=more.get("preprocess_cfg"),
        )
        if "image_head" in more:
            from .heads import install_head

            install_head(model, more["image_head"])
        return model
    except CheckpointError:
        raise
    except Exception as e:
        raise CheckpointError(f"cannot build architecture {arch}: {first_line(e)}") from None
    finally:
        logging.disable(logging.NOTSET)


def hf_text_tower(arch: str) -> bool:
    """Whether ``arch``'s text tower is a Hugging Face transformer (its weights come from its own folder,
    not from pixseek's checkpoints)."""
    cfg = model_config(arch)
    if cfg is None:
        raise CheckpointError(f"unknown architecture '{arch}'")
    return bool(cfg.get("text_cfg", {}).get("hf_model_name"))


def load_weights(model: Any, checkpoint: Path, allow_missing_prefix: str | None = None) -> None:
    """Load a checkpoint safely (safetensors, or a torch state dict with weights_only=True).

    ``allow_missing_prefix``: keys under it may be absent (a pretrained tower loaded from its package).
    """
    import open_clip

    try:
        incompatible = open_clip.load_checkpoint(
            model, str(checkpoint), strict=allow_missing_prefix is None, weights_only=True
        )
    except Exception as e:
        msg = first_line(e)
        if "weights_only" in str(e) or "Unpickl" in type(e).__name__ or "pickle" in str(e).lower():
            msg = "it is not a plain tensor state dict (refusing to unpickle arbitrary objects)"
        raise CheckpointError(f"cannot load checkpoint {checkpoint}: {msg}") from None
    if allow_missing_prefix is not None:
        missing = [k for k in incompatible.missing_keys if not k.startswith(allow_missing_prefix)]
        if missing or incompatible.unexpected_keys:
            bad = (missing or incompatible.unexpected_keys)[:3]
            raise CheckpointError(
                f"cannot load checkpoint {checkpoint}: it does not fit the architecture "
                f"(missing or unexpected: {', '.join(bad)})"
            )


# --- hashing -------------------------------------------------------------------------------------


def file_sha256(path: Path) -> str:
    """sha256 of a checkpoint, cached by (path, size, mtime) so big checkpoints hash once."""
    st = path.stat()
    key = f"{path.absolute()}|{st.st_size}|{st.st_mtime_ns}"
    cache_file = settings.cache_dir() / "checkpoint-hashes.json"
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
        cache[key] = digest
        with contextlib.suppress(OSError):
            atomic_write(cache_file, json.dumps(cache))
    return digest


def state_dict_sha256(model: Any) -> str:
    h = hashlib.sha256()
    for k, v in sorted(model.state_dict().items()):
        h.update(k.encode())
        h.update(v.detach().cpu().contiguous().float().numpy().tobytes())
    return h.hexdigest()


# --- pretrained tags -----------------------------------------------------------------------------


def _hub_reachable(timeout: float = 3.0) -> bool:
    host = os.environ.get("HF_ENDPOINT", "https://huggingface.co").split("//")[-1].split("/")[0]
    if os.environ.get("HF_HUB_OFFLINE", "") not in ("", "0"):
        return False
    try:
        socket.create_connection((host, 443), timeout=timeout).close()
        return True
    except OSError:
        return False


@contextlib.contextmanager
def _hub_offline() -> Iterator[None]:
    prev = os.environ.get("HF_HUB_OFFLINE")
    os.environ["HF_HUB_OFFLINE"] = "1"
    try:
        yield
    finally:
        if prev is None:
            os.environ.pop("HF_HUB_OFFLINE", None)
        else:
            os.environ["HF_HUB_OFFLINE"] = prev


def pretrained_file(src: ModelSource) -> Path:
    """The local file of an open_clip pretrained tag: HF cache first, download only when online."""
    import open_clip
    from open_clip.pretrained import download_pretrained

    cfg = open_clip.get_pretrained_cfg(src.arch, src.tag)
    hint = f"offline? download it elsewhere and pass --model {src.arch}:/path/to/open_clip_model.safetensors"
    with contextlib.suppress(Exception), _hub_offline():  # a cached copy, without touching the network
        return Path(download_pretrained(cfg))
    if not _hub_reachable():
        raise ModelUnavailableError(
            f"cannot download weights for {src.spec}: no network and no cached copy; "
            f"point --model at a local file, e.g. --model {src.arch}:/path/to/open_clip_model.safetensors",
            hint=hint,
        )
    try:
        return Path(download_pretrained(cfg))
    except Exception as e:  # network errors come in many types
        raise ModelUnavailableError(f"cannot download weights for {src.spec}: {first_line(e)}", hint=hint) from None


# --- a whole model -------------------------------------------------------------------------------


def build(src: ModelSource) -> tuple[Any, str]:
    """(open_clip model with ``src``'s weights, on the CPU, eval mode, frozen; its model id)."""
    if src.config_file is not None and src.model_cfg is not None:
        _register(src.arch, src.model_cfg)
    checkpoint = pretrained_file(src) if src.kind == "pretrained" else src.checkpoint
    model = create(src.arch, seed=src.seed if src.kind == "random" else None, text_weights=src.kind != "pretrained")
    hf_text = hf_text_tower(src.arch)
    if checkpoint is None:
        digest = state_dict_sha256(model)
    else:
        # a package-provided text transformer may be absent from pixseek's checkpoints; a pretrained
        # tag's checkpoint must hold everything (its text tower was not loaded from anywhere else)
        missing_ok = "text.transformer." if hf_text and src.kind != "pretrained" else None
        load_weights(model, checkpoint, allow_missing_prefix=missing_ok)
        digest = _weights_digest(src, checkpoint, hf_text)
    model.eval()
    for p in model.parameters():
        p.requires_grad_(False)
    return model, f"{src.name}#{digest[:12]}"


def _weights_digest(src: ModelSource, checkpoint: Path, hf_text: bool) -> str:
    digest = file_sha256(checkpoint)
    folder = text_tower_dir(source_config(src) or model_config(src.arch)) if hf_text else None
    if folder is not None and (folder / "model.safetensors").is_file():
        digest = hashlib.sha256((digest + file_sha256(folder / "model.safetensors")).encode()).hexdigest()
    return digest


def transforms(model: Any, arch: str) -> tuple[Callable, Callable]:
    """(open_clip's validation image transform, its tokenizer) for ``model``."""
    import open_clip
    from open_clip.model import get_model_preprocess_cfg
    from open_clip.transform import PreprocessCfg, image_transform_v2

    preprocess = image_transform_v2(PreprocessCfg(**get_model_preprocess_cfg(model)), is_train=False)
    try:
        tokenizer = open_clip.get_tokenizer(arch)
    except Exception as e:
        raise CheckpointError(f"cannot build the tokenizer for {arch}: {e}") from None
    return preprocess, tokenizer
