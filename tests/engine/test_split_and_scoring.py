"""A/B split shares and determinism; lead scoring that hands off past a threshold."""

from __future__ import annotations

import asyncio
from collections import Counter
from datetime import timedelta

import pytest
from sqlalchemy import select
from temporalio.client import Client
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Replayer

from temporal_journeys.plugin import JourneysPlugin
from temporal_journeys.store import contacts as contacts_store
from temporal_journeys.store.db import Database
from temporal_journeys.store.models import Message
from temporal_journeys.workflows.contract import EVENT_SIGNAL, STATE_QUERY
from temporal_journeys.workflows.types import RunView
from tests.support import harness as h

AB_TEST = """
key: {key}
name: Subject line test
trigger: {{api: true}}
steps:
  - id: pick
    split:
      variants:
        - {{name: plain, weight: 45, next: plain}}
        - {{name: emoji, weight: 45, next: emoji}}
      holdout: {{weight: 10}}
  - id: plain
    send: {{channel: email, template: ab-plain}}
    next: done
  - id: emoji
    send: {{channel: email, template: ab-emoji}}
  - id: done
    exit: {{}}
"""

SCORING = """
key: {key}
name: Lead scoring
trigger: {{event: lead.created}}
steps:
  - id: engaged?
    wait_for: {{event: page.viewed, timeout: P30D}}
    on_timeout: cold
  - id: add-points
    update: {{score: {{lead: 10}}}}
  - id: sales-ready?
    branch:
      cases: [{{when: {{field: scores.lead, gte: 30}}, next: hand-off}}]
      default: engaged?
  - id: hand-off
    update: {{add_tags: [sales-ready]}}
    next: done
  - id: cold
    update: {{add_tags: [cold]}}
  - id: done
    exit: {{}}
"""

CONTACTS = 1000


@pytest.mark.slow  # a thousand runs
async def test_split_shares_match_weights_and_holdout_gets_nothing(
    client: Client, engine_db: Database, plugin: JourneysPlugin
):
    h.template(engine_db, "ab-plain", subject="Our new range", text="See it")
    h.template(engine_db, "ab-emoji", subject="Our new range ✨", text="See it")
    # Fixed keys and ids: the assignment is a hash of them, so the shares are the same each run.
    version, journey = h.publish(engine_db, AB_TEST.format(key="ab-subject-line"))
    contacts = [h.contact(engine_db, id=f"ab-contact-{n:04}") for n in range(CONTACTS)]

    for batch in range(0, CONTACTS, 200):
        await asyncio.gather(
            *(h.start(client, journey, version, c) for c in contacts[batch : batch + 200])
        )
    ended = await h.wait_for_enrollments(engine_db, journey.key, CONTACTS)

    shares = Counter(enrollment.variant for enrollment in ended)
    assert abs(shares["plain"] / CONTACTS - 0.45) <= 0.03, shares
    assert abs(shares["emoji"] / CONTACTS - 0.45) <= 0.03, shares
    assert abs(shares["holdout"] / CONTACTS - 0.10) <= 0.03, shares
    holdouts = {e.contact_id for e in ended if e.variant == "holdout"}
    with engine_db.transaction() as session:
        messaged = set(
            session.scalars(select(Message.contact_id).where(Message.journey_key == journey.key))
        )
    # Said on failure: how the runs of the contacts without a message ended (seen once in CI
    # on a slow machine, 2 of 1,000; not reproduced since).
    unmessaged = [
        (e.contact_id, e.id, e.status, e.variant, e.exit_reason, e.started_at, e.ended_at)
        for e in ended
        if e.contact_id not in messaged and e.variant != "holdout"
    ]
    assert messaged == set(contacts) - holdouts, (len(ended), unmessaged)
    assert all(e.exit_reason == "holdout" for e in ended if e.variant == "holdout")

    # The choice is recorded in history: replaying gives the same commands and variant.
    handle = client.get_workflow_handle(h.workflow_id_of(journey, contacts[0]))
    history = await handle.fetch_history()
    replayed = await Replayer(workflows=[], plugins=[plugin]).replay_workflow(history)
    assert replayed.replay_failure is None
    await h.record_history(handle)
    view = await handle.query(STATE_QUERY, result_type=RunView)
    assert view.variant == next(e.variant for e in ended if e.contact_id == contacts[0])


async def test_lead_hands_off_to_sales_once_score_reaches_30(
    client: Client, engine_db: Database, time_env: WorkflowEnvironment
):
    version, journey = h.publish(engine_db, SCORING.format(key=h.unique("scoring")))
    contact = h.contact(engine_db)
    handle = await h.start(client, journey, version, contact, h.event("lead.created"))

    for _ in range(3):
        await time_env.sleep(timedelta(days=1))
        await h.signal(handle, "page.viewed", path="/pricing")
    result, view = await h.finish(handle)

    with engine_db.transaction() as session:
        stored = contacts_store.snapshot(contacts_store.get_or_create(session, contact))
    assert stored.scores == {"lead": 30.0}
    assert stored.tags == ["sales-ready"]
    assert [e.detail for e in h.at(view, "branched")] == [
        "default -> engaged?",
        "default -> engaged?",
        "case 1 -> hand-off",
    ]


async def test_continue_as_new_keeps_buffered_events_and_the_wait(
    client: Client, engine_db: Database, time_env: WorkflowEnvironment
):
    version, journey = h.publish(engine_db, SCORING.format(key=h.unique("scoring")))
    contact = h.contact(engine_db)
    handle = await h.start(
        client, journey, version, contact, h.event("lead.created"), continue_as_new_after=20
    )

    await time_env.sleep(timedelta(days=1))
    first = await h.signal(handle, "page.viewed")
    await h.signal(handle, "page.viewed")
    await h.signal(handle, "page.viewed")
    await handle.signal(EVENT_SIGNAL, first)  # a duplicate delivery must not count again
    result, view = await h.finish(handle)

    assert result.status == "completed"
    latest = await client.get_workflow_handle(handle.id).describe()
    assert latest.run_id != handle.result_run_id, "the run never continued as new"
    with engine_db.transaction() as session:
        stored = contacts_store.snapshot(contacts_store.get_or_create(session, contact))
    assert stored.scores == {"lead": 30.0}
    assert stored.tags == ["sales-ready"]
