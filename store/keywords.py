"""The keyword index: an SQLite FTS5 table over what a picture's vector does not hold as words: its file
name, its folders, the text read in it (OCR), its camera and lens, its place, its tags.

The table is a cache of the rest of the database, like the FAISS file: :func:`sync` rebuilds the rows
whose source text changed (each row's digest is kept in ``keywords_state``), so it is refreshed at the
end of every index run and never needs a migration of its own data. One row per image, ``rowid`` = the
image id. The tokenizer is ``unicode61`` with diacritics folded: ``cafe`` finds ``café``; file names
split on ``_``, ``-`` and ``.`` (``IMG_2024_beach`` holds ``img``, ``2024``, ``beach``).

A query is a :class:`Match`: quoted phrases (``"exit only"``) that must appear literally, in that
order, and loose words of which any may match (prefixes from 3 letters: ``2024`` finds ``20240501``).
Every term is quoted for FTS5, so no user text is read as FTS5 syntax.
"""

from __future__ import annotations

import hashlib
import os
import sqlite3
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass

# The columns, in order, with what a result says when one matched.
FIELDS: dict[str, str] = {
    "name": "file name",
    "folders": "folder",
    "ocr": "text in image",
    "camera": "camera",
    "place": "place",
    "tags": "tag",
}
TOKENIZE = "unicode61 remove_diacritics 2"
# bm25 weights per column: a word in the name counts more than one among an OCR'd page.
WEIGHTS = {"name": 4.0, "folders": 2.0, "ocr": 1.5, "camera": 1.0, "place": 2.0, "tags": 1.0}
MIN_PREFIX = 3  # words this long or longer also match as prefixes

# A source adds text to one field: SQL giving (image id, text) rows, or None when its tables are absent.
Source = Callable[[sqlite3.Connection], Iterable[tuple[int, str]] | None]
SOURCES: dict[str, list[Source]] = {field: [] for field in FIELDS}


def source(field: str) -> Callable[[Source], Source]:
    """Register a function as a source of text for ``field`` (storage modules that own the data do)."""

    def register(fn: Source) -> Source:
        SOURCES[field].append(fn)
        return fn

    return register


def create(db) -> None:
    """The tables (called by the migration that introduced them)."""
    cols = ", ".join(FIELDS)
    db.execute(f"CREATE VIRTUAL TABLE keywords USING fts5({cols}, tokenize = '{TOKENIZE}')")
    db.execute("CREATE TABLE keywords_state (id INTEGER PRIMARY KEY, digest TEXT NOT NULL)")


# --- what each picture says in words --------------------------------------------------------------
def name_words(path: str, root: str | None) -> tuple[str, str]:
    """(file name, folder names below and including its indexed root) as text to index."""
    name = os.path.basename(path)
    folder = os.path.dirname(path)
    root = (root or "").rstrip(os.sep)
    if root and (folder == root or folder.startswith(root + os.sep)):
        rel = folder[len(os.path.dirname(root)) :].strip(os.sep)
    else:
        rel = folder.strip(os.sep)
    return name, " ".join(rel.split(os.sep))


def documents(conn: sqlite3.Connection) -> Iterator[tuple[int, tuple[str, ...]]]:
    """(id, one text per field) for every image, in id order."""
    extra: dict[str, dict[int, list[str]]] = {field: {} for field in FIELDS}
    for field, fns in SOURCES.items():
        for fn in fns:
            rows = fn(conn)
            for image_id, text in rows or ():
                if text:
                    extra[field].setdefault(int(image_id), []).append(str(text))
    for image_id, path, root in conn.execute("SELECT id, path, root FROM images ORDER BY id"):
        name, folders = name_words(path, root)
        base = {"name": [name], "folders": [folders]}
        yield (
            image_id,
            tuple(" ".join(base.get(f, []) + extra[f].get(image_id, [])) for f in FIELDS),
        )


def _digest(doc: tuple[str, ...]) -> str:
    return hashlib.blake2b("\x1f".join(doc).encode("utf-8", "surrogatepass"), digest_size=12).hexdigest()


def sync(conn: sqlite3.Connection) -> int:
    """Bring the keyword rows in line with the database (inside the caller's transaction); the number
    of rows written or removed."""
    have = dict(conn.execute("SELECT id, digest FROM keywords_state"))
    changed = 0
    for image_id, doc in documents(conn):
        digest = _digest(doc)
        if have.pop(image_id, None) == digest:
            continue
        conn.execute("DELETE FROM keywords WHERE rowid = ?", (image_id,))
        conn.execute(
            f"INSERT INTO keywords(rowid, {', '.join(FIELDS)}) VALUES (?{', ?' * len(FIELDS)})", (image_id, *doc)
        )
        conn.execute("INSERT OR REPLACE INTO keywords_state(id, digest) VALUES (?, ?)", (image_id, digest))
        changed += 1
    for image_id in have:  # images gone since
        conn.execute("DELETE FROM keywords WHERE rowid = ?", (image_id,))
        conn.execute("DELETE FROM keywords_state WHERE id = ?", (image_id,))
        changed += 1
    return changed


def stale(conn: sqlite3.Connection) -> bool:
    """Whether images were added or removed since the last sync (a cheap check for read paths)."""
    n_images, max_id = conn.execute("SELECT count(*), max(id) FROM images").fetchone()
    n_rows, max_row = conn.execute("SELECT count(*), max(id) FROM keywords_state").fetchone()
    return (n_images, max_id) != (n_rows, max_row)


# --- queries ---------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Match:
    phrases: tuple[str, ...] = ()  # must all appear, literally
    words: tuple[str, ...] = ()  # any may match

    @property
    def empty(self) -> bool:
        return not self.phrases and not self.words

    def expression(self, *, words: bool = True) -> str | None:
        """The FTS5 MATCH expression: every phrase AND (any word); None when there is nothing to match."""
        parts = [_quote(p) for p in self.phrases]
        if words and self.words:
            loose = [_quote(w) + ("*" if len(w) >= MIN_PREFIX else "") for w in self.words]
            parts.append("(" + " OR ".join(loose) + ")" if len(loose) > 1 else loose[0])
        return " AND ".join(parts) or None


def _quote(text: str) -> str:
    return '"' + text.replace('"', '""') + '"'


def rank(
    conn: sqlite3.Connection, match: Match, limit: int, *, where: str = "1", params: Iterable = ()
) -> list[tuple[int, float]]:
    """The ``limit`` best (id, bm25 score; higher is better) keyword matches, among the images the
    SQL ``where`` over ``images`` selects."""
    expr = match.expression()
    if expr is None:
        return []
    weights = ", ".join(str(WEIGHTS[f]) for f in FIELDS)
    sql = (
        f"SELECT keywords.rowid, -bm25(keywords, {weights}) AS s FROM keywords "
        f"JOIN images ON images.id = keywords.rowid WHERE keywords MATCH ? AND ({where}) "
        "ORDER BY s DESC, keywords.rowid LIMIT ?"
    )
    return [(int(i), float(s)) for i, s in conn.execute(sql, (expr, *params, int(limit)))]


def literal_ids(conn: sqlite3.Connection, match: Match) -> set[int] | None:
    """The images holding every quoted phrase; None when the query has no phrase."""
    expr = match.expression(words=False)
    if expr is None:
        return None
    return {int(r[0]) for r in conn.execute("SELECT rowid FROM keywords WHERE keywords MATCH ?", (expr,))}


def matched_fields(conn: sqlite3.Connection, match: Match, ids: Iterable[int]) -> dict[int, list[str]]:
    """For each of ``ids``, the fields (file name, folder, text in image, ...) the query's words or
    phrases were found in."""
    ids = [int(i) for i in ids]
    out: dict[int, list[str]] = {i: [] for i in ids}
    terms = [_quote(p) for p in match.phrases] + [
        _quote(w) + ("*" if len(w) >= MIN_PREFIX else "") for w in match.words
    ]
    if not ids or not terms:
        return out
    marks = ",".join("?" * len(ids))
    for field, said in FIELDS.items():
        expr = f"{field} : ({' OR '.join(terms)})"
        sql = f"SELECT rowid FROM keywords WHERE keywords MATCH ? AND rowid IN ({marks})"
        for (image_id,) in conn.execute(sql, (expr, *ids)):
            out[int(image_id)].append(said)
    return out
