"""Benchmark: `pixseek serve` under load: 1, 8 and 32 concurrent clients, QPS, p50/p95 latency, CPU.

Builds real pixseek data dirs of synthetic vectors through the store layer, as an index run leaves
them: rows inserted with ``Store.insert_image`` in ``Store.batch`` transactions, the keyword index
synced, the FAISS file built by ``VectorIndex.build_usable`` (the ``auto`` type: exact Flat up to
200,000 vectors, IVF above, tuned to recall@10 >= 0.95 on synthetic text-like queries as in
bench/query.py) and saved. The vectors have the bundled model's size (pixseek-photo, 768) and its model
id, so the service encodes real text queries with the real ONNX text encoder. The service runs in its
own process under uvicorn (``create_app`` + ``Backend``, the same objects `pixseek serve` runs); the
clients are threads of another process, each with one keep-alive HTTP connection, sending requests back
to back for a fixed time. text = POST /search with an everyday query (hybrid, k = 20); semantic = the
same in semantic mode (the vector alone, no keyword index); similar =
GET /similar/{random id} (no encoding). "one lock" holds the store's lock for the whole query (encode
included); "split" (the default) encodes outside it.

Usage: python bench/serve.py [--sizes 100000,1000000] [--clients 1,8,32] [--seconds 15]
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import random
import shutil
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
from common import CACHE, dump_json, header, table, write_section

DIM = 768  # pixseek-photo's vector size (checked against its export in model_id())
QUERIES = [
    "a dog on a beach",
    "a cat asleep on a sofa",
    "a red car at night",
    "a bowl of soup",
    "mountains with snow",
    "a birthday cake with candles",
    "a bicycle leaning on a wall",
    "children playing football",
    "a sunset over the sea",
    "a cup of coffee",
    "a city street in the rain",
    "a horse in a field",
    "a plate of pasta",
    "an old church",
    "a bird on a branch",
    "a laptop on a desk",
    "a wedding dress",
    "fireworks",
    "a forest path in autumn",
    "a boat on a lake",
    "a pizza",
    "a bridge at night",
    "a snowman",
    "a train station",
    "flowers in a vase",
    "a person reading a book",
    "a skyscraper",
    "a guitar",
    "a bowl of fruit",
    "a beach with palm trees",
    "invoice 2291",
    "IMG_2024 holiday",
    "a screenshot of a chart",
    "a handwritten note",
    "a passport photo",
    "a kitchen",
    "a dog wearing a hat",
    "a red apple",
    "two people hugging",
    "a tent in the mountains",
]


def model_id() -> str:
    """The bundled model's id, from its ONNX export (made once, as the first index run makes it)."""
    from pixseek.models import export, load_torch
    from pixseek.models.registry import resolve

    found = export.exported_for(resolve("pixseek-photo"))
    if found is None:
        export.export(load_torch("pixseek-photo", "cpu"))
        found = export.exported_for(resolve("pixseek-photo"))
    assert found is not None, "pixseek-photo could not be exported to ONNX"
    assert found[1]["dim"] == DIM, found[1]
    return found[1]["model_id"]


def synthetic(n: int, seed: int, centers: np.ndarray, shift: np.ndarray | None = None) -> np.ndarray:
    rng = np.random.default_rng(seed)
    x = centers[rng.integers(0, len(centers), n)] + rng.standard_normal((n, DIM)).astype(np.float32) / np.sqrt(DIM) * 4
    if shift is not None:
        x = x + shift
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def make_db(n: int, mid: str) -> tuple[Path, dict]:
    """A data dir of ``n`` synthetic images (made once, kept in the bench cache) and how it was built."""
    from pixseek.store import Store, VectorIndex

    root = CACHE / "serve" / f"n{n}"
    facts_file = root / "bench-facts.json"
    if facts_file.exists():
        return root, json.loads(facts_file.read_text())
    shutil.rmtree(root, ignore_errors=True)
    rng = np.random.default_rng(1)
    centers = rng.standard_normal((2000, DIM)).astype(np.float32) / np.sqrt(DIM) * 4
    gap = rng.standard_normal(DIM).astype(np.float32) / np.sqrt(DIM) * 3
    t0 = time.perf_counter()
    with Store.open(root, create=True) as st:
        st.check_model(mid, "pixseek-photo", DIM, adopt=True)
        step = 10_000
        for start in range(0, n, step):
            with st.batch() as b:
                for i, v in enumerate(synthetic(min(step, n - start), 100 + start, centers)):
                    j = start + i
                    st.insert_image(
                        path=f"/synthetic/{j // 1000:04d}/img{j:07d}.jpg",
                        root="/synthetic",
                        size=200_000 + j % 5000,
                        mtime_ns=1_700_000_000_000_000_000 + j * 1_000_000_000,
                        digest=f"{j:032x}",
                        width=1024 + j % 7,
                        height=768,
                        fmt="JPEG",
                        model_id=mid,
                        blob=v.tobytes(),
                    )
                b.changed = True
        insert_s = time.perf_counter() - t0
        with st.batch():
            st.sync_keywords()
        np.save(st.data_dir.tuning_queries, synthetic(200, 7, centers, shift=gap))
        t1 = time.perf_counter()
        vi = VectorIndex.build_usable(st)
        vi.save(st)
        facts = {
            "insert_s": insert_s,
            "keywords_s": t1 - t0 - insert_s,
            "build_s": time.perf_counter() - t1,
            "factory": vi.factory,
            "params": vi.params or "-",
            "recall": vi.recall,
            "db_mib": st.data_dir.db.stat().st_size / 2**20,
        }
    facts_file.write_text(json.dumps(facts))
    print(f"made {n:,} rows: {facts}", flush=True)
    return root, facts


# --- the server (a child process) ---------------------------------------------------------------------
def server_main(db: str, port: int, locks: str) -> None:
    import uvicorn

    from pixseek.service.app import create_app
    from pixseek.service.backend import Backend

    backend = Backend(db, split_locks=locks == "split")
    backend.warm()
    uvicorn.run(create_app(backend), host="127.0.0.1", port=port, log_level="warning", access_log=False)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


class Server:
    def __init__(self, db: Path, locks: str):
        self.port = _free_port()
        cmd = [sys.executable, __file__, "_server", str(db), str(self.port), locks]
        self.proc = subprocess.Popen(cmd, start_new_session=True)
        deadline = time.time() + 600
        while True:
            try:
                if request(self.port, "GET", "/health")[0] == 200:
                    break
            except OSError:
                pass
            assert self.proc.poll() is None, "the server died"
            assert time.time() < deadline, "the server did not start"
            time.sleep(0.5)

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(30)


def request(port: int, method: str, path: str, body: bytes | None = None, conn=None):
    c = conn or http.client.HTTPConnection("127.0.0.1", port, timeout=120)
    headers = {"Content-Type": "application/json"} if body else {}
    c.request(method, path, body=body, headers=headers)
    r = c.getresponse()
    data = r.read()
    if conn is None:
        c.close()
    return r.status, data


# --- the load ------------------------------------------------------------------------------------------
def load(port: int, kind: str, clients: int, seconds: float, n: int) -> dict:
    """``clients`` threads sending requests back to back for ``seconds`` (after a 2 s warm-up)."""
    lat: list[float] = []
    errors = [0]
    lock = threading.Lock()
    start = time.perf_counter() + 2.0
    stop = start + seconds

    def client(seed: int) -> None:
        rng = random.Random(seed)
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
        try:
            while (now := time.perf_counter()) < stop:
                if kind in ("text", "semantic"):
                    mode = "hybrid" if kind == "text" else "semantic"
                    body = json.dumps({"text": rng.choice(QUERIES), "k": 20, "mode": mode}).encode()
                    status, _ = request(port, "POST", "/search", body, conn)
                else:
                    status, _ = request(port, "GET", f"/similar/{rng.randint(1, n)}?k=20", None, conn)
                took = time.perf_counter() - now
                if now >= start:
                    with lock:
                        lat.append(took)
                        errors[0] += status != 200
        finally:
            conn.close()

    threads = [threading.Thread(target=client, args=(i,)) for i in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    ms = np.asarray(lat) * 1000
    return {
        "requests": len(lat),
        "errors": errors[0],
        "qps": len(lat) / seconds,
        "p50": float(np.percentile(ms, 50)),
        "p95": float(np.percentile(ms, 95)),
    }


def run_cell(server: Server, kind: str, clients: int, seconds: float, n: int) -> dict:
    me = os.getpid()
    c0, s0, t0 = _cpu_seconds(me), _cpu_seconds(server.proc.pid), time.perf_counter()
    r = load(server.port, kind, clients, seconds, n)
    wall = time.perf_counter() - t0
    r["server_cores"] = (_cpu_seconds(server.proc.pid) - s0) / wall
    r["client_cores"] = (_cpu_seconds(me) - c0) / wall
    r["server_rss_mib"] = _rss_mib(server.proc.pid)
    return r


def in_process(db: Path, n: int, count: int = 100) -> dict[str, tuple[float, float]]:
    """The baseline: the same queries through `Engine.search` in this process, one at a time (no HTTP)."""
    from pixseek.search import Engine

    rng = random.Random(0)
    out = {}
    with Engine.open(db) as eng:
        eng.search([QUERIES[0]], k=20)  # the encoder loads
        for kind in ("text", "semantic", "similar"):
            took = []
            for _ in range(count):
                t0 = time.perf_counter()
                if kind in ("text", "semantic"):
                    eng.search([rng.choice(QUERIES)], k=20, mode="hybrid" if kind == "text" else "semantic")
                else:
                    eng.search(similar=rng.randint(1, n), k=20)
                took.append((time.perf_counter() - t0) * 1000)
            out[kind] = (float(np.percentile(took, 50)), float(np.percentile(took, 95)))
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", default="100000,1000000")
    ap.add_argument("--clients", default="1,8,32")
    ap.add_argument("--seconds", type=float, default=15.0)
    ap.add_argument("--section", default="serve-cpu")
    args = ap.parse_args()
    mid = model_id()
    rows, out = [], []
    load_avg = os.getloadavg()[0]
    for n in [int(s) for s in args.sizes.split(",")]:
        db, facts = make_db(n, mid)
        base = in_process(db, n)
        print(f"in-process p50/p95 ms: {base}", flush=True)
        for locks, kinds in (("split", ("text", "semantic", "similar")), ("one", ("text",))):
            server = Server(db, locks)
            try:
                for kind in kinds:
                    for c in [int(x) for x in args.clients.split(",")]:
                        r = run_cell(server, kind, c, args.seconds, n)
                        r.update(n=n, index=f"{facts['factory']} {facts['params']}", locks=locks, kind=kind, clients=c)
                        r["in_process_p50"], r["in_process_p95"] = base[kind]
                        out.append(r)
                        print({k: round(v, 2) if isinstance(v, float) else v for k, v in r.items()}, flush=True)
                        rows.append(
                            [
                                f"{n:,}",
                                r["index"],
                                kind,
                                locks,
                                c,
                                r["qps"],
                                r["p50"],
                                r["p95"],
                                f"{base[kind][0]:.1f} / {base[kind][1]:.1f}",
                                1000 / base[kind][0],
                                r["server_cores"],
                                r["server_cores"] * 1000 / max(r["qps"], 1e-9),
                                r["client_cores"],
                                round(r["server_rss_mib"]),
                                r["errors"],
                            ]
                        )
            finally:
                server.stop()
        out.append({"n": n, "build": facts})
    dump_json("serve", out)
    builds = [o for o in out if "build" in o]
    body = header("Search service under load (CPU)") + (
        f"`bench/serve.py`, {args.seconds:.0f} s per cell after a 2 s warm-up; 1-minute load average "
        f"{load_avg:.1f} when it started (the machine is shared).\n\n"
    )
    body += table(
        [
            "vectors",
            "index",
            "query",
            "locks",
            "clients",
            "QPS",
            "p50 ms",
            "p95 ms",
            "in-process p50 / p95 ms",
            "in-process QPS (1 thread)",
            "server cores",
            "server CPU ms / request",
            "client cores",
            "server RSS MiB",
            "errors",
        ],
        rows,
    )
    body += "\n\n" + table(
        ["vectors", "insert s", "keyword index s", "FAISS build s", "type", "param", "tuned recall@10", "db MiB"],
        [
            [
                f"{o['n']:,}",
                o["build"]["insert_s"],
                o["build"]["keywords_s"],
                o["build"]["build_s"],
                o["build"]["factory"],
                o["build"]["params"],
                o["build"]["recall"] or "-",
                round(o["build"]["db_mib"]),
            ]
            for o in builds
        ],
    )
    body += "\n\n" + NOTE
    write_section(args.section, body)
    print(body)


NOTE = (
    'text = POST /search {"text": <an everyday query>, "k": 20} (hybrid: the vector ranking fused with '
    'the keyword index), encoded by the bundled model\'s ONNX text encoder; semantic = the same with "mode": '
    '"semantic" (no keyword index); similar = GET /similar/<random id>'
    "?k=20 (a stored vector, no encoding). Each client is a thread with one keep-alive connection sending "
    "requests back to back; the clients run in another process on the same 2 cores (client cores = their "
    "CPU). split: the encode runs outside the store's lock (the default); one: one lock around the whole "
    "query. server cores = the service process's CPU seconds per second; CPU ms / request = that over QPS "
    "(the figure least bent by other processes on the machine). Baseline: the same queries "
    "through `Engine.search` in the bench's own process, one at a time, no HTTP (in-process; its QPS is "
    "1000 / p50)."
)

if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "_server":
        server_main(sys.argv[2], int(sys.argv[3]), sys.argv[4])
    else:
        main()
