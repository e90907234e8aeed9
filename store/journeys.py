"""Journeys and their immutable published versions."""

from __future__ import annotations

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from temporal_journeys.journeys.spec import Journey
from temporal_journeys.store.models import JourneyRow, JourneyVersion


def get(session: Session, key: str) -> JourneyRow | None:
    return session.get(JourneyRow, key)


def keys(session: Session) -> list[str]:
    return list(session.scalars(select(JourneyRow.key)))


def save_draft(session: Session, journey: Journey) -> JourneyRow:
    """Keep ``journey`` as its key's draft (a new journey starts as a draft); the published
    versions stay as they are."""
    row = session.get(JourneyRow, journey.key) or JourneyRow(key=journey.key, status="draft")
    row.name = journey.name
    row.draft = journey.model_dump(mode="json")
    session.add(row)
    session.flush()
    return row


def versions(session: Session, key: str) -> list[JourneyVersion]:
    """Every published version of the journey, oldest first."""
    return list(
        session.scalars(
            select(JourneyVersion)
            .where(JourneyVersion.journey_key == key)
            .order_by(JourneyVersion.version)
        )
    )


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


_SPECS: dict[tuple[str, int], Journey] = {}


def version_spec(session: Session, key: str, version: int) -> Journey | None:
    """A published version; versions never change, so each is parsed once per process."""
    cached = _SPECS.get((key, version))
    if cached is None:
        stored = session.get(JourneyVersion, (key, version))
        if stored is None:
            return None
        cached = _SPECS[(key, version)] = Journey.model_validate(stored.spec)
    return cached


def live_journeys(session: Session) -> list[tuple[int, Journey]]:
    """Every journey new contacts can enter now, at its latest version."""
    rows = session.execute(
        select(JourneyRow.key, JourneyRow.latest_version).where(
            JourneyRow.status == "active", JourneyRow.latest_version.is_not(None)
        )
    ).all()
    found = []
    for key, version in rows:
        journey = version_spec(session, key, version)
        if journey is not None:
            found.append((version, journey))
    return found
