"""What a large index needs of the store and the index choice: SQLite pages that hold ViT-B-32 rows
without wasting half of each page, and ``auto``'s choice at 10M vectors."""

from __future__ import annotations

import sqlite3

import numpy as np

from pixseek.store import ann, database
from pixseek.store.database import Store, vec_to_blob

DIM = 512  # ViT-B-32: a row is ~2.3 KB, more than half of a 4 KB page


def fill(db, n: int, seed: int = 0) -> np.ndarray:
    """``n`` rows of random 512-d vectors in a new index at ``db``; returns the vectors."""
    x = np.random.default_rng(seed).standard_normal((n, DIM)).astype(np.float32)
    with Store.open(db, create=True) as st:
        st.set_meta(model_id="synthetic#0", model_spec="synthetic", dim=str(DIM))
        st.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        (db / "empty-size").write_text(str(db_size(db)))
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


def db_size(db) -> int:
    return (db / "pixseek.db").stat().st_size


def page_size(db) -> int:
    with sqlite3.connect(db / "pixseek.db") as con:
        return con.execute("PRAGMA page_size").fetchone()[0]


def test_new_database_packs_rows_into_16k_pages(tmp_path, monkeypatch):
    fill(tmp_path / "new", 600)
    monkeypatch.setattr(database, "PAGE_SIZE", 4096)  # what every database got before
    fill(tmp_path / "old", 600)
    assert page_size(tmp_path / "new") == 16384
    assert page_size(tmp_path / "old") == 4096
    empty = {name: int((tmp_path / name / "empty-size").read_text()) for name in ("new", "old")}
    per_row = {name: (db_size(tmp_path / name) - size) / 600 for name, size in empty.items()}
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


def test_auto_counts_row_ids_in_the_memory_budget():
    # 10^8 ViT-B-32 vectors in 6 GiB: 64-byte codes (6.4 GB) fit alone, but not with their 8-byte ids
    # (7.2 GB); 32-byte codes and ids (4.0 GB) do.
    assert ann.choose_factory(100_000_000, 512, budget=6 << 30) == "IVF32768,PQ64x4fs"
    # 10M on this 24 GiB machine (a quarter of RAM): 8-bit codes and ids, 5.2 GB
    assert ann.choose_factory(10_000_000, 512, budget=6 << 30) == "IVF16384,SQ8"
    # 10M in 4 GB (a 16 GB machine): 4-bit PQ, 256 sub-vectors of 2 dimensions, 1.36 GB with ids
    assert ann.choose_factory(10_000_000, 512, budget=4_000_000_000) == "IVF16384,PQ256x4fs"
    # ... in 1 GB: 128 sub-vectors (0.72 GB with ids)
    assert ann.choose_factory(10_000_000, 512, budget=1_000_000_000) == "IVF16384,PQ128x4fs"
    # float codes take 2,048 bytes a vector and the id 8 more: 1M of them fit 2,056 MB, not 2,048 MB
    assert ann.choose_factory(1_000_000, 512, budget=2_056_000_000) == "IVF4096,Flat"
    assert ann.choose_factory(1_000_000, 512, budget=2_048_000_000) == "IVF4096,SQ8"
