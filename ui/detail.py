"""The detail view: a dialog over the results, in view wherever the page was scrolled.

The picture is shown at its real size at most (never upscaled; the page's CSS also caps it at the
screen's height), with its facts beside it: name, folder, size, date, every copy's path. Previous /
Next walk through the results shown (← and → on the keyboard), More like this starts a query from it,
Download gives the original file, Esc or the X closes it. The dialog is a fragment of its own: moving
through it redraws only the dialog.
"""

from __future__ import annotations

import datetime as dt
import os

import streamlit as st

from pixseek.errors import ImageError, PixseekError
from pixseek.search import Group
from pixseek.store.thumbs import VIEW_SIDE

from . import state
from .service import Service
from .text import md as _md

MAX_WIDTH = 760  # the dialog's picture column, in CSS pixels


def show(svc: Service, image_id: int, groups: dict[int, Group], kind: str) -> None:
    st.session_state.detail = image_id
    _dialog(svc, groups, kind)


@st.dialog("Picture", width="large")
def _dialog(svc: Service, groups: dict[int, Group], kind: str) -> None:
    try:
        _body(svc, groups, kind)
    except PixseekError as e:  # a fragment: the page's own handler does not run
        st.error(e.message)


def _body(svc: Service, groups: dict[int, Group], kind: str) -> None:
    ss = st.session_state
    if ss.pop("leave_dialog", False):  # More like this: a new query for the whole page
        st.rerun()
    order = [i for i in ss.get("shown", []) if i in groups] or list(groups)
    image_id = ss.detail if ss.detail in groups else order[0]
    g = groups[image_id]
    try:
        row = svc.row(image_id)
    except PixseekError as e:
        st.warning(e.message)
        return
    name = os.path.basename(row.path)
    pic, facts = st.columns([3, 2], gap="medium")
    with pic.container(key="detail-picture"):
        try:
            w, h = int(row.width or MAX_WIDTH), int(row.height or MAX_WIDTH)
            shown = w * min(1.0, VIEW_SIDE / max(w, h))  # the view is at most VIEW_SIDE on its longer side
            width = max(1, min(int(shown), MAX_WIDTH))
            st.image(svc.view(image_id), width=width, alt=name)
        except ImageError as e:
            st.warning(f"{name}: {e.message}")
    with facts:
        st.subheader(_md(name), anchor=False)
        when = dt.datetime.fromtimestamp(row.date).strftime("%Y-%m-%d %H:%M")
        label = svc.score_scale().label(g.best.score, kind)
        best = g.best
        extra = []
        if best.camera:
            extra.append(_md(best.camera + (f" · {best.lens}" if best.lens else "")))
        if best.place_name or best.latitude is not None:
            where = best.place_name or ""
            if best.latitude is not None and best.longitude is not None:
                where += f" ({best.latitude:.5f}, {best.longitude:.5f})"
            extra.append(_md(where.strip()))
        if best.tags:
            extra.append("tags: " + _md(", ".join(best.tags)))
        why = [w for w in best.why if w != "image meaning"]
        st.markdown(
            f"{row.width}×{row.height} {row.format} · {row.size / 1024:,.0f} KiB  \n"
            f"{'taken' if row.taken_at else 'modified'} {when}  \n"
            + "".join(f"{line}  \n" for line in extra)
            + f"match: **{label}** (score {g.best.score:.3f})"
            + (f" · words found in its {_md(', '.join(why))}" if why else "")
        )
        lines = svc.text_lines(image_id)
        if lines:
            st.caption("Text in the picture")
            st.code("\n".join(lines), language=None, wrap_lines=True)
        paths = [row.path] + [c.path for c in g.copies]
        st.caption("Where" if len(paths) == 1 else f"Where ({len(paths)} identical files)")
        st.code("\n".join(paths), language=None, wrap_lines=True)
        pos = order.index(image_id)
        nav = st.container(horizontal=True, gap="small", key="detail-nav")
        nav.button(
            "← Previous", key="detail-prev", disabled=pos == 0, on_click=_go, args=(order, pos - 1), shortcut="Left"
        )
        nav.button(
            "Next →",
            key="detail-next",
            disabled=pos == len(order) - 1,
            on_click=_go,
            args=(order, pos + 1),
            shortcut="Right",
        )
        acts = st.container(horizontal=True, gap="small", key="detail-actions")
        acts.button(f"More like {_md(name)}", key="detail-like", type="primary", on_click=_more_like, args=(image_id,))
        try:
            acts.download_button(
                "Download",
                svc.original(image_id),
                file_name=name,
                key="download",
                on_click="ignore",
                icon=":material/download:",
            )
        except ImageError as e:
            acts.caption(e.message)


def _more_like(image_id: int) -> None:
    state.more_like(image_id)
    st.session_state.leave_dialog = True


def _go(order: list[int], pos: int) -> None:
    st.session_state.detail = order[pos]
