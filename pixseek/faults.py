"""Named fault-injection points, for the crash and disk-full tests (off unless ``PIXSEEK_FAULT`` is set).

``PIXSEEK_FAULT="NAME:N[:ACTION]"`` (read through :mod:`pixseek.settings`) fires at the N-th time the
indexer reaches point NAME. ACTION is ``kill`` (SIGKILL this process: a power cut, as far as the files
are concerned; the default), ``enospc`` (raise ``OSError(ENOSPC)``: the disk is full) or ``crash`` (this
process alone exits with code 3: a decoder crash; in a decode worker, its indexer lives on).
``PIXSEEK_FAULT_ONCE=PATH`` makes it fire in one process only, the first to reach its count that creates PATH
(across the processes of one machine, or of machines that share PATH's file system: a Ray decode task retried
after its worker was killed runs on). Points, in the
order a run meets them:

  scan          after each file found by the scan
  decode        before a file is decoded (counted per decode process; from a forked decode worker,
                a kill takes the indexer that forked it too; in a decode task of a Ray run, its worker)
  embed         before a batch goes through the model
  ray-embed     before a batch goes through an encoder actor of a Ray run (``index --ray``), in that
                actor's process (a lost worker); a restarted actor never fires it
  commit        inside a batch's SQLite transaction, before COMMIT
  committed     after a batch's COMMIT, before the FAISS cache is updated
  faiss-write   after the FAISS temp file is written, before it replaces the old file
  faiss-swap    after the new FAISS file is in place, before its sidecar is
  metadata      before a batch of older rows' camera and GPS (read from their files) is committed
  ocr           after a picture's text is read (OCR stage, ``--ocr``), before its batch is committed
"""

from __future__ import annotations

import errno
import os
import signal

from . import settings

_SPEC: tuple[str, int, str] | None = None
_ONCE: str | None = None
_counts: dict[str, int] = {}
_loaded = False
_decode_worker = False


def _load() -> None:
    global _SPEC, _ONCE, _loaded
    _loaded = True
    raw = settings.fault()
    if not raw:
        return
    _ONCE = settings.fault_once()
    parts = raw.split(":")
    _SPEC = (parts[0], int(parts[1]) if len(parts) > 1 else 1, parts[2] if len(parts) > 2 else "kill")


def point(name: str) -> None:
    """Reach fault point ``name``: fires when PIXSEEK_FAULT names it and its count comes up."""
    if not _loaded:
        _load()
    if _SPEC is None or _SPEC[0] != name:
        return
    _counts[name] = _counts.get(name, 0) + 1
    if _counts[name] != _SPEC[1] or not _claim():
        return
    if _SPEC[2] == "enospc":
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
    if _SPEC[2] == "crash":
        os._exit(3)
    if _in_decode_worker():
        os.kill(os.getppid(), signal.SIGKILL)  # the power cut takes the indexer that forked it too
    os.kill(os.getpid(), signal.SIGKILL)


def _claim() -> bool:
    """Whether this process may fire: always, unless PIXSEEK_FAULT_ONCE names a file another process made."""
    if _ONCE is None:
        return True
    try:
        os.close(os.open(_ONCE, os.O_CREAT | os.O_EXCL | os.O_WRONLY))
    except FileExistsError:
        return False
    return True


def mark_decode_worker() -> None:
    """Called by each of the indexer's forked decode workers as it starts (:mod:`pixseek.index.pipeline`)."""
    global _decode_worker
    _decode_worker = True


def _in_decode_worker() -> bool:
    """Whether this process is one of the indexer's decode workers."""
    return _decode_worker


def reset() -> None:
    """Re-read PIXSEEK_FAULT and PIXSEEK_FAULT_ONCE and zero the counters (for tests that inject faults
    in-process)."""
    global _SPEC, _ONCE, _loaded
    _SPEC, _ONCE, _loaded = None, None, False
    _counts.clear()
