"""The API as tests talk to it: the app over ASGI with an admin key and a track key."""

from __future__ import annotations

from dataclasses import dataclass

import httpx
from fastapi import FastAPI


@dataclass
class Api:
    app: FastAPI
    http: httpx.AsyncClient
    admin: dict[str, str]
    track: dict[str, str]

    async def relay(self) -> int:
        """Route everything queued, as the background relay would."""
        total = 0
        while delivered := await self.app.state.relay.deliver_once():
            total += delivered
        return total
