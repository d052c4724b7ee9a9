"""The page's state: what the URL holds, the session's history of queries, and the callbacks that change them.

The URL holds the query being shown (``q``, ``like``) and the grid size (``cols``). The page writes it
with one ``st.query_params.from_dict`` call per change, which Streamlit records as a browser history
entry; Back and Forward rerun the page with the older URL, and :func:`follow_url` loads it into the
session. The breadcrumb ("← back to 'a cat'") is the session's own list of earlier queries.
"""

from __future__ import annotations

from dataclasses import dataclass

import streamlit as st

COLUMNS = (4, 5, 6, 8, 10)
DEFAULT_COLUMNS = 6
HISTORY = 6  # earlier queries kept for the breadcrumb


@dataclass(frozen=True)
class View:
    """The query a page shows, as the URL spells it."""

    q: str = ""
    like: int | None = None
    cols: int = DEFAULT_COLUMNS

    def params(self) -> dict[str, str]:
        out = {"q": self.q.strip(), "like": "" if self.like is None else str(self.like)}
        if self.cols != DEFAULT_COLUMNS:
            out["cols"] = str(self.cols)
        return {k: v for k, v in out.items() if v}

    @property
    def query(self) -> tuple[str, int | None]:
        return (self.q.strip(), self.like)

    @classmethod
    def from_params(cls, params: dict[str, str]) -> tuple[View, str | None]:
        """(view, problem): a link with a bad ``like`` or ``cols`` still opens, with a message."""
        problem = None
        like: int | None = None
        raw = params.get("like")
        if raw is not None:
            try:
                like = int(raw)
            except ValueError:
                problem = "The link names no image: `like` must be an image id."
        cols = DEFAULT_COLUMNS
        try:
            cols = int(params.get("cols", DEFAULT_COLUMNS))
        except ValueError:
            pass
        cols = cols if cols in COLUMNS else DEFAULT_COLUMNS
        return cls(params.get("q", ""), like, cols), problem


def init() -> None:
    ss = st.session_state
    if ss.get("_init"):
        return
    ss._init = True
    ss.pages, ss.uploader, ss.history, ss.url = 1, 0, [], None
    ss.like, ss.like_from = None, ""
    follow_url(force=True)


def follow_url(force: bool = False) -> None:
    """Load the URL into the session when it is not the one the page last wrote: a link, or the
    browser's Back / Forward. Runs before the widgets are made, so it may set their values."""
    ss = st.session_state
    params = {k: st.query_params[k] for k in st.query_params}
    if not force and params == ss.url:
        return
    view, problem = View.from_params(params)
    if problem:
        ss.bad_link = problem
    if not force:
        before = View.from_params(ss.url or {})[0]
        _remember(before, view)
        if before.query != view.query:
            ss.uploader += 1  # Back / Forward to another query: an uploaded picture is not part of it
    ss.q, ss.like, ss.cols, ss.columns, ss.pages = view.q, view.like, view.cols, view.cols, 1
    ss.like_from = view.q.strip()
    ss.url = params  # as the browser holds it: the next write puts the clean form there, once
    ss.open_now = None


def current() -> View:
    ss = st.session_state
    return View(ss.get("q") or "", ss.like, int(ss.get("columns") or DEFAULT_COLUMNS))


def write_url(view: View, label: str) -> None:
    """Record ``view`` in the URL (one browser history entry) and the breadcrumb, when it changed."""
    ss = st.session_state
    params = view.params()
    if params == ss.url:
        if label:
            ss.shown_label = label
        return
    _remember(View.from_params(ss.url or {})[0], view)
    ss.url = params
    st.query_params.from_dict(params)
    ss.shown_label = label


def _remember(before: View, now: View) -> None:
    """Put the query the page leaves at the head of the breadcrumb."""
    ss = st.session_state
    if before.query == now.query or not (before.q.strip() or before.like is not None):
        return
    rest = [h for h in ss.history if h[0].query not in (before.query, now.query)]
    ss.history = [(before, ss.get("shown_label", ""))] + rest[: HISTORY - 1]


# --- callbacks ----------------------------------------------------------------------------------
def more_like(image_id: int) -> None:
    """ "More like this": the picture's own vector; the typed text stays in the box to come back to."""
    ss = st.session_state
    ss.like, ss.like_from, ss.pages, ss.open_now = int(image_id), (ss.get("q") or "").strip(), 1, None
    ss.uploader += 1  # a new uploader key clears the uploaded picture


def back_to(view: View) -> None:
    ss = st.session_state
    ss.q, ss.like, ss.pages, ss.open_now, ss.like_from = view.q, view.like, 1, None, view.q.strip()
    ss.uploader += 1


def set_columns() -> None:
    """The grid size changed (kept beside the widget, whose state goes when no grid is drawn): the
    query the URL shows, written with it."""
    ss = st.session_state
    ss.columns = int(ss.get("cols") or DEFAULT_COLUMNS)
    shown, _ = View.from_params(ss.url or {})
    write_url(View(shown.q, shown.like, ss.columns), ss.get("shown_label", ""))


def new_text() -> None:
    """A typed text or a new picture replaces a "more like this" query."""
    st.session_state.like = None
    st.session_state.pages = 1


def clear_like() -> None:
    st.session_state.like = None
    st.session_state.pages = 1


def reset_pages() -> None:
    st.session_state.pages = 1


def more_pages() -> None:
    st.session_state.pages += 1


def open_detail(image_id: int) -> None:
    st.session_state.open_now = int(image_id)


def show_all() -> None:
    """The relevance cut-off's "Show all": every match, best first."""
    st.session_state.cutoff = False
    st.session_state.rerun_page = True  # the button sits in the results fragment: the whole page must follow
    reset_pages()
