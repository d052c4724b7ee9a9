"""Camera, lens, GPS and places through an index run, the filters, facets, sort by date, the CLI, and
the migration that fills an existing index without re-embedding."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys

import numpy as np
import pytest
from click.testing import CliRunner
from exifgen import write_photo
from imagegen import draw, save
from PIL.TiffImagePlugin import IFDRational

import pixseek.index.backfill as backfill_mod
import pixseek.index.indexer as indexer_mod
from pixseek.cli import cli
from pixseek.index.indexer import Indexer
from pixseek.search import Engine, Filter
from pixseek.store import Store
from pixseek.store.migrations import MIGRATIONS, SCHEMA_VERSION

PHOTOS = {  # name: (make, model, gps, EXIF date)
    "paris.jpg": ("Canon", "Canon EOS R5", (48.8584, 2.2945, 35.0), "2021:06:01 10:00:00"),
    "louvre.jpg": ("Canon", "Canon EOS R5", (48.8606, 2.3376), "2023:03:04 09:00:00"),
    "versailles.jpg": ("NIKON CORPORATION", "NIKON D750", (48.8049, 2.1204), "2019:08:15 12:00:00"),
    "nyc.jpg": ("Apple", "iPhone 12 Pro", (40.7580, -73.9855), "2022:12:24 18:00:00"),
    "sydney.jpg": ("NIKON CORPORATION", "NIKON D750", (-33.8568, 151.2153), "2018:01:01 08:00:00"),
    "atlantic.jpg": ("Apple", "iPhone 12 Pro", (0.0, -30.0), "2020:02:02 02:00:00"),
    "zurich.heic": ("Apple", "iPhone 15", (47.3717, 8.5417), "2024:05:05 05:05:00"),
    "nogps.jpg": ("SONY", "ILCE-7M3", None, "2017:07:07 07:00:00"),
}
GARBAGE = {  # files whose EXIF is broken in some way: indexed all the same, with no position
    "zero-denominator.jpg": {1: "N", 2: (IFDRational(48, 1), IFDRational(1, 0), 5.0), 3: "E", 4: (2.0, 0.0, 0.0)},
    "lat-95.jpg": {1: "N", 2: (95.0, 0.0, 0.0), 3: "E", 4: (2.0, 0.0, 0.0)},
}


def make_photos(root):
    for i, (name, (make, model, gps, date)) in enumerate(sorted(PHOTOS.items())):
        fmt = "HEIF" if name.endswith(".heic") else "JPEG"
        write_photo(root / name, 10 + i, fmt, make=make, model=model, gps=gps, date=date)
    for i, (name, raw) in enumerate(sorted(GARBAGE.items())):
        write_photo(root / "bad" / name, 30 + i, make="FUJIFILM", model="X100V", raw_gps=raw)
    (root / "bad" / "corrupt-exif.jpg").write_bytes(_corrupt_exif_jpeg())
    save(draw(40, (96, 96)), root / "plain.png")
    return root


def _corrupt_exif_jpeg() -> bytes:
    import io

    buf = io.BytesIO()
    draw(41, (96, 96)).save(buf, "JPEG", exif=b"Exif\x00\x00MM\x00*\x00\x00\x00\x08\x00\x09\x88\x25\x00\x04")
    return buf.getvalue()


N_FILES = len(PHOTOS) + len(GARBAGE) + 2


@pytest.fixture
def photo_index(tmp_path, tiny):
    root = make_photos(tmp_path / "photos")
    db = tmp_path / "db"
    s = Indexer(db, encoder=tiny, batch_size=4).run([root])
    assert (s.added, s.failed, s.metadata_filled) == (N_FILES, 0, 0)
    return db, root


def _names(results) -> list[str]:
    return [os.path.basename(r.path) for r in results]


def test_index_reads_camera_gps_and_place(photo_index):
    db, root = photo_index
    with Store.open(db, readonly=True) as st:
        rows = {os.path.basename(r.path): r for r in st.get(st.ids()).values()}
        paris = rows["paris.jpg"]
        assert (paris.camera, paris.gps_alt, paris.place and paris.place.name) == (
            "Canon EOS R5",
            35.0,
            "Paris, Île-de-France, France",
        )
        assert paris.place is not None and paris.place.country_code == "FR"
        assert rows["sydney.jpg"].gps_lat == pytest.approx(-33.8568, abs=1e-6)  # south is negative
        assert rows["nyc.jpg"].gps_lon == pytest.approx(-73.9855, abs=1e-6)  # west is negative
        zurich = rows["zurich.heic"]
        assert (zurich.format, zurich.camera, zurich.place and zurich.place.city) == (
            "HEIF",
            "Apple iPhone 15",
            "Zürich",
        )
        atlantic = rows["atlantic.jpg"]
        assert atlantic.gps_lat == 0.0 and atlantic.place is None  # a position, but no town or country near
        for name in (*GARBAGE, "corrupt-exif.jpg"):
            assert rows[name].gps_lat is None and rows[name].place is None, name
        assert rows["zero-denominator.jpg"].camera == "FUJIFILM X100V"  # the camera survives bad GPS
        assert rows["plain.png"].camera is None and rows["plain.png"].exif_version == 1
        assert st.photo_counts() == {"with_camera": 10, "with_gps": 7, "with_place": 6, "exif_pending": 0}


def test_filters_camera_place_near_and_gps(photo_index, tiny):
    db, _ = photo_index
    with Engine.open(db, encoder=tiny) as eng:
        q = eng.encode_text("a photo")

        def names(**kw) -> set[str]:
            return set(_names(eng.search_vector(q, 50, filter=Filter(**kw))))

        assert names(cameras=("canon",)) == {"paris.jpg", "louvre.jpg"}
        assert names(cameras=("Nikon",)) == {"versailles.jpg", "sydney.jpg"}  # the make's first word
        assert names(cameras=("nikon d750",)) == names(cameras=("NIKON CORPORATION NIKON D750",))
        assert names(cameras=("apple iphone 12 pro",)) == {"nyc.jpg", "atlantic.jpg"}
        assert names(cameras=("iPhone 15", "sony")) == {"zurich.heic", "nogps.jpg"}
        assert names(cameras=("iphone",)) == set()  # whole names only
        assert names(places=("paris",)) == {"paris.jpg", "louvre.jpg"}
        assert names(places=("France",)) == {"paris.jpg", "louvre.jpg", "versailles.jpg"}
        assert names(places=("ile-de-france, fr",)) == {"paris.jpg", "louvre.jpg", "versailles.jpg"}
        assert names(places=("Paris, Australia",)) == set()  # every part must match
        assert names(places=("zurich",)) == {"zurich.heic"}  # accents folded
        assert names(places=("USA", "new south wales")) == {"nyc.jpg", "sydney.jpg"}
        assert names(near=(48.8566, 2.3522, 5.0)) == {"paris.jpg", "louvre.jpg"}
        assert names(near=(48.8566, 2.3522, 20.0)) == {"paris.jpg", "louvre.jpg", "versailles.jpg"}
        assert names(near=(48.8566, 2.3522, 1.5)) == {"louvre.jpg"}  # 1.3 km; the Eiffel Tower is 4.2 km
        assert names(has_gps=True) == {p for p, v in PHOTOS.items() if v[2]}
        assert names(has_gps=True, cameras=("apple",), places=("new york",)) == {"nyc.jpg"}
        assert eng.count(Filter(has_gps=True)) == 7


def test_sort_newest_orders_the_matches_by_date(photo_index, tiny):
    db, _ = photo_index
    with Engine.open(db, encoder=tiny) as eng:
        q = eng.encode_text("a photo")
        by_score = eng.search_vector(q, 5, filter=Filter(has_gps=True))
        newest = eng.search_vector(q, 5, filter=Filter(has_gps=True), sort="newest")
        oldest = eng.search_vector(q, 5, filter=Filter(has_gps=True), sort="oldest")
        assert {r.id for r in newest} == {r.id for r in by_score}  # the same matches, in another order
        assert [r.date for r in newest] == sorted((r.date for r in by_score), reverse=True)
        assert [r.id for r in oldest] == [r.id for r in reversed(newest)]
        assert [r.rank for r in newest] == [1, 2, 3, 4, 5]
        page2 = eng.search_vector(q, 2, offset=2, filter=Filter(has_gps=True), sort="newest")
        assert [r.id for r in page2] == [
            r.id for r in eng.search_vector(q, 4, filter=Filter(has_gps=True), sort="newest")
        ][2:]
        assert [r.rank for r in page2] == [3, 4]
        cut = by_score[2].score
        kept = eng.search_vector(q, 50, min_score=cut, sort="newest")
        assert {r.id for r in kept} == {r.id for r in eng.search_vector(q, 50, min_score=cut)}
        groups, _ = eng.search_groups(q, 3, sort="newest")
        assert [g.best.date for g in groups] == sorted((g.best.date for g in groups), reverse=True)
        r = newest[0].to_dict()
        assert r["date"] == newest[0].taken_at and r["camera"] == newest[0].camera
        assert {"camera_make", "camera_model", "lens", "latitude", "longitude", "altitude", "place"} <= set(r)


def test_facets(photo_index, tiny):
    db, root = photo_index
    with Engine.open(db, encoder=tiny) as eng:
        f = eng.facets()
        assert (f.total, f.with_camera, f.with_gps) == (N_FILES, 10, 7)
        assert [(c.name, c.count) for c in f.cameras] == [
            ("Apple iPhone 12 Pro", 2),
            ("Canon EOS R5", 2),
            ("FUJIFILM X100V", 2),
            ("NIKON D750", 2),
            ("Apple iPhone 15", 1),
            ("SONY ILCE-7M3", 1),
        ]
        france = f.countries[0]
        assert (france.country, france.country_code, france.count) == ("France", "FR", 3)
        assert [(c.city, c.count) for c in france.cities] == [("Paris", 2), ("Versailles", 1)]
        assert {c.country for c in f.countries} == {"France", "United States", "Australia", "Switzerland"}
        # a facet's own filter leaves its other values in place; the other filters narrow it
        chosen = eng.facets(Filter(places=("France",), cameras=("canon",)))
        assert chosen.total == 2
        assert [(c.name, c.count) for c in chosen.cameras] == [("Canon EOS R5", 2), ("NIKON D750", 1)]
        assert [(c.country, c.count) for c in chosen.countries] == [("France", 2)]
        paris = france.cities[0]
        assert set(_names(eng.search_vector(eng.encode_text("x"), 50, filter=Filter(places=(paris.value,))))) == {
            "paris.jpg",
            "louvre.jpg",
        }
        assert json.loads(json.dumps(f.to_dict()))["countries"][0]["cities"][0]["value"] == paris.value
        near = eng.facets(Filter(near=(48.8566, 2.3522, 20.0)))
        assert (near.total, near.with_camera, near.with_gps) == (3, 3, 3)
        assert [(c.name, c.count) for c in near.cameras] == [("Canon EOS R5", 2), ("NIKON D750", 1)]
        bad = eng.facets(Filter(folder=str(root / "bad")))
        assert (bad.total, bad.with_camera, bad.with_gps, bad.countries) == (3, 2, 0, ())
        assert [(c.name, c.count) for c in bad.cameras] == [("FUJIFILM X100V", 2)]
        both = Filter(folder=str(root / "bad"), cameras=("fujifilm",))
        assert eng.count(both) == 2 and eng.facets(both).total == 2


def _cli(*args, check=True) -> subprocess.CompletedProcess:
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    r = subprocess.run([sys.executable, "-m", "pixseek", *map(str, args)], capture_output=True, text=True, env=env)
    if check:
        assert r.returncode == 0, r.stderr
    return r


def test_cli_filters_sort_and_errors(photo_index):
    db, root = photo_index
    lines = _cli("search", "x", "--db", db, "--near", "48.8566,2.3522,20", "--sort", "newest").stdout.splitlines()
    assert [line.split()[2:] for line in lines] == [
        ["2023-03-04", str(root / "louvre.jpg")],
        ["2021-06-01", str(root / "paris.jpg")],
        ["2019-08-15", str(root / "versailles.jpg")],
    ]
    runner = CliRunner()
    r = runner.invoke(cli, ["search", "a photo", "--db", str(db), "--place", "Paris", "--json"])
    out = json.loads(r.stdout)
    assert {os.path.basename(o["path"]) for o in out} == {"paris.jpg", "louvre.jpg"}
    assert out[0]["place"]["country"] == "France" and out[0]["camera"] == "Canon EOS R5"
    r = runner.invoke(cli, ["search", "x", "--db", str(db), "--camera", "nikon", "--has-gps", "--json"])
    assert {os.path.basename(o["path"]) for o in json.loads(r.stdout)} == {"versailles.jpg", "sydney.jpg"}
    bad = _cli("search", "x", "--db", db, "--near", "91,0,5", check=False)
    assert (bad.returncode, bad.stdout) == (1, "")
    assert bad.stderr == (
        "Error: invalid near '91,0,5': latitude 91 is not between -90 and 90 "
        "(give LAT,LON,KM in degrees and km, e.g. 48.8566,2.3522,10)\n"
    )
    bad = runner.invoke(cli, ["search", "x", "--db", str(db), "--near", "paris"])
    assert bad.exit_code == 1
    assert bad.stderr == "Error: invalid near 'paris': use LAT,LON,KM (three numbers), e.g. 48.8566,2.3522,10\n"
    stats = json.loads(runner.invoke(cli, ["stats", "--db", str(db), "--json"]).stdout)
    assert (stats["with_camera"], stats["with_gps"], stats["with_place"], stats["exif_pending"]) == (10, 7, 6, 0)


# --- an index built before migration m007 -------------------------------------------------------------

M007 = "m007_photo_metadata"


def as_before_m007(db) -> None:
    """Turn an index into what pixseek wrote before m007: the schema without its table."""
    con = sqlite3.connect(db / "pixseek.db")
    with con:
        con.execute("DROP TRIGGER exif_follows_images")
        con.execute("DROP TABLE exif")
        con.execute("DELETE FROM migrations WHERE name = ?", (M007,))
        con.execute("UPDATE meta SET value = ? WHERE key = 'schema_version'", (str(SCHEMA_VERSION - 1),))
    con.close()


def _vectors(db) -> dict[int, bytes]:
    con = sqlite3.connect(db / "pixseek.db")
    try:
        return dict(con.execute("SELECT id, vector FROM images"))
    finally:
        con.close()


def test_existing_index_gains_metadata_without_reembedding(photo_index, monkeypatch):
    db, root = photo_index
    assert M007 in [name for name, _ in MIGRATIONS]
    as_before_m007(db)
    before = _vectors(db)
    con = sqlite3.connect(db / "pixseek.db")
    assert not con.execute("SELECT name FROM sqlite_master WHERE name LIKE '%exif%'").fetchall()
    con.close()
    monkeypatch.setattr(indexer_mod, "for_indexing", lambda *a, **k: pytest.fail("model loaded"))

    # interrupted after the first batch of two: what was committed stays, the next run reads the rest
    monkeypatch.setattr(backfill_mod, "BATCH", 2)
    calls = {"n": 0}

    def fault(name: str) -> None:
        calls["n"] += name == "metadata"
        if name == "metadata" and calls["n"] == 2:
            raise KeyboardInterrupt

    monkeypatch.setattr(backfill_mod.faults, "point", fault)
    with pytest.raises(KeyboardInterrupt):
        Indexer(db).run([root])
    with Store.open(db, readonly=True) as st:
        assert st.photo_counts()["exif_pending"] == N_FILES - 2

    reads: list[str] = []
    real_read = backfill_mod.read_header
    monkeypatch.setattr(backfill_mod, "read_header", lambda p, *a: reads.append(p) or real_read(p, *a))
    s = Indexer(db).run([root])
    assert (s.embedded, s.added, s.updated, s.unchanged, s.metadata_filled) == (0, 0, 0, N_FILES, N_FILES - 2)
    assert len(reads) == N_FILES - 2
    assert _vectors(db) == before  # byte for byte
    with Store.open(db, readonly=True) as st:
        assert st.photo_counts() == {"with_camera": 10, "with_gps": 7, "with_place": 6, "exif_pending": 0}
        paris = st.get_by_path(str(root / "paris.jpg"))
        assert paris is not None and paris.place is not None and paris.place.name == "Paris, Île-de-France, France"
    again = Indexer(db).run([root])
    assert again.metadata_filled == 0


def test_cli_index_fills_an_old_index(photo_index):
    db, root = photo_index
    as_before_m007(db)
    before = _vectors(db)
    r = _cli("index", root, "--db", db)
    assert r.stdout.startswith(f"added 0, updated 0, moved 0, removed 0, unchanged {N_FILES}, failed 0 in ")
    assert f"read camera and GPS of {N_FILES} images indexed before (no re-embedding)\n" in r.stderr
    assert _vectors(db) == before
    with Store.open(db, readonly=True) as st:
        assert st.photo_counts()["with_place"] == 6


def test_metadata_of_changed_and_unreadable_files(photo_index, tiny):
    """A changed file gets its new EXIF (a GPS position it lost is cleared); a file that cannot be read
    during the fill is left for a later run."""
    db, root = photo_index
    write_photo(root / "paris.jpg", 99, make="Canon", model="Canon EOS R6")  # no GPS now
    (root / "sydney.jpg").unlink()
    s = Indexer(db, encoder=tiny).run([root])
    assert (s.updated, s.removed) == (1, 1)
    with Store.open(db, readonly=True) as st:
        row = st.get_by_path(str(root / "paris.jpg"))
        assert row is not None and (row.camera, row.gps_lat, row.place) == ("Canon EOS R6", None, None)
        assert st.conn.execute("SELECT count(*) FROM exif").fetchone()[0] == N_FILES - 1  # went with its image
        assert st.photo_counts()["with_gps"] == 5
    as_before_m007(db)
    os.chmod(root / "nyc.jpg", 0)
    real_open = open

    def guarded_open(path, *a, **k):  # tests run as root, so chmod 000 would not stop a read
        if str(path).endswith("nyc.jpg"):
            raise PermissionError(13, "Permission denied")
        return real_open(path, *a, **k)

    import builtins

    builtins_open = builtins.open
    try:
        builtins.open = guarded_open
        s = Indexer(db).run([root])
    finally:
        builtins.open = builtins_open
        os.chmod(root / "nyc.jpg", 0o644)
    assert s.metadata_filled == N_FILES - 2
    assert Indexer(db).run([root]).metadata_filled == 1
    with Store.open(db, readonly=True) as st:
        assert np.isclose(st.get_by_path(str(root / "nyc.jpg")).gps_lat or 0, 40.758)  # type: ignore[union-attr]
