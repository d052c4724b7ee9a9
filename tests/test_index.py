"""Incremental indexing, moves, bad input, model mismatch, FAISS repair."""

from __future__ import annotations

import os
import shutil
import sqlite3

import numpy as np
import pytest
from imagegen import draw, encode, jpeg_with_orientation, make_corpus, save, truncated

from pixseek.errors import ModelMismatchError, VectorIndexError
from pixseek.index.indexer import Indexer
from pixseek.search import Engine
from pixseek.store import DataDir, Store


def run(db, tiny, *paths, **kw):
    return Indexer(db, encoder=tiny, batch_size=kw.pop("batch_size", 8), **kw).run(list(paths))


def rows(db):
    con = sqlite3.connect(db / "pixseek.db")
    try:
        return {p: (i, h) for i, p, h in con.execute("SELECT id, path, hash FROM images")}
    finally:
        con.close()


def errors(db):
    with Store.open(db) as st:
        return st.errors()


def test_first_run_indexes_everything_and_rerun_does_no_work(index_dir, tiny):
    db, corpus = index_dir
    s = run(db, tiny, corpus)
    assert (s.added, s.updated, s.moved, s.removed, s.unchanged, s.failed, s.embedded) == (0, 0, 0, 0, 24, 0, 0)
    assert s.total == 24
    with Store.open(db) as st:
        assert st.count() == 24 and st.integrity_check() == "ok"
        assert st.conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert st.model_id == tiny.model_id and st.dim == tiny.dim


def test_rerun_without_model_arg_loads_no_model(index_dir, monkeypatch):
    db, corpus = index_dir
    import pixseek.index.indexer as indexer_mod

    monkeypatch.setattr(indexer_mod, "for_indexing", lambda *a, **k: pytest.fail("model loaded"))
    s = Indexer(db).run([corpus])
    assert s.unchanged == 24 and s.embedded == 0


def test_modify_delete_add(index_dir, tiny):
    db, corpus = index_dir
    before = rows(db)
    victim = sorted(corpus.rglob("*.png"))[0]
    save(draw(999), victim)  # new content, same name
    os.utime(victim, ns=(1, 1_000_000_000))
    gone = sorted(corpus.rglob("*.jpg"))[0]
    gone.unlink()
    make_corpus(corpus / "new", 2, start=500)
    s = run(db, tiny, corpus)
    assert (s.added, s.updated, s.removed, s.moved, s.unchanged) == (2, 1, 1, 0, 22)
    after = rows(db)
    assert str(gone) not in after
    assert after[str(victim)][0] == before[str(victim)][0]  # same row id, new vector
    assert after[str(victim)][1] != before[str(victim)][1]
    with Engine.open(db, encoder=tiny) as eng:
        assert eng.image(victim, k=1)[0].path == str(victim)
        assert eng.vectors.ntotal == 25


def test_touch_without_content_change_is_not_reembedded(index_dir, tiny):
    db, corpus = index_dir
    p = sorted(corpus.rglob("*.jpg"))[1]
    os.utime(p, ns=(5, 5_000_000_000))
    s = run(db, tiny, corpus)
    assert s.embedded == 0 and s.updated == 0 and s.unchanged == 24


def test_move_and_rename_keep_vector_without_embedding(index_dir, tiny):
    db, corpus = index_dir
    before = rows(db)
    src = sorted(corpus.rglob("*.webp"))[0]
    dst = corpus / "moved" / "renamed.webp"
    dst.parent.mkdir()
    shutil.move(src, dst)
    s = run(db, tiny, corpus)
    assert (s.moved, s.added, s.removed, s.embedded) == (1, 0, 0, 0)
    after = rows(db)
    assert str(src) not in after and after[str(dst)] == before[str(src)]
    with Engine.open(db, encoder=tiny) as eng:
        top = eng.image(dst, k=1)[0]
        assert (top.path, top.id) == (str(dst), before[str(src)][0])


def test_identical_copy_reuses_vector(index_dir, tiny):
    db, corpus = index_dir
    src = sorted(corpus.rglob("*.png"))[0]
    shutil.copy2(src, corpus / "copy.png")
    s = run(db, tiny, corpus)
    assert (s.added, s.embedded) == (1, 0)
    with Store.open(db) as st:
        a, b = st.get_by_path(str(src)), st.get_by_path(str(corpus / "copy.png"))
        assert np.array_equal(st.vector(a.id), st.vector(b.id))


def test_exclude_and_hidden(tmp_path, tiny, db):
    root = tmp_path / "pics"
    make_corpus(root, 6)
    save(draw(1), root / ".hidden" / "h.png")
    save(draw(2), root / ".dot.png")
    save(draw(3), root / "raw" / "skip.jpg")
    (root / "notes.txt").write_text("not an image")
    s = run(db, tiny, root, exclude=["raw", "*.webp"])
    assert s.added == 4 and s.failed == 0
    paths = set(rows(db))
    assert not any("/." in p or "/raw/" in p or p.endswith(".webp") for p in paths)
    # excluding later removes what was indexed under the pattern
    s = run(db, tiny, root, exclude=["raw", "*.webp", "set0"])
    assert s.removed == 2 and s.total == 2


def test_formats_and_orientation(tmp_path, tiny, db):
    root = tmp_path / "fmt"
    base = draw(7, (120, 60))
    for ext in (".jpg", ".png", ".webp", ".bmp", ".tif"):
        save(base, root / f"a{ext}")
    frames = [draw(7, (120, 60)), draw(8, (120, 60))]
    frames[0].save(root / "anim.gif", save_all=True, append_images=frames[1:], duration=100)
    import pillow_heif

    pillow_heif.register_heif_opener()
    base.save(root / "a.heic", quality=90)
    (root / "rot.jpg").write_bytes(jpeg_with_orientation(base, 6))
    s = run(db, tiny, root)
    assert s.added == 8 and s.failed == 0, errors(db)
    with Store.open(db) as st:
        fmts = {os.path.basename(r.path): (r.format, r.width, r.height) for r in st.get(range(1, 100)).values()}
    assert fmts["a.heic"][0] == "HEIF" and fmts["anim.gif"][0] == "GIF" and fmts["a.tif"][0] == "TIFF"
    assert fmts["rot.jpg"] == ("JPEG", 60, 120)  # displayed size after EXIF rotation
    assert fmts["a.png"] == ("PNG", 120, 60)


BAD_KINDS = {
    "zero.jpg": ("read", "empty file (0 bytes)"),
    "trunc.jpg": ("decode", "cannot decode JPEG"),
    "trunc.png": ("decode", "cannot decode PNG"),
    "garbage.png": ("decode", "not an image: the content is no format Pillow can read"),
    "text.jpg": ("decode", "not an image: the content is no format Pillow can read"),
    "bomb.png": ("decode", "too many pixels: 20000x20000 = 400,000,000 > cap 150,000,000"),
    "locked.jpg": ("read", "cannot read: Permission denied"),
    "loop1.jpg": ("scan", "symlink loop"),
    "loop2.jpg": ("scan", "symlink loop"),
    "dangling.png": ("scan", "broken symlink (target missing)"),
    "dirloop": ("scan", "symlink loop (folder already scanned)"),
    "bad-\\xff.jpg": ("scan", "file name is not valid UTF-8 (rename it to index it)"),
}


def make_bad_corpus(root):
    make_corpus(root, 6)
    big = draw(5, (800, 600))
    (root / "zero.jpg").write_bytes(b"")
    (root / "trunc.jpg").write_bytes(truncated(encode(big, "JPEG", quality=95), 0.4))
    (root / "trunc.png").write_bytes(truncated(encode(big, "PNG"), 0.4))
    (root / "garbage.png").write_bytes(os.urandom(2048))
    (root / "text.jpg").write_text("<html>this is not a jpeg</html>")
    # A PNG header claiming 20000x20000: rejected from the header, before any pixel is decoded.
    bomb = encode(draw(3, (64, 64)), "PNG")
    import struct
    import zlib

    ihdr = struct.pack(">IIBBBBB", 20000, 20000, 8, 2, 0, 0, 0)
    chunk = b"IHDR" + ihdr
    bomb = bomb[:8] + struct.pack(">I", 13) + chunk + struct.pack(">I", zlib.crc32(chunk)) + bomb[33:]
    (root / "bomb.png").write_bytes(bomb)
    save(draw(4), root / "locked.jpg")
    os.symlink(root / "loop2.jpg", root / "loop1.jpg")
    os.symlink(root / "loop1.jpg", root / "loop2.jpg")
    os.symlink(root / "missing.png", root / "dangling.png")
    os.symlink(root, root / "dirloop")
    save(draw(6), root / os.fsdecode(b"bad-\xff.jpg"))


def test_every_bad_input_is_recorded_and_good_files_indexed(tmp_path, tiny, db, monkeypatch):
    root = tmp_path / "bad"
    make_bad_corpus(root)
    import pixseek.sources as ixmod  # every read of an indexed file

    real_open = open

    def fake_open(path, *a, **k):  # tests run as root, so chmod 000 would not stop a read
        if str(path).endswith("locked.jpg"):
            raise PermissionError(13, "Permission denied", str(path))
        return real_open(path, *a, **k)

    monkeypatch.setattr(ixmod, "open", fake_open, raising=False)
    s = run(db, tiny, root)
    assert s.added == 6
    errs = {os.path.basename(e["path"]): (e["stage"], e["message"]) for e in errors(db)}
    for name, (stage, prefix) in BAD_KINDS.items():
        assert name in errs, (name, errs)
        assert errs[name][0] == stage and errs[name][1].startswith(prefix), (name, errs[name])
    assert s.failed == len(BAD_KINDS)
    # unchanged bad files are not retried; good ones stay indexed
    s2 = run(db, tiny, root)
    assert s2.embedded == 0 and s2.unchanged == 6 and s2.total == 6
    # a fixed file leaves the error table
    save(draw(11), root / "zero.jpg")
    s3 = run(db, tiny, root)
    assert s3.added == 1
    assert "zero.jpg" not in {os.path.basename(e["path"]) for e in errors(db)}


def test_model_mismatch_is_refused(index_dir, tmp_path, tiny):
    db, corpus = index_dir
    cfg = tmp_path / "other.json"
    # The same architecture with other weights: a different model id.
    from safetensors.torch import save_file

    from pixseek.models import openclip, registry

    m = openclip.create("pixseek-vit-tiny", seed=123)
    ck = tmp_path / "other.safetensors"
    save_file({k: v.contiguous() for k, v in m.state_dict().items()}, ck)
    shutil.copy(registry.configs_dir() / "pixseek-vit-tiny.json", cfg)
    with pytest.raises(ModelMismatchError) as e:
        Indexer(db, model=str(ck)).run([corpus])
    assert str(e.value).startswith(
        f"index in {DataDir.resolve(db).root} was built with model {tiny.model_id}, not other.safetensors#"
    )
    with pytest.raises(ModelMismatchError), Engine.open(db, model=str(ck)) as eng:
        eng.text("a dog")
    with Store.open(db) as st:
        assert st.count() == 24


@pytest.mark.parametrize("damage", ["delete", "corrupt", "truncate", "stale"])
def test_faiss_file_damage_is_repaired_with_same_results(index_dir, tiny, damage, caplog):
    db, corpus = index_dir
    dd = DataDir.resolve(db)
    probe = sorted(corpus.rglob("*.jpg"))[2]
    with Engine.open(db, encoder=tiny) as eng:
        want = [(r.id, round(r.score, 5)) for r in eng.image(probe, k=10)]
    if damage == "delete":
        dd.faiss.unlink()
    elif damage == "corrupt":
        data = bytearray(dd.faiss.read_bytes())
        data[:64] = os.urandom(64)
        dd.faiss.write_bytes(bytes(data))
    elif damage == "truncate":
        dd.faiss.write_bytes(dd.faiss.read_bytes()[:100])
    else:
        with Store.open(db) as st:
            st.set_meta(generation=str(st.generation + 5))
    with caplog.at_level("WARNING", logger="pixseek"), Engine.open(db, encoder=tiny) as eng:
        got = [(r.id, round(r.score, 5)) for r in eng.image(probe, k=10)]
    assert got == want
    assert "rebuilding it from the database (in memory" in caplog.text
    from pixseek.index.doctor import run as doctor
    from pixseek.store.vectors import VectorIndex

    before = dd.faiss.read_bytes() if dd.faiss.exists() else None
    with Store.open(db) as st, pytest.raises(VectorIndexError):  # a search never writes: still damaged
        VectorIndex.load_file(st)
    assert (dd.faiss.read_bytes() if dd.faiss.exists() else None) == before
    assert {f.check: f.status for f in doctor(db).findings}["vector index"] == "fixed"
    with Store.open(db) as st:
        VectorIndex.load_file(st)  # repaired file is in sync now
    with Engine.open(db, encoder=tiny) as eng:
        assert [(r.id, round(r.score, 5)) for r in eng.image(probe, k=10)] == want
