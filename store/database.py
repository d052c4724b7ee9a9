"""The SQLite database: the source of truth for images, their vectors, errors and index facts.

Tables: ``images`` (one row per indexed file, vector as float32 BLOB), ``errors`` (one row per file
that could not be indexed), ``meta`` (schema version, model, dim, generation) and ``migrations``
(:mod:`pixseek.store.migrations`; a database from a newer pixseek is refused). ``meta.generation``
increases with every committed change to the set of vectors, so the FAISS cache can tell whether it
is in sync. All of pixseek's SQL lives in this package: callers ask :class:`Store`, never a connection.
"""

from __future__ import annotations

import contextlib
import sqlite3
import time
import warnings
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from pixseek import faults
from pixseek.errors import EmptyIndexError, IndexNotFoundError, ModelMismatchError, StoreError

from . import migrations
from .filters import UNDER_SQL, Filter, under_params
from .paths import DataDir


@dataclass(frozen=True)
class ErrorRecord:
    """A file that failed: its size and mtime then, why (``kind``) and the limit in force."""

    size: int | None
    mtime_ns: int | None
    kind: str | None  # content | io | pixels | size (None: recorded before kinds were kept)
    limit_value: int | None


@dataclass
class ImageRow:
    id: int
    path: str
    root: str
    size: int
    mtime_ns: int
    hash: str
    width: int | None
    height: int | None
    format: str | None
    added_at: float
    updated_at: float
    taken_at: float | None = None

    @property
    def date(self) -> float:
        """When the picture was taken (EXIF) if known, else the file's modification time."""
        return self.taken_at if self.taken_at is not None else self.mtime_ns / 1e9


IMAGE_COLUMNS = "id, path, root, size, mtime_ns, hash, width, height, format, added_at, updated_at, taken_at"


def peek_count(data_dir) -> int:
    """Images in the database under ``data_dir``, read-only and without opening a Store (no migration,
    no lock): for watching a running indexer from outside. 0 while the file is missing or busy."""
    db = DataDir.resolve(data_dir).db
    try:
        con = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=1)
        try:
            return con.execute("SELECT count(*) FROM images").fetchone()[0]
        finally:
            con.close()
    except sqlite3.Error:
        return 0


def vec_to_blob(v: np.ndarray) -> bytes:
    return np.ascontiguousarray(v, dtype="<f4").tobytes()


def _connect(path: Path, *, readonly: bool, shared: bool) -> sqlite3.Connection:
    """A connection in autocommit mode (explicit transactions). Read-only: SQLite's ``mode=ro``, or,
    where even that needs a write (WAL's shared-memory file on a read-only disk), ``immutable=1``."""
    kw: dict[str, Any] = {"timeout": 30, "isolation_level": None, "check_same_thread": not shared}
    try:
        if not readonly:
            return sqlite3.connect(str(path), **kw)
        conn = sqlite3.connect(path.absolute().as_uri() + "?mode=ro", uri=True, **kw)
        try:
            conn.execute("SELECT count(*) FROM sqlite_master").fetchone()
            return conn
        except sqlite3.OperationalError:
            conn.close()
            return sqlite3.connect(path.absolute().as_uri() + "?immutable=1", uri=True, **kw)
    except sqlite3.Error as e:
        raise StoreError(f"cannot open database {path}: {e}") from None


def _is_row_id(value: int) -> bool:
    """Whether ``value`` can be a row id at all (SQLite's integers): a larger one names no row."""
    return -(2**63) <= int(value) < 2**63


def _journal(conn: sqlite3.Connection) -> str:
    return str(conn.execute("PRAGMA journal_mode").fetchone()[0]).lower()


class Store:
    """One open pixseek database. Not thread-safe: one Store per thread."""

    def __init__(self, data_dir: DataDir, db: Any, *, readonly: bool = False):
        self.data_dir = data_dir
        self.db = db  # sqlite_utils.Database
        self.conn: sqlite3.Connection = db.conn
        self.readonly = readonly
        self._closed = False

    # --- opening ---------------------------------------------------------------------------------
    @classmethod
    def open(
        cls,
        data_dir: DataDir | str | None = None,
        *,
        create: bool = False,
        shared: bool = False,
        readonly: bool = False,
    ) -> Store:
        """Open the database of ``data_dir`` (migrating it, unless ``readonly``).

        ``create``: make the data dir and the database when missing. ``readonly``: never write (read
        commands; works on read-only disks). ``shared``: the connection may be used from several threads
        (the caller serialises use). Another program's SQLite file is refused untouched.
        """
        import sqlite_utils

        dd = data_dir if isinstance(data_dir, DataDir) else DataDir.resolve(data_dir)
        if not dd.exists():
            if not create or readonly:
                raise IndexNotFoundError(f"no pixseek index in {dd.root}", hint="build one with: pixseek index PATH")
            dd.create()
        conn = _connect(dd.db, readonly=readonly, shared=shared)
        store = cls(dd, sqlite_utils.Database(conn), readonly=readonly)
        try:
            conn.execute("PRAGMA busy_timeout = 30000")
            conn.execute("PRAGMA synchronous = NORMAL")
            # another program's file is refused untouched; an empty one is made a database only by `create`
            migrations.upgrade(store.db, dd.db, readonly=readonly, create=create and not readonly)
            if create and not readonly and _journal(conn) != "wal":
                store.db.enable_wal()
        except sqlite3.DatabaseError as e:
            store.close()
            raise StoreError(
                f"cannot open database {dd.db}: {e}", hint="`pixseek doctor` can check it; a backup may be needed"
            ) from None
        except BaseException:
            store.close()
            raise
        return store

    def close(self) -> None:
        """Close the connection (safe to call twice)."""
        if not self._closed:
            self._closed = True
            self.conn.close()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __del__(self) -> None:
        if not getattr(self, "_closed", True):
            warnings.warn(f"unclosed pixseek Store for {self.data_dir.root}", ResourceWarning, stacklevel=1)
            self.close()

    @contextlib.contextmanager
    def snapshot(self) -> Iterator[None]:
        """One read transaction: every read inside it sees the same state of the database."""
        self.conn.execute("BEGIN")
        try:
            yield
        finally:
            self.conn.execute("COMMIT")

    # --- meta ------------------------------------------------------------------------------------
    def meta(self, key: str, default: str | None = None) -> str | None:
        row = self.conn.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return default if row is None or row[0] is None else str(row[0])

    def _count_meta(self, key: str, *, positive: bool = False) -> int | None:
        """A whole-number meta value, or None if unset; a damaged one is a one-line StoreError."""
        raw = self.meta(key)
        if raw is None:
            return None
        try:
            value = int(raw)
        except ValueError:
            value = -1
        if value < (1 if positive else 0):
            raise StoreError(
                f"database {self.data_dir.db} is damaged: meta value {key} is {raw!r}",
                hint="`pixseek doctor` repairs it from the data",
            )
        return value

    def _set(self, key: str, value: str) -> None:
        self.conn.execute(
            "INSERT INTO meta(key, value) VALUES(?, ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value",
            (key, value),
        )

    @contextlib.contextmanager
    def transaction(self):
        self.conn.execute("BEGIN IMMEDIATE")
        try:
            yield
        except BaseException:
            self.conn.execute("ROLLBACK")
            raise
        self.conn.execute("COMMIT")

    def set_meta(self, **items: str) -> None:
        with self.transaction():
            for k, v in items.items():
                self._set(k, str(v))

    @property
    def generation(self) -> int:
        return self._count_meta("generation") or 0

    @property
    def model_id(self) -> str | None:
        return self.meta("model_id")

    @property
    def model_spec(self) -> str | None:
        return self.meta("model_spec")

    @property
    def dim(self) -> int | None:
        return self._count_meta("dim", positive=True)

    def check_model(self, model_id: str, spec: str, dim: int, *, adopt: bool) -> None:
        """Refuse another model's vectors. ``adopt``: record this model if the index has none yet."""
        have = self.model_id
        if have is None or (self.count() == 0 and adopt):
            if adopt:
                self.set_meta(model_id=model_id, model_spec=spec, dim=str(dim))
            return
        if have != model_id:
            raise ModelMismatchError(
                f"index in {self.data_dir.root} was built with model {have}, not {model_id}; "
                f"use --model {self.model_spec} or another --db for the new model"
            )

    # --- reads -----------------------------------------------------------------------------------
    def count(self) -> int:
        return self.conn.execute("SELECT count(*) FROM images").fetchone()[0]

    def require_images(self) -> None:
        if self.count() == 0:
            raise EmptyIndexError(
                f"index in {self.data_dir.root} has no images", hint="add some with: pixseek index PATH"
            )

    def rows_under(self, root: str) -> Iterator[tuple[int, str, int, int, str, int | None, int | None]]:
        """(id, path, size, mtime_ns, hash, dev, inode) of rows whose path lies under ``root`` (or is it)."""
        yield from self.conn.execute(
            f"SELECT id, path, size, mtime_ns, hash, dev, inode FROM images WHERE {UNDER_SQL}", under_params(root)
        )

    def ids_under(self, root: str) -> list[int]:
        return [r[0] for r in self.conn.execute(f"SELECT id FROM images WHERE {UNDER_SQL}", under_params(root))]

    def rows_by_identity(self, dev: int, inode: int) -> list[tuple[int, str]]:
        """(id, path) of rows recorded as this device + inode."""
        return list(self.conn.execute("SELECT id, path FROM images WHERE dev = ? AND inode = ?", (dev, inode)))

    def root_info(self, path: str) -> tuple[int | None, int] | None:
        """(device, files) recorded for a root the last time it was indexed, or None."""
        r = self.conn.execute("SELECT dev, files FROM roots WHERE path = ?", (path,)).fetchone()
        return (r[0], r[1]) if r else None

    def ids_by_hash(self, digest: str) -> list[int]:
        return [r[0] for r in self.conn.execute("SELECT id FROM images WHERE hash = ?", (digest,))]

    def vector(self, image_id: int) -> np.ndarray | None:
        if not _is_row_id(image_id):
            return None
        row = self.conn.execute("SELECT vector FROM images WHERE id = ?", (image_id,)).fetchone()
        return self._matrix([row[0]], self.dim or 0)[0] if row else None

    def vector_blob(self, image_id: int) -> bytes | None:
        row = self.conn.execute("SELECT vector FROM images WHERE id = ?", (image_id,)).fetchone()
        return row[0] if row else None

    def get(self, ids: Iterable[int]) -> dict[int, ImageRow]:
        ids = [int(i) for i in ids if _is_row_id(i)]
        out: dict[int, ImageRow] = {}
        for i in range(0, len(ids), 500):
            chunk = ids[i : i + 500]
            q = f"SELECT {IMAGE_COLUMNS} FROM images WHERE id IN ({','.join('?' * len(chunk))})"
            for r in self.conn.execute(q, chunk):
                out[r[0]] = ImageRow(*r)
        return out

    def get_by_path(self, path: str) -> ImageRow | None:
        r = self.conn.execute(f"SELECT {IMAGE_COLUMNS} FROM images WHERE path = ?", (path,)).fetchone()
        return ImageRow(*r) if r else None

    def iter_vectors(self, batch: int = 65536) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """(ids int64[n], vectors float32[n, dim]) in id order, in chunks (bounded memory)."""
        dim = self.dim or 0
        last = -1
        while True:
            rows = self.conn.execute(
                "SELECT id, vector FROM images WHERE id > ? ORDER BY id LIMIT ?", (last, batch)
            ).fetchall()
            if not rows:
                return
            ids = np.fromiter((r[0] for r in rows), dtype=np.int64, count=len(rows))
            yield ids, self._matrix([r[1] for r in rows], dim)
            last = int(ids[-1])

    def _matrix(self, blobs: list[bytes], dim: int) -> np.ndarray:
        """float32[n, dim] from vector BLOBs; a BLOB of another size is a one-line StoreError."""
        bad = next((b for b in blobs if not isinstance(b, bytes) or len(b) != dim * 4), None)
        if bad is not None:
            size = len(bad) if isinstance(bad, bytes) else type(bad).__name__
            raise StoreError(
                f"database {self.data_dir.db} is damaged: a stored vector is {size} bytes, the index's "
                f"vector size {dim} needs {dim * 4}",
                hint="`pixseek doctor` repairs it",
            )
        return np.frombuffer(b"".join(blobs), dtype="<f4").reshape(len(blobs), dim).astype(np.float32)

    def sample_vectors(self, n: int, seed: int = 0) -> np.ndarray:
        """Up to ``n`` vectors drawn uniformly (by row id) with a fixed seed, for training and tuning."""
        ids = self.ids()
        if len(ids) > n:
            ids = np.sort(np.random.default_rng(seed).choice(ids, n, replace=False))
        return self.vectors_for(ids)[1]

    def error_for(self, path: str) -> ErrorRecord | None:
        r = self.conn.execute("SELECT size, mtime_ns, kind, limit_value FROM errors WHERE path = ?", (path,)).fetchone()
        return ErrorRecord(*r) if r else None

    def errors(self, limit: int | None = None) -> list[dict]:
        q = "SELECT path, stage, message, at FROM errors ORDER BY at DESC, path"
        if limit:
            q += f" LIMIT {int(limit)}"
        return [dict(zip(("path", "stage", "message", "at"), r)) for r in self.conn.execute(q)]

    def error_count(self) -> int:
        return self.conn.execute("SELECT count(*) FROM errors").fetchone()[0]

    def formats(self) -> list[tuple[str, int]]:
        return list(
            self.conn.execute(
                "SELECT format, count(*) FROM images WHERE format IS NOT NULL GROUP BY format ORDER BY format"
            )
        )

    def folders(self) -> list[str]:
        """Every folder that holds indexed images, and each of its ancestors up to its root, sorted."""
        out: set[str] = set()
        for root, path in self.conn.execute("SELECT root, path FROM images"):
            d = path.rsplit("/", 1)[0] if "/" in path else path
            while d not in out:
                out.add(d)
                if len(d) <= len(root) or "/" not in d:
                    break
                d = d.rsplit("/", 1)[0] or "/"
        return sorted(out)

    def select_ids(self, filter: Filter) -> np.ndarray:
        """Ids of the images ``filter`` selects (its values are bound parameters, never SQL text)."""
        where, params = filter.sql()
        cur = self.conn.execute(f"SELECT id FROM images WHERE {where}", tuple(params))
        return np.fromiter((r[0] for r in cur), dtype=np.int64)

    def ids(self, limit: int | None = None) -> np.ndarray:
        """Row ids in id order (the first ``limit`` of them)."""
        q = "SELECT id FROM images ORDER BY id" + (f" LIMIT {int(limit)}" if limit else "")
        return np.fromiter((r[0] for r in self.conn.execute(q)), dtype=np.int64)

    def hashes(self) -> set[str]:
        """The content hashes of every indexed file."""
        return {r[0] for r in self.conn.execute("SELECT DISTINCT hash FROM images")}

    def paths(self) -> Iterator[str]:
        for (p,) in self.conn.execute("SELECT path FROM images"):
            yield p

    def vector_profile(self) -> tuple[Counter[int], Counter[str]]:
        """(how many vectors have each byte length, how many rows each model id made): what the data
        says the meta values should be."""
        lengths: Counter[int] = Counter()
        models: Counter[str] = Counter()
        for n, model_id, count in self.conn.execute(
            "SELECT length(vector), model_id, count(*) FROM images GROUP BY 1, 2"
        ):
            lengths[int(n or 0)] += count
            models[str(model_id)] += count
        return lengths, models

    def unusable_vectors(self) -> list[tuple[int, str]]:
        """(row id, what is wrong) for stored vectors that are the wrong length, not finite, or another
        model's."""
        dim, model_id = self.dim or 0, self.model_id
        bad: list[tuple[int, str]] = []
        for rid, blob, row_model in self.conn.execute("SELECT id, vector, model_id FROM images"):
            if blob is None or len(blob) != dim * 4:
                bad.append((rid, f"{len(blob or b'')} bytes, expected {dim * 4}"))
            elif not np.isfinite(np.frombuffer(blob, dtype="<f4")).all():
                bad.append((rid, "not finite"))
            elif row_model != model_id:
                bad.append((rid, f"made by model {row_model}"))
        return bad

    def vectors_for(self, ids: Iterable[int]) -> tuple[np.ndarray, np.ndarray]:
        """(ids, vectors) for the given ids that exist, in chunks of 500 per query."""
        ids = [int(i) for i in ids if _is_row_id(i)]
        got_ids, blobs = [], []
        for i in range(0, len(ids), 500):
            chunk = ids[i : i + 500]
            q = f"SELECT id, vector FROM images WHERE id IN ({','.join('?' * len(chunk))})"
            for r in self.conn.execute(q, chunk):
                got_ids.append(r[0])
                blobs.append(r[1])
        return np.asarray(got_ids, dtype=np.int64), self._matrix(blobs, self.dim or 0)

    def roots(self) -> list[tuple[str, int]]:
        return list(self.conn.execute("SELECT root, count(*) FROM images GROUP BY root ORDER BY root"))

    # --- writes: call inside ``with store.batch():`` -----------------------------------------------
    def batch(self):
        """One transaction; bumps the generation once when vectors changed inside it."""
        return _Batch(self)

    def insert_image(
        self,
        *,
        path,
        root,
        size,
        mtime_ns,
        digest,
        width,
        height,
        fmt,
        model_id,
        blob: bytes,
        taken_at: float | None = None,
        dev: int | None = None,
        inode: int | None = None,
    ) -> int:
        now = time.time()
        cur = self.conn.execute(
            "INSERT INTO images(path, root, size, mtime_ns, hash, width, height, format, model_id, vector,"
            " added_at, updated_at, taken_at, dev, inode) VALUES(?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
            (path, root, size, mtime_ns, digest, width, height, fmt, model_id, blob, now, now, taken_at, dev, inode),
        )
        self.conn.execute("DELETE FROM errors WHERE path = ?", (path,))
        assert cur.lastrowid is not None  # an INSERT always sets it
        return cur.lastrowid

    def update_image(
        self,
        image_id: int,
        *,
        size,
        mtime_ns,
        digest,
        width,
        height,
        fmt,
        model_id,
        blob: bytes,
        taken_at: float | None = None,
        dev: int | None = None,
        inode: int | None = None,
    ) -> None:
        self.conn.execute(
            "UPDATE images SET size=?, mtime_ns=?, hash=?, width=?, height=?, format=?, model_id=?, vector=?,"
            " updated_at=?, taken_at=?, dev=?, inode=? WHERE id=?",
            (size, mtime_ns, digest, width, height, fmt, model_id, blob, time.time(), taken_at, dev, inode, image_id),
        )
        self.conn.execute("DELETE FROM errors WHERE path = (SELECT path FROM images WHERE id = ?)", (image_id,))

    def move_image(self, image_id: int, *, path, root, size, mtime_ns, dev=None, inode=None) -> None:
        self.conn.execute(
            "UPDATE images SET path=?, root=?, size=?, mtime_ns=?, updated_at=?, dev=?, inode=? WHERE id=?",
            (path, root, size, mtime_ns, time.time(), dev, inode, image_id),
        )
        self.conn.execute("DELETE FROM errors WHERE path = ?", (path,))

    def touch_image(self, image_id: int, *, size, mtime_ns) -> None:
        """Same content, new size/mtime (e.g. ``touch``): record it without re-embedding."""
        self.conn.execute("UPDATE images SET size=?, mtime_ns=? WHERE id=?", (size, mtime_ns, image_id))

    def delete_images(self, ids: Iterable[int]) -> None:
        self.conn.executemany("DELETE FROM images WHERE id = ?", ((int(i),) for i in ids))

    def record_error(
        self,
        path: str,
        stage: str,
        message: str,
        size: int | None = None,
        mtime_ns: int | None = None,
        kind: str | None = None,
        limit_value: int | None = None,
    ) -> None:
        """One row per failed file: where it failed, why (``kind``: content, io, pixels, size) and the
        limit in force for a limit kind, so that a run can tell when the reason may be gone."""
        self.conn.execute(
            "INSERT INTO errors(path, stage, message, size, mtime_ns, at, kind, limit_value) VALUES(?,?,?,?,?,?,?,?) "
            "ON CONFLICT(path) DO UPDATE SET stage=excluded.stage, message=excluded.message, size=excluded.size, "
            "mtime_ns=excluded.mtime_ns, at=excluded.at, kind=excluded.kind, limit_value=excluded.limit_value",
            (path, stage, message, size, mtime_ns, time.time(), kind, limit_value),
        )

    def set_identities(self, rows: Iterable[tuple[int, int, int]]) -> None:
        """Record (row id, device, inode) of files indexed before identities were kept."""
        self.conn.executemany("UPDATE images SET dev = ?, inode = ? WHERE id = ?", ((d, i, r) for r, d, i in rows))

    def record_root(self, path: str, dev: int | None, files: int) -> None:
        self.conn.execute(
            "INSERT INTO roots(path, dev, files, seen_at) VALUES(?,?,?,?) ON CONFLICT(path) DO UPDATE "
            "SET dev=excluded.dev, files=excluded.files, seen_at=excluded.seen_at",
            (path, dev, files, time.time()),
        )

    def forget(self, path: str) -> list[int]:
        """Delete the rows, errors and root records at or under ``path``; returns the deleted row ids."""
        ids = self.ids_under(path)
        self.delete_images(ids)
        self.conn.execute(f"DELETE FROM errors WHERE {UNDER_SQL}", under_params(path))
        self.conn.execute(f"DELETE FROM roots WHERE {UNDER_SQL}", under_params(path))
        return ids

    def clear_errors_under(self, root: str, keep: set[str]) -> int:
        """Forget errors for files under ``root`` that the latest scan no longer saw."""
        stale = [
            r[0]
            for r in self.conn.execute(f"SELECT path FROM errors WHERE {UNDER_SQL}", under_params(root))
            if r[0] not in keep
        ]
        self.conn.executemany("DELETE FROM errors WHERE path = ?", ((p,) for p in stale))
        return len(stale)

    def integrity_check(self) -> str:
        """``ok``, or SQLite's first findings joined by '; ' (a damaged file may also raise StoreError)."""
        try:
            rows = [r[0] for r in self.conn.execute("PRAGMA integrity_check")]
        except sqlite3.DatabaseError as e:
            rows = [str(e)]
        return "ok" if rows == ["ok"] else "; ".join(rows[:3])


class _Batch:
    def __init__(self, store: Store):
        self.store = store
        self.changed = False

    def __enter__(self) -> _Batch:
        self.store.conn.execute("BEGIN IMMEDIATE")
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        conn = self.store.conn
        if exc_type is not None:
            conn.execute("ROLLBACK")
            return
        try:
            if self.changed:
                self.store._set("generation", str(self.store.generation + 1))
            self.store._set("last_indexed_at", str(time.time()))
            faults.point("commit")
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise
