"""The whole journeys stack in real processes, for chaos tests: a Temporal dev server, a fresh
Postgres database, the API under uvicorn (``journeys api``), workers (``journeys worker``) that a
test may SIGKILL and start again, and the fake SendGrid/Twilio server posting signed delivery
webhooks back to the API for every message it takes.

Everything listens on free loopback ports and is stopped when ``running_stack`` exits, also when
the test failed. Logs of each process are kept in the test's folder (named in failures)."""

from __future__ import annotations

import contextlib
import os
import random
import signal
import socket
import subprocess
import sys
import threading
import time
import traceback
import uuid
from collections import Counter
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO
from urllib.parse import urlsplit

import httpx

from temporal_journeys.cli.devserver import start_dev_server, stop, wait_for_port
from temporal_journeys.store import keys
from temporal_journeys.store.db import Database
from temporal_journeys.store.migrate import upgrade
from tests.support import signed_webhooks as sw
from tests.support.fake_providers import FakeProviders, Faults, Recorded
from tests.support.postgres import fresh_database

ROOT = Path(__file__).resolve().parents[2]
SECRET_KEY = "chaos-tests-secret-key-0123456789"
TWILIO_SID = "AC" + "0" * 32
TWILIO_FROM = "+15005550006"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _command(*args: str) -> list[str]:
    """The ``journeys`` command of this interpreter's environment."""
    script = Path(sys.executable).parent / "journeys"
    if script.exists():
        return [str(script), *args]
    return [sys.executable, "-m", "temporal_journeys.cli", *args]


def _env(values: Mapping[str, str]) -> dict[str, str]:
    """This process's environment without any JOURNEYS_* of its own, plus ``values``."""
    base = {k: v for k, v in os.environ.items() if not k.startswith("JOURNEYS_")}
    return {**base, **values}


class DeliveryWebhooks:
    """The fake's ``on_accept``: what SendGrid's Event Webhook (``processed``) and Twilio's
    status callback (``sent``) post for a message they took, signed, sent to the API.

    ``delay`` (seconds, ``(low, high)``, seeded) holds each one back as the real services do,
    so an attempt that could not see the answer often finds its message still unconfirmed and
    is retried: the retry must then find the webhook's confirmation and not send again."""

    def __init__(
        self,
        api_url: str,
        signer: sw.SendGridSigner,
        delay: tuple[float, float] | None = None,
        seed: int = 0,
    ) -> None:
        self.api_url = api_url.rstrip("/")
        self.signer = signer
        self.delay = delay
        self.posted: Counter[str] = Counter()
        self.errors: list[str] = []
        self._rng = random.Random(seed)
        self._lock = threading.Lock()
        self._timers: list[threading.Timer] = []
        self._http = httpx.Client(timeout=10)

    def close(self) -> None:
        """Once the fake has stopped: post what is still held back, then close."""
        for timer in list(self._timers):
            timer.join(30)
        self._http.close()

    def __call__(self, recorded: Recorded) -> None:
        with self._lock:
            wait = self._rng.uniform(*self.delay) if self.delay else 0.0
            if wait > 0:
                timer = threading.Timer(wait, self._deliver, (recorded,))
                timer.daemon = True
                self._timers.append(timer)
                timer.start()
                return
        self._deliver(recorded)

    def _deliver(self, recorded: Recorded) -> None:
        try:
            if recorded.provider == "sendgrid":
                self._sendgrid(recorded)
            elif recorded.provider == "twilio":
                self._twilio(recorded)
        except Exception:
            with self._lock:
                self.errors.append(traceback.format_exc())

    def _sendgrid(self, recorded: Recorded) -> None:
        [recipient] = recorded.body["personalizations"][0]["to"]
        answer = recorded.answer
        x_message_id = answer.headers.get("X-Message-Id") if answer else None
        event = sw.sendgrid_event(
            "processed",
            recorded.message_id,
            provider_message_id=x_message_id,
            email=recipient["email"],
        )
        body = sw.sendgrid_body([event])
        self._post("/v1/webhooks/sendgrid", body, self.signer.headers(body), "sendgrid")

    def _twilio(self, recorded: Recorded) -> None:
        form = recorded.body
        answer = recorded.answer
        sid = answer.body.get("sid") if answer and isinstance(answer.body, dict) else None
        params = {
            "AccountSid": TWILIO_SID,
            "MessageSid": sid or "SM" + uuid.uuid4().hex,
            "MessageStatus": "sent",
            "To": form.get("To", ""),
            "From": form.get("From", ""),
        }
        callback = urlsplit(form["StatusCallback"])
        path = f"{callback.path}?{callback.query}"
        public = f"{callback.scheme}://{callback.netloc}"
        body, headers = sw.twilio_request(path, params, sw.TWILIO_AUTH_TOKEN, public)
        self._post(path, body, headers, "twilio")

    def _post(self, path: str, body: bytes, headers: dict[str, str], provider: str) -> None:
        problem = ""
        for _ in range(20):
            try:
                response = self._http.post(self.api_url + path, content=body, headers=headers)
            except httpx.TransportError as exc:
                problem = repr(exc)
            else:
                if response.status_code < 300:
                    self.posted[provider] += 1
                    return
                problem = f"{response.status_code} {response.text[:300]}"
                if response.status_code < 500:
                    break
            time.sleep(0.25)
        raise AssertionError(f"the API refused a {provider} delivery webhook to {path}: {problem}")


@dataclass
class Stack:
    folder: Path
    database_url: str
    temporal_address: str
    api_url: str
    task_queue: str
    fake: FakeProviders
    signer: sw.SendGridSigner
    webhooks: DeliveryWebhooks
    admin_key: str
    worker_settings: dict[str, str]
    db: Database
    workers: list[subprocess.Popen[bytes]] = field(default_factory=list)
    _logs: list[TextIO] = field(default_factory=list)

    @property
    def admin(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.admin_key}"}

    def worker_env(self) -> dict[str, str]:
        return _env(
            {
                "JOURNEYS_DATABASE_URL": self.database_url,
                "JOURNEYS_TEMPORAL_ADDRESS": self.temporal_address,
                "JOURNEYS_TASK_QUEUE": self.task_queue,
                "JOURNEYS_SENDGRID_API_KEY": "SG.test",
                "JOURNEYS_SENDGRID_BASE_URL": self.fake.url,
                "JOURNEYS_TWILIO_ACCOUNT_SID": TWILIO_SID,
                "JOURNEYS_TWILIO_AUTH_TOKEN": sw.TWILIO_AUTH_TOKEN,
                "JOURNEYS_TWILIO_FROM_NUMBER": TWILIO_FROM,
                "JOURNEYS_TWILIO_BASE_URL": self.fake.url,
                "JOURNEYS_SECRET_KEY": SECRET_KEY,
                "JOURNEYS_PUBLIC_URL": self.api_url,
                "JOURNEYS_SMS_QUIET_HOURS": "",
                **self.worker_settings,
            }
        )

    def start_worker(self) -> subprocess.Popen[bytes]:
        """A new ``journeys worker`` process; it polls once it has imported and connected."""
        log = open(self.folder / f"worker-{len(self.workers) + 1}.log", "w")  # noqa: SIM115
        self._logs.append(log)
        process = subprocess.Popen(
            _command("worker"),
            env=self.worker_env(),
            cwd=ROOT,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        self.workers.append(process)
        return process

    def kill(self, process: subprocess.Popen[bytes]) -> None:
        """SIGKILL: no shutdown, no finishing of what it was doing."""
        process.send_signal(signal.SIGKILL)
        process.wait(10)

    def stop_workers(self) -> None:
        for process in self.workers:
            _end(process)

    def hook_errors(self) -> list[str]:
        """Delivery webhooks the fake could not post to the API."""
        return [*self.fake.hook_errors, *self.webhooks.errors]

    def close_logs(self) -> None:
        for log in self._logs:
            log.close()


def _end(process: subprocess.Popen[Any]) -> None:
    if process.poll() is None:
        stop(process)


def _wait_healthy(url: str, process: subprocess.Popen[Any], seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    problem = ""
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the API exited with {process.returncode} while starting")
        try:
            if httpx.get(f"{url}/healthz", timeout=2).status_code == 200:
                return
        except httpx.TransportError as exc:
            problem = repr(exc)
        time.sleep(0.2)
    raise TimeoutError(f"the API at {url} did not answer within {seconds:.0f} s: {problem}")


@contextlib.contextmanager
def running_stack(
    folder: Path,
    postgres_server_url: str,
    *,
    worker_settings: Mapping[str, str] | None = None,
    faults: Faults | None = None,
    latency: tuple[float, float] | None = None,
    webhook_delay: tuple[float, float] | None = (0.2, 1.5),
) -> Iterator[Stack]:
    """Database, dev server, API and fake providers, up; workers are started by the test
    (``Stack.start_worker``) with JOURNEYS_* ``worker_settings`` on top of the stack's own."""
    task_queue = f"chaos-{uuid.uuid4().hex[:8]}"
    signer = sw.SendGridSigner()
    with contextlib.ExitStack() as cleanup:
        database_url = cleanup.enter_context(fresh_database(postgres_server_url))
        upgrade(database_url)
        db = Database(database_url)
        cleanup.callback(db.dispose)
        with db.transaction() as session:
            admin_key = keys.create(session, "chaos-admin", "admin")

        port = free_port()
        server = start_dev_server(folder / "temporal.db", port, None, folder / "temporal.log")
        cleanup.callback(stop, server)
        temporal_address = f"127.0.0.1:{port}"

        api_port = free_port()
        api_url = f"http://127.0.0.1:{api_port}"
        api_env = _env(
            {
                "JOURNEYS_DATABASE_URL": database_url,
                "JOURNEYS_TEMPORAL_ADDRESS": temporal_address,
                "JOURNEYS_TASK_QUEUE": task_queue,
                "JOURNEYS_SENDGRID_WEBHOOK_PUBLIC_KEY": signer.public_key_b64,
                "JOURNEYS_TWILIO_AUTH_TOKEN": sw.TWILIO_AUTH_TOKEN,
                "JOURNEYS_SECRET_KEY": SECRET_KEY,
                "JOURNEYS_PUBLIC_URL": api_url,
            }
        )
        api_log = cleanup.enter_context(open(folder / "api.log", "w"))  # noqa: SIM115
        api = subprocess.Popen(
            _command("api", "--port", str(api_port)),
            env=api_env,
            cwd=ROOT,
            stdout=api_log,
            stderr=subprocess.STDOUT,
        )
        cleanup.callback(_end, api)
        wait_for_port(api_port)
        _wait_healthy(api_url, api)

        webhooks = DeliveryWebhooks(api_url, signer, webhook_delay)
        cleanup.callback(webhooks.close)
        fake = FakeProviders(on_accept=webhooks, faults=faults, latency=latency)
        fake.start()
        # Before the API stops: the last accepted messages' webhooks are still posted.
        cleanup.callback(fake.stop)

        stack = Stack(
            folder=folder,
            database_url=database_url,
            temporal_address=temporal_address,
            api_url=api_url,
            task_queue=task_queue,
            fake=fake,
            signer=signer,
            webhooks=webhooks,
            admin_key=admin_key,
            worker_settings={
                f"JOURNEYS_{k.upper()}": v for k, v in (worker_settings or {}).items()
            },
            db=db,
        )
        cleanup.callback(stack.close_logs)
        # Workers go first: nothing sends while the rest stops.
        cleanup.callback(stack.stop_workers)
        yield stack
