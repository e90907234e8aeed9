"""Postgres connections are cut again and again while contacts go through a journey: the API
answers 503 with a clear body (never 500) while the database refuses them, activities retry,
no accepted event is lost and every run finishes with each message sent once."""

from __future__ import annotations

import asyncio
import contextlib

import pytest
from sqlalchemy import create_engine, func, select, text
from sqlalchemy.engine import make_url

from temporal_journeys.api.errors import UNREACHABLE
from temporal_journeys.store.models import Enrollment, Event, Message
from tests.support import harness as h
from tests.support.dev_server import DevStack
from tests.support.outbox import pending

pytestmark = pytest.mark.slow

CONTACTS, CUTS = 20, 6


def journey(key: str) -> dict:
    return {
        "name": "Two sends",
        "trigger": {"event": f"{key}.start"},
        "steps": [
            {"id": "welcome", "send": {"channel": "email", "template": "chaos"}},
            {"id": "pause", "wait": "PT1S"},
            {"id": "follow-up", "send": {"channel": "email", "template": "chaos"}},
            {"id": "done", "exit": {}},
        ],
    }


async def cut_connections(url: str, cuts: int) -> None:
    """Refuse new connections to the test database and kill its backends for 0.8 s, ``cuts``
    times, 0.4 s apart; connections are allowed again at the end whatever happens."""
    name = make_url(url).database
    admin = create_engine(make_url(url).set(database="postgres"), isolation_level="AUTOCOMMIT")

    def run(sql: str) -> None:
        with admin.connect() as connection:
            connection.execute(text(sql))

    kill = (
        f"SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
        f"WHERE datname = '{name}' AND pid <> pg_backend_pid()"
    )
    try:
        for _ in range(cuts):
            await asyncio.to_thread(run, f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS false')
            await asyncio.to_thread(run, kill)
            await asyncio.sleep(0.8)
            await asyncio.to_thread(run, f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS true')
            await asyncio.sleep(0.4)
    finally:
        with contextlib.suppress(Exception):
            run(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS true')
        admin.dispose()


async def post_until_accepted(stack: DevStack, path: str, body: dict, statuses: list[int]) -> None:
    """As a Segment client does: a 503 is tried again; every answer is kept for the checks."""
    while True:
        response = await stack.http.post(path, json=body, headers=stack.track)
        statuses.append(response.status_code)
        if response.status_code == 202:
            return
        assert response.status_code == 503, response.text
        assert response.json() == {"detail": UNREACHABLE}
        await asyncio.sleep(0.1)


async def test_cut_database_connections_lose_nothing(stack: DevStack):
    key = h.unique("cuts")
    h.template(stack.db, "chaos", subject="Hello", text="Hello")
    await stack.publish(key, journey(key))
    contacts = [h.unique("cut") for _ in range(CONTACTS)]
    statuses: list[int] = []

    async def contact_enters(contact: str, delay: float) -> None:
        await asyncio.sleep(delay)
        traits = {"userId": contact, "traits": {"email": f"{contact}@example.com"}}
        await post_until_accepted(stack, "/v1/identify", traits, statuses)
        start = {"userId": contact, "event": f"{key}.start", "messageId": f"{contact}-start"}
        await post_until_accepted(stack, "/v1/track", start, statuses)

    cutter = asyncio.create_task(cut_connections(stack.url, CUTS))
    # Contacts keep arriving across the cuts (about 7 s of them).
    await asyncio.gather(*(contact_enters(c, 0.35 * n) for n, c in enumerate(contacts)))
    await cutter
    assert 503 in statuses, "no request met the database down: the cuts missed"

    def finished() -> int:
        with stack.db.transaction() as session:
            return session.scalar(
                select(func.count())
                .select_from(Enrollment)
                .where(Enrollment.journey_key == key, Enrollment.status == "completed")
            )

    await h.wait_until(lambda: finished() == CONTACTS, "every run to finish", 120)
    assert pending(stack.db, contacts) == 0
    with stack.db.transaction() as session:
        stored = set(
            session.scalars(select(Event.message_id).where(Event.contact_id.in_(contacts)))
        )
        sent = session.execute(
            select(Message.contact_id, Message.step_id, Message.status).where(
                Message.journey_key == key
            )
        ).all()
    assert {f"{c}-start" for c in contacts} <= stored, "an accepted event was lost"
    assert sorted(sent) == sorted(
        (c, step, "sent") for c in contacts for step in ("welcome", "follow-up")
    ), "a message is missing or was sent twice"
