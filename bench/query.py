"""Benchmark 2: text-query latency (encode / search / metadata), recall@10 and memory per index type.

Builds real pixseek data dirs (SQLite rows + FAISS) of synthetic vectors with the bundled model's
dimension: a mixture of 2,000 clusters on the unit sphere. Text queries are drawn from the same
clusters shifted by a fixed "modality gap" vector (CLIP text vectors sit apart from image vectors,
which is what makes coarse indexes fail text queries); 200 of them tune the index (the indexer's
held-out prompts), another 200 are measured here. Encoding uses the bundled model's ONNX text encoder
on real prompts. Each index type is built by `VectorIndex.build` (tuned to recall@10 >= 0.95).
Usage: python bench/query.py [--sizes 100000,1000000] [--types Flat,IVF,IVF-SQ8,IVF-PQ,HNSW32]
"""

from __future__ import annotations

import argparse
import time

import numpy as np
from common import CACHE, dump_json, header, table, write_section

DIM = 256


def synthetic(n: int, seed: int, centers: np.ndarray, spread: float | None = None, shift=None) -> np.ndarray:
    rng = np.random.default_rng(seed)
    spread = SPREAD if spread is None else spread
    x = (
        centers[rng.integers(0, len(centers), n)]
        + spread * rng.standard_normal((n, DIM)).astype(np.float32) / np.sqrt(DIM) * 4
    )
    if shift is not None:
        x = x + shift
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


SPREAD = 1.0


def _count(root) -> int:
    from pixseek.store import Store

    with Store.open(root) as st:
        return st.count()


def make_db(n: int, model_id: str):
    from pixseek.store.database import Store
    from pixseek.store.paths import TUNING_QUERIES_FILE

    root = CACHE / "query" / (f"n{n}" if SPREAD == 1.0 else f"n{n}-s{SPREAD}")
    rng = np.random.default_rng(1)
    centers = rng.standard_normal((2000, DIM)).astype(np.float32) / np.sqrt(DIM) * 4
    gap = rng.standard_normal(DIM).astype(np.float32) / np.sqrt(DIM) * 3
    if not (root / "pixseek.db").exists() or _count(root) != n:
        import shutil

        shutil.rmtree(root, ignore_errors=True)
        st = Store.open(root, create=True)
        st.set_meta(model_id=model_id, model_spec="pixseek-emoji", dim=str(DIM))
        t0 = time.perf_counter()
        step = 50_000
        for start in range(0, n, step):
            x = synthetic(min(step, n - start), 100 + start, centers)
            rows = [
                (
                    f"/synthetic/{(start + i) // 1000:04d}/{start + i:07d}.jpg",
                    "/synthetic",
                    100_000 + i,
                    i,
                    f"{start + i:032x}",
                    1024,
                    768,
                    "JPEG",
                    model_id,
                    v.tobytes(),
                    0.0,
                    0.0,
                )
                for i, v in enumerate(x)
            ]
            with st.batch() as b:
                st.conn.executemany(
                    "INSERT INTO images(path, root, size, mtime_ns, hash, width, height, format, model_id,"
                    " vector, added_at, updated_at) VALUES(?,?,?,?,?,?,?,?,?,?,?,?)",
                    rows,
                )
                b.changed = True
        print(f"made {n:,} rows in {time.perf_counter() - t0:.0f} s", flush=True)
        np.save(root / TUNING_QUERIES_FILE, synthetic(200, 7, centers, shift=gap))
        st.close()
    return root, synthetic(200, 8, centers, shift=gap)


def pct(xs, p):
    return float(np.percentile(np.asarray(xs) * 1000, p))


def factory_for(kind: str, n: int) -> str:
    from pixseek.store.ann import nlist_for

    nl = nlist_for(n)
    return {
        "Flat": "Flat",
        "IVF": f"IVF{nl},Flat",
        "IVF-SQ8": f"IVF{nl},SQ8",
        "IVF-PQ": f"IVF{nl},PQ64x4fs",
        "HNSW32": "HNSW32",
    }[kind]


def bench_size(n: int, kinds: list[str], enc, model_id: str, prompts: list[str]) -> list[dict]:
    from pixseek.search.engine import Engine
    from pixseek.store import ann
    from pixseek.store.database import Store
    from pixseek.store.vectors import VectorIndex

    root, queries = make_db(n, model_id)
    st = Store.open(root)
    truth = ann.exact_topk(st.iter_vectors(), queries, 10)
    out = []
    flat_p50 = None
    for kind in kinds:
        factory = factory_for(kind, n)
        st.set_meta(index_type=factory)
        t0 = time.perf_counter()
        vi = VectorIndex.build(st)
        build_s = time.perf_counter() - t0
        vi.save(st)
        mem = st.data_dir.faiss.stat().st_size
        eng = Engine(st, vi, encoder=enc)
        enc_t, search_t, meta_t, e2e_t, found = [], [], [], [], []
        for i, q in enumerate(queries):
            p = prompts[i % len(prompts)]
            t0 = time.perf_counter()
            enc.encode_texts([p])
            t1 = time.perf_counter()
            pairs = eng.rank(q, 10)
            t2 = time.perf_counter()
            eng.results(pairs)
            t3 = time.perf_counter()
            eng.text(p, 10)
            t4 = time.perf_counter()
            enc_t.append(t1 - t0), search_t.append(t2 - t1), meta_t.append(t3 - t2), e2e_t.append(t4 - t3)
            found.append([i for i, _ in pairs] + [-1] * (10 - len(pairs)))
        recall = ann.recall_at(np.array(found), truth, 10)
        s50 = pct(search_t, 50)
        if kind == "Flat":
            flat_p50 = s50
        r = dict(
            n=n,
            kind=kind,
            factory=vi.factory,
            params=vi.params or "-",
            rerank=vi.rerank,
            tuned_recall=vi.recall,
            recall=recall,
            build_s=build_s,
            index_mb=mem / 2**20,
            encode_p50=pct(enc_t, 50),
            encode_p95=pct(enc_t, 95),
            search_p50=s50,
            search_p95=pct(search_t, 95),
            meta_p50=pct(meta_t, 50),
            meta_p95=pct(meta_t, 95),
            e2e_p50=pct(e2e_t, 50),
            e2e_p95=pct(e2e_t, 95),
        )
        r["speedup_vs_flat"] = (flat_p50 / s50) if flat_p50 else None
        r["e2e_over_parts"] = r["e2e_p50"] / (r["encode_p50"] + r["search_p50"])
        out.append(r)
        print({k: (round(v, 3) if isinstance(v, float) else v) for k, v in r.items()}, flush=True)
    st.set_meta(index_type="auto")
    st.close()
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", default="100000,1000000")
    ap.add_argument("--types", default="Flat,IVF,IVF-SQ8,IVF-PQ,HNSW32")
    ap.add_argument(
        "--hnsw-max", type=int, default=200_000, help="skip HNSW above this size (slow to build on few cores)"
    )
    ap.add_argument(
        "--spread",
        type=float,
        default=1.0,
        help="within-cluster spread of the synthetic vectors (higher = harder for IVF)",
    )
    ap.add_argument("--section", default=None)
    args = ap.parse_args()
    global SPREAD
    SPREAD = args.spread

    import faiss

    model_id, enc = ensure_encoder()
    from pixseek.store import ann

    prompts = ann.prompts()
    rows = []
    for n in (int(x) for x in args.sizes.split(",")):
        kinds = [k for k in args.types.split(",") if not (k.startswith("HNSW") and n > args.hnsw_max)]
        rows += bench_size(n, kinds, enc, model_id, prompts)
    gpu = faiss.get_num_gpus() > 0
    head = [
        "vectors",
        "index",
        "params",
        "re-rank",
        "recall@10",
        "build s",
        "index MiB",
        "encode p50/p95 ms",
        "search p50/p95 ms",
        "metadata p50/p95 ms",
        "end-to-end p50/p95 ms",
        "search speed-up vs flat",
        "e2e / (encode+search)",
    ]
    trows = [
        [
            f"{r['n']:,}",
            r["factory"],
            r["params"],
            r["rerank"],
            r["recall"],
            r["build_s"],
            r["index_mb"],
            f"{r['encode_p50']:.2f} / {r['encode_p95']:.2f}",
            f"{r['search_p50']:.3f} / {r['search_p95']:.3f}",
            f"{r['meta_p50']:.3f} / {r['meta_p95']:.3f}",
            f"{r['e2e_p50']:.2f} / {r['e2e_p95']:.2f}",
            f"{r['speedup_vs_flat']:.1f}x" if r["speedup_vs_flat"] else "-",
            f"{r['e2e_over_parts']:.2f}",
        ]
        for r in rows
    ]
    body = (
        header(f"Query latency by index type ({'GPU' if gpu else 'CPU'}), synthetic spread {SPREAD}")
        + "\n"
        + table(head, trows)
        + "\n\n"
        + NOTE
    )
    write_section(
        args.section or f"query-{'gpu' if gpu else 'cpu'}" + ("" if SPREAD == 1.0 else f"-spread{SPREAD}"), body
    )
    dump_json(f"query-{'gpu' if gpu else 'cpu'}", rows)
    print("\n" + body)


def ensure_encoder():
    """(model id, query encoder): the bundled model's ONNX export (made once), else its torch model:
    what `pixseek search` uses."""
    from pixseek.models import export_for_cpu, for_queries, load_torch

    emb = load_torch("pixseek-emoji", "cpu")
    export_for_cpu(emb)
    enc = for_queries(emb.model_id, "pixseek-emoji", "cpu")
    if enc.runtime != "onnx":
        print("no ONNX export; encoding text with torch", flush=True)
    return emb.model_id, enc


NOTE = (
    "One query at a time, k = 10, 200 held-out synthetic text-query vectors (a modality gap from the "
    "image vectors). encode = the bundled model's ONNX text encoder on a real prompt; search = "
    "FAISS plus exact re-ranking from SQLite for compressed codes; metadata = the SQLite rows of the "
    "results; end-to-end = `Engine.text()` (encode + search + metadata). recall@10 is against exact "
    "search on the measured queries (the index was tuned on other ones). index MiB = the FAISS file."
)

if __name__ == "__main__":
    main()
