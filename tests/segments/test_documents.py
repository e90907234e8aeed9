"""Segment documents as files: the examples are valid and name only each other, `journeys
validate` tells segments from journeys and lists a bad one's paths, the dev loader stores them
(once), and the seeds' audiences pick the people they promise."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from typer.testing import CliRunner

from temporal_journeys.cli.commands import app
from temporal_journeys.cli.loader import load_segments
from temporal_journeys.journeys.segments import dependencies, parse_segment
from temporal_journeys.journeys.validation import load_document
from temporal_journeys.store import contacts as contacts_store
from temporal_journeys.store import events as events_store
from temporal_journeys.store import segments as segments_store
from temporal_journeys.store.db import Database

EXAMPLES = Path(__file__).parents[2] / "examples" / "segments"
NOW = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)


def test_the_example_segments_are_valid_and_name_only_each_other():
    found = {}
    for path in sorted(EXAMPLES.glob("*.yaml")):
        segment = parse_segment(load_document(path.read_text()))
        assert segment.key == path.stem
        found[segment.key] = segment
    for segment in found.values():
        parse_segment(segment.model_dump(mode="json"), others=found)
    assert dependencies(found["no-purchase-90d"]).timed
    assert not dependencies(found["vip-paris-runners"]).timed  # its own nodes have no window


def test_validate_tells_segments_from_journeys_and_lists_a_bad_ones_paths(tmp_path: Path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("kind: segment\nkey: bad\nname: Bad\ncondition: {trait: age, type: years}\n")
    journey = Path(__file__).parents[2] / "examples" / "welcome.yaml"
    result = CliRunner().invoke(
        app, ["validate", str(EXAMPLES / "vip.yaml"), str(journey), str(bad)]
    )
    assert result.exit_code == 1
    assert "vip.yaml: ok (segment vip)" in result.output
    assert "welcome.yaml: ok (welcome" in result.output
    assert f"{bad}: $.condition.type: Input should be" in result.output


def test_the_dev_loader_stores_the_examples_once(db: Database):
    with db.transaction() as session:
        first = load_segments(session, EXAMPLES)
    with db.transaction() as session:
        again = load_segments(session, EXAMPLES)
        stored = sorted(segments_store.definitions(session))
    assert len(first) == len(list(EXAMPLES.glob("*.yaml"))) and again == []
    assert stored == sorted(path.stem for path in EXAMPLES.glob("*.yaml"))


def test_the_seed_audiences_pick_the_people_they_promise(db: Database):
    with db.transaction() as session:
        load_segments(session, EXAMPLES)
        contacts_store.upsert(
            session,
            "ada",
            {"age": 34, "city": "Montreuil", "interests": ["running", "cinema"]},
        )
        contacts_store.upsert(
            session, "bob", {"age": 16, "city": "Paris", "interests": ["running"]}
        )
        contacts_store.upsert(session, "cy", {"signed_up_at": "2026-11-25T10:00:00Z"})
        moments = {
            "ada": [NOW - timedelta(days=120), NOW - timedelta(days=100)],
            "bob": [NOW - timedelta(days=200), NOW - timedelta(days=10)],
        }
        for contact, times in moments.items():
            for n, at in enumerate(times):
                events_store.record(
                    session,
                    message_id=f"{contact}-order-{n}",
                    contact_id=contact,
                    name="order.completed",
                    properties={"total": 150},
                    timestamp=at,
                )
        for contact in ("ada", "bob"):
            events_store.record(
                session,
                message_id=f"{contact}-open",
                contact_id=contact,
                name="email.opened",
                properties={},
                timestamp=NOW - timedelta(days=3),
            )
        segments = segments_store.definitions(session)
        for key in ("no-purchase-90d", "paris-runners", "new-signups", "vip", "vip-paris-runners"):
            segments_store.apply(session, segments[key], NOW)
        members = {
            key: [c for c, _ in segments_store.members(session, key, after=None, limit=10)]
            for key in segments
        }
    assert members == {
        "new-signups": ["cy"],
        "newsletter-readers": [],  # nobody here has an email address
        "no-purchase-90d": ["ada"],  # bob bought 10 days ago; cy never did
        "paris-runners": ["ada"],  # bob is 16
        "vip": [],
        "vip-paris-runners": [],
    }


def test_a_segment_saved_again_after_its_deletion_is_read_with_its_new_definition(db: Database):
    # Both are version 1: what this process parsed before must not answer for the new one.
    now = datetime.now(UTC)
    first = parse_segment({"key": "again", "name": "Again", "condition": {"tag": "vip"}})
    second = parse_segment({"key": "again", "name": "Again", "condition": {"tag": "lead"}})
    with db.transaction() as session:
        segments_store.put(session, first)
        assert segments_store.definitions(session)["again"].condition == first.condition
        segments_store.remove(session, "again", now)
        segments_store.put(session, second)
        read = segments_store.definitions(session)
        assert read["again"].condition == second.condition
        # Read again, it is the same object: the evaluations built for it are kept.
        assert segments_store.definitions(session)["again"] is read["again"]
