"""Load a folder of journeys (``*.yaml``) and templates (``templates/*.yaml``) into the store,
publishing a journey only when it differs from its live version."""

from __future__ import annotations

from pathlib import Path

import yaml

from journeys.validation import load_document, parse_journey
from store import journeys as journeys_store
from store import templates as templates_store
from store.db import Database
from store.models import JourneyRow


def load_folder(db: Database, folder: Path) -> list[str]:
    """What changed, one line each; raises ``SpecInvalid`` for a bad journey file."""
    changes = []
    with db.transaction() as session:
        for path in sorted((folder / "templates").glob("*.yaml")):
            parts = yaml.safe_load(path.read_text())
            templates_store.put(session, path.stem, **parts)
        known = templates_store.keys(session)
        for path in sorted(folder.glob("*.yaml")):
            journey = parse_journey(load_document(path.read_text()), templates=known)
            row = session.get(JourneyRow, journey.key)
            latest = (
                journeys_store.version_spec(session, journey.key, row.latest_version)
                if row is not None and row.latest_version is not None
                else None
            )
            if latest == journey:
                continue
            if row is not None:
                row.draft = journey.model_dump(mode="json")
            version = journeys_store.publish(session, journey)
            changes.append(f"published {journey.key} v{version}")
    return changes
