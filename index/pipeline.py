"""The indexer's input stage: read, hash, decode and preprocess files in worker processes.

``workers`` forked processes (plain :mod:`multiprocessing`, no torch: a CPU run on the ONNX export never
imports it) run :func:`prepare` on chunks of the run's work list (reading, blake2b hashing,
reduced-size decoding, the model's exact transform) and send back numpy arrays through pipes; the
parent joins the chunks into batches in work order (torch tensors again, pinned for a CUDA model, when
the model's transform made tensors). At most ``workers x prefetch`` batches are in flight, so memory
stays bounded while the model runs in the parent. The perceptual hash (:mod:`pixseek.phash`) is taken
from the same decoded picture. Without a ``preprocess`` (filling the hashes of rows indexed before they
were kept) a file is only read, hashed and decoded. A run of fewer than ``MIN_WORK_FOR_WORKERS`` files
decodes in-process.
"""

from __future__ import annotations

import hashlib
import multiprocessing
import signal
import sys
from collections.abc import Callable, Generator, Sequence
from dataclasses import dataclass
from multiprocessing.connection import Connection, wait

import numpy as np

from pixseek import faults, phash
from pixseek.decode import decode_bytes, read_file
from pixseek.errors import DecodeWorkerError, ImageError
from pixseek.exif import PhotoMeta

from .scan import FileEntry

# Below this many files a run decodes in-process: starting worker processes would cost more.
MIN_WORK_FOR_WORKERS = 48
GPU_BATCH = 256  # files per model batch on a GPU (--batch-size)
# ... and on a CPU: a ViT-B-32 on 2 cores embeds ~8 % faster in batches of 16-32 than of 64 (the
# activations stay in cache; bench/RESULTS.md "Peers"), and the small bundled towers lose nothing.
CPU_BATCH = 32


def default_batch(cuda: bool) -> int:
    return GPU_BATCH if cuda else CPU_BATCH


@dataclass
class Prepared:
    entry: FileEntry
    digest: str | None = None
    has_tensor: bool = False
    width: int | None = None
    height: int | None = None
    fmt: str | None = None
    taken_at: float | None = None
    photo: PhotoMeta | None = None  # camera, lens, GPS (None: the file was not decoded)
    phash: str | None = None  # perceptual hash of the decoded picture
    error: ImageError | None = None


@dataclass
class Job:
    entry: FileEntry
    old_id: int | None  # the row this path had, if any (a changed file)
    old_hash: str | None


def prepare(
    job: Job, preprocess: Callable | None, min_side: int | None, max_pixels: int, known_hashes: frozenset
) -> tuple[Prepared, object]:
    """(metadata, the encoder's pixels or None) for one file; never raises for a bad file. ``preprocess`` None:
    decode for the perceptual hash only (no tensor)."""
    entry = job.entry
    p = Prepared(entry)
    try:  # the size the scan saw refuses an oversized file unread; a FIFO swapped in is never opened
        data = read_file(entry.path, entry.size, missing="file vanished during indexing")
    except ImageError as e:
        p.error = e
        return p, None
    p.digest = hashlib.blake2b(data, digest_size=16).hexdigest()
    if p.digest == job.old_hash or (job.old_id is None and p.digest in known_hashes):
        return p, None  # same content as a row we have (touched or moved): no decode needed
    faults.point("decode")
    try:
        d = decode_bytes(data, max_pixels=max_pixels, min_side=min_side)
        p.width, p.height, p.fmt, p.taken_at, p.photo = d.width, d.height, d.format, d.taken_at, d.photo
        try:
            p.phash = phash.perceptual_hash(d.image)
        except Exception:  # the hash only helps find duplicates: it never fails a file (retried next run)
            p.phash = None
        if preprocess is None:
            return p, None
        tensor = preprocess(d.image)
    except ImageError as e:
        p.error = e
        return p, None
    except Exception as e:  # a decoder bug must not stop the run
        p.error = ImageError(f"cannot decode: {type(e).__name__}: {str(e)[:200]}")
        return p, None
    p.has_tensor = True
    return p, tensor


class _Work:
    """A map-style dataset over the work list (inherited by forked workers, never pickled)."""

    def __init__(self, jobs: Sequence[Job], preprocess, min_side, max_pixels, known_hashes):
        self.jobs, self.preprocess = jobs, preprocess
        self.min_side, self.max_pixels, self.known_hashes = min_side, max_pixels, known_hashes

    def __len__(self) -> int:
        return len(self.jobs)

    def __getitem__(self, i: int):
        return prepare(self.jobs[i], self.preprocess, self.min_side, self.max_pixels, self.known_hashes)


def collate(items):
    preps = [p for p, _ in items]
    tensors = [t for _, t in items if t is not None]
    if not tensors:
        return preps, None
    if isinstance(tensors[0], np.ndarray):  # the ONNX Runtime path preprocesses to numpy
        return preps, np.stack(tensors)
    import torch

    return preps, torch.stack(tensors)


def _as_numpy(x) -> tuple[np.ndarray | None, bool]:
    """A worker's batch as numpy for the pipe, and whether it was a torch tensor (the parent turns it back)."""
    if x is None or isinstance(x, np.ndarray):
        return x, False
    return x.numpy(), True


def _worker(data: _Work, tasks: Connection, results: Connection, foreign: list[Connection]) -> None:
    """A decode process: prepares the chunks ``(start, stop)`` it is sent, in order, until ``None`` or
    until its parent is gone (the task pipe's end of file: every other copy of its write end is closed)."""
    for c in foreign:  # the parent's ends of earlier workers' pipes, inherited by the fork
        c.close()
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C reaches the whole group: the parent stops us
    faults.mark_decode_worker()
    if "torch" in sys.modules:  # a torch model's transform: the parent's model owns the cores
        sys.modules["torch"].set_num_threads(1)
    while True:
        try:
            chunk = tasks.recv()
        except (EOFError, OSError):
            return
        if chunk is None:
            return
        preps, x = collate([data[i] for i in range(*chunk)])
        try:
            results.send((preps, *_as_numpy(x)))
        except OSError:  # the parent is gone
            return


class _Workers:
    """``n`` forked decode processes, each with its own task and result pipe. Chunk k goes to worker
    k mod n and its result is read back in the same order, so batches come out in work order; at most
    ``prefetch`` chunks wait per worker, so memory stays bounded. A worker that dies is reported, never
    waited for forever; a worker whose parent is killed reads end-of-file and exits."""

    def __init__(self, data: _Work, n: int, prefetch: int):
        ctx = multiprocessing.get_context("fork")
        self.prefetch = prefetch
        self.procs: list = []
        self.tasks: list[Connection] = []
        self.results: list[Connection] = []
        for _ in range(n):
            task_r, task_w = ctx.Pipe(duplex=False)
            res_r, res_w = ctx.Pipe(duplex=False)
            foreign = [*self.tasks, *self.results, task_w, res_r]
            p = ctx.Process(target=_worker, args=(data, task_r, res_w, foreign), daemon=True, name="pixseek-decode")
            p.start()
            task_r.close()
            res_w.close()
            self.procs.append(p)
            self.tasks.append(task_w)
            self.results.append(res_r)

    def map(
        self, chunks: list[tuple[int, int]]
    ) -> Generator[tuple[list[Prepared], np.ndarray | None, bool], None, None]:
        n, sent = len(self.procs), 0
        for k in range(len(chunks)):
            while sent < len(chunks) and sent < k + n * self.prefetch:
                try:
                    self.tasks[sent % n].send(chunks[sent])
                except OSError:  # its pipe broke: the worker is gone
                    raise self._died(self.procs[sent % n]) from None
                sent += 1
            yield self._receive(k % n)

    def _receive(self, w: int):
        reader, proc = self.results[w], self.procs[w]
        while True:
            ready = wait([reader, proc.sentinel])
            if reader in ready:
                try:
                    return reader.recv()
                except EOFError:
                    pass
            if not proc.is_alive():
                raise self._died(proc)

    @staticmethod
    def _died(proc) -> DecodeWorkerError:
        proc.join(5)
        return DecodeWorkerError(
            f"a decode worker exited unexpectedly (exit code {proc.exitcode})",
            hint="what was committed is kept; run the same command again to go on",
        )

    def close(self) -> None:
        """Stop the workers now (also after Ctrl-C or an error); safe to call twice."""
        for c in self.tasks:
            try:
                c.send(None)
            except OSError:
                pass
        for c in (*self.tasks, *self.results):
            c.close()
        for p in self.procs:
            p.join(timeout=2)
            if p.is_alive():  # busy with a big file: its work is not wanted
                p.terminate()
                p.join()
        self.procs, self.tasks, self.results = [], [], []


def chunk_size(batch_size: int, workers: int) -> int:
    """Files per worker task: a batch split across the workers, so the first batch is ready after about
    batch / workers decodes (not a whole batch per worker)."""
    return max(1, min(batch_size, -(-batch_size // max(1, workers))))


def prepared_batches(
    jobs: Sequence[Job],
    *,
    preprocess: Callable | None,
    min_side: int | None,
    max_pixels: int,
    known_hashes: frozenset,
    batch_size: int,
    workers: int,
    pin_memory: bool = False,
    prefetch: int = 2,
) -> Generator[tuple[list[Prepared], object], None, None]:
    """Yield ``(prepared, stacked tensors of those with has_tensor)`` batches, in work order."""
    if not jobs:
        return
    phash.warm()  # imported once here; forked workers inherit it
    data = _Work(jobs, preprocess, min_side, max_pixels, known_hashes)
    if workers <= 0 or len(jobs) < MIN_WORK_FOR_WORKERS:
        for start in range(0, len(jobs), batch_size):
            yield collate([data[i] for i in range(start, min(start + batch_size, len(jobs)))])
        return
    per_batch = []  # each batch as its chunks
    c = chunk_size(batch_size, workers)
    for start in range(0, len(jobs), batch_size):
        stop = min(start + batch_size, len(jobs))
        per_batch.append([(i, min(i + c, stop)) for i in range(start, stop, c)])
    pool = _Workers(data, workers, prefetch * max(1, -(-batch_size // c)))
    try:
        results = pool.map([ch for chunks in per_batch for ch in chunks])
        for chunks in per_batch:
            parts = [next(results) for _ in chunks]
            yield _join(parts, pin_memory)
    finally:
        pool.close()


def _join(parts: list, pin_memory: bool) -> tuple[list[Prepared], object]:
    """One batch from its chunks' results: the preps in order, the arrays joined (as a torch tensor when
    the model's transform made tensors; pinned for a CUDA model)."""
    preps = [p for chunk_preps, _, _ in parts for p in chunk_preps]
    arrays = [x for _, x, _ in parts if x is not None]
    if not arrays:
        return preps, None
    x = arrays[0] if len(arrays) == 1 else np.concatenate(arrays)
    if not any(was_torch for _, _, was_torch in parts):
        return preps, x
    import torch

    t = torch.from_numpy(x)
    return preps, t.pin_memory() if pin_memory else t
