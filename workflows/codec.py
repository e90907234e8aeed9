"""The payload codec: every payload the worker or a client sends to Temporal is encrypted.

AES-256-GCM under the newest of ``JOURNEYS_ENCRYPTION_KEYS``; the key id travels in the
payload's metadata, so after a rotation older payloads still decode with the key they name.
Large payloads are compressed first (ciphertext does not compress). Payloads that are not
encrypted pass through decoding unchanged: histories recorded before encryption was turned on
still replay, and workers can be switched over one at a time.

With a ``ContactKeys`` keyring (the store's, wherever a database is at hand), the payloads of a
contact's runs are sealed with that contact's own data key instead: the codec reads the contact
out of the workflow id Temporal gives it as serialization context. Erasing the contact destroys
its data key, and with it every copy of its data in Temporal's histories (crypto-shredding).
"""

from __future__ import annotations

import copy
import dataclasses
import hashlib
import hmac
import os
import zlib
from collections.abc import Mapping, Sequence
from typing import Protocol, Self

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from temporalio.api.common.v1 import Payload
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.converter import (
    DataConverter,
    DefaultFailureConverter,
    DefaultFailureConverterWithEncodedAttributes,
    PayloadCodec,
    SerializationContext,
    WithSerializationContext,
)

from temporal_journeys.journeys.settings import ENCRYPTION_KEYS, Settings
from temporal_journeys.workflows.run_ids import parse_workflow_id

ENCODING = b"binary/encrypted"
KEY_ID = "encryption-key-id"
COMPRESSION = "encryption-compression"
ZLIB = b"zlib"
# Below this, zlib's header and the lost entropy cost more than they save.
COMPRESS_ABOVE = 1024
NONCE_BYTES = 12
ID_KEY_LABEL = b"journeys workflow ids"
# A key id that names a contact's data key rather than one of the settings' keys.
CONTACT_KEY_PREFIX = "contact/"


class ContactKeys(Protocol):
    """Per-contact data keys, by the contact as workflow ids show it (its hash)."""

    async def current(self, contact: str) -> tuple[str, bytes]:
        """The contact's data key and its id, made on first use."""
        ...

    async def find(self, key_id: str) -> bytes | None:
        """The data key of that id; None once destroyed."""
        ...

    def destroy(self, contact: str) -> bool:
        """Destroy the contact's data key for good; whether it had one."""
        ...


class PayloadDecryptionError(ValueError):
    """A payload that cannot be decrypted: its key is not configured, or it was altered."""


class EncryptionCodec(PayloadCodec, WithSerializationContext):
    def __init__(
        self,
        keys: Mapping[str, bytes],
        *,
        compress_above: int = COMPRESS_ABOVE,
        id_key: bytes | None = None,
        contact_keys: ContactKeys | None = None,
    ) -> None:
        if not keys:
            raise ValueError(f"{ENCRYPTION_KEYS}: the codec needs at least one key")
        # Travels with the client so that every starter hashes ids exactly when payloads are
        # encrypted (``workflows.starter.run_names``). Workflow ids must not change when keys
        # rotate: rotation appends keys, so without a dedicated key the first one is used.
        self.id_key = id_key or hmac.digest(next(iter(keys.values())), ID_KEY_LABEL, hashlib.sha256)
        self._ciphers = {key_id: AESGCM(key) for key_id, key in keys.items()}
        # Settings keep the order given: the last key is the current one.
        self.current_key_id = list(keys)[-1]
        self._compress_above = compress_above
        self.contact_keys = contact_keys
        # Whose run the payloads belong to, from the serialization context (``with_context``).
        self.contact: str | None = None

    def with_context(self, context: SerializationContext) -> Self:
        """This codec, sealing for the contact whose run ``context`` names (workflows,
        activities, signals, queries, updates all carry the workflow id)."""
        if self.contact_keys is None:
            return self
        contact = _contact_of(getattr(context, "workflow_id", None))
        if contact == self.contact:
            return self
        bound = copy.copy(self)
        bound.contact = contact
        return bound

    async def encode(self, payloads: Sequence[Payload]) -> list[Payload]:
        key_id, cipher = self.current_key_id, self._ciphers[self.current_key_id]
        if self.contact is not None and self.contact_keys is not None:
            data_key_id, data_key = await self.contact_keys.current(self.contact)
            key_id, cipher = CONTACT_KEY_PREFIX + data_key_id, AESGCM(data_key)
        return [self._encrypt(payload, key_id, cipher) for payload in payloads]

    async def decode(self, payloads: Sequence[Payload]) -> list[Payload]:
        return [await self._decrypt(payload) for payload in payloads]

    def _encrypt(self, payload: Payload, key_id: str, cipher: AESGCM) -> Payload:
        # The whole inner payload, its metadata too: even the encoding says nothing outside.
        plain = payload.SerializeToString()
        metadata = {"encoding": ENCODING, KEY_ID: key_id.encode()}
        if len(plain) > self._compress_above:
            plain = zlib.compress(plain)
            metadata[COMPRESSION] = ZLIB
        nonce = os.urandom(NONCE_BYTES)
        sealed = cipher.encrypt(nonce, plain, _bound(metadata))
        return Payload(metadata=metadata, data=nonce + sealed)

    async def _cipher(self, key_id: str) -> AESGCM:
        if key_id.startswith(CONTACT_KEY_PREFIX):
            data_key_id = key_id.removeprefix(CONTACT_KEY_PREFIX)
            found = await self.contact_keys.find(data_key_id) if self.contact_keys else None
            if found is None:
                raise PayloadDecryptionError(
                    f"payload sealed with contact data key {data_key_id!r}, which is not in the "
                    "store: the contact was erased and its key destroyed"
                    + ("" if self.contact_keys else " (or this codec has no database)")
                )
            return AESGCM(found)
        cipher = self._ciphers.get(key_id)
        if cipher is None:
            raise PayloadDecryptionError(
                f"payload encrypted with key id {key_id!r}, which is not in {ENCRYPTION_KEYS} "
                f"(configured: {', '.join(self._ciphers)})"
            )
        return cipher

    async def _decrypt(self, payload: Payload) -> Payload:
        if payload.metadata.get("encoding") != ENCODING:
            return payload
        key_id = payload.metadata.get(KEY_ID, b"").decode(errors="replace")
        cipher = await self._cipher(key_id)
        nonce, sealed = payload.data[:NONCE_BYTES], payload.data[NONCE_BYTES:]
        try:
            plain = cipher.decrypt(nonce, sealed, _bound(payload.metadata))
        except InvalidTag:
            raise PayloadDecryptionError(
                f"payload under key id {key_id!r} does not authenticate: wrong key or altered"
            ) from None
        compression = payload.metadata.get(COMPRESSION)
        if compression == ZLIB:
            plain = zlib.decompress(plain)
        elif compression is not None:
            raise PayloadDecryptionError(f"unknown payload compression {compression!r}")
        return Payload.FromString(plain)


def _contact_of(workflow_id: str | None) -> str | None:
    """The contact part of a journey run's id; None for other workflows (and for none)."""
    if workflow_id is None:
        return None
    try:
        return parse_workflow_id(workflow_id).contact
    except ValueError:
        return None


def _bound(metadata: Mapping[str, bytes]) -> bytes:
    """What the tag authenticates besides the ciphertext: the key id and the compression, so a
    payload cannot be made to decompress, or to name another key, without failing."""
    return metadata[KEY_ID] + b"|" + metadata.get(COMPRESSION, b"")


def encryption_codec(
    settings: Settings, contact_keys: ContactKeys | None = None
) -> EncryptionCodec | None:
    keys = {key_id: key.get_secret_value() for key_id, key in settings.encryption_keys.items()}
    if not keys:
        return None
    id_key = settings.id_hash_key.get_secret_value().encode() if settings.id_hash_key else None
    return EncryptionCodec(keys, id_key=id_key, contact_keys=contact_keys)


def data_converter(settings: Settings, contact_keys: ContactKeys | None = None) -> DataConverter:
    """Pydantic's converter, plus the codec when keys are set. Failure messages and stack
    traces are moved into an encrypted payload too, since they may quote a contact's data."""
    return with_encryption(pydantic_data_converter, settings, contact_keys)


def with_encryption(
    converter: DataConverter, settings: Settings, contact_keys: ContactKeys | None = None
) -> DataConverter:
    """``converter`` with the codec added when keys are set and it has no codec of its own."""
    codec = encryption_codec(settings, contact_keys)
    if codec is None or converter.payload_codec is not None:
        return converter
    failures = converter.failure_converter_class
    if failures is DefaultFailureConverter:
        failures = DefaultFailureConverterWithEncodedAttributes
    return dataclasses.replace(converter, payload_codec=codec, failure_converter_class=failures)
