"""What a large index needs of the store and the index choice: SQLite pages that hold ViT-B-32 rows
without wasting half of each page, and ``auto``'s choice at 10M vectors."""

from __future__ import annotations

import sqlite3

import numpy as np

from pixseek.store import database
from pixseek.store.database import Store, vec_to_blob

DIM = 512  # ViT-B-32: a row is ~2.3 KB, more than half of a 4 KB page


def fill(db, n: int, seed: int = 0) -> np.ndarray:
    """``n`` rows of random 512-d vectors in a new index at ``db``; returns the vectors."""
    x = np.random.default_rng(seed).standard_normal((n, DIM)).astype(np.float32)
    with Store.open(db, create=True) as st:
        st.set_meta(model_id="synthetic#0", model_spec="synthetic", dim=str(DIM))
        st.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        (db / "empty-size").write_text(str((db / "pixseek.db").stat().st_size))
        with st.batch() as b:
            for i, v in enumerate(x):
                st.insert_image(
                    path=f"/photos/2024/album-{i // 50:03d}/IMG_{i:06d}.jpg",
                    root="/photos",
                    size=2_000_000 + i,
                    mtime_ns=i,
                    digest=f"{i:064x}",
                    width=4000,
                    height=3000,
                    fmt="JPEG",
                    model_id="synthetic#0",
                    blob=vec_to_blob(v),
                )
            b.changed = True
        st.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    return x


def page_size(db) -> int:
    with sqlite3.connect(db / "pixseek.db") as con:
        return con.execute("PRAGMA page_size").fetchone()[0]


def test_new_database_packs_rows_into_16k_pages(tmp_path, monkeypatch):
    fill(tmp_path / "new", 600)
    monkeypatch.setattr(database, "PAGE_SIZE", 4096)  # what every database got before
    fill(tmp_path / "old", 600)
    assert page_size(tmp_path / "new") == 16384
    assert page_size(tmp_path / "old") == 4096
    per_row = {
        name: ((tmp_path / name / "pixseek.db").stat().st_size - int((tmp_path / name / "empty-size").read_text())) / 600
        for name in ("new", "old")
    }
    assert per_row["new"] < 2900 < 4000 < per_row["old"], per_row


def test_existing_database_keeps_its_pages_and_vectors(tmp_path, monkeypatch):
    db = tmp_path / "db"
    monkeypatch.setattr(database, "PAGE_SIZE", 4096)
    x = fill(db, 50)
    before = (db / "pixseek.db").read_bytes()
    monkeypatch.undo()
    with Store.open(db, create=True) as st:  # as `pixseek index` opens it
        ids, vecs = next(st.iter_vectors())
        assert st.count() == 50
    np.testing.assert_array_equal(vecs, x)
    assert page_size(db) == 4096
    assert (db / "pixseek.db").read_bytes()[:100] == before[:100]  # the header (page size) untouched
