"""Where indexed pictures live: local paths, or fsspec URLs (``s3://``, ``gs://``, ...), behind one small API.

Every read of an indexed file's bytes goes through here (:func:`pixseek.decode.read_file` for the decode
step of local workers and Ray tasks alike, OCR, thumbnails and originals), and so does everything done
to a URL: its listing, stat and existence check (the scan, ``pixseek doctor``). Local folders are walked
and stat'ed by the scan itself (``os.scandir``: device and inode checks a URL has no use for), and the
EXIF backfill reads a local file's header directly. A local path takes plain ``os`` calls (fsspec is not
even imported); a URL is handed to the fsspec implementation of its protocol, which the user installs
(``pixseek[s3]`` for ``s3://``).

* A URL row's path is the full URL (``s3://bucket/photos/cat.jpg``); its "folders" are its prefixes.
  ``file://`` URLs are local paths (:func:`normalize` turns them into one).
* A listing is ``find`` with details: the size, and a modification time from ``LastModified`` /
  ``mtime`` / ``updated`` (whatever the implementation gives). Object stores give whole seconds (or
  milliseconds), so the last six digits of a URL row's ``mtime_ns`` carry a fingerprint of the object's
  ETag (or checksum): an object rewritten at the same size within the same second still reads as changed.
* Settings: ``PIXSEEK_S3_ENDPOINT`` (an S3-compatible endpoint such as MinIO; botocore's own
  ``AWS_ENDPOINT_URL`` works too), and the implementation's own credentials (for S3: ``AWS_ACCESS_KEY_ID``
  and friends, ``~/.aws``, an instance role). No credentials ever pass through pixseek.

Failures are typed: a protocol without an installed implementation, a bucket that does not exist or
credentials refused is a :class:`~pixseek.errors.SourceError` (one line); a missing object is
``FileNotFoundError`` and any other read failure an ``OSError`` with the implementation's reason, as
for a local file.
"""

from __future__ import annotations

import datetime as dt
import os
import re
import stat as stat_mod
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, BinaryIO

from . import settings
from .errors import NoImagesError, SourceError

_SCHEME = re.compile(r"^([a-zA-Z][a-zA-Z0-9+.-]*)://")
# The package each common protocol needs, and how to get it (fsspec's own table names the rest).
_PACKAGES = {"s3": ("s3fs", "pip install 'pixseek[s3]'"), "s3a": ("s3fs", "pip install 'pixseek[s3]'")}


def is_url(path: object) -> bool:
    """Whether ``path`` is a URL (``proto://...``) rather than a local path."""
    return isinstance(path, str) and _SCHEME.match(path) is not None


def protocol(url: str) -> str:
    m = _SCHEME.match(url)
    return m.group(1).lower() if m else "file"


def normalize(path: str) -> str:
    """A root as the index keeps it: a ``file://`` URL becomes its local path; another URL loses its trailing
    slashes (``s3://bucket/prefix/`` and ``s3://bucket/prefix`` are one root). Local paths pass unchanged."""
    if not is_url(path):
        return path
    if protocol(path) == "file":
        from urllib.parse import unquote

        return unquote(path[len("file://") :]) or "/"
    proto, rest = path.split("://", 1)
    rest = rest.rstrip("/")
    if not rest:
        raise NoImagesError(f"the URL {path} names no bucket or host", hint=f"e.g. {proto.lower()}://bucket/photos")
    return f"{_canonical(proto.lower())}://{rest}"


def _canonical(proto: str) -> str:
    """The protocol fsspec writes back in the paths it lists (``s3a`` -> ``s3``, ``gcs`` -> ``gs``), so a
    root and the rows under it are spelled alike; unchanged when its package is not installed."""
    import fsspec

    try:
        names = fsspec.get_filesystem_class(proto).protocol
    except Exception:  # unknown, or its package missing: listing it gives the one-line error
        return proto
    return names if isinstance(names, str) else names[0]


def parent(path: str) -> str:
    """The folder (prefix) a file is in: ``s3://b/x/y.jpg`` -> ``s3://b/x``."""
    if not is_url(path):
        return os.path.dirname(path)
    head, _, _ = path.rpartition("/")
    return head if "://" in head and not head.endswith(":/") else path


# --- fsspec ---------------------------------------------------------------------------------------
def storage_options(proto: str) -> dict[str, Any]:
    """What a protocol's filesystem is created with, from pixseek's settings."""
    endpoint = settings.s3_endpoint()
    if proto in ("s3", "s3a") and endpoint:
        return {"client_kwargs": {"endpoint_url": endpoint}}
    return {}


def filesystem(url: str) -> tuple[Any, str]:
    """(the fsspec filesystem of ``url``'s protocol, the path within it). fsspec caches one instance per
    process and options (a fresh one after a fork), so this is cheap to call per file."""
    proto = protocol(url)
    try:
        import fsspec
        from fsspec.registry import known_implementations
    except ImportError:  # pragma: no cover - fsspec comes with pixseek
        raise SourceError(
            f"reading {proto}:// URLs needs fsspec, which is not installed", "pip install fsspec"
        ) from None
    try:
        fs = fsspec.filesystem(proto, **storage_options(proto))
    except ImportError:
        package, how = _PACKAGES.get(proto, (None, None))
        if package is None:
            err = str(known_implementations.get(proto, {}).get("err", ""))
            found = re.search(r"[Ii]nstall (\S+)", err)
            package = found.group(1).strip("'\"`") if found else f"the fsspec implementation of {proto}://"
            how = f"pip install {package}" if found else "see fsspec's list of implementations"
        raise SourceError(f"reading {proto}:// URLs needs the {package} package, which is not installed", how) from None
    except ValueError:
        raise SourceError(
            f"no fsspec implementation reads {proto}:// URLs",
            "use a local path, or a protocol fsspec knows (s3://, gs://)",
        ) from None
    return fs, fs._strip_protocol(url)


def _why(e: BaseException) -> str:
    text = (getattr(e, "strerror", None) or str(e) or type(e).__name__).strip().splitlines()
    return text[0][:300] if text else type(e).__name__


def _as_oserror(e: Exception) -> OSError:
    """An implementation's failure as an OSError (``FileNotFoundError`` kept), for callers that map those."""
    return e if isinstance(e, OSError) else OSError(_why(e))


# --- listing --------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Found:
    url: str
    size: int
    mtime_ns: int


def _time_ns(info: dict) -> int:
    for key in ("LastModified", "last_modified", "mtime", "updated", "modified", "created", "timeCreated"):
        v = info.get(key)
        if v is None or v == "":
            continue
        try:
            if isinstance(v, dt.datetime):
                t = v.timestamp()
            elif isinstance(v, (int, float)):
                t = float(v)
            else:
                t = dt.datetime.fromisoformat(str(v).replace("Z", "+00:00")).timestamp()
        except (TypeError, ValueError, OverflowError, OSError):
            continue
        return int(round(t * 1000)) * 1_000_000  # milliseconds: what object stores give at best
    return 0


def _fingerprint(info: dict) -> int:
    for key in ("ETag", "etag", "md5Hash", "crc32c", "checksum", "generation", "version_id", "VersionId"):
        v = info.get(key)
        if v:
            return zlib.crc32(str(v).encode()) % 1_000_000
    return 0


def mtime_ns(info: dict) -> int:
    """A URL object's modification time in ns, its last six digits a fingerprint of its ETag."""
    return _time_ns(info) + _fingerprint(info)


def _fail(url: str, e: Exception) -> Exception:
    """A listing's failure as pixseek's one line: a missing bucket or prefix, or the implementation's reason."""
    if isinstance(e, SourceError):
        return e
    if isinstance(e, FileNotFoundError):
        return NoImagesError(
            f"no such bucket, object or prefix: {url}",
            hint=f"check the name; if it is gone for good, drop what was indexed there with: pixseek forget {url}",
        )
    if isinstance(e, PermissionError):
        return SourceError(f"cannot list {url}: access denied ({_why(e)})", "check the credentials on this machine")
    return SourceError(f"cannot list {url}: {_why(e)}", "check the URL, the endpoint and the credentials")


def check_root(url: str) -> None:
    """Raise (one line) unless ``url`` names an object or a non-empty prefix that can be listed."""
    fs, p = filesystem(url)
    try:
        fs.invalidate_cache()  # a long-lived process must see what changed since its last look
        if not fs.exists(p):
            raise FileNotFoundError(url)
        fs.info(p)
    except Exception as e:
        raise _fail(url, e) from None


def listing(url: str) -> tuple[bool, Iterator[Found]]:
    """(whether ``url`` is a single object, its objects in name order). Prefix markers ("folders") are left out."""
    fs, p = filesystem(url)
    try:
        fs.invalidate_cache()
        info = fs.info(p)
        if info.get("type") == "file":
            return True, iter([Found(url, int(info.get("size") or 0), mtime_ns(info))])
        found = fs.find(p, detail=True)
    except Exception as e:
        raise _fail(url, e) from None
    items = sorted(found.items())
    return False, (
        Found(fs.unstrip_protocol(k), int(v.get("size") or 0), mtime_ns(v))
        for k, v in items
        if v.get("type", "file") == "file" and not k.endswith("/")
    )


# --- reading --------------------------------------------------------------------------------------
def _fs(path: str) -> tuple[Any, str]:
    """:func:`filesystem` for reads: a missing implementation is an OSError with pixseek's line (on a Ray node
    without it, each file's error row then says what the node lacks)."""
    try:
        return filesystem(path)
    except SourceError as e:
        raise OSError(f"{e.message} ({e.hint})" if e.hint else e.message) from None


def stat(path: str) -> tuple[int, int]:
    """(size, mtime_ns) of a file or object, as a scan records them; OSError when it cannot be reached."""
    if not is_url(path):
        st = os.stat(path)
        return st.st_size, st.st_mtime_ns
    fs, p = _fs(path)
    try:
        fs.invalidate_cache(p)
        info = fs.info(p)
    except Exception as e:
        raise _as_oserror(e) from None
    if info.get("type", "file") != "file":
        raise IsADirectoryError(f"{path} is a prefix, not an object")
    return int(info.get("size") or 0), mtime_ns(info)


def exists(path: str) -> bool:
    """Whether the file or object is there. False only when it is gone: a URL that cannot be checked (no
    fsspec package, access refused, no answer) raises OSError or SourceError, so it is never called missing."""
    if not is_url(path):
        return os.path.exists(path)
    try:
        stat(path)
        return True
    except FileNotFoundError:
        return False


def read_bytes(path: str, limit: int) -> bytes:
    """At most ``limit`` bytes of a file or object, from its start (one ranged GET for a URL). Raises OSError
    (``FileNotFoundError`` for one that is gone) or SourceError."""
    if not is_url(path):
        with open(path, "rb") as f:
            return f.read(limit)
    fs, p = _fs(path)
    try:
        return fs.cat_file(p, start=0, end=limit)
    except FileNotFoundError:
        raise
    except Exception as e:
        if _empty(fs, p):  # a ranged read of an empty object is refused (HTTP 416): it has no bytes
            return b""
        raise _as_oserror(e) from None


def _empty(fs: Any, p: str) -> bool:
    try:
        return fs.info(p).get("size") == 0
    except Exception:
        return False


def open_binary(path: str) -> BinaryIO:
    """A file or object open for reading (to stream it). A local path must be a regular file (a FIFO put in
    its place would block a read for ever): OSError otherwise, as when it cannot be opened."""
    if is_url(path):
        fs, p = _fs(path)
        try:
            return fs.open(p, "rb")
        except Exception as e:
            raise _as_oserror(e) from None
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0))
    try:
        if not stat_mod.S_ISREG(os.fstat(fd).st_mode):
            raise OSError("not a regular file")
        if hasattr(os, "set_blocking"):
            os.set_blocking(fd, True)
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise
