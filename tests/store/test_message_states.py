"""Property: whatever order delivery webhooks arrive in, and however often, a message ends in
the furthest state any of them reached, and each provider event is applied once. Driven
through the webhook services on both databases, one transaction per delivery."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from starlette.datastructures import ImmutableMultiDict

from temporal_journeys.activities.providers import sendgrid_email, twilio_sms
from temporal_journeys.api.services import deliveries
from temporal_journeys.store.db import Database
from temporal_journeys.store.messages import RANK
from temporal_journeys.store.models import Message
from tests.support import harness as h
from tests.support import signed_webhooks as sw

# (SendGrid event, extra fields, the status it means)
SENDGRID = [
    ("processed", {}, "sent"),
    ("deferred", {}, "delayed"),
    ("delivered", {}, "delivered"),
    ("open", {}, "opened"),
    ("click", {"url": "https://example.com"}, "clicked"),
    ("bounce", {"type": "bounce"}, "bounced"),
    ("bounce", {"type": "blocked"}, "undelivered"),
    ("dropped", {}, "undelivered"),
    ("spamreport", {}, "spamreport"),
    ("unsubscribe", {}, "unsubscribed"),
    ("group_unsubscribe", {}, "unsubscribed"),
]
TWILIO = {"queued": None, "sent": "sent", "delivered": "delivered", "undelivered": "undelivered"}
TWILIO["failed"] = "undelivered"

PROPERTY = settings(
    max_examples=30,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


def deliveries_of(data: st.DataObject, count: int) -> list[list[int]]:
    """Each of ``count`` events delivered at least once, some again, in any order, in
    requests of one to three events."""
    repeats = data.draw(st.lists(st.integers(0, count - 1), max_size=count * 2), label="repeats")
    order = data.draw(st.permutations([*range(count), *repeats]), label="order")
    requests, start = [], 0
    while start < len(order):
        size = data.draw(st.integers(1, 3), label="request size")
        requests.append(order[start : start + size])
        start += size
    return requests


def furthest(statuses: list[str | None]) -> str:
    return max(["sent", *(s for s in statuses if s)], key=RANK.__getitem__)


def assert_forward_only(message: Message) -> None:
    ranks = [RANK[entry["status"]] for entry in message.status_history]
    assert ranks == sorted(set(ranks)), message.status_history


@PROPERTY
@given(data=st.data())
def test_sendgrid_deliveries_leave_the_furthest_state(db: Database, data: st.DataObject):
    chosen = data.draw(st.lists(st.sampled_from(SENDGRID), min_size=1, max_size=6), label="events")
    message = sw.sent_message(db, h.contact(db, id=f"prop-{uuid.uuid4().hex[:10]}"))
    events = [sw.sendgrid_event(kind, message.id, **fields) for kind, fields, _ in chosen]

    for request in deliveries_of(data, len(events)):
        now = datetime.now(UTC)
        parsed = sendgrid_email.parse_events(sw.sendgrid_body([events[i] for i in request]), now)
        with db.transaction() as session:
            deliveries.apply_sendgrid(session, parsed, now)

    stored = sw.reload(db, Message, message.id)
    assert stored.status == furthest([status for _, _, status in chosen])
    assert_forward_only(stored)
    engagements = [
        kind for kind, _, _ in chosen if kind not in ("processed", "deferred", "dropped")
    ]
    assert len(sw.stored_events(db, message.contact_id)) == len(engagements)


@PROPERTY
@given(data=st.data())
def test_twilio_status_callbacks_leave_the_furthest_state(db: Database, data: st.DataObject):
    chosen = data.draw(st.lists(st.sampled_from(sorted(TWILIO)), min_size=1, max_size=5))
    contact_id = h.contact(db, id=f"prop-{uuid.uuid4().hex[:10]}", phone="+15550100000")
    message = sw.sent_message(db, contact_id, channel="sms")

    for request in deliveries_of(data, len(chosen)):
        for index in request:
            params = ImmutableMultiDict(
                {"MessageSid": message.provider_message_id, "MessageStatus": chosen[index]}
            )
            update = twilio_sms.parse_status(params, message.id)
            with db.transaction() as session:
                deliveries.apply_twilio_status(session, update, datetime.now(UTC))

    stored = sw.reload(db, Message, message.id)
    assert stored.status == furthest([TWILIO[s] for s in chosen])
    assert_forward_only(stored)
    names = sorted(e.name for e in sw.stored_events(db, contact_id))
    expected = {"delivered": "sms.delivered", "undelivered": "sms.failed", "failed": "sms.failed"}
    assert names == sorted(expected[s] for s in set(chosen) if s in expected)
