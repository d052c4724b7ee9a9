"""Facts about an index for ``pixseek stats`` and the UI sidebar (no model load needed)."""

from __future__ import annotations

import os
import time
from pathlib import Path

from pixseek.models.ocr import MODEL_VERSION as OCR_MODEL
from pixseek.store import DataDir, Store, VectorIndex


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0


def collect(db_dir: str | os.PathLike | DataDir | None = None) -> dict:
    dd = db_dir if isinstance(db_dir, DataDir) else DataDir.resolve(db_dir)
    with Store.open(dd, readonly=True) as store:
        faiss_meta = VectorIndex.sidecar(dd)
        in_sync = faiss_meta.get("generation") == store.generation and faiss_meta.get("count") == store.count()
        last = store.meta("last_indexed_at")
        db_bytes = sum(_size(p) for p in (dd.db, dd.db.with_name(dd.db.name + "-wal")))
        return {
            "data_dir": str(dd.root),
            "images": store.count(),
            "errors": store.error_count(),
            "model": store.model_spec,
            "model_id": store.model_id,
            "dim": store.dim,
            "index_type": faiss_meta.get("factory", "-"),
            "index_setting": store.meta("index_type", "auto"),
            "search_params": faiss_meta.get("params") or None,
            "measured_recall_at_10": faiss_meta.get("recall"),
            "vectors_in_sync": in_sync,
            "db_bytes": db_bytes,
            "faiss_bytes": _size(dd.faiss),
            "schema_version": int(store.meta("schema_version") or 0),
            "last_indexed": time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(float(last))) if last else None,
            **store.photo_counts(),
            "roots": store.roots(),
            "text_in_pictures": store.ocr_counts(OCR_MODEL),  # read, with_text, no_text, failed, pending
        }
