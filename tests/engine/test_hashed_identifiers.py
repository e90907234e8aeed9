"""With encryption on, nothing Temporal keeps about a run names the contact: not its history
read without the codec, not what it indexes and shows (workflow id, search attributes, memo,
static summary and details, current details). An operator still gets from a userId to its
runs in one step: ``journeys runs USER_ID``."""

from __future__ import annotations

import base64
import os
from collections.abc import AsyncIterator

import pytest
import pytest_asyncio
from fastapi.testclient import TestClient
from temporalio.client import Client, Interceptor, OutboundInterceptor, StartWorkflowInput
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker
from typer.testing import CliRunner

from temporal_journeys.api.app import create_app
from temporal_journeys.cli import commands as cli
from temporal_journeys.journeys.settings import Settings
from temporal_journeys.plugin import JourneysPlugin
from temporal_journeys.store import keys
from temporal_journeys.store.db import Database
from temporal_journeys.workflows import search_attributes as sa
from temporal_journeys.workflows.codec import data_converter
from temporal_journeys.workflows.starter import parse_workflow_id, run_names, start_run
from temporal_journeys.workflows.types import JourneyResult
from tests.support import harness as h
from tests.support.specs import ABANDONED_CART

# Runs here finish without h.finish: their encrypted histories must not be recorded for
# tests/engine/test_replay.py, which replays without the keys.

QUEUE = "journeys-hashed-ids"
KEY = base64.b64encode(os.urandom(32)).decode()
# Unlike anything in keys or step names, so that a hit can only be the contact's data.
EMAIL, PHONE, FIRST_NAME = "ada.lovelace.byron@example.org", "+15550176543", "Augustella"
CART = "cart-of-ada-lovelace"


class Summaries(Interceptor):
    """Keeps the static summary of every start the client sends."""

    def __init__(self) -> None:
        self.sent: list[str | None] = []

    def intercept_client(self, next: OutboundInterceptor) -> OutboundInterceptor:
        return _Recording(next, self.sent)


class _Recording(OutboundInterceptor):
    def __init__(self, next: OutboundInterceptor, sent: list[str | None]) -> None:
        super().__init__(next)
        self._sent = sent

    async def start_workflow(self, input: StartWorkflowInput):  # type: ignore[no-untyped-def]
        self._sent.append(input.static_summary)
        return await super().start_workflow(input)


@pytest.fixture(scope="module")
def settings(postgres_url: str) -> Settings:
    return Settings(
        database_url=postgres_url,
        task_queue=QUEUE,
        sms_quiet_hours="",
        encryption_keys=f"k1:{KEY}",
        id_hash_key="an id key that never rotates",
    )


@pytest_asyncio.fixture(scope="module")
async def encrypted(
    time_env: WorkflowEnvironment, engine_db: Database, settings: Settings
) -> AsyncIterator[Client]:
    config = time_env.client.config()
    config["data_converter"] = data_converter(settings)
    config["interceptors"] = [*config["interceptors"], Summaries()]
    client = Client(**config)
    async with Worker(client, task_queue=QUEUE, plugins=[JourneysPlugin(settings, db=engine_db)]):
        yield client


async def test_an_encrypted_runs_history_and_visibility_never_name_the_contact(
    encrypted: Client, engine_db: Database, settings: Settings, monkeypatch: pytest.MonkeyPatch
):
    prefix = h.unique("unnamed")
    h.template(engine_db, f"{prefix}-reminder", subject="You left {{ event.item }}", text="Hi")
    h.template(
        engine_db, f"{prefix}-discount", subject="10% off", text="Hi {{ contact.first_name }}"
    )
    h.template(engine_db, f"{prefix}-last-chance", subject="Last chance", text="Soon.")
    spec = ABANDONED_CART.format(key=prefix).replace("template: cart-", f"template: {prefix}-")
    version, journey = h.publish(engine_db, spec)
    # A userId that is an email address, the case the issue names.
    user_id = h.contact(
        engine_db,
        id=f"{h.unique('ada')}@example.net",
        email=EMAIL,
        phone=PHONE,
        first_name=FIRST_NAME,
    )
    trigger = h.event("cart.abandoned", cart_id=CART, item="shoes", email=EMAIL, phone=PHONE)
    summaries = next(i for i in encrypted.config()["interceptors"] if isinstance(i, Summaries))
    started = summaries.sent
    started.clear()
    handle = await start_run(
        encrypted,
        journey=journey,
        version=version,
        contact_id=user_id,
        task_queue=QUEUE,
        event=trigger,
    )
    await h.signal(handle, "profile.viewed", first_name=FIRST_NAME, phone=PHONE)
    # While the run waits: what it shows of itself now.
    details = (await handle.query("__temporal_workflow_metadata")).current_details

    result = JourneyResult.model_validate(await handle.result())
    assert result.status == "completed"
    assert [m.status for m in h.messages(engine_db, user_id)] == ["sent"] * 3

    names = run_names(encrypted)
    hashed = names.shown(user_id)
    assert handle.id == names.workflow_id(journey.key, user_id, CART)
    assert parse_workflow_id(handle.id).contact == hashed
    secrets = (EMAIL, PHONE, FIRST_NAME, user_id, CART)
    for secret in secrets:
        assert secret not in handle.id, secret
        assert secret not in details, secret

    # Read as anyone with access to Temporal but without the keys would.
    plain = Client(**{**encrypted.config(), "data_converter": pydantic_data_converter})
    history = await plain.get_workflow_handle(handle.id).fetch_history()
    described = await plain.get_workflow_handle(handle.id).describe()
    raw = b"".join(event.SerializeToString() for event in history.events)
    raw += described.raw_description.SerializeToString()
    for secret in secrets:
        assert secret.encode() not in raw, secret
    assert described.typed_search_attributes.get(sa.CONTACT_ID) == hashed
    assert await described.memo() == {}

    # The summary the start sent (the time-skipping server keeps none to describe) names the
    # hash: it is what operators filter by.
    assert started == [f"{journey.name} (v{version}) for contact {hashed}"]

    # From the userId to its runs in one step, through the API.
    app = create_app(settings, db=engine_db, relay=False)
    with engine_db.transaction() as session:
        admin = keys.create(session, "runs cli", "admin")
    http = TestClient(app, headers={"Authorization": f"Bearer {admin}"})
    answered = http.get(f"/v1/contacts/{user_id}/journeys").json()
    assert [item["workflow_id"] for item in answered] == [handle.id]
    monkeypatch.setattr(cli, "_api", lambda url, key: http)
    shown = CliRunner().invoke(
        cli.app, ["runs", user_id, "--ui-url", "http://ui.test/", "--namespace", "journeys"]
    )
    assert shown.exit_code == 0, shown.output
    escaped = handle.id.replace("/", "%2F")
    assert shown.output == (
        f"{handle.id}  completed  step -\n"
        f"  http://ui.test/namespaces/journeys/workflows/{escaped}\n"
        f'list filter: JourneyContactId = "{hashed}"\n'
    )
