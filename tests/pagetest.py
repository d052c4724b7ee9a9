"""Helpers for the page's AppTest tests: open the page, read its result cards and their folders."""

from __future__ import annotations

import html
import re
from importlib import resources

from streamlit.testing.v1 import AppTest

APP = str(resources.files("pixseek.ui") / "app.py")
FOLDER = re.compile(r'<div class="px-folder">(.*?)</div>')


def open_page(db, monkeypatch, query: str | None = None) -> AppTest:
    monkeypatch.setenv("PIXSEEK_DB", str(db))
    at = AppTest.from_file(APP, default_timeout=120)
    if query is not None:
        at.query_params["q"] = query
    return at.run()


def result_cards(at: AppTest) -> list[tuple[float, str]]:
    """(score, name) of each card shown, in page order: the names from the cards' buttons ("Open NAME"),
    the scores (shown on hover in the page) from what the grid recorded for them."""
    names = [unmd(b.label.removeprefix("Open ")) for b in at.main.button if b.key and b.key.startswith("open-")]
    if not names:
        return []
    scores = at.session_state["shown_scores"] if "shown_scores" in at.session_state else []  # noqa: SIM401
    assert len(scores) == len(names), (scores, names)
    return list(zip(scores, names, strict=True))


def unmd(label: str) -> str:
    """A Markdown label as the page shows it (pixseek escapes names: pixseek.ui.text.md)."""
    return re.sub(r"\\(.)", r"\1", label)


def result_folders(at: AppTest) -> list[str]:
    """The folder line of each card (relative to the indexed root, led by the root's name)."""
    out = []
    for m in at.main.markdown:
        hit = FOLDER.search(m.value)
        if hit:
            out.append(html.unescape(hit[1]).split(" · +")[0])
    return out
