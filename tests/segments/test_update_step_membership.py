"""A journey's `update` step moves its contact in and out of segments as identify and track do:
re-evaluated in the step's own transaction, with `segment.entered` / `segment.exited` events
queued for routing at the run's moment (the server clock, skipped time included)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select
from temporalio.client import Client
from temporalio.testing import WorkflowEnvironment

from temporal_journeys.journeys.segments import Segment
from temporal_journeys.store import segments as segments_store
from temporal_journeys.store.db import Database
from temporal_journeys.store.models import Event, OutboxEntry
from tests.support import harness as h

pytestmark = pytest.mark.usefixtures("segments_cleaned")


JOURNEY = """
key: {key}
name: Promote then demote
trigger: {{event: upgraded}}
steps:
  - id: promote
    update: {{attributes: {{plan: gold}}, add_tags: [vip], score: {{lead: 10}}}}
  - id: hold
    wait: P2D
  - id: demote
    update: {{attributes: {{plan: null}}, remove_tags: [vip]}}
"""


def _segments(db: Database, gold: str, vip: str, hot: str, gold_vip: str) -> None:
    with db.transaction() as session:
        for segment in (
            Segment(key=gold, name="Gold", condition={"trait": "plan", "eq": "gold"}),
            Segment(key=vip, name="VIP", condition={"tag": "vip"}),
            Segment(key=hot, name="Hot lead", condition={"score": "lead", "gte": 10}),
            # Follows the two it names, for the contact that moved in them.
            Segment(
                key=gold_vip,
                name="Gold VIP",
                condition={"all": [{"segment": gold}, {"segment": vip}]},
            ),
        ):
            segments_store.put(session, segment)


def _segment_events(db: Database, contact: str) -> list[tuple[str, str, bool, object]]:
    with db.transaction() as session:
        rows = session.execute(
            select(Event.name, Event.properties, OutboxEntry.id, Event.timestamp)
            .outerjoin(OutboxEntry, OutboxEntry.event_id == Event.id)
            .where(Event.contact_id == contact, Event.name.like("segment.%"))
            .order_by(Event.id)
        ).all()
    return [(name, props["segment"], entry is not None, at) for name, props, entry, at in rows]


def _memberships(db: Database, contact: str) -> list[str]:
    with db.transaction() as session:
        return segments_store.keys_of(session, contact)


async def test_an_update_step_moves_its_contact_in_and_out_of_segments(
    client: Client, engine_db: Database, time_env: WorkflowEnvironment
):
    gold, vip, hot, gold_vip = (h.unique(p) for p in ("gold", "vip", "hot", "goldvip"))
    _segments(engine_db, gold, vip, hot, gold_vip)
    contact = h.contact(engine_db, plan="free")
    assert _memberships(engine_db, contact) == []
    version, journey = h.publish(engine_db, JOURNEY.format(key=h.unique("segtest")))
    started = await time_env.get_current_time()
    handle = await h.start(client, journey, version, contact, h.event("upgraded"))
    result, _view = await h.finish(handle)
    assert result.status == "completed"

    # The score stays (the demote step does not touch it); the trait and the tag are gone.
    assert _memberships(engine_db, contact) == [hot]
    found = _segment_events(engine_db, contact)
    entered = sorted(key for name, key, _, _ in found if name == "segment.entered")
    exited = sorted(key for name, key, _, _ in found if name == "segment.exited")
    assert entered == sorted([gold, vip, hot, gold_vip])
    assert exited == sorted([gold, vip, gold_vip])
    assert all(queued for _, _, queued, _ in found)  # routed like identify's
    # Entered at the promote step, exited two (skipped) days later at the demote step.
    enter_at = {at for name, _, _, at in found if name == "segment.entered"}
    exit_at = {at for name, _, _, at in found if name == "segment.exited"}
    assert len(enter_at) == 1 and len(exit_at) == 1
    (entered_at,), (exited_at,) = enter_at, exit_at
    assert h.close(entered_at, started)
    assert h.close(exited_at - entered_at, timedelta(days=2))
