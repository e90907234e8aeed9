"""Journey lifecycle: validated drafts, immutable numbered versions, pause, archive, migration."""

from __future__ import annotations

import asyncio
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session
from temporalio.client import Client, WorkflowUpdateFailedError
from temporalio.service import RPCError

from api.errors import NotFound
from api.schemas import DraftOut, EnrollResult, MigrationBody, PublishOut, VersionOut
from journeys.admission import start_entry
from journeys.graph import Problem
from journeys.records import JourneyEvent
from journeys.spec import Journey
from journeys.starter import CannotEnroll, correlation_of
from journeys.validation import SpecInvalid, parse_journey
from store import contacts as contacts_store
from store import journeys as journeys_store
from store import templates as templates_store
from store.db import Database
from store.models import Enrollment, JourneyRow, JourneyVersion, utcnow
from workflows.types import MigrateRun

STATUSES = {"pause": "paused", "resume": "active", "archive": "archived"}
ENROLL_CHUNK = 50


def get_row(session: Session, key: str) -> JourneyRow:
    row = session.get(JourneyRow, key)
    if row is None:
        raise NotFound(f"journey {key!r}")
    return row


def _validate(session: Session, document: dict[str, Any]) -> Journey:
    known_journeys = set(session.scalars(select(JourneyRow.key))) | {document.get("key")}
    return parse_journey(document, templates=templates_store.keys(session), journeys=known_journeys)


def draft_out(row: JourneyRow) -> DraftOut:
    return DraftOut(
        key=row.key,
        name=row.name,
        status=row.status,
        latest_version=row.latest_version,
        draft=row.draft,
    )


def save_draft(session: Session, key: str, document: dict[str, Any]) -> DraftOut:
    if document.get("key", key) != key:
        raise SpecInvalid([Problem("$.key", f"must be {key!r}, the key in the URL")])
    journey = _validate(session, {**document, "key": key})
    row = session.get(JourneyRow, key) or JourneyRow(key=key, status="draft")
    row.name = journey.name
    row.draft = journey.model_dump(mode="json")
    session.add(row)
    session.flush()
    return draft_out(row)


def publish(session: Session, key: str) -> tuple[int, Journey]:
    row = get_row(session, key)
    if row.draft is None:
        raise NotFound(f"a draft of journey {key!r}")
    journey = _validate(session, row.draft)
    status = row.status
    version = journeys_store.publish(session, journey)
    if status in ("paused", "archived"):
        row.status = status  # publishing does not undo a pause or an archive
    return version, journey


def set_status(session: Session, key: str, action: str) -> DraftOut:
    row = get_row(session, key)
    if row.latest_version is None:
        raise SpecInvalid([Problem("$", f"journey {key!r} has no published version yet")])
    row.status = STATUSES[action]
    return draft_out(row)


def versions(session: Session, key: str) -> list[VersionOut]:
    get_row(session, key)
    rows = session.scalars(
        select(JourneyVersion)
        .where(JourneyVersion.journey_key == key)
        .order_by(JourneyVersion.version)
    )
    return [VersionOut(version=r.version, published_at=r.published_at, spec=r.spec) for r in rows]


async def migrate_runs(
    db: Database, client: Client, key: str, version: int, journey: Journey, mapping: MigrationBody
) -> PublishOut:
    """Ask each waiting run of the older version(s) to move; each run validates the mapping."""
    with db.transaction() as session:
        query = select(Enrollment.workflow_id).where(
            Enrollment.journey_key == key,
            Enrollment.status == "running",
            Enrollment.version < version,
        )
        if mapping.from_version is not None:
            query = query.where(Enrollment.version == mapping.from_version)
        workflow_ids = list(session.scalars(query))
    request = MigrateRun(journey=journey, version=version, steps=mapping.steps)
    outcome = PublishOut(key=key, version=version)

    async def move(workflow_id: str) -> None:
        try:
            await client.get_workflow_handle(workflow_id).execute_update("migrate", request)
            outcome.migrated += 1
        except (WorkflowUpdateFailedError, RPCError) as exc:
            reason = str(exc.cause) if isinstance(exc, WorkflowUpdateFailedError) else str(exc)
            outcome.not_migrated.append({"workflow_id": workflow_id, "reason": reason})

    for start in range(0, len(workflow_ids), 50):
        await asyncio.gather(*(move(w) for w in workflow_ids[start : start + 50]))
    return outcome


async def enroll(
    db: Database,
    client: Client,
    key: str,
    user_ids: list[str],
    properties: dict[str, Any],
    task_queue: str,
) -> list[EnrollResult]:
    with db.transaction() as session:
        live = journeys_store.live_version(session, key)
        if live is None:
            get_row(session, key)
            raise SpecInvalid([Problem("$", f"journey {key!r} is not published and active")])
    version, journey = live
    try:
        # The same properties for every contact: a missing correlation refuses them all.
        correlation_of(journey, JourneyEvent(id="check", name="api.enroll", properties=properties))
    except CannotEnroll as exc:
        return [EnrollResult(userId=user_id, error=str(exc)) for user_id in user_ids]
    results = []
    # A transaction per chunk of contacts: a commit per chunk rather than per contact, and no
    # lock (the starters' advisory locks, SQLite's write lock) held for a whole large request.
    for first in range(0, len(user_ids), ENROLL_CHUNK):
        async with db.held_connection() as connection:
            for user_id in user_ids[first : first + ENROLL_CHUNK]:
                handle = await start_entry(
                    client,
                    connection,
                    journey=journey,
                    version=version,
                    contact=contacts_store.load_snapshot(connection, user_id),
                    task_queue=task_queue,
                    event=JourneyEvent(
                        id=f"enroll:{key}:{user_id}:{utcnow().isoformat()}",
                        name="api.enroll",
                        properties=properties,
                    ),
                )
                results.append(EnrollResult(userId=user_id, workflow_id=handle.id))
    return results
