"""Rows the benchmarks need before they start: contacts, a template, journeys, an API key."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

from sqlalchemy import func, insert, select

from temporal_journeys.journeys.validation import parse_journey
from temporal_journeys.store import journeys as journeys_store
from temporal_journeys.store import keys
from temporal_journeys.store import templates as templates_store
from temporal_journeys.store.db import Database
from temporal_journeys.store.models import Contact, Enrollment, OutboxEntry, StepEvent


def contacts(db: Database, ids: list[str], chunk: int = 5000) -> None:
    """Contacts with an email address; every other one on the ``pro`` plan."""
    for start in range(0, len(ids), chunk):
        rows = [
            {
                "id": contact_id,
                "email": f"{contact_id}@example.com",
                "traits": {"plan": "pro" if n % 2 == 0 else "free"},
            }
            for n, contact_id in enumerate(ids[start : start + chunk], start)
        ]
        with db.transaction() as session:
            session.execute(insert(Contact), rows)


def journey(db: Database, document: dict[str, Any]) -> tuple[int, Any]:
    """Publish ``document`` (its email templates are created as ``bench``)."""
    parsed = parse_journey(document)
    with db.transaction() as session:
        templates_store.put(session, "bench", "email", subject="Hello", text="Hello")
        return journeys_store.publish(session, parsed), parsed


def admin_key(db: Database) -> dict[str, str]:
    with db.transaction() as session:
        return {"Authorization": "Bearer " + keys.create(session, "bench", "admin")}


def pending(db: Database) -> int:
    with db.transaction() as session:
        return session.scalar(select(func.count()).select_from(OutboxEntry)) or 0


def enrollments(db: Database, journey_key: str, **where: Any) -> int:
    """Enrollments of a journey, filtered by column values (status, current_step, ...)."""
    query = (
        select(func.count()).select_from(Enrollment).where(Enrollment.journey_key == journey_key)
    )
    for column, value in where.items():
        query = query.where(getattr(Enrollment, column) == value)
    with db.transaction() as session:
        return session.scalar(query) or 0


def entered(db: Database, journey_key: str, step: str) -> int:
    """Runs whose own trace recorded entering ``step``: a starter's enrollment row names the
    first step before the run has taken it, so its ``current_step`` proves nothing yet."""
    query = select(func.count(func.distinct(StepEvent.enrollment_id))).where(
        StepEvent.journey_key == journey_key,
        StepEvent.step_id == step,
        StepEvent.kind == "entered",
    )
    with db.transaction() as session:
        return session.scalar(query) or 0


async def until(
    check: Callable[[], bool], what: str, seconds: float = 600, every: float = 0.05
) -> None:
    """Poll ``check`` every ``every`` seconds; TimeoutError naming ``what`` after ``seconds``."""
    deadline = time.monotonic() + seconds
    while not check():
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what}: not within {seconds:.0f} s")
        await asyncio.sleep(every)


def reactions(db: Database, journey_key: str) -> dict[str, float]:
    """Event id -> when a run of the journey took it (its trace line ``name (id)``)."""
    query = select(StepEvent.detail, StepEvent.at).where(
        StepEvent.journey_key == journey_key, StepEvent.kind == "event"
    )
    with db.transaction() as session:
        rows = session.execute(query).all()
    return {detail.rsplit("(", 1)[1].rstrip(")"): at.timestamp() for detail, at in rows}
