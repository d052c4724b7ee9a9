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
