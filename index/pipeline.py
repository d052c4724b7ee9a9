"""The indexer's input stage: read, hash, decode and preprocess files in worker processes.

A torch ``DataLoader`` over the run's work list runs :func:`prepare` in ``workers`` forked processes
(reading, blake2b hashing, reduced-size decoding, the model's exact transform), hands back batches in
work order with their tensors stacked (and pinned for a CUDA model), and keeps at most
``workers x prefetch`` batches in flight, so memory stays bounded while the model runs in the parent.
The perceptual hash (:mod:`pixseek.phash`) is taken from the same decoded picture. Without a
``preprocess`` (filling the hashes of rows indexed before they were kept) a file is only read, hashed
and decoded.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Generator, Sequence
from dataclasses import dataclass

import numpy as np

from pixseek import faults, phash, sources
from pixseek.decode import DEFAULT_MAX_FILE_BYTES, decode_bytes
from pixseek.errors import ImageError
from pixseek.exif import PhotoMeta

from .scan import FileEntry

# Below this many files a run decodes in-process: starting worker processes would cost more.
MIN_WORK_FOR_WORKERS = 48


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
    """(metadata, CHW tensor or None) for one file; never raises for a bad file. ``preprocess`` None:
    decode for the perceptual hash only (no tensor)."""
    entry = job.entry
    p = Prepared(entry)
    too_big = ImageError(
        f"file larger than {DEFAULT_MAX_FILE_BYTES >> 20} MiB", stage="read", kind="size", limit=DEFAULT_MAX_FILE_BYTES
    )
    if entry.size > DEFAULT_MAX_FILE_BYTES:  # refused from the size the scan saw: never read
        p.error = too_big
        return p, None
    try:
        data = sources.read_bytes(entry.path, DEFAULT_MAX_FILE_BYTES + 1)  # a local path or a URL
    except FileNotFoundError:
        p.error = ImageError("file vanished during indexing", stage="read", kind="io")
        return p, None
    except OSError as e:
        p.error = ImageError(f"cannot read: {e.strerror or e} (retried on every run)", stage="read", kind="io")
        return p, None
    if len(data) > DEFAULT_MAX_FILE_BYTES:
        p.error = too_big
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


def _collate_shared(items):
    """In a worker: numpy batches (the ONNX Runtime path) become torch tensors, which travel to the parent
    in shared memory. Pickled through the result pipe instead, a batch fills it, and a worker whose parent
    was killed then blocks on that pipe forever instead of exiting."""
    preps, x = collate(items)
    if isinstance(x, np.ndarray):
        import torch

        x = torch.from_numpy(x)
    return preps, x


def _worker_init(_: int) -> None:
    import torch

    torch.set_num_threads(1)  # the parent's model owns the cores; a worker decodes one file at a time


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
    import multiprocessing
    import warnings

    from torch.utils.data import DataLoader

    # torch warns when workers outnumber cores; cores + 1 is deliberate (see Indexer._workers).
    warnings.filterwarnings("ignore", message="This DataLoader will create", category=UserWarning)

    loader = DataLoader(
        data,
        batch_size=batch_size,
        shuffle=False,
        num_workers=workers,
        collate_fn=_collate_shared,
        pin_memory=pin_memory,
        prefetch_factor=prefetch,
        worker_init_fn=_worker_init,
        persistent_workers=False,
        multiprocessing_context=multiprocessing.get_context("fork"),
    )
    it = iter(loader)
    try:
        yield from it
    finally:
        shutdown = getattr(it, "_shutdown_workers", None)
        if shutdown is not None:  # stop the workers now, also on Ctrl-C or an error
            shutdown()
