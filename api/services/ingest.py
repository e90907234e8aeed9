"""Store accepted calls and queue them for routing, in one transaction: durable before 202."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy.orm import Session

from temporal_journeys.api.schemas import (
    Accepted,
    IdentifyCall,
    IgnoredCall,
    PageCall,
    SegmentCall,
    TrackCall,
)
from temporal_journeys.api.services import deliveries, devices
from temporal_journeys.journeys import topics
from temporal_journeys.journeys.validation import json_path
from temporal_journeys.store import contacts as contacts_store
from temporal_journeys.store import devices as devices_store
from temporal_journeys.store import events as events_store
from temporal_journeys.store import segments as segments_store
from temporal_journeys.store import topics as topics_store


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


def _topic_choices(
    session: Session, calls: list[Any], within: tuple[str | int, ...]
) -> dict[int, dict[str, bool]]:
    """The subscriptions each identify call sets (its ``topic_subscriptions`` trait), checked
    before anything is written: an unknown topic refuses the request (422 naming the path)."""
    known: list[str] | None = None
    choices: dict[int, dict[str, bool]] = {}
    problems = []
    for index, call in enumerate(calls):
        if not isinstance(call, IdentifyCall) or topics.IDENTIFY_TRAIT not in call.traits:
            continue
        known = topics_store.keys(session) if known is None else known
        where = (*within, index) if within else ()
        path = json_path([*where, "traits", topics.IDENTIFY_TRAIT])
        try:
            choices[index] = topics.parse_choices(call.traits[topics.IDENTIFY_TRAIT], path, known)
        except topics.UnknownTopics as exc:
            problems.extend(exc.problems)
    if problems:
        raise topics.UnknownTopics(problems)
    return choices


def ingest(
    session: Session,
    calls: list[Any],
    within: tuple[str | int, ...] = (),
    now: datetime | None = None,
) -> Accepted:
    # ``now``: the simulator's clock (`journeys simulate`), so segment windows end there.
    now = now or datetime.now(UTC)
    rows: list[Row] = []
    ignored = 0
    choices = _topic_choices(session, calls, within)
    # With segments defined, the contacts whose memberships the calls can change are locked
    # first (in one order, one statement): they are re-evaluated below.
    profile: dict[str, set[str]] = {}
    for call in calls:
        if isinstance(call, IdentifyCall):
            profile.setdefault(call.contact_id, set()).update(call.traits)
    named = [
        (c.contact_id, c.event if isinstance(c, TrackCall) else c.type)
        for c in calls
        if isinstance(c, TrackCall | PageCall)
    ]
    segmented = segments_store.hold_contacts(session, profile=profile, events=named)
    # Identify locks its contact; taking the locks in one order lets two batches naming the
    # same contacts in different orders queue instead of deadlocking.
    # All of them in two statements, not two per contact (docs/benchmarks.md); in one when
    # ``hold_contacts`` created them (it does whenever segments exist).
    locked = contacts_store.lock_all(session, set(profile), created=bool(segmented))
    for index, call in enumerate(calls):
        if isinstance(call, TrackCall):
            rows.append(_row(call, call.event, call.properties, now))
        elif isinstance(call, IdentifyCall):
            # Subscriptions are the contact's choices (store/topics.py), not a trait to keep.
            traits = {k: v for k, v in call.traits.items() if k != topics.IDENTIFY_TRAIT}
            contacts_store.upsert(session, call.contact_id, traits, locked[call.contact_id])
            # Segment's mobile libraries carry the push token in context.device.
            device = devices.from_segment_context(call.context)
            if device is not None:
                devices_store.register(session, call.contact_id, *device)
            if index in choices:
                topics_store.set_choices(session, call.contact_id, choices[index], "identify", now)
            rows.append(_row(call, "identify", call.traits, now))
        elif isinstance(call, PageCall):
            properties = {**call.properties, **({"name": call.name} if call.name else {})}
            rows.append(_row(call, call.type, properties, now))
        elif isinstance(call, IgnoredCall):
            ignored += 1
    if not rows:
        return Accepted(accepted=0, duplicates=0, ignored=ignored)

    stored = events_store.accept(session, [row.__dict__ for row in rows], now)
    # ``push.opened`` (with the message id the notification carried) moves its message on.
    for row in rows:
        if row.name in deliveries.ENGAGEMENT:
            deliveries.apply_engagement(
                session, row.contact_id, row.name, row.properties, row.timestamp
            )
    # Segments these calls can move their contacts in or out of, in this same transaction: the
    # 202 covers the membership and its segment.entered / segment.exited events too.
    if segmented:
        session.flush()
        segments_store.react(
            session,
            profile=profile,
            events=named,
            now=now,
            segments=segmented,
        )
    return Accepted(accepted=stored, duplicates=len(rows) - stored, ignored=ignored)
