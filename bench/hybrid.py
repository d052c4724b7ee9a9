"""Hybrid search (issue 15): what fusing the keyword index with the vector ranking costs, and what it gains.

1. **Latency at 100,000 pictures.** A synthetic data dir built through the store layer (no pictures
   decoded): 100,000 rows of random 768-d unit vectors (the dimension of the default pixseek-photo
   model) under realistic file names and folders (``Camera/2023/07/IMG_20230714_1532.jpg``,
   ``2022/beach-party/beach-party-07.jpg``, ``scans/invoices/invoice-2291.pdf.png``, screenshots,
   WhatsApp images ...) from a word list. Times: inserting the rows, filling the FTS5 keyword rows
   (``keywords.sync``, as the migration and every index run do), a sync with nothing changed, and
   the database size the keyword rows add. Then one query at a time, k = 20, ~200 queries mixing words
   found in names, absent words and quoted phrases, each with one random query vector used by every
   mode: **semantic** (``Engine.search_vector``; a quoted phrase goes through ``hybrid.search`` as
   ``Engine.search`` does), **hybrid** and **keyword** (``hybrid.search``). Encoding the query text
   costs the same in every mode (keyword mode skips it) and is left out.
2. **Quality.** The Tux Paint photo stamps (``pixseek datasets fetch tuxpaint``: ~400 photos with an
   English description each) indexed with the default model by ``pixseek index`` three times: (a) under
   their own file names and folders (``animals/birds/pelican.png``: descriptive), (b) copied under
   opaque names (sha1 of the path, one flat folder), so names carry nothing, (c) copied under another
   concept's name and folders (a fixed random derangement), so names mislead. Gallery = every picture;
   queries = the English caption of each concept (``frog`` and ``frog-1`` are one concept, answered by
   either picture); R@k = share of queries with a picture of their concept among the first k.
3. **Weights.** SEMANTIC_WEIGHT : KEYWORD_WEIGHT swept on the **val** categories only (reciprocal rank
   fusion orders by a weighted sum, so only the ratio matters: semantic is held at 1). The pick: the
   highest mean R@10 over (a) and (b), then the highest mean R@1, then the ratio nearest 1, among keyword
   weights up to MAX_KEYWORD_WEIGHT. The cap: with keyword weight w, being the semantic ranking's first
   lifts a picture past ``61w / (w - 1) - 60`` places of the keyword ranking (w = 2: 62, w = 4: 21,
   w = 8: 10), so above ~2 the keyword order (bm25 over names, nearly arbitrary among the hundreds of
   pictures one folder word matches in a real library) outweighs meaning; Tux Paint cannot show that
   (a query's words match one to three pictures, all right). (c) is reported, not used. Test figures
   are reported at equal weights, at the weights in ``search/hybrid.py``, at the pick and at the
   uncapped best.

A benchmark, not a test: nothing here asserts a figure. Usage::

    python bench/hybrid.py [--tuxpaint DIR] [--cache DIR] [--n 100000] [--queries 200] [--no-write]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
from common import CACHE, Timer, header, table, write_section

DIM = 768  # the default model's (pixseek-photo) vectors
K = 20  # results per query in the latency runs (the API's default)
SECTION = "Hybrid search (issue 15)"
KEYWORD_WEIGHTS = (0.125, 0.25, 0.5, 0.75, 1.0, 1.5, 2.0, 4.0, 8.0, 16.0)  # against a semantic weight of 1
MAX_KEYWORD_WEIGHT = 2.0  # the pick stays at or below this (see 3. above)
DATASETS = Path(os.environ.get("XDG_DATA_HOME", Path.home() / ".local" / "share")) / "pixseek" / "datasets"


# --- 1. latency on a synthetic 100k index ----------------------------------------------------------
def _words(text: str) -> list[str]:
    return text.split()


WORDS = _words(
    """beach party birthday wedding holiday christmas garden mountain hike ski lake river city paris rome
london tokyo berlin lisbon kitchen dinner lunch breakfast cake dog cat puppy kitten horse bike car train boat
ferry flight airport hotel museum concert festival graduation school office meeting whiteboard sunset sunrise
snow rain forest park zoo football tennis swimming pool camping tent bonfire bbq picnic family kids baby
grandma grandpa friends team portrait selfie house renovation bathroom bedroom balcony roof harbour bridge
castle church market street night fireworks carnival halloween easter spring summer autumn winter road trip
desert island coast cliff waterfall canyon glacier vineyard farm orchard bakery cafe restaurant pizza sushi
cocktail wine beer coffee tea flowers roses tulips cherry blossom autumn leaves moon stars lighthouse"""
)
DOCS = ["invoice", "receipt", "passport", "contract", "statement", "letter", "ticket", "payslip", "warranty"]
ABSENT = _words(
    """zebra xylophone giraffe volcano submarine kangaroo saxophone igloo tractor helicopter octopus
cathedral skyscraper hedgehog walrus accordion chandelier scarecrow telescope windmill flamingo tortoise
platypus avalanche jellyfish treehouse trampoline wheelbarrow"""
)
ROOT_DIR = "/home/user/Pictures"


def _date(rng: np.random.Generator) -> tuple[int, int, int]:
    return int(rng.integers(2012, 2026)), int(rng.integers(1, 13)), int(rng.integers(1, 29))


def synthetic_path(i: int, rng: np.random.Generator) -> str:
    """One realistic picture path under ROOT_DIR (the mix of a phone, a camera, scans and sorted events)."""
    y, m, d = _date(rng)
    hh, mm, ss = int(rng.integers(0, 24)), int(rng.integers(0, 60)), int(rng.integers(0, 60))
    w = [str(x) for x in rng.choice(WORDS, 3, replace=False)]
    kind = rng.random()
    if kind < 0.22:
        return f"Camera/{y}/{m:02d}/IMG_{y}{m:02d}{d:02d}_{hh:02d}{mm:02d}.jpg"
    if kind < 0.30:
        return f"Camera/{y}/{m:02d}/PXL_{y}{m:02d}{d:02d}_{hh:02d}{mm:02d}{ss:02d}{i % 1000:03d}.jpg"
    if kind < 0.36:
        return f"DCIM/{100 + i % 20}CANON/DSC{i % 100000:05d}.JPG"
    if kind < 0.60:
        event = f"{w[0]}-{w[1]}"
        return f"{y}/{event}/{event}-{int(rng.integers(1, 99)):02d}.jpg"
    if kind < 0.68:
        return f"{y}/{y}-{m:02d} {w[0]} {w[1]}/IMG_{int(rng.integers(0, 10000)):04d}.JPG"
    if kind < 0.76:
        return f"Screenshots/Screenshot {y}-{m:02d}-{d:02d} at {hh:02d}.{mm:02d}.{ss:02d}.png"
    if kind < 0.84:
        return f"WhatsApp/Media/WhatsApp Image {y}-{m:02d}-{d:02d} at {hh:02d}.{mm:02d}.{ss:02d}.jpeg"
    if kind < 0.92:
        doc = str(rng.choice(DOCS))
        return f"scans/{doc}s/{doc}-{int(rng.integers(1000, 9999))}.pdf.png"
    return f"misc/{w[2]}/{w[0]} {w[1]} {int(rng.integers(1, 20))}.jpg"


def synthetic_queries(n: int, rng: np.random.Generator) -> list[tuple[str, str]]:
    """(kind, query text): half words found in names, a quarter absent words, a quarter quoted phrases."""
    out: list[tuple[str, str]] = []
    forms = ["{a}", "{a} {b}", "a photo of a {a}", "{a} {y}", "the {a} at the {b}", "{d}", "{d} {y}"]
    for i in range(n // 2):
        a, b = (str(x) for x in rng.choice(WORDS, 2, replace=False))
        out.append(
            ("words in names", forms[i % len(forms)].format(a=a, b=b, y=rng.integers(2012, 2026), d=DOCS[i % 9]))
        )
    for i in range(n // 4):
        a, b = (str(x) for x in rng.choice(ABSENT, 2, replace=False))
        out.append(("absent words", ["{a}", "a {a} and a {b}", "{a} {b}"][i % 3].format(a=a, b=b)))
    for i in range(n - len(out)):
        a, b = (str(x) for x in rng.choice(WORDS, 2, replace=False))
        c = str(rng.choice(ABSENT))
        phrase = [
            f'"{a} {b}"',  # an event folder, if that pair was drawn
            f'"{a}" {b}',
            f'"whatsapp image" {a}',  # an eighth of the corpus holds the phrase
            f'"{DOCS[i % 9]}" {a}',
            f'"{c} {a}"',  # nowhere
        ][i % 5]
        out.append(("quoted phrase", phrase))
    return out


def _db_bytes(root: Path) -> int:
    return sum(p.stat().st_size for p in root.glob("pixseek.db*"))


def build_synthetic(root: Path, n: int) -> dict:
    from pixseek.store import Store, VectorIndex

    shutil.rmtree(root, ignore_errors=True)
    rng = np.random.default_rng(0)
    st = Store.open(root, create=True)
    st.check_model("bench-synthetic-768", "bench-synthetic-768", DIM, adopt=True)
    seen: set[str] = set()
    fig: dict = {"rows": n}
    with Timer() as t:
        step = 10_000
        for start in range(0, n, step):
            x = rng.standard_normal((min(step, n - start), DIM)).astype(np.float32)
            x /= np.linalg.norm(x, axis=1, keepdims=True)
            with st.batch() as b:
                for j, v in enumerate(x):
                    rel = synthetic_path(start + j, rng)
                    stem, dot, ext = rel.rpartition(".")
                    copy = 0
                    while rel in seen:  # a second picture of that minute: "IMG_… (1).jpg"
                        copy += 1
                        rel = f"{stem} ({copy}){dot}{ext}"
                    seen.add(rel)
                    st.insert_image(
                        path=f"{ROOT_DIR}/{rel}",
                        root=ROOT_DIR,
                        size=100_000 + j,
                        mtime_ns=start + j,
                        digest=hashlib.blake2b(v.tobytes(), digest_size=16).hexdigest(),
                        width=4032,
                        height=3024,
                        fmt="JPEG",
                        model_id="bench-synthetic-768",
                        blob=v.tobytes(),
                    )
                b.changed = True
    fig["insert_s"] = t.s
    st.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    fig["db_before"] = _db_bytes(root)
    with Timer() as t, st.batch():
        fig["synced"] = st.sync_keywords()
    fig["sync_s"] = t.s
    st.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    fig["db_after"] = _db_bytes(root)
    with Timer() as t, st.batch():
        fig["resynced"] = st.sync_keywords()
    fig["resync_s"] = t.s
    with Timer() as t:
        vi = VectorIndex.build_usable(st)
        vi.save(st)
    fig["faiss_s"], fig["factory"] = t.s, vi.factory
    st.close()
    return fig


def latency(root: Path, n_rows: int, n_queries: int) -> tuple[dict, list[list]]:
    from pixseek.search import Engine, hybrid

    fig = build_synthetic(root, n_rows)
    eng = Engine.open(root)
    rng = np.random.default_rng(1)
    queries = synthetic_queries(n_queries, rng)
    qv = rng.standard_normal((len(queries), DIM)).astype(np.float32)
    qv /= np.linalg.norm(qv, axis=1, keepdims=True)

    def semantic(q: np.ndarray, p: hybrid.Parsed) -> list:
        if p.match.phrases:  # as Engine.search: quoted phrases hold in every mode
            return hybrid.search(eng, q, p.match, K, mode="semantic")
        return eng.search_vector(q, K)

    modes: dict[str, Callable[[np.ndarray, hybrid.Parsed], list]] = {
        "semantic": semantic,
        "hybrid": lambda q, p: hybrid.search(eng, q, p.match, K, mode="hybrid"),
        "keyword": lambda q, p: hybrid.search(eng, None, p.match, K, mode="keyword"),
    }
    for i in range(10):  # warm the page cache and FAISS
        for fn in modes.values():
            fn(qv[i], hybrid.parse(queries[i][1]))
    times: dict[tuple[str, str], list[float]] = {}
    cpu: dict[tuple[str, str], list[float]] = {}
    hits: dict[str, list[int]] = {}
    names = list(modes)
    loads = [os.getloadavg()[0]]
    for i, ((kind, text), q) in enumerate(zip(queries, qv)):
        p = hybrid.parse(text)
        for name in names[i % 3 :] + names[: i % 3]:  # rotate the order: drift hits every mode alike
            c0, t0 = time.process_time(), time.perf_counter()
            got = modes[name](q, p)
            times.setdefault((kind, name), []).append(time.perf_counter() - t0)
            cpu.setdefault((kind, name), []).append(time.process_time() - c0)
            if name == "keyword":
                hits.setdefault(kind, []).append(len(got))
        if i % 20 == 19:
            loads.append(os.getloadavg()[0])
    eng.close()
    fig["load"] = (min(loads), float(np.mean(loads)), max(loads))
    rows = []
    kinds = list(dict.fromkeys(k for k, _ in queries))
    for kind in [*kinds, "all"]:
        sel = kinds if kind == "all" else [kind]
        ms = {m: np.concatenate([times[(k, m)] for k in sel]) * 1000 for m in names}
        cms = {m: np.concatenate([cpu[(k, m)] for k in sel]) * 1000 for m in names}
        h = np.concatenate([hits[k] for k in sel])
        row: list = [kind, len(ms["semantic"]), f"{(h > 0).mean():.0%}"]
        for m in names:
            row.append(f"{np.percentile(ms[m], 50):.1f} / {np.percentile(ms[m], 95):.1f}")
        row.append(f"{np.percentile(ms['hybrid'], 50) - np.percentile(ms['semantic'], 50):+.1f}")
        row += [f"{cms[m].mean():.1f}" for m in names]
        rows.append(row)
    return fig, rows


# --- 2 and 3. quality on the Tux Paint photos --------------------------------------------------------
def concept_of(row: dict) -> str:
    """``animals/amphibians/frog-1`` -> ``animals/amphibians/frog``: one concept, several pictures."""
    return re.sub(r"-\d+$", "", row["concept"])


def load_tuxpaint(tux: Path) -> tuple[list[dict], dict[str, list[tuple[str, str]]]]:
    """Manifest rows, and per split the queries: (caption, concept), one per concept."""
    rows = [json.loads(line) for line in (tux / "manifest.jsonl").read_text().splitlines() if line.strip()]
    queries: dict[str, dict[str, str]] = {}
    for r in rows:
        c = concept_of(r)
        have = queries.setdefault(r["split"], {})
        if c not in have or r["concept"] == c:  # the picture without a -N suffix speaks for the concept
            have[c] = r["captions"][0]
    return rows, {s: [(cap, c) for c, cap in q.items()] for s, q in queries.items()}


def _index(db: Path, folder: Path) -> float:
    pixseek = Path(sys.executable).parent / "pixseek"
    with Timer() as t:
        out = subprocess.run([str(pixseek), "index", "--db", str(db), str(folder)], capture_output=True, text=True)
    if out.returncode:
        raise SystemExit(f"pixseek index {folder} failed:\n{out.stdout}\n{out.stderr}")
    return t.s


def copies(tux: Path, rows: list[dict], dest: Path, name: Callable[[dict], str]) -> dict[str, str]:
    """Copies of the pictures under ``dest``, each at ``name(row)``; {copy path: manifest image}."""
    out = {}
    for r in rows:
        src, dst = tux / r["image"], dest / name(r)
        if not dst.exists() or dst.stat().st_size != src.stat().st_size or dst.read_bytes() != src.read_bytes():
            dst.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(src, dst)
        out[str(dst)] = r["image"]
    return out


def shuffled_names(rows: list[dict]) -> dict[str, str]:
    """{image: another concept's image path}: every picture under a name (and folders) that misleads."""
    images = [r["image"] for r in rows]
    concept = {r["image"]: concept_of(r) for r in rows}
    rng = np.random.default_rng(15)
    while True:
        perm = [images[i] for i in rng.permutation(len(images))]
        if all(concept[a] != concept[b] for a, b in zip(images, perm)):
            return dict(zip(images, perm))


class Gallery:
    """One indexed copy of the set: maps a result's path to its concept."""

    def __init__(self, label: str, db: Path, concept_by_path: dict[str, str]):
        from pixseek.search import Engine

        self.label, self.eng, self.concept = label, Engine.open(db), concept_by_path

    def recall(self, mode: str, queries: list[tuple[str, str]], vecs: np.ndarray, ks=(1, 10)) -> dict:
        from pixseek.search import hybrid

        firsts, with_hits = [], 0
        for (caption, concept), q in zip(queries, vecs):
            p = hybrid.parse(caption)
            if mode == "semantic" or p.match.empty:
                got = self.eng.search_vector(q, max(ks))
            else:
                got = hybrid.search(self.eng, q if mode != "keyword" else None, p.match, max(ks), mode=mode)
            with_hits += mode == "keyword" and bool(got)
            ranks = [i for i, r in enumerate(got) if self.concept.get(os.path.realpath(r.path)) == concept]
            firsts.append(ranks[0] if ranks else max(ks))
        f = np.array(firsts)
        return {**{k: float((f < k).mean()) for k in ks}, "hits": with_hits / len(queries)}


def with_weights(ws: float, wk: float, fn: Callable[[], dict]) -> dict:
    from pixseek.search import hybrid

    old = hybrid.SEMANTIC_WEIGHT, hybrid.KEYWORD_WEIGHT
    hybrid.SEMANTIC_WEIGHT, hybrid.KEYWORD_WEIGHT = ws, wk
    try:
        return fn()
    finally:
        hybrid.SEMANTIC_WEIGHT, hybrid.KEYWORD_WEIGHT = old


def tux_sets(tux: Path, cache: Path) -> tuple[list[tuple[str, Path, dict]], dict]:
    """The three Tux Paint galleries - (label, folder indexed, {real picture path: concept}): own names,
    opaque names (copies named by a hash), misleading names (copies under another picture's name) - and
    the captions per split [(caption, concept)]."""
    rows, queries = load_tuxpaint(tux)
    by_image = {r["image"]: concept_of(r) for r in rows}
    real = os.path.realpath
    flat, wrong = cache / "tuxpaint-opaque" / "0a", cache / "tuxpaint-shuffled"
    swap = shuffled_names(rows)
    opaque = copies(tux, rows, flat, lambda r: hashlib.sha1(r["image"].encode()).hexdigest() + ".png")
    misled = copies(tux, rows, wrong, lambda r: swap[r["image"]])
    sets = [
        ("(a) own names", tux / "images", {real(tux / img): c for img, c in by_image.items()}),
        ("(b) opaque names", flat, {real(p): by_image[img] for p, img in opaque.items()}),
        ("(c) misleading names", wrong / "images", {real(p): by_image[img] for p, img in misled.items()}),
    ]
    return sets, queries


def _w(x: float) -> str:
    return f"{x:g}"


def quality(tux: Path, cache: Path) -> tuple[dict, str]:
    from pixseek.search import hybrid

    sets, queries = tux_sets(tux, cache)
    galleries, index_s = [], []
    for i, (label, folder, concept) in enumerate(sets):
        db = cache / f"tuxpaint-{'abc'[i]}-db"
        index_s.append(_index(db, folder))
        galleries.append(Gallery(label, db, concept))
    enc = galleries[0].eng.encoder
    model = galleries[0].eng.store.model_spec
    vecs = {s: np.concatenate([enc.encode_texts([c for c, _ in q[i : i + 64]]) for i in range(0, len(q), 64)])
            for s, q in queries.items()}  # fmt: skip
    current = (hybrid.SEMANTIC_WEIGHT, hybrid.KEYWORD_WEIGHT)

    def fig(r: dict) -> str:
        return f"{r[1]:.3f} / {r[10]:.3f}"

    # 3. the sweep, on val only
    sweep_rows, scored = [], []
    for wk in KEYWORD_WEIGHTS:
        r = [with_weights(1.0, wk, lambda g=g: g.recall("hybrid", queries["val"], vecs["val"])) for g in galleries]
        m10, m1 = np.mean([x[10] for x in r[:2]]), np.mean([x[1] for x in r[:2]])
        scored.append((round(m10, 6), round(m1, 6), -abs(np.log2(wk)), wk))
        sweep_rows.append([f"1 : {_w(wk)}", *map(fig, r), f"{m1:.3f} / {m10:.3f}"])
    base = [g.recall("semantic", queries["val"], vecs["val"]) for g in galleries]
    mean = {k: np.mean([x[k] for x in base[:2]]) for k in (1, 10)}
    sweep_rows.append(["semantic only", *map(fig, base), fig(mean)])
    best = max(x for x in scored if x[3] <= MAX_KEYWORD_WEIGHT)[3]
    uncapped = max(scored)[3]

    # 2. test figures
    test_rows, hit_share = [], []
    settings = [
        ("semantic", None),
        ("keyword", None),
        ("hybrid", (1.0, 1.0)),
        ("hybrid", current),
        ("hybrid", (1.0, best)),
        ("hybrid", (1.0, uncapped)),
    ]
    named = [("equal", (1.0, 1.0)), ("in search/hybrid.py", current), ("val pick", (1.0, best))]
    named.append(("uncapped val best", (1.0, uncapped)))
    done = set()
    for mode, ws in settings:
        if (mode, ws) in done:
            continue
        done.add((mode, ws))
        label = mode if ws is None else f"hybrid {_w(ws[0])} : {_w(ws[1])}"
        notes = [n for n, w in named if ws == w]
        row: list = [label + (f" ({', '.join(notes)})" if notes else "")]
        for g in galleries:
            if ws is None:
                r = g.recall(mode, queries["test"], vecs["test"])
            else:
                r = with_weights(*ws, lambda g=g: g.recall("hybrid", queries["test"], vecs["test"]))
            row.append(fig(r))
            if mode == "keyword":
                hit_share.append(r["hits"])
        test_rows.append(row)
    for g in galleries:
        g.eng.close()
    labels = [g.label for g in galleries]
    info = {"model": model, "pictures": len(sets[0][2]), "queries": {s: len(q) for s, q in queries.items()}}
    text = "\n".join(
        [
            f"**Weights, val split** ({info['queries']['val']} queries; R@1 / R@10; semantic weight 1 : keyword "
            "weight; mean = of (a) and (b)):",
            "",
            table(["semantic : keyword", *labels, "mean (a), (b)"], sweep_rows),
            "",
            f"Pick: the highest mean R@10 over (a) and (b), then their mean R@1, then the ratio nearest 1, "
            f"with the keyword weight at most {_w(MAX_KEYWORD_WEIGHT)}: **1 : {_w(best)}** (uncapped: 1 : "
            f"{_w(uncapped)}). The cap: with keyword weight w, being first in the semantic ranking lifts a picture "
            "past 61w/(w-1) - 60 places of the keyword ranking (w = 2: 62, 4: 21, 8: 10); above ~2 the bm25 "
            "order of the name matches (nearly arbitrary among the hundreds of pictures one folder word matches "
            "in a real library) outweighs their meaning, which Tux Paint cannot show (a query's words match "
            "one to three pictures, nearly all right). (b) is flat: with no keyword hit, hybrid is semantic. "
            f"Weights in search/hybrid.py during this run: {_w(current[0])} : {_w(current[1])}.",
            "",
            f"**Test split** ({info['queries']['test']} queries; R@1 / R@10):",
            "",
            table(["ranking", *labels], test_rows),
            "",
            "The keyword index finds anything at all for "
            + ", ".join(f"{h:.0%} of the test queries in {lb[:3]}" for h, lb in zip(hit_share, labels))
            + ". Indexing took "
            + ", ".join(f"{s:.0f} s {lb[:3]}" for s, lb in zip(index_s, labels))
            + " (a rerun finds nothing new to embed).",
        ]
    )
    return info, text


LATENCY_SECTION = "Hybrid search latency at 100,000 pictures, re-measured (issue 15)"
# The first run (2026-11-29, section "Hybrid search (issue 15)"), before the keyword sync became incremental
# and before matched_fields read the rows instead of one FTS5 search per field; its load was not recorded.
BASELINE = {
    "date": "2026-11-29",
    "sync_s": 6.503,
    "resync_s": 2.932,
    "words in names": ("206.2 / 242.6", "295.2 / 586.3", "75.5 / 334.5"),
    "absent words": ("181.6 / 243.8", "194.1 / 236.7", "0.1 / 0.3"),
    "quoted phrase": ("73.9 / 392.0", "83.5 / 389.8", "8.5 / 31.2"),
    "all": ("192.1 / 272.4", "251.1 / 572.9", "29.2 / 319.3"),
}
LATENCY_HEADERS = ["queries", "n", "with a keyword hit", "semantic p50 / p95 ms", "hybrid p50 / p95 ms",
                   "keyword p50 / p95 ms", "hybrid - semantic p50 ms", "CPU ms/query semantic", "hybrid",
                   "keyword"]  # fmt: skip
BESIDE_HEADERS = ["queries", "n", "with a keyword hit", "semantic p50 / p95 ms", f"baseline {BASELINE['date']}",
                  "hybrid p50 / p95 ms", "baseline", "keyword p50 / p95 ms", "baseline", "hybrid - semantic p50 ms",
                  "CPU ms/query semantic", "hybrid", "keyword"]  # fmt: skip


def latency_tables(lfig: dict, lrows: list[list]) -> tuple[str, str]:
    """(the keyword index's build table, the latency table) of one latency run."""
    added = lfig["db_after"] - lfig["db_before"]
    build = table(
        ["rows", "insert rows s", "FTS5 sync s", "rows/s", "sync, nothing changed s", "database MiB before",
         "after", "added MiB", "added bytes/row", "FAISS build s"],
        [[f"{lfig['rows']:,}", lfig["insert_s"], lfig["sync_s"], f"{lfig['rows'] / lfig['sync_s']:,.0f}",
          lfig["resync_s"], lfig["db_before"] / 2**20, lfig["db_after"] / 2**20, added / 2**20,
          f"{added / lfig['rows']:.0f}", lfig["faiss_s"]]],
    )  # fmt: skip
    return build, table(LATENCY_HEADERS, lrows)


def latency_section(lfig: dict, lrows: list[list], whole_s: float) -> str:
    """The re-measured latency beside the first run's figures (BASELINE)."""
    build, _ = latency_tables(lfig, lrows)
    b = BASELINE
    rows = []
    for r in lrows:
        base = b.get(r[0], ("-", "-", "-"))
        rows.append([*r[:3], r[3], base[0], r[4], base[1], r[5], base[2], r[6], *r[7:]])
    lo, mean, hi = lfig["load"]
    return header(LATENCY_SECTION) + "\n".join(
        [
            f"`bench/hybrid.py --latency-only`, whole run {whole_s:.0f} s, under `nice -n 15`; load average "
            f"(1 min) during the queries {lo:.1f}-{hi:.1f}, mean {mean:.1f} (2 cores, other jobs running). The "
            f"same synthetic {lfig['rows']:,}-picture data dir and queries as the first run (seeded), after the "
            "keyword sync became incremental and `keywords.matched_fields` began reading the rows in Python "
            "(one lookup by id instead of one FTS5 search per field). One query at a time, k = "
            f"{K}; semantic, hybrid and keyword take turns per query (the order rotates). CPU ms/query = "
            "`time.process_time` of the process around each call (mean), steadier than wall time on a shared "
            f"machine. Baseline = the first run, {b['date']} (load not recorded).",
            "",
            table(BESIDE_HEADERS, rows),
            "",
            f"Keyword index at {lfig['rows']:,}: full FTS5 sync {lfig['sync_s']:.2f} s (baseline {b['sync_s']} s), "
            f"sync with nothing changed {lfig['resync_s']:.3f} s (baseline {b['resync_s']} s):",
            "",
            build,
        ]
    )


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--tuxpaint", type=Path, default=DATASETS / "tuxpaint", help="the Tux Paint photo set")
    ap.add_argument("--cache", type=Path, default=CACHE / "hybrid", help="where the data dirs are built")
    ap.add_argument("--n", type=int, default=100_000, help="rows of the synthetic index")
    ap.add_argument("--queries", type=int, default=200)
    ap.add_argument(
        "--latency-only",
        action="store_true",
        help=f"only the 100k latency run, into its own section ({LATENCY_SECTION!r}) beside the baseline",
    )
    ap.add_argument("--no-write", action="store_true", help="print only; leave RESULTS.md alone")
    args = ap.parse_args()
    t0 = time.perf_counter()
    if args.latency_only:
        lfig, lrows = latency(args.cache / f"synthetic-{args.n}", args.n, args.queries)
        body = latency_section(lfig, lrows, time.perf_counter() - t0)
        print(body)
        if not args.no_write:
            write_section(LATENCY_SECTION, body)
        shutil.rmtree(args.cache / f"synthetic-{args.n}", ignore_errors=True)
        return
    if not (args.tuxpaint / "manifest.jsonl").is_file():
        raise SystemExit(f"no {args.tuxpaint}/manifest.jsonl (run `pixseek datasets fetch tuxpaint`, or --tuxpaint)")
    qfig, qtext = quality(args.tuxpaint, args.cache)
    print("quality done", f"{time.perf_counter() - t0:.0f} s", file=sys.stderr, flush=True)
    lfig, lrows = latency(args.cache / f"synthetic-{args.n}", args.n, args.queries)
    build, lat = latency_tables(lfig, lrows)
    q = qfig["queries"]
    body = header(SECTION) + "\n".join(
        [
            f"`bench/hybrid.py`, whole run {time.perf_counter() - t0:.0f} s.",
            "",
            f"**Building the keyword index at {lfig['rows']:,} pictures**: a synthetic data dir made through the "
            f"store layer (random {DIM}-d unit vectors; phone, camera, scan, screenshot, WhatsApp and event-folder "
            f"names from a word list), {lfig['factory']} vector index. FTS5 sync = `keywords.sync` of every row "
            "(the migration, or the first index run); nothing changed = the sync every index run ends with.",
            "",
            build,
            "",
            f"**Query latency at {lfig['rows']:,} pictures**, one query at a time, k = {K}, the same random query "
            "vector in every mode (the text encoder's time is the same in every mode and left out; keyword mode "
            "needs none). semantic = `Engine.search_vector` (quoted phrases: `hybrid.search` in semantic mode, "
            "as `Engine.search` does); hybrid, keyword = `hybrid.search`. Metadata lookups of the results "
            "included. The modes take turns per query.",
            "",
            lat,
            "",
            f"**Recall, hybrid vs semantic**: the Tux Paint photo stamps (`pixseek datasets fetch tuxpaint`, "
            f"tuxpaint-stamps-default 2022.06.04, GPL-2.0-or-later), {qfig['pictures']} pictures indexed by "
            f"`pixseek index` with the default model ({qfig['model']}) three times: (a) under their own file "
            "names and folders (`animals/birds/pelican.png`), (b) copied under sha1 names into one folder, "
            "(c) copied under another concept's name and folders (a fixed random derangement). Gallery = all "
            "pictures; one query per concept, its English caption (`A frog.`), right when a picture of that "
            "concept (`frog`, `frog-1`) is among the first k. Categories are split val / test as the dataset "
            f"does (val {q['val']} queries, test {q['test']}). Tux Paint names are descriptive: the caption's "
            "noun is usually the file name, so (a) is the case hybrid is for (the answer written in the "
            "name), (b) the case where names say nothing, (c) the case where they mislead. Not comparable "
            "with `pixseek eval` (one gallery per split, one right picture per query).",
            "",
            qtext,
        ]
    )
    print(body)
    if not args.no_write:
        write_section(SECTION, body)


if __name__ == "__main__":
    main()
