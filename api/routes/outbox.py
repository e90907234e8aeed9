"""Parked events: those the relay could not deliver, for an operator to retry or drop."""

from __future__ import annotations

from fastapi import APIRouter, Query, Response

from temporal_journeys.api.deps import AdminKey, DbDep, RelayDep
from temporal_journeys.api.schemas import ParkedOut
from temporal_journeys.api.services import parked

router = APIRouter(prefix="/v1/outbox/parked", tags=["outbox"], dependencies=[AdminKey])


@router.get("")
def list_parked(
    db: DbDep,
    after: int = Query(default=0, ge=0, description="The last id of the previous page."),
    limit: int = Query(default=100, ge=1, le=1000),
) -> list[ParkedOut]:
    """Parked events, oldest first, with the error that parked each; page on with ``after``."""
    with db.transaction() as session:
        return parked.listing(session, after=after, limit=limit)


@router.post("/{entry_id}/retry")
def retry_parked(entry_id: int, db: DbDep, relay: RelayDep) -> dict[str, int]:
    """Queue a parked event again; the relay tries it next, before its contact's later events."""
    with db.transaction() as session:
        parked.retry(session, entry_id)
    relay.wake()
    return {"queued": entry_id}


@router.delete("/{entry_id}", status_code=204)
def drop_parked(entry_id: int, db: DbDep) -> Response:
    """Give a parked event up: it stays stored, and is never routed."""
    with db.transaction() as session:
        parked.drop(session, entry_id)
    return Response(status_code=204)
