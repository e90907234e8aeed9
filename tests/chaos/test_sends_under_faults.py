"""Sends under faults: every message reaches the provider exactly once.

The whole stack runs in real processes (``tests/support/stack.py``): a Temporal dev server, the
API under uvicorn, ``journeys worker`` subprocesses, and the fake SendGrid/Twilio server that
posts a signed delivery webhook back to the API for every message it takes. That webhook is what
confirms a message whose outcome the worker could not know (docs/channels.md, "Exactly once"),
with ``resend_unconfirmed_after_seconds`` set: a message the provider never took is sent again
after that window, one it took is not.

1. The worker is SIGKILLed three times while sends are in flight (a new one started each time).
   A send attempt cut off by the kill is retried when its start-to-close timeout (60 s,
   ``workflows/options.py``) ends, which sets the floor of this test's running time.
2. The fake answers about 30% of the SendGrid and Twilio requests with 429, 500, 502, 503 or an
   answer slower than the client's timeout, some of them after taking the message.

Afterwards every run has completed and the fake took each message row's message exactly once.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import select
from temporalio.client import Client, WorkflowExecutionStatus

from journeys.validation import parse_journey
from store import contacts as contacts_store
from store import journeys as journeys_store
from store import templates as templates_store
from store.db import Database
from store.models import Enrollment, Message
from tests.support.fake_providers import FAULT_KINDS, Faults
from tests.support.stack import Stack, running_stack

KILL_CONTACTS = 200
# Each worker is killed once the fake has taken this many emails since it started: a few
# seconds apart, so the 60 s timeouts of the attempts they cut off run side by side.
KILL_AFTER = (15, 40, 25)
FAULT_CONTACTS = 100
RUNS_BOUND = 150.0  # seconds every run gets to complete, from the moment enrolment began

TEMPLATES: dict[str, dict[str, Any]] = {
    "chaos-hello": {"channel": "email", "subject": "Hello {{ contact.first_name }}", "text": "Hi"},
    "chaos-again": {"channel": "email", "subject": "Still there?", "text": "Hi again"},
    "chaos-sms": {"channel": "sms", "text": "Hi {{ contact.first_name }}"},
}


def _journey(key: str, first: str, second: str) -> dict[str, Any]:
    return {
        "key": key,
        "name": key,
        "trigger": {"event": f"{key}.start"},
        "steps": [
            {"id": "hello", "send": {"channel": TEMPLATES[first]["channel"], "template": first}},
            {"id": "pause", "wait": "PT1S"},
            {"id": "again", "send": {"channel": TEMPLATES[second]["channel"], "template": second}},
            {"id": "done", "exit": {}},
        ],
    }


SEND_STEPS = ("hello", "again")


# ------------------------------------------------------------------ helpers


def _publish(db: Database, spec: dict[str, Any]) -> None:
    """Templates and the journey, stored and published directly.

    Not through ``PUT /v1/templates`` and ``/v1/journeys``: the API's ``SessionDep`` commits
    after the response has been sent (FastAPI's default dependency scope), so a real HTTP
    client that publishes right after its PUT can find nothing to publish (404)."""
    with db.transaction() as session:
        for name, template in TEMPLATES.items():
            parts = {k: v for k, v in template.items() if k != "channel"}
            templates_store.put(session, name, template["channel"], **parts)
    with db.transaction() as session:
        journeys_store.publish(session, parse_journey(spec, templates=set(TEMPLATES)))


def _contacts(db: Database, prefix: str, count: int, phones: bool) -> list[str]:
    ids = [f"{prefix}-{n:03d}" for n in range(count)]
    with db.transaction() as session:
        for n, contact_id in enumerate(ids):
            traits: dict[str, Any] = {"email": f"{contact_id}@example.com", "first_name": "Ada"}
            if phones:
                traits["phone"] = f"+1555{n:07d}"
            contacts_store.upsert(session, contact_id, traits)
    return ids


async def _enroll(http: httpx.AsyncClient, stack: Stack, key: str, ids: list[str]) -> list[str]:
    answer = await http.post(
        f"/v1/journeys/{key}/enroll", json={"userIds": ids}, headers=stack.admin
    )
    assert answer.status_code == 200, answer.text
    results = answer.json()
    refused = [r for r in results if r.get("error") or not r.get("workflow_id")]
    assert not refused, f"{len(refused)} contacts not enrolled, e.g. {refused[:3]}"
    return [r["workflow_id"] for r in results]


async def _until(check: Callable[[], bool], what: str, seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"gave up waiting for {what} after {seconds:.0f} s")
        await asyncio.sleep(0.01)


def _rows(db: Database, key: str) -> list[Message]:
    with db.transaction() as session:
        return list(session.scalars(select(Message).where(Message.journey_key == key)))


def _ended(db: Database, key: str) -> int:
    with db.transaction() as session:
        query = select(Enrollment).where(
            Enrollment.journey_key == key, Enrollment.ended_at.is_not(None)
        )
        return len(list(session.scalars(query)))


async def _all_runs_complete(
    stack: Stack, key: str, workflow_ids: list[str], began: float, waiting: str
) -> None:
    """Every run ended (enrollments table) and Temporal shows it completed."""
    deadline = began + RUNS_BOUND
    count = len(workflow_ids)
    while (ended := await asyncio.to_thread(_ended, stack.db, key)) < count:
        if time.monotonic() > deadline:
            rows = Counter(m.status for m in _rows(stack.db, key))
            raise AssertionError(
                f"only {ended} of {count} runs ended within {RUNS_BOUND:.0f} s of enrolment "
                f"({waiting}); message rows by status: {dict(rows)}; logs in {stack.folder}"
            )
        await asyncio.sleep(0.5)
    client = await Client.connect(stack.temporal_address)
    limit = asyncio.Semaphore(20)

    async def status(workflow_id: str) -> WorkflowExecutionStatus | None:
        async with limit:
            return (await client.get_workflow_handle(workflow_id).describe()).status

    # A run's last send records its end a workflow task before the run closes, so Temporal
    # may need a moment more (longer if the worker died in between).
    while True:
        statuses = await asyncio.gather(*(status(w) for w in workflow_ids))
        not_done = {
            w: s
            for w, s in zip(workflow_ids, statuses, strict=True)
            if s is None or s != WorkflowExecutionStatus.COMPLETED
        }
        if not not_done or time.monotonic() > deadline:
            break
        await asyncio.sleep(0.5)
    assert not not_done, (
        f"{len(not_done)} of {count} runs are not COMPLETED in Temporal: "
        f"{dict(list(not_done.items())[:5])}"
    )


def _assert_each_message_once(
    stack: Stack, key: str, contacts: list[str], channels: dict[str, str]
) -> list[Message]:
    """One row per contact and send step, each taken exactly once by its provider, none
    taken that has no row, and every row recorded as sent."""
    rows = _rows(stack.db, key)
    per_send = Counter((m.contact_id, m.step_id) for m in rows)
    wanted = {(contact, step) for contact in contacts for step in SEND_STEPS}
    missing = sorted(wanted - set(per_send))
    doubled = sorted(pair for pair, n in per_send.items() if n > 1)
    assert not missing, f"{len(missing)} sends have no message row, e.g. {missing[:5]}"
    assert not doubled, f"{len(doubled)} sends have more than one message row: {doubled[:5]}"
    assert len(rows) == len(wanted), f"{len(rows)} message rows, expected {len(wanted)}"

    problems = []
    for provider in sorted(set(channels.values())):
        mine = {m.id for m in rows if channels[m.step_id or ""] == provider}
        taken = stack.fake.accepted_per_message(provider)
        twice = {m: n for m, n in taken.items() if n > 1}
        never = sorted(m for m in mine if taken[m] == 0)
        strangers = sorted(str(m) for m in set(taken) - mine)
        if twice:
            problems.append(
                f"the fake {provider} took {len(twice)} of {len(mine)} messages more than once "
                f"(duplicates sent): {dict(list(twice.items())[:5])}"
            )
        if never:
            problems.append(
                f"the fake {provider} never took {len(never)} of {len(mine)} messages "
                f"(lost): {never[:5]}"
            )
        if strangers:
            problems.append(f"the fake {provider} took messages with no row: {strangers[:5]}")
    assert not problems, "; ".join(problems)

    statuses = Counter(m.status for m in rows)
    assert statuses == Counter({"sent": len(rows)}), (
        f"every message should be recorded as sent (the provider took each), got {statuses}"
    )
    errors = stack.hook_errors()
    assert not errors, f"the fake could not post {len(errors)} delivery webhooks: {errors[0]}"
    return rows


def _sending(db: Database, key: str) -> set[str]:
    with db.transaction() as session:
        query = select(Message.id).where(Message.journey_key == key, Message.status == "sending")
        return set(session.scalars(query))


# ------------------------------------------------------------------ tests


async def test_a_worker_killed_mid_send_sends_every_message_once(
    tmp_path: Path, postgres_server_url: str
) -> None:
    key = "chaos-kill"
    with running_stack(
        tmp_path,
        postgres_server_url,
        worker_settings={"resend_unconfirmed_after_seconds": "3"},
        # Answers take a moment, so a kill finds requests the fake took but did not answer.
        latency=(0.02, 0.25),
    ) as stack:
        async with httpx.AsyncClient(base_url=stack.api_url, timeout=120) as http:
            _publish(stack.db, _journey(key, "chaos-hello", "chaos-again"))
            contacts = await asyncio.to_thread(_contacts, stack.db, "killed", KILL_CONTACTS, False)
            worker = stack.start_worker()
            began = time.monotonic()
            enrolling = asyncio.create_task(_enroll(http, stack, key, contacts))
            try:
                interrupted: list[set[str]] = []
                kill_times: list[float] = []
                taken_before_kill: set[str | None] = set()
                for taken_since in KILL_AFTER:
                    goal = len(stack.fake.accepted("sendgrid")) + taken_since
                    await _until(
                        lambda goal=goal: len(stack.fake.accepted("sendgrid")) >= goal,
                        f"the fake to take {goal} emails (logs in {stack.folder})",
                        60,
                    )
                    stack.kill(worker)
                    kill_times.append(time.monotonic() - began)
                    # Rows a dead attempt left in ``sending``: cut off mid-call, some of them
                    # after the fake took the message.
                    sending = await asyncio.to_thread(_sending, stack.db, key)
                    interrupted.append(sending - set().union(*interrupted))
                    taken_before_kill |= {r.message_id for r in stack.fake.accepted("sendgrid")}
                    worker = stack.start_worker()
            except BaseException:
                enrolling.cancel()
                raise
            workflow_ids = await enrolling
            await _all_runs_complete(stack, key, workflow_ids, began, "after 3 worker kills")
        elapsed = time.monotonic() - began

        _assert_each_message_once(stack, key, contacts, {s: "sendgrid" for s in SEND_STEPS})
        cut = set().union(*interrupted)
        assert cut, (
            "no kill found a send in flight, so nothing was tested: "
            f"{[len(i) for i in interrupted]} rows were sending at the kills"
        )
        taken = cut & taken_before_kill
        assert taken, (
            "no kill cut off a send the fake had already taken, so the guard against sending "
            f"it again was not exercised ({len(cut)} sends cut off)"
        )
        print(
            f"\n{len(stack.workers)} workers, kills at {[round(t) for t in kill_times]} s; "
            f"sends cut off per kill: "
            f"{[len(i) for i in interrupted]} ({len(taken)} of them already taken by the fake, "
            f"the rest sent after the kill); runs complete {elapsed:.0f} s after enrolment"
        )


async def test_providers_failing_30_percent_still_send_every_message_once(
    tmp_path: Path, postgres_server_url: str
) -> None:
    key = "chaos-faults"
    faults = Faults(rate=0.3, seed=20261125, reset_seconds=1.0, slow_seconds=2.0)
    with running_stack(
        tmp_path,
        postgres_server_url,
        worker_settings={
            "resend_unconfirmed_after_seconds": "5",
            "provider_timeout_seconds": "1",
        },
        faults=faults,
    ) as stack:
        async with httpx.AsyncClient(base_url=stack.api_url, timeout=120) as http:
            _publish(stack.db, _journey(key, "chaos-hello", "chaos-sms"))
            contacts = await asyncio.to_thread(_contacts, stack.db, "faulted", FAULT_CONTACTS, True)
            stack.start_worker()
            began = time.monotonic()
            workflow_ids = await _enroll(http, stack, key, contacts)
            await _all_runs_complete(stack, key, workflow_ids, began, "providers failing 30%")
        elapsed = time.monotonic() - began

        _assert_each_message_once(stack, key, contacts, {"hello": "sendgrid", "again": "twilio"})
        seen = Counter(r.fault for r in stack.fake.requests if r.fault)
        requests = len(stack.fake.of("sendgrid")) + len(stack.fake.of("twilio"))
        share = sum(seen.values()) / requests
        assert 0.15 <= share <= 0.45, f"{share:.0%} of {requests} requests faulted, not ~30%"
        assert set(seen) == set(FAULT_KINDS), f"not every kind of fault happened: {seen}"
        by_provider = {
            provider: Counter(r.fault for r in stack.fake.of(provider) if r.fault)
            for provider in ("sendgrid", "twilio")
        }
        for provider, kinds in by_provider.items():
            # Both ambiguous cases on each provider: taken but answered badly, and not taken.
            assert kinds["500-accepted"] + kinds["slow-accepted"], (provider, kinds)
            assert kinds["500"] + kinds["slow"], (provider, kinds)
        print(
            f"\n{requests} provider requests, {sum(seen.values())} faulted ({share:.0%}): "
            f"{ {p: dict(k) for p, k in by_provider.items()} }; "
            f"runs complete {elapsed:.0f} s after enrolment"
        )
