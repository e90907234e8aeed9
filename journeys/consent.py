"""Signed unsubscribe tokens: ``<contact>.<channel>.<signature>``, URL-safe, no database row.

The token names what it unsubscribes, so a link keeps working after the message row is gone,
and the signature means nobody can unsubscribe someone else by guessing a contact id."""

from __future__ import annotations

import base64
import hashlib
import hmac

TOKEN_VERSION = "u1"


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _signature(secret: str, payload: str) -> str:
    digest = hmac.new(secret.encode(), f"{TOKEN_VERSION}:{payload}".encode(), hashlib.sha256)
    return _b64(digest.digest()[:18])


def make_token(secret: str, contact_id: str, channel: str) -> str:
    payload = f"{_b64(contact_id.encode())}.{channel}"
    return f"{payload}.{_signature(secret, payload)}"


def read_token(secret: str, token: str) -> tuple[str, str] | None:
    """(contact id, channel) of a genuine token, else None."""
    parts = token.split(".")
    if len(parts) != 3:
        return None
    encoded, channel, signature = parts
    payload = f"{encoded}.{channel}"
    if not hmac.compare_digest(signature, _signature(secret, payload)):
        return None
    try:
        return _unb64(encoded).decode(), channel
    except (ValueError, UnicodeDecodeError):
        return None
