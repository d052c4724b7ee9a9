"""The schema's history: named migrations, applied in order and recorded in the ``migrations`` table,
and the checks made when a database is opened.

Append only: never edit or reorder a published migration. A database that records a migration this
list does not know was written by a newer pixseek and is refused; one without pixseek's migrations
is another program's and is refused untouched; one whose tables or columns are gone is damaged.
"""

from __future__ import annotations

import functools
import sqlite3
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pixseek.errors import DatabaseTooNewError, IndexNotFoundError, NotOurDatabaseError, StoreError

MIGRATIONS: list[tuple[str, Callable[[Any], None]]] = []


def sqlite_utils() -> Any:
    """The ``sqlite_utils`` module, imported without pandas: sqlite-utils imports pandas whenever it is
    installed, only to map its Timestamp type, which pixseek never stores (1.3 s of a 4 s one-image index
    run). pandas stays importable afterwards for whoever needs it."""
    import sys

    if "sqlite_utils" in sys.modules or "pandas" in sys.modules:
        import sqlite_utils as module

        return module
    sys.modules["pandas"] = None  # type: ignore[assignment]  # makes `import pandas` raise ImportError
    try:
        import sqlite_utils as module
    finally:
        if sys.modules.get("pandas", 0) is None:
            del sys.modules["pandas"]
    return module


def migration(fn: Callable[[Any], None]) -> Callable[[Any], None]:
    """Register ``fn(db: sqlite_utils.Database)`` as the next migration, named after the function."""
    MIGRATIONS.append((fn.__name__, fn))
    return fn


@migration
def m001_initial(db: Any) -> None:
    db["meta"].create({"key": str, "value": str}, pk="key")
    db["images"].create(
        {
            "id": int,
            "path": str,
            "root": str,
            "size": int,
            "mtime_ns": int,
            "hash": str,
            "width": int,
            "height": int,
            "format": str,
            "model_id": str,
            "vector": bytes,
            "added_at": float,
            "updated_at": float,
        },
        pk="id",
        not_null={"path", "size", "mtime_ns", "hash", "model_id", "vector"},
    )
    db["images"].create_index(["path"], unique=True)
    db["images"].create_index(["hash"])
    db["errors"].create(
        {"id": int, "path": str, "stage": str, "message": str, "size": int, "mtime_ns": int, "at": float},
        pk="id",
        not_null={"path", "stage", "message"},
    )
    db["errors"].create_index(["path"], unique=True)


@migration
def m002_taken_at(db: Any) -> None:
    """Capture time from EXIF, for date filters (rows indexed before it fall back to the file time)."""
    db["images"].add_column("taken_at", float)
    db["images"].create_index(["format"])


@migration
def m003_file_identity(db: Any) -> None:
    """Device and inode of each file: one file is one row, whatever path (symlink, bind mount, hard
    link) reaches it. Rows indexed before get them on their next run."""
    db["images"].add_column("dev", int)
    db["images"].add_column("inode", int)
    db["images"].create_index(["dev", "inode"])


@migration
def m004_error_kinds(db: Any) -> None:
    """Why a file failed (``kind``: content, io, pixels, size) and the limit in force, so a raised
    ``--max-pixels`` or a fixed permission retries it."""
    db["errors"].add_column("kind", str)
    db["errors"].add_column("limit_value", int)


@migration
def m005_roots(db: Any) -> None:
    """The folders given to ``pixseek index``, with the device each was on and how many files it held:
    an unmounted drive (empty, or another device) must not read as "every file was deleted"."""
    db["roots"].create({"path": str, "dev": int, "files": int, "seen_at": float}, pk="path")


@migration
def m006_keywords(db: Any) -> None:
    """The keyword index (FTS5) over file names, folders and later OCR text, camera, place and tags,
    filled from the rows already indexed (no re-embedding); every index run keeps it in line."""
    from . import keywords

    keywords.create(db)
    keywords.sync(db.conn)


@migration
def m007_photo_metadata(db: Any) -> None:
    """Camera, lens and GPS position from EXIF, and the place named offline from the position, one row
    per image in table ``exif`` (narrow, so a filter or a facet never reads the images' vectors), for
    the ``--camera``, ``--place``, ``--near`` and ``--has-gps`` filters and the page's facets.
    ``camera_key`` and ``place_key`` hold every name a filter matches, folded (case and accents).
    ``exif_version`` says which reader filled a row; images with no row (indexed before) get one on the
    next ``pixseek index`` run, from their files' headers, without re-embedding (:mod:`pixseek.index.backfill`).
    A trigger deletes an image's row with the image."""
    db["exif"].create(
        {
            "image_id": int,
            "camera_make": str,
            "camera_model": str,
            "lens": str,
            "gps_lat": float,
            "gps_lon": float,
            "gps_alt": float,
            "place_city": str,
            "place_county": str,
            "place_region": str,
            "place_country": str,
            "place_cc": str,
            "camera_key": str,
            "place_key": str,
            "exif_version": int,
            "read_at": float,
        },
        pk="image_id",
    )
    db["exif"].create_index(["camera_make", "camera_model"])  # the camera facet, from the index alone
    db["exif"].create_index(["place_country", "place_region", "place_city", "place_cc"])  # the place facet
    db["exif"].create_index(["gps_lat", "gps_lon"])  # --near's bounding box, --has-gps
    db["exif"].create_index(["read_at"])  # what changed since the keyword index's last sync
    db.execute(
        "CREATE TRIGGER exif_follows_images AFTER DELETE ON images BEGIN DELETE FROM exif WHERE image_id = old.id; END"
    )


@migration
def m008_dupes(db: Any) -> None:
    """Duplicates: each picture's perceptual hash (``phash``, 16 hex digits; rows indexed before get it on
    their next run, without re-embedding), and ``moved_dupes``: the rows of files ``pixseek dupes
    --move-to`` moved away, kept whole (vector included) so that ``--undo`` restores them unchanged."""
    db["images"].add_column("phash", str)
    db["moved_dupes"].create(
        {"id": int, "path": str, "moved_to": str, "moved_at": float, "log": str, "row": str, "vector": bytes},
        pk="id",
        not_null={"path", "moved_to", "row", "vector"},
    )
    db["moved_dupes"].create_index(["moved_to"])


@migration
def m009_tags(db: Any) -> None:
    """Zero-shot tags (``pixseek.index.tagging``): ``tags`` holds each picture's kept tags with its
    cosine score and strength; ``tagged`` the pictures scored (a picture may keep no tag);
    ``tag_vocab`` the vocabulary in force. Rows go when their image does or its vector changes
    (triggers), so a re-embedded picture is tagged again on the next run."""
    db["tags"].create({"image_id": int, "tag": str, "score": float, "strength": float}, pk=("image_id", "tag"))
    db["tags"].create_index(["tag", "strength"])
    db["tagged"].create({"image_id": int, "tagged_at": float}, pk="image_id")
    db["tagged"].create_index(["tagged_at"])  # what changed since the keyword index's last sync
    db["tag_vocab"].create({"tag": str, "kind": str, "background": float}, pk="tag")
    db.conn.execute(
        "CREATE TRIGGER tags_image_deleted AFTER DELETE ON images BEGIN "
        "DELETE FROM tags WHERE image_id = old.id; DELETE FROM tagged WHERE image_id = old.id; END"
    )
    db.conn.execute(
        "CREATE TRIGGER tags_vector_changed AFTER UPDATE OF vector ON images WHEN old.vector IS NOT new.vector "
        "BEGIN DELETE FROM tags WHERE image_id = old.id; DELETE FROM tagged WHERE image_id = old.id; END"
    )


@migration
def m010_ocr(db: Any) -> None:
    """Text read in pictures (``pixseek index --ocr``, :mod:`pixseek.store.ocr`): per picture, the
    content hash and OCR model it was read with and what came of it (``text``, ``none`` or ``error``),
    so the stage resumes and knows what to read again; per line, its text, score and box. A row of
    ``images`` that is deleted takes its text and its OCR error with it."""
    db["ocr_images"].create(
        {
            "image_id": int,
            "hash": str,
            "model": str,
            "status": str,
            "kind": str,
            "boxes": int,
            "recognised": int,
            "text": str,
            "generation": int,
            "checked_at": float,
        },
        pk="image_id",
        not_null={"hash", "model", "status", "generation"},
    )
    db["ocr_images"].create_index(["generation"])
    db["ocr_images"].create_index(["checked_at"])  # what changed since the keyword index's last sync
    db["ocr_lines"].create(
        {
            "id": int,
            "image_id": int,
            "line": int,
            "text": str,
            "score": float,
            "x0": float,
            "y0": float,
            "x1": float,
            "y1": float,
            "quad": str,
        },
        pk="id",
        not_null={"image_id", "line", "text", "score"},
    )
    db["ocr_lines"].create_index(["image_id", "line"])
    db.execute(
        "CREATE TRIGGER ocr_forget AFTER DELETE ON images BEGIN "
        "DELETE FROM ocr_lines WHERE image_id = old.id; DELETE FROM ocr_images WHERE image_id = old.id; "
        "DELETE FROM errors WHERE path = old.path AND stage = 'ocr'; END"
    )


SCHEMA_VERSION = len(MIGRATIONS)


# --- applying and checking ---------------------------------------------------------------------


@functools.cache
def expected_schema() -> dict[str, frozenset[str]]:
    """The tables and columns the migrations make, read off a database built in memory."""
    db = sqlite_utils().Database(memory=True)
    for _, fn in MIGRATIONS:
        fn(db)
    return {t.name: frozenset(c.name for c in t.columns) for t in db.tables}


def _tables(conn: sqlite3.Connection) -> set[str]:
    return {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}


def refuse_foreign(conn: sqlite3.Connection, path: Path) -> list[str]:
    """The migrations a database records; NotOurDatabaseError when it has tables but not pixseek's."""
    tables = _tables(conn) - {"sqlite_sequence"}
    applied = [r[0] for r in conn.execute("SELECT name FROM migrations ORDER BY id")] if "migrations" in tables else []
    if tables and (not applied or applied[0] != MIGRATIONS[0][0]):
        shown = ", ".join(sorted(tables)[:6]) + (", ..." if len(tables) > 6 else "")
        raise NotOurDatabaseError(
            f"{path} is not a pixseek database (it holds tables {shown}); pixseek leaves it alone",
            hint="give another --db",
        )
    return applied


def upgrade(db: Any, path: Path, *, readonly: bool, create: bool = False) -> None:
    """Refuse a database that is not pixseek's or is newer than this code; apply pending migrations
    (or, ``readonly``, refuse an older schema); refuse a damaged schema. All in one line each."""
    conn = db.conn
    tables = _tables(conn) - {"sqlite_sequence"}
    applied = refuse_foreign(conn, path)
    known = [name for name, _ in MIGRATIONS]
    unknown = [n for n in applied if n not in known]
    if unknown or len(applied) > len(known):
        raise DatabaseTooNewError(
            f"database {path} has schema migrations this pixseek does not know "
            f"({', '.join(unknown) or len(applied)}): it was written by a newer pixseek; upgrade pixseek"
        )
    pending = [(n, fn) for n, fn in MIGRATIONS if n not in applied]
    if not tables and not create:  # an empty file: only `pixseek index` makes a database of it
        raise IndexNotFoundError(
            f"no pixseek index in {path.parent} (the database is empty)", hint="build one with: pixseek index PATH"
        )
    if pending and readonly:
        raise StoreError(
            f"database {path} has an older schema ({len(applied)} of {len(known)} migrations)",
            hint="run `pixseek index` or `pixseek doctor` on it once to upgrade it",
        )
    if pending:
        _apply(db, pending)
    check_schema(conn, path)


def _apply(db: Any, pending: list[tuple[str, Callable[[Any], None]]]) -> None:
    conn = db.conn
    conn.execute("BEGIN IMMEDIATE")
    try:
        if "migrations" not in _tables(conn):
            db["migrations"].create({"id": int, "name": str, "applied_at": float}, pk="id")
        for name, fn in pending:
            fn(db)
            db["migrations"].insert({"name": name, "applied_at": time.time()})
        conn.execute(
            "INSERT INTO meta(key, value) VALUES('schema_version', ?) "
            "ON CONFLICT(key) DO UPDATE SET value = excluded.value",
            (str(SCHEMA_VERSION),),
        )
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")


def schema_problems(conn: sqlite3.Connection) -> list[str]:
    """What is missing from the schema the migrations made: tables, then columns."""
    problems = []
    for table, columns in sorted(expected_schema().items()):
        have = {r[1] for r in conn.execute(f"PRAGMA table_info({table})")}
        if not have:
            problems.append(f"table {table} is missing")
        elif columns - have:
            problems.append(
                f"table {table} lacks column{'s' if len(columns - have) > 1 else ''} "
                f"{', '.join(sorted(columns - have))}"
            )
    return problems


def check_schema(conn: sqlite3.Connection, path: Path) -> None:
    problems = schema_problems(conn)
    if problems:
        raise StoreError(
            f"database {path} is damaged: {problems[0]}",
            hint="restore it from a backup, or index again into another --db",
        )
