"""Helpers for the page's AppTest tests: open the page, read its result cards and their folders."""

from __future__ import annotations

import json
import re
from importlib import resources

from streamlit.testing.v1 import AppTest

APP = str(resources.files("pixseek.ui") / "app.py")


def open_page(db, monkeypatch, query: str | None = None) -> AppTest:
    monkeypatch.setenv("PIXSEEK_DB", str(db))
    at = AppTest.from_file(APP, default_timeout=120)
    if query is not None:
        at.query_params["q"] = query
    return at.run()


def cards(at: AppTest) -> list[dict]:
    """What the result cards show, in page order (the data the grid hands its one element: cards.py)."""
    for el in at.main:
        proto = getattr(el, "proto", None)
        if getattr(proto, "component_name", None) == "pixseek_cards":
            return json.loads(proto.json)["cards"]
    return []


def result_cards(at: AppTest) -> list[tuple[float, str]]:
    """(score, name) of each card shown, in page order (the score is shown on hover in the page)."""
    return [(c["score"], c["name"]) for c in cards(at)]


def open_card(at: AppTest, name: str | None = None) -> int:
    """Open the first card (or the one named ``name``) as a click on it does; the picture's id."""
    image_id = next(c["id"] for c in cards(at) if name is None or c["name"] == name)
    at.session_state["open_now"] = image_id
    at.run()
    return image_id


def unmd(label: str) -> str:
    """A Markdown label as the page shows it (pixseek escapes names: pixseek.ui.text.md)."""
    return re.sub(r"\\(.)", r"\1", label)


def result_folders(at: AppTest) -> list[str]:
    """The folder line of each card (relative to the indexed root, led by the root's name)."""
    return [c["folder"] for c in cards(at)]
