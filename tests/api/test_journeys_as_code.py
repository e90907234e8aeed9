"""`journeys diff`, `apply` and `enroll` against the API: a second apply changes nothing;
bulk enrolment goes in chunks over real HTTP."""

from __future__ import annotations

import asyncio
import socket
from pathlib import Path

import httpx
import pytest
import pytest_asyncio
import uvicorn
import yaml
from fastapi.testclient import TestClient
from temporalio.client import Client
from typer.testing import CliRunner

from temporal_journeys.api.app import create_app
from temporal_journeys.api.schemas import EnrollBody
from temporal_journeys.api.services.journeys import set_status
from temporal_journeys.cli import commands as cli
from temporal_journeys.cli import remote
from temporal_journeys.cli.remote import ENROLL_CHUNK
from temporal_journeys.journeys.settings import Settings
from temporal_journeys.plugin import JourneysPlugin
from temporal_journeys.store import keys
from temporal_journeys.store.db import Database
from temporal_journeys.store.migrate import upgrade
from temporal_journeys.workflows.contract import STATE_QUERY
from temporal_journeys.workflows.types import RunView
from tests.support import harness as h

EXAMPLES = Path(__file__).parents[2] / "examples"

SPEC = """
key: {key}
name: Code review nudge
trigger: {{event: {key}.opened}}
steps:
  - id: wait
    wait: {wait}
  - id: nudge
    send: {{channel: email, template: code-nudge}}
"""


@pytest.fixture
def http(engine_db: Database, plugin: JourneysPlugin):
    h.template(engine_db, "code-nudge", subject="Nudge")
    app = create_app(plugin.settings, db=engine_db, relay=False)
    with engine_db.transaction() as session:
        key = keys.create(session, "cli", "admin")
    return TestClient(app, headers={"Authorization": f"Bearer {key}"})


def run(http: TestClient, monkeypatch: pytest.MonkeyPatch, *args: str):
    monkeypatch.setattr(cli, "_api", lambda url, key: http)
    return CliRunner().invoke(cli.app, list(args))


def test_apply_publishes_once_and_diff_shows_step_changes(
    http: TestClient, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    key = h.unique("code")
    path = tmp_path / "nudge.yaml"
    path.write_text(SPEC.format(key=key, wait="PT1H"))

    first = run(http, monkeypatch, "diff", str(path))
    assert first.exit_code == 0 and f"+ journey {key} (2 steps)" in first.output
    applied = run(http, monkeypatch, "apply", str(path))
    assert applied.exit_code == 0, applied.output
    assert f"{key}: published v1" in applied.output
    again = run(http, monkeypatch, "apply", str(path))
    assert f"{key}: no change" in again.output

    path.write_text(SPEC.format(key=key, wait="PT2H"))
    changed = run(http, monkeypatch, "diff", str(path))
    assert "~ step wait: wait 'PT1H' -> 'PT2H'" in changed.output
    dry = run(http, monkeypatch, "apply", "--dry-run", str(path))
    assert f"{key}: would publish" in dry.output
    assert len(http.get(f"/v1/journeys/{key}/versions").json()) == 1
    published = run(http, monkeypatch, "apply", str(path))
    assert f"{key}: published v2" in published.output


def test_apply_reports_an_invalid_file_and_fails(
    http: TestClient, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    path = tmp_path / "bad.yaml"
    path.write_text(SPEC.format(key="bad-code", wait="soon"))
    result = run(http, monkeypatch, "apply", str(path))
    assert result.exit_code == 1
    assert "$.steps[0].wait" in result.output


ENROLL_SPEC = """
key: {key}
name: Bulk enrolment
trigger: {{api: true}}
steps:
  - id: done
    exit: {{reason: enrolled}}
"""


@pytest_asyncio.fixture
async def served_api(client: Client, engine_db: Database, plugin: JourneysPlugin):
    """The API over real HTTP on a free port, in this event loop (it shares the Temporal
    client of the time-skipping server), with an admin key."""
    app = create_app(plugin.settings, temporal=client, db=engine_db, relay=False)
    with engine_db.transaction() as session:
        key = keys.create(session, "enroll cli", "admin")
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    task = asyncio.create_task(server.serve())
    for _ in range(200):
        if server.started or task.done():
            break
        await asyncio.sleep(0.05)
    assert server.started, "the API did not start"
    try:
        yield {"JOURNEYS_API_URL": f"http://127.0.0.1:{port}", "JOURNEYS_API_KEY": key}
    finally:
        server.should_exit = True
        await task


async def invoke(env: dict[str, str], *args: str):
    # The command makes blocking HTTP calls: run it off the loop that serves the API.
    return await asyncio.to_thread(CliRunner().invoke, cli.app, list(args), env=env)


def test_the_chunk_size_is_the_apis_limit():
    [limit] = [
        m.max_length
        for m in EnrollBody.model_fields["userIds"].metadata
        if hasattr(m, "max_length")
    ]
    assert limit == ENROLL_CHUNK


async def test_enroll_posts_in_chunks_with_a_progress_bar(
    served_api: dict[str, str], client: Client, engine_db: Database, tmp_path: Path
):
    key = h.unique("bulk")
    h.publish(engine_db, ENROLL_SPEC.format(key=key))
    users = tmp_path / "users.txt"
    listed = [h.unique("u") for _ in range(4)]
    users.write_text("# spring campaign\n" + "\n".join(listed) + "\n\n" + listed[0] + "\n")
    extra = h.unique("u")

    result = await invoke(
        served_api,
        "enroll",
        key,
        extra,
        "--users",
        str(users),
        "--chunk-size",
        "2",
        "--properties",
        '{"campaign": "spring"}',
    )

    assert result.exit_code == 0, result.output
    assert f"{key}: 5 of 5 enrolled" in result.output
    assert "enrolling into" in result.output and "5/5" in result.output
    for user in [extra, *listed]:
        handle = client.get_workflow_handle(h.suite_names().workflow_id(key, user))
        assert (await handle.result())["reason"] == "enrolled"
        view = await handle.query(STATE_QUERY, result_type=RunView)
        assert view.contact_id == user


async def test_enroll_counts_calls_per_chunk(served_api: dict[str, str], engine_db: Database):
    key = h.unique("bulk")
    h.publish(engine_db, ENROLL_SPEC.format(key=key))
    calls: list[int] = []
    with httpx.Client(
        base_url=served_api["JOURNEYS_API_URL"],
        headers={"Authorization": f"Bearer {served_api['JOURNEYS_API_KEY']}"},
    ) as http:
        users = [h.unique("u") for _ in range(7)]
        results = await asyncio.to_thread(
            remote.enroll, http, key, users, chunk=3, progress=lambda done: calls.append(len(done))
        )
    assert calls == [3, 3, 1]
    assert [r["userId"] for r in results] == users
    assert all(r["workflow_id"] == h.suite_names().workflow_id(key, r["userId"]) for r in results)


async def test_enroll_fails_clearly(served_api: dict[str, str], engine_db: Database):
    unknown = await invoke(served_api, "enroll", h.unique("nope"), "ada")
    assert unknown.exit_code == 1 and "HTTP 404" in unknown.output

    key = h.unique("paused")
    h.publish(engine_db, ENROLL_SPEC.format(key=key))
    with engine_db.transaction() as session:
        set_status(session, key, "pause")
    paused = await invoke(served_api, "enroll", key, "ada")
    assert paused.exit_code == 1 and "not published and active" in paused.output

    nobody = await invoke(served_api, "enroll", key)
    assert nobody.exit_code == 2 and "no userIds" in nobody.output


def test_the_examples_apply_through_the_api_hand_off_targets_first(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    """On an empty store of its own: the example templates are bodies the API accepts, and
    `apply examples/*.yaml` publishes re-activation before the channel ladder that enters it."""
    url = f"sqlite:///{tmp_path / 'examples.db'}"
    upgrade(url)
    db = Database(url)
    try:
        with db.transaction() as session:
            key = keys.create(session, "examples", "admin")
        app = create_app(Settings(database_url=url), db=db, relay=False)
        http = TestClient(app, headers={"Authorization": f"Bearer {key}"})
        for path in sorted((EXAMPLES / "templates").glob("*.yaml")):
            response = http.put(f"/v1/templates/{path.stem}", json=yaml.safe_load(path.read_text()))
            assert response.status_code == 200, (path.name, response.text)
        files = sorted(str(p) for p in EXAMPLES.glob("*.yaml"))
        # Journeys entered from a segment (win-back) need it: apply saves segments first.
        segments = sorted(str(p) for p in EXAMPLES.glob("segments/*.yaml"))

        applied = run(http, monkeypatch, "apply", *files, *segments)

        assert applied.exit_code == 0, applied.output
        published = [
            line.split(": ")[1] for line in applied.output.splitlines() if "published v1" in line
        ]
        assert len(published) == len(files)
        assert published.index("re-activation") < published.index("channel-ladder")
        again = run(http, monkeypatch, "apply", *files, *segments)
        assert again.output.count(": no change") == len(files) + len(segments)
    finally:
        db.dispose()
