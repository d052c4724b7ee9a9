"""Benchmark 3: cold start, process start to first printed result of `pixseek search`, bundled model.

Indexes the bundled samples once (which exports the ONNX query encoders), then runs
`pixseek search "a dog" -k 5` as a fresh process several times and times the first line of output.
Usage: python bench/coldstart.py [--runs 7]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

from common import CACHE, ROOT, dump_json, header, table, write_section


def first_line_seconds(cmd: list[str], env: dict) -> float:
    t0 = time.perf_counter()
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, text=True)
    line = p.stdout.readline()
    dt = time.perf_counter() - t0
    p.wait()
    if not line or p.returncode != 0:
        raise SystemExit(f"search failed: {p.stderr.read()}")
    return dt


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=7)
    args = ap.parse_args()
    pixseek = str(Path(sys.executable).parent / "pixseek")
    db = CACHE / "coldstart-db"
    env = dict(os.environ, HF_HUB_OFFLINE="1")
    subprocess.run(
        [pixseek, "index", str(ROOT / "samples"), "--db", str(db)], check=True, env=env, stdout=subprocess.DEVNULL
    )
    rows, raw = [], {}
    for label, q in (("text", ["a dog"]), ("image", ["--image", str(ROOT / "samples" / "twemoji" / "dog-face.png")])):
        cmd = [pixseek, "search", *q, "--db", str(db), "-k", "5"]
        first_line_seconds(cmd, env)  # page cache warm, like any second use of the tool
        times = [first_line_seconds(cmd, env) for _ in range(args.runs)]
        raw[label] = times
        rows.append([label, " ".join(q).replace(str(ROOT) + "/", ""), statistics.median(times), min(times), max(times)])
    body = header("Cold start: `pixseek search` process start to first result (bundled model)")
    body += "\n" + table(["query", "command", "median s", "min s", "max s"], rows)
    body += f"\n\n{args.runs} runs each, a new process every time (OS file cache warm); target <= 2 s."
    write_section("coldstart", body)
    dump_json("coldstart", raw)
    print(body)


if __name__ == "__main__":
    main()
