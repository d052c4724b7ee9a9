"""Benchmark: pixseek against the tools users would pick instead, on the same machine, corpus, architecture
and weights - `clip-retrieval inference` (2.45.0) and rclip's indexing (3.3.0).

No pretrained weights can be downloaded here, so every tool gets the same seeded random open_clip ViT-B-32
(pixseek's registry model ``vit-b-32-random``):
  pixseek         `pixseek index DIR --model vit-b-32-random` (a later run of the model: on a CPU it embeds
                  with the ONNX export its first run made; a warm-up run makes sure it exists)
  pixseek-torch   the same with `--runtime torch` (the torch model, as on a first run or a GPU)
  clip-retrieval  `clip-retrieval inference --clip_model open_clip:ViT-B-32//CACHE/peers/vit-b-32-random.pt`
                  (open_clip loads the state dict we save; images only, no text/metadata)
  rclip           the same weights exported to the ONNX files rclip 3.x loads from its data dir
                  (visual.onnx / textual.onnx + open_clip's BPE vocabulary); rclip's preprocessing is
                  hard-wired to 256 px (its own ViT-B-32-256 model), so the runner sets its IMAGE_SIZE to
                  224, the only change made to it.
Each tool runs as a fresh process on the same hard-linked folder (OS file cache warm), with a fresh data
dir and batch size 32 (pixseek's CPU default; rclip's default is 8, clip-retrieval's 256; --batch 0 runs
each tool at its own); worker counts are each tool's default. Reported: wall seconds from process start to
exit, images/s = images indexed / wall, and the mean cosine between each peer's vectors and pixseek's for
the same files (same model check: the preprocessing differs slightly, so it is close to, not exactly, 1).
The peers live in their own virtualenvs under CACHE/peers (made on first use: clip-retrieval pins numpy<2
and open_clip<3, which pixseek's venv cannot hold).
Each tool runs ``--runs`` times on each corpus and size, interleaved (A B A B ...), and the median wall and
CPU seconds are reported with the load average (the machine may be shared).
Usage: python bench/peers.py [--corpora small,medium] [--sizes 300,1000] [--runs 3] [--tools pixseek,rclip]
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import CACHE, dump_json, header, table, write_section
from corpora import files

PEERS = CACHE / "peers"
MODEL = "vit-b-32-random"
BATCH = 32  # --batch: the same for every tool by default; 0 gives each tool its own default
VENVS = {
    "rclip": ["rclip==3.3.0"],
    "clip-retrieval": [
        "clip-retrieval==2.45.0",
        "torch==2.14.1",
        "torchvision==0.29.1",
        "setuptools<80",
    ],  # clip-anytorch imports pkg_resources, gone from setuptools 80+,
}
RCLIP_SUBDIR = "ViT-B-32-256-datacomp_s34b_b86k"  # the folder name rclip 3.3.0 looks for
RCLIP_RUN = (
    "import sys, rclip.utils.preprocess as p; p.IMAGE_SIZE = 224; "
    "sys.argv = ['rclip', *sys.argv[1:]]; from rclip.main import main; main()"
)


def venv(tool: str) -> Path:
    """The peer's virtualenv (created once; pip reads PyPI and this machine's torch wheels)."""
    d = PEERS / f"venv-{tool}"
    if not (d / "ready").exists():
        print(f"setting up {tool} in {d} ...", flush=True)
        shutil.rmtree(d, ignore_errors=True)
        subprocess.run([sys.executable, "-m", "venv", str(d)], check=True)
        subprocess.run([str(d / "bin" / "pip"), "install", "-q", *VENVS[tool]], check=True)
        (d / "ready").write_text("ok\n")
    return d


def prepare_model() -> tuple[Path, Path]:
    """Save the seeded ViT-B-32 as a state dict (clip-retrieval) and as rclip's ONNX files."""
    ckpt, rdir = PEERS / "vit-b-32-random.pt", PEERS / "rclip-models"
    if ckpt.exists() and (rdir / RCLIP_SUBDIR / "textual.onnx").exists():
        return ckpt, rdir
    import warnings

    import open_clip
    import torch

    from pixseek.models import load_torch

    model = load_torch(MODEL, "cpu").model.float().eval()
    PEERS.mkdir(parents=True, exist_ok=True)
    torch.save({k: v.detach().clone() for k, v in model.state_dict().items()}, ckpt)

    class Tower(torch.nn.Module):
        def __init__(self, method: str):
            super().__init__()
            self.m, self.method = model, method

        def forward(self, x):
            return getattr(self.m, self.method)(x)  # rclip normalises itself

    out = rdir / RCLIP_SUBDIR
    out.mkdir(parents=True, exist_ok=True)
    torch.backends.mha.set_fastpath_enabled(False)  # no ONNX form for the fused attention path
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")
        for name, method, x in (
            ("visual", "encode_image", torch.zeros(2, 3, 224, 224)),
            ("textual", "encode_text", open_clip.get_tokenizer("ViT-B-32")(["a", "b c"])),
        ):
            torch.onnx.export(
                Tower(method),
                (x,),
                str(out / f"{name}.onnx"),
                input_names=["input"],
                output_names=["output"],
                dynamic_axes={"input": {0: "n"}, "output": {0: "n"}},
                dynamo=False,
                opset_version=17,
            )
    vocab = Path(open_clip.__file__).parent / "bpe_simple_vocab_16e6.txt.gz"
    (rdir / "tokenizer").mkdir(exist_ok=True)
    shutil.copy(vocab, rdir / "tokenizer" / vocab.name)
    return ckpt, rdir


def corpus(kind: str, n: int) -> Path:
    """Hard links to the first n files of a bench corpus (every tool walks real files, no symlinks)."""
    d = PEERS / "corpus" / f"{kind}-{n}"
    src = files(kind, n)
    if not d.exists() or len(list(d.iterdir())) != len(src):
        shutil.rmtree(d, ignore_errors=True)
        d.mkdir(parents=True)
        for p in src:
            os.link(p, d / p.name)
    for p in d.iterdir():  # warm the OS file cache the same way for every tool
        p.read_bytes()
    return d


CPU: list[float] = []  # CPU seconds (user + system, children included) of the last timed command


def _children_cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def timed(cmd: list[str], env: dict, cwd: Path | None = None) -> float:
    """Wall seconds of ``cmd``; its CPU seconds (it and its children, e.g. decode workers) go to CPU."""
    c0, t0 = _children_cpu(), time.perf_counter()
    p = subprocess.run(cmd, env=env, cwd=cwd, capture_output=True, text=True)
    dt = time.perf_counter() - t0
    CPU[:] = [_children_cpu() - c0]
    if p.returncode != 0:
        raise SystemExit(f"{cmd[0]} failed ({p.returncode}):\n{p.stderr[-3000:]}")
    return dt


def run_pixseek(
    folder: Path, work: Path, env: dict, runtime: str = "auto", workers: int | None = None
) -> tuple[float, dict]:
    db = work / "pixseek"
    cmd = [
        str(Path(sys.executable).parent / "pixseek"),
        "index",
        str(folder),
        "--db",
        str(db),
        "--model",
        MODEL,
        *(["--batch-size", str(BATCH)] if BATCH else []),
        "--runtime",
        runtime,
        *(["--workers", str(workers)] if workers is not None else []),
    ]
    dt = timed(cmd, env)
    import numpy as np

    con = sqlite3.connect(db / "pixseek.db")
    vecs = {}
    for path, blob in con.execute("SELECT path, vector FROM images"):
        vecs[Path(path).name] = np.frombuffer(blob, dtype=np.float32)
    con.close()
    return dt, vecs


def run_rclip(folder: Path, work: Path, env: dict, models: Path) -> tuple[float, dict]:
    data = work / "rclip"
    data.mkdir()
    for p in models.iterdir():
        (data / p.name).symlink_to(p)
    py = venv("rclip") / "bin" / "python"
    dt = timed(
        [str(py), "-c", RCLIP_RUN, *(["-b", str(BATCH)] if BATCH else []), "-t", "1", "a dog"],
        dict(env, RCLIP_DATADIR=str(data)),
        cwd=folder,
    )
    import numpy as np

    con = sqlite3.connect(data / "db.sqlite3")
    vecs = {
        Path(p).name: np.frombuffer(b, dtype=np.float32)
        for p, b in con.execute("SELECT filepath, vector FROM images WHERE deleted IS NULL")
    }
    con.close()
    return dt, vecs


def run_clip_retrieval(folder: Path, work: Path, env: dict, ckpt: Path) -> tuple[float, dict]:
    out = work / "clip-retrieval"
    exe = venv("clip-retrieval") / "bin" / "clip-retrieval"
    dt = timed(
        [
            str(exe),
            "inference",
            "--input_dataset",
            str(folder),
            "--output_folder",
            str(out),
            "--clip_model",
            f"open_clip:ViT-B-32/{ckpt}",
            *(["--batch_size", str(BATCH)] if BATCH else []),
            "--enable_text",
            "False",
            "--enable_metadata",
            "True",
        ],
        env,
    )
    import numpy as np
    import pyarrow.parquet as pq

    emb = np.load(out / "img_emb" / "img_emb_0.npy").astype(np.float32)
    names = [Path(p).name for p in pq.read_table(out / "metadata" / "metadata_0.parquet")["image_path"].to_pylist()]
    return dt, dict(zip(names, emb))


def same_model(vecs: dict, ref: dict) -> float:
    """Mean cosine between a peer's and pixseek's vector of the same file, after subtracting each tool's
    mean vector: random-weight towers map every picture near one common direction, so a raw cosine would
    be ~1 even for different pictures; centred, it is ~1 only when both ran the same model on the same
    pixels (and ~0 for unrelated files)."""
    import numpy as np

    common = sorted(set(vecs) & set(ref))
    if len(common) < 2:
        return float("nan")
    a = np.stack([vecs[k] for k in common]).astype(np.float64)
    b = np.stack([ref[k] for k in common]).astype(np.float64)
    a -= a.mean(0)
    b -= b.mean(0)
    cos = (a * b).sum(1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))
    return float(cos.mean())


def run_tool(tool: str, folder: Path, env: dict, ckpt: Path, rmodels: Path) -> tuple[float, float, dict]:
    """(wall s, CPU s, vectors by file name) of one fresh run of ``tool`` (``pixseek@N``: --workers N)."""
    work = Path(tempfile.mkdtemp(prefix=f"peers-{tool}-"))
    try:
        name, _, workers = tool.partition("@")
        if name == "pixseek":
            dt, vecs = run_pixseek(folder, work, env, workers=int(workers) if workers else None)
        elif name == "pixseek-torch":
            dt, vecs = run_pixseek(folder, work, env, runtime="torch")
        elif name == "rclip":
            dt, vecs = run_rclip(folder, work, env, rmodels)
        else:
            dt, vecs = run_clip_retrieval(folder, work, env, ckpt)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return dt, CPU[0], vecs


def main() -> None:
    global BATCH
    ap = argparse.ArgumentParser()
    ap.add_argument("--corpora", default="small,medium", help="bench corpora (corpora.py kinds)")
    ap.add_argument("--sizes", default="300,1000")
    ap.add_argument("--runs", type=int, default=3, help="runs of each tool, interleaved; the median is reported")
    ap.add_argument("--tools", default="pixseek,rclip", help="also pixseek-torch, clip-retrieval, pixseek@N")
    ap.add_argument("--section", default="peers-cpu")
    ap.add_argument("--batch", type=int, default=BATCH, help="batch size of every tool; 0: each tool's default")
    args = ap.parse_args()
    BATCH = args.batch
    tools = args.tools.split(",")
    ckpt, rmodels = prepare_model()
    for t in tools:
        if not t.startswith("pixseek"):
            venv(t)
    env = dict(
        os.environ, HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", WANDB_MODE="disabled", TOKENIZERS_PARALLELISM="false"
    )
    # pixseek's first run of a model exports its ONNX encoders (rclip downloads its ONNX files); the
    # measured runs are later runs, as for any user's second folder. pixseek-torch: the torch model.
    warm = Path(tempfile.mkdtemp(prefix="peers-warm-"))
    try:
        (warm / "pics").mkdir()
        for p in files("small", 4):
            shutil.copy(p, warm / "pics" / p.name)
        run_pixseek(warm / "pics", warm, env)
    finally:
        shutil.rmtree(warm, ignore_errors=True)
    rows, raw = [], []
    for kind in args.corpora.split(","):
        for n in (int(x) for x in args.sizes.split(",")):
            folder = corpus(kind, n)
            runs: dict[str, list[tuple[float, float, float]]] = {t: [] for t in tools}
            vecs_of: dict[str, dict] = {}
            for r in range(args.runs):  # interleaved: A B A B ..., so load changes hit every tool alike
                for tool in tools:
                    dt, cpu, vecs = run_tool(tool, folder, env, ckpt, rmodels)
                    runs[tool].append((dt, cpu, os.getloadavg()[0]))
                    vecs_of[tool] = vecs
                    print(
                        f"{kind}-{n} run {r + 1} {tool}: {len(vecs)} images in {dt:.1f} s, CPU {cpu:.1f} s", flush=True
                    )
            ref = vecs_of.get("pixseek")
            base = statistics.median(t for t, _, _ in runs["pixseek"]) if "pixseek" in runs else None
            for tool in tools:
                walls, cpus, loads = zip(*runs[tool])
                wall, cpu, count = statistics.median(walls), statistics.median(cpus), len(vecs_of[tool])
                cos = same_model(vecs_of[tool], ref) if ref is not None and tool != "pixseek" else None
                ahead = f"{wall / base:.2f}x" if base and tool != "pixseek" else "-"
                rows.append(
                    [
                        f"{n} {kind}",
                        tool,
                        count,
                        wall,
                        cpu,
                        count / wall,
                        ahead,
                        f"{min(loads):.1f}-{max(loads):.1f}",
                        "-" if cos is None else f"{cos:.4f}",
                    ]
                )
                raw.append(dict(corpus=kind, n=n, tool=tool, images=count, runs=runs[tool], cosine_vs_pixseek=cos))
    body = header("Peers: indexing the same corpus with the same ViT-B-32 weights (CPU)")
    body += "\n" + table(
        [
            "corpus",
            "tool",
            "images",
            "wall s (median)",
            "CPU s (median)",
            "images/s",
            "tool wall / pixseek wall",
            "load avg",
            "centred cosine vs pixseek",
        ],
        rows,
    )
    body += (
        f"\n\nMedian of {args.runs} runs per tool, interleaved (A B A B ...); each a fresh process from start to "
        f"exit (model load included), {f'batch {BATCH}' if BATCH else 'each tool at its default batch size'}, "
        "each tool's default workers (pixseek@N: --workers N). CPU s = user + "
        "system seconds of the process and its children (less sensitive to the shared machine's load than wall "
        "time); load avg = the 1-minute load average after each run (min-max). small = PNGs of 96-256 px, medium "
        "= JPEG photos of 1-3 MP (bench/corpora.py). pixseek = `pixseek index` on a later run of the model (CPU: "
        "ONNX Runtime on the export its first run made), pixseek-torch = `--runtime torch`; clip-retrieval 2.45.0 "
        "(open_clip 2.32, torch 2.14.1), rclip 3.3.0 (ONNX Runtime, its input size set to 224). centred cosine = "
        "mean cosine between the peer's and pixseek's vector of each file after subtracting each tool's mean "
        "vector (1 = same model on the same pixels; the decoders/resizers differ slightly)."
    )
    write_section(args.section, body)
    dump_json(args.section, raw)
    print("\n" + body)


if __name__ == "__main__":
    main()
