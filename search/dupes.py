"""Near-duplicates: groups of files that show the same picture, or nearly the same shot.

Three kinds of link between two files, from the most certain:

* **exact** - the same bytes (the same content hash). Search already shows them as one card with
  "+N copies"; here they are listed too, because a second copy in another folder is what a clean-up is
  most often about.
* **same** - the same picture re-encoded or resized: the vectors are close (see below) *and* the
  perceptual hashes (:mod:`pixseek.phash`) differ in at most ``rule.same_bits`` bits.
* **similar** - close vectors, different looks: a crop, an edit, the next frame of a burst.

Candidates come from the vectors alone: every pair scoring at least ``rule.similar`` (an exact range
search over the vectors in SQLite, :mod:`pixseek.search.nearpairs`, one picture per content hash), so
the hash only decides the kind. Groups are the connected components of those links. In each group one
file is suggested to **keep**: the largest picture (pixels), then the oldest (EXIF date, else file
time), then the largest file, then the first path. Every other file is described by its link to the
kept one (kind, score, hash distance). Order is deterministic: exact groups first, then same, then
similar; within a kind the larger groups first, then by the kept file's path.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import numpy as np

from pixseek import phash
from pixseek.errors import QueryError
from pixseek.store import ImageRow, Store

from .dupe_rule import DupeRule
from .nearpairs import Pairs, close_pairs, work

KINDS = ("exact", "same", "similar")
KIND_WORDS = {"exact": "identical files", "same": "same picture", "similar": "similar pictures"}
MAX_PAIRS_SHOWN = 100  # links listed per group (the strongest); pairs_total says how many there were


@dataclass(frozen=True)
class DupeFile:
    """One file of a group, and how it relates to the group's kept file (``kind`` None: it is that file)."""

    id: int
    path: str
    size: int
    width: int | None
    height: int | None
    format: str | None
    date: float  # EXIF capture time, else the file's modification time
    kind: str | None
    score: float  # cosine to the kept file
    hash_distance: int | None  # perceptual-hash bits that differ from the kept file's (None: unknown)

    @property
    def keep(self) -> bool:
        return self.kind is None

    def to_dict(self) -> dict:
        return {
            "id": self.id,
            "path": self.path,
            "size": self.size,
            "width": self.width,
            "height": self.height,
            "format": self.format,
            "date": self.date,
            "keep": self.keep,
            "kind": self.kind,
            "score": round(self.score, 6),
            "hash_distance": self.hash_distance,
        }


@dataclass(frozen=True)
class DupePair:
    """A link found between two files (``a`` < ``b``)."""

    a: int
    b: int
    kind: str
    score: float
    hash_distance: int | None

    def to_dict(self) -> dict:
        d = {"a": self.a, "b": self.b, "kind": self.kind, "score": round(self.score, 6)}
        return {**d, "hash_distance": self.hash_distance}


@dataclass(frozen=True)
class DupeGroup:
    number: int  # 1-based, in report order
    kind: str  # the loosest link of a file to the kept one: exact < same < similar
    files: tuple[DupeFile, ...]  # the kept file first
    pairs: tuple[DupePair, ...]  # the strongest links found (at most MAX_PAIRS_SHOWN)
    pairs_total: int

    @property
    def keep(self) -> DupeFile:
        return self.files[0]

    @property
    def others(self) -> tuple[DupeFile, ...]:
        """The files a clean-up would move: all but the kept one."""
        return self.files[1:]

    @property
    def ids(self) -> tuple[int, ...]:
        return tuple(f.id for f in self.files)

    def to_dict(self) -> dict:
        return {
            "group": self.number,
            "kind": self.kind,
            "keep": self.keep.id,
            "files": [f.to_dict() for f in self.files],
            "pairs": [p.to_dict() for p in self.pairs],
            "pairs_total": self.pairs_total,
        }


@dataclass
class DupeReport:
    groups: list[DupeGroup]
    rule: DupeRule
    images: int  # pictures looked at
    unhashed: int  # of those, without a perceptual hash yet (their links are "similar" at most)
    seconds: float = 0.0
    kinds: tuple[str, ...] = KINDS
    notes: list[str] = field(default_factory=list)

    @property
    def movable(self) -> list[DupeFile]:
        return [f for g in self.groups for f in g.others]

    def to_dict(self) -> dict:
        movable = self.movable
        return {
            "rule": self.rule.to_dict(),
            "kinds": list(self.kinds),
            "images": self.images,
            "unhashed": self.unhashed,
            "groups": [g.to_dict() for g in self.groups],
            "summary": {
                "groups": len(self.groups),
                "files": sum(len(g.files) for g in self.groups),
                "movable": len(movable),
                "movable_bytes": sum(f.size for f in movable),
                **{kind: sum(1 for g in self.groups if g.kind == kind) for kind in KINDS},
            },
            "seconds": round(self.seconds, 3),
            "notes": self.notes,
        }


def size_text(n: int) -> str:
    """A byte count as reports show it (the CLI and the page): 512 B, 3.4 kB, 12.0 MB, 1.2 GB."""
    for unit, size in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if n >= size:
            return f"{n / size:.1f} {unit}"
    return f"{n} B"


def day_text(t: float) -> str:
    """A file's date as reports show it (the CLI and the page): 2024-05-01, or ? when it cannot be shown."""
    import datetime as dt

    try:
        return dt.datetime.fromtimestamp(t).strftime("%Y-%m-%d")
    except (OverflowError, OSError, ValueError):
        return "?"


def check_kinds(kinds: Iterable[str] | None) -> tuple[str, ...]:
    """The kinds asked for (None or none: all), in their order; a one-line QueryError for an unknown one."""
    asked = {str(k).strip().lower() for k in kinds or ()}
    unknown = asked - set(KINDS)
    if unknown:
        raise QueryError(f"unknown duplicate kind {sorted(unknown)[0]!r}: use exact, same or similar")
    return tuple(k for k in KINDS if k in asked) or KINDS


def find_duplicates(
    store: Store,
    rule: DupeRule,
    *,
    kinds: Iterable[str] | None = None,
    ids: Sequence[int] | np.ndarray | None = None,
    progress: bool = False,
) -> DupeReport:
    """Groups of near-duplicates among the index's pictures (or among ``ids``), linked by ``kinds``.
    Reads only: the database is never written."""
    t0 = time.perf_counter()
    kinds = check_kinds(kinds)
    all_ids, contents, hexes = store.dupe_basis()
    keep = np.ones(len(all_ids), bool) if ids is None else np.isin(all_ids, np.asarray(list(ids), np.int64))
    all_ids = all_ids[keep]
    contents = [c for c, k in zip(contents, keep) if k]
    hexes = [h for h, k in zip(hexes, keep) if k]
    hashes, known = phash.to_ints(hexes)
    content_of = dict(zip(all_ids.tolist(), contents))
    first: dict[str, int] = {}  # content hash -> its first id (the one that takes part in the search)
    copies: list[tuple[int, int]] = []
    for i, c in zip(all_ids.tolist(), contents):
        if c and c in first:
            copies.append((first[c], i))
        else:
            first.setdefault(c or f"id:{i}", i)
    reps = np.asarray(sorted(first.values()), dtype=np.int64)

    def accept(a: np.ndarray, b: np.ndarray, scores: np.ndarray) -> np.ndarray:
        ia, ib = np.searchsorted(all_ids, a), np.searchsorted(all_ids, b)
        match = known[ia] & known[ib] & (phash.hamming_many(hashes[ia], hashes[ib]) <= rule.same_bits)
        return (scores >= rule.similar) | (match & (scores >= rule.same_floor))

    pairs = _search(store, reps, min(rule.similar, rule.same_floor), accept, progress)
    pos = {int(i): n for n, i in enumerate(all_ids.tolist())}
    links = _links(pairs, copies, pos, hashes, known, rule, kinds)
    groups = _components(links)
    group_of = {i: n for n, g in enumerate(groups) for i in g}
    links_of: list[list[DupePair]] = [[] for _ in groups]
    for p in links:
        links_of[group_of[p.a]].append(p)
    rows = store.get(group_of)
    vecs = dict(zip(*_vectors(store, list(group_of))))
    built = [
        _group(g, links_of[n], rows, vecs, content_of, pos, hashes, known, rule)
        for n, g in enumerate(groups)
        if all(i in rows and i in vecs for i in g)  # a row deleted meanwhile drops its group
    ]
    built.sort(key=lambda g: (KINDS.index(g.kind), -len(g.files), g.keep.path, g.keep.id))
    numbered = [DupeGroup(n, g.kind, g.files, g.pairs, g.pairs_total) for n, g in enumerate(built, 1)]
    report = DupeReport(numbered, rule, len(all_ids), int((~known).sum()), kinds=kinds)
    if report.unhashed:
        report.notes.append(
            f"{report.unhashed} picture{'s have' if report.unhashed != 1 else ' has'} no perceptual hash yet "
            "(indexed by an older pixseek): their links show as similar at most; `pixseek index` on their "
            "folders adds the hashes without re-embedding"
        )
    report.seconds = time.perf_counter() - t0
    return report


def _search(store: Store, reps: np.ndarray, threshold: float, accept, progress: bool) -> Pairs:
    if not progress:
        return close_pairs(store, reps, threshold, accept=accept)
    from tqdm import tqdm

    with tqdm(total=work(len(reps)), unit="row", desc="comparing", dynamic_ncols=True, leave=False) as bar:
        return close_pairs(store, reps, threshold, accept=accept, progress=bar.update)


def _vectors(store: Store, ids: list[int]) -> tuple[list[int], list[np.ndarray]]:
    got, vecs = store.vectors_for(ids)
    return got.tolist(), list(vecs)


def _kind(rule: DupeRule, score: float, distance: int | None) -> str:
    """ "same" when the hashes match and the score clears the same-picture floor, else "similar"."""
    same = distance is not None and distance <= rule.same_bits and score >= rule.same_floor
    return "same" if same else "similar"


def _distance(a: int, b: int, pos: dict[int, int], hashes: np.ndarray, known: np.ndarray) -> int | None:
    i, j = pos[a], pos[b]
    if not (known[i] and known[j]):
        return None
    return int(phash.hamming_many(hashes[i], hashes[j]))


def _links(
    pairs: Pairs,
    copies: list[tuple[int, int]],
    pos: dict[int, int],
    hashes: np.ndarray,
    known: np.ndarray,
    rule: DupeRule,
    kinds: tuple[str, ...],
) -> list[DupePair]:
    """The links of the kinds asked for: close pairs (same or similar by their hashes) and exact copies."""
    out: list[DupePair] = []
    if len(pairs):
        ia = np.fromiter((pos[int(a)] for a in pairs.a), np.int64, len(pairs))
        ib = np.fromiter((pos[int(b)] for b in pairs.b), np.int64, len(pairs))
        dist = phash.hamming_many(hashes[ia], hashes[ib])
        both = known[ia] & known[ib]
        for a, b, s, d, k in zip(pairs.a.tolist(), pairs.b.tolist(), pairs.score.tolist(), dist.tolist(), both):
            pair = DupePair(a, b, _kind(rule, s, d if k else None), min(float(s), 1.0), d if k else None)
            if pair.kind in kinds:
                out.append(pair)
    if "exact" in kinds:
        out += [DupePair(min(a, b), max(a, b), "exact", 1.0, 0) for a, b in copies]
    return out


def _components(links: list[DupePair]) -> list[list[int]]:
    """Connected components (two files or more) of the links, each as sorted ids."""
    if not links:
        return []
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    ids = np.asarray(sorted({p.a for p in links} | {p.b for p in links}), dtype=np.int64)
    local = {int(i): n for n, i in enumerate(ids.tolist())}
    a = np.asarray([local[p.a] for p in links])
    b = np.asarray([local[p.b] for p in links])
    graph = coo_matrix((np.ones(len(a), np.int8), (a, b)), shape=(len(ids), len(ids)))
    _, labels = connected_components(graph, directed=False)
    groups: dict[int, list[int]] = {}
    for i, label in zip(ids.tolist(), labels.tolist()):
        groups.setdefault(label, []).append(i)
    return [sorted(g) for g in groups.values() if len(g) > 1]


def keep_order(row: ImageRow) -> tuple:
    """The sort key whose first file a group suggests keeping: most pixels, oldest, largest file, path."""
    pixels = (row.width or 0) * (row.height or 0)
    return (-pixels, row.date, -row.size, row.path, row.id)


def _group(
    ids: list[int],
    links: list[DupePair],
    rows: dict[int, ImageRow],
    vecs: dict[int, np.ndarray],
    content_of: dict[int, str],
    pos: dict[int, int],
    hashes: np.ndarray,
    known: np.ndarray,
    rule: DupeRule,
) -> DupeGroup:
    keep = min(ids, key=lambda i: keep_order(rows[i]))
    files = [_file(rows[keep], None, 1.0, _distance(keep, keep, pos, hashes, known))]
    others = []
    for i in ids:
        if i == keep:
            continue
        d = _distance(keep, i, pos, hashes, known)
        same_bytes = bool(content_of.get(i)) and content_of.get(i) == content_of.get(keep)
        score = 1.0 if same_bytes else min(float(vecs[keep] @ vecs[i]), 1.0)
        kind = "exact" if same_bytes else _kind(rule, score, d)
        others.append(_file(rows[i], kind, score, d))
    others.sort(key=lambda f: (KINDS.index(f.kind or "exact"), -f.score, f.path, f.id))
    files += others
    mine = sorted(links, key=lambda p: (-p.score, p.a, p.b))
    kind = max((f.kind for f in others if f.kind), key=KINDS.index)
    return DupeGroup(0, kind, tuple(files), tuple(mine[:MAX_PAIRS_SHOWN]), len(mine))


def _file(row: ImageRow, kind: str | None, score: float, distance: int | None) -> DupeFile:
    return DupeFile(row.id, row.path, row.size, row.width, row.height, row.format, row.date, kind, score, distance)


def near_duplicate_ids(store: Store, ids: Sequence[int], rule: DupeRule, *, copies: bool = True) -> dict[int, int]:
    """Among ranked result ids (best first), those that repeat a better-ranked one: {hidden id: the
    shown id it repeats}. A result is hidden when it is a near-duplicate of a shown result by ``rule``
    (the links ``pixseek dupes`` makes); shown results are the ones not hidden, in rank order. A copy
    (identical content) of a result is hidden with ``copies``; without it a copy shares its first file's
    fate (hidden with it, else shown: ``Engine.search_groups`` folds it into that file's card). Uses only
    these ids' stored vectors and hashes: fast for a page of results."""
    ranked = [int(i) for i in ids]
    got, vecs = store.vectors_for(ranked)
    where = {int(i): n for n, i in enumerate(got.tolist())}
    order = [i for i in ranked if i in where]
    if len(order) < 2:
        return {}
    v = vecs[[where[i] for i in order]]
    scores = v @ v.T
    hashes, known = phash.to_ints(store.phashes(order).get(i) for i in order)
    match = known[:, None] & known[None, :] & (phash.hamming_many(hashes[:, None], hashes[None, :]) <= rule.same_bits)
    close = (scores >= rule.similar) | (match & (scores >= rule.same_floor))
    content = [c or f"id:{i}" for i, c in zip(order, _content_hashes(store, order))]
    codes = np.unique(np.asarray(content, dtype=object), return_inverse=True)[1].reshape(-1)
    same = codes[:, None] == codes[None, :]
    repeats = close | same
    shown: list[int] = []
    hidden: dict[int, int] = {}
    fate: dict[str, int | None] = {}  # content -> the id its first file repeats (None: that file is shown)
    for n, i in enumerate(order):
        if not copies and content[n] in fate:  # a copy follows its first file (search folds it into its card)
            target = fate[content[n]]
            if target is not None:
                hidden[i] = target
            continue
        match = next((m for m in shown if repeats[n, m]), None)
        if match is None:
            shown.append(n)
        else:
            hidden[i] = order[match]
        fate[content[n]] = None if match is None else order[match]
    return hidden


def _content_hashes(store: Store, ids: list[int]) -> list[str]:
    rows = store.get(ids)
    return [rows[i].hash if i in rows else "" for i in ids]
