"""Property-based: requests generated from the app's own OpenAPI schema never get a 5xx."""

from __future__ import annotations

import time

import schemathesis
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from temporalio.testing import WorkflowEnvironment

from api.app import create_app
from journeys.settings import Settings
from store import keys
from store.db import Database

EXAMPLES_PER_OPERATION = 25


def test_generated_requests_never_get_a_server_error(
    postgres_url: str, engine_db: Database, time_env: WorkflowEnvironment, client
):
    address = time_env.client.service_client.config.target_host
    app = create_app(
        Settings(database_url=postgres_url, temporal_address=address, task_queue="journeys-test")
    )
    with engine_db.transaction() as session:
        admin = keys.create(session, "schemathesis", "admin")
    schema = schemathesis.openapi.from_dict(app.openapi())
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 15

    with TestClient(app, raise_server_exceptions=False) as http:
        deadline = time.monotonic() + 30
        while app.state.temporal.client is None and time.monotonic() < deadline:
            time.sleep(0.1)
        failures: list[str] = []

        @settings(
            max_examples=EXAMPLES_PER_OPERATION * len(operations),
            deadline=None,
            suppress_health_check=list(HealthCheck),
            derandomize=True,
            database=None,
        )
        @given(data=st.data())
        def requests_never_fail(data: st.DataObject) -> None:
            operation = data.draw(st.sampled_from(operations))
            case = data.draw(operation.as_strategy())
            kwargs = {
                "params": case.query,
                "headers": {**(case.headers or {}), "Authorization": f"Bearer {admin}"},
            }
            if case.body is not None and not isinstance(case.body, schemathesis.core.NotSet):
                kwargs["json"] = case.body
            response = http.request(case.method, case.formatted_path, **kwargs)
            if response.status_code >= 500:
                where = f"{case.method} {case.formatted_path}"
                failures.append(f"{where} -> {response.status_code}: {response.text[:300]}")

        requests_never_fail()
    assert failures == []
