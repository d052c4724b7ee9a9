"""``pixseek serve``: the index as an HTTP search service (FastAPI + uvicorn)."""

from __future__ import annotations

import click

from .cli_common import db_option
from .errors import ServeError


@click.command("serve")
@db_option
@click.option(
    "--host", default="127.0.0.1", show_default=True, help="Address to serve on; beyond loopback a token is required."
)
@click.option("--port", default=8600, show_default=True, type=click.IntRange(1, 65535))
@click.option(
    "--token",
    default=None,
    metavar="SECRET",
    help="Bearer token every request must send (default $PIXSEEK_TOKEN, which keeps it out of `ps`).",
)
@click.option(
    "--max-upload-mb",
    default=20,
    show_default=True,
    type=click.IntRange(1, 1024),
    help="Largest query picture accepted.",
)
def serve_cmd(db, host, port, token, max_upload_mb):
    """Serve searches over HTTP: POST /search, GET /similar/ID, /thumbs/ID, /images/ID, /stats; docs at /docs.

    Example: PIXSEEK_TOKEN=... pixseek serve --db ~/photo-index --host 0.0.0.0"""
    try:
        from .service.run import serve
    except ImportError as e:
        raise ServeError(
            f"the search service needs {e.name}", hint="pip install fastapi uvicorn fastapi-offline"
        ) from None
    serve(db, host=host, port=port, token=token, max_upload_bytes=max_upload_mb << 20)
