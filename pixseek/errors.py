"""Typed exceptions for all of pixseek.

Library code raises these; only the CLI and the UI turn them into messages. Every exception carries a
one-line, user-facing message (``str(exc)``) and an optional ``hint`` with the command that fixes it.
"""

from __future__ import annotations


class PixseekError(Exception):
    """Base class: a problem the user can act on. ``str(e)`` is one line."""

    exit_code = 1

    def __init__(self, message: str, hint: str | None = None):
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return self.message


# --- models -------------------------------------------------------------------------------------


class ModelError(PixseekError):
    """A model spec could not be resolved or loaded."""


class UnknownModelError(ModelError):
    """The spec names no registry entry, open_clip architecture or local file."""


class ModelUnavailableError(ModelError):
    """Pretrained weights could not be downloaded (offline, no cache)."""


class CheckpointError(ModelError):
    """A local checkpoint is missing, unsafe (pickled code) or does not fit its architecture."""


class ModelMismatchError(PixseekError):
    """Vectors in an index were made by another model than the one asked for."""


# --- store / vectors ----------------------------------------------------------------------------


class StoreError(PixseekError):
    """The SQLite database cannot be used."""


class NotOurDatabaseError(StoreError):
    """The SQLite file belongs to another program (it has tables but not pixseek's migrations)."""


class DatabaseTooNewError(StoreError):
    """The database was written by a newer pixseek (a schema migration this code does not know)."""


class IndexNotFoundError(StoreError):
    """No pixseek database at the given data dir."""


class EmptyIndexError(StoreError):
    """The database exists but holds no images."""


class IndexLockedError(StoreError):
    """Another ``pixseek index`` is writing to the same data dir."""


class VectorIndexError(PixseekError):
    """The FAISS file is missing, corrupt or out of sync (callers usually rebuild it)."""


# --- indexing -----------------------------------------------------------------------------------


class ImageError(PixseekError):
    """One file could not be turned into a vector or read for text. ``stage`` says where: scan, read,
    decode, embed, ocr; ``kind`` why: ``content`` (the bytes; until the file changes), ``io`` (reading
    failed: may pass on its own), ``pixels`` or ``size`` (a limit, ``limit``, was exceeded: passes when
    it is raised)."""

    def __init__(self, message: str, stage: str = "decode", *, kind: str = "content", limit: int | None = None):
        super().__init__(message)
        self.stage = stage
        self.kind = kind
        self.limit = limit


class OcrError(PixseekError):
    """Text in pictures cannot be read here: the ``ocr`` extra (rapidocr) is missing or its models do
    not load."""


class RayIndexError(PixseekError):
    """An index run on Ray (``pixseek index --ray``) cannot start or stopped: the ``ray`` extra is missing,
    the cluster cannot be reached, or a worker failed past its retries (committed work is kept)."""


class DecodeWorkerError(PixseekError):
    """A decode process of an index run died (a decoder crash, the out-of-memory killer): the run stops;
    what it committed is kept and the next run resumes from there."""


class SourceError(PixseekError):
    """A URL given to index cannot be listed or read: no fsspec implementation for its protocol, credentials
    refused, an endpoint that does not answer (:mod:`pixseek.sources`)."""


class NoImagesError(PixseekError):
    """A path given to ``index`` does not exist or is not a folder/image."""


class VocabularyError(PixseekError):
    """A tag vocabulary or its calibration file cannot be read (a bad line, an unknown section, ...)."""


# --- training ----------------------------------------------------------------------------------


class DatasetError(PixseekError):
    """A dataset could not be fetched or read."""


class TrainError(PixseekError):
    """Training could not start or continue."""


# --- search -------------------------------------------------------------------------------------


class QueryError(PixseekError):
    """The query is empty or malformed."""


class QueryImageError(QueryError):
    """A query image could not be read or decoded."""


class UploadTooLargeError(QueryImageError):
    """An uploaded query picture (or the request carrying it) is over the byte or pixel cap."""


class NotFoundError(PixseekError):
    """An image id that is not in the index."""


class DuplicatesError(PixseekError):
    """Finding, moving or restoring duplicates cannot go on: a threshold that matches too much, a
    destination that would overwrite a file or lies inside an indexed folder, an unreadable undo log."""


# --- serving ------------------------------------------------------------------------------------


class ServeError(PixseekError):
    """The web UI or the search service cannot start (port in use, Streamlit missing, no token)."""


class SettingError(PixseekError):
    """An environment variable (pixseek.settings) has a value pixseek cannot use."""
