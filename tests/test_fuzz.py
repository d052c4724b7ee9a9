"""Bounded fuzzing (hypothesis): the image-loading path and the query parsers never raise anything but
their typed errors, whatever bytes or text they are given."""

from __future__ import annotations

import contextlib
import os
import sqlite3

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from imagegen import draw, encode

from pixseek.decode import decode_bytes
from pixseek.errors import ImageError, QueryError
from pixseek.search.query import build_terms, split_weight
from pixseek.search.uploads import read_upload
from pixseek.store.filters import Filter, parse_date

SEEDS = [encode(draw(i, (48, 40)), fmt) for i, fmt in enumerate(("JPEG", "PNG", "WEBP", "GIF", "BMP", "TIFF"))]
EXAMPLES = int(os.environ.get("PIXSEEK_FUZZ_EXAMPLES", "300"))
FUZZ = settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)


@st.composite
def mutated_images(draw_):
    data = bytearray(SEEDS[draw_(st.integers(0, len(SEEDS) - 1))])
    for _ in range(draw_(st.integers(1, 12))):
        op = draw_(st.sampled_from(("flip", "cut", "insert", "header")))
        if op == "flip" and data:
            i = draw_(st.integers(0, len(data) - 1))
            data[i] = draw_(st.integers(0, 255))
        elif op == "cut" and len(data) > 2:
            data = data[: draw_(st.integers(1, len(data) - 1))]
        elif op == "insert":
            i = draw_(st.integers(0, len(data)))
            data[i:i] = draw_(st.binary(max_size=64))
        elif op == "header" and len(data) > 32:
            i = draw_(st.integers(0, 31))
            data[i] = draw_(st.integers(0, 255))
    return bytes(data)


@FUZZ
@given(st.one_of(mutated_images(), st.binary(max_size=512)))
def test_decode_never_crashes(data):
    try:
        d = decode_bytes(data, min_side=16, max_pixels=4_000_000)
    except ImageError as e:
        assert e.message and "\n" not in e.message
        return
    assert d.image.mode == "RGB" and d.width > 0 and d.height > 0
    np.asarray(d.image)  # the pixels are really there


@FUZZ
@given(mutated_images())
def test_upload_path_never_crashes(data):
    try:
        read_upload(data, "fuzz.png", max_pixels=4_000_000)
    except QueryError as e:
        assert e.message.startswith("cannot use fuzz.png: ") and "\n" not in e.message


@FUZZ
@given(st.lists(st.text(max_size=40), max_size=4), st.lists(st.text(max_size=40), max_size=3))
def test_query_parser_never_crashes(texts, negatives):
    for t in texts:
        value, w = split_weight(t)
        assert isinstance(value, str) and isinstance(w, float)
    try:
        terms = build_terms(texts, (), negatives)
    except QueryError as e:
        assert e.message and "\n" not in e.message
        return
    assert any(t.weight > 0 for t in terms)


@FUZZ
@given(st.text(max_size=60), st.lists(st.text(max_size=8), max_size=3), st.text(max_size=12), st.integers(-5, 10**6))
def test_filter_parser_never_crashes(folder, formats, date, min_side):
    try:
        where, params = Filter(
            folder=folder or None, formats=tuple(formats), date_from=parse_date(date), min_side=min_side
        ).sql()
    except QueryError as e:
        assert e.message and "\n" not in e.message
        return
    # every value is a bound parameter: one '?' per parameter, and the clause runs as SQL whatever was typed
    assert where.count("?") == len(params)
    with contextlib.closing(sqlite3.connect(":memory:")) as db:
        db.execute(
            "CREATE TABLE images (id INTEGER PRIMARY KEY, path TEXT, format TEXT, taken_at REAL, "
            "mtime_ns INTEGER, width INTEGER, height INTEGER)"
        )
        db.execute(f"SELECT id FROM images WHERE {where}", params).fetchall()
    benign = Filter(
        folder="/x" if folder else None, formats=("JPEG",) * len(formats), date_from=parse_date(date), min_side=min_side
    ).sql()[0]
    assert where == benign  # what was typed reaches SQLite only as parameters, never as SQL text
