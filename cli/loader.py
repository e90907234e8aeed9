"""Load journeys (``*.yaml``), templates (``templates/*.yaml``), segments (``segments/``) and
subscription topics (``topics/``) into the store, publishing a journey only when it differs
from its live version."""

from __future__ import annotations

from pathlib import Path

import yaml
from sqlalchemy.orm import Session

from temporal_journeys.cli.documents import topic_file
from temporal_journeys.journeys.segments import in_dependency_order, parse_segment
from temporal_journeys.journeys.spec import Journey
from temporal_journeys.journeys.validation import load_document, parse_journey
from temporal_journeys.store import journeys as journeys_store
from temporal_journeys.store import segments as segments_store
from temporal_journeys.store import templates as templates_store
from temporal_journeys.store import topics as topics_store
from temporal_journeys.store.db import Database


def load_templates(session: Session, folder: Path) -> None:
    for path in sorted(folder.glob("*.yaml")):
        templates_store.put(session, path.stem, **yaml.safe_load(path.read_text()))


def publish_if_changed(session: Session, journey: Journey) -> int | None:
    """The new version number, or None when the live version is this journey already."""
    row = journeys_store.get(session, journey.key)
    if row is not None and row.latest_version is not None:
        if journeys_store.version_spec(session, journey.key, row.latest_version) == journey:
            return None
        row.draft = journey.model_dump(mode="json")
    return journeys_store.publish(session, journey)


def load_segments(session: Session, folder: Path) -> list[str]:
    """Segment files (``kind: segment``), each after those it names; the API backfills the new
    and changed ones when it reaches Temporal (``reconcile`` in ``api/services/segments.py``)."""
    found = [
        parse_segment(load_document(path.read_text())) for path in sorted(folder.glob("*.yaml"))
    ]
    changes = []
    for segment in in_dependency_order(found):
        others = {k: s for k, s in segments_store.definitions(session).items() if k != segment.key}
        parse_segment(segment.model_dump(mode="json"), others=others)  # references, cycles
        row, changed = segments_store.put(session, segment)
        if changed:
            changes.append(f"saved segment {segment.key} v{row.version}")
    return changes


def load_topics(session: Session, folder: Path) -> list[str]:
    """Topic files (``topics/*.yaml``: key, name, description, type), saved as
    ``PUT /v1/topics/{key}`` saves them; a line for each new or changed one."""
    changes = []
    for path in sorted(folder.glob("*.yaml")):
        found = topic_file(path)
        topic = found.topic
        before = topics_store.get(session, found.key)
        if before is not None and (before.name, before.description, before.type) == (
            topic.name,
            topic.description,
            topic.type,
        ):
            continue
        topics_store.put(session, found.key, topic.name, topic.description, topic.type)
        changes.append(f"saved topic {found.key}")
    return changes


def load_folder(db: Database, folder: Path) -> list[str]:
    """What changed, one line each; raises ``SpecInvalid`` for a bad journey, segment or
    topic file. Topics come before journeys: publishing refuses a send on an unknown topic."""
    changes = []
    with db.transaction() as session:
        load_templates(session, folder / "templates")
        changes.extend(load_topics(session, folder / "topics"))
        changes.extend(load_segments(session, folder / "segments"))
        known = templates_store.keys(session)
        for path in sorted(folder.glob("*.yaml")):
            journey = parse_journey(load_document(path.read_text()), templates=known)
            version = publish_if_changed(session, journey)
            if version is not None:
                changes.append(f"published {journey.key} v{version}")
    return changes
