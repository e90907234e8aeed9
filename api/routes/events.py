"""Segment-spec ingestion: identify, track, batch. Stored durably before the 202."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request

from api import metrics
from api.deps import DbDep, TrackKey
from api.schemas import Accepted, BatchBody, IdentifyCall, TrackCall
from api.services.ingest import ingest

router = APIRouter(prefix="/v1", tags=["events"], dependencies=[TrackKey])


def _store(request: Request, db: DbDep, calls: list[Any]) -> Accepted:
    with db.transaction() as session:
        result = ingest(session, calls)
    metrics.ACCEPTED.inc(result.accepted)
    metrics.DUPLICATES.inc(result.duplicates)
    if result.accepted:
        request.app.state.relay.wake()
    return result


@router.post("/identify", status_code=202)
def identify(call: IdentifyCall, request: Request, db: DbDep) -> Accepted:
    """Create or update a contact from Segment-style traits (email, phone, timezone, ...)."""
    return _store(request, db, [call])


@router.post("/track", status_code=202)
def track(call: TrackCall, request: Request, db: DbDep) -> Accepted:
    """Record an event; journeys it triggers start, runs waiting for it are told."""
    return _store(request, db, [call])


@router.post("/batch", status_code=202)
def batch(body: BatchBody, request: Request, db: DbDep) -> Accepted:
    """Up to 2,500 calls at once, as Segment and RudderStack libraries send them."""
    return _store(request, db, list(body.batch))
