"""The codec server for the Temporal UI and CLI: ``POST /codec/encode`` and ``/codec/decode``."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Header, HTTPException
from fastapi.responses import JSONResponse

from temporal_journeys.api.deps import OptionalCodecDep, SessionDep, SettingsDep
from temporal_journeys.api.services import codec as service
from temporal_journeys.workflows.codec import EncryptionCodec

router = APIRouter(prefix="/codec", tags=["codec"])

WHO = "an admin API key or JOURNEYS_CODEC_TOKEN (Authorization: Bearer <key>)"


def _unauthorized(message: str) -> HTTPException:
    return HTTPException(401, message, headers={"WWW-Authenticate": "Bearer"})


def _allowed(
    session: SessionDep,
    settings: SettingsDep,
    authorization: Annotated[str | None, Header()] = None,
) -> None:
    scheme, _, value = (authorization or "").partition(" ")
    if scheme.lower() != "bearer" or not value.strip():
        raise _unauthorized(f"the codec server needs {WHO} in the Authorization header")
    granted = service.access(session, settings, value.strip())
    if granted is service.Access.UNKNOWN:
        raise _unauthorized(f"the Authorization header holds neither {WHO}")
    if granted is service.Access.NOT_ADMIN:
        raise HTTPException(
            403,
            "the Authorization header holds a track key; the codec needs "
            "an admin key or JOURNEYS_CODEC_TOKEN",
        )


def _codec(
    codec: OptionalCodecDep,
    settings: SettingsDep,
    x_namespace: Annotated[str | None, Header()] = None,
) -> EncryptionCodec:
    # 404, not 409: with no keys this API has no codec server at all (nothing a caller could
    # change in its request would make one appear), and the Temporal UI then shows payloads
    # as stored, which are plain.
    if codec is None:
        raise HTTPException(
            404,
            "the codec server is off: JOURNEYS_ENCRYPTION_KEYS is not set, so payloads are "
            "not encrypted and need no decoding",
        )
    # The UI and CLI name the namespace the payloads come from; our keys are for one only.
    if x_namespace is not None and x_namespace != settings.temporal_namespace:
        raise HTTPException(
            422,
            f"the X-Namespace header names {x_namespace!r}; this codec serves "
            f"{settings.temporal_namespace!r}",
        )
    return codec


CodecDep = Annotated[EncryptionCodec, Depends(_codec)]
AccessRequired = Depends(_allowed)


async def _answer(
    codec: EncryptionCodec, direction: service.Direction, body: service.WirePayloads
) -> service.WirePayloads | JSONResponse:
    try:
        return await service.transcode(codec, direction, body)
    except service.PayloadRefused as exc:
        return JSONResponse(
            status_code=422,
            content={"detail": [{"path": exc.path, "location": "body", "message": str(exc)}]},
        )


@router.post("/decode", dependencies=[AccessRequired], response_model=service.WirePayloads)
async def decode(
    body: service.WirePayloads, codec: CodecDep
) -> service.WirePayloads | JSONResponse:
    """Decrypt payloads as the Temporal UI and CLI send them; plain payloads come back as they
    are."""
    return await _answer(codec, service.Direction.DECODE, body)


@router.post("/encode", dependencies=[AccessRequired], response_model=service.WirePayloads)
async def encode(
    body: service.WirePayloads, codec: CodecDep
) -> service.WirePayloads | JSONResponse:
    """Encrypt payloads under the current key, for inputs and signals sent from the UI or CLI."""
    return await _answer(codec, service.Direction.ENCODE, body)
