"""Prepared request bodies posted over keep-alive HTTP/1.1 connections, at as little client CPU
as can be: the bench's clients share the 2 cores with the server they measure, and what they
spend is not what is measured (httpx spent a third of the API's own CPU per event here)."""

from __future__ import annotations

import asyncio
import time

ANSWER_SECONDS = 120  # per request: a bench that stalls fails instead of hanging


class RefusedError(Exception):
    """The server answered with a status outside 2xx."""


def _content_length(head: bytes) -> int:
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            return int(value)
    return 0


async def _post_each(host: str, port: int, request: bytes, queue: asyncio.Queue[bytes]) -> None:
    reader, writer = await asyncio.open_connection(host, port)
    try:
        while not queue.empty():
            body = queue.get_nowait()
            writer.write(request + b"Content-Length: %d\r\n\r\n" % len(body) + body)
            async with asyncio.timeout(ANSWER_SECONDS):
                head = await reader.readuntil(b"\r\n\r\n")
                answer = await reader.readexactly(_content_length(head))
            status_line = head.split(b"\r\n", 1)[0].decode("latin-1")
            if not status_line.split(" ")[1].startswith("2"):
                raise RefusedError(f"{status_line}: {answer[:500].decode(errors='replace')}")
    finally:
        writer.close()
        await writer.wait_closed()


async def post_all(url: str, path: str, key: str, bodies: list[bytes], concurrency: int) -> float:
    """POST every body (JSON) to ``path`` from ``concurrency`` connections, each taking the
    next body once answered; seconds taken. Raises on any answer outside 2xx."""
    host, port = url.removeprefix("http://").rstrip("/").split(":")
    request = (
        f"POST {path} HTTP/1.1\r\nHost: {host}:{port}\r\nAuthorization: Bearer {key}\r\n"
        "Content-Type: application/json\r\n"
    ).encode()
    queue: asyncio.Queue[bytes] = asyncio.Queue()
    for body in bodies:
        queue.put_nowait(body)
    started = time.perf_counter()
    await asyncio.gather(*(_post_each(host, int(port), request, queue) for _ in range(concurrency)))
    return time.perf_counter() - started
