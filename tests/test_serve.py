"""The search service (`pixseek serve`): every endpoint and error through FastAPI's test client, the query
path shared with `Engine.search`, the caps, the token and Host guards, threads, and one real uvicorn."""

from __future__ import annotations

import datetime as dt
import http.client
import io
import json
import os
import signal
import socket
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from fastapi.testclient import TestClient
from imagegen import draw, make_corpus
from PIL import Image

from pixseek.cli import cli
from pixseek.hosts import allowed
from pixseek.index.indexer import Indexer
from pixseek.search import Engine, Filter
from pixseek.service.app import create_app
from pixseek.service.backend import Ask, Backend, Upload
from pixseek.store.filters import format_name
from pixseek.store.thumbs import valid_webp

TOKEN = "test-token-0123456789abcdef"
PIXSEEK = Path(sys.executable).parent / "pixseek"


def _index(db: Path, root: Path, tiny, session_cache: Path, base: Path) -> None:
    """Index with the tiny model, caches where the tests keep them (module fixtures run outside the
    per-test environment)."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("XDG_CACHE_HOME", str(session_cache))
        mp.setenv("XDG_DATA_HOME", str(base / "xdg-data"))
        Indexer(db, encoder=tiny, batch_size=8).run([root])


@pytest.fixture(scope="module")
def indexed(tmp_path_factory, tiny, session_cache):
    """(db, root): 24 drawn pictures in set0..set2, one broken file, three of them dated 2018."""
    base = tmp_path_factory.mktemp("serve")
    root = base / "photos"
    make_corpus(root, 24)
    (root / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    old = time.mktime(dt.datetime(2018, 5, 5, 12).timetuple())
    for p in sorted((root / "set2").iterdir())[:3]:
        os.utime(p, (old, old))
    db = base / "db"
    _index(db, root, tiny, session_cache, base)
    return db, root


@pytest.fixture(scope="module")
def backend(indexed, tiny):
    b = Backend(indexed[0], encoder=tiny)
    yield b
    b.close()


@pytest.fixture(scope="module")
def client(backend):
    return TestClient(create_app(backend), base_url="http://127.0.0.1")


@pytest.fixture(scope="module")
def engine(indexed, tiny):
    with Engine.open(indexed[0], encoder=tiny) as eng:
        yield eng


def _png(img: Image.Image) -> bytes:
    buf = io.BytesIO()
    img.save(buf, "PNG")
    return buf.getvalue()


def _ids(payload: dict) -> list[int]:
    return [r["id"] for r in payload["results"]]


# --- one query path --------------------------------------------------------------------------------
QUERIES = [
    ({"text": "a red circle"}, dict(texts=["a red circle"])),
    (
        {"text": ["shapes::0.7", "a gradient::0.3"], "not": "blue::0.5"},
        dict(texts=["shapes::0.7", "a gradient::0.3"], negatives=["blue::0.5"]),
    ),
    ({"text": "img0004", "mode": "keyword"}, dict(texts=["img0004"], mode="keyword")),
    ({"text": "set1 shapes", "mode": "semantic", "k": 5}, dict(texts=["set1 shapes"], mode="semantic", k=5)),
    ({"text": "shapes", "types": ["png"]}, dict(texts=["shapes"], filter=Filter(formats=("png",)))),
    ({"text": "shapes", "until": "2018-12-31"}, dict(texts=["shapes"], filter=Filter(date_to=dt.date(2018, 12, 31)))),
    (
        {"text": "shapes", "min_side": 200, "k": 4, "offset": 2},
        dict(texts=["shapes"], filter=Filter(min_side=200), k=4, offset=2),
    ),
    ({"text": "shapes", "similar": 3}, dict(texts=["shapes"], similar=3)),
    ({"text": "shapes", "min_score": 0.05}, dict(texts=["shapes"], min_score=0.05)),
]


@pytest.mark.parametrize(("body", "call"), QUERIES, ids=[json.dumps(q[0]) for q in QUERIES])
def test_search_answers_what_engine_search_answers(client, engine, indexed, body, call):
    call = {"k": 20, **call}
    r = client.post("/search", json=body)
    assert r.status_code == 200, r.text
    expect = engine.search(call.pop("texts", ()), (), call.pop("negatives", ()), call.pop("k"), **call)
    got = r.json()["results"]
    assert [(g["id"], g["rank"], g["why"]) for g in got] == [(e.id, e.rank, list(e.why)) for e in expect]
    assert [g["score"] for g in got] == pytest.approx([e.score for e in expect], abs=1e-6)
    assert got, "every query here has results"
    for g in got:
        assert g["thumb"] == f"/thumbs/{g['id']}" and g["image"] == f"/images/{g['id']}"
        assert g["path"].startswith(str(indexed[1]))
        assert (g["label"] in ("strong", "good", "weak")) == (body.get("mode") != "keyword")


def test_folder_filter_and_paging(client, indexed):
    folder = str(indexed[1] / "set1")
    first = client.post("/search", json={"text": "shapes", "folder": folder, "k": 5}).json()
    assert len(first["results"]) == 5 and first["next_offset"] == 5
    assert all(Path(r["path"]).parent.name == "set1" for r in first["results"])
    rest = client.post("/search", json={"text": "shapes", "folder": folder, "k": 5, "offset": 5}).json()
    assert [r["rank"] for r in rest["results"]] == [6, 7, 8] and rest["next_offset"] is None  # 8 in set1
    assert not set(_ids(first)) & set(_ids(rest))


def test_an_uploaded_picture_finds_itself_and_weights_combine(client, engine, indexed):
    path = sorted(indexed[1].rglob("*.png"))[0]
    data = path.read_bytes()
    r = client.post("/search", files={"image": ("query.png", data, "image/png")}, data={"query": '{"k": 3}'})
    assert r.status_code == 200, r.text
    top = r.json()["results"][0]
    assert top["path"] == str(path) and top["score"] == pytest.approx(1.0, abs=1e-5)
    query = {"text": "shapes::0.4", "image_weights": [0.6], "k": 6}
    r = client.post("/search", files={"image": ("q.png", data, "image/png")}, data={"query": json.dumps(query)})
    expect = engine.search(["shapes::0.4"], [(data, 0.6)], k=6)
    assert _ids(r.json()) == [e.id for e in expect]


def test_similar(client, engine):
    r = client.get("/similar/5", params={"k": 4, "type": ["png", "webp"]})
    assert r.status_code == 200, r.text
    expect = engine.similar(5, k=4, filter=Filter(formats=("png", "webp")))
    assert _ids(r.json()) == [e.id for e in expect] and 5 not in _ids(r.json())
    assert all(x["format"] in ("PNG", "WEBP") for x in r.json()["results"])


def test_thumbnails_and_pictures_by_id(client, engine):
    row = engine.get(7)
    r = client.get("/thumbs/7")
    assert r.status_code == 200 and r.headers["content-type"] == "image/webp" and valid_webp(r.content)
    assert max(Image.open(io.BytesIO(r.content)).size) <= 320
    again = client.get("/thumbs/7", headers={"If-None-Match": r.headers["etag"]})
    assert again.status_code == 304 and again.content == b""
    original = client.get("/images/7")
    assert original.status_code == 200 and original.content == Path(row.path).read_bytes()
    assert (
        original.headers["content-type"] == {"JPEG": "image/jpeg", "PNG": "image/png", "WEBP": "image/webp"}[row.format]
    )
    assert original.headers["content-disposition"] == f"inline; filename*=UTF-8''{Path(row.path).name}"
    view = client.get("/images/7", params={"size": "view"})
    assert view.headers["content-type"] == "image/jpeg" and Image.open(io.BytesIO(view.content)).format == "JPEG"


def test_stats(client):
    r = client.get("/stats")
    assert r.status_code == 200
    assert (r.json()["images"], r.json()["errors"], r.json()["model"]) == (24, 1, "tiny-random")
    assert r.json()["service"]["queries"] >= 0


def test_openapi_and_offline_docs(client):
    spec = client.get("/openapi.json").json()
    assert set(spec["paths"]) == {"/health", "/search", "/similar/{id}", "/thumbs/{id}", "/images/{id}", "/stats"}
    assert "422" not in json.dumps(spec) and set(spec["components"]["schemas"]) == {
        "ErrorOut",
        "ResultOut",
        "SearchOut",
    }
    assert spec["paths"]["/similar/{id}"]["get"]["responses"]["400"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/ErrorOut"
    }
    assert set(spec["paths"]["/search"]["post"]["requestBody"]["content"]) == {
        "application/json",
        "multipart/form-data",
    }
    docs = client.get("/docs")
    assert (
        docs.status_code == 200 and "cdn." not in docs.text and "/static-offline-docs/swagger-ui-bundle.js" in docs.text
    )
    assert client.get("/static-offline-docs/swagger-ui-bundle.js").status_code == 200


# --- errors ------------------------------------------------------------------------------------------
ERRORS = [
    ({}, 400, "empty query: give a text, --image PATH, or both"),
    ({"text": "x", "k": 0}, 400, "invalid k: input should be greater than or equal to 1"),
    (
        {"text": "x", "k": "many"},
        400,
        "invalid k: input should be a valid integer, unable to parse string as an integer",
    ),
    ({"text": "x", "oops": 1}, 400, "unknown field 'oops'"),
    ({"text": 5}, 400, "invalid text: give a string or a list of strings"),
    ({"text": ["a", 5]}, 400, "invalid text.1: input should be a valid string"),
    ({"text": "x", "since": "2020-13-01"}, 400, "invalid date '2020-13-01': use YYYY-MM-DD"),
    (
        {"text": "x", "since": "2021-01-01", "until": "2020-01-01"},
        400,
        "date range is empty: 2021-01-01 is after 2020-01-01",
    ),
    ({"text": "x", "types": "exe"}, 400, None),  # the message of format_name, below
    ({"text": "x", "folder": "photos"}, 400, "folder filter must be an absolute path or a URL prefix, not 'photos'"),
    ({"text": "x", "mode": "fuzzy"}, 400, "unknown search mode 'fuzzy': use hybrid, semantic, keyword"),
    ({"not": "blurry"}, 400, "a query needs at least one positive term (--not alone has nothing to rank by)"),
    ({"text": ["shapes::1", "shapes::-1"]}, 400, "the query terms cancel each other out; change their weights"),
    ({"text": "the a", "mode": "keyword"}, 400, "a keyword search needs words to look for"),
    (
        {"text": "img", "mode": "keyword", "not": "y"},
        400,
        "a keyword search takes words only (no --image, --not or --similar)",
    ),
    ({"text": "x", "image_weights": [0.5]}, 400, "image_weights has 1 weight(s) for 0 uploaded picture(s)"),
    ({"similar": 424242}, 404, "no image with id 424242 in the index"),
]


@pytest.mark.parametrize(("body", "status", "message"), ERRORS, ids=[json.dumps(e[0]) for e in ERRORS])
def test_search_errors(client, body, status, message):
    if message is None:
        with pytest.raises(Exception) as e:
            format_name("exe")
        message = str(e.value)
    r = client.post("/search", json=body)
    assert (r.status_code, r.json()["error"]) == (status, message)
    assert "\n" not in r.json()["error"]


def test_the_service_says_what_the_command_line_says(client, indexed):
    """The same query through `pixseek search` and POST /search: the same one-line error."""
    db = str(indexed[0])
    cases = [
        (["x", "--since", "2020-13-01"], {"text": "x", "since": "2020-13-01"}),
        (["x", "--type", "exe"], {"text": "x", "types": "exe"}),
        (["x", "--mode", "keyword", "--not", "y"], {"text": "x", "mode": "keyword", "not": "y"}),
        (["--not", "blurry", "x::0"], {"text": "x::0", "not": "blurry"}),
        (["--similar", "424242"], {"similar": 424242}),
    ]
    for argv, body in cases:
        out = CliRunner().invoke(cli, ["search", *argv, "--db", db])
        err = client.post("/search", json=body).json()
        line = f"Error: {err['error']}" + (f" ({err['hint']})" if err["hint"] else "")
        assert (out.exit_code, out.output.strip()) == (1, line), argv


@pytest.mark.parametrize(
    ("content", "ctype", "status", "message"),
    [
        (
            b"not json",
            "application/json",
            400,
            "the request body is not valid JSON: Expecting value: line 1 column 1 (char 0)",
        ),
        (b"[1, 2]", "application/json", 400, "the request body must be a JSON object"),
        (
            b"text=a+dog",
            "application/x-www-form-urlencoded",
            415,
            "cannot read a application/x-www-form-urlencoded body",
        ),
        (
            b'--x\r\nContent-Disposition: form-data; name="other"\r\n\r\n1\r\n--x--\r\n',
            "multipart/form-data; boundary=x",
            400,
            "unexpected form part 'other': send one 'query' (JSON) and 'image' (picture) parts",
        ),
        (
            b'--x\r\nContent-Disposition: form-data; name="query"\r\n\r\n{"k": -1}\r\n--x--\r\n',
            "multipart/form-data; boundary=x",
            400,
            "invalid k: input should be greater than or equal to 1",
        ),
        (b"--x\r\n", "multipart/form-data", 400, "the multipart body has no boundary"),
    ],
)
def test_unreadable_bodies(client, content, ctype, status, message):
    r = client.post("/search", content=content, headers={"Content-Type": ctype})
    assert (r.status_code, r.json()["error"]) == (status, message)


def test_unknown_ids_and_odd_paths(client):
    assert client.get("/thumbs/424242").json() == {"error": "no image with id 424242 in the index", "hint": None}
    assert client.get("/images/424242").status_code == 404
    assert client.get("/similar/-1").json()["error"] == "no image with id -1 in the index"
    assert client.get(f"/similar/{2**70}").json()["error"] == f"no image with id {2**70} in the index"
    r = client.get("/thumbs/abc")
    assert (r.status_code, r.json()["error"]) == (
        400,
        "invalid id: input should be a valid integer, unable to parse string as an integer",
    )
    assert (
        client.get("/images/7", params={"size": "huge"}).json()["error"]
        == "invalid size: input should be 'original' or 'view'"
    )
    for path in (
        "/images/..%2f..%2fetc%2fpasswd",
        "/images/7/../../../etc/passwd",
        "/thumbs//etc/passwd",
        "/etc/passwd",
    ):
        r = client.get(path)
        assert r.status_code in (400, 404) and b"root:" not in r.content, path
    assert client.get("/nowhere").json()["error"] == "no such endpoint: GET /nowhere"
    assert client.delete("/search").status_code == 405


def test_upload_caps(indexed, tiny):
    b = Backend(indexed[0], encoder=tiny, max_upload_bytes=1 << 20, max_pixels=10_000)
    try:
        client = TestClient(create_app(b), base_url="http://127.0.0.1")
        noise = _png(Image.fromarray(np.random.default_rng(0).integers(0, 255, (700, 700, 3), dtype=np.uint8)))
        assert 1.0 < len(noise) / 2**20 < 2.0  # over the picture's cap, under the request's
        r = client.post("/search", files={"image": ("noise.png", noise, "image/png")})
        assert (r.status_code, r.json()["error"]) == (
            413,
            f"noise.png is {len(noise) / 2**20:.1f} MiB; the limit is 1 MiB",
        )
        r = client.post("/search", files={"image": ("big.png", noise + noise, "image/png")})
        assert r.status_code == 413
        assert r.json() == {
            "error": f"the request is {(int(r.request.headers['content-length'])) / 2**20:.1f} MiB; the limit is 2 MiB",
            "hint": "a query picture may be at most --max-upload-mb (the request 1 MiB more)",
        }
        chunks = iter([b"x" * (1 << 20)] * 3)  # no Content-Length: refused while read
        r = client.post("/search", content=chunks, headers={"Content-Type": "application/json"})
        assert (r.status_code, r.json()["error"]) == (413, "the request is over 2 MiB; the limit is 2 MiB")
        r = client.post("/search", files={"image": ("wide.png", _png(draw(1, (200, 100))), "image/png")})
        assert (r.status_code, r.json()["error"]) == (
            413,
            "cannot use wide.png: too many pixels: 200x100 = 20,000 > cap 10,000 "
            "(decompression bomb guard; raise it with --max-pixels)",
        )
        r = client.post("/search", files={"image": ("a.png", b"GIF89a\x00garbage", "image/png")})
        assert (r.status_code, r.json()["error"]) == (
            400,
            "cannot use a.png: not a supported image: the content is none of "
            "JPEG, PNG, WEBP, GIF, BMP, TIFF, HEIF, AVIF",
        )
    finally:
        b.close()


# --- guards ------------------------------------------------------------------------------------------
def test_token(backend):
    client = TestClient(create_app(backend, token=TOKEN), base_url="http://127.0.0.1")
    r = client.get("/stats")
    assert (r.status_code, r.json()) == (
        401,
        {"error": "this service needs a bearer token", "hint": "send the header Authorization: Bearer <token>"},
    )
    assert r.headers["www-authenticate"] == 'Bearer realm="pixseek"'
    assert client.get("/stats", headers={"Authorization": f"Basic {TOKEN}"}).status_code == 401
    r = client.post("/search", json={"text": "x"}, headers={"Authorization": "Bearer wrong-token-0123456789"})
    assert (r.status_code, r.json()["error"]) == (403, "the bearer token is wrong")
    assert client.get("/thumbs/1", headers={"Authorization": f"Bearer {TOKEN}x"}).status_code == 403
    ok = {"Authorization": f"Bearer {TOKEN}"}
    assert client.get("/stats", headers=ok).status_code == 200
    assert client.post("/search", json={"text": "x"}, headers=ok).status_code == 200
    for public in ("/health", "/docs", "/openapi.json", "/static-offline-docs/swagger-ui.css"):
        assert client.get(public).status_code == 200, public
    assert "HTTPBearer" in client.get("/openapi.json").json()["components"]["securitySchemes"]


@pytest.mark.parametrize(
    ("bound", "host", "ok"),
    [
        ("127.0.0.1", "127.0.0.1:8600", True),
        ("127.0.0.1", "localhost:8600", True),
        ("127.0.0.1", "[::1]:8600", True),
        ("127.0.0.1", "rebind.example:8600", False),
        ("127.0.0.1", "127.0.0.1.nip.io", False),
        ("192.0.2.7", "192.0.2.7:8600", True),
        ("192.0.2.7", "photos.example", False),
        ("0.0.0.0", "photos.example", True),
    ],
)
def test_host_names(backend, bound, host, ok):
    assert allowed(host, bound) is ok
    client = TestClient(create_app(backend, host=bound, token=TOKEN), base_url="http://127.0.0.1")
    r = client.get("/stats", headers={"Host": host, "Authorization": f"Bearer {TOKEN}"})
    if ok:
        assert r.status_code == 200
    else:
        name = host.rsplit(":", 1)[0] if host.count(":") == 1 else host
        assert (r.status_code, r.json()["error"]) == (403, f"this service does not answer to the host name {name!r}")
        assert client.get("/docs", headers={"Host": host}).status_code == 403


def test_refuses_to_start_beyond_loopback_without_a_token(tmp_path):
    env = {**os.environ, "PIXSEEK_TOKEN": ""}
    r = subprocess.run(
        [str(PIXSEEK), "serve", "--db", str(tmp_path / "db"), "--host", "0.0.0.0", "--port", str(_free_port())],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    assert r.returncode == 1 and r.stdout == ""
    assert r.stderr.strip().splitlines() == [
        "Error: serving on 0.0.0.0 needs a bearer token: anyone who can reach it could search and download the "
        "indexed pictures (set PIXSEEK_TOKEN (or --token) to a secret of 16 characters or more; e.g. export "
        "PIXSEEK_TOKEN=$(python3 -c 'import secrets; print(secrets.token_urlsafe(32))'))"
    ]
    out = CliRunner().invoke(cli, ["serve", "--db", str(tmp_path / "db"), "--token", "short"])
    assert (out.exit_code, out.output.strip()) == (
        1,
        "Error: the token has 5 characters; use 16 or more "
        "(export PIXSEEK_TOKEN=$(python3 -c 'import secrets; print(secrets.token_urlsafe(32))'))",
    )
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        out = CliRunner().invoke(cli, ["serve", "--db", str(tmp_path / "db"), "--port", str(port)])
    assert (out.exit_code, out.output.strip()) == (
        1,
        f"Error: port {port} on 127.0.0.1 is in use (pick another with --port)",
    )


# --- following the index, threads -------------------------------------------------------------------
def test_no_index_yet_then_it_appears_and_grows(tmp_path, tiny, session_cache):
    db, root = tmp_path / "db", tmp_path / "photos"
    b = Backend(db, encoder=tiny)
    try:
        client = TestClient(create_app(b), base_url="http://127.0.0.1")
        r = client.post("/search", json={"text": "shapes"})
        assert (r.status_code, r.json()) == (
            503,
            {"error": f"no pixseek index in {db}", "hint": "build one with: pixseek index PATH"},
        )
        assert client.get("/health").json() == {"status": "ok"}
        make_corpus(root, 6)
        _index(db, root, tiny, session_cache, tmp_path)
        assert len(client.post("/search", json={"text": "shapes"}).json()["results"]) == 6
        new = make_corpus(root, 3, start=100)
        _index(db, root, tiny, session_cache, tmp_path)  # a run while the service is up
        r = client.post("/search", files={"image": ("q.png", new[1].read_bytes(), "image/png")})
        assert r.json()["results"][0]["path"] == str(new[1]) and len(r.json()["results"]) == 9
        assert client.get("/stats").json()["service"]["reloads"] == 1
    finally:
        b.close()


@pytest.mark.parametrize("split", [True, False])
def test_threads_get_what_one_thread_gets(indexed, tiny, split):
    """Mixed queries from 8 threads at once (texts, uploads, similar, keywords, thumbnails) give exactly
    the answers they give one at a time, with the encoder's lock apart from the store's and with one lock."""
    b = Backend(indexed[0], encoder=tiny, split_locks=split)
    png = sorted(indexed[1].rglob("*.png"))[2].read_bytes()
    asks = [
        Ask(texts=(f"shapes {i}",), k=5)
        if i % 4 == 0
        else Ask(uploads=(Upload(png, "q.png"),), texts=("shapes::0.5",), k=5)
        if i % 4 == 1
        else Ask(similar=i + 1, k=5)
        if i % 4 == 2
        else Ask(texts=(f"img00{i:02d}",), mode="keyword", k=5)
        for i in range(16)
    ]

    def key(a):
        return [(r.id, round(r.score, 5)) for r in b.search(a).results]

    try:
        alone = [key(a) for a in asks]
        with ThreadPoolExecutor(8) as pool:
            together = list(pool.map(key, asks))
            thumbs = list(pool.map(lambda i: b.thumbnail(b.row(i)), range(1, 25)))
        assert together == alone
        assert all(valid_webp(t) for t in thumbs)
    finally:
        b.close()


# --- a real process ------------------------------------------------------------------------------------
def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _call(port: int, method: str, path: str, body: bytes | None = None, headers: dict | None = None):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        conn.request(method, path, body=body, headers=headers or {})
        r = conn.getresponse()
        return r.status, dict(r.getheaders()), r.read()
    finally:
        conn.close()


def test_a_real_uvicorn_process(indexed, client, tmp_path, session_cache):
    db = indexed[0]
    port = _free_port()
    env = {**os.environ, "PIXSEEK_TOKEN": TOKEN, "XDG_CACHE_HOME": str(session_cache)}
    log = tmp_path / "serve.log"
    with open(log, "w") as out:
        proc = subprocess.Popen(
            [str(PIXSEEK), "serve", "--db", str(db), "--port", str(port)],
            stdout=out,
            stderr=subprocess.STDOUT,
            env=env,
            start_new_session=True,
        )
    try:
        deadline = time.time() + 60
        while True:
            try:
                if _call(port, "GET", "/health")[0] == 200:
                    break
            except OSError:
                pass
            assert proc.poll() is None, log.read_text()
            assert time.time() < deadline, "pixseek serve did not answer in 60 s\n" + log.read_text()
            time.sleep(0.2)
        auth = {"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"}
        status, _, body = _call(port, "POST", "/search", json.dumps({"text": "shapes", "k": 5}).encode(), auth)
        assert status == 200, body
        assert _ids(json.loads(body)) == _ids(client.post("/search", json={"text": "shapes", "k": 5}).json())
        first = json.loads(body)["results"][0]
        status, headers, thumb = _call(port, "GET", first["thumb"], headers=auth)
        assert (status, headers["content-type"], valid_webp(thumb)) == (200, "image/webp", True)
        assert _call(port, "GET", "/stats")[0] == 401
        status, _, body = _call(port, "GET", "/stats", headers={**auth, "Host": "rebind.example"})
        assert (status, json.loads(body)["error"]) == (
            403,
            "this service does not answer to the host name 'rebind.example'",
        )
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            code = proc.wait(15)
        finally:
            if proc.poll() is None:
                proc.kill()
    text = log.read_text()
    assert code == 0, text
    assert f"pixseek: search service for {db} at http://127.0.0.1:{port}  (API docs at /docs; Ctrl-C stops it)" in text
    assert "Traceback" not in text
