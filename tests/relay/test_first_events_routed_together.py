"""A goal posted for many contacts at once reaches their runs in shared transactions of the
relay: as many statements for 4 contacts as for 20, each run signalled once and converted, and
a contact's second event still after its first, on both databases."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import select
from temporalio.client import Client

from temporal_journeys.api.services.relay import OutboxRelay
from temporal_journeys.journeys.spec import Journey
from temporal_journeys.store import events as events_store
from temporal_journeys.store.db import Database
from temporal_journeys.store.models import OutboxEntry
from tests.engine.test_batch_admission import statements
from tests.support import harness as h
from tests.support.outbox import pending, relay_all

JOURNEY = """
key: {key}
name: Trial nurture
trigger: {{event: trial.started}}
goal: {{event: purchase}}
steps:
  - id: wait
    wait: P7D
  - id: done
    exit: {{}}
"""


def _queue(db: Database, users: list[str], name: str) -> None:
    now = datetime.now(UTC)
    rows = [
        {"message_id": h.unique("m"), "contact_id": user, "name": name, "properties": {}}
        for user in users
    ]
    with db.transaction() as session:
        events_store.accept(session, [{**row, "timestamp": now} for row in rows], now)


async def _converted_once(client: Client, journey: Journey, users: list[str]) -> None:
    """Each user's run converted by the goal, which reached it as its one signal."""
    for user in users:
        handle = client.get_workflow_handle(h.workflow_id_of(journey, user))
        assert (await handle.result())["status"] == "converted"
        history = await handle.fetch_history()
        signals = [
            e for e in history.events if e.HasField("workflow_execution_signaled_event_attributes")
        ]
        assert len(signals) == 1


async def test_a_goal_posted_for_many_contacts_reaches_their_runs_together(
    db: Database, relay: OutboxRelay, client: Client
):
    _, journey = h.publish(db, JOURNEY.format(key=h.unique("first-events")))
    counts = []
    everyone: list[str] = []
    for size in (4, 20):
        users = [h.contact(db, h.unique("trial")) for _ in range(size)]
        _queue(db, users, "trial.started")
        assert await relay_all(relay) == size
        _queue(db, users, "purchase")
        with statements(relay._db) as seen:
            assert await relay_all(relay) == size
        counts.append(len(seen))
        everyone += users
    # The claim, the live journeys, the events taken, the contacts, their running runs (the
    # specs of their versions, read once), the entries' DELETE and the empty claim that ends
    # the passes: the same for 20 contacts as for 4.
    assert counts[0] == counts[1], counts
    assert pending(db, everyone) == 0
    await _converted_once(client, journey, everyone)


async def test_a_contacts_second_event_follows_its_first_in_the_same_pass(
    db: Database, relay: OutboxRelay, client: Client
):
    _, journey = h.publish(db, JOURNEY.format(key=h.unique("first-events")))
    users = [h.contact(db, h.unique("trial")) for _ in range(6)]
    # Each contact's trial start and purchase queued before any pass: the start goes out with
    # the other contacts' starts, the purchase after it, to the run it began.
    _queue(db, users, "trial.started")
    _queue(db, users, "purchase")
    assert await relay_all(relay) == 2 * len(users)
    await _converted_once(client, journey, users)


async def test_an_event_the_relay_cannot_read_is_parked_alone_among_the_others(
    db: Database, relay: OutboxRelay, client: Client
):
    _, journey = h.publish(db, JOURNEY.format(key=h.unique("first-events")))
    users = [h.contact(db, h.unique("trial")) for _ in range(4)]
    _queue(db, users, "trial.started")
    assert await relay_all(relay) == len(users)
    # A stored event whose properties are no object (stored before the door checked them):
    # it cannot become the run's event, and must not hold back the others' goals.
    broken, *buyers = users
    now = datetime.now(UTC)
    with db.transaction() as session:
        row = {"message_id": h.unique("m"), "contact_id": broken, "name": "purchase"}
        events_store.accept(session, [{**row, "properties": [1, 2], "timestamp": now}], now)
    _queue(db, buyers, "purchase")
    assert await relay_all(relay) == len(users)
    with db.transaction() as session:
        parked = session.scalars(
            select(OutboxEntry.contact_id).where(OutboxEntry.parked_at.is_not(None))
        ).all()
    assert parked == [broken]
    assert pending(db, buyers) == 0
    await _converted_once(client, journey, buyers)
