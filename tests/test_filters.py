"""Filters applied before ranking, EXIF dates, thumbnails and upload checks."""

from __future__ import annotations

import datetime as dt
import os
import time

import numpy as np
import pytest
from imagegen import draw, encode, save
from PIL import Image

import pixseek.search.engine as engine_mod
from pixseek.errors import ImageError, QueryError, QueryImageError
from pixseek.index.indexer import Indexer
from pixseek.search.engine import Engine
from pixseek.search.uploads import read_upload
from pixseek.store.filters import Filter, parse_date
from pixseek.store.thumbs import Thumbs


def _exif_jpeg(img: Image.Image, when: str) -> bytes:
    exif = Image.Exif()
    exif.get_ifd(0x8769)[0x9003] = when
    return encode(img, "JPEG", exif=exif.tobytes())


@pytest.fixture
def mixed(tmp_path, tiny):
    """24 images in set0..set2, three formats, sizes 64..., two with EXIF dates, some old mtimes."""
    root = tmp_path / "photos"
    for i in range(20):
        size = (64 + 40 * (i % 4), 80 + 40 * (i % 4))
        save(draw(i, size), root / f"set{i % 3}" / f"img{i:03d}{('.jpg', '.png', '.webp')[i % 3]}")
    (root / "set0" / "exif-2015.jpg").write_bytes(_exif_jpeg(draw(100, (96, 96)), "2015:06:01 12:00:00"))
    (root / "set1" / "exif-2016.jpg").write_bytes(_exif_jpeg(draw(101, (96, 96)), "2016:07:02 08:30:00"))
    old = time.mktime(dt.datetime(2019, 3, 4, 10).timetuple())
    for name in ("img000.jpg", "img003.jpg"):
        os.utime(root / "set0" / name, (old, old))
    db = tmp_path / "db"
    assert Indexer(db, encoder=tiny, batch_size=8).run([root]).added == 22
    return db, root


def _brute(eng: Engine, q: np.ndarray, ids: set[int], k: int) -> list[int]:
    got, vecs = eng.store.vectors_for(sorted(ids))
    order = np.argsort(-(vecs @ q), kind="stable")[:k]
    return [int(got[i]) for i in order]


def test_filters_select_before_ranking(mixed, tiny):
    db, root = mixed
    with Engine.open(db, encoder=tiny) as eng:
        q = eng.encode_text("a red square")
        rows = eng.store.get(eng.store.ids())
        set1 = {i for i, r in rows.items() if r.path.startswith(str(root / "set1") + "/")}
        res = eng.search_vector(q, 5, filter=Filter(folder=str(root / "set1")))
        assert [r.id for r in res] == _brute(eng, q, set1, 5)
        # k results even though the folder's images are not among the global top k
        assert len(eng.search_vector(q, 7, filter=Filter(folder=str(root / "set1")))) == 7
        # a folder filter with '..' and a trailing slash is normalised, and never matches a sibling prefix
        res = eng.search_vector(q, 50, filter=Filter(folder=str(root / "set1" / ".." / "set1") + "/"))
        assert {r.id for r in res} == set1
        assert eng.search_vector(q, 50, filter=Filter(folder=str(root / "set"))) == []

        pngs = eng.search_vector(q, 50, filter=Filter(formats=("png",)))
        assert {r.format for r in pngs} == {"PNG"} and len(pngs) == 7

        big = eng.search_vector(q, 50, filter=Filter(min_side=144))
        assert big and all(min(r.width, r.height) >= 144 for r in big)
        assert len(big) == len([r for r in rows.values() if min(r.width, r.height) >= 144])

        d2015 = eng.search_vector(q, 50, filter=Filter(date_from=dt.date(2015, 6, 1), date_to=dt.date(2015, 6, 1)))
        assert [r.name for r in d2015] == ["exif-2015.jpg"]
        assert d2015[0].taken_at == time.mktime(dt.datetime(2015, 6, 1, 12).timetuple())
        old = eng.search_vector(q, 50, filter=Filter(date_from=dt.date(2015, 1, 1), date_to=dt.date(2019, 12, 31)))
        assert sorted(r.name for r in old) == ["exif-2015.jpg", "exif-2016.jpg", "img000.jpg", "img003.jpg"]

        combined = Filter(folder=str(root / "set0"), formats=("JPEG",), date_to=dt.date(2019, 12, 31))
        assert sorted(r.name for r in eng.search_vector(q, 50, filter=combined)) == [
            "exif-2015.jpg",
            "img000.jpg",
            "img003.jpg",
        ]
        # similar() keeps the filter and still excludes the image itself
        first = d2015[0].id
        assert eng.similar(first, 5, filter=Filter(formats=("JPEG",)))[0].format == "JPEG"
        assert first not in {r.id for r in eng.similar(first, 50, filter=Filter(formats=("JPEG",)))}


def test_large_selection_goes_through_faiss_selector(mixed, tiny, monkeypatch):
    db, root = mixed
    monkeypatch.setattr(engine_mod, "EXACT_SELECTION", 2)  # force the IDSelector path
    with Engine.open(db, encoder=tiny) as eng:
        q = eng.encode_text("green circle")
        rows = eng.store.get(eng.store.ids())
        set2 = {i for i, r in rows.items() if r.path.startswith(str(root / "set2") + "/")}
        res = eng.search_vector(q, 4, filter=Filter(folder=str(root / "set2")))
        assert [r.id for r in res] == _brute(eng, q, set2, 4)
        scores, ids = eng.vectors.search(q, 30, ids=np.array(sorted(set2)))
        assert set(int(i) for i in ids[0] if i >= 0) == set2


def test_filter_validation_messages(tmp_path):
    with pytest.raises(QueryError, match="must be an absolute path or a URL prefix, not 'photos'"):
        Filter(folder="photos").sql()
    with pytest.raises(QueryError, match="date range is empty: 2020-01-02 is after 2020-01-01"):
        Filter(date_from=dt.date(2020, 1, 2), date_to=dt.date(2020, 1, 1)).sql()
    with pytest.raises(QueryError, match="invalid date '2020-13-01': use YYYY-MM-DD"):
        parse_date("2020-13-01")
    where, params = Filter(folder="/a'; DROP TABLE images; --").sql()
    assert "DROP" not in where and "/a'; DROP TABLE images; --" in params
    assert not Filter().active and Filter().sql() == ("1", [])


def test_exif_date_read_and_bad_exif_ignored():
    from pixseek.decode import decode_bytes

    d = decode_bytes(_exif_jpeg(draw(1, (64, 64)), "2001:02:03 04:05:06"))
    assert d.taken_at == time.mktime(dt.datetime(2001, 2, 3, 4, 5, 6).timetuple())
    assert decode_bytes(_exif_jpeg(draw(1, (64, 64)), "0000:00:00 00:00:00")).taken_at is None
    assert decode_bytes(_exif_jpeg(draw(1, (64, 64)), "garbage")).taken_at is None
    assert decode_bytes(encode(draw(1, (64, 64)), "PNG")).taken_at is None


def test_thumbnails_cached_by_hash_and_repaired(mixed, tiny):
    db, root = mixed
    with Engine.open(db, encoder=tiny) as eng:
        row = eng.get(1)
        thumbs = Thumbs(eng.store.data_dir, side=48)
        data = thumbs.get(row)
        img = Image.open(__import__("io").BytesIO(data))
        assert img.format == "WEBP" and max(img.size) == 48
        p = thumbs.path_for(row.hash)
        assert p.read_bytes() == data and p.parent.parent == db / "thumbs"
        p.write_bytes(data[: len(data) // 2])  # truncated: detected, made again
        assert thumbs.cached(row) is None and thumbs.get(row) == data
        audit = thumbs.audit({row.hash})
        assert (audit.ok, audit.damaged, audit.orphans) == (1, [], [])
        view = Image.open(__import__("io").BytesIO(thumbs.view(row, side=32)))
        assert view.format == "JPEG" and max(view.size) == 32
        os.remove(row.path)
        p.unlink()
        with pytest.raises(ImageError, match="cannot read: No such file or directory"):
            thumbs.get(row)
        with pytest.raises(ValueError):
            thumbs.path_for("../../etc/passwd")


def test_upload_sniffed_by_content_and_capped():
    png = encode(draw(3, (64, 64)), "PNG")
    assert read_upload(png, "x.jpg").format == "PNG"  # the name does not matter, the bytes do
    with pytest.raises(
        QueryImageError, match=r"^cannot use notes\.png: not a supported image: the content is none of JPEG"
    ):
        read_upload(b"just some text, not a picture", "notes.png")
    eps = b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 10 10\n"
    with pytest.raises(QueryImageError, match="not a supported image"):
        read_upload(eps, "drawing.png")
    with pytest.raises(QueryImageError, match=r"^big\.png is 0\.0 MiB; the limit is 0 MiB$"):
        read_upload(png, "big.png", max_bytes=100)
    with pytest.raises(QueryImageError, match="too many pixels: 64x64 = 4,096 > cap 1,000"):
        read_upload(png, "p.png", max_pixels=1000)
