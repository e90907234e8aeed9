"""Threads of a provider's own for its blocking SDK calls (SendGrid and Twilio).

Not the event loop's default executor: that one is small (cores + 4) and shared with every
database round trip. Here a call has ``settings.provider_concurrency`` threads, as many as the
send activity's slots for the provider, so a send holding a slot finds a thread free; and only
in that thread, immediately before the request goes out, is ``before_call`` run (the message
marked ``sending``), so no message waiting for a thread is taken for one whose call began.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

from temporal_journeys.activities.providers.base import BeforeCall, Receipt


class CallThreads:
    def __init__(self, provider: str, size: int) -> None:
        self._pool = ThreadPoolExecutor(max_workers=size, thread_name_prefix=f"{provider}-call")

    async def call(self, before_call: BeforeCall, request: Callable[[], Receipt]) -> Receipt:
        """``before_call()`` then ``request()``, both in one thread of this pool."""

        def in_thread() -> Receipt:
            before_call()
            return request()

        # Cancelled while still queued (the activity cancelled), the call never starts.
        return await asyncio.get_running_loop().run_in_executor(self._pool, in_thread)
