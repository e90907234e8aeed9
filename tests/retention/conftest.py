"""The retention tests' own database, for the stacks that write to it while a test looks on."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from temporal_journeys.store.db import Database


@pytest.fixture
def own_db(own_postgres_url: str) -> Iterator[Database]:
    db = Database(own_postgres_url)
    yield db
    db.dispose()
