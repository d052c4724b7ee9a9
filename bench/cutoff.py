"""Benchmark: precision and recall of what the relevance cut-off keeps, against no cut-off and the
fixed "good" score, on labelled query sets (bench/cutoff_sets.py: Tux Paint photos, emoji, Openclipart).

Each corpus is indexed whole with a bundled model (cached in data/bench/cutoff/), every query is
encoded as the engine encodes it (texts, a stored picture as "more like this", or both half and
half) and ranked exactly over the whole index. Three rules decide what a query keeps:

* **no cut-off**: the first 20 results (``pixseek search``'s default ``-k``);
* **good**: results at or above the index's calibrated "good" score (:mod:`pixseek.search.calibrate`),
  the fixed minimum score the page labels with;
* **cut-off**: ``cutoff="auto"`` (:mod:`pixseek.search.cutoff`), with its two constants.

The constants (floor quantile, z) are chosen on the **val** split only: the pair with the best mean
per-query F1 over all corpora and models (a gibberish query scores 1 when it keeps nothing, else 0)
among those whose gibberish queries keep at most 0.5 results on average. The figures are the
**test** split's. Precision = share of all kept results that are relevant; recall = mean per query
of the share of its relevant pictures kept; F1 = mean per query.

Usage: python bench/cutoff.py [--data /tmp/data] [--pairs tuxpaint:pixseek-photo,...] [--no-write]
"""

from __future__ import annotations

import argparse
import itertools
import os
import time
from dataclasses import dataclass
from pathlib import Path

import cutoff_sets
import numpy as np
from common import CACHE, header, table, write_section

PAIRS = [
    ("tuxpaint", "pixseek-photo"),
    ("emoji", "pixseek-emoji"),
    ("emoji", "pixseek-photo"),
    ("openclipart", "pixseek-photo"),
    ("openclipart", "pixseek-emoji"),
    ("tuxpaint", "pixseek-emoji"),
]
TOP_K = 20
FLOOR_GRID = (0.05, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5)
Z_GRID = (2.5, 3.0, 3.5, 4.0, 4.5, 5.0)
MAX_GIBBERISH = 0.5  # mean results kept per gibberish query, on val


@dataclass
class Scored:
    """One query's exact ranking (best first) with relevance marks, and what the rules read."""

    kind: str
    split: str
    scores: np.ndarray
    relevant: np.ndarray  # bool, aligned with scores
    n_relevant: int
    good: float  # the calibrated "good" score for the query's kind
    median: float
    spread: float
    bests: np.ndarray  # the background queries' best scores for the query's recipe
    auto: float | None  # the engine's threshold with its default rule

    @property
    def gibberish(self) -> bool:
        return self.kind == "gibberish"


def build(ds: str, model: str, data: Path) -> Path:
    from pixseek.index.indexer import Indexer

    db = CACHE / "cutoff" / f"{ds}-{model}"
    s = Indexer(db, model=model, batch_size=64).run([data / ds])
    print(f"  {ds} / {model}: {s.total} pictures ({s.added} new, {s.failed} failed)", flush=True)
    return db


def score(ds: str, model: str, data: Path) -> tuple[list[Scored], dict]:
    """Every query of the corpus ranked, and the costs of the cut-off on this index."""
    from pixseek.search import Engine, Term
    from pixseek.search.cutoff import captions

    root = data / ds
    queries = cutoff_sets.SETS[ds](root)
    with Engine.open(build(ds, model, data)) as eng:
        ids, vecs = eng.store.vectors_for(eng.store.ids())
        rows = eng.store.get(ids.tolist())
        where = {os.path.relpath(rows[i].path, root): j for j, i in enumerate(ids.tolist())}
        scale = eng.score_scale()
        t0 = time.perf_counter()
        eng.encoder.encode_texts(captions())
        costs = {"pictures": len(ids), "captions_s": time.perf_counter() - t0}
        t0 = time.perf_counter()
        bg = eng.background()
        costs["sample_ms"] = 1000 * (time.perf_counter() - t0)
        out, per_query, seen = [], [], set()
        for q in queries:
            terms = []
            if q.image:
                terms.append(Term("vector", vecs[where[q.image]], 0.5 if q.text else 1.0))
            if q.text:
                terms.append(Term("text", q.text, 0.5 if q.image else 1.0))
            v = eng.encode_terms(terms)
            recipe = eng.recipe(v)
            t0 = time.perf_counter()
            first = recipe not in seen
            seen.add(recipe)
            cut = eng.cutoff(v)
            (costs.setdefault("recipe_ms", []) if first else per_query).append(1000 * (time.perf_counter() - t0))
            s = vecs @ v
            rel = np.zeros(len(s), bool)
            rel[[where[p] for p in q.relevant]] = True
            if q.image:
                s[where[q.image]] = -np.inf
            order = np.argsort(-s, kind="stable")[: len(s) - (1 if q.image else 0)]
            kind = "image" if q.image else "text"
            out.append(
                Scored(
                    q.kind,
                    q.split,
                    s[order],
                    rel[order],
                    int(rel.sum()),
                    scale.thresholds(kind)[0],
                    cut.median or 0.0,
                    cut.spread or 0.0,
                    bg.bests(recipe),
                    cut.threshold,
                )
            )
        costs["query_ms"] = float(np.median(per_query))
        costs["recipe_ms"] = float(np.median(costs["recipe_ms"]))
    return out, costs


def kept(s: Scored, threshold: float | None) -> int:
    """How many results a threshold keeps (None: the first TOP_K)."""
    if threshold is None:
        return min(TOP_K, len(s.scores))
    return int(np.searchsorted(-s.scores, -threshold, side="right"))


def measure(queries: list[Scored], rule) -> dict:
    """Precision, recall, mean F1 and emptiness of what ``rule(query) -> threshold`` keeps."""
    n_kept = n_hit = 0
    recall, f1, empty, gib_kept, gib_empty, n_gib = [], [], 0, 0, 0, 0
    for s in queries:
        n = kept(s, rule(s))
        if s.gibberish:
            n_gib += 1
            gib_kept += n
            gib_empty += n == 0
            continue
        hit = int(s.relevant[:n].sum())
        n_kept, n_hit = n_kept + n, n_hit + hit
        recall.append(hit / s.n_relevant)
        f1.append(2 * hit / (n + s.n_relevant))
        empty += n == 0
    nq = len(recall)
    return {
        "queries": nq,
        "kept": n_kept / max(nq, 1),
        "precision": n_hit / max(n_kept, 1),
        "recall": float(np.mean(recall)) if recall else 0.0,
        "f1": float(np.mean(f1)) if f1 else 0.0,
        "empty": empty / max(nq, 1),
        "gib_kept": gib_kept / max(n_gib, 1),
        "gib_empty": gib_empty / max(n_gib, 1),
        "objective": (sum(f1) + gib_empty) / max(nq + n_gib, 1),
    }


def rule_of(floor_q: float, z: float):
    def rule(s: Scored) -> float:
        return max(float(np.quantile(s.bests.astype(np.float64), floor_q)), s.median + z * s.spread)

    return rule


RULES = {"no cut-off (top 20)": lambda s: None, "good score": lambda s: s.good, "cut-off": lambda s: s.auto}


def choose(val: dict[tuple[str, str], list[Scored]]) -> tuple[list[list], tuple[float, float]]:
    rows = []
    for fq, z in itertools.product(FLOOR_GRID, Z_GRID):
        ms = [measure(qs, rule_of(fq, z)) for qs in val.values()]
        obj, gib = float(np.mean([m["objective"] for m in ms])), float(np.mean([m["gib_kept"] for m in ms]))
        rows.append(
            [fq, z, obj, gib, float(np.mean([m["precision"] for m in ms])), float(np.mean([m["recall"] for m in ms]))]
        )
    ok = [r for r in rows if r[3] <= MAX_GIBBERISH] or rows
    best = max(ok, key=lambda r: r[2])
    return sorted(rows, key=lambda r: -r[2]), (best[0], best[1])


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", default="/tmp/data", type=Path)
    ap.add_argument("--pairs", default=",".join(f"{d}:{m}" for d, m in PAIRS))
    ap.add_argument("--no-write", action="store_true")
    args = ap.parse_args()
    from pixseek.search.cutoff import DEFAULT_RULE

    pairs = [tuple(p.split(":")) for p in args.pairs.split(",")]
    scored, costs = {}, {}
    for ds, model in pairs:
        scored[(ds, model)], costs[(ds, model)] = score(ds, model, args.data)
    val = {k: [s for s in qs if s.split == "val"] for k, qs in scored.items()}
    test = {k: [s for s in qs if s.split == "test"] for k, qs in scored.items()}
    grid, chosen = choose(val)
    print(table(["floor quantile", "z", "val objective", "gibberish kept", "precision", "recall"], grid[:10]))
    print(f"chosen on val: floor quantile {chosen[0]}, z {chosen[1]}; in the code: {DEFAULT_RULE}")
    body = [header("Relevance cut-off: what it keeps (test split)")]
    body.append(summary_table(test))
    body.append(kind_table(test))
    body.append(cost_table(costs))
    body.append(notes(scored, grid, chosen, DEFAULT_RULE))
    text = "\n\n".join(body)
    print(text)
    if not args.no_write:
        write_section("cutoff", text)


def summary_table(test: dict) -> str:
    rows = []
    for (ds, model), qs in test.items():
        for name, rule in RULES.items():
            m = measure(qs, rule)
            rows.append(
                [
                    ds,
                    model,
                    m["queries"],
                    name,
                    m["kept"],
                    m["precision"],
                    m["recall"],
                    m["f1"],
                    m["empty"],
                    m["gib_kept"],
                    m["gib_empty"],
                ]
            )
    head = [
        "set",
        "model",
        "queries",
        "rule",
        "kept / query",
        "precision",
        "recall",
        "F1",
        "share keeping nothing",
        "gibberish: kept / query",
        "gibberish keeping nothing",
    ]
    return table(head, rows)


def kind_table(test: dict) -> str:
    rows = []
    kinds = sorted({s.kind for qs in test.values() for s in qs if not s.gibberish})
    for kind in kinds:
        for name, rule in RULES.items():
            ms = [measure([s for s in qs if s.kind == kind], rule) for qs in test.values()]
            ms = [m for m in ms if m["queries"]]
            avg = {k: float(np.mean([m[k] for m in ms])) for k in ("kept", "precision", "recall", "f1", "empty")}
            n = sum(m["queries"] for m in ms)
            rows.append([kind, len(ms), n, name, avg["kept"], avg["precision"], avg["recall"], avg["f1"], avg["empty"]])
    head = [
        "query kind",
        "set × model pairs",
        "queries",
        "rule",
        "kept / query",
        "precision",
        "recall",
        "F1",
        "share keeping nothing",
    ]
    return "By kind of query (test split, mean over the set × model pairs that have the kind):\n\n" + table(head, rows)


def cost_table(costs: dict) -> str:
    rows = [
        [ds, model, c["pictures"], c["captions_s"], c["sample_ms"], c["recipe_ms"], c["query_ms"]]
        for (ds, model), c in costs.items()
    ]
    head = [
        "set",
        "model",
        "pictures",
        "encode the 256 captions s (once per model)",
        "sample ms (once per index generation)",
        "background per recipe ms (once)",
        "cut-off per query ms (median)",
    ]
    return "Cost (the sample holds up to 4,000 pictures, so these do not grow with the index):\n\n" + table(head, rows)


def notes(scored: dict, grid: list, chosen: tuple, rule) -> str:
    sizes = {k: (sum(s.split == "val" for s in qs), sum(s.split == "test" for s in qs)) for k, qs in scored.items()}
    ok = [r for r in grid if r[3] <= MAX_GIBBERISH]
    lines = [
        "Constants chosen on the val split (best mean per-query F1 among those whose gibberish queries keep "
        f"<= {MAX_GIBBERISH} results on average): floor quantile {chosen[0]}, z {chosen[1]} (in the code: "
        f"{rule.floor_quantile}, {rule.z_min}). Next best on val: "
        + "; ".join(f"({r[0]}, {r[1]}) {r[2]:.3f}" for r in ok[1:4])
        + f". Without the gibberish bound the best would be ({grid[0][0]}, {grid[0][1]}): {grid[0][2]:.3f}, "
        f"but its gibberish queries keep {grid[0][3]:.1f} results each.",
        "Queries per pair (val / test): " + ", ".join(f"{d}/{m} {v}/{t}" for (d, m), (v, t) in sizes.items()) + ".",
        "Sets (bench/cutoff_sets.py): Tux Paint stamps (photos; val/test split by folder as train/photosets.py "
        "defines it), Twemoji + Noto emoji, Openclipart 0.18, all fetched by `pixseek datasets fetch`; relevant = "
        "same folder, description, emoji or keyword. The machine ran other jobs meanwhile: times are upper bounds.",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
