"""ASGI middleware: cap request bodies and inflate gzip ones (Segment libraries gzip batches)."""

from __future__ import annotations

import json
import zlib
from typing import Any

Scope = dict[str, Any]


class BodyLimit:
    def __init__(self, app: Any, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] != "http" or scope["method"] in ("GET", "HEAD", "OPTIONS", "DELETE"):
            await self.app(scope, receive, send)
            return
        headers = dict(scope["headers"])
        declared = headers.get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_bytes:
            await _refuse(send, 413, f"request body over {self.max_bytes} bytes")
            return
        body = b""
        more = True
        while more:
            message = await receive()
            body += message.get("body", b"")
            more = message.get("more_body", False)
            if len(body) > self.max_bytes:
                await _refuse(send, 413, f"request body over {self.max_bytes} bytes")
                return
        if headers.get(b"content-encoding", b"").lower() == b"gzip":
            inflater = zlib.decompressobj(wbits=31)
            try:
                body = inflater.decompress(body, self.max_bytes + 1)
            except zlib.error:
                await _refuse(send, 400, "the body is not valid gzip")
                return
            if len(body) > self.max_bytes or inflater.unconsumed_tail:
                await _refuse(send, 413, f"inflated request body over {self.max_bytes} bytes")
                return
            scope = {
                **scope,
                "headers": [
                    (k, v)
                    for k, v in scope["headers"]
                    if k not in (b"content-encoding", b"content-length")
                ]
                + [(b"content-length", str(len(body)).encode())],
            }
        sent = False

        async def replay() -> dict[str, Any]:
            nonlocal sent
            if sent:
                return await receive()
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}

        await self.app(scope, replay, send)


async def _refuse(send: Any, status: int, detail: str) -> None:
    payload = json.dumps({"detail": detail}).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(payload)).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": payload})
