"""Welcome drip, birthday at 09:00 in the contact's zone, quiet hours deferring an SMS."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from temporalio.client import Client

from temporal_journeys.store.db import Database
from tests.support import harness as h

WELCOME = """
key: {key}
name: Welcome series
trigger: {{event: user.signed_up}}
steps:
  - id: welcome
    send: {{channel: email, template: welcome-1}}
  - id: two-days
    wait: P2D
  - id: tips
    send: {{channel: email, template: welcome-2}}
  - id: two-weeks
    wait: P12D
  - id: check-in
    send: {{channel: email, template: welcome-3}}
"""

BIRTHDAY = """
key: {key}
name: Birthday
trigger: {{api: true}}
steps:
  - id: until-birthday
    wait: {{date_attribute: birthday, yearly: true, at: "09:00"}}
  - id: greet
    send: {{channel: email, template: birthday, data: {{code: BDAY15}}}}
"""

QUIET = """
key: {key}
name: Evening SMS
trigger: {{api: true}}
quiet_hours: {{start: "21:00", end: "08:00", channels: [sms]}}
steps:
  - id: until-evening
    wait: {{until: "22:30"}}
  - id: text
    send: {{channel: sms, template: evening-sms}}
"""


async def test_welcome_drip_sends_now_then_2_days_then_2_weeks(client: Client, engine_db: Database):
    for n in (1, 2, 3):
        h.template(engine_db, f"welcome-{n}", subject=f"Welcome {n}", text="Hello")
    version, journey = h.publish(engine_db, WELCOME.format(key=h.unique("welcome")))
    contact = h.contact(engine_db)

    handle = await h.start(client, journey, version, contact, h.event("user.signed_up"))
    _, view = await h.finish(handle)

    h.assert_schedule(view, "sent", [timedelta(0), timedelta(days=2), timedelta(days=14)])


def next_birthday_0900(after: datetime, zone: str, born: date) -> datetime:
    for year in range(after.year, after.year + 2):
        local = datetime.combine(date(year, born.month, born.day), time(9), ZoneInfo(zone))
        if local >= after:
            return local.astimezone(UTC)
    raise AssertionError("unreachable")


async def test_birthday_greeting_goes_at_0900_in_the_contacts_own_zone(
    client: Client, engine_db: Database
):
    h.template(engine_db, "birthday", subject="Happy birthday", text="Here is {{ data.code }}")
    version, journey = h.publish(engine_db, BIRTHDAY.format(key=h.unique("birthday")))
    tokyo = h.contact(engine_db, timezone="Asia/Tokyo", birthday="1990-03-15")
    new_york = h.contact(engine_db, timezone="America/New_York", birthday="1990-03-15")

    views = {}
    for contact in (tokyo, new_york):
        _, views[contact] = await h.finish(await h.start(client, journey, version, contact))

    for contact, zone in ((tokyo, "Asia/Tokyo"), (new_york, "America/New_York")):
        view = views[contact]
        [sent] = h.at(view, "sent")
        assert h.close(sent.at, next_birthday_0900(view.trace[0].at, zone, date(1990, 3, 15)))
    [message] = h.messages(engine_db, tokyo)
    assert message.body == "Here is BDAY15"


async def test_birthday_wait_without_a_date_skips_with_the_reason(
    client: Client, engine_db: Database
):
    h.template(engine_db, "birthday", subject="Happy birthday", text="Here is {{ data.code }}")
    version, journey = h.publish(engine_db, BIRTHDAY.format(key=h.unique("birthday")))
    contact = h.contact(engine_db)

    _, view = await h.finish(await h.start(client, journey, version, contact))

    [skipped] = h.at(view, "skipped")
    assert skipped.step == "until-birthday" and "birthday" in (skipped.detail or "")


async def test_quiet_hours_move_an_sms_due_at_2230_to_0800_next_morning(
    client: Client, engine_db: Database
):
    h.template(engine_db, "evening-sms", channel="sms", text="Flash sale tonight")
    version, journey = h.publish(engine_db, QUIET.format(key=h.unique("quiet")))
    contact = h.contact(engine_db, timezone="Europe/Paris", phone="+33612345678")

    _, view = await h.finish(await h.start(client, journey, version, contact))

    paris = ZoneInfo("Europe/Paris")
    [deferred] = h.at(view, "deferred")
    [sent] = h.at(view, "sent")
    due = deferred.at.astimezone(paris)
    assert h.close(due, datetime.combine(due.date(), time(22, 30), paris))
    assert h.close(sent.at, datetime.combine(due.date() + timedelta(days=1), time(8), paris))
    assert [m.channel for m in h.messages(engine_db, contact)] == ["sms"]
