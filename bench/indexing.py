"""Benchmark 1: indexing throughput, side by side with its ceilings and a naive loop, in one run.

For each corpus (>= 500 large JPEG photos, >= 2,000 small PNGs) and model (the bundled pixseek-emoji,
open_clip ViT-B-32 with random weights) it measures:
  pixseek      `Indexer.run` on a fresh data dir: images through the model per second of work
  forward      the model alone on pre-made tensors of the same batch size (the ceiling)
  naive        open, convert, preprocess and encode one image at a time
  decode       pixseek's read + hash-free decode + transform, one process (x workers = capacity)
Usage: python bench/indexing.py [--device auto|cpu|cuda] [--large N] [--small N] [--models a,b]
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import time

from common import Timer, dump_json, header, table, write_section
from corpora import files, subset


def forward_rate(emb, batch: int, seconds: float = 3.0) -> float:
    import numpy as np

    x = np.random.default_rng(0).standard_normal((batch, 3, emb.image_size, emb.image_size), dtype=np.float32)
    if emb.runtime == "torch":
        import torch

        x = torch.from_numpy(x)
    emb.encode_tensors(x)  # warm-up (and CUDA kernels)
    n, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds or n < 2 * batch:
        emb.encode_tensors(x)
        n += batch
    return n / (time.perf_counter() - t0)


def naive_rate(emb, paths) -> float:
    from PIL import Image

    emb.encode_tensors(emb.preprocess(Image.open(paths[0]).convert("RGB"))[None])
    with Timer() as t:
        for p in paths:
            img = Image.open(p).convert("RGB")
            emb.encode_tensors(emb.preprocess(img)[None])
    return len(paths) / t.s


def decode_rate(emb, paths) -> float:
    from pixseek.decode import decode_bytes

    with Timer() as t:
        for p in paths:
            d = decode_bytes(p.read_bytes(), min_side=emb.image_size)
            emb.preprocess(d.image)
    return len(paths) / t.s


def pixseek_rate(emb, folder, batch: int, workers: int | None) -> tuple[float, int, object]:
    from pixseek.index.indexer import Indexer

    db = tempfile.mkdtemp(prefix="pixseek-bench-")
    try:
        ix = Indexer(db, encoder=emb, batch_size=batch, workers=workers, export_encoders=False)
        s = ix.run([str(folder)])
        return s.images_per_s, ix.decode_workers(), s
    finally:
        shutil.rmtree(db, ignore_errors=True)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--device", default="auto")
    ap.add_argument("--large", type=int, default=500)
    ap.add_argument("--small", type=int, default=2000)
    ap.add_argument("--models", default="pixseek-emoji,vit-b-32-random")
    ap.add_argument("--batch", type=int, default=None)
    ap.add_argument("--workers", type=int, default=None)
    ap.add_argument("--section", default=None)
    ap.add_argument("--runtime", default="auto", choices=["auto", "torch"])
    args = ap.parse_args()

    from pixseek.index.pipeline import default_batch
    from pixseek.models import export_for_cpu, for_indexing

    rows, raw = [], []
    for model in args.models.split(","):
        # what `pixseek index` embeds with: on a CPU, the model's ONNX export (made here if missing)
        emb = for_indexing(model, args.device, args.runtime)
        if emb.runtime == "torch" and emb.device == "cpu" and args.runtime != "torch":
            export_for_cpu(emb)
            emb = for_indexing(model, args.device, args.runtime)
        cuda = emb.device.startswith("cuda")
        batch = args.batch or default_batch(cuda)
        for kind, n, n_naive, n_dec in (
            ("large", args.large, 40, 100),
            ("small", args.small, 200 if not cuda else 500, 500),
        ):
            if n <= 0:
                continue
            folder = subset(kind, n)
            paths = files(kind, n)
            fwd = forward_rate(emb, batch)
            pix, workers, s = pixseek_rate(emb, folder, batch, args.workers)
            naive = naive_rate(emb, paths[:n_naive])
            dec = decode_rate(emb, paths[:n_dec])
            cores = len(os.sched_getaffinity(0))
            rows.append(
                [
                    f"{n} {kind}",
                    model,
                    f"{emb.device} ({emb.runtime})",
                    batch,
                    workers,
                    pix,
                    fwd,
                    pix / fwd,
                    naive,
                    pix / naive,
                    dec,
                    dec * min(workers, cores),
                ]
            )
            raw.append(
                dict(
                    corpus=kind,
                    n=n,
                    model=model,
                    device=emb.device,
                    runtime=emb.runtime,
                    batch=batch,
                    workers=workers,
                    pixseek=pix,
                    forward=fwd,
                    naive=naive,
                    decode_1proc=dec,
                    summary=s.to_dict(),
                )
            )
            print(table(HEAD, rows[-1:]).splitlines()[-1], flush=True)
    body = header(f"Indexing throughput ({'GPU' if any(r['device'].startswith('cuda') for r in raw) else 'CPU'})")
    body += "\n" + table(HEAD, rows) + "\n\n" + NOTE
    dev = "gpu" if any(r["device"].startswith("cuda") for r in raw) else "cpu"
    write_section(args.section or f"indexing-{dev}", body)
    dump_json(f"indexing-{dev}", raw)
    print("\n" + body)


HEAD = [
    "corpus",
    "model",
    "device (runtime)",
    "batch",
    "workers",
    "pixseek img/s",
    "forward-only img/s",
    "pixseek / forward",
    "naive img/s",
    "pixseek / naive",
    "decode img/s (1 proc)",
    "decode capacity",
]
NOTE = (
    "pixseek = images through the model per second of indexing work (read, hash, decode, transform, "
    "embed, SQLite + FAISS writes); forward-only = the same model and batch size on pre-made tensors; "
    "naive = PIL open + convert + transform + encode, one image at a time (same runtime); runtime = what "
    "`pixseek index` embeds with (on a CPU: ONNX Runtime on the model's export, made by its first run); "
    "decode = pixseek's decode and transform in one process (capacity = that x min(workers, cores))."
)

if __name__ == "__main__":
    main()
