"""Dependencies as Annotated aliases, the only way routes reach the app's state: the database
and its session, settings, the outbox relay, the caller's scope, Temporal."""

from __future__ import annotations

import base64
from collections.abc import Iterator, Mapping
from typing import Annotated

from fastapi import Depends, HTTPException, Request
from sqlalchemy.orm import Session
from temporalio.client import Client

from temporal_journeys.activities.providers.base import Provider
from temporal_journeys.api.services.relay import OutboxRelay
from temporal_journeys.api.temporal import TemporalConnection
from temporal_journeys.journeys.settings import Settings
from temporal_journeys.store import keys
from temporal_journeys.store.db import Database
from temporal_journeys.workflows.codec import EncryptionCodec


# The trivial dependencies are coroutines: FastAPI runs a plain function in its thread pool, a
# hand-off per dependency per request that showed in the ingest profile (docs/benchmarks.md).
async def get_db(request: Request) -> Database:
    return request.app.state.db


async def get_app_settings(request: Request) -> Settings:
    return request.app.state.settings


async def get_relay(request: Request) -> OutboxRelay:
    return request.app.state.relay


SettingsDep = Annotated[Settings, Depends(get_app_settings)]


async def get_providers(request: Request) -> Mapping[str, Provider]:
    return request.app.state.providers


# The providers a template's test send goes out through, by channel.
ProvidersDep = Annotated[Mapping[str, Provider], Depends(get_providers)]


async def get_codec(request: Request) -> EncryptionCodec | None:
    return request.app.state.codec


# The codec server's codec: None when no encryption keys are set.
OptionalCodecDep = Annotated[EncryptionCodec | None, Depends(get_codec)]
# Routes that accept events wake the relay so it routes them at once instead of on its next poll.
RelayDep = Annotated[OutboxRelay, Depends(get_relay)]


def get_session(db: Annotated[Database, Depends(get_db)]) -> Iterator[Session]:
    with db.transaction() as session:
        yield session


DbDep = Annotated[Database, Depends(get_db)]
# Function scope: the transaction commits before the response is sent, so a client that acts
# on a 200 finds what it wrote (the default runs the commit after the response).
SessionDep = Annotated[Session, Depends(get_session, scope="function")]


def _unauthorized(message: str) -> HTTPException:
    return HTTPException(401, message, headers={"WWW-Authenticate": "Bearer"})


def _presented_key(request: Request) -> str | None:
    header = request.headers.get("authorization", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() == "bearer" and value:
        return value.strip()
    if scheme.lower() == "basic" and value:
        # Segment and RudderStack libraries send the write key as the Basic user name.
        try:
            # Headers arrive decoded as Latin-1, so any byte can be here: b64decode raises
            # ValueError on non-ASCII text, binascii.Error (a ValueError) on bad padding.
            user, _, _ = base64.b64decode(value).decode().partition(":")
        except (ValueError, UnicodeDecodeError) as exc:
            raise _unauthorized(
                "the Authorization header's Basic credentials are not base64 of UTF-8 text"
            ) from exc
        return user or None
    return None


def presented_key(request: Request) -> str:
    """The key in the Authorization header; 401 when there is none."""
    key = _presented_key(request)
    if key is None:
        raise _unauthorized("an API key is required (Authorization: Bearer <key>)")
    return key


def scope_in(session: Session, key: str) -> str:
    """The key's scope, looked up in the caller's transaction; 401 for an unknown or revoked
    key. `/v1/batch` checks its key in the transaction that stores its calls: one connection
    and one BEGIN ... COMMIT per request instead of two."""
    scope = keys.scope_of(session, key)
    if scope is None:
        raise _unauthorized("unknown or revoked API key in the Authorization header")
    return scope


def _scope(request: Request, db: Annotated[Database, Depends(get_db)]) -> str:
    key = presented_key(request)
    with db.transaction() as session:
        return scope_in(session, key)


async def require_track(scope: Annotated[str, Depends(_scope)]) -> str:
    return scope  # admin keys may send events too


async def require_admin(scope: Annotated[str, Depends(_scope)]) -> str:
    if scope != "admin":
        raise HTTPException(403, "this key may only send events; an admin key is needed")
    return scope


TrackKey = Depends(require_track)
AdminKey = Depends(require_admin)


async def get_temporal_connection(request: Request) -> TemporalConnection:
    return request.app.state.temporal


# The connection itself, for readiness checks: it answers whether Temporal is reachable.
TemporalConnectionDep = Annotated[TemporalConnection, Depends(get_temporal_connection)]


async def get_optional_client(connection: TemporalConnectionDep) -> Client | None:
    return connection.client


# For routes that still do part of their work while Temporal is unreachable.
OptionalClientDep = Annotated[Client | None, Depends(get_optional_client)]


async def get_temporal(client: OptionalClientDep) -> Client:
    if client is None:
        raise HTTPException(503, "Temporal is unreachable; try again shortly")
    return client


TemporalDep = Annotated[Client, Depends(get_temporal)]
