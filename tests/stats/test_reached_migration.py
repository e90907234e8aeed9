"""Migration 0011 gives messages sent before it the outcomes their receipts and status prove,
on both backends, so the stats of older journeys count them."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

from temporal_journeys.store.migrate import downgrade, upgrade

MESSAGE = """INSERT INTO messages (id, idempotency_key, contact_id, channel, template, provider,
    status, status_history, created_at, updated_at, test)
    VALUES (:id, :id, 'c', 'email', 't', 'sendgrid', :status, '[]', :at, :at, false)"""
RECEIPT = """INSERT INTO delivery_receipts (id, message_id, status, received_at)
    VALUES (:id, :message, :status, :at)"""


@pytest.fixture(params=["postgres", "sqlite"])
def before_0011(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'before.db'}"
    else:
        url = request.getfixturevalue("own_postgres_url")
        downgrade(url, "0010_broadcasts")
    upgrade(url, "0010_broadcasts")
    return url


def test_existing_messages_get_the_outcomes_their_receipts_and_status_prove(before_0011: str):
    engine = create_engine(before_0011)
    at = "2026-11-01 09:00:00"
    with engine.begin() as connection:
        for message, status in (("clicked-then-opened", "clicked"), ("pushed", "opened")):
            connection.execute(text(MESSAGE), {"id": message, "status": status, "at": at})
        connection.execute(text(MESSAGE), {"id": "bounced", "status": "bounced", "at": at})
        connection.execute(text(MESSAGE), {"id": "quiet", "status": "sent", "at": at})
        for key, message, status in (
            ("r1", "clicked-then-opened", "delivered"),
            ("r2", "clicked-then-opened", "clicked"),
            ("r3", "clicked-then-opened", "opened"),
            ("r4", "bounced", "bounced"),
        ):
            connection.execute(
                text(RECEIPT), {"id": key, "message": message, "status": status, "at": at}
            )
    upgrade(before_0011)
    with engine.connect() as connection:
        reached = dict(connection.execute(text("SELECT id, reached FROM messages")).all())
    engine.dispose()

    assert reached == {
        "clicked-then-opened": 1 | 2 | 4,
        "pushed": 1 | 2,  # push.opened moved the status, no receipt
        "bounced": 8,
        "quiet": 0,
    }
