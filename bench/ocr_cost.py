"""What reading the text in pictures costs per 1,000 pictures (issue 15): CPU seconds and images/s of the
detection pass alone (what every picture gets) and of the full reading (detection, the gate, recognition of
the pictures it sends on), decoding included, with the load average beside each run.

Sets (bench/ocr.py makes and caches the first three; bench/written_set.py the fourth):
* ``photos``: the 9 sample photos (samples/photos, scikit-image, CC0) and the 404 Tux Paint photo stamps
  (tuxpaint-stamps-default 2022.06.04, GPL-2.0-or-later), 93-512 px: the only real photographs on this
  machine, small ones;
* ``camera``: the 9 sample photos enlarged to 4032x3024 (12 MP JPEG, q90, sensor-like noise): what a phone
  photo's size adds;
* ``screens``: 1280x800 Chromium screenshots of local HTML (the README and docs/architecture.md rendered,
  Debian's Node.js, Valgrind and libffi manuals), the top of each page and 1,600 px down;
* ``written``: the written-words set of bench/hybrid_ocr.py (301 Tux Paint and Openclipart pictures, 175
  with signs, labels, captions, overlays or text windows drawn on them).

Two readers (one per core), one ONNX Runtime thread each, as ``pixseek index --ocr`` runs them. CPU s =
``time.process_time`` of the whole process (both readers) over the run; images/s = pictures / wall s.
The baseline beside each figure is bench/ocr.py's run of 2026-11-29 (CPU s per picture x 1,000).

A benchmark, not a test. Usage: python bench/ocr_cost.py [--screens 40] [--no-write]
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

from common import CACHE, header, table, write_section
from ocr import camera, detect_only, full, photos, screens, timed
from written_set import build

from pixseek.models import ocr

TUX, CLIP = Path("/tmp/data/tuxpaint"), Path("/tmp/data/openclipart")
SECTION = f"ocr-cost, gate {ocr.GATE_VERSION}"  # one per gate version: the previous one stays as a baseline
# bench/ocr.py, 2026-11-29 (section "Text in pictures (OCR)"): (pictures, detect img/s, detect CPU s/img,
# read img/s, read CPU s/img); its load was not recorded. Its screens set was 24 of the same screenshots.
BASELINE = {
    "photos": (413, 39.8, 0.013, 23.5, 0.022),
    "camera": (9, 1.568, 0.418, 1.534, 0.438),
    "screens": (24, 3.247, 0.305, 0.296, 2.243),
}
HEADERS = ["set", "pictures", "detect CPU s / 1,000", "baseline", "detect img/s", "baseline", "load",
           "full CPU s / 1,000", "baseline", "full img/s", "baseline", "load", "full: wall min / 1,000",
           "sent to recognition"]  # fmt: skip


def _base(name: str, i: int) -> str:
    """Field ``i`` of the baseline of set ``name`` as the table shows it (CPU s per picture x 1,000)."""
    if name not in BASELINE:
        return "-"
    v = BASELINE[name][i]
    return f"{v * 1000:,.0f}" if i in (2, 4) else f"{v:.3g}"


def run(paths: list[Path], work) -> tuple[float, float, list, float]:
    """(images/s, CPU s per picture, results, load average over the run) with 2 readers."""
    before = os.getloadavg()[0]
    ips, cpu, got = timed(paths, work, 2)
    return ips, cpu, got, (before + os.getloadavg()[0]) / 2


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--screens", type=int, default=40, help="screenshots to take (cached) and read")
    ap.add_argument("--sets", default="photos,camera,screens,written", help="which sets, comma-separated")
    ap.add_argument("--no-write", action="store_true", help="print only; leave RESULTS.md alone")
    args = ap.parse_args()
    ocr.check_available()
    written = CACHE / "written"
    sets = {  # made (and cached) when asked for
        "photos": photos,
        "camera": camera,
        "screens": lambda: screens(args.screens),
        "written": lambda: [written / "pictures" / p.file for p in build(written, TUX, CLIP)],
    }
    rows, t0 = [], time.perf_counter()
    for name in args.sets.split(","):
        paths = sets[name]()
        d_ips, d_cpu, _, d_load = run(paths, detect_only)
        f_ips, f_cpu, reads, f_load = run(paths, full)
        sent = sum(r.recognised > 0 for r in reads)
        b = lambda i, name=name: _base(name, i)  # noqa: E731
        rows.append(
            [name, len(paths), f"{d_cpu * 1000:,.0f}", b(2), f"{d_ips:.3g}", b(1), f"{d_load:.1f}"]
            + [f"{f_cpu * 1000:,.0f}", b(4), f"{f_ips:.3g}", b(3), f"{f_load:.1f}", f"{1000 / f_ips / 60:.1f}"]
            + [f"{sent}/{len(paths)}"]
        )
        print(rows[-1], flush=True)
    body = header(
        f"Text in pictures (OCR): cost per 1,000 pictures, gate {ocr.GATE_VERSION} (bench/ocr_cost.py)"
    ) + "\n".join(
        [
            f"`bench/ocr_cost.py`, whole run {time.perf_counter() - t0:.0f} s, under `nice -n 15` on 2 cores "
            f"shared with other jobs (load = 1-minute load average over each run). rapidocr 3.10, model "
            f"`{ocr.MODEL_VERSION}`; two readers, one ONNX Runtime thread each; decoding included. CPU s = both "
            "readers' CPU time; with 2 cores free, images/s would be near 2,000 / (CPU s per 1,000). Baseline = "
            "bench/ocr.py's run of 2026-11-29 (same pictures; its screens were 24 of these; load not recorded).",
            "",
            table(HEADERS, rows),
            "",
            "Sets: photos = 9 sample photos (scikit-image, CC0) + 404 Tux Paint photo stamps, 93-512 px (no "
            "full-size camera photos exist on this machine); camera = the 9 sample photos enlarged to 12 MP "
            "with noise; screens = 1280x800 Chromium screenshots of the README, docs/architecture.md and "
            "Debian's Node.js, Valgrind and libffi HTML manuals; written = bench/written_set.py (301 pictures, "
            "175 with drawn text). Detection only = every picture's cost before the gate; full = what "
            "`pixseek index --ocr` spends (the gate sends only pictures with text boxes to recognition).",
        ]
    )
    print(body)
    if not args.no_write:
        write_section(SECTION, body)


if __name__ == "__main__":
    main()
