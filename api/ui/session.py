"""The operator page's session: a cookie that names the admin key it was opened with by the
key's row id (never the key), with an expiry, signed with HMAC-SHA256 under the secret key.

A signature alone would outlive a revoked key, so every page also checks that the key is
still a live admin key (``store.keys.is_live_admin``): revoking the key ends its sessions."""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
from dataclasses import dataclass

COOKIE = "journeys_ui"
LIFETIME_SECONDS = 12 * 3600  # a working day; then the form asks for the key again
# Domain separation: the same secret key signs unsubscribe links, which must never be
# accepted as a session (nor a session as a link).
_PURPOSE = b"journeys-ui-session:v1:"


@dataclass(frozen=True)
class PageSession:
    key_id: int
    expires: int


def _signature(secret: str, payload: str) -> str:
    mac = hmac.new(secret.encode(), _PURPOSE + payload.encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(mac).decode().rstrip("=")


def issue(secret: str, key_id: int, now: float | None = None) -> str:
    """The cookie's value for a sign-in with the admin key whose row id is ``key_id``."""
    expires = int((time.time() if now is None else now) + LIFETIME_SECONDS)
    payload = f"{key_id}.{expires}"
    return f"{payload}.{_signature(secret, payload)}"


def read(secret: str, value: str | None, now: float | None = None) -> PageSession | None:
    """The session the cookie holds, or None when it is missing, forged or expired."""
    if not value:
        return None
    payload, _, signature = value.rpartition(".")
    if not payload or not hmac.compare_digest(signature, _signature(secret, payload)):
        return None
    key_id, _, expires = payload.partition(".")
    if not (key_id.isdigit() and expires.isdigit()):
        return None
    if int(expires) < (time.time() if now is None else now):
        return None
    return PageSession(int(key_id), int(expires))
