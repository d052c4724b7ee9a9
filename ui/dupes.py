"""The duplicates page: groups of near-duplicates side by side, the file pixseek suggests keeping first.

The groups are :func:`pixseek.search.dupes.find_duplicates`' (what ``pixseek dupes`` prints): identical
files, the same picture re-encoded or resized, similar shots. Each file shows its thumbnail, how it
relates to the kept one (kind, score, hash bits), its size, pixels, date and folder. The page only
reads: pixseek never deletes a file. It offers the list as CSV or JSON, and the exact ``pixseek dupes
--move-to`` command for the kinds and folder chosen (it finds the groups again when it runs, all of them,
not only those on screen; moves have an undo log; none for pictures at URLs, which pixseek cannot move).
The report is kept by the service until the index changes, since at 100k pictures it takes minutes.
"""

from __future__ import annotations

import json
import os
import shlex

import streamlit as st

from pixseek import sources
from pixseek.errors import PixseekError
from pixseek.search.dupes import KIND_WORDS, KINDS, DupeFile, DupeGroup, DupeReport, day_text, size_text
from pixseek.search.dupes_export import to_csv

from .page import SEARCH_PAGE
from .service import Service
from .text import md as _md

GROUPS_PER_PAGE = 12
FILES_SHOWN = 8  # files of one group shown side by side; the rest are counted (the export lists all)
THUMB_WIDTH = 180
ALL_FOLDERS = "All folders"
CHOICES = {
    "exact": "Identical files",
    "same": "Same picture, re-encoded or resized",
    "similar": "Similar shots: crops, edits, bursts",
}
BADGE = {"exact": "blue", "same": "orange", "similar": "violet"}
# The search page's widgets: Streamlit forgets a widget's value on a run that does not draw it, so this
# page writes them back (as the multipage docs advise) and the search is as the user left it.
SEARCH_KEYS = (
    "q", "neg", "f_folder", "f_types", "f_dates", "f_min_side", "f_cameras", "f_places", "f_gps", "f_tags",
    "mode", "sort", "hide_dupes", "cutoff", "page_size", "min_score", "cols", "weight",
)  # fmt: skip


def page(svc: Service) -> None:
    ss = st.session_state
    for key in SEARCH_KEYS:
        if key in ss:
            ss[key] = ss[key]
    if ss.get("url") is not None:
        ss.search_url = ss.url  # the search page restores its URL when the user comes back
    st.markdown("### :material/filter_none: Duplicates")
    st.caption(
        "Pictures that repeat one another, the one to keep first (the most pixels, then the oldest). pixseek "
        "never deletes a file: export the list, or move the others away with the command below (it can be undone)."
    )
    folders, _ = svc.choices()
    row = st.container(horizontal=True, vertical_alignment="bottom", key="dupe-controls")
    kinds = row.multiselect(
        "Kinds", list(CHOICES), default=list(CHOICES), format_func=CHOICES.__getitem__, key="d_kinds",
        on_change=_first_page, width=470,
    )  # fmt: skip
    folder = row.selectbox("Folder", [ALL_FOLDERS] + folders, key="d_folder", on_change=_first_page, width=280)
    again = row.button("Look again", key="d_again", icon=":material/refresh:", help="Search the index afresh")
    if not kinds:
        st.info("Choose at least one kind of duplicate.")
        return
    chosen = tuple(k for k in KINDS if k in kinds)
    where = None if folder in (None, ALL_FOLDERS) else folder
    with st.spinner("Looking for duplicates… (minutes for 100,000 pictures; the result is kept)"):
        report = svc.duplicates(chosen, where, fresh=again)
    _summary(svc, report, chosen, where)
    _groups(svc, report)


def _first_page() -> None:
    st.session_state.d_shown = GROUPS_PER_PAGE


def _summary(svc: Service, report: DupeReport, kinds: tuple[str, ...], folder: str | None) -> None:
    d = report.to_dict()["summary"]
    if not report.groups:
        st.success(f"No duplicates among {report.images:,} pictures.")
    else:
        counts = ", ".join(f"{d[k]:,} {KIND_WORDS[k]}" for k in KINDS if d[k])
        st.markdown(
            f"**{d['groups']:,} groups** ({counts}) among {report.images:,} pictures: **{d['movable']:,} files "
            f"({size_text(d['movable_bytes'])})** could be moved away, one file of each group stays."
        )
    st.caption(f"{_md(report.rule.describe())} · found in {report.seconds:.1f} s")
    for note in report.notes:
        st.caption(_md(note))
    if not report.groups:
        return
    with st.container(horizontal=True, key="dupe-actions"):
        st.download_button("Download the list (CSV)", to_csv(report), "pixseek-dupes.csv", "text/csv", key="d_csv")
        st.download_button(
            "Download the list (JSON)", json.dumps(report.to_dict(), indent=1), "pixseek-dupes.json",
            "application/json", key="d_json",
        )  # fmt: skip
    if folder is not None and sources.is_url(folder):
        return  # objects at a URL: pixseek moves only local files
    with st.expander("Move the others away (from a terminal)"):
        st.code(_move_command(svc, kinds, folder), language="bash")
        st.caption(
            "It finds the groups again and moves every group of these kinds in this folder, not only those on "
            "screen: every file but the kept one goes below FOLDER (its full path kept) and leaves the index; "
            "the command prints the undo log it writes: `pixseek dupes --undo LOG` puts everything back."
        )


def _move_command(svc: Service, kinds: tuple[str, ...], folder: str | None) -> str:
    parts = ["pixseek", "dupes", "--db", str(svc.data_dir.root)]
    if kinds != KINDS:
        for k in kinds:
            parts += ["--kind", k]
    if folder:
        parts += ["--in", folder]
    command = " ".join(shlex.quote(p) for p in parts) + " --move-to FOLDER"
    return f"# what would move, changing nothing:\n{command} --dry-run\n# move:\n{command}"


def _groups(svc: Service, report: DupeReport) -> None:
    ss = st.session_state
    shown = int(ss.get("d_shown") or GROUPS_PER_PAGE)
    for g in report.groups[:shown]:
        _group(svc, g)
    rest = len(report.groups) - shown
    if rest > 0:
        st.button(
            f"Show {min(rest, GROUPS_PER_PAGE)} more groups ({rest:,} left)", key="d_more", on_click=_more,
        )  # fmt: skip


def _more() -> None:
    st.session_state.d_shown = int(st.session_state.get("d_shown") or GROUPS_PER_PAGE) + GROUPS_PER_PAGE


def _group(svc: Service, g: DupeGroup) -> None:
    movable = sum(f.size for f in g.others)
    with st.container(border=True, key=f"dupe-group-{g.number}"):
        st.markdown(
            f"**Group {g.number}** :{BADGE[g.kind]}-badge[{KIND_WORDS[g.kind]}] {len(g.files)} files · "
            f"{size_text(movable)} to move"
        )
        with st.container(horizontal=True, gap="medium"):
            for f in g.files[:FILES_SHOWN]:
                _file(svc, f)
        if len(g.files) > FILES_SHOWN:
            st.caption(f"…and {len(g.files) - FILES_SHOWN} more files (the downloaded list has them all)")


def _file(svc: Service, f: DupeFile) -> None:
    name = os.path.basename(f.path)
    with st.container(width=THUMB_WIDTH, key=f"dupe-file-{f.id}"):
        try:
            st.image(svc.thumbnail(f.id), width=THUMB_WIDTH, alt=name)
        except PixseekError as e:  # unreadable now, or gone from the index since the report
            st.warning(e.message)
        st.markdown(_relation(f))
        dims = f"{f.width}×{f.height}" if f.width and f.height else "?×?"
        st.markdown(
            f"**{_md(name)}**  \n{dims} · {_md(f.format or '?')} · {size_text(f.size)}  \n{day_text(f.date)}",
            help=f.path,
        )
        st.caption(_md(os.path.dirname(f.path)))
        st.page_link(SEARCH_PAGE, label="Similar pictures", icon=":material/image_search:", query_params={"like": f.id})


def _relation(f: DupeFile) -> str:
    if f.keep:
        return ":green-badge[:material/check: keep]"
    if f.kind == "exact":
        return f":{BADGE['exact']}-badge[identical]"
    why = f"score {f.score:.3f}" + (f" · hash {f.hash_distance} bits" if f.hash_distance is not None else "")
    return f":{BADGE[str(f.kind)]}-badge[{f.kind}] {why}"
