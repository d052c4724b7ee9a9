"""Walk the roots given to ``pixseek index`` and yield image files or scan errors, streaming.

Rules: recursive; hidden files and folders (name starting with '.') skipped; pixseek data dirs (a
folder holding ``pixseek.db``) skipped, so an index never feeds on its own thumbnails; ``--exclude GLOB``
(repeatable) matched against the path relative to its root and against each name; symlinked folders
followed once (a loop is reported, not followed forever); broken symlinks, unreadable folders and
non-UTF-8 names are reported as errors with a reason.

A URL root (``s3://bucket/prefix``, any protocol fsspec has an implementation for) is listed through
:mod:`pixseek.sources` with the same rules, its prefixes taking the place of folders.
"""

from __future__ import annotations

import fnmatch
import os
import shlex
import stat
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from pixseek import sources
from pixseek.decode import IMAGE_EXTENSIONS
from pixseek.errors import NoImagesError
from pixseek.store.paths import DB_FILE


@dataclass(frozen=True)
class FileEntry:
    path: str  # absolute, not symlink-resolved (what the user sees)
    root: str  # the root it was found under
    size: int
    mtime_ns: int
    dev: int = 0  # device and inode: the file's identity, whatever path reached it
    inode: int = 0


@dataclass(frozen=True)
class ScanError:
    path: str
    message: str
    stage: str = "scan"


def display_path(p: str | bytes) -> str:
    """A printable, UTF-8-safe form of a path that may hold undecodable bytes."""
    raw = os.fsencode(p)
    return raw.decode("utf-8", errors="backslashreplace")


def _utf8_ok(name: str) -> bool:
    try:
        name.encode("utf-8")
        return True
    except UnicodeEncodeError:
        return False


class Excluder:
    def __init__(self, patterns: Iterable[str] = ()):
        self.patterns = [p.rstrip("/") for p in patterns if p]

    def __call__(self, rel: str, name: str) -> bool:
        for pat in self.patterns:
            if fnmatch.fnmatch(name, pat) or fnmatch.fnmatch(rel, pat) or fnmatch.fnmatch(rel, pat + "/*"):
                return True
        return False


def normalize_roots(paths: Iterable[str | os.PathLike]) -> list[str]:
    roots = []
    for p in paths:
        if not os.fspath(p).strip():
            raise NoImagesError("an empty path names no folder", hint="give a folder or an image, e.g. ~/Pictures")
        if sources.is_url(os.fspath(p)):
            p = sources.normalize(os.fspath(p))  # a file:// URL is a local path from here on
        if sources.is_url(p):
            sources.check_root(str(p))  # a missing implementation, bucket or prefix: one line before any work
            if p not in roots:
                roots.append(str(p))
            continue
        ap = os.path.abspath(os.fspath(p))
        if not os.path.exists(ap):
            raise NoImagesError(
                f"no such file or folder: {display_path(ap)}",
                hint=f"if it is gone for good, drop what was indexed there with: pixseek forget {shlex.quote(ap)}",
            )
        if ap not in roots:
            roots.append(ap)
    return roots


def scan(
    roots: Iterable[str], exclude: Iterable[str] = (), include_hidden: bool = False
) -> Iterator[FileEntry | ScanError]:
    excluded = Excluder(exclude)
    for root in roots:
        if sources.is_url(root):
            yield from _list_url(root, excluded, include_hidden)
            continue
        if os.path.isfile(root):
            entry = _entry(root, os.path.dirname(root), follow=True)
            if entry is not None:
                yield entry
            continue
        yield from _walk(root, excluded, include_hidden)


def _entry(path: str, root: str, follow: bool) -> FileEntry | ScanError | None:
    if not _utf8_ok(path):
        return ScanError(display_path(path), "file name is not valid UTF-8 (rename it to index it)")
    try:
        st = os.stat(path) if follow else os.lstat(path)
    except OSError as e:
        if e.errno == 40:  # ELOOP
            return ScanError(path, "symlink loop")
        if os.path.islink(path):
            return ScanError(path, "broken symlink (target missing)")
        return ScanError(path, f"cannot stat: {e.strerror}")
    if not stat.S_ISREG(st.st_mode):
        return None
    return FileEntry(path, root, st.st_size, st.st_mtime_ns, st.st_dev, st.st_ino)


def _walk(root: str, excluded: Excluder, include_hidden: bool) -> Iterator[FileEntry | ScanError]:
    try:
        st = os.stat(root)
    except OSError as e:
        yield ScanError(root, f"cannot open folder: {e.strerror}")
        return
    if os.path.isfile(os.path.join(root, DB_FILE)):
        return  # the root is a pixseek data dir itself
    visited = {(st.st_dev, st.st_ino)}
    stack = [root]
    while stack:
        folder = stack.pop()
        try:
            with os.scandir(folder) as it:
                entries = sorted(it, key=lambda d: d.name)
        except OSError as e:
            yield ScanError(folder, f"cannot list folder: {e.strerror}")
            continue
        subdirs = []
        for d in entries:
            name = d.name
            if not include_hidden and name.startswith("."):
                continue
            rel = os.path.relpath(d.path, root)
            if excluded(rel, name):
                continue
            try:
                is_dir = d.is_dir(follow_symlinks=True)
            except OSError:
                is_dir = False
            if is_dir:
                if not _utf8_ok(d.path):
                    yield ScanError(display_path(d.path), "folder name is not valid UTF-8 (rename it to index it)")
                    continue
                try:
                    sst = os.stat(d.path)
                except OSError as e:
                    yield ScanError(d.path, f"cannot open folder: {e.strerror}")
                    continue
                if os.path.isfile(os.path.join(d.path, DB_FILE)):
                    continue  # a pixseek data dir (its thumbnails are not pictures of the user's)
                key = (sst.st_dev, sst.st_ino)
                if key in visited:
                    if d.is_symlink():
                        yield ScanError(d.path, "symlink loop (folder already scanned)")
                    continue
                visited.add(key)
                subdirs.append(d.path)
                continue
            if Path(name).suffix.lower() not in IMAGE_EXTENSIONS:
                continue
            entry = _entry(d.path, root, follow=True)
            if entry is not None:
                yield entry
        stack.extend(reversed(subdirs))


def _list_url(root: str, excluded: Excluder, include_hidden: bool) -> Iterator[FileEntry]:
    """The image objects at or under a URL: the walk's rules on names relative to the root (hidden names,
    ``--exclude``, image extensions, pixseek data dirs), with prefixes as folders."""
    single, found = sources.listing(root)
    if single:
        for f in found:
            yield FileEntry(f.url, sources.parent(f.url), f.size, f.mtime_ns)
        return
    objects = list(found)
    data_dirs = [f.url[: -len(DB_FILE)] for f in objects if f.url.rsplit("/", 1)[-1] == DB_FILE]
    for f in objects:
        rel = f.url[len(root) :].lstrip("/")
        parts = rel.split("/")
        if not include_hidden and any(part.startswith(".") for part in parts):
            continue
        if any(excluded("/".join(parts[: k + 1]), parts[k]) for k in range(len(parts))):
            continue
        if Path(parts[-1]).suffix.lower() not in IMAGE_EXTENSIONS:
            continue
        if any(f.url.startswith(d) for d in data_dirs):
            continue  # an index's own thumbnails, stored in the bucket
        yield FileEntry(f.url, root, f.size, f.mtime_ns)
