"""Read-only queries of the operator page (``/ui``): live counts per journey, how long the
contacts waiting at each step have waited, who waits longer than expected, and a contact's
timeline. Each answers in one statement grouped in the database, so a page stays fast with
100,000 enrollments (bench/ui.py times it)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from temporal_journeys.store.models import Enrollment, Event, JourneyRow, StepEvent


def journeys_with_counts(session: Session) -> list[tuple[JourneyRow, dict[str, int]]]:
    """Every journey with its enrollments counted by status (all versions)."""
    rows = list(session.scalars(select(JourneyRow).order_by(JourneyRow.key)))
    counts: dict[str, dict[str, int]] = {row.key: {} for row in rows}
    grouped = session.execute(
        select(Enrollment.journey_key, Enrollment.status, func.count()).group_by(
            Enrollment.journey_key, Enrollment.status
        )
    )
    for key, status, count in grouped:
        if key in counts:
            counts[key][status] = count
    return [(row, counts[row.key]) for row in rows]


def _since() -> Any:
    # A row the run has not reported on yet has no step_since: it waits since its start.
    return func.coalesce(Enrollment.step_since, Enrollment.started_at)


def _running(journey_key: str, version: int) -> tuple[Any, ...]:
    # The partial index ix_enrollments_running_step answers these.
    return (
        Enrollment.journey_key == journey_key,
        Enrollment.version == version,
        Enrollment.status == "running",
    )


def oldest_waits(session: Session, journey_key: str, version: int) -> dict[str, datetime]:
    """Step id -> since when its longest-waiting running contact waits there."""
    rows = session.execute(
        select(Enrollment.current_step, func.min(_since()))
        .where(*_running(journey_key, version), Enrollment.current_step.is_not(None))
        .group_by(Enrollment.current_step)
    )
    return {step: since for step, since in rows}


def waiting_longer(
    session: Session, journey_key: str, version: int, step_id: str, before: datetime, limit: int
) -> tuple[int, list[tuple[str, str, datetime]]]:
    """How many running contacts of the version have waited at ``step_id`` since before
    ``before``, and the longest-waiting of them: (contact id, workflow id, since)."""
    late = (*_running(journey_key, version), Enrollment.current_step == step_id, _since() < before)
    total = session.scalar(select(func.count()).where(*late)) or 0
    rows = session.execute(
        select(Enrollment.contact_id, Enrollment.workflow_id, _since())
        .where(*late)
        .order_by(_since())
        .limit(limit)
    )
    return total, [(contact, workflow, since) for contact, workflow, since in rows]


def events_of(session: Session, contact_id: str, limit: int) -> list[Event]:
    """The contact's stored events, newest first."""
    return list(
        session.scalars(
            select(Event)
            .where(Event.contact_id == contact_id)
            .order_by(Event.timestamp.desc())
            .limit(limit)
        )
    )


def steps_of(session: Session, enrollment_ids: list[str], limit: int) -> list[StepEvent]:
    """The funnel rows of these enrollments (one contact's), newest first."""
    if not enrollment_ids:
        return []
    return list(
        session.scalars(
            select(StepEvent)
            .where(StepEvent.enrollment_id.in_(enrollment_ids))
            .order_by(StepEvent.at.desc())
            .limit(limit)
        )
    )
