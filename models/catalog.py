"""What to choose for ``--model``, as data: the bundled models and the recommended pretrained ones.

:func:`rows` lists the registry's models (whatever ``registry.json`` holds: a new bundled model shows up
by itself) and then the open_clip pretrained models for photos that ``catalog.json`` recommends, each
with its size, input size, languages, licence, a published quality figure and where the figure comes
from, and whether its weights are on this machine (the Hugging Face cache, looked up without the
network: :mod:`pixseek.models.hub`). :func:`format_table` lays them out for ``pixseek models``.
:func:`fetch` brings one into the cache. :func:`model_choice` says which model a new index gets, and why.

A registry entry may carry the facts itself (``languages``, ``licence``, ``params_m``, ``imagenet_top1``,
``source``); ``catalog.json``'s ``bundled`` section fills in for entries that do not. Listing imports
neither torch nor open_clip: input sizes come from the architectures' config files.
"""

from __future__ import annotations

import json
import textwrap
from dataclasses import asdict, dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from pixseek import settings
from pixseek.errors import ModelError, UnknownModelError

from . import hub
from .hub import Fetched
from .registry import default_model_spec, load_registry, resolve

FACT_KEYS = ("languages", "licence", "params_m", "imagenet_top1", "source")


@dataclass(frozen=True)
class Row:
    """One model of the table."""

    name: str  # what `pixseek models fetch` takes: a registry name or a recommended model's short name
    spec: str  # what --model takes
    kind: str  # 'bundled' (ships with pixseek) | 'pretrained' (open_clip, from the Hugging Face hub)
    about: str
    params_m: float | None  # millions of parameters, as published
    size_mb: float | None  # bundled: the file on disk; pretrained: the download, estimated at 4 bytes a parameter
    input_px: int | None  # the image side the model takes
    languages: str
    licence: str
    imagenet_top1: float | None  # ImageNet-1k zero-shot top-1, percent, as published
    source: str | None  # where imagenet_top1 comes from: a key of sources(), or the text itself
    on_disk: str  # 'yes' | 'partly' | 'no' | 'built in' | 'missing' | 'unknown'
    default: bool = False  # what a new index gets without --model

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def catalog_file() -> Path:
    """``catalog.json``, package data of ``pixseek.models`` (``$PIXSEEK_MODELS`` replaces the registry only)."""
    return Path(str(resources.files("pixseek.models"))) / "catalog.json"


def load_catalog() -> dict[str, Any]:
    return json.loads(catalog_file().read_text())


def sources() -> dict[str, str]:
    return dict(load_catalog().get("sources", {}))


def recommended() -> list[dict[str, Any]]:
    """The curated open_clip pretrained models, in the catalog's order."""
    return list(load_catalog().get("pretrained", []))


def find(name: str) -> dict[str, Any] | None:
    """A recommended model by its short name or its spec."""
    return next((c for c in recommended() if name in (c["name"], c["spec"])), None)


# --- the table -----------------------------------------------------------------------------------


def rows() -> list[Row]:
    """The bundled models, then the recommended pretrained ones."""
    return _bundled_rows() + [_pretrained_row(c) for c in recommended()]


def _bundled_rows() -> list[Row]:
    facts = load_catalog().get("bundled", {})
    default = default_model_spec()
    out = []
    for name, e in load_registry().get("models", {}).items():
        f = {**facts.get(name, {}), **{k: e[k] for k in (*FACT_KEYS, "license") if k in e}}
        size_mb, on_disk = None, "missing"
        try:
            src = resolve(name)
        except ModelError:
            src = None
        if src is not None and src.kind == "random":
            on_disk = "built in"
        elif src is not None and src.kind == "file" and src.checkpoint is not None:
            size_mb, on_disk = src.checkpoint.stat().st_size / 1e6, "yes"
        elif src is not None and src.kind == "pretrained" and src.tag:
            try:
                on_disk = hub.weights_for(src.arch, src.tag, spec=name).on_disk()
            except ModelError:
                on_disk = "unknown"
        out.append(
            Row(
                name=name,
                spec=name,
                kind="bundled",
                about=str(e.get("description", "")),
                params_m=f.get("params_m"),
                size_mb=size_mb,
                input_px=hub.input_size(e.get("arch", "")),
                languages=str(f.get("languages", "-")),
                licence=str(f.get("licence") or f.get("license") or "-"),
                imagenet_top1=f.get("imagenet_top1"),
                source=f.get("source"),
                on_disk=on_disk,
                default=name == default,
            )
        )
    return out


def _pretrained_row(c: dict[str, Any]) -> Row:
    arch = c["spec"].split(":", 1)[0]
    w = hub.HubWeights.from_hf_hub(c["spec"], arch, c["hf_hub"], hub.text_repos(arch))
    params = c.get("params_m")
    return Row(
        name=c["name"],
        spec=c["spec"],
        kind="pretrained",
        about=c.get("about", ""),
        params_m=params,
        size_mb=params * 4 if params else None,  # 4 bytes a parameter (fp32 files)
        input_px=hub.input_size(arch),
        languages=c.get("languages", "-"),
        licence=c.get("licence", "-"),
        imagenet_top1=c.get("imagenet_top1"),
        source=c.get("source"),
        on_disk=w.on_disk(),
        default=c["spec"] == default_model_spec(),
    )


def format_table(table: list[Row]) -> str:
    """The table ``pixseek models`` prints: a line of figures per model and, under it, what it is."""
    notes: dict[str, int] = {}
    for r in table:
        if r.imagenet_top1 is not None and r.source:
            notes.setdefault(r.source, len(notes) + 1)

    def cells(r: Row) -> list[str]:
        size = "-" if r.size_mb is None else f"{'~' if r.kind == 'pretrained' else ''}{r.size_mb:,.0f} MB"
        if r.size_mb is not None and r.size_mb < 10:
            size = f"{r.size_mb:.1f} MB"
        top1 = "-" if r.imagenet_top1 is None else f"{r.imagenet_top1:.1f}%"
        if r.imagenet_top1 is not None and r.source in notes:
            top1 += f" [{notes[r.source]}]"
        return [
            ("* " if r.default else "  ") + r.name,
            "-" if r.params_m is None else f"{r.params_m:,.0f} M",
            size,
            "-" if r.input_px is None else f"{r.input_px} px",
            r.languages,
            r.licence,
            top1,
            r.on_disk,
        ]

    head = ["  NAME", "PARAMS", "SIZE", "INPUT", "LANGUAGES", "LICENCE", "IMAGENET", "ON DISK"]
    grid = [head] + [cells(r) for r in table]
    widths = [max(len(row[i]) for row in grid) for i in range(len(head))]
    right = {1, 2, 3}

    def line(row: list[str]) -> str:
        parts = [c.rjust(w) if i in right else c.ljust(w) for i, (c, w) in enumerate(zip(row, widths))]
        return "  ".join(parts).rstrip()

    out = ["Models for --model (* marks the default for new indexes)", "", line(head)]
    for kind, title in (
        ("bundled", "bundled with pixseek: offline, nothing to download"),
        ("pretrained", "pretrained open_clip models for photos: `pixseek models fetch NAME` downloads one"),
    ):
        group = [r for r in table if r.kind == kind]
        if group:
            out.append(title)
        for r in group:
            out.append(line(cells(r)))
            about = r.about if kind == "bundled" else f"--model {r.spec}: {r.about}"
            out.append(textwrap.fill(about, 104, initial_indent=" " * 6, subsequent_indent=" " * 6))
    text = sources()
    out += [
        "",
        "SIZE: the weights file; ~: the download, estimated at 4 bytes a parameter.",
        "IMAGENET: ImageNet-1k zero-shot top-1 accuracy, as published in:",
    ]
    out += [f"[{n}] {text.get(key, key)}" for key, n in notes.items()]
    out += [
        "Any other open_clip ARCH:TAG works too (`pixseek models fetch ARCH:TAG`), as does a local checkpoint",
        "(--model ARCH:/path/to/file).",
    ]
    return "\n".join(out)


# --- choosing and fetching -----------------------------------------------------------------------


def model_choice(explicit: str | None) -> tuple[str, str]:
    """(the spec a new index gets, why): ``option`` (--model), ``env`` ($PIXSEEK_MODEL) or ``default``."""
    spec = (explicit or "").strip()
    if spec and spec != "default":
        return spec, "option"
    env = settings.default_model()
    if env:
        return env.strip(), "env"
    return default_model_spec(), "default"


def fetch(name: str) -> Fetched:
    """Bring the weights of ``name`` (a registry name, a recommended model's name or spec, any open_clip
    ARCH:TAG) into the Hugging Face cache; a bundled model or a local file needs nothing."""
    name = (name or "").strip()
    if not name:
        raise UnknownModelError("no model named: give a name from `pixseek models` or an open_clip ARCH:TAG")
    entries = load_registry().get("models", {})
    chosen = find(name)
    if chosen is not None and chosen["spec"] not in entries:
        # the table's hub files (checked against open_clip by the tests) answer "on disk" and "offline"
        # without importing open_clip; a download asks open_clip itself
        arch, tag = chosen["spec"].split(":", 1)
        listed = hub.HubWeights.from_hf_hub(chosen["spec"], arch, chosen["hf_hub"], hub.text_repos(arch))
        return hub.fetch(listed, exact=lambda: hub.weights_for(arch, tag, spec=chosen["spec"]))
    spec = name
    if spec not in entries and spec != "default" and ":" not in spec and not Path(spec).expanduser().exists():
        names = ", ".join([*entries, *(c["name"] for c in recommended())])
        raise UnknownModelError(
            f"unknown model '{name}': give a name from `pixseek models` ({names}) or an open_clip ARCH:TAG",
            hint="pixseek models",
        )
    src = resolve(spec)  # checks a registry entry's file, or ARCH and TAG against open_clip
    if src.kind != "pretrained" or not src.tag:
        return Fetched(src.spec, "bundled" if src.spec in entries else "local", src.checkpoint)
    return hub.fetch(hub.weights_for(src.arch, src.tag, spec=src.spec))
