"""Start-up cost and the decode loader: what an index run imports, the torch-free worker processes
(same vectors, ids and error rows as decoding in-process, a dead worker reported), the optimised ONNX
session cache (same vectors, damage rebuilt) and the pHash without SciPy's package import."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from imagegen import draw, make_corpus
from PIL import Image, ImageDraw
from test_index import make_bad_corpus

from pixseek import phash, sources
from pixseek.errors import DecodeWorkerError
from pixseek.index.indexer import Indexer
from pixseek.index.pipeline import MIN_WORK_FOR_WORKERS, Job, chunk_size, prepared_batches
from pixseek.index.scan import FileEntry

WATCHED = ("torch", "pandas", "scipy.fft", "open_clip", "ftfy")
PROBE = (
    "import atexit, sys\n"
    f"atexit.register(lambda: print('IMPORTED', sorted(m for m in {WATCHED!r} if m in sys.modules)))\n"
    "from pixseek.cli import main\n"
    "main()\n"
)


def _cli(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", PROBE, *args], cwd=cwd, capture_output=True, text=True, timeout=600, env=dict(os.environ)
    )


def _rows(db: Path) -> tuple[dict, list]:
    con = sqlite3.connect(db / "pixseek.db")
    try:
        images = {row[0]: (row[1], row[2]) for row in con.execute("SELECT id, path, vector FROM images")}
        cols = "id, path, stage, message, size, mtime_ns, kind, limit_value"
        errs = con.execute(f"SELECT {cols} FROM errors ORDER BY id").fetchall()
    finally:
        con.close()
    return images, errs


def test_cpu_onnx_index_run_imports_neither_torch_nor_pandas(tmp_path, tiny):
    """A later CPU run of a model embeds on its ONNX export: no torch (decode workers included: the loader
    is plain multiprocessing), no pandas (sqlite-utils would import it), no scipy.fft (the pHash), no ftfy."""
    from pixseek.index import tagging
    from pixseek.index.vocabulary import bundled
    from pixseek.models import export

    assert export.export(tiny) is not None  # what a first run of the model leaves: its export ...
    tagging.tag_vectors(tiny.model_id, bundled(), lambda: tiny)  # ... and its tag vocabulary's vectors
    corpus = tmp_path / "pics"
    make_corpus(corpus, MIN_WORK_FOR_WORKERS + 4)  # enough for the worker processes
    args = ("--model", "tiny-random", "--workers", "2", "--batch-size", "8", "--json")
    run = _cli("index", str(corpus), "--db", str(tmp_path / "db"), *args, cwd=tmp_path)
    assert run.returncode == 0, run.stderr[-2000:]
    assert run.stdout.strip().splitlines()[-1] == "IMPORTED []"
    assert json.loads(run.stdout.strip().splitlines()[0])["added"] == MIN_WORK_FOR_WORKERS + 4
    search = _cli("search", "--image", str(next(corpus.rglob("*.png"))), "--db", str(tmp_path / "db"), cwd=tmp_path)
    assert search.returncode == 0 and "pandas" not in search.stdout.splitlines()[-1], search.stderr[-2000:]


@pytest.mark.parametrize("runtime", ["torch", "onnx"])
def test_worker_processes_give_the_in_process_vectors_ids_and_errors(tmp_path, tiny, runtime, monkeypatch):
    """The same corpus (good files and every kind of bad one) indexed by the decode workers and in the
    indexer's own process: identical row ids, paths, vector bytes and error rows."""
    import builtins

    root = tmp_path / "bad"
    make_bad_corpus(root)
    make_corpus(root / "more", MIN_WORK_FOR_WORKERS, start=100)
    real_open = builtins.open

    def fake_open(path, *a, **k):  # tests run as root, so chmod 000 would not stop a read
        if str(path).endswith("locked.jpg"):
            raise PermissionError(13, "Permission denied", str(path))
        return real_open(path, *a, **k)

    monkeypatch.setattr(sources, "open", fake_open, raising=False)  # where files are read; forked workers inherit it
    encoder = tiny
    if runtime == "onnx":
        from pixseek.models import export
        from pixseek.models.onnx_encoder import OnnxEncoder

        folder = export.export(tiny)
        assert folder is not None
        encoder = OnnxEncoder(folder, export.read_export(tiny.model_id)[1], tiny.spec, for_indexing=True)
    runs = {}
    for workers in (0, 3):
        db = tmp_path / f"db-{workers}"
        s = Indexer(db, encoder=encoder, batch_size=16, workers=workers, export_encoders=False).run([root])
        assert s.added == 6 + MIN_WORK_FOR_WORKERS and s.failed == 12
        runs[workers] = _rows(db)
    (images0, errs0), (images3, errs3) = runs[0], runs[3]
    assert images3 == images0  # ids, paths and vector bytes
    assert errs3 == errs0 and len(errs0) == 12


def _jobs(root: Path) -> list[Job]:
    jobs = []
    for p in sorted(root.rglob("*.*")):
        st = p.stat()
        jobs.append(Job(FileEntry(str(p), str(root), st.st_size, st.st_mtime_ns, st.st_dev, st.st_ino), None, None))
    return jobs


def test_batches_come_in_work_order_with_chunks_across_workers(tmp_path):
    make_corpus(tmp_path / "p", 70, subdirs=False)
    jobs = _jobs(tmp_path / "p")

    def pixels(img):
        return np.asarray(img.resize((8, 8)), dtype=np.float32).transpose(2, 0, 1).copy()

    kw = dict(preprocess=pixels, min_side=8, max_pixels=10**8, known_hashes=frozenset(), batch_size=16)
    inline = list(prepared_batches(jobs, workers=0, **kw))
    pooled = list(prepared_batches(jobs, workers=3, **kw))
    assert [len(p) for p, _ in pooled] == [16, 16, 16, 16, 6]
    assert [[q.entry.path for q in p] for p, _ in pooled] == [[q.entry.path for q in p] for p, _ in inline]
    assert all(np.array_equal(a, b) for (_, a), (_, b) in zip(pooled, inline))
    assert [q.phash for p, _ in pooled for q in p] == [q.phash for p, _ in inline for q in p]
    assert chunk_size(64, 3) == 22 and chunk_size(64, 1) == 64 and chunk_size(1, 4) == 1


def test_a_dead_decode_worker_is_reported_not_waited_for(tmp_path):
    make_corpus(tmp_path / "p", 60, subdirs=False)
    jobs = _jobs(tmp_path / "p")
    doomed = jobs[37].entry.path

    def crash_on_one(img):
        if img.size == Image.open(doomed).size and img.tobytes() == Image.open(doomed).convert("RGB").tobytes():
            os._exit(3)  # a decoder crash (a segfault in a codec) takes the worker down
        return np.zeros((3, 2, 2), np.float32)

    kw = dict(preprocess=crash_on_one, min_side=None, max_pixels=10**8, known_hashes=frozenset(), batch_size=8)
    with pytest.raises(DecodeWorkerError) as e:
        list(prepared_batches(jobs, workers=2, **kw))
    assert str(e.value) == "a decode worker exited unexpectedly (exit code 3)"
    # a slow parent (it embeds while the workers run ahead): the dead worker's pipe breaks on the next send
    with pytest.raises(DecodeWorkerError) as e:
        for _ in prepared_batches(jobs, workers=2, **kw):
            time.sleep(0.3)
    assert str(e.value) == "a decode worker exited unexpectedly (exit code 3)"


def test_a_dead_decode_worker_is_one_line_from_the_cli(tmp_path):
    """The CLI turns it into its one-line error, with what to do (no traceback)."""
    make_corpus(tmp_path / "p", 60, subdirs=False)
    env = dict(os.environ, HF_HUB_OFFLINE="1", PIXSEEK_FAULT="decode:5:crash")
    out = subprocess.run(
        [sys.executable, "-m", "pixseek", "index", str(tmp_path / "p"), "--db", str(tmp_path / "db"),
         "--model", "tiny-random"],
        capture_output=True, text=True, env=env, timeout=300,
    )  # fmt: skip
    assert "Traceback" not in out.stderr, out.stderr[-2000:]
    assert out.returncode != 0
    assert out.stderr.strip().splitlines()[-1].startswith("Error: a decode worker exited unexpectedly (exit code")


def test_optimised_session_cache_gives_the_same_vectors_and_survives_damage(tmp_path, tiny):
    from pixseek.models import export
    from pixseek.models.onnx_encoder import OnnxEncoder, normalise
    from pixseek.models.ort_cache import cache_folder

    folder = export.export(tiny)
    assert folder is not None
    meta = export.read_export(tiny.model_id)[1]
    import onnxruntime as ort

    cached = cache_folder(folder / "image.onnx", ort.__version__)
    import shutil

    shutil.rmtree(folder / "optimized", ignore_errors=True)
    x = np.stack([OnnxEncoder(folder, meta).preprocess(draw(i)) for i in range(5)])  # uint8 NHWC
    opts = ort.SessionOptions()
    plain = ort.InferenceSession(str(folder / "image.onnx"), opts, providers=["CPUExecutionProvider"])
    want = plain.run(None, {"pixels": normalise(x, meta["mean"], meta["std"])})[0]
    first = OnnxEncoder(folder, meta, for_indexing=True)  # builds the cache
    assert cached is not None and (cached / "done.json").is_file() and (cached / "weights.bin").is_file()
    assert np.array_equal(first.encode_tensors(x), want)
    second = OnnxEncoder(folder, meta, for_indexing=True)  # opens the cache
    assert second._image._model_path == str(cached / "model.onnx")
    assert np.array_equal(second.encode_tensors(x), want)
    with open(cached / "weights.bin", "r+b") as f:  # a torn copy: sizes no longer match
        f.truncate(100)
    third = OnnxEncoder(folder, meta, for_indexing=True)
    assert np.array_equal(third.encode_tensors(x), want)
    assert json.loads((cached / "done.json").read_text())["weights.bin"] == (cached / "weights.bin").stat().st_size
    (cached / "model.onnx").write_bytes(b"not a model")  # damage the sizes do not show
    (cached / "done.json").write_text(json.dumps({"model.onnx": 11, "weights.bin": 999}))
    assert np.array_equal(OnnxEncoder(folder, meta, for_indexing=True).encode_tensors(x), want)


def _hash_pictures() -> list[Image.Image]:
    pics = [draw(i) for i in range(24)]
    pics += [Image.new("RGB", (64, 48), c) for c in ((255, 255, 255), (0, 0, 0), (128, 64, 32))]  # flat: ties
    g = np.linspace(0, 255, 256, dtype=np.uint8)
    pics.append(Image.fromarray(np.tile(g, (100, 1))).convert("RGB"))
    rng = np.random.default_rng(1)
    pics += [Image.fromarray(rng.integers(0, 256, (40 + 7 * i, 90, 3), dtype=np.uint8)) for i in range(6)]
    text = Image.new("RGB", (300, 120), "white")
    ImageDraw.Draw(text).text((10, 40), "pixseek 123", fill="black")
    pics += [text, text.rotate(90, expand=True), Image.new("L", (33, 17), 200)]
    return pics


def test_perceptual_hash_equals_imagehash_bit_for_bit():
    import imagehash

    assert phash._pocketfft_dct() is not None  # the fast path is in use on this SciPy
    for img in _hash_pictures():
        assert phash.perceptual_hash(img) == str(imagehash.phash(img))


def test_a_few_queries_search_on_one_faiss_thread_and_the_setting_is_restored():
    import faiss

    from pixseek.store import vectors

    original = faiss.omp_get_max_threads()
    faiss.omp_set_num_threads(2)
    try:
        seen = {}
        for nq in (1, vectors.FEW_QUERIES, vectors.FEW_QUERIES + 1):
            with vectors._threads_for(nq):
                seen[nq] = faiss.omp_get_max_threads()
            assert faiss.omp_get_max_threads() == 2
        assert seen == {1: 1, vectors.FEW_QUERIES: 1, vectors.FEW_QUERIES + 1: 2}
    finally:
        faiss.omp_set_num_threads(original)


def test_a_heavy_tower_spins_only_on_free_cores(tiny, monkeypatch):
    from pixseek.models import export, onnx_encoder

    folder = export.export(tiny)
    assert folder is not None
    enc = onnx_encoder.OnnxEncoder(folder, export.read_export(tiny.model_id)[1], for_indexing=True)
    monkeypatch.setattr(onnx_encoder, "HEAVY_TOWER_BYTES", 0)  # the tiny tower counts as heavy
    spins = {}
    for load in (0.1, 64.0):
        monkeypatch.setattr(os, "getloadavg", lambda load=load: (load, load, load))
        spins[load] = enc._options("image.onnx").get_session_config_entry("session.intra_op.allow_spinning")
    assert spins == {0.1: "1", 64.0: "0"}
