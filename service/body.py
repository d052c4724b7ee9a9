"""A search request's body: read with a cap before anything is parsed, JSON or multipart, kept in memory.

An uploaded picture is a query only: like the page's, it is never written to disk (FastAPI's own form
parsing spools files over 1 MiB to a temporary file) and never added to the index. The body is read
until the cap and refused there (413), so a client cannot make the service hold more than that.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

from pydantic import ValidationError
from python_multipart.exceptions import MultipartParseError
from python_multipart.multipart import MultipartParser, parse_options_header

from pixseek.errors import QueryError, UploadTooLargeError

from .schemas import SearchIn, one_line

MAX_PARTS = 9  # the query and up to 8 pictures
QUERY_FIELD, IMAGE_FIELD = "query", "image"


class UnsupportedBodyError(QueryError):
    """The body is neither JSON nor multipart/form-data (HTTP 415)."""


def too_large(size: int | None, limit: int) -> UploadTooLargeError:
    """``size``: the body's length when it is declared (else it was refused while read, at the cap)."""
    what = f"{size / 2**20:.1f} MiB" if size is not None else f"over {limit / 2**20:.0f} MiB"
    return UploadTooLargeError(
        f"the request is {what}; the limit is {limit / 2**20:.0f} MiB",
        hint="a query picture may be at most --max-upload-mb (the request 1 MiB more)",
    )


def check_length(header: str | None, limit: int) -> None:
    """Refuse a body whose declared length is over ``limit`` before reading it."""
    try:
        length = int(header) if header is not None else None
    except ValueError:
        raise QueryError(f"Content-Length {header!r} is not a number") from None
    if length is not None and length > limit:
        raise too_large(length, limit)


@dataclass
class _Part:
    headers: dict[bytes, bytes] = field(default_factory=dict)
    data: bytearray = field(default_factory=bytearray)


def multipart_parts(body: bytes, boundary: bytes) -> list[tuple[str, str | None, bytes]]:
    """(field name, file name or None, bytes) of each part of a multipart/form-data body, in memory."""
    parts: list[_Part] = []
    name, value = bytearray(), bytearray()

    def begin() -> None:
        if len(parts) >= MAX_PARTS:
            raise QueryError(f"the form has more than {MAX_PARTS} parts")
        parts.append(_Part())

    def header_end() -> None:
        parts[-1].headers[bytes(name).strip().lower()] = bytes(value).strip()
        name.clear()
        value.clear()

    callbacks = {
        "on_part_begin": begin,
        "on_header_field": lambda d, s, e: name.extend(d[s:e]),
        "on_header_value": lambda d, s, e: value.extend(d[s:e]),
        "on_header_end": header_end,
        "on_part_data": lambda d, s, e: parts[-1].data.extend(d[s:e]),
    }
    try:
        parser = MultipartParser(boundary, callbacks)  # type: ignore[arg-type]
        parser.write(body)
        parser.finalize()
    except MultipartParseError as e:
        raise QueryError(f"the multipart body cannot be read: {e}") from None
    out = []
    for p in parts:
        kind, params = parse_options_header(p.headers.get(b"content-disposition", b""))
        if kind != b"form-data" or b"name" not in params:
            raise QueryError("a multipart part has no form-data name")
        filename = params.get(b"filename")
        out.append(
            (
                params[b"name"].decode("utf-8", "replace"),
                filename.decode("utf-8", "replace") if filename is not None else None,
                bytes(p.data),
            )
        )
    return out


def parse_json(text: bytes | str, what: str = "the request body") -> SearchIn:
    try:
        doc = json.loads(text or b"{}")
    except (ValueError, UnicodeDecodeError) as e:
        raise QueryError(f"{what} is not valid JSON: {e}") from None
    if not isinstance(doc, dict):
        raise QueryError(f"{what} must be a JSON object")
    try:
        return SearchIn.model_validate(doc)
    except ValidationError as e:
        raise QueryError(one_line(e.errors())) from None


def parse_search(content_type: str | None, body: bytes) -> tuple[SearchIn, list[tuple[bytes, str]]]:
    """The query and the uploaded pictures ((bytes, file name), in order) of a POST /search body."""
    kind, params = parse_options_header(content_type or "application/json")
    if kind == b"application/json":
        return parse_json(body), []
    if kind != b"multipart/form-data":
        raise UnsupportedBodyError(
            f"cannot read a {kind.decode('latin-1') or 'typeless'} body",
            hint="send application/json, or multipart/form-data with a 'query' (JSON) and 'image' (picture) parts",
        )
    if not params.get(b"boundary"):
        raise QueryError("the multipart body has no boundary")
    query: SearchIn | None = None
    uploads: list[tuple[bytes, str]] = []
    for name, filename, data in multipart_parts(body, params[b"boundary"]):
        if name == QUERY_FIELD and query is None:
            query = parse_json(data, "the 'query' part")
        elif name == IMAGE_FIELD:
            uploads.append((data, filename or f"upload {len(uploads) + 1}"))
        else:
            raise QueryError(f"unexpected form part {name!r}: send one 'query' (JSON) and 'image' (picture) parts")
    return (query or SearchIn()), uploads
