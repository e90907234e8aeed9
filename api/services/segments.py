"""Segments: validated documents, their backfill workflow and refresh schedule, members, delete.

Saving a new or changed definition moves its version on and starts the backfill workflow of
that version (``segment-backfill/<key>/v<n>``); a segment that time alone can change gets a
Temporal Schedule (``segment-refresh/<key>``) that recomputes it every ``refresh``. Saving the
same document again starts what is missing (a backfill that never ran, a schedule lost while
Temporal was unreachable), so a PUT can simply be repeated.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from datetime import UTC, datetime
from typing import Any

from sqlalchemy.orm import Session
from temporalio.client import (
    Client,
    Schedule,
    ScheduleActionStartWorkflow,
    ScheduleAlreadyRunningError,
    ScheduleIntervalSpec,
    ScheduleOverlapPolicy,
    SchedulePolicy,
    ScheduleSpec,
    ScheduleState,
    ScheduleUpdate,
)
from temporalio.common import WorkflowIDReusePolicy
from temporalio.exceptions import WorkflowAlreadyStartedError
from temporalio.service import RPCError, RPCStatusCode

from temporal_journeys.api.errors import Conflict, NotFound
from temporal_journeys.api.schemas import (
    SegmentCount,
    SegmentMemberOut,
    SegmentMembersPage,
    SegmentOut,
)
from temporal_journeys.api.temporal import TemporalConnection
from temporal_journeys.journeys.graph import Problem
from temporal_journeys.journeys.segments import Segment, dependencies, parse_segment
from temporal_journeys.journeys.validation import SpecInvalid
from temporal_journeys.store import broadcasts as broadcasts_store
from temporal_journeys.store import segments as segments_store
from temporal_journeys.store.db import Database
from temporal_journeys.store.models import SegmentRow
from temporal_journeys.workflows.segments import (
    BACKFILL_WORKFLOW,
    REFRESH_WORKFLOW,
    BackfillInput,
    RefreshInput,
    backfill_id,
    schedule_id,
)

log = logging.getLogger("journeys.api.segments")
MAX_PAGE = 1000


def _row(session: Session, key: str) -> SegmentRow:
    row = segments_store.get(session, key)
    if row is None:
        raise NotFound(f"segment {key!r}")
    return row


def _out(row: SegmentRow) -> SegmentOut:
    segment = segments_store.segment_of(row)
    return SegmentOut(
        key=row.key,
        name=row.name,
        version=row.version,
        backfilled=row.backfilled_version == row.version,
        backfill_workflow_id=backfill_id(row.key, row.version),
        refreshed_by_schedule=schedule_id(row.key) if dependencies(segment).timed else None,
        definition=row.definition,
    )


def validate(session: Session, key: str, document: Any) -> Segment:
    """The document as a segment, or a 422 naming the path of every problem."""
    if not isinstance(document, dict):
        raise SpecInvalid([Problem("$", "a segment is a mapping with key, name, condition")])
    if document.get("key", key) != key:
        raise SpecInvalid([Problem("$.key", f"must be {key!r}, the key in the URL")])
    others = {k: s for k, s in segments_store.definitions(session).items() if k != key}
    return parse_segment({**document, "key": key}, others=others)


async def put(
    db: Database, client: Client | None, key: str, document: Any, task_queue: str
) -> SegmentOut:
    segment, out = await db.run(_save, key, document)
    if client is None:
        log.warning("Temporal unreachable: segment %s is saved, its backfill starts later", key)
        return out
    await ensure_workflows(client, segment, out.version, out.backfilled, task_queue)
    return out


def _save(session: Session, key: str, document: Any) -> tuple[Segment, SegmentOut]:
    segment = validate(session, key, document)
    row, _changed = segments_store.put(session, segment)
    return segment, _out(row)


def _saved(session: Session) -> list[tuple[Segment, int, bool]]:
    return [
        (segments_store.segment_of(row), row.version, row.backfilled_version == row.version)
        for row in segments_store.rows(session)
    ]


async def reconcile(db: Database, client: Client, task_queue: str) -> int:
    """Every segment's backfill and schedule brought in line with the database: those saved
    while Temporal was unreachable, those ``journeys dev`` loaded. Answers how many segments."""
    found = await db.run(_saved)
    for segment, version, backfilled in found:
        try:
            await ensure_workflows(client, segment, version, backfilled, task_queue)
        except RPCError as exc:
            log.warning("segment %s not reconciled: %s", segment.key, exc)
    return len(found)


async def reconcile_when_connected(
    db: Database, connection: TemporalConnection, task_queue: str
) -> None:
    """Once the API's client is connected: ``reconcile``."""
    while connection.client is None:  # noqa: ASYNC110 (the connection has no event to wait on)
        await asyncio.sleep(1)
    try:
        await reconcile(db, connection.client, task_queue)
    except Exception:  # the database is down: the next start or PUT catches up
        log.exception("segments not reconciled")


async def ensure_workflows(
    client: Client, segment: Segment, version: int, backfilled: bool, task_queue: str
) -> None:
    """Start the version's backfill unless it finished; keep the refresh schedule in line."""
    if not backfilled:
        # Running or finished already: nothing to do.
        with contextlib.suppress(WorkflowAlreadyStartedError):
            await client.start_workflow(
                BACKFILL_WORKFLOW,
                BackfillInput(key=segment.key, version=version),
                id=backfill_id(segment.key, version),
                task_queue=task_queue,
                # A failed or terminated backfill may run again; a finished one may not.
                id_reuse_policy=WorkflowIDReusePolicy.ALLOW_DUPLICATE_FAILED_ONLY,
                static_summary=f"Backfill of segment {segment.key} v{version}",
            )
    try:
        await sync_schedule(client, segment, task_queue)
    except RPCError as exc:
        log.warning("refresh schedule of segment %s not updated: %s", segment.key, exc)


def _schedule(segment: Segment, task_queue: str) -> Schedule:
    return Schedule(
        action=ScheduleActionStartWorkflow(
            REFRESH_WORKFLOW,
            RefreshInput(key=segment.key),
            id=schedule_id(segment.key),
            task_queue=task_queue,
        ),
        spec=ScheduleSpec(intervals=[ScheduleIntervalSpec(every=segment.refresh)]),
        # A recompute is of everyone: one that is still running makes the next one pointless.
        policy=SchedulePolicy(overlap=ScheduleOverlapPolicy.SKIP),
        state=ScheduleState(note=f"recomputes segment {segment.key} (windows move with time)"),
    )


async def sync_schedule(client: Client, segment: Segment | None, task_queue: str) -> bool:
    """A schedule for a segment that time alone changes; none otherwise (or once deleted)."""
    if segment is None or not dependencies(segment).timed:
        key = segment.key if segment is not None else None
        if key is not None:
            await _delete_schedule(client, key)
        return False
    schedule = _schedule(segment, task_queue)
    try:
        await client.create_schedule(schedule_id(segment.key), schedule)
    except ScheduleAlreadyRunningError:
        handle = client.get_schedule_handle(schedule_id(segment.key))
        await handle.update(lambda _: ScheduleUpdate(schedule=schedule))
    return True


async def _delete_schedule(client: Client, key: str) -> None:
    try:
        await client.get_schedule_handle(schedule_id(key)).delete()
    except RPCError as exc:
        if exc.status != RPCStatusCode.NOT_FOUND:
            raise


def get(session: Session, key: str) -> SegmentOut:
    return _out(_row(session, key))


def list_all(session: Session) -> list[SegmentOut]:
    return [_out(row) for row in segments_store.rows(session)]


async def delete(db: Database, client: Client | None, key: str) -> None:
    """Refused (409) while a journey, another segment or an unfinished broadcast names it.
    Its members leave it: each gets a ``segment.exited`` event in the delete's transaction, so
    a contact's history says when it stopped being in the segment."""
    await db.run(_remove, key)
    if client is None:
        log.warning("Temporal unreachable: the refresh schedule of segment %s stays", key)
        return
    try:
        await _delete_schedule(client, key)
    except RPCError as exc:
        log.warning("refresh schedule of segment %s not deleted: %s", key, exc)


def _remove(session: Session, key: str) -> None:
    _row(session, key)
    journeys = segments_store.journeys_naming(session, key)
    segments = segments_store.users(session, key)
    broadcasts = broadcasts_store.live_using_segment(session, key)
    if journeys or segments or broadcasts:
        users = [f"journey {j}" for j in journeys] + [f"segment {s}" for s in segments]
        users += [f"broadcast {b}" for b in broadcasts]
        raise Conflict(f"segment {key!r} is used by " + ", ".join(users))
    segments_store.remove(session, key, datetime.now(UTC))


def members(session: Session, key: str, after: str | None, limit: int) -> SegmentMembersPage:
    _row(session, key)
    limit = max(1, min(limit, MAX_PAGE))
    found = segments_store.members(session, key, after=after, limit=limit)
    return SegmentMembersPage(
        members=[SegmentMemberOut(userId=c, entered_at=at) for c, at in found],
        next=found[-1][0] if len(found) == limit else None,
    )


def count(session: Session, key: str) -> SegmentCount:
    _row(session, key)
    return SegmentCount(key=key, count=segments_store.count(session, key))
