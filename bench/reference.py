"""Hand-written minimal Temporal workflows that the benchmarks compare journeys against."""

from __future__ import annotations

from datetime import timedelta

from temporalio import activity, workflow


@activity.defn(name="bench.send")
async def send(template: str) -> str:
    return template


@workflow.defn(name="MinimalAbandonedCart")
class MinimalAbandonedCart:
    """The abandoned cart with nothing but its timers and sends: the floor for history size."""

    def __init__(self) -> None:
        self.opened = False

    @workflow.signal
    def open(self) -> None:
        self.opened = True

    @workflow.run
    async def run(self) -> None:
        timeout = timedelta(seconds=30)
        await workflow.sleep(timedelta(hours=1))
        await workflow.execute_activity(send, "reminder", start_to_close_timeout=timeout)
        try:
            await workflow.wait_condition(lambda: self.opened, timeout=timedelta(days=1))
            return
        except TimeoutError:
            pass
        await workflow.execute_activity(send, "discount", start_to_close_timeout=timeout)
        await workflow.sleep(timedelta(days=3))
        await workflow.execute_activity(send, "last-chance", start_to_close_timeout=timeout)
