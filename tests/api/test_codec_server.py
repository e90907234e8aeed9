"""The codec server: the Temporal UI and CLI send payloads to ``/codec/decode`` (and
``/codec/encode``) in Temporal's codec-server format and get them back through the payload
codec, with an admin key or the codec token only; the UI's origin may call it from a browser."""

from __future__ import annotations

import base64
import json
import os
from collections.abc import AsyncIterator

import httpx
import pytest_asyncio
from fastapi import FastAPI
from temporalio.api.common.v1 import Payload

from temporal_journeys.api.app import create_app
from temporal_journeys.journeys.settings import Settings
from temporal_journeys.store import keys
from temporal_journeys.store.db import Database
from temporal_journeys.workflows.codec import ENCODING, KEY_ID, EncryptionCodec
from tests.support.api import Api

KEY = os.urandom(32)
TOKEN = "codec-token-for-the-ui-" + base64.b16encode(os.urandom(8)).decode()
UI = "http://127.0.0.1:8233"
EMAIL = "ada.codec@example.org"


def encrypted_settings(postgres_url: str, **overrides: object) -> Settings:
    return Settings(
        database_url=postgres_url,
        encryption_keys={"k1": KEY},
        codec_token=TOKEN,
        codec_cors_origins=[UI],
        **overrides,  # type: ignore[arg-type]
    )


@pytest_asyncio.fixture
async def codec_api(engine_db: Database, postgres_url: str) -> AsyncIterator[Api]:
    app = create_app(encrypted_settings(postgres_url), db=engine_db, relay=False)
    async with _api(app, engine_db) as api:
        yield api


class _api:
    """The app over ASGI with fresh admin and track keys."""

    def __init__(self, app: FastAPI, db: Database) -> None:
        self.app = app
        with db.transaction() as session:
            self.admin = {"Authorization": "Bearer " + keys.create(session, "ops", "admin")}
            self.track = {"Authorization": "Bearer " + keys.create(session, "app", "track")}
        self.http = httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://api.test"
        )

    async def __aenter__(self) -> Api:
        return Api(self.app, self.http, self.admin, self.track)

    async def __aexit__(self, *_: object) -> None:
        await self.http.aclose()


def plain_payload(value: object) -> Payload:
    return Payload(metadata={"encoding": b"json/plain"}, data=json.dumps(value).encode())


def wire(*payloads: Payload) -> dict:
    """The JSON the Temporal UI and CLI send: protobuf's JSON form of ``Payloads``."""
    return {
        "payloads": [
            {
                "metadata": {k: base64.b64encode(v).decode() for k, v in p.metadata.items()},
                "data": base64.b64encode(p.data).decode(),
            }
            for p in payloads
        ]
    }


def unwire(body: dict) -> list[Payload]:
    return [
        Payload(
            metadata={k: base64.b64decode(v) for k, v in p.get("metadata", {}).items()},
            data=base64.b64decode(p.get("data", "")),
        )
        for p in body["payloads"]
    ]


async def sealed(value: object) -> Payload:
    [payload] = await EncryptionCodec({"k1": KEY}).encode([plain_payload(value)])
    return payload


async def test_decode_gives_the_plaintext_with_an_admin_key_and_with_the_codec_token(
    codec_api: Api,
):
    secret = await sealed({"email": EMAIL})
    assert EMAIL.encode() not in secret.SerializeToString()
    ui = {"Authorization": f"Bearer {TOKEN}", "X-Namespace": "default"}

    answers = [
        await codec_api.http.post("/codec/decode", json=wire(secret), headers=headers)
        for headers in (codec_api.admin, ui)
    ]

    for answer in answers:
        assert answer.status_code == 200, answer.text
        [payload] = unwire(answer.json())
        assert payload.metadata["encoding"] == b"json/plain"
        assert json.loads(payload.data) == {"email": EMAIL}


async def test_without_an_admin_key_or_the_token_the_codec_answers_401_or_403(codec_api: Api):
    body = wire(await sealed({"email": EMAIL}))

    missing = await codec_api.http.post("/codec/decode", json=body)
    wrong = await codec_api.http.post(
        "/codec/decode", json=body, headers={"Authorization": "Bearer not-the-token"}
    )
    basic = await codec_api.http.post(
        "/codec/encode", json=body, headers={"Authorization": f"Basic {TOKEN}"}
    )
    track = await codec_api.http.post("/codec/decode", json=body, headers=codec_api.track)

    for answer in (missing, wrong, basic):
        assert answer.status_code == 401, answer.text
        assert "Authorization" in answer.json()["detail"]
        assert answer.headers["WWW-Authenticate"] == "Bearer"
        assert EMAIL not in answer.text
    assert track.status_code == 403 and "track key" in track.json()["detail"]


async def test_encode_then_decode_gives_back_the_payloads_and_plain_ones_pass_through(
    codec_api: Api,
):
    originals = [plain_payload({"email": EMAIL}), plain_payload("x" * 5000), Payload()]

    encoded = await codec_api.http.post(
        "/codec/encode", json=wire(*originals), headers=codec_api.admin
    )
    assert encoded.status_code == 200, encoded.text
    sealed_payloads = unwire(encoded.json())
    assert [p.metadata["encoding"] for p in sealed_payloads] == [ENCODING] * 3
    assert {p.metadata[KEY_ID] for p in sealed_payloads} == {b"k1"}
    assert EMAIL not in encoded.text
    decoded = await codec_api.http.post(
        "/codec/decode", json=encoded.json(), headers=codec_api.admin
    )
    assert decoded.status_code == 200, decoded.text
    assert unwire(decoded.json()) == originals
    # Payloads written before encryption was on come back as they are.
    plain = await codec_api.http.post(
        "/codec/decode", json=wire(originals[0]), headers=codec_api.admin
    )
    assert unwire(plain.json()) == [originals[0]]


async def test_bad_payloads_are_4xx_naming_the_payload_at_fault(codec_api: Api):
    good = await sealed({"email": EMAIL})
    altered = Payload(metadata=good.metadata, data=good.data[:-1] + bytes([good.data[-1] ^ 1]))
    cases = {
        "altered": wire(good, altered),
        "not base64": {"payloads": [{"metadata": {}, "data": "%%%"}]},
        "metadata not base64": {"payloads": [{"metadata": {"encoding": "%%"}, "data": ""}]},
        "no payloads": {"things": []},
    }

    answers = {
        name: await codec_api.http.post("/codec/decode", json=body, headers=codec_api.admin)
        for name, body in cases.items()
    }

    assert {name: a.status_code for name, a in answers.items()} == dict.fromkeys(cases, 422)
    assert answers["altered"].json()["detail"][0]["path"] == "$.payloads[1]"
    assert "does not authenticate" in answers["altered"].json()["detail"][0]["message"]
    assert answers["not base64"].json()["detail"][0]["path"] == "$.payloads[0].data"
    assert answers["metadata not base64"].json()["detail"][0]["path"] == "$.payloads[0].metadata"
    assert "'encoding'" in answers["metadata not base64"].json()["detail"][0]["message"]
    assert answers["no payloads"].json()["detail"][0]["path"] == "$.payloads"
    other = await codec_api.http.post(
        "/codec/decode", json=wire(good), headers={**codec_api.admin, "X-Namespace": "billing"}
    )
    assert other.status_code == 422 and "X-Namespace" in other.json()["detail"]


async def test_the_ui_origin_passes_the_preflight_and_others_do_not(codec_api: Api):
    asked = {
        "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "authorization,content-type,x-namespace",
    }

    preflight = await codec_api.http.options("/codec/decode", headers={"Origin": UI, **asked})
    stranger = await codec_api.http.options(
        "/codec/decode", headers={"Origin": "https://evil.example", **asked}
    )
    call = await codec_api.http.post(
        "/codec/decode",
        json=wire(await sealed(1)),
        headers={"Origin": UI, "Authorization": f"Bearer {TOKEN}", "X-Namespace": "default"},
    )
    refused = await codec_api.http.post("/codec/decode", json=wire(), headers={"Origin": UI})
    elsewhere = await codec_api.http.get("/healthz", headers={"Origin": UI})

    assert preflight.status_code == 200
    assert preflight.headers["access-control-allow-origin"] == UI
    assert preflight.headers["access-control-allow-credentials"] == "true"
    allowed = preflight.headers["access-control-allow-headers"].lower()
    assert {"authorization", "content-type", "x-namespace"} <= set(allowed.split(", "))
    assert "POST" in preflight.headers["access-control-allow-methods"]
    assert stranger.status_code == 400
    assert "access-control-allow-origin" not in stranger.headers
    assert call.status_code == 200 and call.headers["access-control-allow-origin"] == UI
    # A 401 the UI can read and show, rather than an opaque CORS failure.
    assert refused.status_code == 401 and refused.headers["access-control-allow-origin"] == UI
    # Every other route stays as it was: no CORS headers.
    assert elsewhere.status_code == 200
    assert "access-control-allow-origin" not in elsewhere.headers


async def test_with_encryption_off_the_codec_is_404_saying_why(
    engine_db: Database, postgres_url: str
):
    settings = encrypted_settings(postgres_url).model_copy(update={"encryption_keys": {}})
    async with _api(create_app(settings, db=engine_db, relay=False), engine_db) as api:
        missing = await api.http.post("/codec/decode", json=wire())
        answer = await api.http.post("/codec/decode", json=wire(), headers=api.admin)

    assert missing.status_code == 401
    assert answer.status_code == 404
    assert "JOURNEYS_ENCRYPTION_KEYS is not set" in answer.json()["detail"]
