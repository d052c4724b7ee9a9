"""Metadata filters that narrow the candidates *before* ranking: folder, file type, date, size, tags, and
what EXIF says: camera, place, a distance from a point, having a GPS position.

A :class:`Filter` has two faces: the parameterised SQL ``WHERE`` clause the store selects ids with
(:meth:`Store.select_ids`), and a description for people. The matching row ids are then handed to
the vector search (exact scoring of a small selection, or a FAISS ``IDSelector`` for a large one),
so a filtered query still returns its k best matches instead of whatever survives a post-filter.

Camera and place names match whole names, folded (case and accents: ``zurich`` is ``Zürich``): an
image's row in table ``exif`` keeps every name a filter may match in ``camera_key`` / ``place_key`` as
``|name|name|...|`` (:func:`match_key`), so a filter is one ``instr`` per name, with no wildcard a user
could type. The EXIF conditions select ids from that narrow table, never reading the images' vectors.
"""

from __future__ import annotations

import datetime as dt
import math
import os
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass

from pixseek import sources
from pixseek.decode import FORMAT_NAMES
from pixseek.errors import QueryError

MAX_SIDE = 2**31 - 1  # a shorter side beyond any image (and within SQLite's integers)

# Paths equal to a root or inside it, as an index range scan: "root/" <= path < "root0" ('0' follows '/').
# SQL with three parameters, bound with under_params(root).
UNDER_SQL = "path = ? OR (path >= ? AND path < ?)"


def under_params(root: str) -> tuple[str, str, str]:
    prefix = root.rstrip("/") + "/"
    return root, prefix, prefix[:-1] + chr(ord("/") + 1)


# The date a picture carries: its EXIF capture time when the indexer found one, else the file time.
DATE_SQL = "COALESCE(taken_at, mtime_ns / 1e9)"

EARTH_KM = 6371.0088  # the mean Earth radius (IUGG)
MAX_KM = math.pi * EARTH_KM  # half the circumference: every point on Earth is nearer than that
# The great-circle distance in km from a point (3 parameters: lat, lat, lon in degrees) to a row's position.
DISTANCE_SQL = (
    "2 * 6371.0088 * asin(min(1, sqrt("
    "sin(radians(gps_lat - ?) / 2) * sin(radians(gps_lat - ?) / 2) + "
    "cos(radians(?)) * cos(radians(gps_lat)) * sin(radians(gps_lon - ?) / 2) * sin(radians(gps_lon - ?) / 2))))"
)


def fold(text: str) -> str:
    """A name as filters compare it: case folded, accents dropped, spaces collapsed ("Zürich " -> "zurich")."""
    decomposed = unicodedata.normalize("NFKD", str(text).casefold())
    plain = "".join(c for c in decomposed if not unicodedata.combining(c))
    return " ".join(plain.replace("|", " ").split())


def match_key(names: Iterable[str | None]) -> str | None:
    """``|name|other name|``: the folded names a row answers to (None when it has none)."""
    folded = []
    for n in names:
        f = fold(n) if n else ""
        if f and f not in folded:
            folded.append(f)
    return "|" + "|".join(folded) + "|" if folded else None


def distance_km(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    """The great-circle (haversine) distance in km, as DISTANCE_SQL computes it."""
    p1, p2 = math.radians(lat1), math.radians(lat2)
    h = math.sin((p2 - p1) / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(math.radians(lon2 - lon1) / 2) ** 2
    return 2 * EARTH_KM * math.asin(min(1.0, math.sqrt(h)))


def _day_start(d: dt.date) -> float:
    """The epoch time a local day starts; days beyond what the platform's clock can express are -inf or
    +inf (the calendar's ends, 0001-01-01 and 9999-12-31, are valid dates)."""
    try:
        return dt.datetime(d.year, d.month, d.day).timestamp()
    except (OverflowError, OSError, ValueError):
        return -math.inf if d.year < 1970 else math.inf


def _day_end(d: dt.date) -> float:
    return math.inf if d == dt.date.max else _day_start(d + dt.timedelta(days=1))


MAX_TAG_LENGTH = 100


def normalize_tag(tag: str) -> str:
    """A tag as the index stores it: lower case, single spaces (``" Ice  Cream"`` -> ``"ice cream"``)."""
    return " ".join(str(tag).lower().split())


def format_name(name: str) -> str:
    """``jpg`` -> ``JPEG``: the format name the index records, from it or a usual extension."""
    key = str(name).strip().lstrip(".").upper()
    for fmt, extensions in FORMAT_NAMES.items():
        if key == fmt or key.lower() in extensions:
            return fmt
    raise QueryError(f"unknown file type {name!r}: use one of {', '.join(FORMAT_NAMES)} (or an extension such as jpg)")


@dataclass(frozen=True)
class Filter:
    folder: str | None = None  # an absolute folder: images in it or below it
    formats: tuple[str, ...] = ()  # Pillow format names ('JPEG', 'PNG', ...); empty = all
    date_from: dt.date | None = None  # inclusive, local time
    date_to: dt.date | None = None  # inclusive, local time (the whole day)
    min_side: int = 0  # the shorter side, in pixels
    cameras: tuple[str, ...] = ()  # any of these: a make, a model, or "make model" (folded)
    places: tuple[str, ...] = ()  # any of these: a town, county, region, country (code); "Paris, France": all parts
    near: tuple[float, float, float] | None = None  # (lat, lon, km): taken within km of the point
    has_gps: bool = False  # only pictures with a GPS position
    tags: tuple[str, ...] = ()  # zero-shot tags the picture must all have (pixseek.index.tagging)

    @property
    def active(self) -> bool:
        return bool(
            self.folder
            or self.formats
            or self.date_from
            or self.date_to
            or self.min_side > 0
            or self.cameras
            or self.places
            or self.near
            or self.has_gps
            or self.tags
        )

    def validate(self) -> Filter:
        if self.folder is not None:
            if "\x00" in self.folder:
                raise QueryError("folder filter contains a NUL character")
            if not (os.path.isabs(self.folder) or sources.is_url(self.folder)):
                raise QueryError(f"folder filter must be an absolute path or a URL prefix, not {self.folder!r}")
        if self.date_from and self.date_to and self.date_from > self.date_to:
            raise QueryError(f"date range is empty: {self.date_from} is after {self.date_to}")
        if self.min_side < 0:
            raise QueryError("minimum size must be 0 or more pixels")
        if self.min_side > MAX_SIDE:
            raise QueryError(f"minimum size must be at most {MAX_SIDE:,} pixels")
        for f in self.formats:
            format_name(f)
        for c in self.cameras:
            if not fold(c):
                raise QueryError("empty camera name: give a make, a model or both, e.g. 'Canon EOS R5'")
        for p in self.places:
            if not all(fold(part) for part in str(p).split(",")):
                raise QueryError(f"place {p!r} has an empty part: give a town, region or country, e.g. 'Paris, France'")
        if self.near is not None:
            check_near(*self.near, text=",".join(f"{x:g}" for x in self.near))
        for tag in self.tags:
            name = normalize_tag(tag)
            if not name:
                raise QueryError("an empty tag names nothing: give a tag such as dog (`pixseek tags` lists them)")
            if "\x00" in name or len(name) > MAX_TAG_LENGTH:
                raise QueryError(f"not a tag: {name[:40]!r} (a tag is at most {MAX_TAG_LENGTH} characters, no NUL)")
        return self

    def sql(self) -> tuple[str, list]:
        """``(where, params)``; every value is a bound parameter, never pasted into the SQL."""
        self.validate()
        clauses: list[str] = []
        params: list = []
        if self.folder:
            # normpath folds "a/../b" and trailing slashes, so the range test sees a clean prefix.
            # A URL's "folders" are its prefixes (s3://bucket/photos): only its trailing slashes go.
            folder = self.folder.rstrip("/") if sources.is_url(self.folder) else os.path.normpath(self.folder)
            clauses.append(f"({UNDER_SQL})")
            params += list(under_params(folder))
        if self.formats:
            clauses.append(f"format IN ({','.join('?' * len(self.formats))})")
            params += [format_name(f) for f in self.formats]
        if self.date_from:
            clauses.append(f"{DATE_SQL} >= ?")
            params.append(_day_start(self.date_from))
        if self.date_to:
            clauses.append(f"{DATE_SQL} < ?")
            params.append(_day_end(self.date_to))
        if self.min_side > 0:
            clauses.append("MIN(width, height) >= ?")
            params.append(int(self.min_side))
        exif, exif_params = self.exif_sql()
        if exif:
            clauses.append(f"id IN (SELECT image_id FROM exif WHERE {exif})")
            params += exif_params
        for tag in dict.fromkeys(normalize_tag(t) for t in self.tags):  # every tag must match
            clauses.append("id IN (SELECT image_id FROM tags WHERE tag = ?)")
            params.append(tag)
        return (" AND ".join(clauses) or "1"), params

    @property
    def exif_only(self) -> bool:
        """Whether every condition is on table ``exif`` (camera, place, position): its ids alone answer."""
        return self.active and not (
            self.folder or self.formats or self.date_from or self.date_to or self.min_side or self.tags
        )

    def exif_sql(self) -> tuple[str, list]:
        """The conditions on table ``exif`` (camera, place, position), or "" when there are none."""
        clauses: list[str] = []
        params: list = []
        if self.cameras:
            clauses.append("(" + " OR ".join("instr(camera_key, ?) > 0" for _ in self.cameras) + ")")
            params += [f"|{fold(c)}|" for c in self.cameras]
        if self.places:
            any_place = []
            for place in self.places:
                parts = [f"|{fold(part)}|" for part in str(place).split(",")]
                any_place.append("(" + " AND ".join("instr(place_key, ?) > 0" for _ in parts) + ")")
                params += parts
            clauses.append("(" + " OR ".join(any_place) + ")")
        if self.near is not None:
            where, values = near_sql(*self.near)
            clauses.append(where)
            params += values
        elif self.has_gps:
            clauses.append("gps_lat IS NOT NULL")
        return " AND ".join(clauses), params

    def describe(self) -> str:
        parts = []
        if self.folder:
            parts.append(f"in {self.folder}")
        if self.formats:
            parts.append("type " + "/".join(self.formats))
        if self.date_from or self.date_to:
            parts.append(f"dated {self.date_from or '…'} to {self.date_to or '…'}")
        if self.min_side:
            parts.append(f"at least {self.min_side} px")
        if self.cameras:
            parts.append("camera " + " or ".join(self.cameras))
        if self.places:
            parts.append("at " + " or ".join(self.places))
        if self.near is not None:
            lat, lon, km = self.near
            parts.append(f"within {km:g} km of {lat:g},{lon:g}")
        elif self.has_gps:
            parts.append("with a GPS position")
        if self.tags:
            parts.append("tagged " + " + ".join(dict.fromkeys(normalize_tag(t) for t in self.tags)))
        return ", ".join(parts) or "no filter"


def near_sql(lat: float, lon: float, km: float) -> tuple[str, list]:
    """``(where, params)`` for "within ``km`` of (lat, lon)": a bounding box an index can range-scan,
    then the exact great-circle distance of the rows inside it."""
    r = km / EARTH_KM  # the radius as an angle
    dlat = math.degrees(r)
    clauses = ["gps_lat BETWEEN ? AND ?"]
    params: list = [lat - dlat, lat + dlat]
    if abs(lat) + dlat < 90:  # the circle reaches no pole: its longitudes are bounded too
        dlon = math.degrees(math.asin(min(1.0, math.sin(r) / math.cos(math.radians(lat)))))
        lo, hi = lon - dlon, lon + dlon
        if lo < -180:  # across the antimeridian: two ranges
            clauses.append("(gps_lon >= ? OR gps_lon <= ?)")
            params += [lo + 360, hi]
        elif hi > 180:
            clauses.append("(gps_lon >= ? OR gps_lon <= ?)")
            params += [lo, hi - 360]
        else:
            clauses.append("gps_lon BETWEEN ? AND ?")
            params += [lo, hi]
    clauses.append(f"{DISTANCE_SQL} <= ?")
    params += [lat, lat, lat, lon, lon, km]
    return "(" + " AND ".join(clauses) + ")", params


def check_near(lat: float, lon: float, km: float, *, text: str) -> tuple[float, float, float]:
    """The point and radius, checked; a QueryError naming what is wrong otherwise."""
    hint = "give LAT,LON,KM in degrees and km, e.g. 48.8566,2.3522,10"
    if not all(math.isfinite(x) for x in (lat, lon, km)):
        raise QueryError(f"invalid near {text!r}: the numbers must be finite", hint=hint)
    if not -90 <= lat <= 90:
        raise QueryError(f"invalid near {text!r}: latitude {lat:g} is not between -90 and 90", hint=hint)
    if not -180 <= lon <= 180:
        raise QueryError(f"invalid near {text!r}: longitude {lon:g} is not between -180 and 180", hint=hint)
    if not 0 < km <= MAX_KM:
        limit = f"{MAX_KM:,.0f}"
        raise QueryError(f"invalid near {text!r}: the radius {km:g} km is not between 0 and {limit} km", hint=hint)
    return float(lat), float(lon), float(km)


def parse_near(text: str | None) -> tuple[float, float, float] | None:
    """``LAT,LON,KM`` -> (lat, lon, km), checked (for the CLI); raises QueryError in one line."""
    if text is None:
        return None
    parts = str(text).split(",")
    try:
        if len(parts) != 3:
            raise ValueError
        lat, lon, km = (float(p) for p in parts)
    except ValueError:
        raise QueryError(
            f"invalid near {text!r}: use LAT,LON,KM (three numbers), e.g. 48.8566,2.3522,10",
        ) from None
    return check_near(lat, lon, km, text=str(text).strip())


def parse_date(text: str | None) -> dt.date | None:
    """``YYYY-MM-DD`` -> date (for the CLI); raises QueryError with the expected form."""
    if not text:
        return None
    try:
        return dt.date.fromisoformat(text.strip())
    except ValueError:
        raise QueryError(f"invalid date {text!r}: use YYYY-MM-DD") from None
