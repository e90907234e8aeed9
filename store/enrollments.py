"""Enrollments (one per entry of a contact into a journey) and their funnel rows."""

from __future__ import annotations

import functools
from datetime import datetime

from sqlalchemy import Connection, Executable, bindparam, func, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from journeys.records import TraceEntry
from journeys.spec import ReEntry, ReEntryAfter
from store.models import Enrollment, StepEvent

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


def write_progress(
    connection: Connection,
    *,
    enrollment_id: str,
    workflow_id: str,
    journey_key: str,
    version: int,
    contact_id: str,
    correlation: str | None,
    started_at: datetime,
    entries: list[TraceEntry],
    status: str,
    step: str | None,
    variant: str | None,
    reason: str | None,
) -> None:
    """A run's progress in two Core statements: the enrollment row upserted
    (written if the run is the first to report, else updated by its key; an insert racing the
    relay's uncommitted row waits for it and then updates it) and the funnel rows inserted,
    keyed by (enrollment, trace seq) so a retried write adds nothing."""
    upsert, steps = _progress_statements(connection.dialect.name)
    connection.execute(
        upsert,
        {
            "id": enrollment_id,
            "workflow_id": workflow_id,
            "journey_key": journey_key,
            "version": version,
            "contact_id": contact_id,
            "correlation": correlation,
            "status": status,
            "current_step": step,
            "variant": variant,
            "converted": status == "converted",
            "exit_reason": reason,
            "started_at": started_at,
            "ended_at": entries[-1].at if status in ENDED and entries else None,
        },
    )
    if entries:
        connection.execute(
            steps,
            [
                {
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
                for entry in entries
            ],
        )


@functools.cache
def _progress_statements(dialect_name: str) -> tuple[Executable, Executable]:
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
        },
    )
    return upsert, dialect.insert(StepEvent.__table__).on_conflict_do_nothing()


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
) -> None:
    """The row of a run just started, so the contact's next events find the run before it
    reports in; a row the run (or an earlier start) wrote already stays as it is."""
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
    }
    connection.execute(_start_statement(connection.dialect.name), row)


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
