"""API keys: created once and shown once; only their SHA-256 digest is stored."""

from __future__ import annotations

import hashlib
import hmac
import secrets

from sqlalchemy import select
from sqlalchemy.orm import Session

from store.models import ApiKey

SCOPES = ("track", "admin")


def digest(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def create(session: Session, name: str, scope: str) -> str:
    if scope not in SCOPES:
        raise ValueError(f"scope must be one of {', '.join(SCOPES)}")
    key = f"jk_{scope}_{secrets.token_urlsafe(32)}"
    session.add(ApiKey(name=name, digest=digest(key), scope=scope))
    session.flush()
    return key


def scope_of(session: Session, key: str) -> str | None:
    """The key's scope, or None for an unknown or revoked key."""
    wanted = digest(key)
    row = session.scalars(select(ApiKey).where(ApiKey.digest == wanted)).first()
    # The lookup is by digest, so its timing says nothing about the key; compare anyway.
    if row is None or row.revoked_at is not None or not hmac.compare_digest(row.digest, wanted):
        return None
    return row.scope
