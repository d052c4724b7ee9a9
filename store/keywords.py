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
import re
import sqlite3
import time
import unicodedata
from collections.abc import Callable, Iterable, Iterator, Sequence
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
_TOKEN = re.compile(r"[^\W_]+")
CHUNK = 500  # ids per IN (...) list

# A source adds text to one field: (image id, text) rows for the given ids (all when None), and the ids
# whose text changed since a time (for the incremental sync).
Rows = Callable[[sqlite3.Connection, "Sequence[int] | None"], "Iterable[tuple[int, str]] | None"]
Changed = Callable[[sqlite3.Connection, float], Iterable[int]]


@dataclass(frozen=True)
class Source:
    field: str
    table: str  # the table it reads (a database from before that table's migration has none yet)
    rows: Rows
    changed: Changed


SOURCES: list[Source] = []


def source(field: str, table: str, changed: Changed) -> Callable[[Rows], Rows]:
    """Register a function as a source of text for ``field`` from ``table`` (the storage module that
    owns the data does); ``changed(conn, since)``: the ids whose text it changed since that time."""

    def register(fn: Rows) -> Rows:
        SOURCES.append(Source(field, table, fn, changed))
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


def _present(conn: sqlite3.Connection) -> list[Source]:
    tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    return [src for src in SOURCES if src.table in tables]


def _chunks(ids: Sequence[int] | None) -> Iterator[Sequence[int] | None]:
    if ids is None:
        yield None
        return
    for start in range(0, len(ids), CHUNK):
        yield ids[start : start + CHUNK]


def documents(conn: sqlite3.Connection, ids: Sequence[int] | None = None) -> Iterator[tuple[int, tuple[str, ...]]]:
    """(id, one text per field) for every image (or those of ``ids``), in id order."""
    for chunk in _chunks(sorted(ids) if ids is not None else None):
        extra: dict[str, dict[int, list[str]]] = {field: {} for field in FIELDS}
        for src in _present(conn):
            for image_id, text in src.rows(conn, chunk) or ():
                if text:
                    extra[src.field].setdefault(int(image_id), []).append(str(text))
        if chunk is None:
            rows = conn.execute("SELECT id, path, root FROM images ORDER BY id")
        else:
            marks = ",".join("?" * len(chunk))
            rows = conn.execute(f"SELECT id, path, root FROM images WHERE id IN ({marks}) ORDER BY id", list(chunk))
        for image_id, path, root in rows:
            name, folders = name_words(path, root)
            base = {"name": [name], "folders": [folders]}
            yield image_id, tuple(" ".join(base.get(f, []) + extra[f].get(image_id, [])) for f in FIELDS)


def _digest(doc: tuple[str, ...]) -> str:
    return hashlib.blake2b("\x1f".join(doc).encode("utf-8", "surrogatepass"), digest_size=12).hexdigest()


def _changed_since(conn: sqlite3.Connection, since: float) -> list[int]:
    """Images whose keyword text may have changed since ``since``: new, moved or re-embedded rows, rows
    never synced, and what each source changed."""
    ids = {r[0] for r in conn.execute("SELECT id FROM images WHERE updated_at >= ? OR added_at >= ?", (since, since))}
    ids |= {r[0] for r in conn.execute(NEVER_SYNCED)}
    for src in _present(conn):
        ids |= {int(i) for i in src.changed(conn, since)}
    return sorted(ids)


NEVER_SYNCED = "SELECT i.id FROM images i LEFT JOIN keywords_state k ON k.id = i.id WHERE k.id IS NULL"
GONE = "SELECT k.id FROM keywords_state k LEFT JOIN images i ON i.id = k.id WHERE i.id IS NULL"


def sync(conn: sqlite3.Connection, *, full: bool = False) -> int:
    """Bring the keyword rows in line with the database (inside the caller's transaction): only the
    images changed since the last sync, or all of them (``full``, or the first time); the number of rows
    written or removed."""
    now = time.time()
    row = conn.execute("SELECT value FROM meta WHERE key = 'keywords_synced_at'").fetchone()
    ids = None if full or row is None else _changed_since(conn, float(row[0]))
    have = dict(conn.execute("SELECT id, digest FROM keywords_state")) if ids is None else None
    changed = 0
    for image_id, doc in documents(conn, ids):
        digest = _digest(doc)
        old = have.get(image_id) if have is not None else _state(conn, image_id)
        if old == digest:
            continue
        conn.execute("DELETE FROM keywords WHERE rowid = ?", (image_id,))
        conn.execute(
            f"INSERT INTO keywords(rowid, {', '.join(FIELDS)}) VALUES (?{', ?' * len(FIELDS)})", (image_id, *doc)
        )
        conn.execute("INSERT OR REPLACE INTO keywords_state(id, digest) VALUES (?, ?)", (image_id, digest))
        changed += 1
    for (image_id,) in conn.execute(GONE).fetchall():  # images gone since
        conn.execute("DELETE FROM keywords WHERE rowid = ?", (image_id,))
        conn.execute("DELETE FROM keywords_state WHERE id = ?", (image_id,))
        changed += 1
    conn.execute(
        "INSERT INTO meta(key, value) VALUES('keywords_synced_at', ?) "
        "ON CONFLICT(key) DO UPDATE SET value = excluded.value",
        (repr(now),),
    )
    return changed


def _state(conn: sqlite3.Connection, image_id: int) -> str | None:
    row = conn.execute("SELECT digest FROM keywords_state WHERE id = ?", (image_id,)).fetchone()
    return row[0] if row else None


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


def fold(text: str) -> list[str]:
    """The tokens the FTS5 tokenizer makes of ``text``: letters and digits, case and accents folded."""
    norm = unicodedata.normalize("NFKD", text)
    return _TOKEN.findall("".join(c for c in norm if not unicodedata.combining(c)).casefold())


def _holds(tokens: list[str], match: Match) -> bool:
    for word in match.words:
        for w in fold(word):
            if any(t == w or (len(w) >= MIN_PREFIX and t.startswith(w)) for t in tokens):
                return True
    for phrase in match.phrases:
        p = fold(phrase)
        if p and any(tokens[i : i + len(p)] == p for i in range(len(tokens) - len(p) + 1)):
            return True
    return False


def matched_fields(conn: sqlite3.Connection, match: Match, ids: Iterable[int]) -> dict[int, list[str]]:
    """For each of ``ids``, the fields (file name, folder, text in image, ...) the query's words or
    phrases were found in: read off the rows themselves (one lookup by id, not a search per field)."""
    ids = [int(i) for i in ids]
    out: dict[int, list[str]] = {i: [] for i in ids}
    if match.empty:
        return out
    for start in range(0, len(ids), 500):
        chunk = ids[start : start + 500]
        sql = f"SELECT rowid, {', '.join(FIELDS)} FROM keywords WHERE rowid IN ({','.join('?' * len(chunk))})"
        for image_id, *texts in conn.execute(sql, chunk):
            out[int(image_id)] = [FIELDS[f] for f, text in zip(FIELDS, texts) if text and _holds(fold(text), match)]
    return out
