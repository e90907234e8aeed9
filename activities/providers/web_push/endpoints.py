"""Which push service endpoints journeys posts to.

Anybody with the tracking key (it ships in web pages) can register a subscription, and the
worker then POSTs to its endpoint: left open, that is a way to make the worker call any URL
(SSRF). So an endpoint must be on a push service named in ``webpush_endpoint_hosts``, over
https; plain http only for a loopback host listed there explicitly (a test's fake service)."""

from __future__ import annotations

import fnmatch
from urllib.parse import urlsplit

LOOPBACK = frozenset({"127.0.0.1", "localhost", "::1"})


def host_patterns(setting: str) -> tuple[str, ...]:
    return tuple(p.strip().lower() for p in setting.split(",") if p.strip())


def endpoint_problem(endpoint: str, patterns: tuple[str, ...]) -> str | None:
    """Why journeys will not post to ``endpoint``; None when it may."""
    try:
        parts = urlsplit(endpoint)
        host = (parts.hostname or "").lower()
    except ValueError:
        return "is not a URL"
    if parts.scheme not in ("https", "http") or not host:
        return "is not an https URL"
    if not any(fnmatch.fnmatchcase(host, pattern) for pattern in patterns):
        return f"names {host!r}, not a push service in JOURNEYS_WEBPUSH_ENDPOINT_HOSTS"
    if parts.scheme == "http" and host not in LOOPBACK:
        return "is not an https URL"
    return None
