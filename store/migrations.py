"""The schema's history: named migrations, applied in order and recorded in the ``migrations`` table.

Append only: never edit or reorder a published migration. A database that records a migration this
list does not know was written by a newer pixseek and is refused.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

MIGRATIONS: list[tuple[str, Callable[[Any], None]]] = []


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


SCHEMA_VERSION = len(MIGRATIONS)
