"""Helpers for the page's AppTest tests: open the page, read its result cards and folder captions."""

from __future__ import annotations

import re
from importlib import resources

from streamlit.testing.v1 import AppTest

APP = str(resources.files("pixseek.ui") / "app.py")
CARD = re.compile(r"^\*\*(?P<score>-?[\d.]+)\*\* · (?P<name>.+)$")


def open_page(db, monkeypatch, query: str | None = None) -> AppTest:
    monkeypatch.setenv("PIXSEEK_DB", str(db))
    at = AppTest.from_file(APP, default_timeout=120)
    if query is not None:
        at.query_params["q"] = query
    return at.run()


def result_cards(at: AppTest) -> list[tuple[float, str]]:
    out = []
    for m in at.main.markdown:
        hit = CARD.match(m.value)
        if hit:
            out.append((float(hit["score"]), hit["name"]))
    return out


def result_folders(at: AppTest) -> list[str]:
    return [c.value for c in at.main.caption if c.value.startswith("/")]
