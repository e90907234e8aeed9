"""Journeys: drafts, publishing (with an optional migration of waiting runs), lifecycle, stats."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from fastapi import APIRouter, Body, Query

from temporal_journeys.api.deps import (
    AdminKey,
    DbDep,
    OptionalClientDep,
    SessionDep,
    SettingsDep,
    TemporalDep,
)
from temporal_journeys.api.schemas import (
    DraftOut,
    EnrollBody,
    EnrollResult,
    PublishBody,
    PublishOut,
    VersionOut,
)
from temporal_journeys.api.services import journeys, limits
from temporal_journeys.api.services.stats import VersionStats, journey_stats

router = APIRouter(prefix="/v1/journeys", tags=["journeys"], dependencies=[AdminKey])


@router.put("/{key}")
def put_draft(key: str, session: SessionDep, document: dict[str, Any] = Body(...)) -> DraftOut:
    """Save a draft; it is validated (422 lists every problem with its JSON path)."""
    return journeys.save_draft(session, key, document)


@router.get("/{key}")
def get_journey(key: str, session: SessionDep) -> DraftOut:
    """The journey's draft, status and latest version."""
    return journeys.draft_out(journeys.get_row(session, key))


@router.post("/{key}/publish")
async def publish(
    key: str,
    db: DbDep,
    client: OptionalClientDep,
    settings: SettingsDep,
    body: PublishBody | None = None,
) -> PublishOut:
    """Publish the draft as the next immutable version; optionally move waiting runs onto it."""
    version, journey = await db.run(journeys.publish, key)
    await journeys.follow_schedule(db, client, key, settings)
    if body is None or body.migrate is None:
        return PublishOut(key=key, version=version)
    if client is None:
        return PublishOut(
            key=key,
            version=version,
            not_migrated=[{"workflow_id": "*", "reason": "Temporal is unreachable"}],
        )
    return await journeys.migrate_runs(db, client, key, version, journey, body.migrate)


@router.get("/{key}/versions")
def list_versions(key: str, session: SessionDep) -> list[VersionOut]:
    """Every published version with its spec."""
    return journeys.versions(session, key)


@router.post("/{key}/enroll")
async def enroll(
    key: str, body: EnrollBody, db: DbDep, client: TemporalDep, settings: SettingsDep
) -> list[EnrollResult]:
    """Put contacts into the live version of a journey by API."""
    limits.check_one(("properties",), body.properties, limits.Limits.of(settings))
    return await journeys.enroll(
        db, client, key, body.userIds, body.properties, settings.task_queue
    )


@router.get("/{key}/stats")
def stats(
    key: str,
    session: SessionDep,
    since: datetime | None = Query(
        None,
        alias="from",
        description="ISO 8601: step events, entries and sends from this moment (inclusive).",
    ),
    until: datetime | None = Query(
        None, alias="to", description="ISO 8601: ... up to this moment (exclusive)."
    ),
    version: int | None = Query(None, ge=1, description="Only this version."),
    control: str | None = Query(
        None, max_length=50, description="The variant the others are compared with."
    ),
) -> list[VersionStats]:
    """Per version and step: entered, waiting now, completed, converted; per send step, what
    its messages did (sent, delivered, unique opens and clicks, bounces, ...); per split
    variant, the same, with each rate tested against the control."""
    journeys.get_row(session, key)
    return journey_stats(session, key, since=since, until=until, version=version, control=control)


# Last, so that /publish and /enroll are matched before it.
@router.post("/{key}/{action}")
async def change_status(
    key: str,
    action: Literal["pause", "resume", "archive"],
    db: DbDep,
    client: OptionalClientDep,
    settings: SettingsDep,
) -> DraftOut:
    """pause: no new entries, running contacts go on; resume; archive: no entries, runs drain.
    A date-triggered journey's schedule is paused, resumed or deleted with it."""
    return await journeys.change_status(db, client, key, action, settings)
