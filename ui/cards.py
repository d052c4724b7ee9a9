"""The result cards as one Streamlit element (``st.components.v2``): the whole grid is drawn by one
small script from the results' data instead of three Streamlit elements a card.

Why: with 96 results a query spent ~0.5 s of the browser's main thread turning ~300 Streamlit elements
into the page (``bench/ui_latency.py``); one element draws the same cards in a few milliseconds. The
component is mounted without a shadow root, so the page's theme and the tests see plain DOM. Each card
is one ``<button>`` named "Open NAME": a click, Enter or Space sends the trigger value ``open`` (the
picture's id), which reruns only the results fragment. Names and paths go in as text, never as HTML.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import json
from functools import cache
from importlib import resources
from typing import Any

import streamlit as st

from pixseek.errors import PixseekError
from pixseek.search import Group
from pixseek.search.results import MEANING

from .service import Service

NAME = "pixseek_cards"


@cache
def _asset(name: str) -> str:
    return (resources.files("pixseek.ui") / name).read_text(encoding="utf-8")


@cache
def _component() -> Any:
    return st.components.v2.component(NAME, js=_asset("cards.js"), css=_asset("cards.css"), isolate_styles=False)


def card_data(svc: Service, g: Group, label: str, folder: str) -> dict[str, Any]:
    """What one card shows: the thumbnail inline (no request per picture), the label, name and folder."""
    r = g.best
    words = [w for w in r.why if w != MEANING]  # keyword fields it matched in: "file name", "text in image"
    if r.why and MEANING not in r.why:
        label = "words"  # found by its words alone: its meaning score says nothing of the match
    card: dict[str, Any] = {
        "id": r.id,
        "name": r.name,
        "path": r.path,
        "folder": folder,
        "label": label,
        "score": round(float(r.score), 6),
        "why": " · ".join(words),
        "tags": list(r.tags[:3]),
        "date": _date(r.taken_at if r.taken_at is not None else r.mtime),
        "dated": "taken" if r.taken_at is not None else "file time",
        "copies": f"+{g.n_copies} {'copy' if g.n_copies == 1 else 'copies'}" if g.n_copies else "",
    }
    try:
        card["thumb"] = base64.b64encode(svc.thumbnail(r.id, r.hash)).decode("ascii")
    except PixseekError as e:  # unreadable now, or gone from the index since the search
        card["missing"] = e.message
    return card


def _date(ts: float) -> str:
    try:
        return dt.datetime.fromtimestamp(ts).strftime("%Y-%m-%d")
    except (OverflowError, OSError, ValueError):
        return ""


def cards(items: list[dict[str, Any]], cols: int) -> int | None:
    """Draw the cards ``cols`` to a row (fewer on a narrow screen: a column is at least 150 px wide);
    the id of the card the user just opened, on the run that the click started, else None."""
    data = {"cards": items, "cols": int(cols)}
    # The script redraws the cards only when they change (a rerun for Open keeps them, and the focus).
    data["version"] = hashlib.blake2b(json.dumps(items).encode(), digest_size=8).hexdigest()
    result = _component()(key="cards", data=data, on_open_change=_ignore)
    opened = result.open
    return int(opened) if opened is not None else None


def _ignore() -> None:
    """The click is read from the component's result in the run it starts."""
