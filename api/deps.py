"""Dependencies as Annotated aliases: the database session, the caller's scope, Temporal."""

from __future__ import annotations

import base64
import binascii
from collections.abc import Iterator
from typing import Annotated

from fastapi import Depends, HTTPException, Request
from sqlalchemy.orm import Session
from temporalio.client import Client

from store import keys
from store.db import Database


def get_db(request: Request) -> Database:
    return request.app.state.db


def get_session(db: Annotated[Database, Depends(get_db)]) -> Iterator[Session]:
    with db.transaction() as session:
        yield session


DbDep = Annotated[Database, Depends(get_db)]
# Function scope: the transaction commits before the response is sent, so a client that acts
# on a 200 finds what it wrote (the default runs the commit after the response).
SessionDep = Annotated[Session, Depends(get_session, scope="function")]


def _presented_key(request: Request) -> str | None:
    header = request.headers.get("authorization", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() == "bearer" and value:
        return value.strip()
    if scheme.lower() == "basic" and value:
        # Segment and RudderStack libraries send the write key as the Basic user name.
        try:
            user, _, _ = base64.b64decode(value).decode().partition(":")
        except (binascii.Error, UnicodeDecodeError):
            return None
        return user or None
    return None


def _scope(request: Request, db: Annotated[Database, Depends(get_db)]) -> str:
    key = _presented_key(request)
    if key is None:
        raise HTTPException(
            401,
            "an API key is required (Authorization: Bearer <key>)",
            headers={"WWW-Authenticate": "Bearer"},
        )
    with db.transaction() as session:
        scope = keys.scope_of(session, key)
    if scope is None:
        raise HTTPException(
            401, "unknown or revoked API key", headers={"WWW-Authenticate": "Bearer"}
        )
    return scope


def require_track(scope: Annotated[str, Depends(_scope)]) -> str:
    return scope  # admin keys may send events too


def require_admin(scope: Annotated[str, Depends(_scope)]) -> str:
    if scope != "admin":
        raise HTTPException(403, "this key may only send events; an admin key is needed")
    return scope


TrackKey = Depends(require_track)
AdminKey = Depends(require_admin)


def get_temporal(request: Request) -> Client:
    client = request.app.state.temporal.client
    if client is None:
        raise HTTPException(503, "Temporal is unreachable; try again shortly")
    return client


TemporalDep = Annotated[Client, Depends(get_temporal)]
