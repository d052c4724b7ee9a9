"""A Hugging Face Hub for tests: a thread serving repos from memory on 127.0.0.1, and a hub cache laid
out by hand. It answers what huggingface_hub asks: ``HEAD``/``GET /{repo}/resolve/{revision}/{file}``
(the file, with ``X-Repo-Commit`` and ``ETag``; 404 with ``X-Error-Code: EntryNotFound`` for a file the
repo lacks), ``GET /api/models/{repo}/revision/{revision}`` (the commit) and
``GET /api/models/{repo}/tree/{commit}`` (the file list) for ``snapshot_download``."""

from __future__ import annotations

import hashlib
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import unquote, urlsplit

COMMIT = "0123456789abcdef0123456789abcdef01234567"


def cache_file(cache: Path, repo: str, filename: str, data: bytes = b"weights", commit: str = COMMIT) -> Path:
    """Put ``filename`` of ``repo`` into a hub cache the way huggingface_hub leaves it (a snapshot folder
    per commit and ``refs/main`` naming the commit; the file itself rather than a link to a blob)."""
    folder = cache / ("models--" + repo.replace("/", "--"))
    path = folder / "snapshots" / commit / filename
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    (folder / "refs").mkdir(exist_ok=True)
    (folder / "refs" / "main").write_text(commit)
    return path


class FakeHub:
    """``with FakeHub({"org/name": {"file": b"bytes"}}) as hub:`` serves at ``hub.url``; ``hub.requests``
    records (method, path) of every request."""

    def __init__(self, repos: dict[str, dict[str, bytes]]):
        self.repos = repos
        self.requests: list[tuple[str, str]] = []
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> FakeHub:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join()

    def answer(self, method: str, raw_path: str) -> tuple[int, dict[str, str], bytes]:
        self.requests.append((method, raw_path))
        path = unquote(urlsplit(raw_path).path)
        for repo, files in self.repos.items():
            api = f"/api/models/{repo}/"
            if path.startswith(api + "revision/"):
                info = {"id": repo, "sha": COMMIT, "siblings": [{"rfilename": f} for f in files]}
                return 200, {"Content-Type": "application/json"}, json.dumps(info).encode()
            if path.startswith(api + "tree/"):
                tree = [
                    {"type": "file", "path": f, "size": len(d), "oid": hashlib.sha1(d).hexdigest()}
                    for f, d in files.items()
                ]
                return 200, {"Content-Type": "application/json"}, json.dumps(tree).encode()
            resolve = f"/{repo}/resolve/"
            if path.startswith(resolve):
                name = path[len(resolve) :].partition("/")[2]
                if name not in files:
                    return 404, {"X-Error-Code": "EntryNotFound", "X-Repo-Commit": COMMIT}, b""
                data = files[name]
                etag = '"%s"' % hashlib.sha256(data).hexdigest()
                return 200, {"X-Repo-Commit": COMMIT, "ETag": etag, "Content-Type": "application/octet-stream"}, data
        return 404, {"X-Error-Code": "RepoNotFound"}, b""

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        hub = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def _reply(self, body: bool) -> None:
                code, headers, data = hub.answer(self.command, self.path)
                self.send_response(code)
                for key, value in headers.items():
                    self.send_header(key, value)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                if body:
                    self.wfile.write(data)

            def do_HEAD(self) -> None:
                self._reply(body=False)

            def do_GET(self) -> None:
                self._reply(body=True)

        return Handler
