"""With JOURNEYS_ENCRYPTION_KEYS set, a run's history holds none of the contact's personal data
in readable form: inputs, signals, activity inputs and results, markers and failures are all
ciphertext. The codec's converter decodes the same history and replays it; recorded histories
from before encryption replay with the codec configured."""

from __future__ import annotations

import base64
import json
import os
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio
from temporalio.client import Client, WorkflowHistory
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Replayer, Worker

from temporal_journeys.journeys.settings import Settings
from temporal_journeys.plugin import JourneysPlugin
from temporal_journeys.store.db import Database
from temporal_journeys.workflows.codec import ENCODING, KEY_ID, EncryptionCodec, data_converter
from temporal_journeys.workflows.starter import start_run
from temporal_journeys.workflows.types import JourneyResult
from tests.support import harness as h
from tests.support.history_payloads import ours, payloads
from tests.support.specs import ABANDONED_CART

# Runs here finish without h.finish: their encrypted histories must not be recorded for
# tests/engine/test_replay.py, which replays without the keys.

QUEUE = "journeys-encrypted"
OLD, NOW = (base64.b64encode(os.urandom(32)).decode() for _ in range(2))
KEYS = f"old:{OLD},now:{NOW}"
# Unlike anything in ids, keys or search attributes, so that a hit can only be the contact's data.
EMAIL, PHONE, FIRST_NAME = "grace.brewster.murray@example.org", "+15550134567", "Gracielle"


@pytest.fixture(scope="module")
def settings(postgres_url: str) -> Settings:
    return Settings(
        database_url=postgres_url, task_queue=QUEUE, sms_quiet_hours="", encryption_keys=KEYS
    )


@pytest_asyncio.fixture(scope="module")
async def encrypted(
    time_env: WorkflowEnvironment, engine_db: Database, settings: Settings
) -> AsyncIterator[Client]:
    """A client on the shared test server whose converter has the codec (its time-skipping
    interceptor kept), and a worker on a queue of its own built from it."""
    config = time_env.client.config()
    config["data_converter"] = data_converter(settings)
    client = Client(**config)
    async with Worker(client, task_queue=QUEUE, plugins=[JourneysPlugin(settings, db=engine_db)]):
        yield client


async def test_a_runs_history_holds_no_personal_data_and_decodes_and_replays_with_the_codec(
    encrypted: Client, engine_db: Database, settings: Settings
):
    prefix = h.unique("sealed")
    h.template(engine_db, f"{prefix}-reminder", subject="You left {{ event.item }}", text="Hi")
    h.template(
        engine_db,
        f"{prefix}-discount",
        subject="10% off",
        text="Hi {{ contact.first_name }}, use {{ data.code }} at checkout.",
    )
    h.template(engine_db, f"{prefix}-last-chance", subject="Last chance", text="Soon.")
    spec = ABANDONED_CART.format(key=prefix).replace("template: cart-", f"template: {prefix}-")
    version, journey = h.publish(engine_db, spec)
    contact = h.contact(engine_db, email=EMAIL, phone=PHONE, first_name=FIRST_NAME)
    trigger = h.event("cart.abandoned", cart_id="c1", item="shoes", email=EMAIL, phone=PHONE)
    handle = await start_run(
        encrypted,
        journey=journey,
        version=version,
        contact_id=contact,
        task_queue=QUEUE,
        event=trigger,
    )
    await h.signal(handle, "profile.viewed", first_name=FIRST_NAME, phone=PHONE)

    result = JourneyResult.model_validate(await handle.result())
    assert result.status == "completed"
    assert [m.status for m in h.messages(engine_db, contact)] == ["sent"] * 3

    # Read as anyone with access to Temporal but without the keys would.
    plain = Client(**{**encrypted.config(), "data_converter": pydantic_data_converter})
    history = await plain.get_workflow_handle(handle.id).fetch_history()
    raw = b"".join(event.SerializeToString() for event in history.events)
    for secret in (EMAIL, PHONE, FIRST_NAME):
        assert secret.encode() not in raw, secret
    found = [pair for event in history.events for pair in payloads(event)]
    kinds = {event.event_type for event in history.events}
    assert len(kinds) > 5 and len(found) > 10
    assert any(path.endswith("details[result].payloads") for path, _ in found)
    for path, payload in found:
        if ours(path):
            assert payload.metadata["encoding"] == ENCODING, path
            assert payload.metadata[KEY_ID] == b"now", path

    codec = data_converter(settings).payload_codec
    assert isinstance(codec, EncryptionCodec)
    opened = await codec.decode([payload for _, payload in found])
    readable = b"".join(payload.data for payload in opened)
    for secret in (EMAIL, PHONE, FIRST_NAME):
        assert secret.encode() in readable, secret

    replayed = await Replayer(
        workflows=[], plugins=[JourneysPlugin(settings, db=engine_db)]
    ).replay_workflow(history, raise_on_replay_failure=False)
    assert replayed.replay_failure is None, replayed.replay_failure
    # Without the codec the same history cannot even be read as the workflow's input.
    unkeyed = settings.model_copy(update={"encryption_keys": {}})
    blind = await Replayer(
        workflows=[], plugins=[JourneysPlugin(unkeyed, db=engine_db)]
    ).replay_workflow(history, raise_on_replay_failure=False)
    assert "Unknown payload encoding binary/encrypted" in str(blind.replay_failure)


async def test_a_run_started_under_the_old_key_finishes_after_the_new_one_is_current(
    time_env: WorkflowEnvironment, encrypted: Client, engine_db: Database, settings: Settings
):
    """A rolling rotation: runs started with key ``old`` current go on under a worker whose
    newest key is ``now``, and what that worker writes carries ``now``'s id."""
    old_only = Settings(encryption_keys=f"old:{OLD}")
    config = time_env.client.config()
    config["data_converter"] = data_converter(old_only)
    before = Client(**config)
    h.template(engine_db, "sealed-hello", subject="Hello", text="Hi {{ contact.first_name }}")
    version, journey = h.publish(
        engine_db,
        {
            "key": h.unique("rotated"),
            "name": "Rotated",
            "trigger": {"event": "user.signed_up"},
            "steps": [
                {"id": "pause", "wait": "PT1H"},
                {"id": "hello", "send": {"channel": "email", "template": "sealed-hello"}},
            ],
        },
    )
    contact = h.contact(engine_db, first_name=FIRST_NAME)
    handle = await start_run(
        before, journey=journey, version=version, contact_id=contact, task_queue=QUEUE
    )

    async with time_env.time_skipping_unlocked():  # type: ignore[attr-defined]
        raw = await encrypted.get_workflow_handle(handle.id).result()
    result = JourneyResult.model_validate(raw)

    assert result.status == "completed"
    history = await handle.fetch_history()
    ids = [
        payload.metadata[KEY_ID]
        for event in history.events
        for path, payload in payloads(event)
        if ours(path)
    ]
    assert ids[0] == b"old" and ids[-1] == b"now"
    assert set(ids) == {b"old", b"now"}


@pytest.mark.parametrize("path", sorted(h.HISTORIES.glob("*.json")), ids=lambda p: p.stem)
async def test_recorded_unencrypted_histories_replay_with_the_codec_configured(
    path: Path, settings: Settings, engine_db: Database
):
    plugin = JourneysPlugin(settings, db=engine_db)
    record = json.loads(path.read_text())  # noqa: ASYNC240 - a small fixture file
    history = WorkflowHistory.from_json(record["workflow_id"], record["history"])

    result = await Replayer(workflows=[], plugins=[plugin]).replay_workflow(
        history, raise_on_replay_failure=False
    )

    assert result.replay_failure is None, result.replay_failure
