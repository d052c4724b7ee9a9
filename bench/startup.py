"""Benchmark: the fixed cost of `pixseek index` - a one-image run, whole process, and where its time goes.

Runs `pixseek index ONE_PICTURE --db FRESH --model M` as a fresh process ``--runs`` times (the model's ONNX
export and its caches made by a warm-up run first, as for any later run of a model) and reports the
median wall and CPU seconds and peak RSS; then runs it once under cProfile with a CPU-time clock and
splits the CPU time into stages (imports included in the stage that triggers them). ``--before DIR``
times another pixseek source tree the same way, interleaved (DIR holds a ``pixseek`` package laid out as
installed: ``pixseek/index``, ``pixseek/store``, ...), to give the figures before a change.
Usage: python bench/startup.py [--runs 5] [--model vit-b-32-random] [--before /tmp/pixseek-before]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import ROOT, dump_json, header, table, write_section

# (label, function suffix as cProfile names it: "file:line(function)" matched on "path(function)")
STAGES = [
    ("open the database (SQLite, sqlite-utils, migrations)", "store/database.py", "open"),
    ("load the model (ONNX Runtime session)", "models/encoder.py", "for_indexing"),
    ("open the FAISS cache (FAISS import)", "store/vectors.py", "open"),
    ("scan and plan", "index/plan.py", "make_plan"),
    ("read, decode, embed, commit (one image)", "index/indexer.py", "_apply"),
    ("finish: removals, FAISS write", "index/indexer.py", "_finish"),
    ("zero-shot tags", "index/tagging.py", "tag_stage"),
    ("keyword index", "store/keywords.py", "sync"),
]

# For --before: the installed pixseek is an editable install whose import hook would win over PYTHONPATH.
NO_EDITABLE = "import sys; sys.meta_path[:] = [f for f in sys.meta_path if 'editable' not in repr(f).lower()]\n"
LAUNCH = NO_EDITABLE + "import runpy; runpy.run_module('pixseek', run_name='__main__', alter_sys=True)\n"
PROFILE = r"""
import cProfile, json, pstats, sys, time
argv = json.loads(sys.argv[1])
t0 = time.process_time()
pr = cProfile.Profile(time.process_time)
pr.enable()
try:
    sys.argv = argv
    from pixseek.cli import main
    main()
except SystemExit:
    pass
pr.disable()
out = {}
for (file, line, fn), (cc, nc, tt, ct, callers) in pstats.Stats(pr).stats.items():
    out.setdefault(f"{file}|{fn}", 0.0)
    out[f"{file}|{fn}"] = max(out[f"{file}|{fn}"], ct)
imports = sum(ct for (file, line, fn), (cc, nc, tt, ct, callers) in pstats.Stats(pr).stats.items()
              if fn == "<module>" and "pixseek/cli.py" in file)
out["__cli_import__"] = imports
out["__total__"] = time.process_time() - t0
print("PROFILE " + json.dumps(out))
"""


def one_run(python: str, env: dict, picture_dir: Path, model: str) -> tuple[float, float, float]:
    """(wall s, CPU s, peak RSS MB) of one fresh `pixseek index` process on a fresh data dir."""
    db = Path(tempfile.mkdtemp(prefix="startup-db-"))
    try:
        launch = ["-c", LAUNCH] if "PYTHONPATH" in env else ["-m", "pixseek"]
        cmd = [python, *launch, "index", str(picture_dir), "--db", str(db / "d"), "--model", model]
        t0 = time.perf_counter()
        p = subprocess.Popen(cmd, env=env, cwd=db, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        _, status, usage = os.wait4(p.pid, 0)
        wall = time.perf_counter() - t0
        p.returncode = os.waitstatus_to_exitcode(status)
        if p.returncode != 0:
            raise SystemExit(f"pixseek index failed: {p.stderr.read().decode()[-2000:] if p.stderr else ''}")
        p.stderr.close() if p.stderr else None
        return wall, usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024
    finally:
        shutil.rmtree(db, ignore_errors=True)


def breakdown(python: str, env: dict, picture_dir: Path, model: str) -> dict[str, float]:
    db = Path(tempfile.mkdtemp(prefix="startup-prof-"))
    try:
        argv = ["pixseek", "index", str(picture_dir), "--db", str(db / "d"), "--model", model]
        code = (NO_EDITABLE if "PYTHONPATH" in env else "") + PROFILE
        out = subprocess.run(
            [python, "-c", code, json.dumps(argv)], env=env, cwd=db, capture_output=True, text=True, check=True
        ).stdout
        prof = json.loads(next(line for line in out.splitlines() if line.startswith("PROFILE "))[8:])
    finally:
        shutil.rmtree(db, ignore_errors=True)
    got = {"imports of the CLI and the index run": prof["__cli_import__"]}
    for label, file, fn in STAGES:
        got[label] = sum(v for k, v in prof.items() if k.split("|")[0].endswith(file) and k.split("|")[1] == fn)
    got["other (interpreter start excluded)"] = prof["__total__"] - sum(got.values())
    got["total CPU under the profiler"] = prof["__total__"]
    return got


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--model", default="vit-b-32-random")
    ap.add_argument("--before", default=None, help="a pixseek source tree to time first (PYTHONPATH)")
    args = ap.parse_args()
    python = sys.executable
    base = dict(os.environ, HF_HUB_OFFLINE="1", TOKENIZERS_PARALLELISM="false")
    variants = {"after": base}
    if args.before:
        variants = {"before": dict(base, PYTHONPATH=args.before), "after": base}
    pics = Path(tempfile.mkdtemp(prefix="startup-pic-"))
    shutil.copy(ROOT / "samples" / "twemoji" / "dog-face.png", pics / "dog-face.png")
    try:
        for env in variants.values():  # warm-up: export, prompt vectors, optimised session cache, file cache
            one_run(python, env, pics, args.model)
        runs: dict[str, list] = {v: [] for v in variants}
        for _ in range(args.runs):
            for v, env in variants.items():  # interleaved
                runs[v].append((*one_run(python, env, pics, args.model), os.getloadavg()[0]))
                print(v, runs[v][-1], flush=True)
        stages = {v: breakdown(python, env, pics, args.model) for v, env in variants.items()}
    finally:
        shutil.rmtree(pics, ignore_errors=True)
    rows = []
    for v in variants:
        wall, cpu, rss, load = zip(*runs[v])
        rows.append(
            [
                v,
                statistics.median(wall),
                min(wall),
                statistics.median(cpu),
                statistics.median(rss),
                f"{min(load):.1f}-{max(load):.1f}",
            ]
        )
    body = header(f"Start-up cost: a one-image `pixseek index` ({args.model}, CPU, ONNX export)")
    body += "\n" + table(["code", "wall s (median)", "wall s (min)", "CPU s (median)", "peak RSS MB", "load avg"], rows)
    labels = list(next(iter(stages.values())))
    body += "\n\nWhere the CPU time goes (one run under cProfile with a CPU clock; imports count in the stage "
    body += "that triggers them; the profiler adds its own overhead):\n\n"
    body += table(
        ["stage", *[f"{v} CPU s" for v in variants]], [[k, *[stages[v][k] for v in variants]] for k in labels]
    )
    body += (
        f"\n\n{args.runs} runs of each, interleaved, each a fresh process on a fresh data dir after a warm-up run "
        "(the model's export and caches exist, OS file cache warm). CPU s = user + system seconds of the process "
        "(os.wait4); load avg = the 1-minute load average after each run (min-max; the machine is shared)."
    )
    write_section("startup", body)
    dump_json("startup", {"runs": runs, "stages": stages})
    print(body)


if __name__ == "__main__":
    main()
