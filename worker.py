"""Run a journeys worker from settings: ``python worker.py`` or ``journeys worker``."""

from __future__ import annotations

import asyncio
import logging

from temporalio.client import Client
from temporalio.worker import Worker

from journeys.plugin import JourneysPlugin
from journeys.settings import Settings, get_settings


async def run_worker(settings: Settings, stop: asyncio.Event | None = None) -> None:
    plugin = JourneysPlugin(settings)
    client = await Client.connect(
        settings.temporal_address, namespace=settings.temporal_namespace, plugins=[plugin]
    )
    worker = Worker(
        client,
        task_queue=settings.task_queue,
        max_cached_workflows=settings.max_cached_workflows,
    )
    try:
        if stop is None:
            await worker.run()
        else:
            async with worker:
                await stop.wait()
    finally:
        plugin.db.dispose()


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    asyncio.run(run_worker(get_settings()))


if __name__ == "__main__":
    main()
