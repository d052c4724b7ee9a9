"""The command line: outputs, exit codes and exact one-line messages."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner
from imagegen import make_corpus

from pixseek.cli import cli


@pytest.fixture
def runner():
    return CliRunner()


def invoke(runner, *args):
    return runner.invoke(cli, [str(a) for a in args], catch_exceptions=False)


@pytest.fixture
def indexed(runner, tmp_path, tiny):
    root = tmp_path / "pics"
    make_corpus(root, 12)
    db = tmp_path / "db"
    r = invoke(runner, "index", root, "--db", db, "--model", "tiny-random", "--json")
    assert r.exit_code == 0, r.output
    return db, root, json.loads(r.stdout)


def test_index_json_summary_and_text_summary(runner, indexed):
    db, root, summary = indexed
    assert {k: summary[k] for k in ("added", "updated", "moved", "removed", "unchanged", "failed", "total")} == {
        "added": 12,
        "updated": 0,
        "moved": 0,
        "removed": 0,
        "unchanged": 0,
        "failed": 0,
        "total": 12,
    }
    assert summary["images_per_s"] > 0 and summary["seconds"] > 0
    r = invoke(runner, "index", root, "--db", db)
    assert r.exit_code == 0
    assert r.stdout.startswith("added 0, updated 0, moved 0, removed 0, unchanged 12, failed 0 in ")
    assert r.stdout.rstrip().endswith("images/s); 12 images in the index")


def test_search_text_image_and_json(runner, indexed):
    db, root, _ = indexed
    r = invoke(runner, "search", "a", "red", "circle", "--db", db, "-k", "3")
    assert r.exit_code == 0
    lines = r.stdout.splitlines()
    assert len(lines) == 3 and lines[0].split()[0] == "1" and lines[0].split()[2].startswith(str(root))
    probe = sorted(root.rglob("*.png"))[0]
    r = invoke(runner, "search", "--image", probe, "--db", db, "-k", "2", "--json")
    res = json.loads(r.stdout)
    assert r.exit_code == 0 and res[0]["path"] == str(probe) and res[0]["score"] == pytest.approx(1, abs=1e-4)
    assert set(res[0]) == {
        "rank",
        "id",
        "path",
        "root",
        "hash",
        "score",
        "width",
        "height",
        "format",
        "size",
        "mtime",
        "taken_at",
        "why",
        "date",
        "camera",
        "camera_make",
        "camera_model",
        "lens",
        "latitude",
        "longitude",
        "altitude",
        "place",
        "tags",
    }
    assert res[0]["why"] == ["image meaning"]
    r = invoke(
        runner,
        "search",
        "--image",
        f"{probe}::0.8",
        "--text",
        "at night::0.2",
        "--not",
        "blurry",
        "--db",
        db,
        "-k",
        "2",
    )
    assert r.exit_code == 0 and len(r.stdout.splitlines()) == 2
    r = invoke(runner, "search", "--similar", res[0]["id"], "--db", db, "-k", "4", "--json")
    assert r.exit_code == 0 and res[0]["id"] not in [x["id"] for x in json.loads(r.stdout)]
    r = invoke(runner, "search", "anything", "--db", db, "--min-score", "2")
    assert r.exit_code == 0 and r.stdout == "no good match (nothing scored >= 2.0)\n"


def test_stats_errors_models(runner, indexed, tiny):
    db, root, _ = indexed
    (root / "broken.jpg").write_bytes(b"\xff\xd8garbage")
    r = invoke(runner, "index", root, "--db", db)
    assert r.exit_code == 0 and r.stderr == "1 file could not be indexed: see `pixseek errors`\n"
    r = invoke(runner, "errors", "--db", db)
    assert r.stdout.startswith(f"decode  {root / 'broken.jpg'}: ")
    st = json.loads(invoke(runner, "stats", "--db", db, "--json").stdout)
    assert (st["images"], st["errors"], st["model"], st["model_id"], st["dim"]) == (
        12,
        1,
        "tiny-random",
        tiny.model_id,
        128,
    )
    assert st["index_type"] == "IDMap2,Flat" and st["vectors_in_sync"] is True and st["faiss_bytes"] > 0
    text = invoke(runner, "stats", "--db", db).stdout
    assert "images           12" in text and f"roots            {root} (12)" in text
    r = invoke(runner, "models")
    assert r.exit_code == 0 and "* pixseek-photo" in r.stdout
    assert "  pixseek-emoji" in r.stdout and "  tiny-random" in r.stdout


def test_rebuild_vectors(runner, indexed):
    db, _, _ = indexed
    (db / "vectors.faiss").unlink()
    r = invoke(runner, "index", "--rebuild-vectors", "--db", db, "--json")
    assert r.exit_code == 0 and json.loads(r.stdout)["rebuilt"] == 12


@pytest.mark.parametrize(
    "args, message",
    [
        (
            ["search", "x", "--db", "{tmp}/none"],
            "Error: no pixseek index in {tmp}/none (build one with: pixseek index PATH)",
        ),
        (
            ["search", "--db", "{db}"],
            'Error: empty query: give a text, --image PATH, or both (pixseek search "a red car at night")',
        ),
        (
            ["search", "--image", "{tmp}/nope.png", "--db", "{db}"],
            "Error: cannot read query image {tmp}/nope.png: cannot read: No such file or directory",
        ),
        (["search", "--similar", "999", "--db", "{db}"], "Error: no image with id 999 in the index"),
        (["search", "x", "--since", "2020-02-30", "--db", "{db}"], "Error: invalid date '2020-02-30': use YYYY-MM-DD"),
        (
            ["search", "x", "--since", "2021-01-01", "--until", "2020-01-01", "--db", "{db}"],
            "Error: date range is empty: 2021-01-01 is after 2020-01-01",
        ),
        (
            ["index", "--db", "{db}"],
            "Error: nothing to index: give one or more folders or images (pixseek index ~/Pictures)",
        ),
        (
            ["index", "{tmp}/missing", "--db", "{db}"],
            "Error: no such file or folder: {tmp}/missing (if it is gone for good, drop what was indexed there "
            "with: pixseek forget {tmp}/missing)",
        ),
        (
            ["index", "{tmp}/pics", "--db", "{db}", "--model", "bogus"],
            "Error: unknown model 'bogus': give a registry name (pixseek-emoji, pixseek-photo, tiny-random, "
            "vit-b-32-random), "
            "ARCH:TAG, ARCH:/path/to/checkpoint or a checkpoint with a JSON config beside it",
        ),
    ],
)
def test_errors_are_one_line_with_exit_code_1(runner, indexed, tmp_path, args, message):
    db, _, _ = indexed
    fill = {"tmp": str(tmp_path), "db": str(db)}
    r = invoke(runner, *[a.format(**fill) for a in args])
    assert r.exit_code == 1
    assert r.stderr == message.format(**fill) + "\n"
    assert r.stdout == ""


def test_empty_index_message(runner, tmp_path):
    from pixseek.store.database import Store

    Store.open(tmp_path / "e", create=True).close()
    r = invoke(runner, "search", "x", "--db", tmp_path / "e")
    assert r.exit_code == 1
    assert r.stderr == f"Error: index in {tmp_path / 'e'} has no images (add some with: pixseek index PATH)\n"


def test_db_from_environment(runner, indexed, monkeypatch):
    db, _, _ = indexed
    monkeypatch.setenv("PIXSEEK_DB", str(db))
    r = invoke(runner, "search", "a", "-k", "1", "--json")
    assert r.exit_code == 0 and len(json.loads(r.stdout)) == 1


def test_search_filters(runner, indexed):
    db, root, _ = indexed
    r = invoke(runner, "search", "shape", "--in", root / "set1", "--json", "--db", db)
    got = json.loads(r.stdout)
    assert len(got) == 4 and all(x["path"].startswith(str(root / "set1") + "/") for x in got)
    r = invoke(runner, "search", "shape", "--type", "png", "--type", "WEBP", "--json", "--db", db)
    assert sorted({x["format"] for x in json.loads(r.stdout)}) == ["PNG", "WEBP"]
    r = invoke(runner, "search", "shape", "--since", "1990-01-01", "--until", "1990-12-31", "--db", db)
    assert r.exit_code == 0 and r.stdout == "no good match\n"


def test_ui_refuses_a_busy_port(runner, tmp_path):
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        r = invoke(runner, "ui", "--db", tmp_path / "db", "--port", port)
    assert r.exit_code == 1
    assert r.stderr == f"Error: port {port} on 127.0.0.1 is in use (pick another with --port)\n"
