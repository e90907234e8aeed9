"""A broadcast's page sent set-based (activities/broadcast_sends.py), on Postgres and SQLite:
every guard of a single send applies to each recipient, the page is written in a few
statements whatever its size, and a page tried again (after a crash or not) calls nobody twice.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import event, insert, select, update
from temporalio.exceptions import ApplicationError
from temporalio.testing import ActivityEnvironment

from temporal_journeys.activities.broadcast_sends import (
    PART,
    BroadcastSends,
    _render,
    message_id,
    send_input,
)
from temporal_journeys.activities.providers.base import (
    BeforeCall,
    NotAccepted,
    OutgoingMessage,
    Receipt,
    nothing_to_mark,
)
from temporal_journeys.activities.providers.console import ConsoleProvider
from temporal_journeys.activities.sends import SendActivities
from temporal_journeys.journeys.settings import Settings
from temporal_journeys.store import broadcasts as broadcasts_store
from temporal_journeys.store import suppressions
from temporal_journeys.store import topics as topics_store
from temporal_journeys.store.broadcasts import Outcome, Recipient
from temporal_journeys.store.db import Database
from temporal_journeys.store.models import Broadcast, BroadcastRecipient, Contact, Message
from temporal_journeys.workflows.broadcast import BroadcastPlan
from tests.support import broadcasts as b
from tests.support import harness as h

# 23:30 in Berlin, 22:30 in London: quiet hours 23:00-06:00 hold Berlin only.
NOW = datetime(2030, 1, 15, 22, 30, tzinfo=UTC)
GREETING = "Hello {{ contact.first_name }}"


class Recording(ConsoleProvider):
    """The console provider, keeping each call's message (what reached "the provider")."""

    def __init__(self, resend_when_unsure: bool = True) -> None:
        self.resend_when_unsure = resend_when_unsure
        self.calls: list[OutgoingMessage] = []

    async def send(
        self, message: OutgoingMessage, before_call: BeforeCall = nothing_to_mark
    ) -> Receipt:
        receipt = await super().send(message, before_call)
        self.calls.append(message)
        return receipt


def _settings(db: Database, **values: Any) -> Settings:
    return Settings(
        database_url=str(db.engine.url.render_as_string(hide_password=False)),
        sms_quiet_hours="",
        **values,
    )


def _broadcast(
    db: Database, contacts: list[str], **plan: Any
) -> tuple[BroadcastPlan, list[Recipient]]:
    """A broadcast row with ``contacts`` as its snapshot, its plan and its first page."""
    broadcast_id = h.unique("pg")
    values = {"template": "pg-hello", **plan}
    with db.transaction() as session:
        broadcasts_store.add(
            session,
            Broadcast(
                id=broadcast_id,
                segment_key="none",
                channel="email",
                template=plan.get("template", "pg-hello"),
                data={},
                status="sending",
                total=len(contacts),
            ),
        )
        if not contacts:
            return BroadcastPlan(id=broadcast_id, segment="none", channel="email", **values), []
        session.execute(
            insert(BroadcastRecipient),
            [
                {"broadcast_id": broadcast_id, "contact_id": c, "due_at": NOW, "status": "queued"}
                for c in contacts
            ],
        )
    with db.transaction() as session:
        page = broadcasts_store.page(
            session, broadcast_id, after=None, now=NOW, limit=len(contacts)
        )
    return BroadcastPlan(id=broadcast_id, segment="none", channel="email", **values), page


async def _send(sends: BroadcastSends, plan: BroadcastPlan, page: list[Recipient]) -> list[Outcome]:
    return await ActivityEnvironment().run(sends.send, plan, page, NOW)


def _rows(db: Database, plan: BroadcastPlan) -> dict[str, Message]:
    with db.transaction() as session:
        rows = session.scalars(select(Message).where(Message.workflow_id == f"broadcast/{plan.id}"))
        return {row.contact_id: row for row in rows}


def _recorded(db: Database, plan: BroadcastPlan) -> dict[str, tuple[str, str | None]]:
    with db.transaction() as session:
        rows = broadcasts_store.recipients(session, plan.id, after=None, limit=1000)
        return {row.contact_id: (row.status, row.message_id) for row in rows}


def _statuses(message: Message) -> list[str]:
    return [entry["status"] for entry in message.status_history]


def _audience(db: Database, prefix: str) -> dict[str, str]:
    """One contact per guard, by what should become of them."""
    ids = b.add_contacts(db, prefix, 9)
    who = dict(
        zip(
            [
                "sent",
                "no_email",
                "invalid",
                "unsubscribed",
                "topic_out",
                "suppressed",
                "capped",
                "quiet",
                "unrendered",
            ],
            ids,
            strict=True,
        )
    )
    with db.transaction() as session:

        def change(key: str, **values: Any) -> None:
            session.execute(update(Contact).where(Contact.id == who[key]).values(**values))

        change("sent", traits={"first_name": "Grace"})
        change("no_email", email=None)
        change("invalid", email="not-an-address")
        change("unsubscribed", unsubscribed=["email"])
        change("quiet", timezone="Europe/Berlin")
        change("unrendered", traits={})
        topics_store.put(session, "pg-news", "News", None, "opt_out")
        topics_store.set_choices(session, who["topic_out"], {"pg-news": False}, "test", NOW)
        suppressions.add(session, "email", f"{who['suppressed']}@example.com", "bounce")
        # One email in the last day already, against a cap of one.
        session.add(
            Message(
                id=h.unique("earlier"),
                idempotency_key=h.unique("earlier"),
                contact_id=who["capped"],
                channel="email",
                template="pg-hello",
                provider="console",
                status="sent",
                status_history=[],
                sent_at=NOW - timedelta(hours=2),
            )
        )
    return who


async def test_every_guard_of_a_single_send_applies_to_each_recipient_of_a_page(db: Database):
    h.template(db, "pg-hello", subject=GREETING, text="Hi {{ contact.first_name }}")
    who = _audience(db, h.unique("guards"))
    provider = Recording()
    settings = _settings(db, email_daily_cap=1, email_quiet_hours="23:00-06:00")
    sends = BroadcastSends(db, SendActivities(db, {"email": provider}, settings), settings)
    plan, page = _broadcast(db, list(who.values()), topic="pg-news")

    outcomes = {o.contact_id: (o.status, o.reason) for o in await _send(sends, plan, page)}

    expected = {
        "sent": ("sent", None),
        "no_email": ("skipped", "no email address"),
        "invalid": ("skipped", "invalid email address 'not-an-address'"),
        "unsubscribed": ("skipped", "unsubscribed from email"),
        "topic_out": ("skipped", "unsubscribed from topic 'pg-news'"),
        "suppressed": ("skipped", "suppressed: bounce"),
        "capped": ("skipped", "frequency cap: 1 email in 24 h (cap 1)"),
        "quiet": ("deferred", "quiet hours 23:00-06:00 (Europe/Berlin) for email"),
    }
    for key, (status, reason) in expected.items():
        assert outcomes[who[key]] == (status, reason), key
    # A template that cannot render for this contact: the row failed, the recipient skipped.
    status, reason = outcomes[who["unrendered"]]
    assert status == "skipped" and "contact.first_name is undefined" in (reason or "")

    # Only the one the guards let out reached the provider, rendered with their own traits.
    [call] = provider.calls
    assert (call.contact_id, call.subject, call.text) == (who["sent"], "Hello Grace", "Hi Grace")
    rows = _rows(db, plan)
    assert len(rows) == len(who)
    assert _statuses(rows[who["sent"]]) == ["pending", "sending", "sent"]
    assert rows[who["sent"]].subject == "Hello Grace" and rows[who["sent"]].sent_at is not None
    assert _statuses(rows[who["quiet"]]) == ["pending", "deferred"]
    assert rows[who["quiet"]].sent_at is None  # held back: caps do not count it
    assert _statuses(rows[who["unrendered"]]) == ["pending", "failed"]
    assert rows[who["suppressed"]].error == "suppressed: bounce"
    # The snapshot has each outcome; the deferred one is due when its quiet hours end.
    recorded = _recorded(db, plan)
    assert recorded[who["sent"]] == ("sent", message_id(plan.id, who["sent"]))
    assert recorded[who["quiet"]][0] == "deferred"
    assert {recorded[who[key]][0] for key in ("no_email", "capped", "unrendered")} == {"skipped"}


async def test_the_same_recipients_sent_one_by_one_get_the_same_outcomes(db: Database):
    """The page against the journeys' own send activity, recipient by recipient."""
    h.template(db, "pg-hello", subject=GREETING, text="Hi")
    who = _audience(db, h.unique("same"))
    settings = _settings(db, email_quiet_hours="23:00-06:00")  # no cap: the two runs would meet
    single = SendActivities(db, {"email": Recording()}, settings)
    sends = BroadcastSends(db, SendActivities(db, {"email": Recording()}, settings), settings)
    plan, page = _broadcast(db, list(who.values()), topic="pg-news")
    one_by_one_plan, _ = _broadcast(db, [], topic="pg-news")

    paged = {o.contact_id: (o.status, o.reason) for o in await _send(sends, plan, page)}
    env = ActivityEnvironment()
    one_by_one = {}
    for contact_id in who.values():
        result = await env.run(single.send_message, send_input(one_by_one_plan, contact_id, NOW))
        one_by_one[contact_id] = (result.status, result.reason)

    assert paged == one_by_one
    assert {status for status, _ in paged.values()} == {"sent", "skipped", "deferred"}


async def test_a_page_is_a_few_statements_whatever_its_size(db: Database):
    h.template(db, "pg-hello", subject="Hello", text="Hi")
    settings = _settings(db, email_daily_cap=5)
    sends = BroadcastSends(db, SendActivities(db, {"email": Recording()}, settings), settings)
    statements: list[str] = []

    def count(*args: Any) -> None:
        statements.append(args[2])

    async def run_page(size: int) -> int:
        plan, page = _broadcast(db, b.add_contacts(db, h.unique("size"), size), topic="pg-all")
        statements.clear()
        event.listen(db.engine, "before_cursor_execute", count)
        try:
            outcomes = await _send(sends, plan, page)
        finally:
            event.remove(db.engine, "before_cursor_execute", count)
        assert [o.status for o in outcomes] == ["sent"] * size
        return len(statements)

    with db.transaction() as session:
        topics_store.put(session, "pg-all", "All", None, "opt_out")
    # A part of a page is at most PART recipients: the page of PART is one, as the page of 3.
    small, large = await run_page(3), await run_page(PART)
    assert small == large, statements
    assert large <= 20, statements


async def test_a_page_tried_again_calls_nobody_twice(db: Database):
    h.template(db, "pg-hello", subject="Hello", text="Hi")
    settings = _settings(db)
    for resend in (True, False):
        provider = Recording(resend_when_unsure=resend)
        sends = BroadcastSends(db, SendActivities(db, {"email": provider}, settings), settings)
        contacts = b.add_contacts(db, h.unique("again"), 200)
        plan, page = _broadcast(db, contacts)

        first = await _send(sends, plan, page)
        second = await _send(sends, plan, page)

        assert [o.status for o in first] == [o.status for o in second] == ["sent"] * 200
        assert len(provider.calls) == 200
        assert {c.message_id for c in provider.calls} == {message_id(plan.id, c) for c in contacts}
        rows = _rows(db, plan)
        assert all(_statuses(row) == ["pending", "sending", "sent"] for row in rows.values())
        assert {status for status, _ in _recorded(db, plan).values()} == {"sent"}


async def test_a_page_cut_off_after_marking_its_rows_sends_each_of_them_once(db: Database):
    """A crash between the mark of a page's rows and their outcomes (the worker killed during
    the calls): the retry calls the console again for those rows, and each ends ``sent`` once."""
    h.template(db, "pg-hello", subject="Hello", text="Hi")
    settings = _settings(db)
    provider = Recording()
    sends = BroadcastSends(db, SendActivities(db, {"email": provider}, settings), settings)
    contacts = b.add_contacts(db, h.unique("cut"), 30)
    plan, page = _broadcast(db, contacts)
    requests = [send_input(plan, c, NOW) for c in contacts]

    async def cut_off() -> None:
        # What a page does up to its calls, then nothing: the process is gone.
        attempt = sends._sends.attempt(provider)
        state = sends._prepare(requests, provider, attempt)
        _render(requests, state)
        sends._mark(requests, provider, state)

    await ActivityEnvironment().run(cut_off)
    assert {row.status for row in _rows(db, plan).values()} == {"sending"}

    outcomes = await _send(sends, plan, page)

    assert [o.status for o in outcomes] == ["sent"] * 30
    assert len(provider.calls) == 30
    assert all(
        _statuses(row) == ["pending", "sending", "sending", "sent"]
        for row in _rows(db, plan).values()
    )


class RefusesOnce(Recording):
    """Refuses (a 429, say) the first call for one contact, then takes everything."""

    def __init__(self, contact_id: str) -> None:
        super().__init__()
        self.refuse = contact_id

    async def send(
        self, message: OutgoingMessage, before_call: BeforeCall = nothing_to_mark
    ) -> Receipt:
        if message.contact_id == self.refuse:
            self.refuse = ""
            raise NotAccepted("rate limited")
        return await super().send(message, before_call)


async def test_a_message_the_provider_did_not_take_fails_the_page_and_goes_on_its_retry(
    db: Database,
):
    h.template(db, "pg-hello", subject="Hello", text="Hi")
    settings = _settings(db)
    contacts = b.add_contacts(db, h.unique("refused"), 20)
    provider = RefusesOnce(contacts[7])
    sends = BroadcastSends(db, SendActivities(db, {"email": provider}, settings), settings)
    plan, page = _broadcast(db, contacts)

    with pytest.raises(ApplicationError, match="rate limited") as raised:
        await _send(sends, plan, page)
    assert raised.value.type == "ProviderNotAccepted"
    rows = _rows(db, plan)
    assert _statuses(rows[contacts[7]]) == ["pending", "sending", "pending"]
    assert rows[contacts[7]].sent_at is None  # the retry applies the guards again
    assert {rows[c].status for c in contacts if c != contacts[7]} == {"sent"}
    # Nothing recorded in the snapshot until every recipient's outcome is known.
    assert {status for status, _ in _recorded(db, plan).values()} == {"queued"}

    outcomes = await _send(sends, plan, page)

    assert [o.status for o in outcomes] == ["sent"] * 20
    assert sorted(c.contact_id for c in provider.calls) == sorted(contacts)
    assert _statuses(_rows(db, plan)[contacts[7]]) == [
        "pending", "sending", "pending", "sending", "sent"
    ]  # fmt: skip
    assert {status for status, _ in _recorded(db, plan).values()} == {"sent"}
