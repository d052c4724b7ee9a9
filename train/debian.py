"""Debian packages as datasets: fetch a pinned ``.deb`` from the archive and read the files inside it.

A ``.deb`` is an ``ar`` archive whose ``data.tar.*`` member holds the installed files; both are read
here with the standard library, so fetching works on any OS, not only Debian. Every package is pinned
by version and sha256: a changed or truncated download is refused, never half-used.
"""

from __future__ import annotations

import hashlib
import io
import lzma
import os
import tarfile
import urllib.error
import urllib.request
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from pixseek.errors import DatasetError

MIRROR = "http://deb.debian.org/debian"


@dataclass(frozen=True)
class DebPackage:
    name: str
    version: str  # without the epoch, as in the file name
    pool: str  # folder in the archive's pool, e.g. "main/t/tuxpaint-stamps"
    sha256: str
    license: str

    @property
    def filename(self) -> str:
        return f"{self.name}_{self.version}_all.deb"

    @property
    def url(self) -> str:
        return f"{MIRROR}/pool/{self.pool}/{self.filename.replace('+', '%2b')}"


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def fetch(pkg: DebPackage, folder: Path, local: Path | None = None) -> Path:
    """The package file: ``local/<filename>`` when given and present, else downloaded into ``folder``.
    Either way its sha256 must match the pin."""
    if local is not None:
        path = local / pkg.filename
        if not path.is_file():
            raise DatasetError(f"{local} has no {pkg.filename}", hint=f"download it from {pkg.url}")
    else:
        path = folder / pkg.filename
        if not path.is_file() or _sha256(path) != pkg.sha256:
            _download(pkg, path)
    if _sha256(path) != pkg.sha256:
        raise DatasetError(f"{path} is not {pkg.name} {pkg.version} (sha256 differs from the pinned one)")
    return path


def _download(pkg: DebPackage, path: Path) -> None:
    from tqdm import tqdm

    part = path.with_name(path.name + f".part{os.getpid()}")
    try:
        with urllib.request.urlopen(pkg.url, timeout=60) as r, open(part, "wb") as out:
            total = int(r.headers.get("Content-Length") or 0) or None
            with tqdm(total=total, unit="B", unit_scale=True, desc=pkg.name, leave=False) as bar:
                for chunk in iter(lambda: r.read(1 << 20), b""):
                    out.write(chunk)
                    bar.update(len(chunk))
        os.replace(part, path)
    except (urllib.error.URLError, OSError, TimeoutError) as e:
        part.unlink(missing_ok=True)
        reason = getattr(e, "reason", None) or getattr(e, "strerror", None) or e
        raise DatasetError(
            f"cannot download {pkg.url}: {reason}",
            hint=f"download it elsewhere and pass its folder with --from (file name {pkg.filename})",
        ) from None


def _ar_members(data: io.BufferedReader) -> Iterator[tuple[str, bytes]]:
    if data.read(8) != b"!<arch>\n":
        raise DatasetError("not a Debian package (no ar header)")
    while True:
        header = data.read(60)
        if len(header) < 60:
            return
        name = header[:16].decode("ascii", "replace").strip().rstrip("/")
        try:
            size = int(header[48:58].decode("ascii").strip())
        except ValueError:
            raise DatasetError("damaged Debian package (bad ar member size)") from None
        body = data.read(size)
        if size % 2:
            data.read(1)
        yield name, body


def files(deb: Path, prefix: str) -> Iterator[tuple[str, bytes]]:
    """(path relative to ``prefix``, contents) of each regular file under ``prefix`` in the package
    (``prefix`` like ``usr/share/tuxpaint/stamps/``). Paths that climb out are skipped."""
    with open(deb, "rb") as f:
        for name, body in _ar_members(f):
            if not name.startswith("data.tar"):
                continue
            try:
                with tarfile.open(fileobj=io.BytesIO(body)) as tar:
                    for m in tar:
                        rel = m.name.removeprefix("./")
                        sub = rel[len(prefix) :]
                        if (
                            not m.isfile()
                            or not rel.startswith(prefix)
                            or sub.startswith("/")
                            or ".." in sub.split("/")
                        ):
                            continue  # not ours, or a path that would climb out of the destination
                        member = tar.extractfile(m)
                        if member is not None:
                            yield sub, member.read()
            except (tarfile.TarError, EOFError, lzma.LZMAError, zlib.error) as e:
                raise DatasetError(f"damaged Debian package {deb}: {e}") from None
            return
    raise DatasetError(f"{deb} has no data archive")
