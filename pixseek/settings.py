"""Every setting pixseek reads from the environment, in one place (the README's table lists them).

Functions, not constants: each reads the environment when called, so a test's ``monkeypatch.setenv``
and a CLI option that sets a variable for a child process both take effect.
"""

from __future__ import annotations

import os
from pathlib import Path

from .errors import SettingError

DB = "PIXSEEK_DB"  # the data dir (else $XDG_DATA_HOME/pixseek)
MODEL = "PIXSEEK_MODEL"  # the model a new index gets (else the registry's default)
MODELS = "PIXSEEK_MODELS"  # a folder with registry.json, configs/ and weights/ instead of the bundled one
RUNTIME = "PIXSEEK_RUNTIME"  # auto | torch: what `pixseek index` embeds with on a CPU
INDEX_MEMORY = "PIXSEEK_INDEX_MEMORY"  # bytes the vector index may take in RAM (else a quarter of RAM)
FAULT = "PIXSEEK_FAULT"  # NAME:N[:ACTION], fault injection for the crash tests (pixseek.faults)
FAULT_ONCE = "PIXSEEK_FAULT_ONCE"  # a file path: the fault fires only in the one process that creates it
S3_ENDPOINT = (
    "PIXSEEK_S3_ENDPOINT"  # an S3-compatible endpoint for s3:// PATHs (MinIO, Ceph; else AWS_ENDPOINT_URL or AWS)
)
TOKEN = "PIXSEEK_TOKEN"  # the bearer token `pixseek serve` requires (else --token; needed beyond loopback)
# Hugging Face's own variables, read the way huggingface_hub reads them (`pixseek models` and `models fetch`)
HUB_OFFLINE = ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")  # either switches hub downloads off
HUB_ENDPOINT = "HF_ENDPOINT"  # the hub's address (else https://huggingface.co)
HUB_CACHE = ("HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE")  # the hub cache (else $HF_HOME/hub)
HF_HOME = "HF_HOME"  # Hugging Face's folder (else $XDG_CACHE_HOME/huggingface)
PROXIES = ("HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy", "HTTP_PROXY", "http_proxy")

RUNTIMES = ("auto", "torch")


def _get(name: str) -> str | None:
    value = os.environ.get(name)
    return value if value and value.strip() else None


def data_dir() -> Path:
    """The default data dir: ``$PIXSEEK_DB``, else ``$XDG_DATA_HOME/pixseek`` (~/.local/share/pixseek)."""
    env = _get(DB)
    if env:
        return Path(env).expanduser()
    xdg = _get("XDG_DATA_HOME") or os.path.join(os.path.expanduser("~"), ".local", "share")
    return Path(xdg) / "pixseek"


def cache_dir() -> Path:
    """Per-user caches (exported encoders, checkpoint hashes, text features): ``$XDG_CACHE_HOME/pixseek``."""
    xdg = _get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(xdg) / "pixseek"


def default_model() -> str | None:
    return _get(MODEL)


def s3_endpoint() -> str | None:
    """The endpoint ``s3://`` URLs are read from, when not AWS's (botocore also reads ``AWS_ENDPOINT_URL``)."""
    return _get(S3_ENDPOINT)


def models_dir() -> Path | None:
    """A registry folder that replaces the bundled one, or None for the bundled one."""
    env = _get(MODELS)
    return Path(env).expanduser() if env else None


def runtime(explicit: str | None = None) -> str:
    """``auto`` or ``torch``: the explicit choice, else ``$PIXSEEK_RUNTIME``, else auto."""
    r = (explicit or _get(RUNTIME) or "auto").strip().lower()
    return r if r in RUNTIMES else "auto"


def index_memory() -> int | None:
    """Bytes the vector index may use (``$PIXSEEK_INDEX_MEMORY``, e.g. 4e9), or None for the default."""
    env = _get(INDEX_MEMORY)
    if env is None:
        return None
    try:
        value = int(float(env))
    except (ValueError, OverflowError):
        value = 0
    if value <= 0:
        raise SettingError(f"{INDEX_MEMORY}={env!r} is not a number of bytes (e.g. 4e9)")
    return value


def fault() -> str | None:
    return _get(FAULT)


def fault_once() -> str | None:
    return _get(FAULT_ONCE)


def token(explicit: str | None = None) -> str | None:
    """The search service's bearer token: the explicit one (``--token``), else ``$PIXSEEK_TOKEN``, else
    None. Surrounding whitespace (a trailing newline from a file) is not part of it."""
    value = explicit if explicit is not None else _get(TOKEN)
    return value.strip() if value is not None and value.strip() else None


def hub_offline() -> str | None:
    """The variable that switches Hugging Face downloads off (``HF_HUB_OFFLINE=1``, or
    ``TRANSFORMERS_OFFLINE``), or None when downloads are allowed."""
    name = next((n for n in HUB_OFFLINE if os.environ.get(n)), None)  # the first one set decides, as in
    value = os.environ.get(name, "") if name else ""  # huggingface_hub: HF_HUB_OFFLINE=0 wins over the other
    return name if value.strip().upper() in ("1", "ON", "YES", "TRUE") else None


def hub_endpoint() -> str:
    """The Hugging Face hub's address: ``$HF_ENDPOINT``, else https://huggingface.co."""
    return (_get(HUB_ENDPOINT) or "https://huggingface.co").strip().rstrip("/")


def hub_cache() -> Path:
    """The Hugging Face hub cache: ``$HF_HUB_CACHE``, else ``$HF_HOME/hub``, else
    ``$XDG_CACHE_HOME/huggingface/hub`` (~/.cache/huggingface/hub), as huggingface_hub resolves it."""
    for name in HUB_CACHE:
        env = _get(name)
        if env:
            return Path(os.path.expandvars(env)).expanduser()
    home = _get(HF_HOME) or os.path.join(
        _get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache"), "huggingface"
    )
    return Path(os.path.expandvars(home)).expanduser() / "hub"


def proxy() -> str | None:
    """An HTTP(S) proxy from the usual variables, or None (a direct connection)."""
    for name in PROXIES:
        if _get(name):
            return _get(name)
    return None
