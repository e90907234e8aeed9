"""Journeys and their immutable published versions."""

from __future__ import annotations

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from journeys.spec import Journey
from store.models import JourneyRow, JourneyVersion


def publish(session: Session, journey: Journey) -> int:
    """Store ``journey`` as its next immutable version and make it the live one."""
    row = session.get(JourneyRow, journey.key, with_for_update=True)
    if row is None:
        row = JourneyRow(key=journey.key, name=journey.name)
        session.add(row)
    current = session.scalar(
        select(func.max(JourneyVersion.version)).where(JourneyVersion.journey_key == journey.key)
    )
    version = (current or 0) + 1
    session.add(
        JourneyVersion(
            journey_key=journey.key, version=version, spec=journey.model_dump(mode="json")
        )
    )
    row.name = journey.name
    row.latest_version = version
    row.status = "active"
    session.flush()
    return version


def live_version(session: Session, key: str) -> tuple[int, Journey] | None:
    """The published version new contacts enter, or None (unknown, unpublished, not active)."""
    row = session.get(JourneyRow, key)
    if row is None or row.latest_version is None or row.status != "active":
        return None
    stored = session.get(JourneyVersion, (key, row.latest_version))
    assert stored is not None
    return row.latest_version, Journey.model_validate(stored.spec)
