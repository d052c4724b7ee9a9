"""Where a pixseek server may listen, and which Host names it answers to (the page and the service).

DNS rebinding: a web page elsewhere can point its own host name at 127.0.0.1 and make the browser
fetch a local server "from itself"; the browser then sends that foreign name as ``Host``. A server
bound to loopback or to one address answers only to loopback names and the address it was bound to;
bound to all interfaces (``0.0.0.0``, ``::``), as its user asked for, it answers to any name.
"""

from __future__ import annotations

import errno
import ipaddress
import socket

from .errors import ServeError

LOOPBACK_NAMES = {"localhost", "localhost.localdomain", "ip6-localhost"}
ALL_INTERFACES = {"0.0.0.0", "::", ""}


def host_name(host_header: str) -> str:
    """``[::1]:8501`` -> ``::1``; ``Example.com:80`` -> ``example.com``."""
    h = host_header.strip().lower()
    if h.startswith("["):
        return h[1:].split("]", 1)[0]
    return h.rsplit(":", 1)[0] if h.count(":") == 1 else h


def is_loopback(name: str) -> bool:
    """A loopback name or address (localhost, 127.0.0.0/8, ::1)."""
    name = name.strip().lower().strip("[]")
    if name in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


def allowed(host_header: str | None, bound: str) -> bool:
    """Whether a request with this ``Host`` header may be answered by a server bound to ``bound``."""
    if host_header is None:
        return True  # not HTTP/1.1 from a browser (a test harness): nothing to rebind
    bound = bound.strip().lower().strip("[]")
    if bound in ALL_INTERFACES:
        return True
    name = host_name(host_header)
    return is_loopback(name) or name == bound


def url(host: str, port: int) -> str:
    """``http://HOST:PORT`` with an IPv6 address in brackets."""
    h = host.strip("[]")
    return f"http://[{h}]:{port}" if ":" in h else f"http://{h}:{port}"


def check_port(host: str, port: int) -> None:
    """Fail with one line, before a server starts, when the address cannot be bound."""
    try:
        infos = socket.getaddrinfo(host.strip("[]"), port, type=socket.SOCK_STREAM)
    except socket.gaierror as e:
        raise ServeError(f"cannot serve on {host}: {e.strerror}") from None
    family, _, _, _, addr = infos[0]
    with socket.socket(family, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(addr)
        except OSError as e:
            if e.errno == errno.EADDRINUSE:
                raise ServeError(f"port {port} on {host} is in use", hint="pick another with --port") from None
            raise ServeError(f"cannot serve on {host}:{port}: {e.strerror or e}") from None
