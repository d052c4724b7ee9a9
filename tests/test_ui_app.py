"""The search page's logic through Streamlit's AppTest (no browser): every state the page can be in."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from imagegen import make_corpus
from pagetest import APP, cards, open_card, open_page, result_cards, result_folders, unmd
from streamlit.testing.v1 import AppTest

from pixseek.index.indexer import Indexer
from pixseek.search import Engine


def _service(db):
    """The page's Service for ``db``: Streamlit's resource cache hands the test the instance the page uses."""
    from pixseek.search.uploads import DEFAULT_MAX_UPLOAD_BYTES
    from pixseek.ui.page import service

    return service(str(Path(db).absolute()), DEFAULT_MAX_UPLOAD_BYTES)


def _ok(at: AppTest) -> None:
    assert not at.exception, [e.value for e in at.exception]


def test_no_index_tells_the_exact_command(tmp_path, monkeypatch):
    db = tmp_path / "nothing-here"
    at = open_page(db, monkeypatch)
    _ok(at)
    assert at.info[0].value == f"No index yet in `{db}`. Build one with:"
    assert at.code[0].value == f"pixseek index PATH --db {db}"


def test_empty_query_and_sidebar_facts(ui_index, monkeypatch):
    db, root = ui_index
    at = open_page(db, monkeypatch)
    _ok(at)
    assert at.info[0].value == "Type a description, or drop a picture to find similar ones."
    facts = at.sidebar.markdown[0].value
    assert facts.startswith("**24** images · model `tiny-random`") and "index `IDMap2,Flat`" in facts
    assert at.sidebar.expander[0].label == "1 files could not be indexed"
    table = at.sidebar.dataframe[0].value
    assert list(table["file"]) == [str(root / "broken.jpg")] and list(table["stage"]) == ["decode"]
    assert not result_cards(at)


def test_text_search_pages_without_re_encoding(ui_index, monkeypatch):
    db, _ = ui_index
    at = open_page(db, monkeypatch)
    at.sidebar.selectbox(key="page_size").set_value(12)
    at.text_input(key="q").input("a red square").run()
    _ok(at)
    cards = result_cards(at)
    assert len(cards) == 12 and [s for s, _ in cards] == sorted((s for s, _ in cards), reverse=True)
    svc = _service(db)
    encodes = svc.encodes
    at.button(key="load-more").click().run()
    _ok(at)
    more = result_cards(at)
    assert len(more) == 24 and more[:12] == cards
    assert svc.encodes == encodes  # paging re-used the query vector
    assert not [b for b in at.button if b.key == "load-more"]  # all 24 shown: no more to load
    assert at.query_params["q"] == "a red square"


def test_link_with_query_and_threshold_no_good_match(ui_index, monkeypatch):
    db, _ = ui_index
    at = open_page(db, monkeypatch, query="blue circle")
    _ok(at)
    assert at.text_input(key="q").value == "blue circle" and len(result_cards(at)) == 24
    at.sidebar.slider(key="min_score").set_value(0.99).run()
    _ok(at)
    assert not result_cards(at)
    assert at.warning[0].value == (
        "No good match: nothing scored 0.99 or more. Lower the minimum score or describe it differently."
    )


def test_upload_finds_itself_and_bad_upload_is_one_line(ui_index, monkeypatch):
    db, root = ui_index
    at = open_page(db, monkeypatch)
    target = root / "set1" / "img0004.png"
    at.file_uploader[0].upload("query.png", target.read_bytes(), "image/png").run()
    _ok(at)
    cards = result_cards(at)
    assert cards[0][1] == "img0004.png" and cards[0][0] > 0.99
    # text + picture: the weight slider appears and moves the ranking toward the text
    at.text_input(key="q").input("a green triangle").run()
    assert at.slider(key="weight").value == 0.5
    at.slider(key="weight").set_value(1.0).run()
    _ok(at)
    assert result_cards(at)[0][1] == "img0004.png"
    # an unreadable upload: a clear message, no traceback, no results
    at2 = open_page(db, monkeypatch)
    at2.file_uploader[0].upload("holiday.png", b"this is not a picture", "image/png").run()
    _ok(at2)
    assert at2.error[0].value.startswith("cannot use holiday.png: not a supported image: the content is none of")
    assert not result_cards(at2)
    n = len(list(Path(db).rglob("*")))
    assert n == len(list(Path(db).rglob("*")))  # uploads never land in the data dir


def test_open_more_like_this_keeps_the_text_and_clear_goes_back(ui_index, monkeypatch):
    """Open shows the detail (a dialog) by id; More like this there searches with the picture, keeps
    the typed text in the box and says where it came from; Clear goes back to that text."""
    db, root = ui_index
    at = open_page(db, monkeypatch, query="a yellow star")
    cards = result_cards(at)
    first = cards[0][1]
    image_id = open_card(at)
    _ok(at)
    facts = next(m.value for m in at.markdown if "KiB" in m.value)  # in the dialog
    assert "×" in facts and "match: **" in facts
    where = next(c.value for c in at.code if c.value.startswith("/"))
    assert Path(where).is_relative_to(root) and Path(where).name == first
    assert at.get("download_button")
    at.button(key="detail-like").click().run()
    _ok(at)
    banner = next(m.value for m in at.main.markdown if m.value.startswith("More like **"))
    assert banner == f"More like **{first.replace('.', chr(92) + '.')}** · from 'a yellow star'"
    liked = result_cards(at)
    assert first not in [n for _, n in liked] and len(liked) == 23  # itself excluded
    assert at.text_input(key="q").value == "a yellow star"
    assert at.query_params["like"] == str(image_id) and at.query_params["q"] == "a yellow star"
    assert at.button(key="back-0").label == "← back to 'a yellow star'"
    at.button(key="clear-like").click().run()
    _ok(at)
    assert result_cards(at) == cards and "like" not in at.query_params
    assert unmd(at.button(key="back-0").label) == f"← back to more like {first}"


def test_filters_narrow_before_ranking(ui_index, monkeypatch):
    db, root = ui_index
    at = open_page(db, monkeypatch, query="a shape")
    folders = at.sidebar.selectbox(key="f_folder").options
    assert folders[:2] == ["All folders", str(root)] and str(root / "set1") in folders
    at.sidebar.selectbox(key="f_folder").set_value(str(root / "set1")).run()
    _ok(at)
    assert len(result_cards(at)) == 8 and set(result_folders(at)) == {"photos/set1"}  # relative to the indexed root
    at.sidebar.multiselect(key="f_types").set_value(["PNG"]).run()  # set1 holds only PNGs
    assert len(result_cards(at)) == 8
    at.sidebar.multiselect(key="f_types").set_value(["WEBP"]).run()
    assert not result_cards(at)
    assert at.warning[0].value.startswith(f"No images match the filters (in {root / 'set1'}, type WEBP)")
    at.sidebar.selectbox(key="f_folder").set_value("All folders").run()
    names = [n for _, n in result_cards(at)]
    assert len(names) == 8 and all(n.endswith(".webp") for n in names)
    at.sidebar.selectbox(key="f_folder").set_value("All folders")
    at.sidebar.multiselect(key="f_types").set_value([])
    at.sidebar.date_input(key="f_dates").set_value((dt.date(2018, 5, 1), dt.date(2018, 5, 31))).run()
    _ok(at)
    assert len(result_cards(at)) == 3 and set(result_folders(at)) == {"photos/set2"}
    assert {(c["date"], c["dated"]) for c in cards(at)} == {("2018-05-05", "file time")}  # the date on each card
    at.sidebar.date_input(key="f_dates").set_value((dt.date(1990, 1, 1), dt.date(1990, 1, 2))).run()
    _ok(at)
    assert at.warning[0].value.startswith("No images match the filters (dated 1990-01-01 to 1990-01-02)")


def test_new_images_appear_after_indexing(ui_index, monkeypatch, tiny):
    db, root = ui_index
    at = open_page(db, monkeypatch, query="anything")
    svc = _service(db)
    reloads = svc.reloads
    new = make_corpus(root / "new", 4, start=100, subdirs=False)
    Indexer(db, encoder=tiny, batch_size=8).run([root])
    at.run()  # the page notices the new generation
    at.sidebar.selectbox(key="f_folder").set_value(str(root / "new")).run()
    _ok(at)
    assert sorted(n for _, n in result_cards(at)) == sorted(p.name for p in new)
    assert at.sidebar.markdown[0].value.startswith("**28** images")
    assert svc.reloads == reloads + 1


def test_bad_links_are_messages_not_tracebacks(ui_index, monkeypatch):
    db, _ = ui_index
    monkeypatch.setenv("PIXSEEK_DB", str(db))
    for like, message in (
        ("../../etc/passwd", "The link names no image: `like` must be an image id."),
        ("999999", "image 999999 is no longer in the index"),
    ):
        at = AppTest.from_file(APP, default_timeout=120)
        at.query_params["like"] = like
        at.run()
        _ok(at)
        assert message in [e.value for e in at.error], [e.value for e in at.error]
        assert not result_cards(at)


def test_host_names_the_page_answers_to():
    from pixseek.hosts import allowed

    for host in ("127.0.0.1:8501", "localhost:8501", "LOCALHOST", "[::1]:8501", "127.9.9.9", None):
        assert allowed(host, "127.0.0.1"), host
    for host in ("rebind.example:8501", "evil.com", "10.0.0.5:8501", "[2001:db8::1]:8501", "127.0.0.1.evil.com"):
        assert not allowed(host, "127.0.0.1"), host
    assert allowed("10.0.0.5:8501", "10.0.0.5") and not allowed("10.0.0.6", "10.0.0.5")
    assert allowed("anything.example", "0.0.0.0") and allowed("anything.example", "::")


def test_an_unreadable_upload_beside_text_warns_and_the_text_still_runs(ui_index, monkeypatch):
    db, _ = ui_index
    at = open_page(db, monkeypatch, query="a red square")
    cards = result_cards(at)
    at.file_uploader[0].upload("holiday.png", b"this is not a picture", "image/png").run()
    _ok(at)
    assert at.warning[0].value.startswith("cannot use holiday.png: not a supported image")
    assert at.warning[0].value.endswith(": searching the text alone.")
    assert result_cards(at) == cards and not at.error


def test_the_url_drives_the_page_as_back_and_forward_do(ui_index, monkeypatch):
    """Back / Forward rerun the page with an older URL: the page follows it (text box, grid size) and the
    breadcrumb offers the query it left."""
    db, _ = ui_index
    at = open_page(db, monkeypatch, query="a red square")
    first = result_cards(at)
    at.query_params["q"] = "a blue circle"
    at.query_params["cols"] = "8"
    at.run()
    _ok(at)
    assert at.text_input(key="q").value == "a blue circle"
    assert at.segmented_control(key="cols").value == 8
    assert result_cards(at) != first
    assert at.button(key="back-0").label == "← back to 'a red square'"
    at.button(key="back-0").click().run()
    _ok(at)
    assert at.text_input(key="q").value == "a red square" and result_cards(at) == first
    assert at.query_params["q"] == "a red square"


def test_a_link_in_another_spelling_does_not_hold_the_page(ui_index, monkeypatch):
    """?q=...&cols=6&utm_source=x is not how the page writes its URL: the page rewrites it once and then
    follows what the user types, not the link."""
    db, _ = ui_index
    monkeypatch.setenv("PIXSEEK_DB", str(db))
    at = AppTest.from_file(APP, default_timeout=120)
    at.query_params["q"], at.query_params["cols"], at.query_params["utm_source"] = "a red square", "6", "x"
    at.run()
    _ok(at)
    at.text_input(key="q").input("a blue circle").run()
    _ok(at)
    assert at.text_input(key="q").value == "a blue circle" and at.query_params["q"] == "a blue circle"
    at.run()
    assert at.text_input(key="q").value == "a blue circle"


def test_names_are_text_and_more_like_this_skips_the_pictures_copies(ui_index, monkeypatch, tiny):
    """A file named like Markdown or HTML shows as its name (no link, no tag); identical copies are one
    card, and "more like" a picture does not offer its own copies."""
    import shutil

    from PIL import Image, ImageDraw

    db, root = ui_index
    odd = root / "set1" / "[Verify](https:evil.com) $x$ <b>.png"
    im = Image.new("RGB", (96, 96), "white")
    ImageDraw.Draw(im).ellipse((10, 10, 80, 80), fill="purple")
    im.save(odd)
    copy = root / "set2" / "copy.png"
    shutil.copy(root / "set1" / "img0004.png", copy)
    Indexer(db, encoder=tiny, batch_size=8).run([root])
    at = open_page(db, monkeypatch, query="a shape")
    at.sidebar.selectbox(key="page_size").set_value(48).run()
    _ok(at)
    shown = cards(at)
    assert len(shown) == 25  # 26 files, two of them identical: one card
    odd_card = next(c for c in shown if "Verify" in c["name"])
    assert odd_card["name"] == odd.name and odd_card["folder"] == "photos/set1"  # text: cards.js sets textContent
    names = [c["name"] for c in shown]
    assert sum(n in ("img0004.png", "copy.png") for n in names) == 1
    assert [c["copies"] for c in shown if c["copies"]] == ["+1 copy"]
    open_card(at, next(n for n in names if n in ("img0004.png", "copy.png")))
    at.button(key="detail-like").click().run()
    _ok(at)
    assert not {"img0004.png", "copy.png"} & {n for _, n in result_cards(at)}


def test_words_and_meaning_modes_and_why_a_card_matched(ui_index, monkeypatch, tiny):
    """A text finds a picture by its file name (hybrid, the default); the card says why; "Meaning"
    ranks by the vector alone; "Words" by the keyword index alone."""
    from PIL import Image

    db, root = ui_index
    Image.new("RGB", (64, 64), "teal").save(root / "set1" / "invoice 2291.png")
    Indexer(db, encoder=tiny, batch_size=8).run([root])
    at = open_page(db, monkeypatch, query="the invoice")
    _ok(at)
    first = cards(at)[0]
    assert (first["name"], first["why"], first["label"]) == ("invoice 2291.png", "file name", "words")
    assert all(c["why"] == "" for c in cards(at)[1:])
    at.sidebar.segmented_control(key="mode").set_value("keyword").run()
    _ok(at)
    assert [c["name"] for c in cards(at)] == ["invoice 2291.png"]
    at.sidebar.segmented_control(key="mode").set_value("semantic").run()
    _ok(at)
    assert all(c["why"] == "" for c in cards(at)) and len(cards(at)) == 24
    at.text_input(key="q").set_value('"invoice 2291"').run()  # quoted: literal, in every mode
    _ok(at)
    assert [c["name"] for c in cards(at)] == ["invoice 2291.png"]


def test_tag_facet_order_by_date_and_hiding_near_duplicates(ui_index, monkeypatch):
    """The sidebar offers the index's tags with counts; choosing one keeps pictures with it (shown on
    their cards); "Newest first" orders the matches by date; hiding near-duplicates runs."""
    db, _ = ui_index
    at = open_page(db, monkeypatch, query="a shape")
    _ok(at)
    tags = at.sidebar.multiselect(key="f_tags")
    first = tags.options[0]  # "tag (n)": the most used first
    name, count = first.rsplit(" (", 1)
    tags.set_value([name]).run()
    _ok(at)
    shown = cards(at)
    assert len(shown) == int(count.rstrip(")")) and all(name in c["tags"] for c in shown)
    at.sidebar.multiselect(key="f_tags").set_value([]).run()
    at.sidebar.selectbox(key="sort").set_value("newest").run()
    _ok(at)
    dates = [c["date"] for c in cards(at)]
    assert len(dates) == 24 and dates == sorted(dates, reverse=True) and dates[-1] == "2018-05-05"
    at.sidebar.selectbox(key="sort").set_value("score").run()
    ranked = [c["id"] for c in cards(at)]
    at.sidebar.toggle(key="hide_dupes").set_value(True).run()
    _ok(at)
    with Engine.open(db) as eng:  # what the engine calls a near-duplicate of a better-ranked picture
        hidden = eng.near_duplicates(ranked, copies=False)
    assert hidden and [c["id"] for c in cards(at)] == [i for i in ranked if i not in hidden]
