"""Which Host names the page answers to: a defence against DNS rebinding.

A web page elsewhere can point its own host name at 127.0.0.1 and make the browser fetch the search
page "from itself"; the browser then sends that foreign name as ``Host``. The page answers only to
loopback names and the address it was bound to (any name when bound to all interfaces, as the user
asked for, with the warning ``pixseek ui`` prints).
"""

from __future__ import annotations

import ipaddress

LOOPBACK_NAMES = {"localhost", "localhost.localdomain", "ip6-localhost"}
ALL_INTERFACES = {"0.0.0.0", "::", ""}


def _name(host_header: str) -> str:
    """``[::1]:8501`` -> ``::1``; ``Example.com:80`` -> ``example.com``."""
    h = host_header.strip().lower()
    if h.startswith("["):
        return h[1:].split("]", 1)[0]
    return h.rsplit(":", 1)[0] if h.count(":") == 1 else h


def is_loopback(name: str) -> bool:
    """A loopback name or address (localhost, 127.0.0.0/8, ::1)."""
    if name in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


def allowed(host_header: str | None, bound: str) -> bool:
    """Whether a request with this ``Host`` header may see the page of a server bound to ``bound``."""
    if host_header is None:
        return True  # not HTTP/1.1 from a browser (a test harness): nothing to rebind
    bound = bound.strip().lower().strip("[]")
    if bound in ALL_INTERFACES:
        return True
    name = _name(host_header)
    return is_loopback(name) or name == bound
