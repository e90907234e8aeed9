"""Journey lifecycle: validated drafts, immutable numbered versions, pause, archive, migration."""

from __future__ import annotations

import asyncio
from typing import Any

from sqlalchemy.orm import Session
from temporalio.client import Client, WorkflowUpdateFailedError
from temporalio.service import RPCError

from temporal_journeys.api.errors import NotFound
from temporal_journeys.api.schemas import (
    DraftOut,
    EnrollResult,
    MigrationBody,
    PublishOut,
    VersionOut,
)
from temporal_journeys.api.services import schedules
from temporal_journeys.api.services.admission import Entry, in_held_transaction, start_entries
from temporal_journeys.journeys import topics
from temporal_journeys.journeys.graph import Problem
from temporal_journeys.journeys.records import JourneyEvent
from temporal_journeys.journeys.segments import unknown_segment_problems
from temporal_journeys.journeys.settings import Settings
from temporal_journeys.journeys.spec import Journey
from temporal_journeys.journeys.validation import SpecInvalid, parse_journey
from temporal_journeys.store import contacts as contacts_store
from temporal_journeys.store import enrollments as enrollments_store
from temporal_journeys.store import journeys as journeys_store
from temporal_journeys.store import segments as segments_store
from temporal_journeys.store import templates as templates_store
from temporal_journeys.store import topics as topics_store
from temporal_journeys.store.db import Database
from temporal_journeys.store.models import JourneyRow, utcnow
from temporal_journeys.workflows.contract import MIGRATE_UPDATE
from temporal_journeys.workflows.starter import CannotEnroll, correlation_of
from temporal_journeys.workflows.types import MigrateRun

STATUSES = {"pause": "paused", "resume": "active", "archive": "archived"}
ENROLL_CHUNK = 50


def get_row(session: Session, key: str) -> JourneyRow:
    row = journeys_store.get(session, key)
    if row is None:
        raise NotFound(f"journey {key!r}")
    return row


def _validate(session: Session, document: dict[str, Any]) -> Journey:
    known_journeys = set(journeys_store.keys(session)) | {document.get("key")}
    journey = parse_journey(
        document, templates=templates_store.keys(session), journeys=known_journeys
    )
    # Sends' topics must be defined (``$.steps[i].send.topic``), as their templates must.
    problems = topics.unknown_topic_problems(journey, topics_store.keys(session))
    # So must the segments it enters on or branches on (``$.trigger.segment``).
    problems += unknown_segment_problems(journey, segments_store.definitions(session))
    if problems:
        raise SpecInvalid(problems)
    return journey


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
    return draft_out(journeys_store.save_draft(session, journey))


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


async def follow_schedule(
    db: Database, client: Client | None, key: str, settings: Settings
) -> None:
    """After a publish, pause, resume or archive (committed): a journey entered by a date
    attribute has its Temporal Schedule created, paused, resumed or deleted to match."""
    await schedules.sync_journey(db, client, key, settings)


async def change_status(
    db: Database, client: Client | None, key: str, action: str, settings: Settings
) -> DraftOut:
    out = await db.run(set_status, key, action)
    await follow_schedule(db, client, key, settings)
    return out


def versions(session: Session, key: str) -> list[VersionOut]:
    get_row(session, key)
    return [
        VersionOut(version=r.version, published_at=r.published_at, spec=r.spec)
        for r in journeys_store.versions(session, key)
    ]


async def migrate_runs(
    db: Database, client: Client, key: str, version: int, journey: Journey, mapping: MigrationBody
) -> PublishOut:
    """Ask each waiting run of the older version(s) to move; each run validates the mapping."""
    workflow_ids = await db.run(enrollments_store.running_below, key, version, mapping.from_version)
    request = MigrateRun(journey=journey, version=version, steps=mapping.steps)
    outcome = PublishOut(key=key, version=version)

    async def move(workflow_id: str) -> None:
        try:
            await client.get_workflow_handle(workflow_id).execute_update(MIGRATE_UPDATE, request)
            outcome.migrated += 1
        except (WorkflowUpdateFailedError, RPCError) as exc:
            reason = str(exc.cause) if isinstance(exc, WorkflowUpdateFailedError) else str(exc)
            outcome.not_migrated.append({"workflow_id": workflow_id, "reason": reason})

    for start in range(0, len(workflow_ids), 50):
        await asyncio.gather(*(move(w) for w in workflow_ids[start : start + 50]))
    return outcome


def _live(session: Session, key: str) -> tuple[int, Journey]:
    live = journeys_store.live_version(session, key)
    if live is None:
        get_row(session, key)
        raise SpecInvalid([Problem("$", f"journey {key!r} is not published and active")])
    return live


async def enroll(
    db: Database,
    client: Client,
    key: str,
    user_ids: list[str],
    properties: dict[str, Any],
    task_queue: str,
) -> list[EnrollResult]:
    version, journey = await db.run(_live, key)
    try:
        # The same properties for every contact: a missing correlation refuses them all.
        correlation_of(journey, JourneyEvent(id="check", name="api.enroll", properties=properties))
    except CannotEnroll as exc:
        return [EnrollResult(userId=user_id, error=str(exc)) for user_id in user_ids]
    results = []
    # A transaction per chunk of contacts, admitted as a batch (``start_entries``): the
    # contacts loaded, the re-entry rule checked and the enrollments written in a few
    # statements per chunk, the runs started concurrently; and no lock (the starters' advisory
    # locks, SQLite's write lock) held for a whole large request.
    for first in range(0, len(user_ids), ENROLL_CHUNK):
        chunk = user_ids[first : first + ENROLL_CHUNK]
        async with db.held_connection() as connection:
            contacts = await in_held_transaction(connection, contacts_store.load_snapshots, chunk)
            outcomes = await start_entries(
                client,
                connection,
                journey=journey,
                version=version,
                entries=[
                    Entry(
                        contacts[user_id],
                        JourneyEvent(
                            id=f"enroll:{key}:{user_id}:{utcnow().isoformat()}",
                            name="api.enroll",
                            properties=properties,
                        ),
                    )
                    for user_id in chunk
                ],
                task_queue=task_queue,
            )
        # After the commit: the entries that did start stay recorded; the request fails as it
        # did when its starts ran one by one.
        for user_id, outcome in zip(chunk, outcomes, strict=True):
            if isinstance(outcome, Exception):
                raise outcome
            results.append(EnrollResult(userId=user_id, workflow_id=outcome.id))
    return results
