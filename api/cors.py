"""CORS for the codec server only: the Temporal UI calls it from the browser, on another
origin. Every other route keeps answering without CORS headers, as before."""

from __future__ import annotations

from collections.abc import Sequence

from starlette.middleware.cors import CORSMiddleware
from starlette.types import ASGIApp, Receive, Scope, Send

# What the UI sends: its access token (TEMPORAL_CODEC_PASS_ACCESS_TOKEN), the namespace, JSON.
CODEC_HEADERS = ("Authorization", "Content-Type", "X-Namespace")


class CodecCors:
    def __init__(self, app: ASGIApp, origins: Sequence[str], prefix: str = "/codec") -> None:
        self._app = app
        self._prefix = prefix
        self._cors = CORSMiddleware(
            app,
            allow_origins=list(origins),
            allow_methods=["POST"],
            allow_headers=list(CODEC_HEADERS),
            # TEMPORAL_CODEC_INCLUDE_CREDENTIALS makes the UI send cookies, which browsers
            # allow only with this and an origin named exactly (never `*`).
            allow_credentials=True,
            max_age=600,
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path", "")
        if scope["type"] == "http" and (
            path == self._prefix or path.startswith(self._prefix + "/")
        ):
            await self._cors(scope, receive, send)
        else:
            await self._app(scope, receive, send)
