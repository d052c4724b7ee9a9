"""Path traversal and absolute paths through every input of the search page: nothing outside the index.

The page serves pictures by index id only (thumbnails made from rows of the database); these tests
throw traversal strings at the link parameters, both text boxes, the upload (its name and content)
and the folder filter, and check that every picture shown is an indexed one under the indexed root.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from pagetest import APP, result_cards, result_folders
from streamlit.testing.v1 import AppTest

from pixseek.store.filters import Filter

TRAVERSALS = [
    "../../../../etc/passwd",
    "/etc/passwd",
    "..%2f..%2fetc%2fpasswd",
    "....//....//etc/passwd",
    "file:///etc/passwd",
    "C:\\Windows\\win.ini",
    "/proc/self/environ",
    "~/.ssh/id_rsa",
    "\x00/etc/passwd",
    "1 OR 1=1; DROP TABLE images; --",
]
ATTEMPTS = {"count": 0}


def _shown_inside(at: AppTest, root: Path) -> None:
    assert not at.exception, [e.value for e in at.exception]
    for folder in result_folders(at):  # each picture shown is captioned with its folder, led by the root's name
        assert (root.parent / folder).resolve().is_relative_to(root), folder


@pytest.mark.parametrize("value", TRAVERSALS)
def test_link_parameters(ui_index, monkeypatch, value):
    db, root = ui_index
    monkeypatch.setenv("PIXSEEK_DB", str(db))
    for key in ("like", "q"):
        at = AppTest.from_file(APP, default_timeout=120)
        at.query_params[key] = value
        at.run()
        ATTEMPTS["count"] += 1
        _shown_inside(at, root)
        if key == "like":
            assert not result_cards(at)
            assert "The link names no image: `like` must be an image id." in [e.value for e in at.error]


def test_text_boxes_and_upload(ui_index, monkeypatch):
    db, root = ui_index
    monkeypatch.setenv("PIXSEEK_DB", str(db))
    at = AppTest.from_file(APP, default_timeout=120).run()
    for value in TRAVERSALS:
        at.text_input(key="q").input(value.replace("\x00", "")).run()
        at.text_input(key="neg").input(value.replace("\x00", "")).run()
        ATTEMPTS["count"] += 2
        _shown_inside(at, root)
    real = (root / "set0" / "img0000.jpg").read_bytes()
    for name in TRAVERSALS:
        at = AppTest.from_file(APP, default_timeout=120).run()
        at.file_uploader[0].upload(name + ".jpg", real, "image/jpeg").run()  # a hostile name is only a label
        ATTEMPTS["count"] += 1
        _shown_inside(at, root)
        assert result_cards(at)[0][1] == "img0000.jpg"
        at = AppTest.from_file(APP, default_timeout=120).run()
        at.file_uploader[0].upload(name, real, "image/jpeg").run()  # no extension: the bytes decide
        ATTEMPTS["count"] += 1
        _shown_inside(at, root)
        assert result_cards(at)[0][1] == "img0000.jpg"
        at2 = AppTest.from_file(APP, default_timeout=120).run()
        at2.file_uploader[0].upload("x.png", name.encode(), "image/png").run()  # a path as the content
        ATTEMPTS["count"] += 1
        assert not result_cards(at2) and at2.error[0].value.startswith("cannot use x.png: not a supported image")
    assert not list(Path(db).rglob("*.jpg")) and not list(Path(db).rglob("*.png"))  # nothing written


def test_folder_filter_outside_the_index_selects_nothing(ui_index, tiny):
    from pixseek.search.engine import Engine

    db, root = ui_index
    with Engine.open(db, encoder=tiny) as eng:
        q = eng.encode_text("x")
        for folder in ("/etc", "/", str(root / ".." / ".." / "etc"), str(root) + "/../" + root.name + "/../etc"):
            ATTEMPTS["count"] += 1
            for r in eng.search_vector(q, 50, filter=Filter(folder=folder)):
                assert Path(r.path).is_relative_to(root)
        assert eng.search_vector(q, 50, filter=Filter(folder="/etc")) == []
    # the page offers only folders of indexed images
    import os

    os.environ["PIXSEEK_DB"] = str(db)
    try:
        at = AppTest.from_file(APP, default_timeout=120).run()
        options = at.sidebar.selectbox(key="f_folder").options
    finally:
        del os.environ["PIXSEEK_DB"]
    assert all(o == "All folders" or Path(o).is_relative_to(root) for o in options)
