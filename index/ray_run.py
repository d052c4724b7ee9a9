"""The apply step of ``pixseek index --ray``: decoding and embedding on a Ray cluster, committing here.

The driver (this process) plans as a local run does and commits as a local run does; only the batch
source changes. :func:`embedded_batches` is the Ray counterpart of
:func:`pixseek.index.pipeline.prepared_batches`:

* the work list becomes a Ray Dataset (``from_items``: paths and the rows they replace, no pixels); a
  path may be a URL (``s3://...``), which the decode task reads itself through :mod:`pixseek.sources`,
  so no picture's bytes pass through the driver;
* **decode tasks** (``map_batches`` over plain tasks, one CPU each) run
  :func:`~pixseek.index.pipeline.prepare` on each file: the same read cap, blake2b hash, decode path
  and pixel cap (:mod:`pixseek.decode`) and the encoder's own transform, shipped to the task as a
  picklable function without the model (:func:`portable_preprocess`);
* an **actor pool of encoders** (one per GPU, else CPU actors) loads the index's model by spec through
  :func:`pixseek.models.for_indexing` with the driver's runtime, refuses to start unless its model id is
  the index's, and embeds the rows that have pixels;
* results stream back in work order (``preserve_order``) through ``iter_batches``; the caller turns each
  batch into ops and commits it in one transaction with the local run's writer, so row ids, vectors and
  error rows are the local run's.

Failures: a decode task is retried ``TASK_RETRIES`` times and an encoder actor restarted
``ACTOR_RESTARTS`` times (its batch retried) when its worker process or node dies; past that the run
stops with a :class:`~pixseek.errors.RayIndexError`. Nothing is committed but by the driver, one
transaction per batch, so a lost worker loses no committed work, and a killed driver resumes like a
local run: the next run re-plans from SQLite. A bad file is an error row (``prepare`` never raises).

Ray is the optional extra ``pixseek[ray]``, imported only here, and only when a run has work.
"""

from __future__ import annotations

import functools
import logging
import os
import pickle
import re
import socket
import warnings
from collections.abc import Callable, Generator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import numpy as np

from pixseek import faults, settings
from pixseek.errors import ModelMismatchError, RayIndexError
from pixseek.models import Encoder, for_indexing

from .pipeline import Job, Prepared, default_batch, prepare

INSTALL_HINT = "pip install 'pixseek[ray]'"
LOCAL = "local"  # --ray without a value: start a Ray instance on this machine for the run
TASK_RETRIES = 3  # a decode task whose worker died is run again this many times
ACTOR_RESTARTS = 3  # an encoder actor whose worker died is restarted (and its batch retried) this often
ROWS_PER_BLOCK = 32  # files per input block: the unit a decode task takes, and retries
ADDRESS = re.compile(r"^(auto|local|ray://\S+|\[?[\w.:-]+\]?:\d{1,5})$")


def check_address(address: str) -> None:
    """Refuse what cannot be a Ray address (a path given after ``--ray``) before any work."""
    if not ADDRESS.match(address):
        raise RayIndexError(
            f"--ray takes auto, HOST:PORT or ray://HOST:PORT, not {address!r}",
            hint="put the folders before --ray: pixseek index ~/Pictures --ray",
        )


def check_available() -> None:
    """Raise RayIndexError (one line, with the install command) unless Ray Data can be imported."""
    try:
        import ray
        import ray.data  # noqa: F401
    except ImportError:
        raise RayIndexError("indexing on Ray needs the ray package, which is not installed", INSTALL_HINT) from None


def _one_line(e: Exception) -> Exception:
    """A worker's failure as pixseek's one line: its own typed error when it raised one (a model that is
    not the index's), else the last line Ray gives."""
    text = str(e)
    mismatch = re.findall(r"ModelMismatchError: (.+)", text)
    if mismatch:
        return ModelMismatchError(mismatch[-1].strip())
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return RayIndexError(
        f"the Ray run stopped: {lines[-1][:300] if lines else type(e).__name__}",
        hint="committed work is kept; run the same command again to resume",
    )


def check_reachable(address: str, timeout: float = 5.0) -> None:
    """A HOST:PORT (or ray://HOST:PORT) that nothing answers on is one line within ``timeout`` seconds: Ray's
    own connect retries for minutes."""
    if address in ("auto", LOCAL):
        return
    host, _, port = address.removeprefix("ray://").rpartition(":")
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=timeout).close()
    except (OSError, ValueError) as e:
        why = "no answer" if isinstance(e, TimeoutError) else (getattr(e, "strerror", None) or str(e))
        raise RayIndexError(
            f"cannot reach the Ray cluster at {address}: {why}",
            hint="start its head with `ray start --head --port 6379`, or use --ray alone for a local Ray",
        ) from None


def check_run(address: str, paths: Sequence[str | os.PathLike]) -> None:
    """What a Ray run is refused for before any work: a bad address, a missing extra, a head that does not
    answer. (A URL PATH is checked as in a local run: its fsspec implementation, its bucket or prefix.)"""
    check_address(address)
    check_available()
    import ray

    if not ray.is_initialized():
        check_reachable(address)


def _worker_env() -> dict[str, str]:
    """The variables set here that the workers need: the object-store endpoint for URL PATHs read on the nodes
    (never credentials: each node has its own, see the README), and the crash tests' fault injection (each
    worker process counts its own fault points)."""
    names = (settings.S3_ENDPOINT, "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3", settings.FAULT, settings.FAULT_ONCE)
    return {n: os.environ[n] for n in names if os.environ.get(n)}


@dataclass
class Pool:
    """The encoder actors a cluster gets: how many, and what each takes."""

    actors: int
    cpus: float
    gpus: float
    device: str


def plan_pool(resources: dict[str, float], device: str | None) -> Pool:
    """One encoder per GPU (unless ``device`` is cpu); without GPUs, about half the CPUs embed (in
    actors of up to 4 threads) and the rest decode. Decode tasks always keep a CPU: actors that held
    every CPU would wait forever for pixels no task could decode."""
    cpus = max(1, int(resources.get("CPU", 1)))
    gpus = int(resources.get("GPU", 0))
    if gpus and device != "cpu":
        return Pool(gpus, 1 if cpus >= 2 * gpus else 0, 1, "cuda")
    if cpus < 2:
        return Pool(1, 0, 0, "cpu")
    per = 1 if cpus < 8 else min(4, cpus // 4)
    return Pool(max(1, cpus // (2 * per)), per, 0, "cpu")


@contextmanager
def cluster(address: str) -> Generator[dict[str, float], None, None]:
    """The cluster's resources, connected for the block: an existing connection of this process is used
    as it is; else ``address`` ('local': a new Ray on this machine, stopped after) is joined."""
    import ray

    started = not ray.is_initialized()
    if started:
        try:
            ray.init(
                address=None if address == LOCAL else address,
                include_dashboard=False,
                log_to_driver=False,
                logging_level=logging.ERROR,
            )
        except (ConnectionError, RuntimeError, ValueError) as e:
            where = "a new local Ray" if address == LOCAL else f"the Ray cluster at {address}"
            why = str(e).strip().splitlines()[0][:200] if str(e).strip() else type(e).__name__
            if address == "auto" and "Could not find any running Ray instance" in why:
                why = "no Ray is running on this machine"
            raise RayIndexError(
                f"cannot start or reach {where}: {why}",
                hint="start one with `ray start --head` and give its HOST:6379, or --ray alone for a local one",
            ) from None
    try:
        yield dict(ray.cluster_resources())
    finally:
        if started:
            ray.shutdown()


def portable_preprocess(enc: Encoder) -> Callable:
    """The encoder's image transform as a picklable function without the model, for decode tasks on other
    processes and machines: normalised float32 CHW pixels, which every encoder embeds (an ONNX encoder's
    :meth:`~pixseek.models.onnx_encoder.OnnxEncoder.preprocess` hands over uint8 and normalises in
    ``encode_tensors``: the same numbers; the actors may run torch where the driver runs ONNX)."""
    if enc.runtime == "onnx":
        from pixseek.models.onnx_encoder import preprocess_array

        m: dict = getattr(enc, "meta")  # noqa: B009  (OnnxEncoder's export metadata)
        return functools.partial(
            preprocess_array,
            size=enc.image_size,
            mean=m["mean"],
            std=m["std"],
            interpolation=m.get("interpolation", "bicubic"),
            resize_mode=m.get("resize_mode", "shortest"),
        )
    return getattr(enc, "_preprocess")  # noqa: B009  (TorchEncoder's open_clip transform: torchvision, picklable)


def _decode(batch: dict[str, np.ndarray], *, preprocess, min_side, max_pixels, known_hashes) -> dict:
    """A decode task: each file's metadata (pickled :class:`Prepared`) and its pixels (float32 bytes, or
    empty for a file that needs no embedding: a bad file, or content the index has)."""
    preps, pixels = [], []
    for raw in batch["job"]:
        prep, tensor = prepare(pickle.loads(raw), preprocess, min_side, max_pixels, known_hashes)
        preps.append(pickle.dumps(prep))
        x = b"" if tensor is None else np.ascontiguousarray(np.asarray(tensor), dtype=np.float32).tobytes()
        pixels.append(x)
    return {"i": batch["i"], "prep": np.array(preps, dtype=object), "x": np.array(pixels, dtype=object)}


class Embedder:
    """An encoder actor: the index's model, loaded once per actor, embedding the rows that have pixels."""

    def __init__(self, spec: str, model_id: str, device: str, runtime: str):
        import ray

        self.enc = for_indexing(spec, device, runtime)
        if self.enc.model_id != model_id:
            raise ModelMismatchError(f"a Ray worker loaded {self.enc.model_id} for {spec}; the index is of {model_id}")
        # A restarted actor is a replacement for a lost one: the fault point fires in first actors only.
        self.restarted = bool(ray.get_runtime_context().was_current_actor_reconstructed)

    def __call__(self, batch: dict[str, np.ndarray]) -> dict:
        if not self.restarted:
            faults.point("ray-embed")
        n, side = len(batch["x"]), self.enc.image_size
        vecs = np.zeros((n, self.enc.dim), np.float32)
        rows = [k for k in range(n) if len(batch["x"][k])]
        if rows:
            x: Any = np.stack([np.frombuffer(batch["x"][k], np.float32).reshape(3, side, side) for k in rows])
            if self.enc.runtime == "torch":
                import torch

                x = torch.from_numpy(x)
            vecs[rows] = self.enc.encode_tensors(x)
        return {"i": batch["i"], "prep": batch["prep"], "v": vecs, "restarted": np.full(n, self.restarted)}


class RayBatches:
    """:meth:`batches` yields ``(prepared, vectors of those with has_tensor)`` batches in work order, computed
    on the cluster; ``restarted_batches`` then counts the batches that a restarted encoder embedded."""

    def __init__(
        self,
        jobs: Sequence[Job],
        enc: Encoder,
        *,
        address: str,
        device: str | None,
        max_pixels: int,
        known_hashes: frozenset,
        batch_size: int | None,
    ):
        self.jobs, self.enc, self.address, self.device = jobs, enc, address, device
        self.max_pixels, self.known_hashes, self.batch_size = max_pixels, known_hashes, batch_size
        self.restarted_batches = 0
        self._next = 0  # the work index the next row must have

    def batches(self) -> Generator[tuple[list[Prepared], np.ndarray | None], None, None]:
        if not self.jobs:
            return
        with cluster(self.address) as resources:
            pool = plan_pool(resources, self.device)
            size = self.batch_size or default_batch(bool(pool.gpus))
            try:
                for batch in self._dataset(pool, size).iter_batches(batch_size=size, batch_format="numpy"):
                    yield self._unpack(batch)
            except Exception as e:
                if type(e).__module__.startswith("ray"):  # a worker failed past its retries: one line
                    raise _one_line(e) from None
                raise

    def _dataset(self, pool: Pool, size: int) -> Any:
        import ray.data

        logging.getLogger("ray.data").setLevel(logging.ERROR)
        items = [{"i": k, "job": pickle.dumps(job)} for k, job in enumerate(self.jobs)]
        blocks = max(1, min(4096, -(-len(items) // ROWS_PER_BLOCK)))
        ds = ray.data.from_items(items, override_num_blocks=blocks)
        # Bounded retries: Ray Data's default retries forever, and a file that crashes the decoder's process
        # every time must stop the run, not loop. Ray 2.60 takes them as (deprecated) remote arguments.
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="`ray_remote_args` is deprecated")
            return self._stages(ds, pool, size)

    def _stages(self, ds: Any, pool: Pool, size: int) -> Any:
        import ray.data

        env = _worker_env()
        ds = ds.map_batches(
            _decode,
            fn_kwargs={
                "preprocess": portable_preprocess(self.enc),
                "min_side": self.enc.image_size,
                "max_pixels": self.max_pixels,
                "known_hashes": self.known_hashes,
            },
            batch_size=ROWS_PER_BLOCK,
            num_cpus=1,
            max_retries=TASK_RETRIES,
            runtime_env={"env_vars": env} if env else None,
        )
        ds = ds.map_batches(
            Embedder,
            fn_constructor_kwargs={
                "spec": self.enc.spec,
                "model_id": self.enc.model_id,
                "device": pool.device,
                "runtime": "torch" if self.enc.runtime == "torch" else "auto",
            },
            batch_size=size,
            compute=ray.data.ActorPoolStrategy(size=pool.actors),
            num_cpus=pool.cpus,
            num_gpus=pool.gpus,
            max_restarts=ACTOR_RESTARTS,
            max_task_retries=ACTOR_RESTARTS,
            runtime_env={"env_vars": env} if env else None,
        )
        ctx = ds.context
        ctx.execution_options.preserve_order = True  # commits in work order: the local run's row ids
        ctx.enable_progress_bars = False
        ctx.print_on_execution_start = False
        return ds

    def _unpack(self, batch: dict[str, np.ndarray]) -> tuple[list[Prepared], np.ndarray | None]:
        preps: list[Prepared] = [pickle.loads(raw) for raw in batch["prep"]]
        order = [int(i) for i in batch["i"]]
        if order != list(range(self._next, self._next + len(order))):  # the caller pairs rows with its work list
            raise RayIndexError(f"Ray returned files out of order (expected #{self._next}, got #{order[0]})")
        self._next += len(order)
        self.restarted_batches += int(bool(np.any(batch["restarted"])))
        rows = [k for k, p in enumerate(preps) if p.has_tensor]
        return preps, (np.asarray(batch["v"][rows], dtype=np.float32) if rows else None)
