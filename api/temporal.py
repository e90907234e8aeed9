"""The API's Temporal client: connected in the background, so the API answers while it is down."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from datetime import timedelta

from temporalio.client import Client

from temporal_journeys.journeys.settings import Settings
from temporal_journeys.workflows.codec import ContactKeys, data_converter

log = logging.getLogger("journeys.api.temporal")


class TemporalConnection:
    def __init__(
        self,
        settings: Settings,
        client: Client | None = None,
        *,
        contact_keys: ContactKeys | None = None,
    ) -> None:
        self._settings = settings
        self._contact_keys = contact_keys
        self.client = client
        self._task: asyncio.Task[None] | None = None
        self._on_connect: list[Callable[[], None]] = []

    def when_connected(self, callback: Callable[[], None]) -> None:
        """Call ``callback`` once the client is there: now if it is, else on connecting."""
        if self.client is not None:
            callback()
        else:
            self._on_connect.append(callback)

    def start(self) -> None:
        if self.client is None and self._task is None:
            self._task = asyncio.create_task(self._connect_until_done())

    async def _connect_until_done(self) -> None:
        delay = 0.5
        while self.client is None:
            try:
                self.client = await Client.connect(
                    self._settings.temporal_address,
                    namespace=self._settings.temporal_namespace,
                    data_converter=data_converter(self._settings, self._contact_keys),
                )
            except Exception as exc:  # any failure to connect: try again later
                log.warning(
                    "Temporal at %s not reachable: %s", self._settings.temporal_address, exc
                )
                await asyncio.sleep(delay)
                delay = min(delay * 2, 10)
        callbacks, self._on_connect = self._on_connect, []
        for callback in callbacks:
            callback()

    async def healthy(self) -> bool:
        if self.client is None:
            return False
        try:
            return await self.client.service_client.check_health(timeout=timedelta(seconds=2))
        except Exception:
            return False

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
