"""The database's bookkeeping beside the images: the error log, the roots last indexed, and the health
checks ``pixseek doctor`` asks for. Mixed into :class:`~pixseek.store.database.Store`; the SQL stays here.
"""

from __future__ import annotations

import sqlite3
import time
from collections import Counter

import numpy as np

from .filters import UNDER_SQL, under_params
from .rows import ErrorRecord


class ErrorLog:
    """One row per file that could not be indexed (table ``errors``)."""

    conn: sqlite3.Connection

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

    def clear_errors_under(self, root: str, keep: set[str]) -> int:
        """Forget errors for files under ``root`` that the latest scan no longer saw."""
        stale = [
            r[0]
            for r in self.conn.execute(f"SELECT path FROM errors WHERE {UNDER_SQL}", under_params(root))
            if r[0] not in keep
        ]
        self.conn.executemany("DELETE FROM errors WHERE path = ?", ((p,) for p in stale))
        return len(stale)


class RootLog:
    """The folders given to ``pixseek index``: the device each was on and how many images it showed."""

    conn: sqlite3.Connection

    def root_info(self, path: str) -> tuple[int | None, int] | None:
        """(device, files) recorded for a root the last time it was indexed, or None."""
        r = self.conn.execute("SELECT dev, files FROM roots WHERE path = ?", (path,)).fetchone()
        return (r[0], r[1]) if r else None

    def record_root(self, path: str, dev: int | None, files: int) -> None:
        self.conn.execute(
            "INSERT INTO roots(path, dev, files, seen_at) VALUES(?,?,?,?) ON CONFLICT(path) DO UPDATE "
            "SET dev=excluded.dev, files=excluded.files, seen_at=excluded.seen_at",
            (path, dev, files, time.time()),
        )


class Health:
    """What ``pixseek doctor`` checks the rows with."""

    conn: sqlite3.Connection

    @property
    def dim(self) -> int | None:
        raise NotImplementedError

    @property
    def model_id(self) -> str | None:
        raise NotImplementedError

    def integrity_check(self) -> str:
        """``ok``, or SQLite's first findings joined by '; ' (a damaged file may also raise StoreError)."""
        try:
            rows = [r[0] for r in self.conn.execute("PRAGMA integrity_check")]
        except sqlite3.DatabaseError as e:
            rows = [str(e)]
        return "ok" if rows == ["ok"] else "; ".join(rows[:3])

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
