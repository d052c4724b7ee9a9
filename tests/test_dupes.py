"""Near-duplicates with a model that knows pictures (the bundled pixseek-photo): a resized + re-encoded
copy and a crop are grouped with their original, each with its kind, identical files form their own
group, and different photos (and a drawn sign) stay apart; the JSON shape; a read-only command never
writes; search hides near-duplicates when asked."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
from PIL import Image, ImageDraw, ImageFont

from pixseek.index.indexer import Indexer
from pixseek.models import load_torch
from pixseek.search import Engine, Filter
from pixseek.search.dupe_rule import dupe_rule
from pixseek.search.dupes import find_duplicates, near_duplicate_ids
from pixseek.store import Store

PHOTOS = Path(__file__).resolve().parent.parent / "samples" / "photos"
FONT = Path("/usr/share/fonts/truetype/dejavu/DejaVuSans-Bold.ttf")


def cli(*args, expect: int = 0) -> subprocess.CompletedProcess:
    env = dict(os.environ, HF_HUB_OFFLINE="1", TOKENIZERS_PARALLELISM="false")
    out = subprocess.run(
        [sys.executable, "-m", "pixseek", *map(str, args)],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        cwd=tempfile.gettempdir(),
    )
    assert "Traceback" not in out.stderr, out.stderr[-3000:]
    assert out.returncode == expect, (args, out.stdout[-1500:], out.stderr[-1500:])
    return out


def sign(path: Path, text: str) -> Path:
    """A green road sign with white words (a picture with text, unlike any photo here)."""
    img = Image.new("RGB", (480, 320), (20, 90, 40))
    font = ImageFont.truetype(str(FONT), 64) if FONT.exists() else ImageFont.load_default(size=64)
    ImageDraw.Draw(img).text((40, 110), text, font=font, fill="white")
    img.save(path)
    return path


def make_set(root: Path) -> dict[str, Path]:
    """cat.jpg with a half-size JPEG re-encode and an 85 % centre crop; coffee.jpg and an identical copy
    in another folder; two more photos and a drawn sign that duplicate nothing."""
    (root / "edited").mkdir(parents=True)
    (root / "backup").mkdir()
    p = {name: Path(shutil.copy(PHOTOS / f"{name}.jpg", root / f"{name}.jpg")) for name in ("cat", "coffee")}
    p |= {name: Path(shutil.copy(PHOTOS / f"{name}.jpg", root / f"{name}.jpg")) for name in ("astronaut", "gravel")}
    cat = Image.open(p["cat"]).convert("RGB")
    w, h = cat.size
    cat.resize((w // 2, h // 2), Image.Resampling.LANCZOS).save(root / "edited" / "cat-small.jpg", quality=70)
    cat.crop((int(w * 0.075), int(h * 0.075), int(w * 0.925), int(h * 0.925))).save(root / "edited" / "cat-crop.png")
    p["cat-small"], p["cat-crop"] = root / "edited" / "cat-small.jpg", root / "edited" / "cat-crop.png"
    p["coffee-copy"] = Path(shutil.copy(p["coffee"], root / "backup" / "coffee.jpg"))
    p["sign"] = sign(root / "sign.png", "EXIT 42")
    return p


@pytest.fixture(scope="module")
def photo():
    return load_torch("pixseek-photo", "cpu")


@pytest.fixture(scope="module")
def photo_set(tmp_path_factory, photo):
    root = tmp_path_factory.mktemp("dupes") / "pics"
    paths = make_set(root)
    db = root.parent / "db"
    s = Indexer(db, encoder=photo, export_encoders=False, workers=0).run([root])
    assert (s.added, s.failed, s.hashed) == (8, 0, 0)  # hashes come from the indexing pass itself
    return db, paths


def snapshot(folder: Path) -> dict[str, str]:
    """Every file of a data dir by content (SQLite's shared-memory index and an empty write-ahead log
    aside: readers leave marks there, not data)."""
    files = [
        p
        for p in sorted(folder.iterdir())
        if p.is_file() and not p.name.endswith("-shm") and not (p.name.endswith("-wal") and not p.stat().st_size)
    ]
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in files}


def test_copies_reencodes_and_crops_group_apart_from_other_photos(photo_set):
    db, p = photo_set
    with Store.open(db, readonly=True) as store:
        report = find_duplicates(store, dupe_rule(store))
    assert [(g.kind, [(Path(f.path).name, f.kind) for f in g.files]) for g in report.groups] == [
        ("exact", [("coffee.jpg", None), ("coffee.jpg", "exact")]),
        ("similar", [("cat.jpg", None), ("cat-small.jpg", "same"), ("cat-crop.png", "similar")]),
    ]
    exact, cat = report.groups
    assert {f.path for f in exact.files} == {str(p["coffee"]), str(p["coffee-copy"])}
    assert exact.keep.path == str(p["coffee"])  # the older file of two identical ones
    small, crop = cat.others
    assert small.hash_distance is not None and small.hash_distance <= 2  # re-encoded: the same looks
    assert crop.hash_distance is not None and crop.hash_distance > report.rule.same_bits  # a crop: other looks
    assert small.score >= report.rule.same_floor and crop.score >= report.rule.similar
    assert report.unhashed == 0 and report.images == 8
    assert report.rule.source == "calibrated for pixseek-photo"


def test_dupes_json_and_text_through_the_command(photo_set):
    db, p = photo_set
    out = json.loads(cli("dupes", "--db", db, "--json").stdout)
    assert set(out) == {"rule", "kinds", "images", "unhashed", "groups", "summary", "seconds", "notes"}
    assert out["summary"] == {
        "groups": 2,
        "files": 5,
        "movable": 3,
        "movable_bytes": sum(p[n].stat().st_size for n in ("coffee-copy", "cat-small", "cat-crop")),
        "exact": 1,
        "same": 0,
        "similar": 1,
    }
    cat = out["groups"][1]
    assert set(cat) == {"group", "kind", "keep", "files", "pairs", "pairs_total"}
    keep = cat["files"][0]
    assert set(keep) == {
        "id",
        "path",
        "size",
        "width",
        "height",
        "format",
        "date",
        "keep",
        "kind",
        "score",
        "hash_distance",
    }
    assert (keep["keep"], keep["kind"], keep["path"], keep["width"], keep["height"]) == (
        True,
        None,
        str(p["cat"]),
        451,
        300,
    )
    assert cat["keep"] == keep["id"] and [f["kind"] for f in cat["files"][1:]] == ["same", "similar"]
    assert all(pair["kind"] in ("same", "similar") for pair in cat["pairs"]) and cat["pairs_total"] >= 2
    only_same = json.loads(cli("dupes", "--db", db, "--json", "--kind", "same").stdout)
    assert [[Path(f["path"]).name for f in g["files"]] for g in only_same["groups"]] == [["cat.jpg", "cat-small.jpg"]]
    assert only_same["groups"][0]["kind"] == "same"

    text = cli("dupes", "--db", db)
    lines = text.stdout.splitlines()
    assert lines[0].startswith("group 1: identical files, 2 files, ") and lines[0].endswith(" to move")
    assert lines[1].split()[0] == "keep" and lines[1].endswith(str(p["coffee"]))
    assert lines[3].startswith("group 2: similar pictures, 3 files, ")
    assert lines[5].split()[0] == "same" and f"{p['cat-small']}  score " in lines[5]
    assert lines[-1].startswith("2 groups (exact 1, similar 1), 5 files; 3 could be moved (")
    assert text.stderr.startswith("(near-duplicates score 0.9")


def test_dupes_never_writes_the_database(photo_set, tmp_path):
    db, _ = photo_set
    before = snapshot(db)
    cli("dupes", "--db", db)
    cli("dupes", "--db", db, "--json", "--export", tmp_path / "list.csv")
    assert snapshot(db) == before
    rows = (tmp_path / "list.csv").read_text().splitlines()
    assert rows[0] == "group,group_kind,keep,kind,id,path,size,width,height,format,date,score,hash_distance"
    assert len(rows) == 1 + 5 and rows[1].startswith("1,exact,True,,")


def test_search_hides_near_duplicates(photo_set, photo):
    db, p = photo_set
    with Engine.open(db, encoder=photo) as eng:
        cat = eng.store.get_by_path(str(p["cat"]))
        assert cat is not None
        plain = [Path(r.path).name for r in eng.similar(cat.id, k=4)]
        assert plain[:2] == ["cat-crop.png", "cat-small.jpg"]  # what a user does not want to see again
        hidden = [Path(r.path).name for r in eng.similar(cat.id, k=4, hide_dupes=True)]
        assert "cat-crop.png" not in hidden and "cat-small.jpg" not in hidden and len(hidden) == 4
        ranked = [r.id for r in eng.image(p["coffee"], k=2)]  # the two identical files, in either order
        coffee, copy = eng.store.get_by_path(str(p["coffee"])), eng.store.get_by_path(str(p["coffee-copy"]))
        assert coffee is not None and copy is not None and set(ranked) == {coffee.id, copy.id}
        assert near_duplicate_ids(eng.store, ranked, eng.dupe_rule()) == {ranked[1]: ranked[0]}
        assert near_duplicate_ids(eng.store, ranked, eng.dupe_rule(), copies=False) == {}
        # the review page's call, over everything or a folder
        assert [g.kind for g in eng.duplicates().groups] == ["exact", "similar"]
        edited = eng.duplicates(filter=Filter(folder=str(p["cat-small"].parent)))
        names = [sorted(Path(f.path).name for f in g.files) for g in edited.groups]
        assert names == [["cat-crop.png", "cat-small.jpg"]]
        # grouped results keep the copy on its card while near-duplicates go
        groups, _ = eng.search_groups(eng.encode_image(p["cat"]), 3, hide_dupes=True)
        names = [Path(g.best.path).name for g in groups]
        assert names[0] == "cat.jpg" and not {"cat-small.jpg", "cat-crop.png"} & set(names)
        groups, _ = eng.search_groups(eng.encode_image(p["coffee"]), 1, hide_dupes=True)
        assert groups[0].n_copies == 1
    out = cli("search", "--db", db, "--similar", cat.id, "-k", "3", "--hide-dupes", "--json")
    assert not {"cat-small.jpg", "cat-crop.png"} & {Path(r["path"]).name for r in json.loads(out.stdout)}
