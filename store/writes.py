"""Changes to the images table, made inside one ``with store.batch():`` transaction by the indexer.

Mixed into :class:`~pixseek.store.database.Store`. A new or changed file's row clears its error; a
file's device and inode are kept so that one file is one row, whatever path reaches it.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterable

from .filters import UNDER_SQL, under_params


class ImageWrites:
    conn: sqlite3.Connection

    def ids_under(self, root: str) -> list[int]:
        return [r[0] for r in self.conn.execute(f"SELECT id FROM images WHERE {UNDER_SQL}", under_params(root))]

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
        phash: str | None = None,
    ) -> int:
        now = time.time()
        cur = self.conn.execute(
            "INSERT INTO images(path, root, size, mtime_ns, hash, width, height, format, model_id, vector,"
            " added_at, updated_at, taken_at, dev, inode, phash) VALUES(?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
            (path, root, size, mtime_ns, digest, width, height, fmt, model_id, blob, now, now, taken_at, dev, inode)
            + (phash,),
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
        phash: str | None = None,
    ) -> None:
        self.conn.execute(
            "UPDATE images SET size=?, mtime_ns=?, hash=?, width=?, height=?, format=?, model_id=?, vector=?,"
            " updated_at=?, taken_at=?, dev=?, inode=?, phash=? WHERE id=?",
            (size, mtime_ns, digest, width, height, fmt, model_id, blob, time.time(), taken_at, dev, inode, phash)
            + (image_id,),
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

    def set_identities(self, rows: Iterable[tuple[int, int, int]]) -> None:
        """Record (row id, device, inode) of files indexed before identities were kept."""
        self.conn.executemany("UPDATE images SET dev = ?, inode = ? WHERE id = ?", ((d, i, r) for r, d, i in rows))

    def forget(self, path: str) -> list[int]:
        """Delete the rows, errors and root records at or under ``path``; returns the deleted row ids."""
        ids = self.ids_under(path)
        self.delete_images(ids)
        self.conn.execute(f"DELETE FROM errors WHERE {UNDER_SQL}", under_params(path))
        self.conn.execute(f"DELETE FROM roots WHERE {UNDER_SQL}", under_params(path))
        return ids

    def sync_keywords(self) -> int:
        """Refresh the keyword index from the rows (:mod:`pixseek.store.keywords`); rows changed."""
        from . import keywords

        return keywords.sync(self.conn)
