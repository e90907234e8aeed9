"""Segments: documents kept up to date by ingest and schedules; members and counts."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Body, Query, Response

from temporal_journeys.api.deps import AdminKey, DbDep, OptionalClientDep, SessionDep, SettingsDep
from temporal_journeys.api.schemas import SegmentCount, SegmentMembersPage, SegmentOut
from temporal_journeys.api.services import segments

router = APIRouter(prefix="/v1/segments", tags=["segments"], dependencies=[AdminKey])


@router.get("")
def list_segments(session: SessionDep) -> list[SegmentOut]:
    """Every segment with its version and whether its backfill finished."""
    return segments.list_all(session)


@router.put("/{key}")
async def put_segment(
    key: str,
    db: DbDep,
    client: OptionalClientDep,
    settings: SettingsDep,
    document: Any = Body(...),
) -> SegmentOut:
    """Save a segment (422 names the path of every problem); a new or changed definition is
    backfilled by a workflow, and time-based conditions get a refresh schedule."""
    return await segments.put(db, client, key, document, settings.task_queue)


@router.get("/{key}")
def get_segment(key: str, session: SessionDep) -> SegmentOut:
    return segments.get(session, key)


@router.delete("/{key}", status_code=204)
async def delete_segment(key: str, db: DbDep, client: OptionalClientDep) -> Response:
    """Refused with 409, naming them, while a journey or another segment uses it."""
    await segments.delete(db, client, key)
    return Response(status_code=204)


@router.get("/{key}/members")
def members(
    key: str,
    session: SessionDep,
    after: str | None = Query(default=None, description="The `next` of the previous page."),
    limit: int = Query(default=100, ge=1, le=segments.MAX_PAGE),
) -> SegmentMembersPage:
    """Members by userId, a page at a time."""
    return segments.members(session, key, after, limit)


@router.get("/{key}/count")
def count(key: str, session: SessionDep) -> SegmentCount:
    return segments.count(session, key)
