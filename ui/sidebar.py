"""The sidebar: the index's facts and errors, the filters, and how results are shown."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import streamlit as st

from pixseek.search import Filter

from . import state
from .service import Service

PAGE_SIZES = (12, 24, 48, 96)
ALL_FOLDERS = "All folders"
# How a text ranks (pixseek.search.hybrid): the page's names for the engine's modes.
MODES = {"hybrid": "Meaning + words", "semantic": "Meaning", "keyword": "Words"}
SORTS = {"score": "Best match first", "newest": "Newest first", "oldest": "Oldest first"}


@dataclass(frozen=True)
class Options:
    """What the sidebar decides about the results."""

    filter: Filter
    page_size: int
    min_score: float | None
    mode: str = "hybrid"
    sort: str = "score"
    hide_dupes: bool = False
    cutoff: bool = True


def sidebar(svc: Service) -> Options:
    sb = st.sidebar
    _facts(svc)
    sb.header("Filters")
    folders, formats = svc.choices()
    folder = sb.selectbox(
        "Folder",
        [ALL_FOLDERS] + folders,
        key="f_folder",
        on_change=state.reset_pages,
        help="Only images in this folder or below it",
    )
    types = sb.multiselect("File type", formats, key="f_types", on_change=state.reset_pages)
    dates = sb.date_input(
        "Date (taken, else file time)",
        value=(),
        key="f_dates",
        on_change=state.reset_pages,
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
        on_change=state.reset_pages,
    )
    date_from = dates[0] if len(dates) > 0 else None
    date_to = dates[1] if len(dates) > 1 else date_from
    filt = Filter(
        folder=None if folder in (None, ALL_FOLDERS) else folder,
        formats=tuple(types),
        date_from=date_from,
        date_to=date_to,
        min_side=int(min_side or 0),
        cameras=tuple(st.session_state.get("f_cameras") or ()),
        places=tuple(st.session_state.get("f_places") or ()),
        has_gps=bool(st.session_state.get("f_gps")),
        tags=tuple(st.session_state.get("f_tags") or ()),
    )
    filt = _facet_widgets(svc, filt)
    sb.header("Results")
    mode = sb.segmented_control(
        "Match text by",
        list(MODES),
        format_func=MODES.__getitem__,
        default="hybrid",
        required=True,
        key="mode",
        on_change=state.reset_pages,
        help="Meaning: what the picture shows. Words: its file name, folders and the other words indexed "
        'with it. Meaning + words: both rankings fused. "Quoted words" must appear literally.',
    )
    sort = sb.selectbox(
        "Order",
        list(SORTS),
        format_func=SORTS.__getitem__,
        key="sort",
        on_change=state.reset_pages,
        help="Newest first: the best matches, ordered by the date taken (else the file time)",
    )
    hide = sb.toggle(
        "Hide near-duplicates",
        key="hide_dupes",
        on_change=state.reset_pages,
        help="Leave out re-encodes, resizes and crops of a picture shown above (pixseek dupes lists them all)",
    )
    cutoff = sb.toggle(
        "Cut off the irrelevant tail",
        value=True,
        key="cutoff",
        on_change=state.reset_pages,
        help="Show only the matches that stand out from what random captions and pictures score against this "
        "index (off: show all, best first)",
    )
    page_size = sb.selectbox("Per page", PAGE_SIZES, index=1, key="page_size", on_change=state.reset_pages)
    min_score = sb.slider(
        "Minimum score",
        0.0,
        1.0,
        0.0,
        0.01,
        key="min_score",
        on_change=state.reset_pages,
        help="Hide results less similar than this (cosine similarity; hover a strong/good/weak label to see "
        "a result's score); 0 shows all",
    )
    return Options(filt, int(page_size), min_score or None, str(mode or "hybrid"), str(sort), bool(hide), bool(cutoff))


def _facet_widgets(svc: Service, filt: Filter) -> Filter:
    """Camera, place, GPS and tag filters, offered from what the index holds (with counts among the
    pictures the other filters select); shown only when the index has any."""
    sb = st.sidebar
    facets, tags = svc.facets(filt)
    cameras = {c.name: f"{c.name} ({c.count:,})" for c in facets.cameras}
    places = {}
    for country in facets.countries:
        places[country.country] = f"{country.country} ({country.count:,})"
        for town in country.cities:
            if town.city:
                places[town.value] = f"{town.city} · {country.country} ({town.count:,})"
    tag_names = {t: f"{t} ({n:,})" for t, n in tags}
    for key, options in (("f_cameras", cameras), ("f_places", places), ("f_tags", tag_names)):
        for chosen in st.session_state.get(key) or ():  # a choice stays offered while it is chosen
            options.setdefault(chosen, chosen)
    if cameras:
        sb.multiselect(
            "Camera", list(cameras), format_func=cameras.__getitem__, key="f_cameras", on_change=state.reset_pages
        )
    if places:
        sb.multiselect(
            "Place", list(places), format_func=places.__getitem__, key="f_places", on_change=state.reset_pages
        )
    if facets.with_gps or st.session_state.get("f_gps"):
        sb.checkbox(f"Only with a GPS position ({facets.with_gps:,})", key="f_gps", on_change=state.reset_pages)
    if tag_names:
        sb.multiselect(
            "Tags",
            list(tag_names),
            format_func=tag_names.__getitem__,
            key="f_tags",
            on_change=state.reset_pages,
            help="Zero-shot tags (`pixseek tags`): pictures with every tag chosen",
        )
    return filt


def _facts(svc: Service) -> None:
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
    with sb.expander("What strong / good / weak mean", expanded=False):
        st.caption(svc.score_scale().describe())
