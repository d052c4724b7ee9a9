"""Schema migrations, the data-dir lock, and image decoding details."""

from __future__ import annotations

import sqlite3
import time

import numpy as np
import pytest
from imagegen import draw, encode, jpeg_with_orientation
from PIL import Image

from pixseek.decode import decode_bytes
from pixseek.errors import DatabaseTooNewError, ImageError, IndexLockedError
from pixseek.store.database import Store
from pixseek.store.lock import DirLock
from pixseek.store.migrations import MIGRATIONS, SCHEMA_VERSION
from pixseek.store.paths import DataDir


def test_migrations_are_recorded(tmp_path):
    st = Store.open(tmp_path / "d", create=True)
    assert st.meta("schema_version") == str(SCHEMA_VERSION)
    names = [r[0] for r in st.conn.execute("SELECT name FROM migrations ORDER BY id")]
    assert names == [n for n, _ in MIGRATIONS]
    st.close()
    Store.open(tmp_path / "d").close()  # re-open applies nothing new


def test_newer_database_is_refused(tmp_path):
    Store.open(tmp_path / "d", create=True).close()
    con = sqlite3.connect(tmp_path / "d" / "pixseek.db")
    con.execute("INSERT INTO migrations(name, applied_at) VALUES('m999_from_the_future', ?)", (time.time(),))
    con.commit()
    con.close()
    with pytest.raises(DatabaseTooNewError) as e:
        Store.open(tmp_path / "d")
    assert str(e.value) == (
        f"database {tmp_path / 'd' / 'pixseek.db'} has schema migrations this pixseek "
        "does not know (m999_from_the_future): it was written by a newer pixseek; upgrade pixseek"
    )


def test_data_dir_env_and_db_file_path(tmp_path, monkeypatch):
    monkeypatch.setenv("PIXSEEK_DB", str(tmp_path / "envdir"))
    assert DataDir.resolve(None).root == tmp_path / "envdir"
    assert DataDir.resolve(tmp_path / "x").root == tmp_path / "x"
    Store.open(tmp_path / "y", create=True).close()
    assert DataDir.resolve(tmp_path / "y" / "pixseek.db").root == tmp_path / "y"


def test_second_writer_is_refused(tmp_path):
    dd = DataDir.resolve(tmp_path / "d")
    dd.create()
    with (
        DirLock(dd),
        pytest.raises(IndexLockedError, match=r"^another pixseek index \(pid \d+\) is writing to "),
        DirLock(dd),
    ):
        pass
    with DirLock(dd):  # released
        pass


def test_exif_orientation_rotates_pixels():
    img = Image.new("RGB", (80, 40), "white")
    img.paste((255, 0, 0), (0, 0, 40, 40))  # left half red
    d = decode_bytes(jpeg_with_orientation(img, 6))  # 6 = rotate 90 clockwise for display
    assert (d.width, d.height) == (40, 80) and d.image.size == (40, 80)
    top = np.asarray(d.image)[5, 20]
    bottom = np.asarray(d.image)[75, 20]
    assert top[0] > 200 and top[1] < 60  # red ends up on top
    assert bottom.min() > 200


def test_alpha_is_composed_on_white_and_modes_convert():
    rgba = Image.new("RGBA", (10, 10), (0, 0, 0, 0))
    assert np.asarray(decode_bytes(encode(rgba, "PNG")).image).min() == 255
    pal = Image.new("P", (10, 10), 0)
    pal.putpalette([0, 0, 0] * 256)
    pal.info["transparency"] = 0
    assert np.asarray(decode_bytes(encode(pal, "PNG", transparency=0)).image).min() == 255
    sixteen = Image.fromarray(np.full((8, 8), 65535, np.uint16))
    out = decode_bytes(encode(sixteen, "PNG")).image
    assert out.mode == "RGB" and np.asarray(out).min() == 255
    cmyk = draw(1).convert("CMYK")
    assert decode_bytes(encode(cmyk, "JPEG")).image.mode == "RGB"


def test_jpeg_draft_decodes_smaller_but_reports_full_size():
    big = draw(2, (1600, 1200))
    d = decode_bytes(encode(big, "JPEG", quality=90), min_side=64)
    assert (d.width, d.height) == (1600, 1200)
    assert min(d.image.size) >= 64 and d.image.size[0] <= 400


def test_pixel_cap():
    with pytest.raises(ImageError) as e:
        decode_bytes(encode(draw(3, (300, 300)), "PNG"), max_pixels=1000)
    assert str(e.value) == (
        "too many pixels: 300x300 = 90,000 > cap 1,000 (decompression bomb guard; raise it with --max-pixels)"
    )
