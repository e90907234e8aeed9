"""Store accepted calls and queue them for routing, in one transaction: durable before 202."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from api.schemas import Accepted, IdentifyCall, IgnoredCall, PageCall, SegmentCall, TrackCall
from store import contacts as contacts_store
from store import outbox
from store.models import Contact, Event


@dataclass(frozen=True)
class Row:
    message_id: str
    contact_id: str
    name: str
    properties: dict[str, Any]
    timestamp: datetime


def _row(call: SegmentCall, name: str, properties: dict[str, Any], now: datetime) -> Row:
    moment = call.timestamp or now
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return Row(call.messageId or str(uuid.uuid4()), call.contact_id, name, properties, moment)


def ingest(session: Session, calls: list[Any]) -> Accepted:
    now = datetime.now(UTC)
    rows: list[Row] = []
    ignored = 0
    for call in calls:
        if isinstance(call, TrackCall):
            rows.append(_row(call, call.event, call.properties, now))
        elif isinstance(call, IdentifyCall):
            contacts_store.upsert(session, call.contact_id, call.traits)
            rows.append(_row(call, "identify", call.traits, now))
        elif isinstance(call, PageCall):
            properties = {**call.properties, **({"name": call.name} if call.name else {})}
            rows.append(_row(call, call.type, properties, now))
        elif isinstance(call, IgnoredCall):
            ignored += 1
    if not rows:
        return Accepted(accepted=0, duplicates=0, ignored=ignored)

    dialect = postgresql if session.get_bind().dialect.name == "postgresql" else sqlite
    contact_ids = sorted({row.contact_id for row in rows})
    session.execute(
        dialect.insert(Contact)
        .values([_new_contact(contact_id, now) for contact_id in contact_ids])
        .on_conflict_do_nothing()
    )
    stored = session.execute(
        dialect.insert(Event)
        .values(
            [
                {
                    "message_id": row.message_id,
                    "contact_id": row.contact_id,
                    "name": row.name,
                    "properties": row.properties,
                    "timestamp": row.timestamp,
                    "received_at": now,
                }
                for row in rows
            ]
        )
        .on_conflict_do_nothing(index_elements=["message_id"])
        .returning(Event.id, Event.contact_id)
    ).all()
    outbox.add(session, sorted((event_id, contact) for event_id, contact in stored))
    return Accepted(accepted=len(stored), duplicates=len(rows) - len(stored), ignored=ignored)


def _new_contact(contact_id: str, now: datetime) -> dict[str, Any]:
    return {
        "id": contact_id,
        "timezone": "UTC",
        "traits": {},
        "tags": [],
        "scores": {},
        "unsubscribed": [],
        "created_at": now,
        "updated_at": now,
    }
