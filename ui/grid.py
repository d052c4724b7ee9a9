"""The results: a dense grid of square thumbnails, one card per distinct picture, redrawn on its own.

Each card is a container keyed ``card-<id>`` holding the thumbnail, one button named after the picture
(the page's CSS stretches it over the thumbnail, so the picture is the click target and each card is one
Tab stop), the name and folder relative to the indexed root, a strong/good/weak label with the score on
hover over the picture, and "+N copies" when identical files were grouped into it.
"""

from __future__ import annotations

import base64
import os
from typing import Any

import streamlit as st

from pixseek.errors import ImageError, PixseekError
from pixseek.search import Filter, Group

from . import detail, state
from .service import Service
from .text import html_text as _html
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
def results(svc: Service, kind: str, label: str, filt: Filter, page_size: int, min_score: float | None) -> None:
    """The grid and Load more. Open and Load more rerun only this fragment (so it shows its own errors:
    the page's handler does not run then)."""
    try:
        _results(svc, kind, label, filt, page_size, min_score)
    except PixseekError as e:
        st.error(e.message + (f" ({e.hint})" if getattr(e, "hint", None) else ""))


def _results(svc: Service, kind: str, label: str, filt: Filter, page_size: int, min_score: float | None) -> None:
    ss = st.session_state
    want = ss.pages * page_size
    exclude = svc.same_content(ss.like) if ss.like is not None else ()  # the picture and its copies
    groups, more, seconds = svc.search_groups(ss.qvec, want, filter=filt, min_score=min_score, exclude=exclude)
    if not groups:
        ss.shown, ss.shown_scores = [], []
        _nothing(svc, filt, min_score)
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
    ss.shown_scores = [round(g.best.score, 6) for g in groups]
    with st.grid(int(cols or state.DEFAULT_COLUMNS), min_column_width=150, gap="xsmall", key="results"):
        for g in groups:
            _card(svc, g, scale.label(g.best.score, kind))
    if more:
        st.button("Load more", key="load-more", on_click=state.more_pages)
    if ss.get("open_now") is not None:
        image_id, ss.open_now = ss.open_now, None
        detail.show(svc, image_id, {g.best.id: g for g in groups}, kind)


def _card(svc: Service, g: Group, label: str) -> None:
    r = g.best
    folder = relative_folder(r.path, r.root)
    copies = f" · +{g.n_copies} {'copy' if g.n_copies == 1 else 'copies'}" if g.n_copies else ""
    try:
        thumb = base64.b64encode(svc.thumbnail(r.id)).decode("ascii")
        picture = f'<img class="px-thumb" src="data:image/webp;base64,{thumb}" alt="{_html(r.name)}">'
    except PixseekError as e:  # unreadable now, or gone from the index since the search
        picture = f'<div class="px-thumb px-missing">{_html(e.message)}</div>'
    with st.container(key=f"card-{r.id}", gap=None):
        # One element of escaped HTML: the thumbnail travels inline with the results (no request per
        # picture: 96 media requests to the page's server took most of a query's time), the label with
        # the score in a title (on hover, no Tab stop), and the name and folder.
        st.markdown(
            f"{picture}"
            f'<div class="px-line"><span class="px-label px-{label}" title="{label} match · score {r.score:.3f}">'
            f'{label}</span> <b title="{_html(r.path)}">{_html(r.name)}</b></div>'
            f'<div class="px-folder">{_html(folder)}{copies}</div>',
            unsafe_allow_html=True,
        )
        st.button(
            f"Open {_md(r.name)}",
            key=f"open-{r.id}",
            on_click=state.open_detail,
            args=(r.id,),
            width="stretch",
            wrap=False,
        )


def _nothing(svc: Service, filt: Filter, min_score: float | None) -> None:
    if filt.active and svc.selection_size(filt) == 0:
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
