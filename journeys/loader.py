"""Load journeys (``*.yaml``) and templates (``templates/*.yaml``) into the store, publishing a
journey only when it differs from its live version."""

from __future__ import annotations

from pathlib import Path

import yaml
from sqlalchemy.orm import Session

from journeys.spec import Journey
from journeys.validation import load_document, parse_journey
from store import journeys as journeys_store
from store import templates as templates_store
from store.db import Database
from store.models import JourneyRow


def load_templates(session: Session, folder: Path) -> None:
    for path in sorted(folder.glob("*.yaml")):
        templates_store.put(session, path.stem, **yaml.safe_load(path.read_text()))


def publish_if_changed(session: Session, journey: Journey) -> int | None:
    """The new version number, or None when the live version is this journey already."""
    row = session.get(JourneyRow, journey.key)
    if row is not None and row.latest_version is not None:
        if journeys_store.version_spec(session, journey.key, row.latest_version) == journey:
            return None
        row.draft = journey.model_dump(mode="json")
    return journeys_store.publish(session, journey)


def load_folder(db: Database, folder: Path) -> list[str]:
    """What changed, one line each; raises ``SpecInvalid`` for a bad journey file."""
    changes = []
    with db.transaction() as session:
        load_templates(session, folder / "templates")
        known = templates_store.keys(session)
        for path in sorted(folder.glob("*.yaml")):
            journey = parse_journey(load_document(path.read_text()), templates=known)
            version = publish_if_changed(session, journey)
            if version is not None:
                changes.append(f"published {journey.key} v{version}")
    return changes
