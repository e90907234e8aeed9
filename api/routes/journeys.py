"""Journeys: drafts, publishing (with an optional migration of waiting runs), lifecycle, stats."""

from __future__ import annotations

from typing import Any, Literal

from fastapi import APIRouter, Body, Request

from api.deps import AdminKey, DbDep, SessionDep, TemporalDep
from api.schemas import DraftOut, EnrollBody, EnrollResult, PublishBody, PublishOut, VersionOut
from api.services import journeys
from api.services.stats import VersionStats, journey_stats

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
    key: str, request: Request, db: DbDep, body: PublishBody | None = None
) -> PublishOut:
    """Publish the draft as the next immutable version; optionally move waiting runs onto it."""
    with db.transaction() as session:
        version, journey = journeys.publish(session, key)
    if body is None or body.migrate is None:
        return PublishOut(key=key, version=version)
    client = request.app.state.temporal.client
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
    key: str, body: EnrollBody, request: Request, db: DbDep, client: TemporalDep
) -> list[EnrollResult]:
    """Put contacts into the live version of a journey by API."""
    settings = request.app.state.settings
    return await journeys.enroll(
        db, client, key, body.userIds, body.properties, settings.task_queue
    )


@router.get("/{key}/stats")
def stats(key: str, session: SessionDep) -> list[VersionStats]:
    """Per version and step: entered, waiting now, completed, converted; per split variant."""
    journeys.get_row(session, key)
    return journey_stats(session, key)


# Last, so that /publish and /enroll are matched before it.
@router.post("/{key}/{action}")
def change_status(
    key: str, action: Literal["pause", "resume", "archive"], session: SessionDep
) -> DraftOut:
    """pause: no new entries, running contacts go on; resume; archive: no entries, runs drain."""
    return journeys.set_status(session, key, action)
