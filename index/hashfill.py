"""Perceptual hashes for rows indexed before pixseek kept them: a read-and-decode pass without the model.

New and changed files get their hash in the indexing pass itself (:mod:`pixseek.index.pipeline`). A row
without one (indexed by an older pixseek, or whose hash failed) gets it here, on the next ``pixseek
index`` of its root: its file is read and decoded in the same worker processes, checked to be the content
the row describes (a file that changed since is left to the next run), and only the hash is written, one
transaction per batch. Vectors are never touched, so nothing is re-embedded, and an interrupted fill
resumes where it stopped.
"""

from __future__ import annotations

from pixseek.store import Store

from .pipeline import Job, prepared_batches
from .plan import Plan

# The decode size the fill asks for. The indexing pass decodes at the model's input size instead; a
# picture's hash moves by at most 2 bits of 64 between such sizes (measured on the sample photos).
FILL_MIN_SIDE = 224


def fill_hashes(
    store: Store, plan: Plan, *, workers: int, max_pixels: int, batch_size: int = 64, progress: bool = False
) -> int:
    """Hash the unhashed rows under the run's roots whose files the scan found unchanged; returns how many
    got a hash."""
    from tqdm import tqdm

    todo: dict[int, tuple[str, Job]] = {}
    for rs in plan.roots:
        for rid, path, digest, size, mtime_ns in store.unhashed_under(rs.path):
            e = plan.listing.get(path)
            if e is not None and (e.size, e.mtime_ns) == (size, mtime_ns):
                todo[rid] = (digest, Job(e, None, None))
    if not todo:
        return 0
    rows = list(todo.items())
    bar = tqdm(total=len(rows), unit="img", desc="hashing", disable=not progress, dynamic_ncols=True, leave=False)
    batches = prepared_batches(
        [job for _, (_, job) in rows],
        preprocess=None,
        min_side=FILL_MIN_SIDE,
        max_pixels=max_pixels,
        known_hashes=frozenset(),
        batch_size=batch_size,
        workers=workers,
    )
    filled, pos = 0, 0
    try:
        for preps, _ in batches:
            chunk = rows[pos : pos + len(preps)]
            pos += len(preps)
            done = [(rid, p.phash) for (rid, (digest, _)), p in zip(chunk, preps) if p.phash and p.digest == digest]
            if done:
                with store.batch():
                    store.set_phashes(done)
                filled += len(done)
            bar.update(len(preps))
    finally:
        batches.close()
        bar.close()
    return filled
