"""Stress: kill -9 the indexer at >= 20 random fault points on a corpus of thousands of images, with a
search loop running throughout, then check that every re-run converges to a clean run's result.

Each round: pick a point (scan, decode, embed, commit, committed, faiss-write, faiss-swap) and a
count at random (seeded), run `pixseek index` with PIXSEEK_FAULT set so it SIGKILLs itself there
(sometimes twice in a row, on the partial state), then run it to completion and compare with a
clean run: same paths, identical vectors, FAISS count == database count, integrity ok, no duplicate
or missing rows. Also runs the fuzz tests with more examples. Writes the figures to RESULTS.md.
Usage: python bench/faults.py [--kills 24] [--images 2000] [--fuzz 3000]
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import subprocess
import sys
import threading
import time

import numpy as np
from common import CACHE, ROOT, dump_json, header, table, write_section
from corpora import subset

POINTS = ["scan", "decode", "embed", "commit", "committed", "faiss-write", "faiss-swap"]


def index(folder, db, fault=None) -> int:
    env = dict(os.environ, HF_HUB_OFFLINE="1")
    env.pop("PIXSEEK_FAULT", None)
    if fault:
        env["PIXSEEK_FAULT"] = fault
    p = subprocess.run(
        [
            sys.executable,
            "-m",
            "pixseek",
            "index",
            str(folder),
            "--db",
            str(db),
            "--model",
            "tiny-random",
            "--batch-size",
            "32",
            "--workers",
            "2",
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
    )
    if p.returncode not in (0, -9):
        raise SystemExit(f"index failed ({p.returncode}): {p.stderr[-2000:]}")
    return p.returncode


def snapshot(db) -> dict[str, bytes]:
    from pixseek.store.database import Store

    st = Store.open(db)
    try:
        return {p: v for p, v in st.conn.execute("SELECT path, vector FROM images")}
    finally:
        st.close()


def check(db, clean: dict[str, bytes]) -> list[str]:
    from pixseek.store.database import Store
    from pixseek.store.vectors import VectorIndex

    problems = []
    st = Store.open(db)
    try:
        if st.integrity_check() != "ok":
            problems.append("integrity")
        rows = list(st.conn.execute("SELECT id, path, vector FROM images"))
        paths = [r[1] for r in rows]
        if len(paths) != len(set(paths)):
            problems.append("duplicate rows")
        if set(paths) != set(clean):
            problems.append(f"{len(set(clean) - set(paths))} missing, {len(set(paths) - set(clean))} extra")
        if any(clean.get(p) != v for _, p, v in rows):
            problems.append("vectors differ")
        vi = VectorIndex.load_file(st)
        if vi.ntotal != len(rows):
            problems.append(f"faiss {vi.ntotal} != db {len(rows)}")
        for rid, _, v in rows[:: max(1, len(rows) // 50)]:
            if not np.array_equal(vi.reconstruct(rid), np.frombuffer(v, "<f4")):
                problems.append("faiss vector differs")
                break
    except Exception as e:
        problems.append(f"{type(e).__name__}: {e}")
    finally:
        st.close()
    return problems


def search_loop(db, stop, stats) -> None:
    from pixseek.errors import PixseekError
    from pixseek.search.engine import Engine

    rng = np.random.default_rng(0)
    eng = None
    while not stop.is_set():
        try:
            if eng is None:
                eng = Engine.open(db)
            eng.refresh()
            q = rng.standard_normal(eng.vectors.dim).astype(np.float32)
            with eng.store.snapshot():  # one snapshot for the engine's lookup and this check
                res = eng.search_vector(q / np.linalg.norm(q), 10)
                live = eng.store.get(r.id for r in res)
            stats["stale"] += sum(1 for r in res if r.id not in live)
            stats["queries"] += 1
        except PixseekError:
            stats["not_ready"] += 1  # no index yet (first round) or empty: a message, not a failure
            eng = None
            time.sleep(0.05)
        except Exception as e:
            stats["errors"].append(repr(e))
            eng = None


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--kills", type=int, default=24)
    ap.add_argument("--images", type=int, default=2000)
    ap.add_argument("--fuzz", type=int, default=3000)
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args()
    rnd = random.Random(args.seed)
    folder = subset("small", args.images)
    work = CACHE / "faults"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    index(folder, work / "clean")
    clean = snapshot(work / "clean")
    db = work / "db"
    stats = {"queries": 0, "stale": 0, "not_ready": 0, "errors": []}
    stop = threading.Event()
    t = threading.Thread(target=search_loop, args=(db, stop, stats), daemon=True)
    t.start()
    rounds, kills, converged, lost = [], 0, 0, 0
    try:
        while kills < args.kills:
            shutil.rmtree(db, ignore_errors=True)  # each round indexes from scratch, so every point is reached
            fired = []
            for _ in range(1 if rnd.random() < 0.7 else 2):  # sometimes kill the re-run too (partial state)
                point = rnd.choice(POINTS)
                n = (
                    1
                    if point.startswith("faiss")
                    else rnd.randint(
                        1,
                        {
                            "scan": args.images,
                            "decode": args.images // 3,
                            "embed": args.images // 40,
                            "commit": args.images // 40,
                            "committed": args.images // 40,
                        }[point],
                    )
                )
                rc = index(folder, db, f"{point}:{n}")
                fired.append(f"{point}:{n}" + ("" if rc == -9 else " (run ended first)"))
                kills += rc == -9
            index(folder, db)
            problems = check(db, clean)
            converged += not problems
            lost += len(clean) - len(snapshot(db).keys() & clean.keys())
            rounds.append({"faults": fired, "problems": problems})
            print(f"round {len(rounds)}: {', '.join(fired)} -> {problems or 'converged'}", flush=True)
    finally:
        stop.set()
        t.join(30)
    fuzz = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests/test_fuzz.py"],
        cwd=ROOT,
        env=dict(os.environ, PIXSEEK_FUZZ_EXAMPLES=str(args.fuzz)),
        capture_output=True,
        text=True,
    )
    fuzz_ok = fuzz.returncode == 0
    body = header(f"Faults: {kills} kills at random points, {args.images:,} images, a search loop throughout")
    body += "\n" + table(
        [
            "kills (SIGKILL)",
            "rounds",
            "rounds converged",
            "images lost",
            "queries served during indexing",
            "query errors",
            "results pointing at deleted rows",
            "fuzz examples (4 targets)",
            "fuzz failures",
        ],
        [
            [
                kills,
                len(rounds),
                converged,
                lost,
                stats["queries"],
                len(stats["errors"]),
                stats["stale"],
                4 * args.fuzz,
                0 if fuzz_ok else "see log",
            ]
        ],
    )
    body += (
        "\n\nConverged = after the killed run(s), one normal run gives the clean run's exact paths and "
        "vectors, FAISS count == database count, `PRAGMA integrity_check` ok, no duplicates. Points: "
        + ", ".join(POINTS)
        + ". Fuzzing (hypothesis): image decoding, the upload path, the query and "
        "filter parsers; failures = unhandled exceptions."
    )
    write_section("faults", body)
    dump_json("faults", {"rounds": rounds, "stats": stats, "fuzz_tail": fuzz.stdout[-2000:]})
    print(body)
    if not fuzz_ok:
        print(fuzz.stdout[-3000:])


if __name__ == "__main__":
    main()
