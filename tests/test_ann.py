"""ANN index types: chosen by size and memory, tuned by measured recall, re-ranked, filtered, persisted."""

from __future__ import annotations

import numpy as np
import pytest

from pixseek.errors import VectorIndexError
from pixseek.search.engine import Engine
from pixseek.store import ann
from pixseek.store.database import Store, vec_to_blob
from pixseek.store.filters import Filter
from pixseek.store.paths import TUNING_QUERIES_FILE
from pixseek.store.vectors import VectorIndex

DIM = 32


def clustered(n: int, dim: int = DIM, centers: int = 40, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    c = rng.standard_normal((centers, dim)).astype(np.float32)
    x = c[rng.integers(0, centers, n)] + 0.35 * rng.standard_normal((n, dim)).astype(np.float32)
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


@pytest.fixture
def synthetic(tmp_path):
    """A data dir with 3,000 synthetic vectors in two folders, plus 'text' tuning queries offset
    from the image vectors (the modality gap that makes text queries harder than image ones)."""
    db = tmp_path / "db"
    st = Store.open(db, create=True)
    st.set_meta(model_id="synthetic#0", model_spec="synthetic", dim=str(DIM))
    x = clustered(3000)
    with st.batch() as b:
        for i, v in enumerate(x):
            st.insert_image(
                path=f"/pics/{'a' if i % 2 else 'b'}/{i:05d}.jpg",
                root="/pics",
                size=1000 + i,
                mtime_ns=i,
                digest=f"{i:032x}",
                width=640,
                height=480,
                fmt="JPEG",
                model_id="synthetic#0",
                blob=vec_to_blob(v),
            )
        b.changed = True
    gap = clustered(1, seed=9)[0]
    text = clustered(120, seed=5) + 0.5 * gap
    np.save(db / TUNING_QUERIES_FILE, (text / np.linalg.norm(text, axis=1, keepdims=True)).astype(np.float32))
    yield st, x
    st.close()


def test_choose_factory_by_size_and_memory():
    assert ann.choose_factory(10_000, 256) == "Flat"
    assert ann.choose_factory(ann.FLAT_MAX, 256) == "Flat"
    assert ann.choose_factory(1_000_000, 256, budget=8 << 30) == "IVF4096,Flat"
    assert ann.choose_factory(1_000_000, 256, budget=512 << 20) == "IVF4096,SQ8"
    assert ann.choose_factory(100_000_000, 256, budget=8 << 30) == "IVF32768,PQ128x4fs"
    assert ann.choose_factory(100_000_000, 256, budget=2 << 30) == "IVF32768,PQ16x4fs"
    assert ann.normalise_factory("HNSW32") == "IDMap2,HNSW32"
    assert ann.normalise_factory("IVF64,Flat") == "IVF64,Flat"
    assert ann.normalise_factory("flat") == "IDMap2,Flat"


@pytest.mark.parametrize("factory", ["IVF32,Flat", "HNSW16", "IVF32,SQ8", "IVF32,PQ8", "IVF32,PQ16x4fs"])
def test_tuned_recall_and_persistence(synthetic, factory):
    st, x = synthetic
    st.set_meta(index_type=factory)
    vi = VectorIndex.build(st)
    assert vi.factory == ann.normalise_factory(factory) and vi.ntotal == 3000
    assert vi.params.split("=")[0] == ann.param_name(vi.factory)
    assert vi.recall >= ann.TARGET_RECALL, (vi.params, vi.recall)
    assert (vi.rerank > 1) == ("SQ" in factory or "PQ" in factory)
    vi.save(st)
    again = VectorIndex.load_file(st)
    assert (again.factory, again.params, again.recall, again.tuned_n, again.rerank) == (
        vi.factory,
        vi.params,
        vi.recall,
        3000,
        vi.rerank,
    )
    assert not again.stale_for(st)

    # the engine's answers (re-ranked exactly for compressed codes) match exact search
    eng = Engine(st, again)
    queries = np.load(st.data_dir.tuning_queries)[:30]
    truth = ann.exact_topk(st.iter_vectors(), queries, 10)
    got = np.array([[i for i, _ in eng.rank(q, 10)] for q in queries])
    assert ann.recall_at(got, truth) >= ann.TARGET_RECALL
    # filters keep working with every index type, through the selector path too
    import pixseek.search.engine as em

    old = em.EXACT_SELECTION
    em.EXACT_SELECTION = 10
    try:
        res = eng.search_vector(queries[0], 10, filter=Filter(folder="/pics/a"))
    finally:
        em.EXACT_SELECTION = old
    assert len(res) == 10 and all(r.path.startswith("/pics/a/") for r in res)
    ids_a = np.array(sorted(i for i, r in st.get(st.ids()).items() if r.path.startswith("/pics/a/")))
    got, vecs = st.vectors_for(ids_a)  # the exact top 10 among them, by brute force
    exact_a = got[np.argsort(-(vecs @ queries[0]), kind="stable")[:10]]
    assert len({r.id for r in res} & set(exact_a.tolist())) >= 9


def test_auto_is_flat_for_small_and_rebuilds_when_the_corpus_outgrows_it(synthetic, monkeypatch):
    st, _ = synthetic
    vi = VectorIndex.build(st)
    assert vi.factory == "IDMap2,Flat" and vi.params == "" and not vi.stale_for(st)
    monkeypatch.setattr(ann, "FLAT_MAX", 1000)
    assert vi.stale_for(st)
    big = VectorIndex.build(st)
    assert big.factory == f"IVF{ann.nlist_for(3000)},Flat" and big.recall >= ann.TARGET_RECALL


def test_hnsw_removal_marks_dirty(synthetic):
    st, _ = synthetic
    st.set_meta(index_type="HNSW16")
    vi = VectorIndex.build(st)
    vi.remove([1, 2, 3])
    assert vi.dirty and vi.stale_for(st)


def test_bad_index_type_is_refused_before_work(synthetic, tmp_path, tiny):
    from pixseek.index.indexer import Indexer

    st, _ = synthetic
    with pytest.raises(VectorIndexError, match=r"^invalid --index-type 'IVF,Bogus': "):
        Indexer(st.data_dir, encoder=tiny, index_type="IVF,Bogus").rebuild_vectors()
    st.set_meta(index_type="IVF100000,Flat")
    with pytest.raises(VectorIndexError, match="index type IVF100000,Flat needs at least 100000 vectors to train"):
        VectorIndex.build(st)


def test_rerank_candidates_are_capped_for_large_requests():
    flat = VectorIndex(None, "m", 16, 1, factory="IDMap2,Flat")
    pq = VectorIndex(None, "m", 16, 1, factory="IVF64,PQ8x4fs", rerank_depth=64)
    assert flat.candidates(500) == 500  # exact: no re-rank
    assert pq.candidates(10) == 640 and pq.candidates(300) == 19_200  # k x depth, as tuned
    assert pq.candidates(1_000) == ann.MAX_RERANK_ROWS == 20_000  # capped ...
    assert pq.candidates(100_000) == 200_000  # ... but never under twice the request


def test_recall_ignores_missing_results():
    """A corpus smaller than k: the -1 ("no result") slots are neither hits nor misses."""
    assert ann.recall_at(np.array([[1, 2, -1]]), np.array([[2, 1, -1]]), 3) == 1.0
    assert ann.recall_at(np.array([[1, -1, -1]]), np.array([[2, 1, -1]]), 3) == 0.5
    assert ann.recall_at(np.array([[5, 6]]), np.array([[1, 2]]), 2) == 0.0
