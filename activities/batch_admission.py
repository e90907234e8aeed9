"""Entries admitted as a batch by their starter (the enroll API, date-based entry): the
batch form of ``api/services/admission.py``'s ``start_entry``, with the database's work shared
by the batch and the runs started concurrently."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, TypeVar

from sqlalchemy import Connection
from temporalio.client import Client, WorkflowHandle
from temporalio.service import RPCError, RPCStatusCode

from temporal_journeys.journeys.records import ContactSnapshot, JourneyEvent
from temporal_journeys.journeys.spec import Journey
from temporal_journeys.store import date_entry as date_store
from temporal_journeys.store import enrollments as enrollments_store
from temporal_journeys.store import journeys as journeys_store
from temporal_journeys.store.db import Database
from temporal_journeys.workflows.starter import (
    CannotEnroll,
    correlation_of,
    entry_id_of,
    run_names,
    start_run,
)
from temporal_journeys.workflows.types import Admission

T = TypeVar("T")


def live_journey(db: Database, key: str) -> tuple[int, Journey] | None:
    """The journey's live version and spec, for a starter about to admit entries to it."""
    with db.transaction() as session:
        return journeys_store.live_version(session, key)


def runs_begun(db: Database, workflow_ids: list[str]) -> set[str]:
    """Those of ``workflow_ids`` an entry was recorded under (an earlier attempt's, say)."""
    with db.connection() as connection:
        return date_store.existing_runs(connection, workflow_ids)


async def in_held_transaction(
    connection: Connection, statements: Callable[..., T], *args: Any
) -> T:
    """Run ``statements(connection, *args)`` for a starter holding ``connection``'s transaction.
    Postgres: in a thread, as a statement may wait for another transaction that this event
    loop must stay free to commit. SQLite: here, as the transaction holds the database's write
    lock from its BEGIN and so never waits; a thread could, and a process whose thread pool
    is busy with writers queued behind that very lock (a worker beside the API) would stall."""
    if connection.dialect.name == "sqlite":
        return statements(connection, *args)
    return await asyncio.to_thread(statements, connection, *args)


UNREACHABLE = (RPCStatusCode.UNAVAILABLE, RPCStatusCode.DEADLINE_EXCEEDED)
"""What a call answers when the server is down or too slow: every other call would wait too."""

STARTS_IN_FLIGHT = 32
"""Starts a batch has in flight at once: enough to keep the server busy, few enough that one
batch does not queue hundreds of calls in front of everyone else's."""


@dataclass(frozen=True)
class Entry:
    contact: ContactSnapshot
    event: JourneyEvent | None = None


async def start_entries(
    client: Client,
    connection: Connection,
    *,
    journey: Journey,
    version: int,
    entries: Sequence[Entry],
    task_queue: str,
    in_flight: int = STARTS_IN_FLIGHT,
    **options: Any,
) -> list[WorkflowHandle | Exception]:
    """``start_entry`` for a batch, with the database's work shared: the re-entry rule checked
    for all of them in two statements (``admissible_all``), the runs started concurrently
    (``in_flight`` at a time) and every enrollment recorded in one multi-row INSERT. The
    answer is per entry, in order: its handle, or what its start raised (its row then not
    written; the others' are).

    The same contact (the same workflow id) twice in a batch: the first start admits the
    entry, the later ones reach its run after it began, as ``start_entry`` one after the
    other would. The caller commits ``connection`` after this returns; its statements run
    through ``in_held_transaction``."""
    now = datetime.now(UTC)
    names = run_names(client)
    outcomes: list[WorkflowHandle | Exception | None] = [None] * len(entries)
    correlations: list[str | None] = [None] * len(entries)
    workflow_ids: list[str | None] = [None] * len(entries)
    for n, entry in enumerate(entries):
        try:
            correlations[n] = correlation_of(journey, entry.event)
        except CannotEnroll as exc:
            outcomes[n] = exc
            continue
        workflow_ids[n] = names.workflow_id(journey.key, entry.contact.id, correlations[n])
    first: dict[str, int] = {}
    later: list[int] = []
    for n, workflow_id in enumerate(workflow_ids):
        if workflow_id is None:
            continue
        if workflow_id in first:
            later.append(n)
        else:
            first[workflow_id] = n
    admissions = await in_held_transaction(
        connection, enrollments_store.admissible_all, list(first), journey.re_entry, now
    )
    gate = asyncio.Semaphore(in_flight)
    unreachable: RPCError | None = None

    async def start(n: int, admit: bool) -> None:
        nonlocal unreachable
        entry = entries[n]
        async with gate:
            if unreachable is not None:
                # The server did not answer one start: the rest would each wait as long.
                outcomes[n] = unreachable
                return
            try:
                outcomes[n] = await start_run(
                    client,
                    journey=journey,
                    version=version,
                    contact_id=entry.contact.id,
                    task_queue=task_queue,
                    event=entry.event,
                    admission=Admission(contact=entry.contact, entered_at=now) if admit else None,
                    **options,
                )
            except Exception as exc:  # noqa: BLE001 - answered for this entry alone
                outcomes[n] = exc
                if isinstance(exc, RPCError) and exc.status in UNREACHABLE:
                    unreachable = exc

    await asyncio.gather(
        *(start(n, workflow_id in admissions.admitted) for workflow_id, n in first.items())
    )
    for n in later:
        await start(n, False)
    starts = []
    for n, outcome in enumerate(outcomes):
        if isinstance(outcome, WorkflowHandle):
            starts.append(
                {
                    "enrollment_id": entry_id_of(outcome),
                    "workflow_id": outcome.id,
                    "journey_key": journey.key,
                    "version": version,
                    "contact_id": entries[n].contact.id,
                    "correlation": correlations[n],
                    "step": journey.steps[0].id,
                    "at": now,
                    # A new run the rule will refuse (not a later duplicate: it reached the
                    # first one's run): its row says so from the start.
                    "skipped": admissions.refused.get(outcome.id)
                    if first.get(outcome.id) == n
                    else None,
                    # An admitted run's first entry, which it does not record itself.
                    "entered": first.get(outcome.id) == n and outcome.id in admissions.admitted,
                }
            )
    await in_held_transaction(connection, enrollments_store.record_starts, starts)
    answered = [outcome for outcome in outcomes if outcome is not None]
    assert len(answered) == len(entries)
    return answered


def tally(
    entries: Sequence[Entry], outcomes: Sequence[WorkflowHandle | Exception]
) -> tuple[int, list[str]]:
    """What ``start_entries`` answered, counted for a starter's result: how many entries began
    (or reached) their run, and the refused ones as "contact: why". Any other error is raised:
    the activity's retry then tries the batch again, and finds the runs already begun."""
    entered, refused = 0, []
    for entry, outcome in zip(entries, outcomes, strict=True):
        if isinstance(outcome, CannotEnroll):
            refused.append(f"{entry.contact.id}: {outcome}")
        elif isinstance(outcome, Exception):
            raise outcome
        else:
            entered += 1
    return entered, refused
