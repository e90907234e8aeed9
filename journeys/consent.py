"""Signed unsubscribe tokens: ``<contact>.<channel>.<signature>``, URL-safe, no database row;
``<contact>.<channel>.<topic>.<signature>`` for a message sent on a subscription topic.

The token names what it unsubscribes, so a link keeps working after the message row is gone,
and the signature means nobody can unsubscribe someone else by guessing a contact id."""

from __future__ import annotations

import base64
import hashlib
import hmac
from dataclasses import dataclass

TOKEN_VERSION = "u1"


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _signature(secret: str, payload: str) -> str:
    digest = hmac.new(secret.encode(), f"{TOKEN_VERSION}:{payload}".encode(), hashlib.sha256)
    return _b64(digest.digest()[:18])


@dataclass(frozen=True)
class Link:
    """What a genuine token names: who, which channel, and the message's topic if it had one
    (one-click then leaves that topic only)."""

    contact_id: str
    channel: str
    topic: str | None = None


def make_token(secret: str, contact_id: str, channel: str, topic: str | None = None) -> str:
    # Encoded like the contact id: a topic key may hold a dot (spec.Key allows one).
    payload = f"{_b64(contact_id.encode())}.{channel}"
    if topic is not None:
        payload += f".{_b64(topic.encode())}"
    return f"{payload}.{_signature(secret, payload)}"


def unsubscribe_url(
    public_url: str, secret: str, contact_id: str, channel: str, topic: str | None = None
) -> str:
    """The link of a message: its page is the preference centre, a POST to it is one-click."""
    token = make_token(secret, contact_id, channel, topic)
    return f"{public_url.rstrip('/')}/v1/unsubscribe/{token}"


def read_token(secret: str, token: str) -> tuple[str, str] | None:
    """(contact id, channel) of a genuine token, else None (the topic, if any, is dropped)."""
    link = read_link(secret, token)
    return None if link is None else (link.contact_id, link.channel)


def read_link(secret: str, token: str) -> Link | None:
    """What a genuine token (with or without a topic) names, else None."""
    parts = token.split(".")
    if len(parts) not in (3, 4):
        return None
    *named, signature = parts
    payload = ".".join(named)
    # As bytes: compare_digest refuses str with non-ASCII characters (a TypeError), and a
    # token is whatever text a URL path held.
    expected = _signature(secret, payload).encode()
    if not hmac.compare_digest(signature.encode("utf-8", "surrogatepass"), expected):
        return None
    try:
        decoded = [_unb64(part).decode() for part in (named[0], *named[2:])]
    except (ValueError, UnicodeDecodeError):
        return None
    return Link(decoded[0], named[1], decoded[1] if len(decoded) > 1 else None)
