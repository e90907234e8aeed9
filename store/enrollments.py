"""Enrollments (one per entry of a contact into a journey) and their funnel rows."""

from __future__ import annotations

import functools
import zlib
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, Executable, Row, bindparam, func, or_, select, text, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from temporal_journeys.journeys.records import FIRST_SEQ, TraceEntry
from temporal_journeys.journeys.spec import ReEntry, ReEntryAfter
from temporal_journeys.store.models import Enrollment, StepCounter, StepEvent

ENDED = ("completed", "converted", "exited", "failed")


def _refusal(rule: ReEntry, started: datetime | None, now: datetime) -> str | None:
    if started is None or rule == "always":
        return None
    if rule == "never":
        return "re-entry: never (entered before)"
    assert isinstance(rule, ReEntryAfter)
    if started.tzinfo is None:  # SQLite hands back naive UTC
        started = started.replace(tzinfo=now.tzinfo)
    if now - started < rule.after:
        return f"re-entry: not within {rule.model_dump(mode='json')['after']} of the last entry"
    return None


@dataclass(frozen=True)
class Progress:
    """One run's report of its progress, as ``write_progress`` and ``write_progress_all``
    take it."""

    enrollment_id: str
    workflow_id: str
    journey_key: str
    version: int
    contact_id: str
    correlation: str | None
    started_at: datetime
    entries: list[TraceEntry]
    status: str
    step: str | None
    variant: str | None
    reason: str | None


def write_progress(connection: Connection, **report: Any) -> None:
    """A run's progress (the fields of ``Progress``): ``write_progress_all`` of one."""
    write_progress_all(connection, [Progress(**report)])


def write_progress_all(connection: Connection, reports: Sequence[Progress]) -> None:
    """Runs' progress in three Core statements, however many runs report: the enrollment rows
    upserted (written if the run is the first to report, else updated by its key; an insert
    racing the relay's uncommitted row waits for it and then updates it), the funnel rows
    inserted, keyed by (enrollment, trace seq) so a retried write adds nothing, and those
    inserted added to ``step_counters``. One report per enrollment: a statement may not
    update a row twice (``activities/progress.py`` keeps a second one for the next write)."""
    if not reports:
        return
    # In key order, so that two writes of several runs lock their rows in the same order.
    reports = sorted(reports, key=lambda report: report.enrollment_id)
    connection.execute(
        _progress_statement(connection.dialect.name),
        [_enrollment_row(report) for report in reports],
    )
    funnel = [
        _funnel_row(
            report.enrollment_id,
            report.journey_key,
            report.version,
            report.contact_id,
            report.variant,
            entry,
        )
        for report in reports
        for entry in report.entries
    ]
    if funnel:
        # Only the rows this write inserted come back (a retried write's are there already),
        # and only those are counted: the counters stay equal to the rows.
        _count(
            connection, connection.execute(_funnel_statement(connection.dialect.name), funnel).all()
        )


def _enrollment_row(report: Progress) -> dict[str, Any]:
    # When the run entered the step it is at, if this report says so (it does whenever the
    # step changed since the last one: every step begins with an ``entered`` entry).
    entered = [e.at for e in report.entries if e.kind == "entered" and e.step == report.step]
    return {
        "id": report.enrollment_id,
        "workflow_id": report.workflow_id,
        "journey_key": report.journey_key,
        "version": report.version,
        "contact_id": report.contact_id,
        "correlation": report.correlation,
        "status": report.status,
        "current_step": report.step,
        "variant": report.variant,
        "converted": report.status == "converted",
        "exit_reason": report.reason,
        "started_at": report.started_at,
        "ended_at": report.entries[-1].at if report.status in ENDED and report.entries else None,
        "step_since": entered[-1] if entered else None,
    }


def _funnel_row(
    enrollment_id: str,
    journey_key: str,
    version: int,
    contact_id: str,
    variant: str | None,
    entry: TraceEntry,
) -> dict[str, Any]:
    """A ``step_events`` row, keyed by (enrollment, trace seq) as ``_funnel_statement`` takes it."""
    return {
        "id": f"{enrollment_id}:{entry.seq}",
        "enrollment_id": enrollment_id,
        "journey_key": journey_key,
        "version": version,
        "step_id": entry.step,
        "contact_id": contact_id,
        "kind": entry.kind,
        "variant": variant,
        "detail": entry.detail,
        "at": entry.at,
    }


# Counter rows per (journey, version, step, variant, kind) are spread over this many slots by
# enrollment id: runs reporting at the same step at once mostly update different rows.
COUNTER_SLOTS = 16


def slot_of(enrollment_id: str) -> int:
    return zlib.crc32(enrollment_id.encode()) % COUNTER_SLOTS


def _count(connection: Connection, inserted: Sequence[Row[Any]]) -> None:
    """Add the funnel rows just inserted (as ``_funnel_statement`` returns them) to
    ``step_counters``, in the same transaction: one row per counter, in key order, so two
    writes touching the same counters lock them in the same order."""
    counts = Counter(
        (
            row.journey_key,
            row.version,
            row.step_id,
            row.variant or "",
            row.kind,
            slot_of(row.enrollment_id),
        )
        for row in inserted
        if row.step_id is not None
    )
    if not counts:
        return
    connection.execute(
        _counter_statement(connection.dialect.name),
        [
            {
                "journey_key": key,
                "version": version,
                "step_id": step_id,
                "variant": variant,
                "kind": kind,
                "slot": slot,
                "count": count,
            }
            for (key, version, step_id, variant, kind, slot), count in sorted(counts.items())
        ],
    )


@functools.cache
def _progress_statement(dialect_name: str) -> Executable:
    """Built once per dialect: the parameters come with each call, so SQLAlchemy compiles
    each statement once (a multi-row VALUES was compiled anew on every call)."""
    dialect = postgresql if dialect_name == "postgresql" else sqlite
    table = Enrollment.__table__
    insert = dialect.insert(table)
    excluded = insert.excluded
    upsert = insert.on_conflict_do_update(
        index_elements=[table.c.id],
        set_={
            "correlation": func.coalesce(table.c.correlation, excluded.correlation),
            "status": excluded.status,
            "version": excluded.version,
            "current_step": excluded.current_step,
            "variant": excluded.variant,
            "exit_reason": excluded.exit_reason,
            "converted": or_(table.c.converted, excluded.converted),
            "ended_at": func.coalesce(table.c.ended_at, excluded.ended_at),
            "step_since": func.coalesce(excluded.step_since, table.c.step_since),
        },
    )
    return upsert


@functools.cache
def _counter_statement(dialect_name: str) -> Executable:
    dialect = postgresql if dialect_name == "postgresql" else sqlite
    table = StepCounter.__table__
    insert = dialect.insert(table)
    return insert.on_conflict_do_update(
        index_elements=list(table.primary_key.columns),
        set_={"count": table.c["count"] + insert.excluded["count"]},
    )


def re_entry_refusal(
    connection: Connection, workflow_id: str, enrollment_id: str, rule: ReEntry, now: datetime
) -> str | None:
    """Why the rule forbids this entry, or None when it may begin."""
    if rule == "always":
        return None
    table = Enrollment.__table__
    started = connection.scalar(
        select(table.c.started_at)
        .where(table.c.workflow_id == workflow_id, table.c.id != enrollment_id)
        .where(table.c.status != "skipped")
        .order_by(table.c.started_at.desc())
        .limit(1)
    )
    return _refusal(rule, started, now)


def journey_re_entry_refusals(
    connection: Connection,
    journey_key: str,
    contact_ids: Sequence[str],
    rule: ReEntry,
    now: datetime,
) -> dict[str, str]:
    """Why each of these contacts may not enter the journey again (those that may are not in
    the answer), over all its runs of it whatever their workflow id: for entries keyed per
    fire (scheduled entry), whose own workflow id is always new. A run still going refuses
    too, as it would absorb any other trigger. One statement: each contact's latest entry."""
    ids = sorted(set(contact_ids))
    if not ids:
        return {}
    table = Enrollment.__table__
    latest = (
        select(table.c.contact_id, table.c.status, table.c.started_at)
        .where(table.c.journey_key == journey_key, table.c.contact_id.in_(ids))
        .where(table.c.status != "skipped")
        .order_by(table.c.contact_id, table.c.started_at.desc())
    )
    if connection.dialect.name == "postgresql":
        rows = connection.execute(latest.ext(postgresql.distinct_on(table.c.contact_id)))
    else:  # no DISTINCT ON: the first row of each contact, in the same order
        rows = connection.execute(latest)
    refusals: dict[str, str] = {}
    seen: set[str] = set()
    for row in rows:
        if row.contact_id in seen:
            continue
        seen.add(row.contact_id)
        if row.status == "running":
            refusals[row.contact_id] = "still in the journey from an earlier entry"
        elif (reason := _refusal(rule, row.started_at, now)) is not None:
            refusals[row.contact_id] = reason
    return refusals


# Built once, as every start runs them: building a statement costs more than running it.
_LOCK = select(func.pg_try_advisory_xact_lock(func.hashtext(bindparam("workflow_id"))))
_ENTRIES = Enrollment.__table__.c
_LATEST_ENTRY = (
    select(_ENTRIES.status, _ENTRIES.started_at)
    .where(_ENTRIES.workflow_id == bindparam("workflow_id"), _ENTRIES.status != "skipped")
    .order_by(_ENTRIES.started_at.desc())
    .limit(1)
)


def admissible(connection: Connection, workflow_id: str, rule: ReEntry, now: datetime) -> bool:
    """Whether a starter may admit a new entry under ``workflow_id`` itself (Postgres only).

    It takes the workflow id's transaction-scoped advisory lock without waiting, so starters
    that admit go one at a time and each sees the rows of those before it. A lock held
    elsewhere, an entry still running (the start reaches that run) or a rule that refuses
    leave the decision to the run, which checks as it always did."""
    if connection.dialect.name != "postgresql":
        return False
    if not connection.scalar(_LOCK, {"workflow_id": workflow_id}):
        return False
    latest = connection.execute(_LATEST_ENTRY, {"workflow_id": workflow_id}).first()
    if latest is None:
        return True
    return latest.status != "running" and _refusal(rule, latest.started_at, now) is None


# A batch's locks in one statement: ``pg_try_advisory_xact_lock`` never waits, so taking them
# in any order cannot deadlock with another batch or a single starter.
_LOCK_ALL = text(
    "SELECT w AS workflow_id, pg_try_advisory_xact_lock(hashtext(w)) AS locked "
    "FROM unnest(CAST(:workflow_ids AS text[])) AS w"
)
# Text: SQLAlchemy's DISTINCT ON spelling changed between 2.0 and 2.1.
_LATEST_ENTRIES = text(
    "SELECT DISTINCT ON (workflow_id) workflow_id, status, started_at FROM enrollments "
    "WHERE workflow_id = ANY(CAST(:workflow_ids AS text[])) AND status <> 'skipped' "
    "ORDER BY workflow_id, started_at DESC"
)


_WAIT_FOR_LOCKS = text(
    "SELECT pg_advisory_xact_lock(hashtext(w)) "
    "FROM unnest(CAST(:workflow_ids AS text[])) WITH ORDINALITY AS u(w, n) ORDER BY n"
)


def lock_all(connection: Connection, workflow_ids: Sequence[str]) -> None:
    """Wait for, then hold until the transaction ends, the advisory locks of several runs'
    workflow ids (the lock ``admissible`` tries, which then succeeds at once), in one
    statement: two fires of one window or schedule enter each run once. Taken in id
    order, so two batches sharing ids queue instead of deadlocking. SQLite: nothing, its
    writers take the database's one write lock when they begin."""
    if connection.dialect.name == "postgresql" and workflow_ids:
        connection.execute(_WAIT_FOR_LOCKS, {"workflow_ids": sorted(set(workflow_ids))})


# How far a run's own start time may trail its starter's clock: a refusal that still holds this
# much later is one the run's own check will make too.
RUN_START_SLACK = timedelta(minutes=1)


@dataclass(frozen=True)
class Admissions:
    admitted: set[str]
    """Workflow ids the starter may admit itself."""
    refused: dict[str, str]
    """Workflow ids whose new run the re-entry rule will refuse, with the run's reason."""


def admissible_all(
    connection: Connection, workflow_ids: Sequence[str], rule: ReEntry, now: datetime
) -> Admissions:
    """``admissible`` for a batch of starts in two statements (the locks, then every latest
    entry; a separate statement, so it sees the rows of starters whose locks it just got).
    Nothing on SQLite. Also the ids, locked here, whose new run will refuse the entry (its
    rule is checked against the same latest entry, a moment later): the starter records
    those as skipped, so the row is right whether the run's refusal or the row lands first."""
    ids = list(dict.fromkeys(workflow_ids))
    if connection.dialect.name != "postgresql" or not ids:
        return Admissions(set(), {})
    locked = [
        row.workflow_id
        for row in connection.execute(_LOCK_ALL, {"workflow_ids": ids})
        if row.locked
    ]
    if not locked:
        return Admissions(set(), {})
    latest = {
        row.workflow_id: row
        for row in connection.execute(_LATEST_ENTRIES, {"workflow_ids": locked})
    }
    admissions = Admissions(set(), {})
    for workflow_id in locked:
        entry = latest.get(workflow_id)
        if entry is None:
            admissions.admitted.add(workflow_id)
        elif entry.status != "running":
            if _refusal(rule, entry.started_at, now) is None:
                admissions.admitted.add(workflow_id)
            elif (reason := _refusal(rule, entry.started_at, now + RUN_START_SLACK)) is not None:
                admissions.refused[workflow_id] = reason
    return admissions


def record_starts(connection: Connection, starts: Sequence[dict[str, Any]]) -> None:
    """``record_start`` for a batch, in one multi-row INSERT. Each start: ``enrollment_id``,
    ``workflow_id``, ``journey_key``, ``version``, ``contact_id``, ``correlation``, ``step``,
    ``at``, ``skipped`` (the refusal, for a run that will refuse its entry) and ``entered``
    (the starter admitted it: its first step entered, recorded here, ``record_entered``); a
    row already there (the run's, an earlier start's) stays as it is."""
    rows = {
        start["enrollment_id"]: {
            "id": start["enrollment_id"],
            "workflow_id": start["workflow_id"],
            "journey_key": start["journey_key"],
            "version": start["version"],
            "contact_id": start["contact_id"],
            "correlation": start.get("correlation"),
            "status": "skipped" if start.get("skipped") else "running",
            "current_step": start["step"],
            "converted": False,
            "exit_reason": start.get("skipped"),
            "started_at": start["at"],
            "ended_at": start["at"] if start.get("skipped") else None,
            "step_since": start["at"],
        }
        for start in starts
    }
    if rows:
        connection.execute(_starts_statement(connection.dialect.name), list(rows.values()))
    record_entered(connection, [start for start in starts if start.get("entered")])


def record_entered(connection: Connection, starts: Sequence[dict[str, Any]]) -> None:
    """The first funnel row of each admitted run (its first step entered, at the start's
    ``at``), which the run then keeps in its trace without recording it (``Admission``): one
    multi-row INSERT, keyed as the run's own would be, and the counters of those it added."""
    if not starts:
        return
    inserted = connection.execute(
        _funnel_statement(connection.dialect.name),
        [
            _funnel_row(
                start["enrollment_id"],
                start["journey_key"],
                start["version"],
                start["contact_id"],
                None,
                TraceEntry(seq=FIRST_SEQ, at=start["at"], step=start["step"], kind="entered"),
            )
            for start in starts
        ],
    ).all()
    _count(connection, inserted)


@functools.cache
def _funnel_statement(dialect_name: str) -> Executable:
    """Funnel rows inserted unless there (a retried write's), answering those it added with
    what their counters are keyed by."""
    steps = StepEvent.__table__
    insert = (postgresql if dialect_name == "postgresql" else sqlite).insert(steps)
    return insert.on_conflict_do_nothing().returning(
        steps.c.enrollment_id,
        steps.c.journey_key,
        steps.c.version,
        steps.c.variant,
        steps.c.step_id,
        steps.c.kind,
    )


@functools.cache
def _starts_statement(dialect_name: str) -> Executable:
    # RETURNING makes SQLAlchemy send the rows as one multi-row INSERT ("insertmanyvalues")
    # instead of the driver's statement per row.
    table = Enrollment.__table__
    return _start_statement(dialect_name).returning(table.c.id)  # type: ignore[attr-defined]


def record_start(
    connection: Connection,
    *,
    enrollment_id: str,
    workflow_id: str,
    journey_key: str,
    version: int,
    contact_id: str,
    correlation: str | None = None,
    step: str,
    at: datetime,
    entered: bool = False,
) -> None:
    """The row of a run just started, so the contact's next events find the run before it
    reports in; a row the run (or an earlier start) wrote already stays as it is. ``entered``:
    its first step entered too (``record_entered``), for a run the starter admitted."""
    row = {
        "id": enrollment_id,
        "workflow_id": workflow_id,
        "journey_key": journey_key,
        "version": version,
        "contact_id": contact_id,
        "correlation": correlation,
        "status": "running",
        "current_step": step,
        "converted": False,
        "started_at": at,
        "step_since": at,
    }
    connection.execute(_start_statement(connection.dialect.name), row)
    if entered:
        started = {**row, "enrollment_id": enrollment_id, "step": step, "at": at}
        record_entered(connection, [started])


@functools.cache
def _start_statement(dialect_name: str) -> Executable:
    dialect = postgresql if dialect_name == "postgresql" else sqlite
    return dialect.insert(Enrollment.__table__).on_conflict_do_nothing()


def mark_skipped(connection: Connection, enrollment_id: str, reason: str, at: datetime) -> None:
    """An entry that its journey's re-entry rule refused, if the starter recorded it already."""
    table = Enrollment.__table__
    connection.execute(
        update(table)
        .where(table.c.id == enrollment_id)
        .values(status="skipped", exit_reason=reason, ended_at=at)
    )


def running_for(session: Session, contact_ids: list[str]) -> list[Enrollment]:
    if not contact_ids:
        return []
    return list(
        session.scalars(
            select(Enrollment).where(
                Enrollment.contact_id.in_(contact_ids), Enrollment.status == "running"
            )
        )
    )


def get(session: Session, enrollment_id: str) -> Enrollment | None:
    return session.get(Enrollment, enrollment_id)


def of_contact(session: Session, contact_id: str) -> list[Enrollment]:
    """Every entry of the contact into a journey, oldest first."""
    return list(
        session.scalars(
            select(Enrollment)
            .where(Enrollment.contact_id == contact_id)
            .order_by(Enrollment.started_at)
        )
    )


def running_below(
    session: Session, journey_key: str, version: int, only_version: int | None = None
) -> list[str]:
    """Workflow ids of the journey's runs still running on a version older than ``version``
    (on ``only_version`` alone when given)."""
    query = select(Enrollment.workflow_id).where(
        Enrollment.journey_key == journey_key,
        Enrollment.status == "running",
        Enrollment.version < version,
    )
    if only_version is not None:
        query = query.where(Enrollment.version == only_version)
    return list(session.scalars(query))


def runs(session: Session) -> dict[str, str]:
    """Every enrollment id (the run that began it) with its workflow id."""
    rows = session.execute(select(Enrollment.id, Enrollment.workflow_id))
    return {enrollment_id: workflow_id for enrollment_id, workflow_id in rows}


def unlink_contact(session: Session, contact_id: str, pseudonym: str, at: datetime) -> None:
    """For an erased contact: its running entries end as exited, and its enrollment and funnel
    rows keep counting under ``pseudonym`` instead of its id."""
    session.execute(
        update(StepEvent).where(StepEvent.contact_id == contact_id).values(contact_id=pseudonym)
    )
    session.execute(
        update(Enrollment)
        .where(Enrollment.contact_id == contact_id, Enrollment.status == "running")
        .values(status="exited", exit_reason="contact erased", ended_at=at)
    )
    session.execute(
        update(Enrollment).where(Enrollment.contact_id == contact_id).values(contact_id=pseudonym)
    )
