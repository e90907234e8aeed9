"""The real worker (``worker.build_worker``, JourneysPlugin, console provider) plus the
benchmark's minimal reference workflow, configured from ``JOURNEYS_*`` variables.

Prints ``ready`` once it polls, and stops cleanly on SIGTERM."""

from __future__ import annotations

import asyncio
import logging
import signal

from temporalio.client import Client
from temporalio.worker.workflow_sandbox import SandboxedWorkflowRunner, SandboxRestrictions

from bench.reference import MinimalReference, MinimalWaiter
from temporal_journeys.journeys.settings import get_settings
from temporal_journeys.plugin import JourneysPlugin
from temporal_journeys.worker import build_worker


async def main() -> None:
    settings = get_settings()
    plugin = JourneysPlugin(settings)
    client = await Client.connect(settings.temporal_address, plugins=[plugin])
    # Passed through like the journey's own modules, so neither side re-imports per run. With
    # JOURNEYS_WORKFLOW_SANDBOX=false the plugin replaces it: both sides run unsandboxed.
    runner = SandboxedWorkflowRunner(
        restrictions=SandboxRestrictions.default.with_passthrough_modules("bench")
    )
    worker = build_worker(
        client, settings, workflows=[MinimalReference, MinimalWaiter], workflow_runner=runner
    )
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    async with worker:
        print("ready", flush=True)
        await stop.wait()
    plugin.db.dispose()


if __name__ == "__main__":
    logging.basicConfig(level=logging.WARNING)
    asyncio.run(main())
