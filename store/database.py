"""The SQLite database: the source of truth for images, their vectors, errors and index facts.

Tables: ``images`` (one row per indexed file, vector as float32 BLOB), ``errors`` (one row per file
that could not be indexed), ``meta`` (schema version, model, dim, generation), the tag tables
(:mod:`pixseek.store.tags`), ``ocr_images`` and ``ocr_lines`` (text read in pictures:
:mod:`pixseek.store.ocr`) and ``migrations``
(:mod:`pixseek.store.migrations`; a database from a newer pixseek is refused). ``meta.generation``
increases with every committed change to the set of vectors, so the FAISS cache can tell whether it
is in sync. All of pixseek's SQL lives in this package: callers ask :class:`Store`, never a connection.
"""

from __future__ import annotations

import contextlib
import sqlite3
import time
import warnings
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

from pixseek import faults
from pixseek.errors import EmptyIndexError, IndexNotFoundError, ModelMismatchError, StoreError

from . import migrations
from .dupe_rows import DupeRows
from .filters import UNDER_SQL, Filter, under_params
from .ocr import OcrLog
from .paths import DataDir
from .photos import PhotoStore, ensure_math
from .rows import IMAGE_COLUMNS, IMAGE_FROM, ErrorRecord, ImageRow, vec_to_blob
from .tags import TagStore
from .upkeep import ErrorLog, Health, RootLog
from .writes import ImageWrites

__all__ = ["ErrorRecord", "ImageRow", "Store", "peek_count", "vec_to_blob"]

# A new database's page size. An images row is ~2.3 KB (a 512-d float32 vector and its file facts):
# one fits a 4 KB page (SQLite's default) with ~1.8 KB left empty, six fit a 16 KB page. Measured on
# 30k rows (bench/scale_sqlite.py): 4,446 bytes a row at 4 KB pages, 2,696 at 16 KB, same insert rate.
# An existing database keeps its page size (changing it takes a VACUUM out of WAL mode: docs/scale.md).
PAGE_SIZE = 16384


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


def check_ours(dd: DataDir) -> None:
    """Refuse, before anything is written beside it, a database file that another program made, or a
    file that is no SQLite database at all (one line each)."""
    if not dd.exists():
        return
    conn = _connect(dd.db, readonly=True, shared=False)
    try:
        migrations.refuse_foreign(conn, dd.db)
    except sqlite3.DatabaseError as e:
        raise StoreError(
            f"cannot open database {dd.db}: {e}", hint="restore it from a backup, or index again into another --db"
        ) from None
    finally:
        conn.close()


def _is_row_id(value: int) -> bool:
    """Whether ``value`` can be a row id at all (SQLite's integers): a larger one names no row."""
    return -(2**63) <= int(value) < 2**63


def _journal(conn: sqlite3.Connection) -> str:
    return str(conn.execute("PRAGMA journal_mode").fetchone()[0]).lower()


class Store(ErrorLog, RootLog, Health, ImageWrites, PhotoStore, DupeRows, TagStore, OcrLog):
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
        dd = data_dir if isinstance(data_dir, DataDir) else DataDir.resolve(data_dir)
        if not dd.exists():
            if not create or readonly:
                raise IndexNotFoundError(f"no pixseek index in {dd.root}", hint="build one with: pixseek index PATH")
            dd.create()
        conn = _connect(dd.db, readonly=readonly, shared=shared)
        store = cls(dd, migrations.sqlite_utils().Database(conn), readonly=readonly)
        try:
            conn.execute("PRAGMA busy_timeout = 30000")
            conn.execute("PRAGMA synchronous = NORMAL")
            if create and not readonly and conn.execute("PRAGMA page_count").fetchone()[0] == 0:
                conn.execute(f"PRAGMA page_size = {PAGE_SIZE}")  # a new file: before its first page
            ensure_math(conn)
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

    def rows_by_identity(self, dev: int, inode: int) -> list[tuple[int, str]]:
        """(id, path) of rows recorded as this device + inode."""
        return list(self.conn.execute("SELECT id, path FROM images WHERE dev = ? AND inode = ?", (dev, inode)))

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
            q = f"SELECT {IMAGE_COLUMNS} FROM {IMAGE_FROM} WHERE id IN ({','.join('?' * len(chunk))})"
            for r in self.conn.execute(q, chunk):
                out[r[0]] = ImageRow(*r)
        return out

    def get_by_path(self, path: str) -> ImageRow | None:
        r = self.conn.execute(f"SELECT {IMAGE_COLUMNS} FROM {IMAGE_FROM} WHERE path = ?", (path,)).fetchone()
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
        if filter.exif_only:  # camera, place, position: the narrow exif table answers alone
            filter.validate()
            where, params = filter.exif_sql()
            cur = self.conn.execute(f"SELECT image_id FROM exif WHERE {where}", tuple(params))
        else:
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
