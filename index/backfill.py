"""Camera, lens, GPS and place for rows indexed before pixseek read them: a stage of ``pixseek index``.

New and changed files get their EXIF in the decode pass that embeds them. Rows indexed by an older
pixseek (``exif_version`` NULL, see migration ``m007_photo_metadata``) get it here, after the
embedding stage, from their files' headers alone: no pixels are decoded and no vector is touched.

* Only rows under the run's roots, whose file still has the size and mtime the row records (a file
  that changed since is re-indexed by the next run, in full).
* A file that cannot be opened (gone, unplugged, no permission) is left for a later run; a file whose
  content is no readable image or whose EXIF is garbage is recorded as read, with no metadata.
* One transaction per ``BATCH`` rows, none of them bumping the vectors' generation: a run killed here
  keeps what it committed and the next run reads only the rest.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Sequence

from pixseek import faults, sources
from pixseek.decode import DEFAULT_MAX_FILE_BYTES, read_photo_meta
from pixseek.exif import PhotoMeta
from pixseek.store import Store

from .places import places_for

BATCH = 256


def read_header(path: str, size: int, mtime_ns: int) -> PhotoMeta | None:
    """The EXIF of the file at ``path`` if it is still the file the row describes, else None."""
    if sources.is_url(path):
        try:
            if sources.stat(path) != (size, mtime_ns):
                return None
            if size > DEFAULT_MAX_FILE_BYTES:
                return PhotoMeta()
            with sources.open_binary(path) as f:
                return read_photo_meta(f)
        except OSError:
            return None
    try:
        with open(path, "rb") as f:
            st = os.fstat(f.fileno())
            if not stat.S_ISREG(st.st_mode) or (st.st_size, st.st_mtime_ns) != (size, mtime_ns):
                return None
            if st.st_size > DEFAULT_MAX_FILE_BYTES:
                return PhotoMeta()  # never indexed from its content either
            return read_photo_meta(f)
    except OSError:
        return None


def fill_photo_metadata(store: Store, roots: Sequence[str], *, progress: bool = False) -> int:
    """Read the EXIF of the rows under ``roots`` that lack it; returns how many rows were filled."""
    rows = store.rows_without_photo(roots)
    if not rows:
        return 0
    from tqdm import tqdm

    filled = 0
    bar = tqdm(total=len(rows), unit="img", desc="camera, GPS", disable=not progress, dynamic_ncols=True, leave=False)
    try:
        for start in range(0, len(rows), BATCH):
            chunk = rows[start : start + BATCH]
            read = [(rid, read_header(path, size, mtime_ns)) for rid, path, size, mtime_ns in chunk]
            found = [(rid, photo) for rid, photo in read if photo is not None]
            points = [(p.lat, p.lon) for _, p in found if p.lat is not None and p.lon is not None]
            places = iter(places_for(points))
            faults.point("metadata")
            with store.batch():
                for rid, photo in found:
                    store.set_photo(rid, photo, next(places) if photo.has_gps else None)
            filled += len(found)
            bar.update(len(chunk))
    finally:
        bar.close()
    return filled
