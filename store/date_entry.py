"""Date-based and scheduled entry: the contacts whose date may come round in a window, the runs
that exist already, the lock of one occurrence (or fire), and the journeys that need a Temporal
Schedule. Postgres and SQLite alike."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import Connection, Row, func, literal, select
from sqlalchemy.orm import Session

from temporal_journeys.journeys.spec import DateAttributeTrigger, Journey, ScheduleTrigger
from temporal_journeys.store.models import Contact, Enrollment, JourneyRow, JourneyVersion

_CONTACTS = Contact.__table__.c
# Bound parameters in one IN list: well under SQLite's 32,766 and Postgres's 65,535.
_IN_CHUNK = 1_000


def candidates(
    connection: Connection, attribute: str, keys: Sequence[str], *, yearly: bool
) -> list[Row[Any]]:
    """Contacts whose trait ``attribute`` is a date with one of ``keys``: its first ten
    characters (``YYYY-MM-DD``) or, ``yearly``, characters 6 to 10 (``MM-DD``). One statement
    narrows the whole base to the few days a window can concern
    (``timing.date_keys_between``); the caller decides each contact's exact moment in its own
    zone, which neither SQLite nor every stored zone name allows in SQL. Oldest id first."""
    if not keys:
        return []
    value = func.trim(_trait_text(connection.dialect.name, attribute))
    part = (
        func.substr(value, _inline(6), _inline(5))
        if yearly
        else func.substr(value, _inline(1), _inline(10))
    )
    query = (
        # Whole rows, so a due contact's run needs no second query (``contacts.snapshot``).
        select(Contact.__table__, value.label("date"))
        .where(part.in_(list(keys)))
        .order_by(_CONTACTS.id)
    )
    return list(connection.execute(query))


def _inline(value: Any) -> Any:
    """A constant written into the statement, not a parameter: the expression is then the one
    an index on it holds under any plan, a prepared statement's generic plan too."""
    return literal(value, literal_execute=True)


def _trait_text(dialect: str, attribute: str) -> Any:
    """The trait as text, written as the expression indexes of migration 0014_date_entry_index
    (``birthday``) say it: ``traits ->> 'birthday'`` on Postgres, ``json_extract(traits,
    '$."birthday"')`` on SQLite. An index on another date attribute is the same expression
    with its name (docs/operating.md)."""
    if dialect == "postgresql":
        return _CONTACTS.traits.op("->>")(_inline(attribute))
    return func.json_extract(_CONTACTS.traits, _inline(f'$."{attribute}"'))


def existing_runs(connection: Connection, workflow_ids: Sequence[str]) -> set[str]:
    """Those of ``workflow_ids`` that some entry (running, ended or skipped) was recorded
    under: a date occurrence's run exists once, whatever its re-entry rule says."""
    table = Enrollment.__table__
    found: set[str] = set()
    ids = list(workflow_ids)
    for first in range(0, len(ids), _IN_CHUNK):
        chunk = ids[first : first + _IN_CHUNK]
        found.update(
            connection.scalars(
                select(table.c.workflow_id).where(table.c.workflow_id.in_(chunk)).distinct()
            )
        )
    return found


def scheduled_journeys(session: Session) -> list[tuple[str, str, Journey]]:
    """(key, status, latest version) of every journey whose latest version enters by a date
    attribute or a schedule: those that have, or should have, a Temporal Schedule."""
    rows = session.execute(
        select(JourneyRow.key, JourneyRow.status, JourneyVersion.spec).join(
            JourneyVersion,
            (JourneyVersion.journey_key == JourneyRow.key)
            & (JourneyVersion.version == JourneyRow.latest_version),
        )
    ).all()
    found = []
    for key, status, spec in rows:
        trigger = spec.get("trigger") if isinstance(spec, dict) else None
        if isinstance(trigger, dict) and ("date_attribute" in trigger or "schedule" in trigger):
            journey = Journey.model_validate(spec)
            if isinstance(journey.trigger, DateAttributeTrigger | ScheduleTrigger):
                found.append((key, status, journey))
    return found


def latest(session: Session, key: str) -> tuple[str, Journey] | None:
    """The journey's status and latest published version, or None before its first publish."""
    row = session.get(JourneyRow, key)
    if row is None or row.latest_version is None:
        return None
    stored = session.get(JourneyVersion, (key, row.latest_version))
    assert stored is not None
    return row.status, Journey.model_validate(stored.spec)
