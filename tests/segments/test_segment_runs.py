"""A run started by a segment's entry event branches on the contact's segments as loaded for
the branch (recorded in history: the replay test replays these runs), and a segment exit in
`exit_on` ends it."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from temporalio.client import Client

from temporal_journeys.journeys.segments import SEGMENT_ENTERED, SEGMENT_EXITED, Segment
from temporal_journeys.store import segments as segments_store
from temporal_journeys.store.db import Database
from temporal_journeys.store.models import Contact
from tests.support import harness as h

pytestmark = pytest.mark.usefixtures("segments_cleaned")

JOURNEY = """
key: {key}
name: VIP welcome
trigger: {{segment: {vip}}}
exit_on: [{{segment_exited: {vip}}}]
steps:
  - id: where
    branch:
      cases:
        - {{when: {{segment: {paris}}}, next: paris}}
  - id: elsewhere
    update: {{add_tags: [vip-elsewhere]}}
    next: hold
  - id: paris
    update: {{add_tags: [vip-paris]}}
  - id: hold
    wait: P30D
"""


def _segments(db: Database, vip: str, paris: str) -> None:
    with db.transaction() as session:
        for segment in (
            Segment(key=vip, name="VIP", condition={"tag": "vip"}),
            Segment(key=paris, name="Paris", condition={"trait": "city", "eq": "Paris"}),
        ):
            segments_store.put(session, segment)
            segments_store.apply(session, segment, datetime.now(UTC))


@pytest.mark.parametrize(("city", "tag"), [("Paris", "vip-paris"), ("Lyon", "vip-elsewhere")])
async def test_a_segment_entry_run_branches_on_segments_and_a_segment_exit_ends_it(
    client: Client, engine_db: Database, city: str, tag: str
):
    vip, paris = h.unique("vip"), h.unique("paris")
    contact = h.contact(engine_db, city=city)
    with engine_db.transaction() as session:
        session.get(Contact, contact).tags = ["vip"]
    _segments(engine_db, vip, paris)
    version, journey = h.publish(
        engine_db, JOURNEY.format(key=h.unique("segtest"), vip=vip, paris=paris)
    )
    handle = await h.start(client, journey, version, contact, h.event(SEGMENT_ENTERED, segment=vip))
    await h.signal(handle, SEGMENT_EXITED, segment=h.unique("other"))  # not this segment's
    await h.signal(handle, SEGMENT_EXITED, segment=vip)
    result, view = await h.finish(handle)
    assert result.status == "exited"
    assert [entry.detail for entry in h.at(view, "branched")] == [
        "case 1 -> paris" if city == "Paris" else "default -> elsewhere"
    ]
    with engine_db.transaction() as session:
        assert tag in session.get(Contact, contact).tags
