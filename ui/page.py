"""The pixseek search page (Streamlit): text-to-image and image-to-image search over one index.

``pixseek ui [--db DIR]`` runs ``app.py``, which calls :func:`main`; the data dir comes from ``--db``
after the script's ``--``, else from the settings (``$PIXSEEK_DB``). All index access goes through
:mod:`pixseek.ui.service`; pictures are sent to the browser as thumbnails looked up by row id, never
read from a path the browser names. The grid (:mod:`.grid`) and the detail dialog (:mod:`.detail`) are
fragments: opening a picture, walking through results and loading more redraw only them. The URL and
the history of queries live in :mod:`.state`.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Callable
from importlib import resources

import streamlit as st

from pixseek import hosts
from pixseek.errors import EmptyIndexError, IndexNotFoundError, PixseekError, QueryImageError
from pixseek.search.uploads import DEFAULT_MAX_UPLOAD_BYTES
from pixseek.store import DataDir

from . import grid, state
from .service import QuerySpec, Service
from .sidebar import sidebar
from .text import md as _md

TITLE = "### :material/image_search: pixseek"
SEARCH_PAGE = "search_page.py"  # the app's two pages, scripts beside this module (st.navigation)
DUPES_PAGE = "dupes_page.py"


def _args() -> argparse.Namespace:
    p = argparse.ArgumentParser(add_help=False)
    p.add_argument("--db", default=None)
    p.add_argument("--host", default="127.0.0.1")  # the address `pixseek ui` bound to
    p.add_argument("--max-upload-mb", type=float, default=DEFAULT_MAX_UPLOAD_BYTES / 2**20)
    args, _ = p.parse_known_args(sys.argv[1:])
    args.db = str(DataDir.resolve(args.db).root)  # no --db: the settings' data dir
    return args


@st.cache_resource(show_spinner="Opening the index…")
def service(db_dir: str, max_upload_bytes: int) -> Service:
    """One Service per data dir and upload cap for the whole ``pixseek ui`` process."""
    return Service(db_dir, max_upload_bytes)


@st.cache_data
def _asset(name: str) -> str:
    return resources.files("pixseek.ui").joinpath(name).read_text(encoding="utf-8")


def _message(e: PixseekError) -> str:
    return e.message + (f" ({e.hint})" if getattr(e, "hint", None) else "")


def main() -> None:
    st.set_page_config(page_title="pixseek", page_icon="🔎", layout="wide")
    try:
        args = _args()
        host = st.context.headers.get("Host") if st.context.headers else None
        if not hosts.allowed(host, args.host):
            st.error(f"This page answers at the address pixseek was started on ({args.host}), not at {host!r}.")
            return
        nav = st.navigation(
            [
                st.Page(_here(SEARCH_PAGE), title="Search", icon=":material/image_search:", default=True),
                st.Page(_here(DUPES_PAGE), title="Duplicates", icon=":material/filter_none:", url_path="duplicates"),
            ]
        )
        st.html(f"<style>{_asset('page.css')}</style>")
        st.html(f"<script>{_asset('keys.js')}</script>", unsafe_allow_javascript=True)
        nav.run()
    except Exception as e:
        logging.getLogger("pixseek").exception("search page failed")
        st.error(
            f"Something went wrong: {type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''} "
            "(the details are in the `pixseek ui` log)"
        )


def _here(name: str) -> str:
    return str(resources.files("pixseek.ui").joinpath(name))


def current_service() -> Service:
    """This process's Service (one per data dir and upload cap, made on the first page run)."""
    args = _args()
    return service(args.db, int(args.max_upload_mb * 2**20))


def run_page(body: Callable[[Service], None]) -> None:
    """Run one page of the app (the scripts SEARCH_PAGE and DUPES_PAGE call this): the index's empty
    states first, a library error as its one line."""
    svc = current_service()
    try:
        svc.sync()
    except IndexNotFoundError:
        _title()
        st.info(f"No index yet in `{svc.data_dir.root}`. Build one with:")
        st.code(f"pixseek index PATH --db {svc.data_dir.root}", language="bash")
        return
    except EmptyIndexError:
        _title()
        st.info(f"The index in `{svc.data_dir.root}` has no images yet. Add some with:")
        st.code(f"pixseek index PATH --db {svc.data_dir.root}", language="bash")
        return
    except PixseekError as e:
        st.error(_message(e))
        return
    try:
        body(svc)
    except PixseekError as e:
        st.error(_message(e))


def search(svc: Service) -> None:
    ss = st.session_state
    state.init()
    saved = ss.pop("search_url", None)  # back from the duplicates page, whose link drops the query
    if saved and not len(st.query_params):
        st.query_params.from_dict(saved)
    state.follow_url()
    opts = sidebar(svc)
    crumbs = st.container(key="history-slot")  # filled once this run's query is in the history
    spec = _query_inputs(svc)
    if (problem := ss.pop("bad_link", None)) is not None:
        st.error(problem)
    if spec.empty:
        st.info("Type a description, or drop a picture to find similar ones.")
        state.write_url(state.current(), "")
        _breadcrumb(crumbs)
        return
    spec, kind = _encode(svc, spec)
    label = _label(svc, spec)
    _breadcrumb(crumbs)
    grid.results(svc, kind, label, opts, spec.text if spec.like_id is None else "")


def _title() -> None:
    st.markdown(TITLE)


def _query_inputs(svc: Service) -> QuerySpec:
    ss = st.session_state
    row = st.container(horizontal=True, vertical_alignment="center", gap="small", key="query-row")
    row.markdown(TITLE, width="content")
    text = row.text_input(
        "Describe what you are looking for",
        key="q",
        on_change=state.new_text,
        placeholder="Describe what you are looking for: a dog on a beach at sunset",
        label_visibility="collapsed",
        type="search",
    )
    with row.popover("…but not", key="neg-pop"):
        neg = st.text_input("…but not", key="neg", on_change=state.reset_pages, placeholder="people")
    with row.popover("Search by picture", icon=":material/image_search:", key="upload-pop"):
        # No type= filter and no on_change: the content decides what a file is (pixseek.search.uploads),
        # and Streamlit's own name check would fail outside this script, where no message can be shown.
        up = st.file_uploader(
            "…or search by picture",
            key=f"upload-{ss.uploader}",
            help="JPG, PNG, WebP, GIF, BMP, TIFF, HEIC or AVIF: the content decides, not the name",
        )
    upload = up.getvalue() if up is not None else None
    if up is not None and ss.get("last_upload") != up.file_id:
        ss.last_upload = up.file_id
        state.new_text()
    weight = 0.5
    if upload is not None:
        with st.container(horizontal=True, vertical_alignment="center", key="upload-row"):
            try:
                st.image(upload, width=72, alt=f"the picture searched with: {up.name if up else ''}")
            except Exception:  # the upload's own check below gives the message
                pass
            st.caption(f"Searching with **{up.name if up else 'your picture'}**" + (" and the text" if text else ""))
            if text and text.strip():
                weight = st.slider(
                    "Text ⟷ picture", 0.0, 1.0, 0.5, 0.05, key="weight", on_change=state.reset_pages,
                    help="How much the picture counts against the text",
                )  # fmt: skip
    if ss.like is not None:
        grid.query_picture(svc, ss.like, ss.get("like_from", ""))
    return QuerySpec(
        text=text or "",
        negative=neg or "",
        upload=upload if ss.like is None else None,
        upload_name=up.name if up is not None else "",
        image_weight=weight,
        like_id=ss.like,
    )


def _breadcrumb(slot) -> None:
    history = st.session_state.history
    if not history:
        return
    crumbs = slot.container(horizontal=True, gap="xsmall", key="history")
    for i, (view, label) in enumerate(history[:3]):
        crumbs.button(
            f"← back to {_md(label)}" if i == 0 else _md(label), key=f"back-{i}", on_click=state.back_to, args=(view,),
            type="tertiary",
        )  # fmt: skip


def _encode(svc: Service, spec: QuerySpec) -> tuple[QuerySpec, str]:
    """Compute the query vector when the query changed; an unreadable upload warns and the text still runs.
    Returns the query that runs, and its kind for the score labels: "text" or "image"."""
    ss = st.session_state
    if ss.get("qkey") != spec.key:  # the upload is decoded once, when the query changes
        ss.qdrop = None
        try:
            ss.qvec = svc.encode(spec)  # raises for an unreadable upload or a vanished image
        except QueryImageError as e:
            if spec.upload is None or not spec.text.strip():
                raise
            ss.qdrop = f"{e.message}: searching the text alone."
            ss.qvec = svc.encode(QuerySpec(text=spec.text, negative=spec.negative, like_id=spec.like_id))
        ss.qkey = spec.key
    if ss.get("qdrop"):
        st.warning(ss.qdrop)
        spec = QuerySpec(text=spec.text, negative=spec.negative, like_id=spec.like_id)
    return spec, "image" if spec.upload is not None or spec.like_id is not None else "text"


def _label(svc: Service, spec: QuerySpec) -> str:
    """What the breadcrumb calls this query, and writes the URL for it."""
    if spec.like_id is not None:
        try:
            label = f"more like {os.path.basename(svc.row(spec.like_id).path)}"
        except PixseekError:
            label = f"more like #{spec.like_id}"
    else:
        label = f"'{spec.text.strip()}'" if spec.text.strip() else ""
    if spec.upload is None:
        state.write_url(state.current(), label)
        return label
    return "your picture" + (f" and {label}" if label else "")


if __name__ == "__main__":
    main()
