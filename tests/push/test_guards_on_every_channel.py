"""Consent, quiet hours and frequency caps apply to push and WhatsApp as to email and SMS."""

from __future__ import annotations

import uuid
from datetime import time

from temporalio.client import Client
from temporalio.testing import WorkflowEnvironment

from temporal_journeys.journeys.settings import Settings
from temporal_journeys.journeys.timing import next_local_time
from temporal_journeys.store import devices as devices_store
from temporal_journeys.store import suppressions
from temporal_journeys.store.db import Database
from temporal_journeys.store.models import Contact
from tests.support import channels
from tests.support import harness as h
from tests.support.fake_fcm import FakeFcm
from tests.support.fake_providers import FakeProviders

CONTENT_SID = "HX" + "d" * 32


def with_device(db: Database, **traits: object) -> str:
    contact = h.contact(db, **traits)
    with db.transaction() as session:
        devices_store.register(session, contact, f"tok-{uuid.uuid4().hex}", "android")
    return contact


def zone_where_it_is_evening(hour: int) -> str:
    """An Etc/GMT zone whose local hour is 22 when it is ``hour`` in UTC."""
    offset = (22 - hour) % 24
    offset = offset - 24 if offset > 14 else offset
    return f"Etc/GMT{-offset:+d}" if offset else "Etc/UTC"


async def test_a_push_to_a_contact_who_opted_out_of_push_is_skipped(
    client: Client, push_queue: str, engine_db: Database, fake_fcm: FakeFcm
):
    h.template(engine_db, "g-push", "push", text="Hello")
    contact = with_device(engine_db)
    with engine_db.transaction() as session:
        session.get(Contact, contact).unsubscribed = ["push"]  # type: ignore[union-attr]

    _, view = await channels.run_send(client, engine_db, contact, "push", "g-push", push_queue)

    assert channels.step_kinds(view) == [("send", "skipped")]
    assert channels.detail(view, "skipped") == "unsubscribed from push"
    assert fake_fcm.sends == []


async def test_a_whatsapp_to_a_suppressed_number_or_a_bad_one_is_skipped(
    client: Client, push_queue: str, engine_db: Database, fake_twilio: FakeProviders
):
    h.template(engine_db, "g-wa", "whatsapp", provider_template_id=CONTENT_SID)
    suppressed = h.contact(engine_db, phone="+15551239001")
    with engine_db.transaction() as session:
        suppressions.add(session, "whatsapp", "+15551239001", "stop")
    bad = h.contact(engine_db, phone="555-0100")

    _, first = await channels.run_send(
        client, engine_db, suppressed, "whatsapp", "g-wa", push_queue
    )
    _, second = await channels.run_send(client, engine_db, bad, "whatsapp", "g-wa", push_queue)

    assert channels.detail(first, "skipped") == "suppressed: stop"
    assert channels.detail(second, "skipped") == "invalid phone number '555-0100' (E.164)"
    assert fake_twilio.of("twilio") == []


async def test_push_quiet_hours_hold_a_push_until_they_end(
    client: Client,
    time_env: WorkflowEnvironment,
    engine_db: Database,
    push_settings: Settings,
    fake_fcm: FakeFcm,
):
    h.template(engine_db, "g-quiet", "push", text="Good morning")
    now = await time_env.get_current_time()
    zone = zone_where_it_is_evening(now.hour)
    contact = with_device(engine_db, timezone=zone)
    settings = push_settings.model_copy(update={"push_quiet_hours": "21:00-08:00"})

    async with channels.channel_worker(time_env, engine_db, settings) as queue:
        _, view = await channels.run_send(client, engine_db, contact, "push", "g-quiet", queue)

    assert channels.step_kinds(view) == [("send", "deferred"), ("send", "sent")]
    assert "quiet hours 21:00-08:00" in channels.detail(view, "deferred")
    eight = next_local_time(h.at(view, "deferred")[0].at, zone, time(8))
    [sent] = h.at(view, "sent")
    assert h.close(sent.at, eight), (sent.at, eight)
    assert len(fake_fcm.accepted()) == 1


async def test_a_whatsapp_cap_of_one_skips_the_second_when_the_step_says_so(
    client: Client,
    time_env: WorkflowEnvironment,
    engine_db: Database,
    push_settings: Settings,
    fake_twilio: FakeProviders,
):
    h.template(engine_db, "g-cap", "whatsapp", provider_template_id=CONTENT_SID)
    contact = h.contact(engine_db, phone="+15551239002")
    settings = push_settings.model_copy(update={"whatsapp_daily_cap": 1})
    send = {"channel": "whatsapp", "template": "g-cap"}
    steps = [{"id": "first", "send": send}, {"id": "second", "send": {**send, "if_capped": "skip"}}]

    async with channels.channel_worker(time_env, engine_db, settings) as queue:
        _, view = await channels.run_journey(client, engine_db, contact, steps, queue)

    assert channels.step_kinds(view) == [("first", "sent"), ("second", "skipped")]
    assert channels.detail(view, "skipped") == "frequency cap: 1 whatsapp in 24 h (cap 1)"
    assert len(fake_twilio.accepted("twilio")) == 1
