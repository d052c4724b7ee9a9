"""Indexing on Ray Data against the local indexer on one node, and the driver's commit rate, in one run.

1. **Local vs Ray, one node.** The same corpus (the first N Openclipart PNGs, sorted by path) and the same
   model, each run on a fresh data dir, interleaved ``local, ray, local, ray, ...``:
     local      ``Indexer.run`` in this process (decode processes + the model, loaded once and cached)
     ray        ``Indexer.run(ray=...)`` on a Ray started once for the benchmark (``ray.init``), as a
                node of a running cluster would be: decode tasks + encoder actors, the driver commits
     local-cli  ``pixseek index`` as a user types it (a new process: imports and model start-up included)
     ray-cli    ``pixseek index --ray`` as a user types it: starts a local Ray for the run, stops it after
   Images/s of the whole run and of the apply step (``work_seconds``: model start-up excluded), and CPU
   seconds of the whole process tree (this process, its children, Ray's workers: sampled from /proc).
2. **Driver commit rate.** Pre-made vectors (512-d, the size of ViT-B-32's) go through the driver's
   per-batch loop: classify each file (``Indexer._classify``), attach its vector, hand the batch to the
   local run's ``Writer`` thread, which commits it in one transaction and adds it to FAISS. Rows/s per
   batch size: the ceiling of any number of encoder nodes, since one driver commits everything.

Usage: python bench/ray_index.py [--n 300] [--reps 2] [--model pixseek-photo] [--rows 20000] [--write]
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from common import header, table, write_section

from pixseek.index.pipeline import CPU_BATCH

CORPUS = Path("/tmp/data/openclipart/images")
TICK = os.sysconf("SC_CLK_TCK")


class TreeCPU:
    """CPU seconds of this process and every descendant (Ray's raylet and workers included), sampled every
    0.2 s from /proc, plus reaped children: a process that ends between samples loses < 0.2 s."""

    def __init__(self):
        self.seen: dict[int, float] = {}
        self._stop = threading.Event()
        self._t = threading.Thread(target=self._loop, daemon=True)

    @staticmethod
    def _tree() -> dict[int, float]:
        procs: dict[int, tuple[int, float]] = {}
        for d in os.listdir("/proc"):
            if d.isdigit():
                try:
                    f = Path(f"/proc/{d}/stat").read_text().rsplit(")", 1)[1].split()
                except OSError:
                    continue
                procs[int(d)] = (int(f[1]), (int(f[11]) + int(f[12])) / TICK)
        me, out, todo = os.getpid(), {}, [os.getpid()]
        kids: dict[int, list[int]] = {}
        for pid, (ppid, _) in procs.items():
            kids.setdefault(ppid, []).append(pid)
        while todo:
            p = todo.pop()
            if p != me and p in procs:
                out[p] = procs[p][1]
            todo += kids.get(p, [])
        return out

    def _loop(self) -> None:
        while not self._stop.wait(0.2):
            self.seen.update(self._tree())

    def __enter__(self):
        self.r0 = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
        self.before = self._tree()
        self._t.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._t.join()
        self.seen.update(self._tree())
        me, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
        own = (me.ru_utime + me.ru_stime) - (self.r0[0].ru_utime + self.r0[0].ru_stime)
        reaped = (kids.ru_utime + kids.ru_stime) - (self.r0[1].ru_utime + self.r0[1].ru_stime)
        # Descendants seen alive: their CPU since the start (reaped ones are in `reaped` too: count once).
        alive = sum(v - self.before.get(p, 0.0) for p, v in self.seen.items())
        self.cpu = own + max(reaped, alive)


def corpus(n: int, into: Path) -> Path:
    root = into / "pics"
    root.mkdir(parents=True)
    for k, p in enumerate(sorted(CORPUS.rglob("*.png"))[:n]):
        shutil.copyfile(p, root / f"{k:05d}-{p.name}")
    return root


def run_local(root: Path, db: Path, model: str, batch: int):
    from pixseek.index.indexer import Indexer

    return Indexer(db, model=model, batch_size=batch, export_encoders=False, progress=False).run([root])


def run_ray(root: Path, db: Path, model: str, batch: int, address: str):
    from pixseek.index.indexer import Indexer

    return Indexer(db, model=model, batch_size=batch, export_encoders=False, ray=address).run([root])


def run_cli(root: Path, db: Path, model: str, batch: int, *extra: str):
    cmd = [sys.executable, "-m", "pixseek", "index", str(root), "--db", str(db), "--model", model]
    cmd += ["--batch-size", str(batch), "--json", *extra]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True)
    import json

    return json.loads(out.stdout.strip().splitlines()[-1])


def compare(args, tmp: Path) -> list[list]:
    import ray

    root = corpus(args.n, tmp)
    run_local(root, tmp / "warm", args.model, args.batch)  # the model and its caches exist before timing
    ray.init(include_dashboard=False, log_to_driver=False, logging_level="ERROR")
    run_ray(root, tmp / "warm-ray", args.model, args.batch, "local")  # Ray's workers up, as on a running cluster
    kinds = ("local", "ray", "local-cli", "ray-cli")
    rows: dict[str, list[tuple[float, float, float, float]]] = {k: [] for k in kinds}
    try:
        for rep in range(args.reps):
            for kind in kinds:
                if kind == "ray-cli":
                    ray.shutdown()  # the user's command starts its own Ray
                db = tmp / f"db-{kind}-{rep}"
                load = os.getloadavg()[0]
                t0 = time.perf_counter()
                with TreeCPU() as cpu:
                    if kind == "local":
                        s = run_local(root, db, args.model, args.batch).to_dict()
                    elif kind == "ray":
                        s = run_ray(root, db, args.model, args.batch, "local").to_dict()
                    elif kind == "local-cli":
                        s = run_cli(root, db, args.model, args.batch)
                    else:
                        s = run_cli(root, db, args.model, args.batch, "--ray")
                wall = time.perf_counter() - t0
                assert s["added"] == args.n, s
                rows[kind].append((wall, s["work_seconds"], cpu.cpu, load))
                work = s["work_seconds"]
                print(f"{kind} {rep}: {wall:.1f} s wall, {work:.1f} s work, {cpu.cpu:.1f} CPU s, load {load:.1f}")
                if kind == "ray-cli":
                    ray.init(include_dashboard=False, log_to_driver=False, logging_level="ERROR")
                shutil.rmtree(db)
    finally:
        ray.shutdown()
    med = {k: sorted(v)[len(v) // 2] for k, v in rows.items()}
    out = []
    for kind, (wall, work, cpu, load) in med.items():
        ratio = med["local-cli" if kind.endswith("cli") else "local"][0] / wall
        out.append([kind, args.n / wall, args.n / work, cpu, f"{ratio:.2f}", f"{load:.1f}"])
    return out


def commit_rate(args, tmp: Path) -> list[list]:
    import numpy as np

    from pixseek.index.indexer import Indexer, Summary
    from pixseek.index.pipeline import Job, Prepared
    from pixseek.index.plan import Plan
    from pixseek.index.scan import FileEntry
    from pixseek.index.writer import Writer
    from pixseek.store import DataDir, Store, VectorIndex

    out = []
    rng = np.random.default_rng(0)
    dim = 512
    for size in (32, 64, 256, 1024):  # 32: the CPU default batch (pipeline.CPU_BATCH)
        dd = DataDir.resolve(tmp / f"commit-{size}")
        dd.create()
        with Store.open(dd, create=True) as store:
            store.check_model("bench#0", "bench", dim, adopt=True)
            vi = VectorIndex.open(store)
            s, plan = Summary(), Plan()
            ix = Indexer(dd)
            writer = Writer(dd, lambda st, ops, vi=vi, s=s, ix=ix: ix._write(st, vi, "bench#0", ops, s))
            vecs = rng.standard_normal((size, dim), dtype=np.float32)
            vecs /= np.linalg.norm(vecs, axis=1, keepdims=True)
            load = os.getloadavg()[0]
            c0, t0 = time.process_time(), time.perf_counter()
            writer.start()
            for start in range(0, args.rows, size):
                jobs, preps = [], []
                for k in range(start, min(start + size, args.rows)):
                    e = FileEntry(f"/data/pics/{k // 1000:04d}/{k:08d}.jpg", "/data/pics", 50_000 + k, k, 1, k + 1)
                    jobs.append(Job(e, None, None))
                    preps.append(Prepared(e, f"{k:032x}", True, 640, 480, "JPEG", phash=f"{k:016x}"))
                ops = [Indexer._classify(store, j, p, plan) for j, p in zip(jobs, preps)]
                Indexer._assign(vecs[: len(ops)], ops, s)
                writer.put(ops)
            writer.finish()
            wall, cpu = time.perf_counter() - t0, time.process_time() - c0
            assert s.added == args.rows and store.count() == args.rows
        out.append([size, args.rows / wall, args.rows / cpu, cpu, f"{load:.1f}"])
        print(f"commit batch {size}: {args.rows / wall:,.0f} rows/s, {cpu:.1f} CPU s")
        shutil.rmtree(dd.root)
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=300)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--batch", type=int, default=CPU_BATCH, help="files per batch (default: the CPU default)")
    ap.add_argument("--model", default="pixseek-photo")
    ap.add_argument("--rows", type=int, default=20_000)
    ap.add_argument("--write", action="store_true", help="write the section in bench/RESULTS.md")
    args = ap.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    with tempfile.TemporaryDirectory(prefix="pixseek-ray-bench-") as d:
        tmp = Path(d)
        commits = commit_rate(args, tmp)
        speed = compare(args, tmp)
    body = header("Indexing on Ray Data: local vs Ray on one node, and the driver's commit rate")
    body += (
        f"\n{args.n} Openclipart PNGs (Debian openclipart-png, the first {args.n} by path), model {args.model}, "
        f"batch {args.batch}, a fresh data dir per run, interleaved local / ray / local-cli / ray-cli x {args.reps} "
        "(median by wall time). CPU s: this process and all its descendants (Ray's workers included). "
        "local: `Indexer.run` in the benchmark's process (its model loaded once, before timing); ray: the same on "
        "a Ray started once (a node of a running cluster; the encoder actors load the model in every run); "
        "local-cli / ray-cli: `pixseek index` / `pixseek index --ray` as typed (a new process; ray-cli starts "
        "and stops a local Ray). vs local: the local run's wall time / this one's (in-process pair and "
        "command pair; the baseline is 1.00).\n\n"
    )
    body += table(["run", "images/s (whole run)", "images/s (apply)", "CPU s", "vs local", "load"], speed)
    body += (
        f"\n\nDriver commit rate: {args.rows:,} pre-made 512-d vectors through the driver's per-batch loop "
        "(classify, attach the vector, the local run's Writer thread: one transaction per batch + FAISS add).\n\n"
    )
    body += table(["batch", "rows/s (wall)", "rows per CPU s", "CPU s", "load"], commits)
    print(body)
    if args.write:
        write_section("ray-index", body)


if __name__ == "__main__":
    main()
