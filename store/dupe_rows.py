"""What finding and moving duplicates reads and writes: perceptual hashes, vectors by id range, and the
rows of files moved away by ``pixseek dupes --move-to`` (table ``moved_dupes``).

Mixed into :class:`~pixseek.store.database.Store`; the SQL stays here. A moved file's row leaves
``images`` (search no longer shows it, the next index run has nothing to remove) and is kept whole in
``moved_dupes``, vector included, so that an undo puts it back without re-embedding. Every column of the
row is kept by name, so columns that later migrations add come back too.
"""

from __future__ import annotations

import base64
import json
import sqlite3
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

import numpy as np

from .filters import UNDER_SQL, under_params

_IN_CHUNK = 500  # ids per ``IN (...)`` query


@dataclass(frozen=True)
class SetAside:
    """A moved file's row as it was when it left the index."""

    id: int
    path: str
    moved_to: str
    row: dict  # every column but the vector, by name
    vector: bytes

    @property
    def size(self) -> int | None:
        return self.row.get("size")

    @property
    def mtime_ns(self) -> int | None:
        return self.row.get("mtime_ns")


def _encode(value: object) -> object:
    return {"b64": base64.b64encode(value).decode("ascii")} if isinstance(value, bytes) else value


def _decode(value: object) -> object:
    return base64.b64decode(value["b64"]) if isinstance(value, dict) and "b64" in value else value


class DupeRows:
    conn: sqlite3.Connection

    def _matrix(self, blobs: list[bytes], dim: int) -> np.ndarray:
        raise NotImplementedError

    @property
    def dim(self) -> int | None:
        raise NotImplementedError

    # --- perceptual hashes -------------------------------------------------------------------------
    def phashes(self, ids: Iterable[int]) -> dict[int, str | None]:
        """Each id's perceptual hash (None: not computed yet); ids not in the index are left out."""
        out: dict[int, str | None] = {}
        for chunk in _chunks([int(i) for i in ids]):
            q = f"SELECT id, phash FROM images WHERE id IN ({','.join('?' * len(chunk))})"
            out.update((r[0], r[1]) for r in self.conn.execute(q, chunk))
        return out

    def set_phashes(self, rows: Iterable[tuple[int, str]]) -> None:
        """Record (row id, perceptual hash); call inside ``with store.batch():``."""
        self.conn.executemany("UPDATE images SET phash = ? WHERE id = ?", ((h, int(i)) for i, h in rows))

    def unhashed_under(self, root: str) -> list[tuple[int, str, str, int, int]]:
        """(id, path, content hash, size, mtime_ns) of rows under ``root`` without a perceptual hash."""
        q = f"SELECT id, path, hash, size, mtime_ns FROM images WHERE phash IS NULL AND ({UNDER_SQL}) ORDER BY path"
        return list(self.conn.execute(q, under_params(root)))

    def unhashed_count(self) -> int:
        return self.conn.execute("SELECT count(*) FROM images WHERE phash IS NULL").fetchone()[0]

    def dupe_basis(self) -> tuple[np.ndarray, list[str], list[str | None]]:
        """(ids in id order, their content hashes, their perceptual hashes) of every image."""
        rows = self.conn.execute("SELECT id, hash, phash FROM images ORDER BY id").fetchall()
        ids = np.fromiter((r[0] for r in rows), dtype=np.int64, count=len(rows))
        return ids, [r[1] or "" for r in rows], [r[2] for r in rows]

    def vectors_between(self, first: int, last: int) -> tuple[np.ndarray, np.ndarray]:
        """(ids, float32 vectors) of the rows whose id lies in ``[first, last]``, in id order."""
        rows = self.conn.execute(
            "SELECT id, vector FROM images WHERE id BETWEEN ? AND ? ORDER BY id", (int(first), int(last))
        ).fetchall()
        ids = np.fromiter((r[0] for r in rows), dtype=np.int64, count=len(rows))
        return ids, self._matrix([r[1] for r in rows], self.dim or 0)

    # --- files moved away --------------------------------------------------------------------------
    def set_aside(self, moves: Iterable[tuple[int, str]], log: str) -> list[int]:
        """Move the rows of (id, path the file was moved to) from ``images`` to ``moved_dupes``; returns
        the ids moved (ids no longer in the index are skipped). Call inside ``with store.batch():``."""
        done: list[int] = []
        now = time.time()
        for image_id, moved_to in moves:
            cur = self.conn.execute("SELECT * FROM images WHERE id = ?", (int(image_id),))
            r = cur.fetchone()
            if r is None:
                continue
            row = dict(zip((d[0] for d in cur.description), r))
            vector = row.pop("vector")
            self.conn.execute(
                "INSERT OR REPLACE INTO moved_dupes(id, path, moved_to, moved_at, log, row, vector) "
                "VALUES(?,?,?,?,?,?,?)",
                (
                    row["id"],
                    row["path"],
                    moved_to,
                    now,
                    log,
                    json.dumps({k: _encode(v) for k, v in row.items()}),
                    vector,
                ),
            )
            self.conn.execute("DELETE FROM images WHERE id = ?", (int(image_id),))
            done.append(int(image_id))
        return done

    def set_aside_rows(self, ids: Iterable[int]) -> dict[int, SetAside]:
        """The kept rows of moved files, by their id in the index when they were moved."""
        out: dict[int, SetAside] = {}
        for chunk in _chunks([int(i) for i in ids]):
            q = f"SELECT id, path, moved_to, row, vector FROM moved_dupes WHERE id IN ({','.join('?' * len(chunk))})"
            for rid, path, moved_to, row, vector in self.conn.execute(q, chunk):
                data = {k: _decode(v) for k, v in json.loads(row).items()}
                out[rid] = SetAside(rid, path, moved_to, data, vector)
        return out

    def restore_aside(self, kept: SetAside) -> int | None:
        """Put a moved file's row back in ``images`` (its old id when free); returns the id it got, or None
        when its path is indexed again meanwhile (that row wins). Call inside ``with store.batch():``."""
        if self.conn.execute("SELECT 1 FROM images WHERE path = ?", (kept.path,)).fetchone():
            self.conn.execute("DELETE FROM moved_dupes WHERE id = ?", (kept.id,))
            return None
        columns = {r[1] for r in self.conn.execute("PRAGMA table_info(images)")}
        row = {k: v for k, v in kept.row.items() if k in columns}
        row["vector"] = kept.vector
        if self.conn.execute("SELECT 1 FROM images WHERE id = ?", (kept.id,)).fetchone():
            row.pop("id", None)  # the id went to a file indexed since: take a new one
        names = list(row)
        quoted = ", ".join(f'"{n}"' for n in names)  # names read from the table itself
        cur = self.conn.execute(
            f"INSERT INTO images({quoted}) VALUES({', '.join('?' * len(names))})", [row[n] for n in names]
        )
        self.conn.execute("DELETE FROM moved_dupes WHERE id = ?", (kept.id,))
        assert cur.lastrowid is not None
        return int(cur.lastrowid)

    def indexed_roots(self) -> list[str]:
        """Every folder given to ``pixseek index`` (recorded, or still holding rows), sorted."""
        q = "SELECT path FROM roots UNION SELECT DISTINCT root FROM images WHERE root IS NOT NULL ORDER BY 1"
        return [r[0] for r in self.conn.execute(q)]

    def set_aside_count(self) -> int:
        return self.conn.execute("SELECT count(*) FROM moved_dupes").fetchone()[0]


def _chunks(ids: list[int]) -> Iterator[list[int]]:
    for i in range(0, len(ids), _IN_CHUNK):
        yield ids[i : i + _IN_CHUNK]
