"""Benchmark 4: peak RSS while indexing many small images (default 100,000) with the bundled model.

Runs `pixseek index` as a child process and samples the resident memory of it and of its decode
workers every 0.25 s. Growth = peak minus the RSS once the first batch is committed (model loaded).
Usage: python bench/memory.py [--n 100000]
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

from common import CACHE, dump_json, header, table, write_section
from corpora import corpus

from pixseek.store.database import peek_count


def rss(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def children(pid: int) -> list[int]:
    try:
        return [int(c) for c in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except OSError:
        return []


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=100_000)
    ap.add_argument("--model", default="pixseek-emoji")
    args = ap.parse_args()
    root = corpus("tiny", args.n)
    db = CACHE / "memory-db"
    shutil.rmtree(db, ignore_errors=True)
    pixseek = str(Path(sys.executable).parent / "pixseek")
    env = dict(os.environ, HF_HUB_OFFLINE="1")
    t0 = time.perf_counter()
    p = subprocess.Popen(
        [pixseek, "index", str(root), "--db", str(db), "--model", args.model, "--json"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env,
        text=True,
    )
    base = peak = peak_workers = 0
    samples = []
    next_rows = 0.0
    n_rows = 0
    while p.poll() is None:
        r = rss(p.pid)
        w = max((rss(c) for c in children(p.pid)), default=0)
        if time.perf_counter() >= next_rows:
            n_rows = peek_count(db)
            next_rows = time.perf_counter() + 2
        if not base and n_rows > 0:
            base = r
        peak, peak_workers = max(peak, r), max(peak_workers, w)
        samples.append((round(time.perf_counter() - t0, 2), r, w, n_rows))
        time.sleep(0.25)
    out, err = p.communicate()
    if p.returncode != 0:
        raise SystemExit(err)
    import json

    s = json.loads(out)
    growth = peak - base
    body = header(f"Peak memory while indexing {args.n:,} small images ({args.model})")
    body += "\n" + table(
        [
            "images",
            "embedded (distinct content)",
            "seconds",
            "files/s",
            "RSS after first batch MiB",
            "peak RSS MiB",
            "growth MiB",
            "peak decode-worker RSS MiB",
        ],
        [
            [
                f"{s['added']:,}",
                f"{s['embedded']:,}",
                s["seconds"],
                s["added"] / s["seconds"],
                base / 2**20,
                peak / 2**20,
                growth / 2**20,
                peak_workers / 2**20,
            ]
        ],
    )
    body += (
        "\n\nRSS of the `pixseek index` process sampled every 0.25 s; workers are forked decode "
        "processes (their RSS counts pages shared with the parent). The corpus reuses the bundled "
        "pictures at 33 sizes, so copies with identical bytes reuse a vector instead of being embedded. "
        "Target: growth < 1 GB."
    )
    write_section("memory", body)
    dump_json("memory", {"summary": s, "samples": samples[:: max(1, len(samples) // 400)]})
    print(body)


if __name__ == "__main__":
    main()
