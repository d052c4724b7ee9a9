"""The pixseek search page (Streamlit): text-to-image and image-to-image search over one index.

``pixseek ui [--db DIR]`` runs ``app.py``, which calls :func:`main`; the data dir comes from ``--db``
after the script's ``--``, else from the settings (``$PIXSEEK_DB``). All index access goes through
:mod:`pixseek.ui.service`; pictures are sent to the browser as thumbnails looked up by row id, never
read from a path the browser names.
"""

from __future__ import annotations

import argparse
import datetime as dt
import logging
import os
import sys

import streamlit as st

from pixseek.errors import EmptyIndexError, ImageError, IndexNotFoundError, PixseekError
from pixseek.search import Filter
from pixseek.search.uploads import DEFAULT_MAX_UPLOAD_BYTES
from pixseek.store import DataDir

from . import hosts
from .service import QuerySpec, Service

COLUMNS = 4
PAGE_SIZES = (12, 24, 48, 96)
ALL_FOLDERS = "All folders"


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


def _message(e: PixseekError) -> str:
    return e.message + (f" ({e.hint})" if getattr(e, "hint", None) else "")


# --- state --------------------------------------------------------------------------------------
def _init_state() -> None:
    ss = st.session_state
    if ss.get("_init"):
        return
    ss._init = True
    ss.pages, ss.like, ss.open, ss.uploader = 1, None, None, 0
    ss.q = st.query_params.get("q", "")
    like = st.query_params.get("like")
    if like is not None:
        try:
            ss.like = int(like)
        except ValueError:
            ss.bad_like = like


def _more_like(image_id: int) -> None:
    ss = st.session_state
    ss.like, ss.q, ss.neg, ss.pages, ss.open = int(image_id), "", "", 1, None
    ss.uploader += 1  # a new uploader key clears the uploaded picture


def _open(image_id: int | None) -> None:
    st.session_state.open = image_id


def _more_pages() -> None:
    st.session_state.pages += 1


def _reset_pages() -> None:
    st.session_state.pages = 1


def _new_query() -> None:
    """A typed text or a new picture replaces a "more like this" query (and Clear drops it)."""
    st.session_state.like = None
    st.session_state.pages = 1


# --- sidebar ------------------------------------------------------------------------------------
def _sidebar(svc: Service) -> tuple[Filter, int, float | None]:
    sb = st.sidebar
    facts = svc.facts()
    sb.header("Index")
    sb.markdown(
        f"**{facts['images']:,}** images · model `{facts['model']}`  \n"
        f"index `{facts['index_type']}` · last indexed {facts['last_indexed'] or 'never'}"
    )
    n_err = facts["errors"]
    with sb.expander(f"{n_err:,} files could not be indexed" if n_err else "No indexing errors", expanded=False):
        if n_err:
            st.dataframe(
                [{"file": e["path"], "stage": e["stage"], "reason": e["message"]} for e in svc.errors()],
                hide_index=True,
                width="stretch",
            )
        else:
            st.caption("Every file found was indexed.")

    sb.header("Filters")
    folders, formats = svc.choices()
    folder = sb.selectbox(
        "Folder",
        [ALL_FOLDERS] + folders,
        key="f_folder",
        on_change=_reset_pages,
        help="Only images in this folder or below it",
    )
    types = sb.multiselect("File type", formats, key="f_types", on_change=_reset_pages)
    dates = sb.date_input(
        "Date (taken, else file time)",
        value=(),
        key="f_dates",
        on_change=_reset_pages,
        min_value=dt.date(1826, 1, 1),
        max_value=dt.date(2100, 12, 31),
    )
    min_side = sb.number_input(
        "Minimum size (shorter side, px)",
        min_value=0,
        max_value=100_000,
        value=0,
        step=100,
        key="f_min_side",
        on_change=_reset_pages,
    )
    date_from = dates[0] if len(dates) > 0 else None
    date_to = dates[1] if len(dates) > 1 else date_from
    filt = Filter(
        folder=None if folder in (None, ALL_FOLDERS) else folder,
        formats=tuple(types),
        date_from=date_from,
        date_to=date_to,
        min_side=int(min_side or 0),
    )

    sb.header("Results")
    page_size = sb.selectbox("Per page", PAGE_SIZES, index=1, key="page_size", on_change=_reset_pages)
    min_score = sb.slider(
        "Minimum score",
        0.0,
        1.0,
        0.0,
        0.01,
        key="min_score",
        on_change=_reset_pages,
        help="Hide results less similar than this (cosine similarity); 0 shows all",
    )
    return filt, int(page_size), (min_score or None)


# --- query --------------------------------------------------------------------------------------
def _query_inputs(svc: Service) -> QuerySpec:
    ss = st.session_state
    left, right = st.columns([3, 2])
    text = left.text_input(
        "Describe what you are looking for", key="q", on_change=_new_query, placeholder="a dog on a beach at sunset"
    )
    neg = left.text_input("…but not", key="neg", on_change=_reset_pages, placeholder="people")
    # No type= filter and no on_change: the content decides what a file is (pixseek.search.uploads), and
    # Streamlit's own name check would fail outside this script, where no message can be shown.
    up = right.file_uploader(
        "…or search by picture",
        key=f"upload-{ss.uploader}",
        help="JPG, PNG, WebP, GIF, BMP, TIFF, HEIC or AVIF: the content decides, not the name",
    )
    upload = up.getvalue() if up is not None else None
    if up is not None and ss.get("last_upload") != up.file_id:
        ss.last_upload = up.file_id
        _new_query()
    weight = 0.5
    if upload is not None and text.strip():
        weight = st.slider(
            "Text ⟷ picture",
            0.0,
            1.0,
            0.5,
            0.05,
            key="weight",
            on_change=_reset_pages,
            help="How much the picture counts against the text",
        )
    if ss.like is not None:
        _like_banner(svc, ss.like)
    return QuerySpec(
        text=text or "",
        negative=neg or "",
        upload=upload,
        upload_name=up.name if up is not None else "",
        image_weight=weight,
        like_id=ss.like if upload is None and not (text or "").strip() else None,
    )


def _like_banner(svc: Service, image_id: int) -> None:
    try:
        row = svc.row(image_id)
    except PixseekError:
        return
    box = st.container(border=True)
    c1, c2, c3 = box.columns([1, 6, 2], vertical_alignment="center")
    try:
        c1.image(svc.thumbnail(image_id), width=72, alt="query picture")
    except ImageError:
        pass
    c2.markdown(f"More like **{os.path.basename(row.path)}**  \n`{os.path.dirname(row.path)}`")
    c3.button("Clear", key="clear-like", on_click=_new_query)


# --- results ------------------------------------------------------------------------------------
def _detail(svc: Service, image_id: int) -> None:
    try:
        row = svc.row(image_id)
        view = svc.view(image_id)
    except PixseekError as e:
        st.warning(_message(e))
        return
    box = st.container(border=True)
    head, close = box.columns([8, 1])
    head.subheader(os.path.basename(row.path))
    close.button("Close", key="close-detail", on_click=_open, args=(None,))
    box.image(view, width="stretch", alt="full view")
    when = dt.datetime.fromtimestamp(row.date).strftime("%Y-%m-%d %H:%M")
    box.markdown(
        f"`{row.path}`  \n{row.width}×{row.height} {row.format} · {row.size / 1024:,.0f} KiB · "
        f"{'taken' if row.taken_at else 'modified'} {when}"
    )
    try:
        box.download_button(
            "Download original", svc.original(image_id), file_name=os.path.basename(row.path), key="download"
        )
    except ImageError as e:
        box.caption(e.message)


def _grid(svc: Service, results) -> None:
    for start in range(0, len(results), COLUMNS):
        cols = st.columns(COLUMNS)
        for col, r in zip(cols, results[start : start + COLUMNS]):
            with col.container(border=True):
                try:
                    st.image(svc.thumbnail(r.id), width="stretch", alt=r.name)
                except ImageError as e:
                    st.warning(f"{r.name}: {e.message}")
                st.markdown(f"**{r.score:.3f}** · {r.name}")
                st.caption(r.folder)
                st.button("More like this", key=f"like-{r.id}", on_click=_more_like, args=(r.id,), width="stretch")
                st.button("Open", key=f"open-{r.id}", on_click=_open, args=(r.id,), width="stretch")


def _results(svc: Service, spec: QuerySpec, filt: Filter, page_size: int, min_score: float | None) -> None:
    ss = st.session_state
    if ss.get("qkey") != spec.key:
        ss.qvec = svc.encode(spec)  # raises for an unreadable upload or a vanished image
        ss.qkey = spec.key
    want = ss.pages * page_size
    exclude = (spec.like_id,) if spec.like_id is not None else ()
    results, seconds = svc.search(ss.qvec, want + 1, filter=filt, min_score=min_score, exclude=exclude)
    more = len(results) > want
    results = results[:want]
    if not results:
        if filt.active and svc.selection_size(filt) == 0:
            st.warning(f"No images match the filters ({filt.describe()}).")
        elif min_score is not None:
            st.warning(
                f"No good match: nothing scored {min_score:.2f} or more. "
                "Lower the minimum score or describe it differently."
            )
        else:
            st.warning("No results.")
        return
    st.caption(f"{len(results)} results · {filt.describe()} · {seconds * 1000:.0f} ms")
    if ss.open is not None:
        _detail(svc, ss.open)
    _grid(svc, results)
    if more:
        st.button("Load more", key="load-more", on_click=_more_pages)


def main() -> None:
    st.set_page_config(page_title="pixseek", page_icon="🔎", layout="wide")
    try:
        _page()
    except Exception as e:
        logging.getLogger("pixseek").exception("search page failed")
        st.error(
            f"Something went wrong: {type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''} "
            "(the details are in the `pixseek ui` log)"
        )


def _page() -> None:
    args = _args()
    host = st.context.headers.get("Host") if st.context.headers else None
    if not hosts.allowed(host, args.host):
        st.error(f"This page answers at the address pixseek was started on ({args.host}), not at {host!r}.")
        return
    svc = service(args.db, int(args.max_upload_mb * 2**20))
    st.title("pixseek")
    _init_state()
    try:
        svc.sync()
    except IndexNotFoundError:
        st.info(f"No index yet in `{svc.data_dir.root}`. Build one with:")
        st.code(f"pixseek index PATH --db {svc.data_dir.root}", language="bash")
        return
    except EmptyIndexError:
        st.info(f"The index in `{svc.data_dir.root}` has no images yet. Add some with:")
        st.code(f"pixseek index PATH --db {svc.data_dir.root}", language="bash")
        return
    except PixseekError as e:
        st.error(_message(e))
        return
    try:
        filt, page_size, min_score = _sidebar(svc)
        spec = _query_inputs(svc)
        if st.session_state.pop("bad_like", None) is not None:
            st.error("The link names no image: `like` must be an image id.")
        if spec.empty:
            st.info("Type a description, or drop a picture to find similar ones.")
            return
        st.query_params.from_dict(
            {k: v for k, v in (("q", spec.text.strip()), ("like", spec.like_id)) if v not in ("", None)}
        )
        _results(svc, spec, filt, page_size, min_score)
    except PixseekError as e:
        st.error(_message(e))


if __name__ == "__main__":
    main()
