"""The hybrid fusion policy (issue 15): chosen on validation data only, then reported on the test sets.

search/hybrid.py fuses the vector ranking and the keyword ranking by reciprocal rank fusion. Three choices
make its policy, and this bench sweeps a small grid of them:

* the keyword ranking's weight against the vector's 1: KEYWORD_WEIGHTS;
* where equal sums go: to the better meaning, or to the better keyword rank (TIES);
* what a picture counts in the keyword ranking when the query's words were found only in its zero-shot
  tags (read off its vector, so meaning evidence, not word evidence): full, half, or nothing (TAG_ONLY).

**Validation** (the choice): the Tux Paint photo stamps' val categories (bench/hybrid.py: (a) own names,
(b) opaque names; 137 captions) and ``written-v1-val`` (bench/written_set.py: the written-words set drawn
from another seed on other pictures; 131 texts asked as written and as ``sign that says X``), each indexed
with both bundled models (``--ocr`` for the written set). The guard: the bundled samples (samples/)
indexed with each bundled model, ``a dog`` in hybrid mode must put dog.png or dog-face.png first, not
hot-dog.png. RULE says how the pick is made. **Test** (reported, never used to choose): the Tux Paint test
categories ((a), (b) and (c) misleading names) and ``written-v1`` (as written, quoted, sign that says X),
semantic and keyword beside hybrid as shipped before and with the pick.

Every query goes through ``Engine.prepare`` once and ``Engine.run`` once per policy (the CLI's and the
API's path, cut-off off), the policies taking turns per query. A benchmark, not a test. Usage::

    python bench/fusion.py [--tuxpaint DIR] [--openclipart DIR] [--no-write]
"""

from __future__ import annotations

import argparse
import itertools
import os
import resource
import subprocess
import sys
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
from common import CACHE, header, table, write_section
from hybrid import tux_sets
from written_set import LURES, TEXTS, build, relevant

SECTION = "Hybrid fusion policy (issue 15)"
MODELS = ("pixseek-emoji", "pixseek-photo")
KEYWORD_WEIGHTS = (1.0, 1.5, 2.0, 3.0)
TIES = ("meaning", "words")
TAG_ONLY = (1.0, 0.5, 0.0)
SHIPPED = (1.0, "meaning", 1.0)  # the policy before this bench
K = 10
FORMS = {"as written": "{}", "quoted": '"{}"', "sign that says X": "sign that says {}"}
VAL_FORMS = ("as written", "sign that says X")  # a quoted query has no loose words: fusion cannot change it
SAMPLES = Path(__file__).resolve().parent.parent / "samples"
GUARD = ("a dog", {"dog", "dog-face"})
EQUAL = 0.005  # summary R@1 closer than this (under one val query of any set) counts as equal
RULE = (
    "among the policies that pass the guard with both models and lose no val set's R@10 (mean of the two "
    "models) by more than one query against the policy shipped before, the best summary R@1 (the mean of "
    "the Tux Paint mean of (a) and (b) and the written mean of its two forms, each over both models); "
    f"policies within {EQUAL} of the best (less than one val query of any set) count as equal, and of those "
    "the one nearest the old policy wins (lower keyword weight, then ties to meaning, then tags at full "
    "weight): the bench/hybrid.py argument against keyword weights above 2 (the bm25 order among the "
    "hundreds of pictures a folder word matches in a real library would outweigh their meaning) is "
    "something these sets cannot show, so a heavier keyword ranking has to earn its place"
)


def label(p: tuple) -> str:
    w, ties, tag = p
    return f"1 : {w:g}, ties to {ties}, tag-only x{tag:g}"


@contextmanager
def policy(p: tuple) -> Iterator[None]:
    from pixseek.search import hybrid

    old = hybrid.KEYWORD_WEIGHT, hybrid.TIES, hybrid.TAG_ONLY_WEIGHT
    hybrid.KEYWORD_WEIGHT, hybrid.TIES, hybrid.TAG_ONLY_WEIGHT = p
    try:
        yield
    finally:
        hybrid.KEYWORD_WEIGHT, hybrid.TIES, hybrid.TAG_ONLY_WEIGHT = old


def index(db: Path, folder: Path, model: str, ocr: bool = False) -> float:
    """``pixseek index`` (a rerun embeds nothing new); the child's CPU seconds."""
    pixseek = Path(sys.executable).parent / "pixseek"
    cmd = [str(pixseek), "index", "--db", str(db), "--model", model, *(["--ocr"] if ocr else []), str(folder)]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    out = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, "HF_HUB_OFFLINE": "1"})
    if out.returncode:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{out.stdout}\n{out.stderr}")
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime


def first_ranks(db: Path, queries: list[tuple[str, set[str]]], modes: list) -> dict:
    """{(mode, policy or None): rank (0-based, K when missing) of the first right path, per query}.
    ``queries``: (text, right real paths); ``modes``: ("semantic"|"keyword", None) or ("hybrid", policy)."""
    from pixseek.search import Engine

    out: dict = {m: [] for m in modes}
    with Engine.open(db) as eng:
        for n, (text, right) in enumerate(queries):
            prepared = {mode: eng.prepare([text], mode=mode) for mode in {m for m, _ in modes}}
            turn = n % len(modes)
            for mode, p in modes[turn:] + modes[:turn]:
                with policy(p or SHIPPED):
                    got = eng.run(prepared[mode], K)
                hit = [r for r, res in enumerate(got) if os.path.realpath(res.path) in right]
                out[(mode, p)].append(hit[0] if hit else K)
    return out


def scores(first: list[int]) -> np.ndarray:
    """R@1, R@10, MRR@10."""
    f = np.array(first)
    return np.array([(f < 1).mean(), (f < K).mean(), np.where(f < K, 1.0 / (f + 1), 0.0).mean()])


def fmt(s: np.ndarray) -> str:
    return " / ".join(f"{x:.3f}" for x in s)


def tux_queries(concept: dict, qs: list[tuple[str, str]]) -> list[tuple[str, set[str]]]:
    paths: dict[str, set[str]] = {}
    for path, c in concept.items():
        paths.setdefault(c, set()).add(path)
    return [(caption, paths.get(c, set())) for caption, c in qs]


def written_queries(folder: Path, pictures: list, form: str) -> list[tuple[str, set[str]]]:
    texts = [t.strip() for t in TEXTS if t.strip()] + list(LURES)
    pics = folder / "pictures"
    return [(FORMS[form].format(t), {os.path.realpath(pics / f) for f in relevant(pictures, t)}) for t in texts]


def guard(db: Path, grid: list[tuple]) -> dict[tuple, str]:
    """{policy: the first result's file stem for GUARD's query}."""
    from pixseek.search import Engine

    out = {}
    with Engine.open(db) as eng:
        prepared = eng.prepare([GUARD[0]], mode="hybrid")
        for p in grid:
            with policy(p):
                out[p] = Path(eng.run(prepared, 3)[0].path).stem
    return out


class Run:
    """One run's data sets, their indexes and what it measured."""

    def __init__(self, args: argparse.Namespace):
        self.args, self.t0, self.c0 = args, time.perf_counter(), time.process_time()
        self.loads, self.index_cpu = [os.getloadavg()[0]], 0.0
        self.grid = list(itertools.product(KEYWORD_WEIGHTS, TIES, TAG_ONLY))
        self.tsets, self.tq = tux_sets(args.tuxpaint, args.cache)
        self.written = {s: (args.cache / f"written-{s}") for s in ("val", "test")}
        self.pictures = {s: build(f, args.tuxpaint, args.openclipart, s) for s, f in self.written.items()}

    def log(self, *what: object) -> None:
        self.loads.append(os.getloadavg()[0])
        print(*what, f"{time.perf_counter() - self.t0:.0f} s", file=sys.stderr, flush=True)

    def indexed(self, db: Path, folder: Path, model: str, ocr: bool = False) -> Path:
        self.index_cpu += index(db, folder, model, ocr)
        return db

    def tux(self, model: str, split: str, which: str, modes: list) -> dict[str, dict]:
        """{"tux (a) own names": first ranks per mode, ...} for the sets named by ``which`` ("ab", "abc")."""
        out = {}
        for i, (name, folder, concept) in enumerate(self.tsets[: len(which)]):
            db = self.indexed(self.args.cache / f"tux-{model}-{'abc'[i]}", folder, model)
            out[f"tux {name}"] = first_ranks(db, tux_queries(concept, self.tq[split]), modes)
        return out

    def words(self, model: str, split: str, forms: Iterable[str], modes: list) -> dict[str, dict]:
        folder = self.written[split]
        db = self.indexed(folder / f"db-{model}", folder / "pictures", model, ocr=True)
        return {f"written {f}": first_ranks(db, written_queries(folder, self.pictures[split], f), modes) for f in forms}

    def validate(self) -> tuple[dict, dict]:
        """({(set, model): {policy: first ranks}}, {model: {policy: the guard query's first result}})."""
        val: dict = {}
        guards: dict[str, dict] = {}
        modes = [("hybrid", p) for p in self.grid]
        for model in MODELS:
            guards[model] = guard(self.indexed(self.args.cache / f"samples-{model}", SAMPLES, model), self.grid)
            got = {**self.tux(model, "val", "ab", modes), **self.words(model, "val", VAL_FORMS, modes)}
            for s, ranks in got.items():
                val[(s, model)] = {p: ranks[("hybrid", p)] for p in self.grid}
            self.log("val", model)
        return val, guards

    def test(self, pick: tuple) -> tuple[list[str], list[list]]:
        """(the test sets, rows: model, ranking, R@1 / R@10 / MRR per set, then the written sets' lures)."""
        modes = [("semantic", None), ("keyword", None), ("hybrid", SHIPPED)] + ([("hybrid", pick)] * (pick != SHIPPED))
        texts = [t.strip() for t in TEXTS if t.strip()] + list(LURES)
        lure_ix = [i for i, t in enumerate(texts) if t in LURES]
        rows = []
        for model in MODELS:
            got = {**self.tux(model, "test", "abc", modes), **self.words(model, "test", FORMS, modes)}
            for mode in modes:
                name = mode[0] if mode[1] is None else f"hybrid {'before' if mode[1] == SHIPPED else 'after'}"
                cells = [fmt(scores(got[s][mode])) for s in got]
                lures = [fmt(scores([got[s][mode][i] for i in lure_ix])) for s in got if s.startswith("written")]
                rows.append([model, name, *cells, *lures])
            self.log("test", model)
        return list(got), rows


class Choice:
    """The pick among the grid by RULE, from the validation ranks and the guard."""

    def __init__(self, grid: list[tuple], val: dict, guards: dict):
        self.grid, self.guards = grid, guards
        self.sets = list(dict.fromkeys(s for s, _ in val))
        self.mean = {(s, p): np.mean([scores(val[(s, m)][p]) for m in MODELS], axis=0) for s in self.sets for p in grid}
        self.size = {s: len(val[(s, MODELS[0])][SHIPPED]) for s in self.sets}
        eligible = [p for p in grid if all(self.passes(p))]
        best = max(self.summary(p)[0] for p in eligible)
        self.pick = max((p for p in eligible if self.summary(p)[0] >= best - EQUAL), key=near)

    def summary(self, p: tuple) -> np.ndarray:
        """Mean of the Tux Paint sets' mean and the written forms' mean."""
        halves = [[self.mean[(s, p)] for s in self.sets if s.startswith(kind)] for kind in ("tux", "written")]
        return np.mean([np.mean(h, axis=0) for h in halves], axis=0)

    def passes(self, p: tuple) -> tuple[bool, bool]:
        """(the guard holds with every model, no val set's R@10 lower by more than one query)."""
        g = all(self.guards[m][p] in GUARD[1] for m in MODELS)
        floor = {s: self.mean[(s, SHIPPED)][1] - 1 / self.size[s] - 1e-9 for s in self.sets}
        return g, all(self.mean[(s, p)][1] >= floor[s] for s in self.sets)

    def rows(self) -> list[list]:
        out = []
        for p in self.grid:
            g, r10 = self.passes(p)
            name = label(p) + (" **(pick)**" if p == self.pick else "") + (" (before)" if p == SHIPPED else "")
            ok = "yes" if g and r10 else ("no: guard" if not g else "no: R@10")
            out.append([name, *[fmt(self.mean[(s, p)]) for s in self.sets], fmt(self.summary(p)),
                        "/".join(self.guards[m][p] for m in MODELS), ok])  # fmt: skip
        return out


def near(p: tuple) -> tuple:
    """Nearer the policy shipped before is larger: lower keyword weight, ties to meaning, tags at full weight."""
    return (-p[0], p[1] == "meaning", p[2])


def report(run: Run, choice: Choice, test_sets: list[str], test_rows: list[list]) -> str:
    wall, cpu = time.perf_counter() - run.t0, time.process_time() - run.c0
    tux = next(s for s in choice.sets if s.startswith("tux"))
    wr = next(s for s in choice.sets if s.startswith("written"))
    lures = [f"{s}, lures" for s in test_sets if s.startswith("written")]
    return header(SECTION) + "\n".join(
        [
            f"`bench/fusion.py`, whole run {wall:.0f} s wall, {cpu:.0f} CPU s in the bench process (+ "
            f"{run.index_cpu:.0f} CPU s of `pixseek index` runs, most of them finding nothing new), under "
            f"`nice -n 15` with OMP_NUM_THREADS=1; load average (1 min) {min(run.loads):.1f}-{max(run.loads):.1f} "
            "(2 cores, shared with other jobs).",
            "",
            f"**Grid** ({len(run.grid)} policies): keyword weight {', '.join(f'{w:g}' for w in KEYWORD_WEIGHTS)} "
            "(vector 1); equal sums to the better meaning or to the better keyword rank; a picture matched "
            "only through its zero-shot tags counted in the keyword ranking at full weight, at half, or not "
            "at all (it still shows `tag` when meaning finds it; the tag filter is untouched).",
            "",
            f"**Validation** (R@1 / R@{K} / MRR@{K}, each the mean of {' and '.join(MODELS)}): the Tux Paint val "
            f"categories ({choice.size[tux]} captions; (a) own names, (b) opaque sha1 names), `written-v1-val` "
            f"({choice.size[wr]} texts, OCR gate 2, as written and `sign that says X`). summary = mean of the "
            f"Tux Paint mean and the written mean. guard = first result for `{GUARD[0]}` on samples/ indexed "
            "by each model.",
            "",
            table(["policy", *choice.sets, "summary", "guard (emoji/photo)", "eligible"], choice.rows()),
            "",
            f"Rule: {RULE}. Pick: **{label(choice.pick)}**.",
            "",
            f"**Test** (R@1 / R@{K} / MRR@{K}; Tux Paint test categories, 262 captions, (c) = misleading names; "
            "`written-v1`, 131 texts; lures = the 16 texts naming a thing, written on something else):",
            "",
            table(["model", "ranking", *test_sets, *lures], test_rows),
        ]
    )


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--tuxpaint", type=Path, default=Path("/tmp/data/tuxpaint"))
    ap.add_argument("--openclipart", type=Path, default=Path("/tmp/data/openclipart"))
    ap.add_argument("--cache", type=Path, default=CACHE / "fusion")
    ap.add_argument("--no-write", action="store_true", help="print only; leave RESULTS.md alone")
    ap.add_argument("--val-only", action="store_true", help="the validation grid and the pick only")
    ap.add_argument(
        "--test-policy",
        metavar="W,TIES,TAG",
        help="skip validation: the test figures of this policy (e.g. 1,meaning,0: keyword weight, ties, tag-only)",
    )
    args = ap.parse_args()
    run = Run(args)
    if args.test_policy:
        w, ties, tag = args.test_policy.split(",")
        test_sets, test_rows = run.test((float(w), ties, float(tag)))
        print("sets:", ", ".join(test_sets), "(then the lures)")
        for row in test_rows:
            print(" | ".join(str(c) for c in row))
        return
    choice = Choice(run.grid, *run.validate())
    print(table(["policy", *choice.sets, "summary", "guard", "eligible"], choice.rows()), file=sys.stderr)
    run.log("pick:", label(choice.pick))
    if args.val_only:
        return
    test_sets, test_rows = run.test(choice.pick)
    body = report(run, choice, test_sets, test_rows)
    print(body)
    if not args.no_write:
        write_section(SECTION, body)


if __name__ == "__main__":
    main()
