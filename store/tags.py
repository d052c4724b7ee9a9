"""Zero-shot tags in the database: each picture's kept tags (table ``tags``: tag, cosine score,
strength), the pictures already scored (``tagged``) and the vocabulary in force (``tag_vocab``).
Mixed into :class:`~pixseek.store.database.Store`; the SQL stays here, what a tag means lives in
:mod:`pixseek.index.tagging`.

``meta.tags_key`` names the setup the rows were made with (model, vocabulary, rule); a new key
empties the three tables first, so tags of two setups never mix. Triggers (migration ``m009_tags``)
drop a picture's rows when it is deleted or its vector changes.
"""

from __future__ import annotations

import contextlib
import difflib
import sqlite3
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass

import numpy as np

from pixseek.errors import QueryError

from . import keywords
from .filters import Filter, normalize_tag


@dataclass(frozen=True)
class TagScore:
    tag: str
    score: float  # cosine of the picture and the tag's prompt ensemble
    strength: float  # how far it stands above the picture's other tags (pixseek.index.tag_rule)


@dataclass(frozen=True)
class TagState:
    key: str | None  # the setup the tags were made with; None: never tagged
    source: str  # where the rule's numbers come from, for people
    vocabulary: int  # tags in the vocabulary in force
    tagged: int  # pictures scored
    images: int  # pictures in the index


class TagStore:
    conn: sqlite3.Connection

    @contextlib.contextmanager
    def _tag_transaction(self) -> Iterator[None]:
        self.conn.execute("BEGIN IMMEDIATE")
        try:
            yield
        except BaseException:
            self.conn.execute("ROLLBACK")
            raise
        self.conn.execute("COMMIT")

    def _meta_value(self, key: str) -> str | None:
        row = self.conn.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return None if row is None else row[0]

    # --- reads -----------------------------------------------------------------------------------
    def tag_state(self) -> TagState:
        one = self.conn.execute
        return TagState(
            self._meta_value("tags_key"),
            self._meta_value("tags_source") or "",
            one("SELECT count(*) FROM tag_vocab").fetchone()[0],
            one("SELECT count(*) FROM tagged").fetchone()[0],
            one("SELECT count(*) FROM images").fetchone()[0],
        )

    def tag_vocabulary(self) -> list[tuple[str, str, float]]:
        """(tag, kind, background median) of the vocabulary in force, in its order."""
        q = "SELECT tag, kind, background FROM tag_vocab ORDER BY rowid"
        return [(t, k, float(b)) for t, k, b in self.conn.execute(q)]

    def untagged_ids(self) -> np.ndarray:
        """Ids of pictures not scored with the tag setup in force, in id order."""
        cur = self.conn.execute("SELECT id FROM images WHERE id NOT IN (SELECT image_id FROM tagged) ORDER BY id")
        return np.fromiter((r[0] for r in cur), dtype=np.int64)

    def tags_for(self, ids: Iterable[int], limit: int | None = None) -> dict[int, list[TagScore]]:
        """Each picture's tags, strongest first (at most ``limit`` each); pictures without tags are absent."""
        ids = [int(i) for i in ids]
        out: dict[int, list[TagScore]] = {}
        for start in range(0, len(ids), 500):
            chunk = ids[start : start + 500]
            q = (
                f"SELECT image_id, tag, score, strength FROM tags WHERE image_id IN ({','.join('?' * len(chunk))}) "
                "ORDER BY image_id, strength DESC, tag"
            )
            for image_id, tag, score, strength in self.conn.execute(q, chunk):
                got = out.setdefault(image_id, [])
                if limit is None or len(got) < limit:
                    got.append(TagScore(tag, float(score), float(strength)))
        return out

    def tag_counts(self, filter: Filter | None = None, limit: int | None = None) -> list[tuple[str, int]]:
        """(tag, pictures) for every tag in use, most used first (ties by name); with ``filter``, among
        the pictures it selects (a facet beside the other filters)."""
        where, params = ("1", []) if filter is None else filter.sql()
        q = (
            "SELECT tag, count(*) AS n FROM tags "
            + ("" if where == "1" else f"WHERE image_id IN (SELECT id FROM images WHERE {where}) ")
            + "GROUP BY tag ORDER BY n DESC, tag"
            + (f" LIMIT {int(limit)}" if limit else "")
        )
        return [(t, int(n)) for t, n in self.conn.execute(q, tuple(params))]

    def check_tags(self, tags: Sequence[str]) -> None:
        """Refuse a tag the index's vocabulary does not have, naming the nearest ones (QueryError)."""
        if not tags:
            return
        known = {t for t, *_ in self.tag_vocabulary()}
        if not known:
            raise QueryError("this index has no tags yet", hint="run `pixseek index PATH` once to tag it")
        for tag in tags:
            name = normalize_tag(tag)
            if name not in known:
                near = difflib.get_close_matches(name, sorted(known), n=3)
                hint = ("did you mean " + ", ".join(near) + "? " if near else "") + "`pixseek tags` lists them"
                raise QueryError(f"unknown tag {name!r}", hint=hint)

    # --- writes (the tagging stage of `pixseek index`) --------------------------------------------
    def reset_tags(
        self, key: str, source: str, vocabulary: Sequence[tuple[str, str, float]], *, background: str = ""
    ) -> None:
        """Start over with a new setup: no picture tagged; the new vocabulary (tag, kind, background
        median), key, source and ``background`` (what an uncalibrated rule measured) kept."""
        with self._tag_transaction():
            for table in ("tags", "tagged", "tag_vocab"):
                self.conn.execute(f"DELETE FROM {table}")
            self.conn.executemany(
                "INSERT INTO tag_vocab(tag, kind, background) VALUES(?,?,?)",
                ((t, k, float(b)) for t, k, b in vocabulary),
            )
            for k, v in (("tags_key", key), ("tags_source", source), ("tags_background", background)):
                self.conn.execute(
                    "INSERT INTO meta(key, value) VALUES(?, ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value",
                    (k, v),
                )

    def add_tags(self, ids: Iterable[int], rows: Iterable[tuple[int, str, float, float]]) -> None:
        """Record pictures ``ids`` as scored and their kept tags (image id, tag, score, strength), in one
        transaction. A picture deleted since it was read is skipped."""
        with self._tag_transaction():
            now = time.time()
            self.conn.executemany(
                "INSERT OR REPLACE INTO tagged(image_id, tagged_at) SELECT id, ? FROM images WHERE id = ?",
                ((now, int(i)) for i in ids),
            )
            self.conn.executemany(
                "INSERT OR REPLACE INTO tags(image_id, tag, score, strength) "
                "SELECT ?, ?, ?, ? WHERE EXISTS (SELECT 1 FROM tagged WHERE image_id = ?)",
                ((int(i), t, float(s), float(z), int(i)) for i, t, s, z in rows),
            )


# --- what the keyword index reads: the tags' names ------------------------------------------------------
def _tagged_since(conn: sqlite3.Connection, since: float) -> list[int]:
    return [r[0] for r in conn.execute("SELECT image_id FROM tagged WHERE tagged_at >= ?", (since,))]


@keywords.source("tags", "tags", _tagged_since)
def _tag_words(conn: sqlite3.Connection, ids: Sequence[int] | None) -> Iterable[tuple[int, str]]:
    where = f"WHERE image_id IN ({','.join('?' * len(ids))})" if ids is not None else ""
    sql = f"SELECT image_id, group_concat(tag, ' ') FROM tags {where} GROUP BY image_id"
    return conn.execute(sql, list(ids or ()))
