"""Enrollments (one per entry of a contact into a journey) and their funnel rows."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from journeys.records import TraceEntry
from journeys.spec import ReEntry, ReEntryAfter
from store.models import Enrollment, StepEvent
from store.upserts import insert_ignoring_duplicates

ENDED = ("completed", "converted", "exited", "failed")


def re_entry_refusal(
    session: Session, workflow_id: str, enrollment_id: str, rule: ReEntry, now: datetime
) -> str | None:
    """Why the rule forbids this entry, or None when it may begin."""
    if rule == "always":
        return None
    latest = session.scalars(
        select(Enrollment)
        .where(Enrollment.workflow_id == workflow_id, Enrollment.id != enrollment_id)
        .where(Enrollment.status != "skipped")
        .order_by(Enrollment.started_at.desc())
        .limit(1)
    ).first()
    if latest is None:
        return None
    if rule == "never":
        return "re-entry: never (entered before)"
    assert isinstance(rule, ReEntryAfter)
    started = latest.started_at
    if started.tzinfo is None:  # SQLite hands back naive UTC
        started = started.replace(tzinfo=now.tzinfo)
    if now - started < rule.after:
        return f"re-entry: not within {rule.model_dump(mode='json')['after']} of the last entry"
    return None


def begin(
    session: Session,
    *,
    enrollment_id: str,
    workflow_id: str,
    journey_key: str,
    version: int,
    contact_id: str,
    correlation: str | None,
    started_at: datetime,
) -> Enrollment:
    enrollment = session.get(Enrollment, enrollment_id)
    if enrollment is not None:  # most calls: progress of a run that began long ago
        enrollment.correlation = enrollment.correlation or correlation
        return enrollment
    # The relay that started the run may be writing the same row right now: an insert that
    # gives way to it (and waits for it to commit) instead of failing on the primary key.
    insert_ignoring_duplicates(
        session,
        Enrollment,
        [
            {
                "id": enrollment_id,
                "workflow_id": workflow_id,
                "journey_key": journey_key,
                "version": version,
                "contact_id": contact_id,
                "correlation": correlation,
                "status": "running",
                "converted": False,
                "started_at": started_at,
            }
        ],
    )
    enrollment = session.get(Enrollment, enrollment_id)
    assert enrollment is not None
    enrollment.correlation = enrollment.correlation or correlation  # the relay does not know it
    return enrollment


def record_progress(
    session: Session,
    enrollment: Enrollment,
    entries: list[TraceEntry],
    *,
    status: str,
    step: str | None,
    variant: str | None,
    reason: str | None,
    version: int,
) -> None:
    """Funnel rows are keyed by (enrollment, trace seq), so a retried write adds nothing."""
    insert_ignoring_duplicates(
        session,
        StepEvent,
        [
            {
                "id": f"{enrollment.id}:{entry.seq}",
                "enrollment_id": enrollment.id,
                "journey_key": enrollment.journey_key,
                "version": version,
                "step_id": entry.step,
                "contact_id": enrollment.contact_id,
                "kind": entry.kind,
                "variant": variant,
                "detail": entry.detail,
                "at": entry.at,
            }
            for entry in entries
        ],
    )
    enrollment.status = status
    enrollment.version = version
    enrollment.current_step = step
    enrollment.variant = variant
    enrollment.exit_reason = reason
    enrollment.converted = enrollment.converted or status == "converted"
    if status in ENDED and enrollment.ended_at is None:
        enrollment.ended_at = entries[-1].at if entries else None


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


def mark_skipped(session: Session, enrollment_id: str, reason: str, at: datetime) -> None:
    """An entry that its journey's re-entry rule refused, if the starter recorded it already."""
    enrollment = session.get(Enrollment, enrollment_id)
    if enrollment is not None:
        enrollment.status, enrollment.exit_reason, enrollment.ended_at = "skipped", reason, at
