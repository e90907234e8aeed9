"""Run a journeys worker from settings: ``python worker.py`` or ``journeys worker``."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from typing import Any

from temporalio.client import Client
from temporalio.worker import Worker

from temporal_journeys.api.services import retention
from temporal_journeys.journeys.settings import Settings, get_settings
from temporal_journeys.plugin import JourneysPlugin


def build_worker(
    client: Client, settings: Settings, *, workflows: Sequence[type] = (), **options: Any
) -> Worker:
    """The worker with the options below; ``workflows`` adds to the plugin's (benchmarks)."""
    return Worker(
        client,
        task_queue=settings.task_queue,
        workflows=workflows,
        max_cached_workflows=settings.max_cached_workflows,
        **options,
    )


async def run_worker(
    settings: Settings,
    stop: asyncio.Event | None = None,
    *,
    workflows: Sequence[type] = (),
) -> None:
    plugin = JourneysPlugin(settings)
    client = await Client.connect(
        settings.temporal_address, namespace=settings.temporal_namespace, plugins=[plugin]
    )
    # The daily retention schedule, in line with this worker's settings (it runs here).
    await retention.sync_logged(client, settings)
    await retention.prepare_months(plugin.db)
    worker = build_worker(client, settings, workflows=workflows)
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
