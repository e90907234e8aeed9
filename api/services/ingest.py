"""Store accepted calls and queue them for routing, in one transaction: durable before 202."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy.orm import Session

from api.schemas import Accepted, IdentifyCall, IgnoredCall, PageCall, SegmentCall, TrackCall
from store import contacts as contacts_store
from store import events as events_store


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

    stored = events_store.accept(session, [row.__dict__ for row in rows], now)
    return Accepted(accepted=stored, duplicates=len(rows) - stored, ignored=ignored)
