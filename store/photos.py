"""What EXIF says about each image, in table ``exif`` (one row per image): camera, lens, GPS position
and named place.

Mixed into :class:`~pixseek.store.database.Store`. The indexer writes an image's row with
:meth:`PhotoStore.set_photo` in the transaction that writes the image (and later for images indexed
before it was read: :meth:`rows_without_photo`); the page's sidebar reads :meth:`facets`; ``pixseek
stats`` reads :meth:`photo_counts`. The table is narrow so that a filter or a facet never reads the
images' vectors, and without a filter each facet is served by one of its indexes alone.
"""

from __future__ import annotations

import dataclasses
import math
import sqlite3
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from pixseek.exif import PhotoMeta, camera_name

from . import keywords
from .filters import UNDER_SQL, Filter, match_key, under_params
from .rows import Place

EXIF_VERSION = 1  # what a row's exif_version says once this reader has read its file; older rows are read again

# Common names a country goes by beside its GeoNames name (matched by --place, never shown).
COUNTRY_ALIASES = {"US": ("USA", "America"), "GB": ("UK", "Britain", "Great Britain"), "AE": ("UAE",)}


def camera_names(make: str | None, model: str | None) -> list[str | None]:
    """Every name ``--camera`` matches a camera by: make, the make's first word ("NIKON" of "NIKON
    CORPORATION"), model, "make model" and the display name."""
    short = make.split()[0] if make else None
    both = f"{make} {model}" if make and model else None
    return [make, short, model, both, camera_name(make, model)]


def place_names(place: Place) -> list[str | None]:
    """Every name ``--place`` matches a place by: the town (also without a district suffix such as
    "Zürich (Kreis 1)"), county, region, country, its code and the country's usual other names."""
    bare = place.city.split(" (", 1)[0] if place.city and " (" in place.city else None
    aliases = COUNTRY_ALIASES.get(place.country_code or "", ())
    return [place.city, bare, place.county, place.region, place.country, place.country_code, *aliases]


@dataclass(frozen=True)
class CameraCount:
    name: str  # the display name: also a value --camera / Filter.cameras matches
    make: str | None
    model: str | None
    count: int


@dataclass(frozen=True)
class CityCount:
    city: str | None  # None: pictures in this country with no town near enough to name
    region: str | None
    value: str  # what --place / Filter.places takes to select them ("Paris, Île-de-France, France"; no town: region)
    count: int


@dataclass(frozen=True)
class CountryCount:
    country: str
    country_code: str | None
    count: int
    cities: tuple[CityCount, ...] = ()  # most pictures first


@dataclass(frozen=True)
class Facets:
    """What the pictures a filter selects were taken with and where, with counts (most first)."""

    total: int  # pictures the filter selects
    with_camera: int
    with_gps: int
    cameras: tuple[CameraCount, ...] = ()
    countries: tuple[CountryCount, ...] = field(default=())

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


def ensure_math(conn: sqlite3.Connection) -> None:
    """SQLite's math functions (``--near``'s distance) where this SQLite was built without them."""
    try:
        conn.execute("SELECT sin(0), cos(0), asin(0), sqrt(1), radians(0)").fetchone()
    except sqlite3.OperationalError:
        for name, fn in (("sin", math.sin), ("cos", math.cos), ("asin", math.asin), ("sqrt", math.sqrt)):
            conn.create_function(name, 1, fn, deterministic=True)
        conn.create_function("radians", 1, math.radians, deterministic=True)


class PhotoStore:
    conn: sqlite3.Connection

    def set_photo(self, image_id: int, photo: PhotoMeta, place: Place | None) -> None:
        """Record what EXIF says about an image's file (all of it: a field the file lacks is cleared)."""
        p = place or Place(None, None, None, None, None)
        self.conn.execute(
            "INSERT OR REPLACE INTO exif(image_id, camera_make, camera_model, lens, gps_lat, gps_lon, gps_alt, "
            "place_city, place_county, place_region, place_country, place_cc, camera_key, place_key, exif_version, "
            "read_at) VALUES(?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
            (
                image_id,
                photo.make,
                photo.model,
                photo.lens,
                photo.lat,
                photo.lon,
                photo.alt,
                p.city,
                p.county,
                p.region,
                p.country,
                p.country_code,
                match_key(camera_names(photo.make, photo.model)),
                match_key(place_names(p)) if place else None,
                EXIF_VERSION,
                time.time(),
            ),
        )

    def rows_without_photo(self, roots: Iterable[str]) -> list[tuple[int, str, int, int]]:
        """(id, path, size, mtime_ns) of images under ``roots`` whose file was not read for its EXIF by
        this reader (indexed before it), in path order."""
        out: dict[int, tuple[int, str, int, int]] = {}
        for root in roots:
            q = (
                f"SELECT id, path, size, mtime_ns FROM images LEFT JOIN exif ON image_id = id WHERE ({UNDER_SQL}) "
                "AND (exif_version IS NULL OR exif_version < ?)"
            )
            for r in self.conn.execute(q, (*under_params(root), EXIF_VERSION)):
                out[r[0]] = r
        return sorted(out.values(), key=lambda r: r[1])

    def photo_counts(self) -> dict[str, int]:
        """How many images have an EXIF camera, a GPS position and a named place, and how many were
        indexed before these were read and wait for the next ``pixseek index`` run."""
        camera, gps, place = self.conn.execute(
            "SELECT count(camera_key), count(gps_lat), count(place_key) FROM exif"
        ).fetchone()
        pending = self.conn.execute(
            "SELECT count(*) FROM images WHERE id NOT IN (SELECT image_id FROM exif WHERE exif_version >= ?)",
            (EXIF_VERSION,),
        ).fetchone()[0]
        return {"with_camera": camera, "with_gps": gps, "with_place": place, "exif_pending": pending}

    def facets(self, filter: Filter | None = None) -> Facets:
        """Cameras, countries with their towns, and counts, among the images ``filter`` selects.

        Each facet ignores its own part of the filter (cameras ignore ``cameras``; places ignore
        ``places``), so the page can offer the other values of a facet beside the chosen ones. Each facet
        is one query on the narrow table ``exif`` (without a filter, on one of its indexes alone), the
        counts one more."""
        filt = (filter or Filter()).validate()
        cameras = self._camera_facet(dataclasses.replace(filt, cameras=()))
        countries = self._place_facet(dataclasses.replace(filt, places=()))
        one = self.conn.execute
        if not filt.active:
            total = one("SELECT count(*) FROM images").fetchone()[0]
            with_gps = one("SELECT count(*) FROM exif WHERE gps_lat IS NOT NULL").fetchone()[0]
            return Facets(total, sum(c.count for c in cameras), with_gps, cameras, countries)
        within, params = _within(filt)
        total, with_camera, with_gps = one(
            "SELECT count(*), total(camera_make IS NOT NULL OR camera_model IS NOT NULL), total(gps_lat IS NOT NULL) "
            f"FROM exif WHERE {within}",
            params,
        ).fetchone()
        if not filt.exif_only:  # images without an EXIF row count too
            where, where_params = filt.sql()
            total = one(f"SELECT count(*) FROM images WHERE {where}", where_params).fetchone()[0]
        return Facets(total, int(with_camera), int(with_gps), cameras, countries)

    def _camera_facet(self, filt: Filter) -> tuple[CameraCount, ...]:
        within, params = _within(filt)
        groups = self.conn.execute(
            f"SELECT camera_make, camera_model, count(*) FROM exif WHERE {within} "
            f"GROUP BY {_columns('camera_make, camera_model', within)}",
            params,
        )
        counts: dict[str, CameraCount] = {}
        for make, model, n in groups:
            name = camera_name(make, model)
            if name is None:
                continue
            seen = counts.get(name)  # one camera, its make spelled two ways: one entry
            counts[name] = CameraCount(name, make, model, n + (seen.count if seen else 0))
        return tuple(sorted(counts.values(), key=lambda c: (-c.count, c.name.casefold())))

    def _place_facet(self, filt: Filter) -> tuple[CountryCount, ...]:
        within, params = _within(filt)
        groups = self.conn.execute(
            "SELECT place_country, place_region, place_city, place_cc, count(*) FROM exif "
            f"WHERE {_columns('place_country', within)} IS NOT NULL AND {within} "
            f"GROUP BY {_columns('place_country, place_region, place_city, place_cc', within)}",
            params,
        )
        cities: dict[tuple[str, str | None], list[CityCount]] = {}
        for country, region, city, cc, n in groups:
            value = Place(city, None, region, country, cc).name
            cities.setdefault((country, cc), []).append(CityCount(city, region, value, n))
        countries = [
            CountryCount(country, cc, sum(c.count for c in towns), tuple(sorted(towns, key=lambda c: -c.count)))
            for (country, cc), towns in cities.items()
        ]
        return tuple(sorted(countries, key=lambda c: (-c.count, c.country.casefold())))


def _columns(columns: str, condition: str) -> str:
    """``columns`` for a facet's GROUP BY: as they are without a condition (the facet's covering index
    answers alone), else each behind SQLite's no-op ``+``, so the planner picks the index that serves the
    condition and sorts the few rows it keeps, instead of walking the facet's index over every row."""
    if condition == "1":
        return columns
    return ", ".join(f"+{c.strip()}" for c in columns.split(","))


def _within(filt: Filter) -> tuple[str, list]:
    """A condition on table ``exif``: its image is one ``filt`` selects. EXIF conditions apply to the
    table directly (one scan of it, or of an index); others through the images' ids."""
    if not filt.active:
        return "1", []
    if filt.exif_only:
        return filt.exif_sql()
    where, params = filt.sql()
    return f"image_id IN (SELECT id FROM images WHERE {where})", params


# --- what the keyword index reads: the camera and lens, the place names --------------------------------
def _since(conn: sqlite3.Connection, since: float) -> list[int]:
    return [r[0] for r in conn.execute("SELECT image_id FROM exif WHERE read_at >= ?", (since,))]


def _exif_rows(conn: sqlite3.Connection, ids: Sequence[int] | None, columns: str) -> Iterable[tuple[int, str]]:
    where = f"WHERE image_id IN ({','.join('?' * len(ids))})" if ids is not None else ""
    sql = f"SELECT image_id, {columns} FROM exif {where}"
    for image_id, *parts in conn.execute(sql, list(ids or ())):
        yield image_id, " ".join(dict.fromkeys(str(p) for p in parts if p))


@keywords.source("camera", "exif", _since)
def _camera_words(conn: sqlite3.Connection, ids: Sequence[int] | None) -> Iterable[tuple[int, str]]:
    return _exif_rows(conn, ids, "camera_make, camera_model, lens")


@keywords.source("place", "exif", _since)
def _place_words(conn: sqlite3.Connection, ids: Sequence[int] | None) -> Iterable[tuple[int, str]]:
    return _exif_rows(conn, ids, "place_city, place_county, place_region, place_country, place_cc")
