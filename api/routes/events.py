"""Segment-spec ingestion: identify, track, batch. Stored durably before the 202."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.exceptions import RequestValidationError
from pydantic import ValidationError
from starlette.concurrency import run_in_threadpool

from temporal_journeys.api import metrics
from temporal_journeys.api.deps import (
    DbDep,
    RelayDep,
    SettingsDep,
    TrackKey,
    presented_key,
    scope_in,
)
from temporal_journeys.api.schemas import Accepted, BatchBody, IdentifyCall, TrackCall
from temporal_journeys.api.services import limits
from temporal_journeys.api.services.ingest import ingest
from temporal_journeys.api.services.relay import OutboxRelay
from temporal_journeys.journeys.settings import Settings
from temporal_journeys.store.db import Database

router = APIRouter(prefix="/v1", tags=["events"])


def _store(
    db: Database,
    settings: Settings,
    calls: list[Any],
    within: limits.Location = (),
) -> Accepted:
    limits.check(calls, limits.Limits.of(settings), within)
    with db.transaction() as session:
        return ingest(session, calls, within)


def _stored(result: Accepted, relay: OutboxRelay) -> Accepted:
    # After the commit: a relay woken before it would find nothing and sleep until its next poll.
    metrics.ACCEPTED.inc(result.accepted)
    metrics.DUPLICATES.inc(result.duplicates)
    if result.accepted:
        relay.wake()
    return result


# The routes are coroutines that hand their database work to the thread pool once: a plain
# function costs a second hand-off, FastAPI checking the returned model in the pool too.
@router.post("/identify", status_code=202, dependencies=[TrackKey])
async def identify(
    call: IdentifyCall, db: DbDep, relay: RelayDep, settings: SettingsDep
) -> Accepted:
    """Create or update a contact from Segment-style traits (email, phone, timezone, ...)."""
    return _stored(await run_in_threadpool(_store, db, settings, [call]), relay)


@router.post("/track", status_code=202, dependencies=[TrackKey])
async def track(call: TrackCall, db: DbDep, relay: RelayDep, settings: SettingsDep) -> Accepted:
    """Record an event; journeys it triggers start, runs waiting for it are told."""
    return _stored(await run_in_threadpool(_store, db, settings, [call]), relay)


def _parse_batch(raw: bytes) -> BatchBody:
    """The body parsed and validated in one pass by pydantic's JSON parser (no ``json.loads``
    into Python objects first), its errors located in the body as FastAPI's would be: 400 for
    malformed JSON, 422 naming the field."""
    if not raw:
        raise RequestValidationError(
            [{"type": "missing", "loc": ("body",), "msg": "Field required", "input": None}]
        )
    try:
        return BatchBody.model_validate_json(raw)
    except ValidationError as exc:
        problems = exc.errors(include_url=False, include_input=False)
        raise RequestValidationError(
            [{**problem, "loc": ("body", *problem["loc"])} for problem in problems]
        ) from None


def _store_batch(db: Database, settings: Settings, key: str, raw: bytes) -> Accepted:
    # The key is checked in the transaction that stores the calls (one connection, one
    # BEGIN ... COMMIT per request), and before the body is read: 401 comes before 422.
    with db.transaction() as session:
        scope_in(session, key)
        calls = list(_parse_batch(raw).batch)
        limits.check(calls, limits.Limits.of(settings), ("batch",))
        return ingest(session, calls, ("batch",))


def _schema_in_place(pointer: str) -> dict[str, Any]:
    # The body's schema inline, its nested models under its own ``$defs``: the route reads the
    # body itself, so FastAPI does not put BatchBody among the components.
    return BatchBody.model_json_schema(ref_template=pointer + "/$defs/{model}")


_BATCH_SCHEMA = "#/paths/~1v1~1batch/post/requestBody/content/application~1json/schema"


@router.post(
    "/batch",
    status_code=202,
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": _schema_in_place(_BATCH_SCHEMA)}},
        }
    },
)
async def batch(request: Request, db: DbDep, relay: RelayDep, settings: SettingsDep) -> Accepted:
    """Up to 2,500 calls at once, as Segment and RudderStack libraries send them."""
    key = presented_key(request)
    raw = await request.body()
    return _stored(await run_in_threadpool(_store_batch, db, settings, key, raw), relay)
