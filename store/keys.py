"""API keys: created once and shown once; only their SHA-256 digest is stored."""

from __future__ import annotations

import hashlib
import hmac
import secrets

from sqlalchemy import bindparam, select, update
from sqlalchemy.orm import Session

from temporal_journeys.store.models import ApiKey, utcnow

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


# Built once: every ingest request asks, and building the statement cost more than running it.
_SCOPE_OF = select(ApiKey.digest, ApiKey.revoked_at, ApiKey.scope).where(
    ApiKey.digest == bindparam("wanted")
)


def scope_of(session: Session, key: str) -> str | None:
    """The key's scope, or None for an unknown or revoked key."""
    wanted = digest(key)
    # On the session's connection, not an ORM entity: three columns need no identity map.
    row = session.connection().execute(_SCOPE_OF, {"wanted": wanted}).first()
    # The lookup is by digest, so its timing says nothing about the key; compare anyway.
    if row is None or row.revoked_at is not None or not hmac.compare_digest(row.digest, wanted):
        return None
    return row.scope


def revoke(session: Session, *, key: str | None = None, name: str | None = None) -> list[str]:
    """Revoke the key itself, or every key of that name; the names of the keys revoked (none
    when no such key is live). The row stays, so the key is refused rather than unknown."""
    if (key is None) == (name is None):
        raise ValueError("give either the key or its name")
    live = ApiKey.revoked_at.is_(None)
    which = ApiKey.digest == digest(key) if key is not None else ApiKey.name == name
    revoked = session.scalars(
        update(ApiKey).where(which, live).values(revoked_at=utcnow()).returning(ApiKey.name)
    )
    return list(revoked)


def live_admin_id(session: Session, key: str) -> int | None:
    """The id of this key if it is a live admin key (the operator page's sign-in), else None."""
    wanted = digest(key)
    row = session.scalars(select(ApiKey).where(ApiKey.digest == wanted)).first()
    if row is None or row.revoked_at is not None or not hmac.compare_digest(row.digest, wanted):
        return None
    return row.id if row.scope == "admin" else None


def is_live_admin(session: Session, key_id: int) -> bool:
    """Whether the key with this id is still an unrevoked admin key: a page session ends with
    the key it was opened with."""
    row = session.get(ApiKey, key_id)
    return row is not None and row.revoked_at is None and row.scope == "admin"
