"""Segments live in the API tests' shared database: each test's are removed after it, so no
other test's identify or track re-evaluates them."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sqlalchemy import delete

from temporal_journeys.store.db import Database
from temporal_journeys.store.models import JourneyRow, SegmentMember, SegmentRow


@pytest.fixture
def segments_cleaned(engine_db: Database) -> Iterator[Database]:
    yield engine_db
    with engine_db.transaction() as session:
        session.execute(delete(SegmentMember))
        session.execute(delete(SegmentRow))
        # Journeys these tests published on segments: archived, so they start nobody else.
        session.execute(
            JourneyRow.__table__.update()
            .where(JourneyRow.key.like("segtest-%"))
            .values(status="archived")
        )
