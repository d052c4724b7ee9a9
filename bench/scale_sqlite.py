"""The SQLite side of a large index: bytes per image and insert rate through pixseek's writer as the
database grows, the read rates a rebuild and a re-rank need, and whether float16 vectors would keep
the exact re-rank exact enough.

    nice -n 15 .venv/bin/python bench/scale_sqlite.py --rows 1000000 --step 100000 [--json out.json]

Rows go in as an index run writes them (``index/indexer.py``): per file the duplicate check
(``ids_by_hash``), ``insert_image`` with a 512-d float32 vector (ViT-B-32) and an EXIF row
(``set_photo``), one ``store.batch()`` transaction per 64 files (the indexer's batch when this was measured;
32 on CPU since), so the rate is the writer's ceiling with the model taken out. Paths look like a photo
archive (``/photos/<year>/<album>/IMG_<n>.jpg``); vectors come from ``bench/synthvec.py`` (made before each
step, not timed).

float16: the engine re-ranks k x re-rank candidates with their float32 vectors from SQLite. Here the
same candidates (the exact top 40 and top 160 of each query) are re-scored with vectors rounded to
float16, and the top 10 compared with the float32 one: recall@10, queries whose top 10 has the same
order, and the largest score error; on the synthetic set and on real image vectors when given.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import resource
import tempfile
import time
from pathlib import Path

import numpy as np
from synthvec import Corpus

from pixseek.exif import PhotoMeta
from pixseek.store import DataDir, Store, ann
from pixseek.store.rows import vec_to_blob

BATCH = 64  # files per transaction: a model batch as the indexer committed them when measured (CPU runs now commit 32)


def cpu_s() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def db_bytes(dd: DataDir) -> int:
    return sum(p.stat().st_size for p in dd.root.iterdir() if p.name.startswith(dd.db.name))


def insert_rows(store: Store, lo: int, hi: int, vectors: np.ndarray) -> None:
    photo = PhotoMeta(make="Canon", model="EOS 5D Mark IV")
    for start in range(lo, hi, BATCH):
        with store.batch() as b:
            for i in range(start, min(start + BATCH, hi)):
                digest = hashlib.sha256(i.to_bytes(8, "little")).hexdigest()
                store.ids_by_hash(digest)
                rid = store.insert_image(
                    path=f"/photos/{2000 + i % 25}/album-{i // 400:05d}/IMG_{i:08d}.jpg",
                    root="/photos",
                    size=2_000_000 + i % 1_000_000,
                    mtime_ns=1_700_000_000_000_000_000 + i,
                    digest=digest,
                    width=4000,
                    height=3000,
                    fmt="JPEG",
                    model_id="synthetic",
                    blob=vec_to_blob(vectors[i - lo]),
                    taken_at=1.6e9 + i,
                    dev=2049,
                    inode=1_000_000 + i,
                    phash=digest[:16],
                )
                store.set_photo(rid, photo, None)
            b.changed = True


def grow(store: Store, corpus: Corpus, rows: int, step: int) -> list[dict]:
    out = []
    for lo in range(1, rows + 1, step):
        hi = min(lo + step, rows + 1)
        vectors = corpus.vectors(np.arange(lo, hi))
        t0, c0 = time.perf_counter(), cpu_s()
        insert_rows(store, lo, hi, vectors)
        wall, cpu = time.perf_counter() - t0, cpu_s() - c0
        store.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        size = db_bytes(store.data_dir)
        row = {
            "rows": hi - 1,
            "rows_per_s": (hi - lo) / wall,
            "rows_per_cpu_s": (hi - lo) / cpu,
            "bytes": size,
            "bytes_per_row": size / (hi - 1),
            "load": os.getloadavg()[0],
        }
        print(json.dumps(row), flush=True)
        out.append(row)
    return out


def reads(store: Store, corpus: Corpus) -> dict:
    """A rebuild's full read (iter_vectors) and the engine's re-rank read (vectors_for + scoring) of
    random rows, with the database in the OS page cache (warm) and evicted from it (cold: a database
    larger than RAM, as at 10M rows)."""
    t0, c0, n = time.perf_counter(), cpu_s(), 0
    for ids, _ in store.iter_vectors():
        n += len(ids)
    res = {"iter_rows_per_s": n / (time.perf_counter() - t0), "iter_rows_per_cpu_s": n / (cpu_s() - c0)}
    rng = np.random.default_rng(1)
    q = corpus.image_queries(1)[0]
    ms: dict[tuple[str, int], list[float]] = {}
    with open(store.data_dir.db, "rb") as f:
        # warm first (the scan above left the file in the page cache), then cold: an eviction empties the
        # cache for every later query too. Depths take turns in each (a shared machine drifts).
        for cache in ("warm", "cold"):
            for _ in range(100):
                for depth in (40, 160, 320):
                    ids = rng.integers(1, n + 1, depth)
                    if cache == "cold":  # this file's pages leave the OS page cache (no one else's)
                        os.posix_fadvise(f.fileno(), 0, 0, os.POSIX_FADV_DONTNEED)
                    t = time.perf_counter()
                    got, vecs = store.vectors_for(ids)
                    np.argsort(-(vecs @ q), kind="stable")[:10]
                    ms.setdefault((cache, depth), []).append((time.perf_counter() - t) * 1000)
    for (cache, depth), v in ms.items():
        res[f"rerank_{cache}_{depth}_ms_p50"] = float(np.percentile(v, 50))
        res[f"rerank_{cache}_{depth}_ms_p95"] = float(np.percentile(v, 95))
    t0 = time.perf_counter()
    with store.batch():
        store.sync_keywords()
    res["keywords_sync_s"] = time.perf_counter() - t0
    store.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    res["bytes_with_keywords"] = db_bytes(store.data_dir)
    return res


def float16_agreement(queries: np.ndarray, cand: np.ndarray) -> dict:
    """Re-rank the candidates ``cand[q]`` (float32[c, dim] each) with float32 and float16 vectors."""
    hits = same = 0
    err = 0.0
    for q, vecs in zip(queries, cand):
        s32 = vecs @ q
        s16 = vecs.astype(np.float16).astype(np.float32) @ q
        t32, t16 = np.argsort(-s32, kind="stable")[:10], np.argsort(-s16, kind="stable")[:10]
        hits += len(set(t32) & set(t16))
        same += bool(np.array_equal(t32, t16))
        err = max(err, float(np.max(np.abs(s32 - s16))))
    return {"recall10": hits / (10 * len(queries)), "same_order": same / len(queries), "max_score_err": err}


def float16_synthetic(corpus: Corpus, rows: int) -> dict:
    queries = np.concatenate([corpus.image_queries(100), corpus.text_queries(100)])
    top = ann.exact_topk(corpus.chunks(stop=rows + 1), queries, 160)
    res = {}
    for depth in (40, 160):
        cand = [corpus.vectors(t[:depth]) for t in top]
        res[f"top{depth}"] = float16_agreement(queries, cand)
    return res


def float16_real(paths: list[Path]) -> dict:
    """Each real vector as a query against the others (its own row left out), top-40/160 candidates."""
    x = np.concatenate([np.load(p).astype(np.float32) for p in paths])
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    scores = x @ x.T
    np.fill_diagonal(scores, -np.inf)
    res = {"vectors": len(x), "dim": x.shape[1]}
    for depth in (40, 160):
        order = np.argsort(-scores, axis=1)[:, :depth]
        res[f"top{depth}"] = float16_agreement(x, [x[o] for o in order])
    return res


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--rows", type=int, default=1_000_000)
    p.add_argument("--step", type=int, default=100_000)
    p.add_argument("--real", type=Path, nargs="*", default=[], help=".npy files of real image vectors")
    p.add_argument("--dir", type=Path, help="where the database goes (default: a temp dir, deleted)")
    p.add_argument("--json", type=Path)
    a = p.parse_args()
    corpus = Corpus(n=a.rows)
    res: dict = {"loadavg_start": os.getloadavg()}
    res["float16_synthetic"] = float16_synthetic(corpus, min(a.rows, 1_000_000))
    print(json.dumps(res["float16_synthetic"]), flush=True)
    if a.real:
        res["float16_real"] = float16_real(a.real)
        print(json.dumps(res["float16_real"]), flush=True)
    with tempfile.TemporaryDirectory(prefix="pixseek-sqlite-", dir=a.dir) as tmp:
        dd = DataDir.resolve(tmp)
        with Store.open(dd, create=True) as store:
            store.check_model("synthetic", "synthetic", corpus.dim, adopt=True)
            res["growth"] = grow(store, corpus, a.rows, a.step)
            res.update(reads(store, corpus))
    res["loadavg_end"] = os.getloadavg()
    res["peak_rss_gb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
    print(json.dumps(res, indent=1))
    if a.json:
        a.json.write_text(json.dumps(res, indent=1))


if __name__ == "__main__":
    main()
