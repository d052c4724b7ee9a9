"""What the database hands out: an indexed image's row, a failed file's record, and vector BLOBs."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from pixseek.exif import camera_name


@dataclass(frozen=True)
class ErrorRecord:
    """A file that failed: its size and mtime then, why (``kind``) and the limit in force."""

    size: int | None
    mtime_ns: int | None
    kind: str | None  # content | io | pixels | size (None: recorded before kinds were kept)
    limit_value: int | None


@dataclass
class ImageRow:
    id: int
    path: str
    root: str
    size: int
    mtime_ns: int
    hash: str
    width: int | None
    height: int | None
    format: str | None
    added_at: float
    updated_at: float
    taken_at: float | None = None
    camera_make: str | None = None
    camera_model: str | None = None
    lens: str | None = None
    gps_lat: float | None = None
    gps_lon: float | None = None
    gps_alt: float | None = None
    place_city: str | None = None
    place_county: str | None = None
    place_region: str | None = None
    place_country: str | None = None
    place_cc: str | None = None
    exif_version: int | None = None  # None: indexed before camera and GPS were read (filled on the next run)

    @property
    def date(self) -> float:
        """When the picture was taken (EXIF) if known, else the file's modification time."""
        return self.taken_at if self.taken_at is not None else self.mtime_ns / 1e9

    @property
    def camera(self) -> str | None:
        """The camera as people name it ("Canon EOS R5", "Apple iPhone 12 Pro"), or None."""
        return camera_name(self.camera_make, self.camera_model)

    @property
    def place(self) -> Place | None:
        """The named place nearest to where the picture was taken, or None."""
        if not (self.place_country or self.place_city):
            return None
        return Place(self.place_city, self.place_county, self.place_region, self.place_country, self.place_cc)


@dataclass(frozen=True)
class Place:
    """A named place from offline reverse geocoding (GeoNames): the town is None when the nearest one
    is too far to name (see :mod:`pixseek.index.places`)."""

    city: str | None
    county: str | None  # the district or municipality around the town, when GeoNames has one
    region: str | None  # state, province, region
    country: str | None
    country_code: str | None  # ISO 3166-1 alpha-2

    @property
    def name(self) -> str:
        """ "Paris, Île-de-France, France": the town, region and country, without repeats."""
        parts: list[str] = []
        for p in (self.city, self.region, self.country):
            if p and p not in parts:
                parts.append(p)
        return ", ".join(parts)

    def to_dict(self) -> dict:
        return {
            "name": self.name,
            "city": self.city,
            "county": self.county,
            "region": self.region,
            "country": self.country,
            "country_code": self.country_code,
        }


IMAGE_COLUMNS = (
    "id, path, root, size, mtime_ns, hash, width, height, format, added_at, updated_at, taken_at, "
    "camera_make, camera_model, lens, gps_lat, gps_lon, gps_alt, "
    "place_city, place_county, place_region, place_country, place_cc, exif_version"
)
# What IMAGE_COLUMNS are selected from: each image with its EXIF row, if it has one.
IMAGE_FROM = "images LEFT JOIN exif ON exif.image_id = images.id"


def vec_to_blob(v: np.ndarray) -> bytes:
    """A vector as the database stores it: little-endian float32 bytes."""
    return np.ascontiguousarray(v, dtype="<f4").tobytes()
