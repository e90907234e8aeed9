"""The payload codec: AES-256-GCM under the newest key, the key id in the metadata, large
payloads compressed first, unencrypted payloads passed through; and its setting's validation."""

from __future__ import annotations

import base64
import json
import os
from pathlib import Path

import pytest
from pydantic import ValidationError
from temporalio.api.common.v1 import Payload
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.converter import (
    DefaultFailureConverterWithEncodedAttributes,
    WorkflowSerializationContext,
)

from temporal_journeys.journeys.settings import Settings
from temporal_journeys.plugin import JourneysPlugin
from temporal_journeys.store.contact_keys import ContactKeyring, keyring
from temporal_journeys.store.db import Database
from temporal_journeys.workflows.codec import (
    COMPRESSION,
    CONTACT_KEY_PREFIX,
    ENCODING,
    KEY_ID,
    EncryptionCodec,
    PayloadDecryptionError,
    data_converter,
    encryption_codec,
)

KEY_1, KEY_2 = os.urandom(32), os.urandom(32)
SECRET = b'{"email": "grace.hopper@example.org", "phone": "+15550100"}'


def b64(key: bytes) -> str:
    return base64.b64encode(key).decode()


def plain(data: bytes = SECRET) -> Payload:
    return Payload(metadata={"encoding": b"json/plain"}, data=data)


async def roundtrip(codec: EncryptionCodec, payload: Payload) -> tuple[Payload, Payload]:
    [sealed] = await codec.encode([payload])
    [opened] = await codec.decode([sealed])
    return sealed, opened


async def test_a_payload_is_encrypted_under_the_current_key_and_decodes_to_itself():
    codec = EncryptionCodec({"k1": KEY_1})
    sealed, opened = await roundtrip(codec, plain())

    assert sealed.metadata["encoding"] == ENCODING
    assert sealed.metadata[KEY_ID] == b"k1"
    assert b"grace.hopper" not in sealed.SerializeToString()
    assert b"json/plain" not in sealed.SerializeToString()  # the inner metadata is sealed too
    assert opened == plain()


async def test_the_same_payload_encrypts_differently_each_time():
    codec = EncryptionCodec({"k1": KEY_1})
    first, second = await codec.encode([plain(), plain()])
    assert first.data != second.data


async def test_payloads_under_key_1_decode_after_key_2_is_added_and_made_current():
    old = EncryptionCodec({"k1": KEY_1})
    [under_1] = await old.encode([plain()])

    rotated = EncryptionCodec({"k1": KEY_1, "k2": KEY_2})
    [opened] = await rotated.decode([under_1])
    [under_2] = await rotated.encode([plain()])

    assert opened == plain()
    assert rotated.current_key_id == "k2"
    assert under_2.metadata[KEY_ID] == b"k2"
    assert (await rotated.decode([under_2])) == [plain()]


async def test_an_unknown_key_id_is_a_clear_error():
    [sealed] = await EncryptionCodec({"gone": KEY_1}).encode([plain()])
    with pytest.raises(PayloadDecryptionError, match="'gone'.*JOURNEYS_ENCRYPTION_KEYS"):
        await EncryptionCodec({"k2": KEY_2}).decode([sealed])


async def test_a_payload_under_the_wrong_key_or_altered_does_not_decode():
    [sealed] = await EncryptionCodec({"k1": KEY_1}).encode([plain()])
    with pytest.raises(PayloadDecryptionError, match="does not authenticate"):
        await EncryptionCodec({"k1": KEY_2}).decode([sealed])

    # Claiming compression it was not sealed with fails the tag, not zlib.
    sealed.metadata[COMPRESSION] = b"zlib"
    with pytest.raises(PayloadDecryptionError, match="does not authenticate"):
        await EncryptionCodec({"k1": KEY_1}).decode([sealed])


async def test_a_large_payload_is_compressed_before_encryption_and_round_trips():
    codec = EncryptionCodec({"k1": KEY_1})
    large = plain(
        json.dumps({"events": [{"name": "cart.abandoned", "n": i} for i in range(500)]}).encode()
    )
    sealed, opened = await roundtrip(codec, large)

    assert sealed.metadata[COMPRESSION] == b"zlib"
    assert len(sealed.data) < len(large.data) / 4
    assert opened == large


async def test_a_small_payload_is_not_compressed():
    sealed, _ = await roundtrip(EncryptionCodec({"k1": KEY_1}), plain())
    assert COMPRESSION not in sealed.metadata


async def test_an_unencrypted_payload_decodes_unchanged():
    codec = EncryptionCodec({"k1": KEY_1})
    before = [plain(), Payload(metadata={"encoding": b"binary/null"})]
    assert await codec.decode(before) == before


# --- the converter from settings --------------------------------------------------------------


def test_without_keys_the_converter_is_pydantics_alone():
    assert data_converter(Settings()) is pydantic_data_converter


def test_with_keys_the_converter_is_pydantics_plus_the_codec_with_failures_encoded():
    converter = data_converter(Settings(encryption_keys=f"k1:{b64(KEY_1)},k2:{b64(KEY_2)}"))
    assert converter.payload_converter_class is pydantic_data_converter.payload_converter_class
    assert isinstance(converter.payload_codec, EncryptionCodec)
    assert converter.payload_codec.current_key_id == "k2"
    assert isinstance(converter.failure_converter, DefaultFailureConverterWithEncodedAttributes)


async def test_the_converter_encrypts_what_it_converts():
    converter = data_converter(Settings(encryption_keys=f"k1:{b64(KEY_1)}"))
    [payload] = await converter.encode([{"email": "grace.hopper@example.org"}])
    assert b"grace.hopper" not in payload.SerializeToString()
    assert await converter.decode([payload], [dict]) == [{"email": "grace.hopper@example.org"}]


def test_the_plugin_adds_the_codec_to_a_users_converter_without_one_and_keeps_it_otherwise(
    tmp_path: Path,
):
    settings = Settings(encryption_keys=f"k1:{b64(KEY_1)}")
    db = Database(f"sqlite:///{tmp_path / 'journeys.db'}")
    built = JourneysPlugin(settings, db=db)
    converter = built.configure_client({"data_converter": pydantic_data_converter})[
        "data_converter"
    ]
    assert isinstance(converter.payload_codec, EncryptionCodec)
    # With the database's contact keys: erasure can reach what the runs it starts write.
    assert isinstance(converter.payload_codec.contact_keys, ContactKeyring)
    assert built.configure_client({"data_converter": converter})["data_converter"] is converter


# --- JOURNEYS_ENCRYPTION_KEYS -----------------------------------------------------------------


def test_keys_read_from_the_environment_as_a_list_or_a_json_object(
    monkeypatch: pytest.MonkeyPatch,
):
    monkeypatch.setenv("JOURNEYS_ENCRYPTION_KEYS", f"k1:{b64(KEY_1)}, k2:{b64(KEY_2)}")
    assert {k: v.get_secret_value() for k, v in Settings().encryption_keys.items()} == {
        "k1": KEY_1,
        "k2": KEY_2,
    }
    monkeypatch.setenv("JOURNEYS_ENCRYPTION_KEYS", json.dumps({"a": b64(KEY_2), "b": b64(KEY_1)}))
    assert list(Settings().encryption_keys) == ["a", "b"]
    monkeypatch.setenv("JOURNEYS_ENCRYPTION_KEYS", "")
    assert Settings().encryption_keys == {}


def test_keys_are_not_shown_when_settings_are_printed():
    settings = Settings(encryption_keys=f"k1:{b64(KEY_1)}")
    assert b64(KEY_1) not in repr(settings) and repr(KEY_1) not in repr(settings)


@pytest.mark.parametrize(
    ("value", "why"),
    [
        (f"k1:{b64(os.urandom(16))}", "16 bytes"),
        ("k1:not base64!", "not base64"),
        (f"k1:{b64(KEY_1)},k1:{b64(KEY_2)}", "appears twice"),
        (f'{{"k1": "{b64(KEY_1)}", "k1": "{b64(KEY_2)}"}}', "appears twice"),
        (b64(KEY_1), "id:base64key"),
        (f"bad/id:{b64(KEY_1)}", "key id"),
        ('{"k1": ', "JSON object"),
        (f'{{"k1": {list(KEY_1)}}}', "base64 string"),
    ],
)
def test_bad_keys_are_refused_naming_the_setting(value: str, why: str):
    with pytest.raises(ValidationError) as refused:
        Settings(encryption_keys=value)
    message = str(refused.value)
    assert "JOURNEYS_ENCRYPTION_KEYS" in message and why in message


async def test_payloads_of_a_contacts_run_are_sealed_with_its_data_key(tmp_path: Path):
    settings = Settings(encryption_keys=f"k1:{b64(KEY_1)}")
    db = Database(f"sqlite:///{tmp_path / 'journeys.db'}")
    codec = encryption_codec(settings, keyring(db, settings))
    assert codec is not None
    run = WorkflowSerializationContext(namespace="default", workflow_id="journey/cart/abc123/x")
    other = WorkflowSerializationContext(namespace="default", workflow_id="reports/daily")

    bound = codec.with_context(run)
    assert bound.contact == "abc123" and codec.contact is None
    assert bound.with_context(run) is bound
    assert codec.with_context(other) is codec  # not a journey run: the deployment's key
    [sealed] = await bound.encode([Payload(data=b"ada@example.com")])
    [plain] = await codec.encode([Payload(data=b"ada@example.com")])
    assert sealed.metadata[KEY_ID].startswith(CONTACT_KEY_PREFIX.encode())
    assert plain.metadata[KEY_ID] == b"k1"
    # Decoding needs no context: the key id says whose key it is.
    assert [p.data for p in await codec.decode([sealed, plain])] == [b"ada@example.com"] * 2

    assert codec.contact_keys is not None and codec.contact_keys.destroy("abc123")
    with pytest.raises(PayloadDecryptionError, match="erased and its key destroyed"):
        await codec.decode([sealed])
    assert (await codec.decode([plain]))[0].data == b"ada@example.com"
    # Without a keyring the codec ignores the context.
    keyless = encryption_codec(settings)
    assert keyless is not None and keyless.with_context(run) is keyless
    db.dispose()
