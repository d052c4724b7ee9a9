"""Benchmark: FAISS single-query search time by OpenMP thread count, at the index sizes pixseek sees.

A query from the CLI, the page or the service searches one vector at a time. FAISS runs a search on
all cores by default (OpenMP); on a busy machine a parallel region waits for its slowest thread, so more
threads can be slower. This measures p50 / p95 per query for 1 and 2 threads (interleaved, same
queries) on exact flat indexes (pixseek's type up to 200,000 vectors) and an IVF index (beyond), with
unit vectors of a ViT-B-32 (512-d) and of a ViT-L (768-d), plus a batch of 64 queries (tuning, ground
truth) for contrast. CPU seconds and the load average are reported beside each figure.
Usage: python bench/faiss_threads.py [--queries 200] [--sizes 2000,20000,200000]
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np
from common import dump_json, header, table, write_section


def unit(rng: np.random.Generator, n: int, d: int) -> np.ndarray:
    x = rng.standard_normal((n, d), dtype=np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    return x


def timed_queries(faiss, index, queries: np.ndarray, threads: int, batch: int) -> tuple[list[float], float]:
    """Per-call wall milliseconds and the CPU seconds of all calls, with ``threads`` OpenMP threads."""
    faiss.omp_set_num_threads(threads)
    walls, cpu0 = [], time.process_time()
    for i in range(0, len(queries), batch):
        q = queries[i : i + batch]
        t0 = time.perf_counter()
        index.search(q, 10)
        walls.append((time.perf_counter() - t0) * 1000)
    return walls, time.process_time() - cpu0


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--queries", type=int, default=200)
    ap.add_argument("--sizes", default="2000,20000,200000")
    ap.add_argument("--dims", default="512,768")
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    import faiss

    rng = np.random.default_rng(0)
    rows, raw = [], []
    for d in (int(x) for x in args.dims.split(",")):
        for n in (int(x) for x in args.sizes.split(",")):
            xb = unit(rng, n, d)
            kinds = [("Flat", faiss.IndexFlatIP(d))]
            if n >= 100_000:
                kinds.append(
                    ("IVF1024,Flat nprobe 32", faiss.index_factory(d, "IVF1024,Flat", faiss.METRIC_INNER_PRODUCT))
                )
            for name, index in kinds:
                if not index.is_trained:
                    faiss.omp_set_num_threads(2)
                    index.train(xb[:40_000])
                    faiss.extract_index_ivf(index).nprobe = 32
                index.add(xb)
                queries = unit(rng, args.queries, d)
                for batch in (1, 64):
                    got: dict[int, tuple[list[float], float]] = {1: ([], 0.0), 2: ([], 0.0)}
                    loads = []
                    for _ in range(args.rounds):  # interleaved: 1 thread, 2 threads, 1, 2, ...
                        for threads in (1, 2):
                            walls, cpu = timed_queries(faiss, index, queries, threads, batch)
                            got[threads] = (got[threads][0] + walls, got[threads][1] + cpu)
                            loads.append(os.getloadavg()[0])
                    per_query = {t: np.asarray(w) / batch for t, (w, _) in got.items()}
                    p50 = {t: float(np.percentile(w, 50)) for t, w in per_query.items()}
                    p95 = {t: float(np.percentile(w, 95)) for t, w in per_query.items()}
                    cpu_ms = {t: c * 1000 / (args.rounds * len(queries)) for t, (_, c) in got.items()}
                    load = float(np.mean(loads))
                    rows.append(
                        [
                            f"{n:,} x {d}",
                            name,
                            batch,
                            p50[1],
                            p50[2],
                            p95[1],
                            p95[2],
                            cpu_ms[1],
                            cpu_ms[2],
                            p50[2] / p50[1],
                            load,
                        ]
                    )
                    raw.append(dict(n=n, dim=d, index=name, batch=batch, p50=p50, p95=p95, cpu_ms=cpu_ms, load=load))
                    print(rows[-1], flush=True)
    body = header("FAISS search by OpenMP threads (CPU)")
    body += "\n" + table(
        [
            "vectors",
            "index",
            "queries per call",
            "p50 ms 1 thr",
            "p50 ms 2 thr",
            "p95 ms 1 thr",
            "p95 ms 2 thr",
            "CPU ms 1 thr",
            "CPU ms 2 thr",
            "2 thr / 1 thr (p50)",
            "load avg",
        ],
        rows,
    )
    body += (
        f"\n\nPer query, {args.queries} queries x {args.rounds} rounds, thread counts interleaved; random unit "
        "vectors; k = 10; load avg = the 1-minute load average while it ran (the machine is shared)."
    )
    write_section("faiss-threads", body)
    dump_json("faiss-threads", raw)
    print(body)


if __name__ == "__main__":
    main()
