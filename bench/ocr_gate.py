"""The OCR gate's box-score threshold (``MIN_BOX_SCORE`` in pixseek/models/ocr.py), chosen on a validation set.

The gate drops detection boxes whose mean text probability is below the threshold before recognition, so
a picture whose only boxes score below it is "no text". bench/hybrid_ocr.py found 0.6 losing about half of
the small labels and captions of its test set (clearly readable words, boxes scored 0.3-0.57). This sweeps
the threshold on:

* ``val``: the validation variant of the written-words set (bench/written_set.py, split "val": the same
  texts drawn from another seed on other Tux Paint and Openclipart pictures): word recall and texts read
  whole, per style;
* ``photos``: the 9 sample photos and the 404 Tux Paint photo stamps (bench/ocr.py): what it costs on
  pictures without text, pictures sent to recognition, lines kept (noise) and CPU seconds per 1,000.

Pick (fixed before the run): the highest threshold whose val word recall is within 0.01 of the best one
(the cheapest gate that reads nearly all there is). The detector's own threshold (``ENGINE_BOX_SCORE``,
0.3) is the floor: below it the detector returns no box. One reader, one thread; decoding included.

A benchmark, not a test. Usage: python bench/ocr_gate.py [--no-write]
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

from common import CACHE, header, table, write_section
from ocr import _decode, photos
from PIL import Image
from written_set import STYLES, build

from pixseek.models import ocr
from pixseek.store.keywords import fold

THRESHOLDS = (0.3, 0.4, 0.5, 0.6)
SECTION = "ocr-gate"
HEADERS = ["box score >=", "val word recall", "val texts read whole", "labels", "captions",
           "val CPU s / 1,000 with text", "photos sent to recognition", "photo lines kept",
           "photos CPU s / 1,000"]  # fmt: skip


def read_all(paths: list[Path], threshold: float) -> tuple[list, float]:
    """(readings, CPU s per 1,000 pictures) with the gate at ``threshold``."""
    reader = ocr.TextReader(min_box_score=threshold)
    reader.read(Image.new("RGB", (64, 32), "white"))  # load the models outside the clock
    c = time.process_time()
    got = [reader.read(_decode(p)) for p in paths]
    return got, (time.process_time() - c) / len(paths) * 1000


def recall(readings, pictures) -> dict[str, tuple[int, int, int, int]]:
    """Per style: (words found, words drawn, texts read whole, pictures)."""
    out: dict[str, list[int]] = {s: [0, 0, 0, 0] for s in STYLES}
    for r, p in zip(readings, pictures):
        read, want = fold(r.text), fold(p.text)
        whole = any(read[i : i + len(want)] == want for i in range(len(read) - len(want) + 1))
        o = out[p.style]
        o[0], o[1], o[2], o[3] = o[0] + sum(w in read for w in want), o[1] + len(want), o[2] + whole, o[3] + 1
    return {s: (a, b, c, d) for s, (a, b, c, d) in out.items()}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--no-write", action="store_true", help="print only; leave RESULTS.md alone")
    args = ap.parse_args()
    ocr.check_available()
    t0, load0 = time.perf_counter(), os.getloadavg()[0]
    folder = CACHE / "written-val"
    val = build(folder, Path("/tmp/data/tuxpaint"), Path("/tmp/data/openclipart"), "val")
    val_text = [p for p in val if p.style != "none"]
    photo_paths = photos()
    rows, scored = [], []
    for t in THRESHOLDS:
        got, val_cpu = read_all([folder / "pictures" / p.file for p in val_text], t)
        per = recall(got, val_text)
        found, total = sum(v[0] for v in per.values()), sum(v[1] for v in per.values())
        whole = sum(v[2] for v in per.values())
        small = [f"{per[s][0] / per[s][1]:.3f}" for s in ("label", "caption")]
        ph, ph_cpu = read_all(photo_paths, t)
        sent, lines = sum(r.recognised > 0 for r in ph), sum(len(r.lines) for r in ph)
        scored.append((round(found / total, 4), t))
        rows.append([t, f"{found / total:.3f}", f"{whole}/{len(val_text)}", *small, f"{val_cpu:,.0f}"]
                    + [f"{sent}/{len(photo_paths)}", lines, f"{ph_cpu:,.0f}"])  # fmt: skip
        print(rows[-1], flush=True)
    best = max(r for r, _ in scored)
    pick = max(t for r, t in scored if r >= best - 0.01)
    load = (load0 + os.getloadavg()[0]) / 2
    body = header("Text in pictures (OCR): the gate's box-score threshold (bench/ocr_gate.py)") + "\n".join(
        [
            f"`bench/ocr_gate.py`, whole run {time.perf_counter() - t0:.0f} s, under `nice -n 15`, load ~{load:.0f} "
            "(2 cores, other jobs running; CPU seconds are the figure). val = the validation variant of the "
            f"written-words set (`written-v1-val`, bench/written_set.py): {len(val_text)} pictures with drawn "
            f"text; photos = 9 sample photos + 404 Tux Paint photo stamps ({len(photo_paths)}, next to no text). "
            "Word recall = words of the drawn text found among the words read (folded as the keyword index "
            "folds them).",
            "",
            table(HEADERS, rows),
            "",
            f"Pick (the highest threshold with val word recall within 0.01 of the best): **{pick}** "
            "(gate version 1 had 0.6).",
        ]
    )
    print(body)
    if not args.no_write:
        write_section(SECTION, body)


if __name__ == "__main__":
    main()
