"""Erasure that reaches Temporal's histories: with encryption on, a contact's run payloads are
sealed with that contact's own data key, and `DELETE /v1/contacts/{id}` destroys it. Afterwards
no codec (a fresh one, the codec server) can open any of that contact's payloads, while another
contact's still open."""

from __future__ import annotations

import base64
import os
from collections.abc import AsyncIterator
from dataclasses import dataclass

import httpx
import pytest
import pytest_asyncio
from temporalio.api.common.v1 import Payload
from temporalio.client import Client, WorkflowExecutionStatus, WorkflowHandle
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from temporal_journeys.api.app import create_app
from temporal_journeys.api.services.codec import WirePayload
from temporal_journeys.journeys.settings import Settings
from temporal_journeys.journeys.spec import Journey
from temporal_journeys.plugin import JourneysPlugin
from temporal_journeys.store import keys
from temporal_journeys.store.contact_keys import ContactKeyring, keyring
from temporal_journeys.store.db import Database
from temporal_journeys.workflows.codec import (
    CONTACT_KEY_PREFIX,
    KEY_ID,
    EncryptionCodec,
    PayloadDecryptionError,
    data_converter,
)
from temporal_journeys.workflows.starter import start_run
from tests.support import harness as h
from tests.support.history_payloads import ours, payloads

# Runs here do not go through h.finish: their encrypted histories must not be recorded for
# tests/engine/test_replay.py, which replays without the keys.

QUEUE = "journeys-shredded"
KEYS = f"k1:{base64.b64encode(os.urandom(32)).decode()}"


@dataclass(frozen=True)
class Person:
    email: str
    phone: str
    first_name: str


ADA = Person("ada.shredded.lovelace@example.org", "+15550170001", "Adalinde")
BOB = Person("bob.kept.babbage@example.org", "+15550170002", "Bobrecht")


@dataclass
class Stack:
    settings: Settings
    db: Database
    client: Client
    http: httpx.AsyncClient
    admin: dict[str, str]


@pytest.fixture(scope="module")
def settings(postgres_url: str) -> Settings:
    return Settings(
        database_url=postgres_url, task_queue=QUEUE, sms_quiet_hours="", encryption_keys=KEYS
    )


@pytest_asyncio.fixture
async def stack(
    time_env: WorkflowEnvironment, engine_db: Database, settings: Settings
) -> AsyncIterator[Stack]:
    """A worker and the API as a deployment runs them: both seal a contact's payloads with its
    data key, from the same database."""
    config = time_env.client.config()
    config["data_converter"] = data_converter(settings, keyring(engine_db, settings))
    client = Client(**config)
    app = create_app(settings, temporal=client, db=engine_db, relay=False)
    with engine_db.transaction() as session:
        admin = {"Authorization": "Bearer " + keys.create(session, "erasure", "admin")}
    transport = httpx.ASGITransport(app=app)
    async with (
        Worker(client, task_queue=QUEUE, plugins=[JourneysPlugin(settings, db=engine_db)]),
        httpx.AsyncClient(transport=transport, base_url="http://api.test") as http,
    ):
        yield Stack(settings, engine_db, client, http, admin)


async def _enter(
    stack: Stack, version: int, journey: Journey, person: Person
) -> tuple[str, WorkflowHandle]:
    contact = h.contact(
        stack.db, email=person.email, phone=person.phone, first_name=person.first_name
    )
    handle = await start_run(
        stack.client,
        journey=journey,
        version=version,
        contact_id=contact,
        task_queue=QUEUE,
        event=h.event("user.signed_up", email=person.email, phone=person.phone),
    )
    await h.signal(handle, "profile.viewed", first_name=person.first_name)
    await h.wait_until(lambda: bool(h.messages(stack.db, contact)), "the welcome to go out")
    return contact, handle


async def _sealed(stack: Stack, workflow_id: str) -> list[Payload]:
    """Every payload of the run's history that our converter wrote, read without keys."""
    plain = Client(**{**stack.client.config(), "data_converter": pydantic_data_converter})
    history = await plain.get_workflow_handle(workflow_id).fetch_history()
    return [payload for event in history.events for path, payload in payloads(event) if ours(path)]


def _fresh_codec(stack: Stack) -> EncryptionCodec:
    """A codec as a new process would build it: nothing cached."""
    codec = data_converter(stack.settings, keyring(stack.db, stack.settings)).payload_codec
    assert isinstance(codec, EncryptionCodec)
    return codec


def _readable(opened: list[Payload]) -> bytes:
    return b"".join(payload.data for payload in opened)


async def test_erasing_a_contact_destroys_its_key_and_its_histories_no_longer_decode(
    stack: Stack,
):
    h.template(stack.db, "shred-hello", subject="Hello", text="Hi {{ contact.first_name }}")
    key = h.unique("shredded")
    version, journey = h.publish(
        stack.db,
        {
            "key": key,
            "name": "Shredded",
            "trigger": {"event": "user.signed_up"},
            "steps": [
                {"id": "hello", "send": {"channel": "email", "template": "shred-hello"}},
                {"id": "pause", "wait": "P7D"},
            ],
        },
    )
    ada_id, ada = await _enter(stack, version, journey, ADA)
    _, bob = await _enter(stack, version, journey, BOB)

    # Each contact's payloads carry its own data key; nobody's the deployment key.
    sealed = {who: await _sealed(stack, handle.id) for who, handle in (("ada", ada), ("bob", bob))}
    key_ids = {who: {p.metadata[KEY_ID].decode() for p in found} for who, found in sealed.items()}
    assert len(sealed["ada"]) > 5 and len(key_ids["ada"]) == 1 and len(key_ids["bob"]) == 1
    assert all(k.startswith(CONTACT_KEY_PREFIX) for k in key_ids["ada"] | key_ids["bob"])
    assert key_ids["ada"] != key_ids["bob"]
    # Before the erasure, a codec that has the database opens Ada's history.
    before = _readable(await _fresh_codec(stack).decode(sealed["ada"]))
    for secret in (ADA.email, ADA.phone, ADA.first_name):
        assert secret.encode() in before, secret

    response = await stack.http.delete(f"/v1/contacts/{ada_id}", headers=stack.admin)

    assert response.status_code == 200, response.text
    erased = response.json()
    assert erased["runs_ended"] == 1 and erased["key_destroyed"] is True
    assert erased["rows_deleted"]["contact"] == 1 and erased["rows_deleted"]["messages"] == 1
    assert (await ada.describe()).status == WorkflowExecutionStatus.COMPLETED

    # Every payload of Ada's history, the erasure's own exit included, is shut for good...
    codec = _fresh_codec(stack)
    after = await _sealed(stack, ada.id)
    assert len(after) > len(sealed["ada"])
    for payload in after:
        with pytest.raises(PayloadDecryptionError, match="erased and its key destroyed"):
            await codec.decode([payload])
    # ... for the codec server too (its process erased, so it holds no cached copy).
    refused = await stack.http.post(
        "/codec/decode",
        json={"payloads": [WirePayload.of(after[0]).model_dump()]},
        headers=stack.admin,
    )
    assert refused.status_code == 422 and "key destroyed" in refused.text
    # Bob's still opens, through a fresh codec and through the codec server.
    kept = _readable(await codec.decode(await _sealed(stack, bob.id)))
    for secret in (BOB.email, BOB.phone, BOB.first_name):
        assert secret.encode() in kept, secret
    served = await stack.http.post(
        "/codec/decode",
        json={"payloads": [WirePayload.of(p).model_dump() for p in sealed["bob"]]},
        headers=stack.admin,
    )
    assert served.status_code == 200, served.text
    assert BOB.email in str([base64.b64decode(p["data"]) for p in served.json()["payloads"]])
    # No run left waiting on the module's time-skipping server, whose clock later tests move.
    await bob.terminate(reason="test over")


async def test_a_contact_erased_and_seen_again_gets_a_new_key(stack: Stack):
    """The same userId after an erasure (the app sends it again) is a new contact: its runs are
    sealed with a new key, and the old payloads stay shut."""
    ring = keyring(stack.db, stack.settings)
    assert isinstance(ring, ContactKeyring)
    first, _ = await ring.current("some-contact-hash")
    assert ring.destroy("some-contact-hash") is True
    assert await ring.find(first) is None
    second, _ = await ring.current("some-contact-hash")
    assert second != first and ring.destroy("some-contact-hash") is True
    assert ring.destroy("some-contact-hash") is False
