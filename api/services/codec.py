"""The codec server: Temporal's codec-server protocol over the payload codec, for the Temporal
UI and CLI, which hold no keys and send payloads here to be decoded (or encoded).

The wire format is the JSON form of ``temporal.api.common.v1.Payloads``: ``{"payloads":
[{"metadata": {name: base64}, "data": base64}]}``, the same in both directions."""

from __future__ import annotations

import base64
import binascii
import hmac
from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field, field_validator
from sqlalchemy.orm import Session
from temporalio.api.common.v1 import Payload

from temporal_journeys.journeys.settings import Settings
from temporal_journeys.store import keys
from temporal_journeys.workflows.codec import EncryptionCodec, PayloadDecryptionError


class Direction(StrEnum):
    ENCODE = "encode"
    DECODE = "decode"


class Access(StrEnum):
    GRANTED = "granted"
    UNKNOWN = "unknown"  # no such key or token: 401
    NOT_ADMIN = "not admin"  # a valid track key: 403


class WirePayload(BaseModel):
    # Protobuf's JSON form omits empty fields, and newer Temporal versions add fields (such as
    # external payload details) that a codec has no use for: both are accepted.
    model_config = ConfigDict(extra="ignore")

    metadata: dict[str, str] = Field(default_factory=dict)
    data: str = ""

    @field_validator("metadata")
    @classmethod
    def _metadata_is_base64(cls, value: dict[str, str]) -> dict[str, str]:
        for name, encoded in value.items():
            if _from_base64(encoded) is None:
                raise ValueError(f"metadata value {name!r} is not base64")
        return value

    @field_validator("data")
    @classmethod
    def _data_is_base64(cls, value: str) -> str:
        if _from_base64(value) is None:
            raise ValueError("not base64")
        return value

    def to_proto(self) -> Payload:
        return Payload(
            metadata={name: _decoded(value) for name, value in self.metadata.items()},
            data=_decoded(self.data),
        )

    @classmethod
    def of(cls, payload: Payload) -> WirePayload:
        return cls(
            metadata={name: _b64(value) for name, value in payload.metadata.items()},
            data=_b64(payload.data),
        )


class WirePayloads(BaseModel):
    model_config = ConfigDict(extra="ignore")

    payloads: list[WirePayload]


class PayloadRefused(ValueError):
    """One payload of a request could not be decoded: which one, and why."""

    def __init__(self, index: int, reason: str) -> None:
        super().__init__(reason)
        self.path = f"$.payloads[{index}]"


def access(session: Session, settings: Settings, bearer: str) -> Access:
    """Admin API keys and the codec token open the codec server: what it decodes is every
    contact's personal data."""
    token = settings.codec_token.get_secret_value() if settings.codec_token else ""
    if token and hmac.compare_digest(bearer.encode(), token.encode()):
        return Access.GRANTED
    scope = keys.scope_of(session, bearer)
    if scope is None:
        return Access.UNKNOWN
    return Access.GRANTED if scope == "admin" else Access.NOT_ADMIN


async def transcode(
    codec: EncryptionCodec, direction: Direction, body: WirePayloads
) -> WirePayloads:
    payloads = [wire.to_proto() for wire in body.payloads]
    if direction is Direction.ENCODE:
        return WirePayloads(payloads=[WirePayload.of(p) for p in await codec.encode(payloads)])
    decoded = []
    # One at a time, so that a refusal names the payload at fault.
    for index, payload in enumerate(payloads):
        try:
            [plain] = await codec.decode([payload])
        except PayloadDecryptionError as exc:
            raise PayloadRefused(index, str(exc)) from None
        decoded.append(WirePayload.of(plain))
    return WirePayloads(payloads=decoded)


def _b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode()


def _from_base64(text: str) -> bytes | None:
    """Standard base64; protobuf's JSON form may also write URL-safe and unpadded."""
    padded = text + "=" * (-len(text) % 4)
    for alphabet in (b"+/", b"-_"):
        try:
            return base64.b64decode(padded, altchars=alphabet, validate=True)
        except (binascii.Error, ValueError):
            continue
    return None


def _decoded(text: str) -> bytes:
    raw = _from_base64(text)
    if raw is None:  # validated on the way in
        raise ValueError("not base64")
    return raw
