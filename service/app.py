"""The HTTP face of the search service (FastAPI): routes, the Host and token guard, errors as JSON.

Every error is ``{"error": "<one line, as the CLI prints it>", "hint": ...}`` with its status: 400 a bad
query, 401 no token, 403 a wrong token, 404 an unknown id or endpoint, 413 an upload over the caps,
415 a body that is neither JSON nor multipart, 503 no index yet. ``/health``, ``/docs`` (Swagger UI
served from the package, no CDN), ``/redoc`` and ``/openapi.json`` need no token: they show the API's
shape, never the index's data; everything else does when the service has one.
"""

from __future__ import annotations

import hmac
import logging
import urllib.parse
from typing import Any, Literal

from fastapi import Depends, FastAPI, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response, StreamingResponse
from fastapi.security import HTTPBearer
from fastapi_offline import FastAPIOffline
from starlette.datastructures import Headers
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Receive, Scope, Send

from pixseek.errors import (
    EmptyIndexError,
    ImageError,
    IndexNotFoundError,
    NotFoundError,
    PixseekError,
    QueryError,
    UploadTooLargeError,
)
from pixseek.hosts import allowed, host_name

from .backend import Answer, Ask, Backend
from .body import UnsupportedBodyError, check_length, parse_search, too_large
from .schemas import MAX_K, MAX_OFFSET, ErrorOut, ResultOut, SearchOut, make_filter, one_line

log = logging.getLogger("pixseek")
PUBLIC = ("/health", "/docs", "/docs/oauth2-redirect", "/redoc", "/openapi.json")
DOCS_STATIC = "/static-offline-docs"
# The most specific class first: a subclass's status wins over its base's.
STATUS: list[tuple[type[PixseekError], int]] = [
    (UploadTooLargeError, 413),
    (UnsupportedBodyError, 415),
    (QueryError, 400),
    (NotFoundError, 404),
    (ImageError, 404),  # an indexed file that can no longer be read
    (IndexNotFoundError, 503),
    (EmptyIndexError, 503),
]
MIME = {
    "JPEG": "image/jpeg",
    "PNG": "image/png",
    "WEBP": "image/webp",
    "GIF": "image/gif",
    "BMP": "image/bmp",
    "TIFF": "image/tiff",
    "HEIF": "image/heif",
    "AVIF": "image/avif",
}
ERRORS: dict[int | str, dict[str, Any]] = {
    code: {"model": ErrorOut, "description": what}
    for code, what in [
        (400, "A bad query or value"),
        (401, "No bearer token"),
        (403, "A wrong token, or a Host name the service does not answer to"),
        (503, "No index to search yet"),
    ]
}


def error(status: int, message: str, hint: str | None = None, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"error": message, "hint": hint}, status_code=status, headers=headers)


class Guard:
    """Refuses, before any route runs, a foreign Host name (DNS rebinding) and a missing or wrong token."""

    def __init__(self, app: ASGIApp, *, bound: str, token: str | None):
        self.app = app
        self.bound = bound
        self.token = token.encode() if token else None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        refusal = self.refusal(headers, scope["path"])
        if refusal is not None:
            await refusal(scope, receive, send)
            return
        await self.app(scope, receive, send)

    def refusal(self, headers: Headers, path: str) -> JSONResponse | None:
        host = headers.get("host")
        if not allowed(host, self.bound):
            return error(
                403,
                f"this service does not answer to the host name {host_name(host or '')!r}",
                hint="use the address it was started on, or start it with --host 0.0.0.0 and a token",
            )
        if self.token is None or path in PUBLIC or path.startswith(DOCS_STATIC + "/"):
            return None
        scheme, _, given = headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not given.strip():
            return error(
                401,
                "this service needs a bearer token",
                hint="send the header Authorization: Bearer <token>",
                headers={"WWW-Authenticate": 'Bearer realm="pixseek"'},
            )
        if not hmac.compare_digest(given.strip().encode(), self.token):
            return error(403, "the bearer token is wrong", headers={"WWW-Authenticate": 'Bearer error="invalid_token"'})
        return None


def _status(e: PixseekError) -> int:
    return next((code for cls, code in STATUS if isinstance(e, cls)), 500)


def _install_errors(app: FastAPI) -> None:
    @app.exception_handler(PixseekError)
    async def pixseek_error(request: Request, e: PixseekError) -> JSONResponse:
        status = _status(e)
        if status == 500:
            log.error("%s %s: %s", request.method, request.url.path, e)
        return error(status, e.message, e.hint)

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, e: RequestValidationError) -> JSONResponse:
        return error(400, one_line(list(e.errors())))

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, e: HTTPException) -> JSONResponse:
        message = f"no such endpoint: {request.method} {request.url.path}" if e.status_code == 404 else str(e.detail)
        return error(e.status_code, message, headers=getattr(e, "headers", None))

    @app.exception_handler(Exception)
    async def crash(request: Request, e: Exception) -> JSONResponse:
        log.exception("%s %s failed", request.method, request.url.path)
        return error(500, f"internal error ({type(e).__name__}); the service's log has the details")


def create_app(
    backend: Backend,
    *,
    host: str = "127.0.0.1",
    token: str | None = None,
    max_request_bytes: int | None = None,
) -> FastAPI:
    """The service for ``backend``, bound (for the Host check) to ``host``; ``token``: required of every
    request but the public ones; ``max_request_bytes``: a search body's cap (an upload's cap + 1 MiB)."""
    from importlib.metadata import version

    limit = max_request_bytes or backend.max_upload_bytes + (1 << 20)
    app = FastAPIOffline(
        title="pixseek",
        version=version("pixseek"),
        description="Semantic image search over an index built by `pixseek index`: the same queries as "
        "`pixseek search`. Send `Authorization: Bearer <token>` when the service has a token.",
        static_url=DOCS_STATIC,
    )
    app.add_middleware(Guard, bound=host, token=token)
    _install_errors(app)
    bearer = [Depends(HTTPBearer(auto_error=False))] if token else []  # documents the token; Guard checks it
    app.state.backend = backend

    @app.get("/health", summary="Whether the service is up (no token needed)")
    def health() -> dict:
        return {"status": "ok"}

    @app.post(
        "/search",
        response_model=SearchOut,
        dependencies=bearer,
        responses={**ERRORS, 413: {"model": ErrorOut, "description": "An upload over the caps"}},
        summary="Search by text, by uploaded pictures, by an indexed image, or all combined",
        openapi_extra={"requestBody": _search_body()},
    )
    async def search(request: Request) -> SearchOut:
        check_length(request.headers.get("content-length"), limit)
        body = bytearray()
        async for chunk in request.stream():
            body.extend(chunk)
            if len(body) > limit:
                raise too_large(None, limit)
        query, uploads = parse_search(request.headers.get("content-type"), bytes(body))
        ask = query.to_ask(uploads)
        return _answer(await run_in_threadpool(backend.search, ask), ask)

    @app.get(
        "/similar/{id}",
        response_model=SearchOut,
        dependencies=bearer,
        responses={**ERRORS, 404: {"model": ErrorOut, "description": "No image with that id"}},
        summary="Images like an indexed one (itself excluded); needs no model",
    )
    def similar(
        id: int,
        k: int = Query(20, ge=1, le=MAX_K),
        offset: int = Query(0, ge=0, le=MAX_OFFSET),
        min_score: float | None = None,
        folder: str | None = None,
        type: list[str] = Query([], description="File types (repeatable)"),  # noqa: B008
        since: str | None = None,
        until: str | None = None,
        min_side: int = Query(0, ge=0),
    ) -> SearchOut:
        filt = make_filter(folder, tuple(type), since, until, min_side)
        ask = Ask(similar=id, k=k, offset=offset, min_score=min_score, filter=filt, mode="semantic")
        return _answer(backend.search(ask), ask)

    @app.get(
        "/thumbs/{id}",
        dependencies=bearer,
        responses={**ERRORS, 200: {"content": {"image/webp": {}}}, 404: {"model": ErrorOut}},
        response_class=Response,
        summary="An indexed image's thumbnail (WebP, 320 px)",
    )
    def thumb(id: int, request: Request) -> Response:
        row = backend.row(id)
        etag = f'"{row.hash}-{backend.thumbs.side}"'
        headers = {"ETag": etag, "Cache-Control": "private, max-age=86400"}
        if request.headers.get("if-none-match") == etag:
            return Response(status_code=304, headers=headers)
        return Response(backend.thumbnail(row), media_type="image/webp", headers=headers)

    @app.get(
        "/images/{id}",
        dependencies=bearer,
        responses={**ERRORS, 200: {"content": {"image/*": {}}}, 404: {"model": ErrorOut}},
        response_class=Response,
        summary="An indexed image: the original file, or a JPEG of at most 2048 px (size=view)",
    )
    def image(id: int, size: Literal["original", "view"] = "original") -> Response:
        if size == "view":
            row, data = backend.view(id)
            return Response(data, media_type="image/jpeg", headers={"Cache-Control": "private, max-age=3600"})
        row, f = backend.original(id)
        name = urllib.parse.quote(row.path.rsplit("/", 1)[-1])
        headers = {"Content-Disposition": f"inline; filename*=UTF-8''{name}", "X-Content-Type-Options": "nosniff"}
        return StreamingResponse(
            _chunks(f), media_type=MIME.get(row.format or "", "application/octet-stream"), headers=headers
        )

    @app.get("/stats", dependencies=bearer, responses=ERRORS, summary="The index's facts, as `pixseek stats --json`")
    def stats() -> dict:
        return backend.stats()

    _without_422(app)
    return app


def _without_422(app: FastAPI) -> None:
    """FastAPI documents a 422 for every route with parameters; this service answers a bad value with 400
    and an ErrorOut, so the schema says that instead."""
    make = app.openapi

    def openapi() -> dict:
        if app.openapi_schema is None:
            schema = make()
            for item in schema.get("paths", {}).values():
                for op in item.values():
                    op.get("responses", {}).pop("422", None)
            for name in ("HTTPValidationError", "ValidationError"):
                schema.get("components", {}).get("schemas", {}).pop(name, None)
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


def _chunks(f: Any, size: int = 1 << 20):
    with f:
        while chunk := f.read(size):
            yield chunk


def _answer(a: Answer, ask: Ask) -> SearchOut:
    results = [ResultOut.of(r, label) for r, label in zip(a.results, a.labels)]
    next_offset = ask.offset + ask.k if a.more else None
    return SearchOut(results=results, next_offset=next_offset, took_ms=round(a.seconds * 1000, 3))


def _search_body() -> dict:
    from .schemas import SearchIn

    schema = SearchIn.model_json_schema()
    return {
        "required": True,
        "content": {
            "application/json": {"schema": schema},
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "properties": {
                        "query": {"type": "string", "description": "The JSON query above, as text"},
                        "image": {
                            "type": "array",
                            "items": {"type": "string", "format": "binary"},
                            "description": "Query pictures (weights: image_weights in the query)",
                        },
                    },
                }
            },
        },
    }
