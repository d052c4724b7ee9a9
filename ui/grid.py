"""The results: a dense grid of square thumbnails, one card per distinct picture, redrawn on its own.

Each card (drawn by :mod:`.cards`) is one button named after its picture, so the picture is the click
target and each card is one Tab stop: the thumbnail, a strong/good/weak label with the score on hover,
the name and the folder relative to the indexed root, and "+N copies" when identical files were grouped
into it.
"""

from __future__ import annotations

import os
from typing import Any

import streamlit as st

from pixseek.errors import ImageError, PixseekError
from pixseek.search import Cutoff, Filter

from . import cards, detail, state
from .service import Service
from .sidebar import Options
from .text import md as _md


def relative_folder(path: str, root: str) -> str:
    """The folder of ``path`` relative to its indexed root, led by the root's own name."""
    folder = os.path.dirname(path)
    root = root.rstrip(os.sep)
    base = os.path.basename(root) or root
    if root and (folder == root or folder.startswith(root + os.sep)):
        rest = folder[len(root) :].lstrip(os.sep)
        return os.path.join(base, rest) if rest else base
    return folder


@st.fragment
def results(svc: Service, kind: str, label: str, opts: Options, words: str) -> None:
    """The grid and Load more. Open and Load more rerun only this fragment (so it shows its own errors:
    the page's handler does not run then). ``words``: the query's text, for the keyword index."""
    try:
        _results(svc, kind, label, opts, words)
    except PixseekError as e:
        st.error(e.message + (f" ({e.hint})" if getattr(e, "hint", None) else ""))


def _results(svc: Service, kind: str, label: str, opts: Options, words: str) -> None:
    ss = st.session_state
    if ss.pop("rerun_page", False):  # "Show all" changed the sidebar's cut-off toggle
        st.rerun()
    filt, min_score = opts.filter, opts.min_score
    want = ss.pages * opts.page_size
    exclude = svc.same_content(ss.like) if ss.like is not None else ()  # the picture and its copies
    page, seconds = svc.search_page(
        ss.qvec,
        want,
        filter=filt,
        min_score=min_score,
        exclude=exclude,
        words=words,
        mode=opts.mode,
        kind=kind,
        sort=opts.sort,
        hide_dupes=opts.hide_dupes,
        cutoff="auto" if opts.cutoff else None,
    )
    groups, more, cut = page.groups, page.more, page.cutoff
    if not groups:
        ss.shown = []
        _nothing(svc, filt, min_score, cut)
        return
    scale = svc.score_scale()
    n_files = sum(1 + g.n_copies for g in groups)
    copies = f" ({n_files} files)" if n_files > len(groups) else ""
    head = st.container(horizontal=True, vertical_alignment="center", key="results-head")
    what = f" for {label}" if label else ""
    head.caption(
        f"{len(groups)} results{_md(what)}{copies} · {_md(filt.describe())} · {seconds * 1000:.0f} ms", width="stretch"
    )
    if ss.get("cols") is None:  # the widget's state went with a run that drew no grid
        ss.cols = ss.get("columns") or state.DEFAULT_COLUMNS
    cols = head.segmented_control(
        "Columns",
        state.COLUMNS,
        key="cols",
        required=True,
        label_visibility="collapsed",
        help="Pictures per row",
        on_change=state.set_columns,
    )
    ss.shown = [g.best.id for g in groups]
    items = [
        cards.card_data(svc, g, scale.label(g.best.score, kind), relative_folder(g.best.path, g.best.root))
        for g in groups
    ]
    opened = cards.cards(items, int(cols or state.DEFAULT_COLUMNS))
    if opened is not None:
        ss.open_now = opened
    if more:
        st.button("Load more", key="load-more", on_click=state.more_pages)
    elif cut is not None and cut.below:
        _below(cut.below)
    if ss.get("open_now") is not None:
        image_id, ss.open_now = ss.open_now, None
        detail.show(svc, image_id, {g.best.id: g for g in groups}, kind)


def _below(n: int) -> None:
    """The cut-off's note under the last result, and the way to see the rest."""
    row = st.container(horizontal=True, vertical_alignment="center", key="below-cutoff")
    row.caption(f"{n:,} more {'picture' if n == 1 else 'pictures'} below the relevance cut-off", width="content")
    row.button("Show all", key="show-all", on_click=state.show_all)


def _nothing(svc: Service, filt: Filter, min_score: float | None, cut: Cutoff | None = None) -> None:
    if cut is not None and cut.applied and cut.below:
        st.warning(f"Nothing stood out from the background: {cut.below:,} weak matches lie below the cut-off.")
        st.button("Show all", key="show-all", on_click=state.show_all)
    elif filt.active and svc.selection_size(filt) == 0:
        st.warning(f"No images match the filters ({filt.describe()}).")
    elif min_score is not None:
        st.warning(
            f"No good match: nothing scored {min_score:.2f} or more. "
            "Lower the minimum score or describe it differently."
        )
    else:
        st.warning("No results.")


def query_picture(svc: Service, image_id: int, origin: str) -> Any:
    """The "more like this" banner: the picture searched with, and the way back to the text."""
    try:
        row = svc.row(image_id)
    except PixseekError:
        return
    box = st.container(border=True, horizontal=True, vertical_alignment="center", key="like-banner")
    try:
        box.image(svc.thumbnail(image_id), width=56, alt=f"query picture {os.path.basename(row.path)}")
    except ImageError:
        pass
    since = f" · from '{_md(origin)}'" if origin else ""
    box.markdown(f"More like **{_md(os.path.basename(row.path))}**{since}", width="stretch")
    box.button("Clear", key="clear-like", on_click=state.clear_like, help="Back to the text search")
