"""The vector index at 1M-10M synthetic ViT-B-32-sized vectors: what ``auto`` picks, build time, RAM,
file size, recall@10 against exact search and single-query latency, with exact flat search beside it.

    nice -n 15 .venv/bin/python bench/scale.py --n 1000000 [--memory 4e9] [--flat] [--json out.json]

The index is built by pixseek's own code (``VectorIndex.build``: ``ann.choose_factory``, training on
a sample, adding chunk by chunk, tuning nprobe and the re-rank depth on held-out queries against exact
search) over a stand-in for the SQLite store that makes each vector on demand from its row id
(``bench/synthvec.py``): 10M x 512 float32 is 20 GB, more than this machine's disk or RAM may hold.
The time spent making vectors is measured and reported apart (a real build reads them from SQLite
instead: ``bench/scale_sqlite.py`` measures that read rate). ``--memory`` sets the index memory budget
($PIXSEEK_INDEX_MEMORY) that ``auto`` chooses under, e.g. 4e9 for a 16 GB machine.

Latency is the query path of ``search.engine``: the FAISS search for k x re-rank candidates (timed
here), then their exact re-rank from SQLite float32 vectors (timed by ``bench/scale_sqlite.py`` on a
real 1M-row database, since a 10M-row one would not fit on this disk). Recall@10 counts the re-rank
done with the exact float32 vectors, as the engine does.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np
from synthvec import Corpus

from pixseek.store import ann
from pixseek.store.database import Store
from pixseek.store.vectors import VectorIndex


class SyntheticStore:
    """What ``VectorIndex.build`` reads from a :class:`Store`, answered from a :class:`Corpus`; counts
    the seconds spent making vectors so that they can be reported apart from the build."""

    sample_vectors = Store.sample_vectors  # the real sampling code, over the methods below

    def __init__(self, corpus: Corpus, tuning_queries: Path):
        self.corpus, self.dim, self.generation, self.model_id = corpus, corpus.dim, 1, "synthetic"
        self.data_dir = SimpleNamespace(tuning_queries=tuning_queries)
        self.gen_s = 0.0

    def count(self) -> int:
        return self.corpus.n

    def meta(self, key: str, default: str | None = None) -> str | None:
        return default  # no --index-type saved: auto

    def ids(self, limit: int | None = None) -> np.ndarray:
        return np.arange(1, (limit or self.corpus.n) + 1, dtype=np.int64)

    def vectors_for(self, ids) -> tuple[np.ndarray, np.ndarray]:
        t0 = time.perf_counter()
        got = np.fromiter((int(i) for i in ids if 1 <= int(i) <= self.corpus.n), dtype=np.int64)
        vecs = self.corpus.vectors(got)
        self.gen_s += time.perf_counter() - t0
        return got, vecs

    def iter_vectors(self, batch: int = 65536):
        it = self.corpus.chunks(batch)
        while True:
            t0 = time.perf_counter()
            chunk = next(it, None)
            self.gen_s += time.perf_counter() - t0
            if chunk is None:
                return
            yield chunk


def cpu_s() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def peak_rss_gb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20


def rss_gb() -> float:
    return int(Path("/proc/self/statm").read_text().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**30


class Phases:
    """Wall/CPU seconds of the build's phases, by wrapping the ann functions ``VectorIndex.build`` calls."""

    def __init__(self, store: SyntheticStore):
        self.store, self.times = store, {}
        for name in ("train_index", "tune_for"):
            setattr(ann, name, self._timed(name, getattr(ann, name)))

    def _timed(self, name, fn):
        def wrapper(*a, **kw):
            t0, c0, g0 = time.perf_counter(), cpu_s(), self.store.gen_s
            try:
                return fn(*a, **kw)
            finally:
                gen = self.store.gen_s - g0
                self.times[name] = (time.perf_counter() - t0 - gen, cpu_s() - c0, gen)
                print(f"  {name}: {self.times[name][0]:.0f} s (+{gen:.0f} s making vectors)", flush=True)

        return wrapper


def percentiles(ms: list[float]) -> tuple[float, float]:
    return float(np.percentile(ms, 50)), float(np.percentile(ms, 95))


def single_query_ms(search, queries: np.ndarray, repeat: int = 1) -> list[float]:
    out = []
    for _ in range(repeat):
        for q in queries:
            t0 = time.perf_counter()
            search(q[None, :])
            out.append((time.perf_counter() - t0) * 1000)
    return out


def engine_topk(vi: VectorIndex, store: SyntheticStore, queries: np.ndarray, k: int = 10) -> np.ndarray:
    """Top-k ids as ``search.engine`` ranks them: ``vi.candidates(k)`` candidates, re-scored exactly."""
    _, cand = vi.search(queries, vi.candidates(k))
    if vi.rerank == 1:
        return cand[:, :k]
    return vi._rerank_fn(store)(queries, cand, k)


def evaluate(vi: VectorIndex, store: SyntheticStore, sets: dict[str, np.ndarray]) -> dict:
    import faiss

    out: dict = {"threads": faiss.omp_get_max_threads()}
    truth = {name: ann.exact_topk(store.iter_vectors(), q, 10) for name, q in sets.items()}
    for name, q in sets.items():
        _, codes_only = vi.search(q, 10)
        out[f"recall_{name}"] = ann.recall_at(engine_topk(vi, store, q), truth[name])
        out[f"recall_{name}_no_rerank"] = ann.recall_at(codes_only, truth[name])
    both = np.concatenate(list(sets.values()))
    k = vi.candidates(10)
    ms = single_query_ms(lambda q: vi.search(q, k), both[:50])  # warm-up
    ms = single_query_ms(lambda q: vi.search(q, k), both, repeat=2)
    out["ann_ms_p50"], out["ann_ms_p95"] = percentiles(ms)
    return out


def flat_baseline(corpus: Corpus, queries: np.ndarray, rows: int) -> dict:
    """Exact flat inner-product search over the first ``rows`` vectors, in RAM: single-query latency."""
    import faiss

    index = faiss.IndexFlatIP(corpus.dim)
    for _, vecs in corpus.chunks(stop=rows + 1):
        index.add(vecs)
    single_query_ms(lambda q: index.search(q, 10), queries[:10])
    ms = single_query_ms(lambda q: index.search(q, 10), queries[:100])
    p50, p95 = percentiles(ms)
    return {"flat_rows": rows, "flat_ms_p50": p50, "flat_ms_p95": p95}


def run(n: int, flat_rows: int, seed: int = 0) -> dict:
    import faiss

    corpus = Corpus(n=n, seed=seed)
    load0 = os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="pixseek-scale-") as tmp:
        tq = Path(tmp) / "tuning-queries.npy"
        np.save(tq, corpus.text_queries(100, salt=1))  # stands for the model's vectors of prompts.txt
        store = SyntheticStore(corpus, tq)
        phases = Phases(store)
        print(f"building auto over {n:,} vectors: {ann.choose_factory(n, corpus.dim)}", flush=True)
        t0, c0 = time.perf_counter(), cpu_s()
        vi = VectorIndex.build(store)  # type: ignore[arg-type]  # duck-typed store
        wall, cpu, gen = time.perf_counter() - t0, cpu_s() - c0, store.gen_s
        res = {
            "n": n,
            "factory": vi.factory,
            "params": vi.params,
            "rerank": vi.rerank,
            "tuned_recall": vi.recall,
            "build_wall_s": wall - gen,
            "build_cpu_s": cpu,
            "making_vectors_s": gen,
            "phases": phases.times,
            "rss_after_build_gb": rss_gb(),
            "peak_rss_build_gb": peak_rss_gb(),
            "memory_budget": ann.memory_budget(),
        }
        print(json.dumps(res), flush=True)
        path = Path(tmp) / "index.faiss"
        faiss.write_index(vi.index, str(path))
        res["file_bytes"] = path.stat().st_size
        path.unlink()
        sets = {"image": corpus.image_queries(100), "text": corpus.text_queries(100)}
        res.update(evaluate(vi, store, sets))
        del vi
        if flat_rows:
            res.update(flat_baseline(corpus, np.concatenate(list(sets.values())), min(n, flat_rows)))
    res["peak_rss_gb"], res["loadavg_start"], res["loadavg_end"] = peak_rss_gb(), load0, os.getloadavg()
    return res


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--n", type=int, default=1_000_000)
    p.add_argument("--memory", type=float, help="index memory budget in bytes ($PIXSEEK_INDEX_MEMORY)")
    p.add_argument("--flat", type=int, default=0, help="also time exact flat search over this many rows")
    p.add_argument("--json", type=Path, help="write the figures here")
    a = p.parse_args()
    if a.memory:
        os.environ["PIXSEEK_INDEX_MEMORY"] = str(int(a.memory))
    res = run(a.n, a.flat)
    print(json.dumps(res, indent=1))
    if a.json:
        a.json.write_text(json.dumps(res, indent=1))


if __name__ == "__main__":
    main()
