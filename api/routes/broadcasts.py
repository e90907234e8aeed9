"""Broadcasts: a one-off message or a journey entry for every member of a segment."""

from __future__ import annotations

from fastapi import APIRouter, Query

from temporal_journeys.api.deps import AdminKey, DbDep, SessionDep, SettingsDep, TemporalDep
from temporal_journeys.api.schemas import BroadcastIn, BroadcastOut, BroadcastRecipientsPage
from temporal_journeys.api.services import broadcasts
from temporal_journeys.workflows.broadcast import CANCEL, PAUSE, RESUME

router = APIRouter(prefix="/v1/broadcasts", tags=["broadcasts"], dependencies=[AdminKey])


@router.post("", status_code=201)
async def create_broadcast(
    body: BroadcastIn, db: DbDep, client: TemporalDep, settings: SettingsDep
) -> BroadcastOut:
    """Start (or schedule, with ``send_at``) a broadcast; 422 names every field in error."""
    return await broadcasts.create(db, client, body, settings.task_queue)


@router.get("")
def list_broadcasts(
    session: SessionDep,
    status: str | None = Query(default=None),
    limit: int = Query(default=50, ge=1, le=500),
) -> list[BroadcastOut]:
    """Newest first."""
    return broadcasts.list_all(session, status, limit)


@router.get("/{broadcast_id}")
def get_broadcast(broadcast_id: str, session: SessionDep) -> BroadcastOut:
    """Its status and its recipients counted by outcome, with the reasons for skips."""
    return broadcasts.get(session, broadcast_id)


@router.get("/{broadcast_id}/recipients")
def recipients(
    broadcast_id: str,
    session: SessionDep,
    after: str | None = Query(default=None, description="The `next` of the previous page."),
    limit: int = Query(default=100, ge=1, le=broadcasts.MAX_PAGE),
) -> BroadcastRecipientsPage:
    return broadcasts.recipients(session, broadcast_id, after, limit)


@router.post("/{broadcast_id}/pause")
async def pause(broadcast_id: str, db: DbDep, client: TemporalDep) -> BroadcastOut:
    """Stops after the batch under way; 409 when it is over."""
    return await broadcasts.control(db, client, broadcast_id, PAUSE)


@router.post("/{broadcast_id}/resume")
async def resume(broadcast_id: str, db: DbDep, client: TemporalDep) -> BroadcastOut:
    return await broadcasts.control(db, client, broadcast_id, RESUME)


@router.post("/{broadcast_id}/cancel")
async def cancel(broadcast_id: str, db: DbDep, client: TemporalDep) -> BroadcastOut:
    """Answered once the run has stopped: nobody is sent to after the answer."""
    return await broadcasts.control(db, client, broadcast_id, CANCEL)
