"""``pixseek ui``: start Streamlit on the search page, bound to this machine unless told otherwise."""

from __future__ import annotations

import os
import sys
from pathlib import Path

from pixseek.errors import ServeError
from pixseek.hosts import check_port, is_loopback
from pixseek.store import DataDir

APP = Path(__file__).resolve().parent / "app.py"


def command(db_dir: str, host: str, port: int, max_upload_mb: int) -> list[str]:
    """The Streamlit command line: headless, no usage statistics, no file watcher, no static files."""
    return [
        sys.executable,
        "-m",
        "streamlit",
        "run",
        str(APP),
        "--server.address",
        host,
        "--server.port",
        str(port),
        "--server.headless",
        "true",
        "--server.fileWatcherType",
        "none",
        "--server.runOnSave",
        "false",
        "--server.enableStaticServing",
        "false",
        "--server.maxUploadSize",
        str(max_upload_mb),
        "--browser.gatherUsageStats",
        "false",
        "--browser.serverAddress",
        host,
        "--global.developmentMode",
        "false",
        "--client.toolbarMode",
        "minimal",
        "--",
        "--host",
        host,
        "--db",
        db_dir,
        "--max-upload-mb",
        str(max_upload_mb),
    ]


def launch(db: str | None, *, host: str = "127.0.0.1", port: int = 8501, max_upload_mb: int = 20) -> None:
    try:
        import streamlit  # noqa: F401
    except ImportError:
        raise ServeError("the web UI needs streamlit", hint="pip install streamlit") from None
    check_port(host, port)
    root = str(DataDir.resolve(db).root)
    if not is_loopback(host.strip("[]")):
        print(f"pixseek: serving on {host}: anyone who can reach this address can search {root}", file=sys.stderr)
    print(f"pixseek: search page for {root} at http://{host}:{port}  (Ctrl-C stops it)", file=sys.stderr)
    argv = command(root, host, port, max_upload_mb)
    sys.stdout.flush()
    sys.stderr.flush()
    os.execv(argv[0], argv)
