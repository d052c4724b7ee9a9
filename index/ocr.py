"""The OCR stage of an index run (``pixseek index --ocr``): read the text in every indexed picture that
has not been read with the current OCR model, after the embedding, so search works while it runs.

Pictures are decoded (EXIF orientation applied, at least :data:`~pixseek.models.ocr.DECODE_SIDE` px on
the shorter side) and read by :class:`~pixseek.models.ocr.TextReader`, one reader per thread with one
ONNX Runtime thread each (ONNX Runtime, OpenCV and Pillow release the GIL; measured in
``bench/ocr.py``). The main thread commits one transaction per ``batch_size`` pictures, so Ctrl-C or
``kill -9`` loses at most a batch and the same command resumes. A picture that cannot be read gets an
``ocr`` row in the errors table and the run goes on; an identical file already read takes its text
without being read again. The stage never touches vectors.
"""

from __future__ import annotations

import hashlib
import os
import sqlite3
import threading
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import asdict, dataclass

from pixseek import faults
from pixseek.decode import DEFAULT_MAX_PIXELS, decode_bytes, read_file
from pixseek.errors import ImageError, IndexNotFoundError
from pixseek.models import ocr
from pixseek.store import DataDir, Store
from pixseek.store.lock import DirLock
from pixseek.store.ocr import OcrJob, OcrOutcome

from .writer import write_error

BATCH = 16  # pictures per committed transaction


@dataclass
class OcrSummary:
    read: int = 0  # pictures read in this run: with text, without, failed (identical copies included)
    with_text: int = 0
    no_text: int = 0
    recognised: int = 0  # pictures the detection pass sent to recognition
    copied: int = 0  # identical files that took an already-read picture's text
    failed: int = 0
    left: int = 0  # pictures still to read after the run (0 unless it was stopped)
    seconds: float = 0.0

    @property
    def images_per_s(self) -> float:
        return self.read / self.seconds if self.seconds > 0 else 0.0

    def to_dict(self) -> dict:
        d = asdict(self)
        d["seconds"] = round(self.seconds, 3)
        d["images_per_s"] = round(self.images_per_s, 2)
        return d

    def line(self) -> str:
        if not (self.read or self.left):
            return "text in pictures: nothing new to read"
        text = (
            f"text in pictures: read {self.read}: {self.with_text} with text, {self.no_text} without, "
            f"{self.failed} failed in {self.seconds:.1f} s ({self.images_per_s:.1f} images/s)"
        )
        return text + (f"; {self.left} left to read" if self.left else "")


def default_workers() -> int:
    """One reader per core (each with one ONNX Runtime thread)."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    return max(1, min(cores, 8))


class _Readers(threading.local):
    """One TextReader per worker thread."""

    def __init__(self, make: Callable[[], ocr.TextReader]):
        self.reader = make()


def _read_one(job: OcrJob, readers: _Readers, max_pixels: int, model: str) -> OcrOutcome:
    """The reading of one picture, or why it could not be read. A file that no longer holds the content
    that was indexed is an ``io`` error (tried again on every run): the next index run embeds the new
    content, and this stage then reads it."""
    try:
        data = read_file(job.path, job.size)
        if hashlib.blake2b(data, digest_size=16).hexdigest() != job.hash:  # the indexer's content hash
            raise ImageError("the file changed since it was indexed (run `pixseek index` on it)", kind="io")
        decoded = decode_bytes(data, max_pixels=max_pixels, min_side=ocr.DECODE_SIDE)
        reading = readers.reader.read(decoded.image)
    except ImageError as e:
        return OcrOutcome(job, model, error=e.message, kind=e.kind)
    lines = [(ln.text, ln.score, ln.quad) for ln in reading.lines]
    return OcrOutcome(job, model, lines, reading.boxes, reading.recognised)


def read_text(
    db_dir: str | os.PathLike | DataDir | None = None,
    *,
    workers: int | None = None,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    progress: bool = False,
) -> OcrSummary:
    """Only the OCR stage, on an existing index (``pixseek index --ocr`` without paths): read the
    pictures not read yet; never embeds. Takes the data dir's lock like an index run."""
    dd = db_dir if isinstance(db_dir, DataDir) else DataDir.resolve(db_dir)
    if not dd.exists():
        raise IndexNotFoundError(f"no pixseek index in {dd.root}", hint="build one with: pixseek index PATH --ocr")
    ocr.check_available()
    with DirLock(dd), Store.open(dd) as store:
        try:
            return run_stage(store, workers=workers, max_pixels=max_pixels, progress=progress)
        except (OSError, sqlite3.OperationalError) as e:
            raise write_error(dd, e) from None


def run_stage(
    store: Store,
    *,
    workers: int | None = None,
    batch_size: int = BATCH,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    progress: bool = False,
    reader: Callable[[], ocr.TextReader] | None = None,
) -> OcrSummary:
    """Read every picture of ``store`` that the current OCR model has not read; commit per batch."""
    from tqdm import tqdm

    t0 = time.perf_counter()
    ocr.check_available()
    model = ocr.MODEL_VERSION
    s = OcrSummary()
    jobs = store.ocr_pending(model)
    bar = tqdm(total=len(jobs), unit="img", desc="reading text", disable=not progress, dynamic_ncols=True, leave=False)
    first: dict[str, OcrJob] = {}  # content hash -> the job that reads it in this run
    twins: list[tuple[OcrJob, int | OcrJob]] = []  # (job, the row or job whose reading it takes)
    to_read: list[OcrJob] = []
    for job in jobs:
        if job.twin is not None:
            twins.append((job, job.twin))
        elif job.hash in first:
            twins.append((job, first[job.hash]))
        else:
            first[job.hash] = job
            to_read.append(job)
    done: list[OcrOutcome] = []
    try:
        _copy_twins(store, [(j, t) for j, t in twins if isinstance(t, int)], s, bar)
        readers = _Readers(reader or (lambda: ocr.TextReader(threads=1)))
        n = max(1, workers or default_workers())
        with ThreadPoolExecutor(n, thread_name_prefix="pixseek-ocr") as pool:
            inflight: deque[Future[OcrOutcome]] = deque()
            queue = iter(to_read)
            try:
                _fill(pool, inflight, queue, 2 * n, readers, max_pixels, model)
                while inflight:
                    outcome = inflight.popleft().result()
                    _fill(pool, inflight, queue, 2 * n, readers, max_pixels, model)
                    faults.point("ocr")
                    done.append(outcome)
                    if len(done) >= batch_size:
                        _commit(store, done, s, bar)
            finally:
                for f in inflight:
                    f.cancel()
                _commit(store, done, s, bar)  # what was read before an interrupt is kept
        _copy_twins(store, [(j, t.image_id) for j, t in twins if isinstance(t, OcrJob)], s, bar)
    finally:
        bar.close()
        s.left = len(jobs) - s.read  # stopped early, or an identical file's source could not be read
        s.seconds = time.perf_counter() - t0
    return s


def _fill(pool, inflight: deque, queue, depth: int, readers: _Readers, max_pixels: int, model: str) -> None:
    while len(inflight) < depth:
        job = next(queue, None)
        if job is None:
            return
        inflight.append(pool.submit(_read_one, job, readers, max_pixels, model))


def _commit(store: Store, done: list[OcrOutcome], s: OcrSummary, bar) -> None:
    batch = done[:]
    done.clear()
    if not batch:
        return
    with store.transaction():
        store.save_ocr(batch)
        for o in batch:
            if o.error is not None:
                j = o.job
                store.record_error(j.path, "ocr", o.error, j.size, j.mtime_ns, o.kind)
    for o in batch:
        _count(s, o.status, o.recognised > 0)
    bar.update(len(batch))
    bar.set_postfix(text=s.with_text, failed=s.failed, refresh=False)


def _count(s: OcrSummary, status: str, recognised: bool) -> None:
    s.read += 1
    s.recognised += recognised
    if status == "text":
        s.with_text += 1
    elif status == "none":
        s.no_text += 1
    else:
        s.failed += 1


def _copy_twins(store: Store, pairs: list[tuple[OcrJob, int]], s: OcrSummary, bar) -> None:
    """Identical files take the reading of the one that was read (no decode, no model). One whose
    source failed stays to be read on its own next time."""
    for k in range(0, len(pairs), BATCH * 16):
        chunk = pairs[k : k + BATCH * 16]
        with store.transaction():
            outcomes = [o for o in (store.ocr_reading_of(src, job) for job, src in chunk) if o is not None]
            if outcomes:
                store.save_ocr(outcomes)
        for o in outcomes:
            _count(s, o.status, o.recognised > 0)
        s.copied += len(outcomes)
        bar.update(len(chunk))
