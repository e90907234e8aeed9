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
3. The same for push (FCM and web push, each contact's phone and browser) and WhatsApp.

Afterwards every run has completed and the fake took each message row's message exactly once.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import select
from temporalio.client import Client, WorkflowExecutionStatus

from temporal_journeys.journeys.settings import Settings
from temporal_journeys.journeys.validation import parse_journey
from temporal_journeys.store import contacts as contacts_store
from temporal_journeys.store import devices as devices_store
from temporal_journeys.store import journeys as journeys_store
from temporal_journeys.store import templates as templates_store
from temporal_journeys.store.db import Database
from temporal_journeys.store.models import Enrollment, Message
from tests.support.fake_fcm import PROJECT as FCM_PROJECT
from tests.support.fake_fcm import FakeFcm, FcmAnswer, fcm_error
from tests.support.fake_providers import FAULT_KINDS, Faults
from tests.support.fake_webpush import FakeWebPush, PushAnswer, vapid_keys
from tests.support.stack import Stack, running_stack

pytestmark = pytest.mark.slow

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
    "chaos-push": {"channel": "push", "subject": "Hello", "text": "Hi {{ contact.first_name }}"},
    # Outside the 24-hour window (nobody wrote to us): the content template goes.
    "chaos-whatsapp": {
        "channel": "whatsapp",
        "provider_template_id": "HX0123456789abcdef0123456789abcdef",
        "text": "Hi {{ contact.first_name }}",
    },
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
    stack: Stack,
    key: str,
    workflow_ids: list[str],
    began: float,
    waiting: str,
    bound: float = RUNS_BOUND,
) -> None:
    """Every run ended (enrollments table) and Temporal shows it completed."""
    deadline = began + bound
    count = len(workflow_ids)
    while (ended := await asyncio.to_thread(_ended, stack.db, key)) < count:
        if time.monotonic() > deadline:
            rows = Counter(m.status for m in _rows(stack.db, key))
            raise AssertionError(
                f"only {ended} of {count} runs ended within {bound:.0f} s of enrolment "
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


# ------------------------------------------------- push (FCM and web push) and WhatsApp

PUSH_CONTACTS = 60
# What a push send can tell apart: not taken (429 with Retry-After, 502, 503). Push services
# take no idempotency key and send no delivery webhook, so an ambiguous answer (a 500, no
# answer) is at most once by design (never called again for that device: docs/channels.md)
# and is tested in tests/push and tests/webpush, not here, where every message must arrive.
PUSH_FAULT_KINDS = ("429", "502", "503")


def _fcm_script(rng: random.Random, rate: float, count: int) -> list[FcmAnswer]:
    """``count`` answers for the fake FCM, ``rate`` of them faults, seeded."""
    answers = []
    for n in range(count):
        kind = rng.choice(PUSH_FAULT_KINDS) if rng.random() < rate else None
        if kind == "429":
            answer = fcm_error(429, "QUOTA_EXCEEDED", "fake fault", headers={"Retry-After": "1"})
        elif kind == "503":
            answer = fcm_error(503, "UNAVAILABLE", "fake fault")
        elif kind == "502":
            answer = FcmAnswer(502, "<html>bad gateway</html>")
        else:
            answer = FcmAnswer(200, {"name": f"projects/{FCM_PROJECT}/messages/chaos-{n}"})
        answers.append(answer)
    return answers


def _webpush_script(rng: random.Random, rate: float, count: int) -> list[PushAnswer]:
    answers = []
    for n in range(count):
        kind = rng.choice(PUSH_FAULT_KINDS) if rng.random() < rate else None
        if kind == "429":
            answers.append(PushAnswer(429, {"Retry-After": "1"}, b"fake fault"))
        elif kind is not None:
            answers.append(PushAnswer(int(kind), body=b"fake fault"))
        else:
            answers.append(PushAnswer(201, {"Location": f"/message/chaos-{n}"}))
    return answers


def _register_devices(
    db: Database, contacts: list[str], webpush: FakeWebPush, vapid_public: str
) -> None:
    """Each contact has the app (an FCM token) and a browser subscribed to web push."""
    with db.transaction() as session:
        for contact in contacts:
            devices_store.register(session, contact, f"{contact}:APA91bChaos", "android")
            browser = webpush.subscribe(vapid_public)
            keys = (browser.p256dh, browser.keys["auth"])
            devices_store.register(session, contact, browser.endpoint, "webpush", keys)


def _taken_once(what: str, mine: set[str], taken: Counter[str | None]) -> list[str]:
    problems = []
    twice = {m: n for m, n in taken.items() if n > 1}
    never = sorted(m for m in mine if taken[m] == 0)
    strangers = sorted(str(m) for m in set(taken) - mine)
    if twice:
        problems.append(f"{what} took {len(twice)} messages more than once: {list(twice)[:5]}")
    if never:
        problems.append(f"{what} never took {len(never)} of {len(mine)} messages: {never[:5]}")
    if strangers:
        problems.append(f"{what} took messages with no row: {strangers[:5]}")
    return problems


async def test_push_and_whatsapp_failing_30_percent_still_send_every_message_once(
    tmp_path: Path, postgres_server_url: str
) -> None:
    """A push (to each contact's phone through FCM and browser through web push) then a
    WhatsApp message (Twilio's SDK), with about 30% of the requests to FCM, the push service
    and Twilio failing: each push reaches each device once, each WhatsApp message goes once."""
    key = "chaos-push-whatsapp"
    rng = random.Random(20261201)
    faults = Faults(rate=0.3, seed=20261201, providers=frozenset({"twilio"}), slow_seconds=2.0)
    private, public = vapid_keys()
    with FakeFcm() as fcm, FakeWebPush() as webpush:
        fcm.script(*_fcm_script(rng, 0.3, 2000))
        webpush.script(*_webpush_script(rng, 0.3, 2000))
        service_account = fcm.service_account_file(tmp_path / "fcm.json")
        with running_stack(
            tmp_path,
            postgres_server_url,
            worker_settings={
                "resend_unconfirmed_after_seconds": "5",
                "provider_timeout_seconds": "1",
                "twilio_whatsapp_from_number": "+14155238886",
                "fcm_service_account_file": str(service_account),
                "fcm_base_url": fcm.url,
                "vapid_private_key": private,
                "vapid_subject": "mailto:chaos@journeys.example.test",
                "webpush_endpoint_hosts": "127.0.0.1",
            },
            faults=faults,
        ) as stack:
            async with httpx.AsyncClient(base_url=stack.api_url, timeout=120) as http:
                _publish(stack.db, _journey(key, "chaos-push", "chaos-whatsapp"))
                contacts = await asyncio.to_thread(
                    _contacts, stack.db, "pushed", PUSH_CONTACTS, True
                )
                await asyncio.to_thread(_register_devices, stack.db, contacts, webpush, public)
                stack.start_worker()
                began = time.monotonic()
                workflow_ids = await _enroll(http, stack, key, contacts)
                await _all_runs_complete(stack, key, workflow_ids, began, "push and WhatsApp")
            elapsed = time.monotonic() - began

            rows = _rows(stack.db, key)
            per_send = Counter((m.contact_id, m.step_id) for m in rows)
            assert set(per_send) == {(c, s) for c in contacts for s in SEND_STEPS}
            assert set(per_send.values()) == {1}, "one row per contact and send step"
            pushes = {m.id for m in rows if m.step_id == "hello"}
            chats = {m.id for m in rows if m.step_id == "again"}
            fcm_taken = Counter(s.message_id for s in fcm.accepted())
            problems = _taken_once("FCM", pushes, fcm_taken)
            problems += _taken_once("the push service", pushes, webpush.accepted_per_message())
            problems += _taken_once(
                "Twilio (WhatsApp)", chats, stack.fake.accepted_per_message("twilio")
            )
            assert not problems, "; ".join(problems)
            assert webpush.problems() == [], "a push the service could not verify or decrypt"
            statuses = Counter(m.status for m in rows)
            assert statuses == Counter({"sent": len(rows)}), statuses
            assert {m.provider for m in rows if m.id in pushes} == {"fcm+webpush"}
            assert not stack.hook_errors(), stack.hook_errors()[0]

            fcm_faults = sum(s.answer.status >= 300 for s in fcm.sends)
            web_faults = sum(not r.accepted for r in webpush.received)
            twilio = stack.fake.of("twilio")
            twilio_faults = Counter(r.fault for r in twilio if r.fault)
            for name, faulted, total in (
                ("FCM", fcm_faults, len(fcm.sends)),
                ("web push", web_faults, len(webpush.received)),
                ("Twilio", sum(twilio_faults.values()), len(twilio)),
            ):
                assert 0.15 <= faulted / total <= 0.45, f"{name}: {faulted} of {total} faulted"
            # WhatsApp met the ambiguous faults too: its status callback settles them.
            assert twilio_faults["500-accepted"] + twilio_faults["slow-accepted"], twilio_faults
            print(
                f"\nFCM {fcm_faults}/{len(fcm.sends)} faulted, web push "
                f"{web_faults}/{len(webpush.received)}, Twilio (WhatsApp) "
                f"{sum(twilio_faults.values())}/{len(twilio)} {dict(twilio_faults)}; "
                f"runs complete {elapsed:.0f} s after enrolment"
            )


# ------------------------------------------------- one kill with the default configuration

# The defaults these tests rely on (``Settings``): provider calls in flight at once per
# provider and worker, and how long an unknown outcome waits for SendGrid's webhook when the
# worker knows the webhook is configured.
PROVIDER_CONCURRENCY = 16
DEFAULT_WINDOW = 120.0
ONE_KILL_AFTER = 60  # emails taken by the fake before the worker is killed


def _ever_unknown(db: Database, key: str) -> set[str]:
    """Messages whose outcome some attempt could not know, whatever happened to them later."""
    return {
        m.id
        for m in _rows(db, key)
        if any(entry["status"] == "unknown" for entry in m.status_history)
    }


async def _kill_once_mid_sends(
    stack: Stack, http: httpx.AsyncClient, key: str, contacts: list[str]
) -> tuple[list[str], set[str], float]:
    """Enrol everyone, SIGKILL the worker once the fake has taken ``ONE_KILL_AFTER`` emails,
    start another; the workflow ids, the rows left ``sending`` by the kill, and when enrolment
    began."""
    worker = stack.start_worker()
    began = time.monotonic()
    enrolling = asyncio.create_task(_enroll(http, stack, key, contacts))
    try:
        await _until(
            lambda: len(stack.fake.accepted("sendgrid")) >= ONE_KILL_AFTER,
            f"the fake to take {ONE_KILL_AFTER} emails (logs in {stack.folder})",
            60,
        )
        stack.kill(worker)
        sending = await asyncio.to_thread(_sending, stack.db, key)
        stack.start_worker()
    except BaseException:
        enrolling.cancel()
        raise
    return await enrolling, sending, began


async def test_with_webhooks_on_a_killed_worker_sends_every_message_once_by_default(
    tmp_path: Path, postgres_server_url: str
) -> None:
    """No resend setting: the worker knows SendGrid's signed webhook is configured, so a send
    cut off by the kill that SendGrid never took is sent again once the default window passes
    unconfirmed, and one it took is confirmed by its webhook and not sent again."""
    key = "chaos-kill-default-hooks"
    with running_stack(tmp_path, postgres_server_url, latency=(0.02, 0.25)) as stack:
        stack.worker_settings["JOURNEYS_SENDGRID_WEBHOOK_PUBLIC_KEY"] = stack.signer.public_key_b64
        async with httpx.AsyncClient(base_url=stack.api_url, timeout=120) as http:
            _publish(stack.db, _journey(key, "chaos-hello", "chaos-again"))
            contacts = await asyncio.to_thread(_contacts, stack.db, "hooked", KILL_CONTACTS, False)
            workflow_ids, sending, began = await _kill_once_mid_sends(stack, http, key, contacts)
            await _all_runs_complete(
                stack,
                key,
                workflow_ids,
                began,
                "one kill, webhooks on, default settings",
                bound=RUNS_BOUND + DEFAULT_WINDOW,
            )

        rows = _assert_each_message_once(stack, key, contacts, {s: "sendgrid" for s in SEND_STEPS})
        assert sending, "the kill found no send in flight, so nothing was tested"
        resent = [m for m in rows if [e["status"] for e in m.status_history].count("sending") > 1]
        print(
            f"\n{len(sending)} sends cut off by the kill, "
            f"{len(_ever_unknown(stack.db, key))} messages ever unknown, {len(resent)} of them "
            "sent again after the window; every message taken once"
        )


async def test_with_webhooks_off_a_kill_leaves_at_most_the_calls_in_flight_unknown(
    tmp_path: Path, postgres_server_url: str
) -> None:
    """At most once (the default without webhooks): what the kill cut off is never sent again,
    but only sends whose provider call had begun can be cut off, so no more messages than
    provider calls in flight are ever left unknown; every other message is sent once."""
    key = "chaos-kill-no-hooks"
    with running_stack(tmp_path, postgres_server_url, latency=(0.02, 0.25)) as stack:
        async with httpx.AsyncClient(base_url=stack.api_url, timeout=120) as http:
            _publish(stack.db, _journey(key, "chaos-hello", "chaos-again"))
            contacts = await asyncio.to_thread(
                _contacts, stack.db, "unhooked", KILL_CONTACTS, False
            )
            workflow_ids, sending, began = await _kill_once_mid_sends(stack, http, key, contacts)
            await _all_runs_complete(stack, key, workflow_ids, began, "one kill, webhooks off")

        rows = _rows(stack.db, key)
        unknown = _ever_unknown(stack.db, key)
        assert len(sending) <= PROVIDER_CONCURRENCY, (
            f"{len(sending)} rows were sending at the kill, more than the "
            f"{PROVIDER_CONCURRENCY} provider calls that can be in flight"
        )
        # A call cut off by the kill may still be settled by the fake's delivery webhook before
        # the retry looks, so what matters is that sends were in flight, not how many stay unknown.
        assert sending, "the kill found no send in flight, so nothing was tested"
        assert len(unknown) <= PROVIDER_CONCURRENCY, (
            f"{len(unknown)} of {len(rows)} messages were left unknown; at most "
            f"{PROVIDER_CONCURRENCY} (the provider calls in flight) may be"
        )
        per_send = Counter((m.contact_id, m.step_id) for m in rows)
        assert len(per_send) == len(rows) == 2 * len(contacts), "one row per contact and step"
        taken = stack.fake.accepted_per_message("sendgrid")
        twice = {m: n for m, n in taken.items() if n > 1}
        lost = sorted(m.id for m in rows if m.id not in unknown and taken[m.id] != 1)
        strangers = set(taken) - {m.id for m in rows}
        assert not twice, f"{len(twice)} messages were sent twice: {list(twice)[:5]}"
        assert not lost, f"{len(lost)} messages never unknown were not sent once: {lost[:5]}"
        assert not strangers, f"the fake took messages with no row: {sorted(map(str, strangers))}"
        assert Settings.model_fields["provider_concurrency"].default == PROVIDER_CONCURRENCY
        print(
            f"\n{len(sending)} rows sending at the kill, {len(unknown)} messages left unknown "
            f"({sum(taken[m] for m in unknown)} of them taken by the fake), the rest sent once"
        )
