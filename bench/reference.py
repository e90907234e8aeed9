"""Hand-written minimal Temporal workflows that the benchmarks compare journeys against."""

from __future__ import annotations

import contextlib
import hashlib
from datetime import timedelta

from temporalio import activity, workflow

with workflow.unsafe.imports_passed_through():
    from temporal_journeys.workflows.activity_types import (
        LOAD_CONDITION_DATA,
        SEND_MESSAGE,
        ConditionData,
        LoadConditionDataInput,
        SendMessageInput,
        SendMessageResult,
    )
    from temporal_journeys.workflows.options import DEFAULT as OPTIONS


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


@workflow.defn(name="MinimalReference")
class MinimalReference:
    """The throughput reference journey by hand: send, 1 s timer, branch on the contact, send.

    It calls the journeys' own send and condition-data activities, so the ratio measures the
    interpreter and its bookkeeping, not the work every send does anyway."""

    @workflow.run
    async def run(self, contact_id: str) -> str:
        await self._send(contact_id, "welcome")
        await workflow.sleep(timedelta(seconds=1))
        data = await workflow.execute_local_activity(
            LOAD_CONDITION_DATA,
            LoadConditionDataInput(contact_id=contact_id, now=workflow.now()),
            result_type=ConditionData,
            start_to_close_timeout=OPTIONS.bookkeeping_timeout,
            retry_policy=OPTIONS.retry,
        )
        step = "pro-tips" if data.contact.traits.get("plan") == "pro" else "tips"
        await self._send(contact_id, step)
        return step

    async def _send(self, contact_id: str, step_id: str) -> None:
        key = f"{workflow.info().workflow_id}/{step_id}"
        await workflow.execute_activity(
            SEND_MESSAGE,
            SendMessageInput(
                idempotency_key=key,
                message_id="msg_" + hashlib.sha256(key.encode()).hexdigest()[:24],
                contact_id=contact_id,
                journey_key="minimal",
                version=1,
                step_id=step_id,
                workflow_id=workflow.info().workflow_id,
                channel="email",
                template="bench",
                now=workflow.now(),
            ),
            result_type=SendMessageResult,
            # The journey's own options, so both sides heartbeat and retry alike.
            start_to_close_timeout=OPTIONS.send_timeout,
            heartbeat_timeout=OPTIONS.send_heartbeat,
            retry_policy=OPTIONS.retry,
        )


@workflow.defn(name="MinimalWaiter")
class MinimalWaiter:
    """The scale reference by hand: wait 30 days unless a signal converts the contact first."""

    def __init__(self) -> None:
        self.converted = False

    @workflow.signal
    def convert(self) -> None:
        self.converted = True

    @workflow.run
    async def run(self) -> bool:
        with contextlib.suppress(TimeoutError):
            await workflow.wait_condition(lambda: self.converted, timeout=timedelta(days=30))
        return self.converted
