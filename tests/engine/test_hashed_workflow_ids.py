"""With encryption on, runs name a contact by a keyed hash of its userId (and of the
correlation value): stable for a contact, distinct between contacts, unchanged by key
rotation. Without encryption, ids are what they always were."""

from __future__ import annotations

import base64
import os

import pytest
from temporalio.client import Client
from temporalio.testing import WorkflowEnvironment

from temporal_journeys.journeys.settings import Settings
from temporal_journeys.workflows.codec import EncryptionCodec, data_converter, encryption_codec
from temporal_journeys.workflows.starter import (
    RunId,
    RunNames,
    names_of,
    parse_workflow_id,
    run_names,
    workflow_id,
)

K1, K2 = (base64.b64encode(os.urandom(32)).decode() for _ in range(2))


def _names(**settings: str) -> RunNames:
    return names_of(encryption_codec(Settings(**settings)))  # type: ignore[arg-type]


def test_hashed_ids_are_stable_per_contact_and_distinct_between_contacts():
    names = _names(encryption_keys=f"k1:{K1}")
    again = _names(encryption_keys=f"k1:{K1}")
    ada = names.workflow_id("cart", "ada@example.com", "order-7")

    assert ada == again.workflow_id("cart", "ada@example.com", "order-7")
    assert ada != names.workflow_id("cart", "bob@example.com", "order-7")
    assert ada != names.workflow_id("cart", "ada@example.com", "order-8")
    assert ada != names.workflow_id("welcome", "ada@example.com", "order-7")
    # The hash is hex, so it may well contain "ada"; what must never show is the value itself.
    assert "ada@example.com" not in ada and "order-7" not in ada
    journey, contact, correlation = ada.split("/")[1:]
    assert journey == "cart"
    assert len(contact) == len(correlation) == 32
    assert int(contact, 16) >= 0 and contact == names.shown("ada@example.com")
    # The same string as a userId and as a correlation value hashes apart.
    assert names.shown("x") != names.shown("x", kind="correlation")


def test_hashed_ids_survive_key_rotation_and_follow_the_dedicated_key():
    before = _names(encryption_keys=f"k1:{K1}")
    rotated = _names(encryption_keys=f"k1:{K1},k2:{K2}")
    assert before.workflow_id("cart", "ada") == rotated.workflow_id("cart", "ada")

    dedicated = _names(encryption_keys=f"k1:{K1}", id_hash_key="a long random string")
    rotated_dedicated = _names(encryption_keys=f"k2:{K2}", id_hash_key="a long random string")
    assert dedicated.workflow_id("cart", "ada") == rotated_dedicated.workflow_id("cart", "ada")
    assert dedicated.workflow_id("cart", "ada") != before.workflow_id("cart", "ada")
    # Another deployment's key names the same contact differently.
    assert _names(encryption_keys=f"k2:{K2}").shown("ada") != before.shown("ada")


@pytest.mark.parametrize("correlation", [None, "c1", "a/b%2F"])
def test_without_encryption_ids_are_unchanged(correlation: str | None):
    plain = _names(encryption_keys="")
    assert plain.key is None
    assert plain.workflow_id("cart", "u1/c1", correlation) == workflow_id(
        "cart", "u1/c1", correlation
    )
    assert plain.shown("ada@example.com") == "ada@example.com"


@pytest.mark.parametrize(
    "parts",
    [("cart", "ada", None), ("cart", "u1/c1", "50%/x%2F"), ("welcome", "%25", "")],
)
def test_a_workflow_id_parses_back_into_its_parts(parts: tuple[str, str, str | None]):
    key, contact, correlation = parts
    assert parse_workflow_id(workflow_id(key, contact, correlation or None)) == RunId(
        key, contact, correlation or None
    )


@pytest.mark.parametrize("value", ["cart/ada", "run/cart/ada", "journey//ada", "journey/a/b/c/d"])
def test_what_is_not_a_workflow_id_of_ours_is_refused_by_name(value: str):
    with pytest.raises(ValueError, match="is not journey/<key>/<contact>"):
        parse_workflow_id(value)


async def test_a_client_hashes_exactly_when_it_encrypts(time_env: WorkflowEnvironment):
    config = time_env.client.config()
    config["data_converter"] = data_converter(Settings(encryption_keys=f"k1:{K1}"))
    encrypting = Client(**config)
    codec = encrypting.data_converter.payload_codec
    assert isinstance(codec, EncryptionCodec)

    assert run_names(encrypting) == RunNames(codec.id_key)
    config["data_converter"] = data_converter(Settings(encryption_keys=""))
    assert run_names(Client(**config)) == RunNames()
