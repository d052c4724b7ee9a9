"""``pixseek serve``: check the address and the token, load the model and the vectors once, run uvicorn."""

from __future__ import annotations

import sys

from pixseek import settings
from pixseek.errors import EmptyIndexError, IndexNotFoundError, ServeError
from pixseek.hosts import check_port, is_loopback, url
from pixseek.search.uploads import DEFAULT_MAX_UPLOAD_BYTES

from .backend import Backend

MIN_TOKEN = 16  # characters
TOKEN_HINT = "e.g. export PIXSEEK_TOKEN=$(python3 -c 'import secrets; print(secrets.token_urlsafe(32))')"


def check_token(host: str, token: str | None) -> None:
    """A service bound beyond loopback needs a token; a token must be long enough to guess at nothing."""
    if token is None and not is_loopback(host):
        raise ServeError(
            f"serving on {host} needs a bearer token: anyone who can reach it could search and download "
            "the indexed pictures",
            hint=f"set PIXSEEK_TOKEN (or --token) to a secret of {MIN_TOKEN} characters or more; {TOKEN_HINT}",
        )
    if token is not None and len(token) < MIN_TOKEN:
        raise ServeError(
            f"the token has {len(token)} characters; use {MIN_TOKEN} or more", hint=TOKEN_HINT.replace("e.g. ", "")
        )


def serve(
    db: str | None,
    *,
    host: str = "127.0.0.1",
    port: int = 8600,
    token: str | None = None,
    max_upload_bytes: int = DEFAULT_MAX_UPLOAD_BYTES,
    log_level: str = "info",
) -> None:
    """Serve the index in ``db`` until interrupted. ``token``: ``--token``, else ``$PIXSEEK_TOKEN``."""
    import uvicorn

    from .app import create_app

    token = settings.token(token)
    check_token(host, token)
    check_port(host, port)
    backend = Backend(db, max_upload_bytes=max_upload_bytes)
    root = backend.data_dir.root
    try:
        backend.warm()  # the model, the vectors and the score scale, loaded before the first request
    except (IndexNotFoundError, EmptyIndexError) as e:
        print(f"pixseek: {e.message}: searches answer 503 until `pixseek index` fills it", file=sys.stderr)
    if not is_loopback(host):
        print(f"pixseek: serving on {host}: anyone who can reach it with the token can search {root}", file=sys.stderr)
    print(
        f"pixseek: search service for {root} at {url(host, port)}  (API docs at /docs; Ctrl-C stops it)",
        file=sys.stderr,
    )
    app = create_app(backend, host=host, token=token)
    try:
        uvicorn.run(
            app,
            host=host.strip("[]"),
            port=port,
            log_level=log_level,
            server_header=False,
            timeout_graceful_shutdown=5,
        )
    finally:
        backend.close()
