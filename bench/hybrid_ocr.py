"""Hybrid vs semantic-only search when the answer is written in the picture (issue 15): the text-in-picture
(OCR) stage feeding the keyword index, measured on the *written words* set (bench/written_set.py:
real Tux Paint and Openclipart pictures with 131 words and phrases drawn as signs, labels, captions, big
overlays, tilted signs and screenshots of text windows; opaque file names; 126 pictures without text,
among them a real picture of each word that names a thing, "frog" being written on something else).

For each bundled model (pixseek-emoji, pixseek-photo) the set is indexed by ``pixseek index --model M
--ocr`` in its own data dir, then every text is asked three ways: as written (``no parking``), quoted
(``"no parking"``: the words must appear literally, in every mode) and as a request (``sign that says no
parking``), in each mode (``semantic``, ``keyword``, ``hybrid``) with the weights shipped in
search/hybrid.py, through ``Engine.search`` as the CLI and the API call it (cut-off off, the CLI's default).
Right answer = a picture with the text's words drawn in a row (bench/written_set.py: relevant); R@k =
share of queries with a right answer among the first k; MRR over the first 10. A test set: no weight is
chosen here. Also the OCR stage's own word recall on the set (the words of each drawn text found in what
it stored for that picture) and what it read on the pictures without drawn text.

A benchmark, not a test: nothing here asserts a figure. Usage::

    python bench/hybrid_ocr.py [--tuxpaint DIR] [--openclipart DIR] [--models pixseek-emoji,pixseek-photo]
                               [--no-write]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import time
from collections import defaultdict
from pathlib import Path

import numpy as np
from common import CACHE, header, table, write_section
from written_set import LURES, STYLES, TEXTS, VERSION, Picture, build, relevant

from pixseek.models import ocr  # light: rapidocr loads on first use

# one section per OCR gate version: a new gate keeps the previous one's figures as its baseline
SECTION = f"Hybrid search, text in pictures (issue 15, OCR gate {ocr.GATE_VERSION})"
MODES = ("semantic", "keyword", "hybrid")
FORMS = {  # how a text becomes a query
    "as written": "{}",
    "quoted": '"{}"',
    "sign that says ...": "sign that says {}",
}
K = 10
SAME = " (the same with both models' indexes)"


def index(db: Path, folder: Path, model: str) -> dict:
    """``pixseek index --ocr`` of the set into ``db``: wall and CPU seconds (the child's), its summary."""
    pixseek = Path(sys.executable).parent / "pixseek"
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0, load = time.perf_counter(), os.getloadavg()[0]
    cmd = [str(pixseek), "index", "--db", str(db), "--model", model, "--ocr", "--json", str(folder)]
    out = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, "HF_HUB_OFFLINE": "1"})
    if out.returncode:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{out.stdout}\n{out.stderr}")
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime
    return {"wall_s": time.perf_counter() - t0, "cpu_s": cpu, "load": (load + os.getloadavg()[0]) / 2}


def ocr_recall(db: Path, folder: Path, pictures: list[Picture]) -> tuple[list[list], dict]:
    """Per style: pictures, word recall, texts read whole, and what was read on the textless pictures."""
    from pixseek.store import Store
    from pixseek.store.keywords import fold

    with Store.open(db, readonly=True) as st:
        ids = {p.file: st.get_by_path(str((folder / p.file).resolve())).id for p in pictures}
        text = st.ocr_text(ids.values())
    per: dict[str, list[tuple[int, int, bool]]] = defaultdict(list)
    for p in pictures:
        read = fold(text.get(ids[p.file], ""))
        if p.style == "none":
            per["none"].append((len(read), 0, bool(read)))
            continue
        want = fold(p.text)
        whole = any(read[i : i + len(want)] == want for i in range(len(read) - len(want) + 1))
        per[p.style].append((sum(w in read for w in want), len(want), whole))
    rows, found, total, whole_n, n = [], 0, 0, 0, 0
    for style in STYLES:
        got = per[style]
        f, t, w = sum(x[0] for x in got), sum(x[1] for x in got), sum(x[2] for x in got)
        rows.append([style, len(got), f"{f / t:.3f}", f"{w}/{len(got)}"])
        found, total, whole_n, n = found + f, total + t, whole_n + w, n + len(got)
    rows.append(["all with text", n, f"{found / total:.3f}", f"{whole_n}/{n}"])
    none = per["none"]
    extra = {"textless": len(none), "textless_read": sum(x[2] for x in none), "textless_words": sum(x[0] for x in none)}
    return rows, extra


def ranks(db: Path, folder: Path, pictures: list[Picture], texts: list[str]) -> dict[tuple[str, str], list[int]]:
    """{(form, mode): the rank (0-based; K when none in the first K) of the first right answer, per text}."""
    from pixseek.search import Engine

    right = {t: {str((folder / f).resolve()) for f in relevant(pictures, t)} for t in texts}
    out: dict[tuple[str, str], list[int]] = defaultdict(list)
    with Engine.open(db) as eng:
        for i, t in enumerate(texts):
            for form, fmt in FORMS.items():
                modes = MODES[i % 3 :] + MODES[: i % 3]  # turns: each mode sees a warm cache alike
                for mode in modes:
                    got = eng.search([fmt.format(t)], k=K, mode=mode)
                    hit = [r for r, res in enumerate(got) if os.path.realpath(res.path) in right[t]]
                    out[(form, mode)].append(hit[0] if hit else K)
    return out


def policy() -> str:
    """The fusion policy in search/hybrid.py, in words."""
    from pixseek.search import hybrid

    return (
        f"weights {hybrid.SEMANTIC_WEIGHT:g} : {hybrid.KEYWORD_WEIGHT:g}, ties to {hybrid.TIES}, a match through "
        f"tags alone x{hybrid.TAG_ONLY_WEIGHT:g}"
    )


def scores(first: list[int]) -> tuple[float, float, float]:
    f = np.array(first)
    return float((f < 1).mean()), float((f < K).mean()), float(np.where(f < K, 1.0 / (f + 1), 0.0).mean())


def fmt(s: tuple[float, float, float]) -> str:
    return f"{s[0]:.3f} / {s[1]:.3f} / {s[2]:.3f}"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--tuxpaint", type=Path, default=Path("/tmp/data/tuxpaint"))
    ap.add_argument("--openclipart", type=Path, default=Path("/tmp/data/openclipart"))
    ap.add_argument("--cache", type=Path, default=CACHE / "written")
    ap.add_argument("--models", default="pixseek-emoji,pixseek-photo")
    ap.add_argument("--no-write", action="store_true", help="print only; leave RESULTS.md alone")
    args = ap.parse_args()
    t_start = time.perf_counter()
    pictures = build(args.cache, args.tuxpaint, args.openclipart)
    folder = args.cache / "pictures"
    texts = [t.strip() for t in TEXTS if t.strip()] + list(LURES)
    lures = set(LURES)
    rows, ocr_rows, idx, notes = [], {}, {}, {}
    spread: dict[tuple[str, str, str], list[int]] = {}  # answers found at rank 1, 2, 3, 4-10
    firsts: dict[str, list[int]] = {}
    for model in args.models.split(","):
        db = args.cache / f"db-{model}"
        shutil.rmtree(db, ignore_errors=True)  # a fresh index: the figures include embedding and OCR
        idx[model] = index(db, folder, model)
        print(model, idx[model], file=sys.stderr, flush=True)
        ocr_rows[model], notes[model] = ocr_recall(db, folder, pictures)
        got = ranks(db, folder, pictures, texts)
        for form in FORMS:
            for mode in MODES:
                all_ = got[(form, mode)]
                lure = [r for r, t in zip(all_, texts) if t in lures]
                rows.append([model, form, mode, fmt(scores(all_)), fmt(scores(lure))])
                found = [r for r in all_ if r < K]
                spread[(model, form, mode)] = [sum(r == i for r in found) for i in (0, 1, 2)]
                spread[(model, form, mode)].append(len(found) - sum(spread[(model, form, mode)]))
                firsts[f"{model} {form} {mode}"] = all_
        print(table(["model", "query", "mode", "all", "lures"], rows[-9:]), file=sys.stderr, flush=True)
    with_text = sum(p.style != "none" for p in pictures)
    first = next(iter(ocr_rows))
    same = all(ocr_rows[m] == ocr_rows[first] for m in ocr_rows)
    idx_rows = [[m, f"{f['wall_s']:.0f}", f"{f['cpu_s']:.0f}", f"{f['cpu_s'] / len(pictures) * 1000:,.0f}",
                 f"{f['load']:.1f}"] for m, f in idx.items()]  # fmt: skip
    n = notes[first]
    body = header(SECTION) + "\n".join(
        [
            f"`bench/hybrid_ocr.py`, whole run {time.perf_counter() - t_start:.0f} s, under `nice -n 15` on a "
            "machine shared with other jobs.",
            "",
            f"OCR models and gate: `{ocr.MODEL_VERSION}` (detection boxes kept from a score of {ocr.MIN_BOX_SCORE}).",
            "",
            f"**Set** `{VERSION}` (bench/written_set.py, drawn from a fixed seed): {len(pictures)} pictures, "
            f"{with_text} with one of {len(texts)} texts drawn on them ({len(texts) - len(lures)} signs, notices, "
            f"labels, names and numbers such as `no parking`, `gate B12`, `invoice 2291`, `wifi password "
            f"sunflower`; {len(lures)} *lures*, words naming a thing, like `frog`, written on something else), "
            f"a third of the texts on two pictures; styles {', '.join(STYLES)} (each about a sixth); 7 "
            f"TrueType fonts at 13-72 px; JPEG and PNG; opaque file names in one folder. {n['textless']} "
            "pictures without drawn text, a real picture of each lure among them. Sources: Tux Paint photo "
            "stamps (tuxpaint-stamps-default 2022.06.04, GPL-2.0-or-later) and Openclipart 0.18 PNGs (public "
            "domain), from `pixseek datasets fetch`.",
            "",
            f"**Search** ({len(texts)} texts x 3 query forms, k = {K}; R@1 / R@{K} / MRR@{K}; the fusion "
            f"policy shipped in search/hybrid.py, {policy()}; `Engine.search`, cut-off off as the CLI's default). "
            "lures = the 16 texts that name a thing: the picture the vector finds (a real frog) holds no text. "
            "A quoted phrase must appear literally in every mode, so `semantic` on a quoted query ranks by "
            "meaning only among the pictures whose text or name holds the phrase.",
            "",
            table(["model", "query", "mode", f"all {len(texts)}: R@1 / R@10 / MRR", "lures 16"], rows),
            "",
            "Rank of the answers found in the first "
            f"{K}, at 1 / 2 / 3 / 4-{K}: "
            + "; ".join(
                f"{m} {f}: keyword {'/'.join(map(str, spread[(m, f, 'keyword')]))}, hybrid "
                + "/".join(map(str, spread[(m, f, "hybrid")]))
                for m in idx
                for f in FORMS
                if f != "quoted"
            )
            + ".",
            "",
            "**The OCR stage's own recall** (`pixseek index --ocr`, what it stored per picture; words of the "
            "drawn text found among the words read, folded as the keyword index folds them; whole = the "
            f"text's words in a row){SAME if same else ''}:",
            "",
            table(["style", "pictures", "word recall", "text read whole"], ocr_rows[first]),
            "",
            f"On the {n['textless']} pictures without drawn text it read something on {n['textless_read']} "
            f"({n['textless_words']} words in all; clip art and stamps hold a few real words and marks).",
            "",
            "**Indexing** (embedding, tags and OCR of the whole set in one `pixseek index --ocr` run; CPU "
            "seconds of the process, load average during it):",
            "",
            table(["model", "wall s", "CPU s", "CPU s per 1,000 pictures", "load"], idx_rows),
        ]
    )
    print(body)
    saved = {"rows": rows, "ocr": ocr_rows, "index": idx, "firsts": firsts, "texts": texts}
    Path(args.cache / "result.json").write_text(json.dumps(saved))
    if not args.no_write:
        write_section(SECTION, body)


if __name__ == "__main__":
    main()
