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
            try:
                body = inflate(body, self.max_bytes)
            except zlib.error:
                await _refuse(send, 400, "Content-Encoding: the body is not valid gzip")
                return
            except OverflowError:
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


def inflate(body: bytes, max_bytes: int) -> bytes:
    """Every member of a gzip body (a concatenation of gzip streams is one gzip file, and some
    clients write one member per flush), inflated; never more than ``max_bytes`` of output is
    produced, so a bomb costs no more than the limit. Raises ``zlib.error`` for bytes that are
    not gzip or end mid-member, ``OverflowError`` past the limit."""
    parts: list[bytes] = []
    size = 0
    rest = body
    while rest:
        inflater = zlib.decompressobj(wbits=31)
        part = inflater.decompress(rest, max_bytes + 1 - size)
        size += len(part)
        if size > max_bytes or inflater.unconsumed_tail:
            raise OverflowError(max_bytes)
        if not inflater.eof:
            raise zlib.error("the last gzip member is cut short")
        parts.append(part)
        rest = inflater.unused_data
    return b"".join(parts)


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
