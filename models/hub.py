"""open_clip pretrained weights in the Hugging Face cache: where they are, whether they are here, fetching them.

An ``ARCH:TAG`` names, through open_clip's pretrained cfg, a hub repo and a file (``hf_hub`` is
``org/name/`` or ``org/name/file``); open_clip asks the hub for the safetensors alternative first, then
that file (``open_clip.pretrained.download_pretrained_from_hf``), and so does :func:`fetch`, into the
same cache (``hf_hub_download``), so a later offline ``--model ARCH:TAG`` finds it. Architectures whose
text side is a Hugging Face tokenizer or transformer (SigLIP, XLM-RoBERTa) also need that repo's small
files (configs, tokenizer), fetched beside the weights.

Looking in the cache never touches the network; nothing here imports torch or open_clip at module level
(open_clip only to read an arbitrary ARCH:TAG's pretrained cfg).
"""

from __future__ import annotations

import importlib.util
import json
import os
import socket
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from pixseek import settings
from pixseek.errors import ModelUnavailableError

from .registry import config_file

HF_WEIGHTS_NAME = "open_clip_pytorch_model.bin"  # open_clip's default file name in a hub repo
HF_SAFE_WEIGHTS_NAME = "open_clip_model.safetensors"
TEXT_MARKERS = ("tokenizer.json", "tokenizer_config.json", "config.json")  # a text repo is here if one is
TEXT_PATTERNS = ["*.json", "*.txt", "*.model", "*.tiktoken"]  # a text repo's configs and tokenizer, no weights


def _first_line(e: BaseException) -> str:
    lines = str(e).strip().splitlines()
    return lines[0] if lines else type(e).__name__


# --- architectures, read from their config files ---------------------------------------------------


def architecture_config(arch: str) -> dict | None:
    """The config of ``arch``: pixseek's ``configs/``, else open_clip's ``model_configs/`` (found
    without importing open_clip), else None."""
    path = config_file(arch)
    if path is None:
        spec = importlib.util.find_spec("open_clip")
        if spec is None or not spec.submodule_search_locations:
            return None
        path = Path(list(spec.submodule_search_locations)[0]) / "model_configs" / f"{arch}.json"
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def input_size(arch: str) -> int | None:
    """The image side ``arch`` takes, in pixels (the larger side of a non-square input)."""
    size = ((architecture_config(arch) or {}).get("vision_cfg") or {}).get("image_size")
    if isinstance(size, list | tuple):
        return max(int(s) for s in size) if size else None
    return int(size) if isinstance(size, int | float) else None


def text_repos(arch: str) -> tuple[str, ...]:
    """Hub repos the text side of ``arch`` loads (a Hugging Face tokenizer or text model); not the
    ``pkg:`` towers pixseek ships nor local folders."""
    text = (architecture_config(arch) or {}).get("text_cfg") or {}
    out: list[str] = []
    for key in ("hf_tokenizer_name", "hf_model_name"):
        name = text.get(key)
        if not isinstance(name, str) or not name or name.startswith("pkg:") or os.path.isabs(name):
            continue
        if Path(name).exists() or name in out:
            continue
        out.append(name)
    return tuple(out)


# --- one model's files on the hub ----------------------------------------------------------------


def safe_alternatives(filename: str) -> list[str]:
    """The safetensors files open_clip asks the hub for before ``filename`` (its ``_get_safe_alternatives``)."""
    if filename == HF_WEIGHTS_NAME:
        return [HF_SAFE_WEIGHTS_NAME]
    if filename.endswith((".bin", ".pth")):
        return [filename[:-4] + ".safetensors"]
    return []


def repo_folder(cache: Path, repo: str) -> Path:
    """A model repo's folder in the hub cache (``models--ORG--NAME``)."""
    return cache / ("models--" + repo.replace("/", "--"))


def _cached(cache: Path, repo: str, filename: str) -> Path | None:
    from huggingface_hub import try_to_load_from_cache

    found = try_to_load_from_cache(repo, filename, cache_dir=str(cache))
    return Path(found) if isinstance(found, str) else None


@dataclass(frozen=True)
class HubWeights:
    """Where the weights of an open_clip ``ARCH:TAG`` live on the hub."""

    spec: str  # what --model takes
    arch: str
    repo: str  # the hub repo of the checkpoint
    files: tuple[str, ...]  # the names open_clip tries, in order (safetensors first)
    text: tuple[str, ...] = ()  # hub repos of its tokenizer / text model

    @classmethod
    def from_hf_hub(cls, spec: str, arch: str, hf_hub: str, text: tuple[str, ...] = ()) -> HubWeights:
        repo, filename = os.path.split(hf_hub)
        filename = filename or HF_WEIGHTS_NAME
        return cls(spec, arch, repo, (*safe_alternatives(filename), filename), text)

    def url(self, endpoint: str | None = None) -> str:
        return f"{endpoint or settings.hub_endpoint()}/{self.repo}/resolve/main/{self.files[0]}"

    def cached_file(self, cache: Path | None = None) -> Path | None:
        """The checkpoint in the hub cache, or None; never uses the network."""
        cache = cache or settings.hub_cache()
        for name in self.files:
            found = _cached(cache, self.repo, name)
            if found is not None:
                return found
        return None

    def missing_text(self, cache: Path | None = None) -> list[str]:
        """The text repos not in the hub cache."""
        cache = cache or settings.hub_cache()
        return [r for r in self.text if not any(_cached(cache, r, f) for f in TEXT_MARKERS)]

    def on_disk(self, cache: Path | None = None) -> str:
        """'yes', 'partly' (the weights but not the tokenizer) or 'no'."""
        if self.cached_file(cache) is None:
            return "no"
        return "partly" if self.missing_text(cache) else "yes"

    def offline_error(self, reason: str, cache: Path | None = None) -> ModelUnavailableError:
        """What to do without a network, in one line: the file to download elsewhere and how to use
        it, or the cache folders to copy from a machine that fetched it."""
        cache = cache or settings.hub_cache()
        local = f"use --model {self.arch}:/path/to/{self.files[0]}"
        if self.text:
            local += f" (its tokenizer still comes from the hub: {', '.join(self.text)})"
        folders = " and ".join(str(repo_folder(cache, r)) for r in dict.fromkeys((self.repo, *self.text)))
        return ModelUnavailableError(
            f"cannot fetch {self.spec}: {reason}",
            hint=f"download {self.url()} elsewhere and {local}, or run `pixseek models fetch {self.spec}` "
            f"on a machine with a network and copy {folders} to the same place here",
        )


def weights_for(arch: str, tag: str, spec: str | None = None) -> HubWeights:
    """The hub files of open_clip's pretrained ``ARCH:TAG`` (its pretrained cfg; imports open_clip)."""
    import open_clip

    spec = spec or f"{arch}:{tag}"
    cfg = open_clip.get_pretrained_cfg(arch, tag) or {}
    if not cfg.get("hf_hub"):
        url = cfg.get("url") or cfg.get("file")
        raise ModelUnavailableError(
            f"open_clip names no Hugging Face file for {spec}",
            hint=f"download {url} and use --model {arch}:/path/to/it" if url else None,
        )
    return HubWeights.from_hf_hub(spec, arch, cfg["hf_hub"], text_repos(arch))


# --- fetching ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Fetched:
    """The outcome of ``pixseek models fetch``."""

    spec: str  # what --model takes
    kind: str  # 'bundled' (ships with pixseek), 'local' (a file given), 'pretrained' (from the hub)
    path: Path | None = None  # the weights file, where there is one
    already: bool = True  # nothing was downloaded

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "path": str(self.path) if self.path else None}


def reachable(endpoint: str, timeout: float = 3.0) -> bool:
    """Whether the hub's host answers on its port (a proxy, when one is set, is left to decide)."""
    if settings.proxy():
        return True
    parts = urlsplit(endpoint)
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
        socket.create_connection((parts.hostname or "", port), timeout=timeout).close()
        return True
    except (OSError, ValueError):
        return False


def fetch(w: HubWeights, exact: Callable[[], HubWeights] | None = None) -> Fetched:
    """Bring ``w`` into the hub cache (with huggingface_hub's progress bars) unless it is there; raise
    :class:`ModelUnavailableError` with what to do when there is no network. ``exact``: where open_clip
    itself says the files are (imports it), asked only before a download, when ``w`` came from a table."""
    cache = settings.hub_cache()
    found = w.cached_file(cache)
    if found is not None and not w.missing_text(cache):
        return Fetched(w.spec, "pretrained", found, already=True)
    endpoint = settings.hub_endpoint()
    off = settings.hub_offline()
    if off:
        raise w.offline_error(f"offline ({off} is set)", cache)
    if not reachable(endpoint):
        raise w.offline_error(f"no network ({urlsplit(endpoint).netloc or endpoint} cannot be reached)", cache)
    if exact is not None:
        w = exact()
        found = w.cached_file(cache)
    path = found or _download_weights(w, cache, endpoint)
    for repo in w.missing_text(cache):
        _download_text(w, repo, cache, endpoint)
    return Fetched(w.spec, "pretrained", path, already=False)


def _download_weights(w: HubWeights, cache: Path, endpoint: str) -> Path:
    from huggingface_hub import hf_hub_download
    from huggingface_hub.errors import EntryNotFoundError, LocalEntryNotFoundError

    hint = f"or download {w.url(endpoint)} and use --model {w.arch}:/path/to/{w.files[0]}"
    for name in w.files:
        try:
            return Path(hf_hub_download(w.repo, name, cache_dir=str(cache), endpoint=endpoint))
        except LocalEntryNotFoundError as e:  # the connection failed
            raise ModelUnavailableError(f"cannot download {w.spec}: {_first_line(e)}", hint=hint) from None
        except EntryNotFoundError:  # the hub has no such file: the next name
            continue
        except Exception as e:  # network and HTTP errors come in many types
            raise ModelUnavailableError(f"cannot download {w.spec}: {_first_line(e)}", hint=hint) from None
    raise ModelUnavailableError(f"cannot download {w.spec}: {w.repo} on the hub holds none of {', '.join(w.files)}")


def _download_text(w: HubWeights, repo: str, cache: Path, endpoint: str) -> None:
    from huggingface_hub import snapshot_download

    try:
        snapshot_download(repo, cache_dir=str(cache), endpoint=endpoint, allow_patterns=TEXT_PATTERNS)
    except Exception as e:
        raise ModelUnavailableError(f"cannot download {repo} (the tokenizer of {w.spec}): {_first_line(e)}") from None
