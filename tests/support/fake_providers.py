"""A fake SendGrid, Twilio and webhook receiver: real HTTP on 127.0.0.1 for the real SDK clients.

Point ``sendgrid_base_url`` and ``twilio_base_url`` at ``FakeProviders.url`` and webhook
templates at ``<url>/hooks/...``. Every request is recorded; by default each is answered as the
real service answers (SendGrid 202 with ``X-Message-Id``, Twilio 201 with a Message resource,
hooks 200). ``script`` queues other answers (400, 429, 5xx, slow) per provider, used in order
before the default comes back.

``Recorded.accepted`` is what the provider would have done with the message: an answer under
300 is accepted even when it comes too late for the client (a slow answer after the message was
taken), and ``Answer(accept=True)`` marks a 5xx as accepted too (a 500 after the provider queued
it). Tests count ``accepted(provider)`` (or ``accepted_per_message``) to prove a message went
out exactly once.

For chaos tests, three optional knobs:

- ``on_accept``: called with each accepted ``Recorded`` request in a thread of the fake's own
  (the HTTP answer does not wait for it), e.g. to post the provider's delivery webhook back to
  the API. Exceptions it raises are kept in ``hook_errors``.
- ``faults``: a ``Faults`` policy answers a seeded random share of the requests badly (429 with
  a reset header, 500, 502, 503, or an answer slower than the client's timeout), some of them
  after taking the message (``accept=True``: the ambiguous case).
- ``latency``: a random delay (seconds, ``(low, high)``) before each answer, so a test that
  kills the caller finds requests in flight.

A request whose body arrives cut short (the caller died mid-write) is recorded as not accepted
and not answered: a real provider drops it too.
"""

from __future__ import annotations

import json
import random
import threading
import time
import traceback
import uuid
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, parse_qsl, urlsplit

SENDGRID_PATH = "/v3/mail/send"
TWILIO_PREFIX = "/2010-04-01/Accounts/"
HOOKS_PREFIX = "/hooks/"


@dataclass
class Recorded:
    provider: str
    method: str
    path: str
    headers: dict[str, str]
    body: Any
    accepted: bool
    raw: bytes = b""
    """The body as received (a signature covers these exact bytes)."""
    answer: Answer | None = None
    """What the fake answered (None: nothing, the request arrived cut short)."""
    fault: str | None = None
    """The ``Faults`` kind this request was answered with, if any."""

    @property
    def message_id(self) -> str | None:
        """Our message id: SendGrid ``custom_args.journeys_message_id``, the ``message_id``
        of Twilio's ``StatusCallback`` URL, the webhook channel's ``Idempotency-Key``."""
        return message_id_of(self.provider, self.body, self.headers)


@dataclass
class Answer:
    status: int
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0
    accept: bool | None = None
    """Record the request as accepted whatever the status (None: accepted when status < 300)."""
    fault: str | None = None
    """Which ``Faults`` kind made this answer (None: scripted or normal)."""


def twilio_error(code: int, message: str, status: int = 400, **extra: Any) -> Answer:
    """An answer shaped like Twilio's error documents."""
    body = {
        "code": code,
        "message": message,
        "more_info": f"https://www.twilio.com/docs/errors/{code}",
        "status": status,
    }
    return Answer(status, body, **extra)


def sendgrid_error(status: int, message: str, **extra: Any) -> Answer:
    """An answer shaped like SendGrid's v3 error documents."""
    return Answer(status, {"errors": [{"message": message, "field": None, "help": None}]}, **extra)


def message_id_of(provider: str, body: Any, headers: dict[str, str]) -> str | None:
    if provider == "sendgrid" and isinstance(body, dict):
        found = (body.get("custom_args") or {}).get("journeys_message_id")
        return found if isinstance(found, str) else None
    if provider == "twilio" and isinstance(body, dict):
        query = urlsplit(body.get("StatusCallback") or "").query
        return (parse_qs(query).get("message_id") or [None])[0]
    if provider == "webhook":
        return headers.get("Idempotency-Key")
    return None


FAULT_KINDS = ("429", "500", "500-accepted", "502", "503", "slow", "slow-accepted")


@dataclass
class Faults:
    """Answer a seeded random ``rate`` of the requests to ``providers`` with a fault.

    Kinds (``FAULT_KINDS``, drawn evenly unless ``kinds`` says otherwise): ``429`` with the
    provider's reset header ``reset_seconds`` ahead (SendGrid ``X-RateLimit-Reset`` in epoch
    seconds, Twilio ``Retry-After``); ``500``; ``500-accepted`` (the provider took the message,
    then answered 500); ``502``; ``503``; ``slow`` (a 503 after ``slow_seconds``, past the
    client's timeout: nothing was taken, but the client cannot know) and ``slow-accepted`` (the
    normal answer after ``slow_seconds``: taken). ``max_per_message`` bounds the faults one
    message meets, so the retries of a test stay bounded in time; after that it is taken.
    """

    rate: float = 0.3
    seed: int = 0
    providers: frozenset[str] = frozenset({"sendgrid", "twilio"})
    kinds: tuple[str, ...] = FAULT_KINDS
    reset_seconds: float = 1.0
    slow_seconds: float = 2.5
    max_per_message: int | None = 3
    _rng: random.Random = field(init=False, repr=False)
    _per_message: Counter[str] = field(init=False, repr=False, default_factory=Counter)

    def __post_init__(self) -> None:
        unknown = set(self.kinds) - set(FAULT_KINDS)
        if unknown:
            raise ValueError(f"unknown fault kinds {sorted(unknown)}; known: {FAULT_KINDS}")
        self._rng = random.Random(self.seed)

    def pick(self, provider: str, path: str, body: Any, message_id: str | None) -> Answer | None:
        """A fault for this request, or None for the normal answer (call under a lock)."""
        if provider not in self.providers or self._rng.random() >= self.rate:
            return None
        key = message_id or ""
        if self.max_per_message is not None and self._per_message[key] >= self.max_per_message:
            return None
        self._per_message[key] += 1
        kind = self._rng.choice(self.kinds)
        answer = self._answer(kind, provider, path, body)
        answer.fault = kind
        return answer

    def _answer(self, kind: str, provider: str, path: str, body: Any) -> Answer:
        if kind == "slow-accepted":
            answer = _default(provider, path, body)
            answer.delay = self.slow_seconds
            return answer
        status = {"429": 429, "500": 500, "500-accepted": 500, "502": 502, "503": 503}.get(
            kind, 503
        )
        extra: dict[str, Any] = {}
        if kind == "500-accepted":
            extra["accept"] = True
        if kind == "slow":
            extra["delay"] = self.slow_seconds
        if status == 429:
            if provider == "sendgrid":
                reset = int(time.time() + self.reset_seconds + 0.999)
                extra["headers"] = {"X-RateLimit-Reset": str(reset)}
            else:
                extra["headers"] = {"Retry-After": str(max(1, round(self.reset_seconds)))}
        message = f"fake fault {kind}"
        if provider == "twilio":
            return twilio_error(20000 + status, message, status, **extra)
        return sendgrid_error(status, message, **extra)


def _provider(path: str) -> str:
    if path == SENDGRID_PATH:
        return "sendgrid"
    if path.startswith(TWILIO_PREFIX) and path.endswith("/Messages.json"):
        return "twilio"
    if path.startswith(HOOKS_PREFIX):
        return "webhook"
    return "unknown"


def _parse(content_type: str, raw: bytes) -> Any:
    text = raw.decode("utf-8", errors="replace")
    if content_type.startswith("application/x-www-form-urlencoded"):
        return dict(parse_qsl(text, keep_blank_values=True))
    try:
        return json.loads(text)
    except ValueError:
        return text


def _twilio_message(path: str, form: dict[str, str]) -> dict[str, Any]:
    account = path.removeprefix(TWILIO_PREFIX).split("/")[0]
    sid = "SM" + uuid.uuid4().hex
    now = datetime.now(UTC).strftime("%a, %d %b %Y %H:%M:%S +0000")
    return {
        "account_sid": account,
        "api_version": "2010-04-01",
        "body": form.get("Body", ""),
        "date_created": now,
        "date_sent": None,
        "date_updated": now,
        "direction": "outbound-api",
        "error_code": None,
        "error_message": None,
        "from": form.get("From"),
        "messaging_service_sid": form.get("MessagingServiceSid"),
        "num_media": "0",
        "num_segments": "1",
        "price": None,
        "price_unit": "USD",
        "sid": sid,
        "status": "queued",
        "subresource_uris": {"media": f"{TWILIO_PREFIX}{account}/Messages/{sid}/Media.json"},
        "to": form.get("To"),
        "uri": f"{TWILIO_PREFIX}{account}/Messages/{sid}.json",
    }


def _default(provider: str, path: str, body: Any) -> Answer:
    if provider == "sendgrid":
        return Answer(202, None, {"X-Message-Id": uuid.uuid4().hex[:22]})
    if provider == "twilio":
        return Answer(201, _twilio_message(path, body if isinstance(body, dict) else {}))
    if provider == "webhook":
        return Answer(200, {"ok": True})
    return Answer(404, {"message": f"no fake provider at {path}"})


class FakeProviders:
    """The fake server; a context manager, or ``start()`` and ``stop()``."""

    def __init__(
        self,
        *,
        on_accept: Callable[[Recorded], None] | None = None,
        faults: Faults | None = None,
        latency: tuple[float, float] | None = None,
        seed: int = 0,
    ) -> None:
        self.url = ""
        self.requests: list[Recorded] = []
        self.on_accept = on_accept
        self.faults = faults
        self.latency = latency
        self.hook_errors: list[str] = []
        self._latency_rng = random.Random(seed)
        self._scripts: dict[str, list[Answer]] = {}
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._hooks: ThreadPoolExecutor | None = None

    def script(self, provider: str, *answers: Answer) -> None:
        """Queue answers for ``provider`` ("sendgrid", "twilio", "webhook"), used in order."""
        with self._lock:
            self._scripts.setdefault(provider, []).extend(answers)

    def accepted(self, provider: str) -> list[Recorded]:
        with self._lock:
            return [r for r in self.requests if r.provider == provider and r.accepted]

    def of(self, provider: str) -> list[Recorded]:
        """Every request made to ``provider``, accepted or not."""
        with self._lock:
            return [r for r in self.requests if r.provider == provider]

    def accepted_per_message(self, provider: str) -> Counter[str | None]:
        """How many times ``provider`` took each message, by our message id."""
        return Counter(r.message_id for r in self.accepted(provider))

    def reset(self) -> None:
        """Forget recorded requests and unused scripted answers (between tests)."""
        with self._lock:
            self.requests.clear()
            self._scripts.clear()
            self.hook_errors.clear()

    def _answer(self, method: str, path: str, headers: dict[str, str], raw: bytes) -> Answer:
        provider = _provider(path)
        body = _parse(headers.get("Content-Type", ""), raw)
        with self._lock:
            queue = self._scripts.get(provider)
            answer = queue.pop(0) if queue else None
            if answer is None and self.faults is not None:
                answer = self.faults.pick(
                    provider, path, body, message_id_of(provider, body, headers)
                )
            if answer is None:
                answer = _default(provider, path, body)
                if self.latency is not None:
                    answer.delay = self._latency_rng.uniform(*self.latency)
            accepted = answer.accept if answer.accept is not None else answer.status < 300
            recorded = Recorded(
                provider, method, path, headers, body, accepted, raw, answer, answer.fault
            )
            self.requests.append(recorded)
        if accepted and self.on_accept is not None and self._hooks is not None:
            self._hooks.submit(self._call_hook, recorded)
        return answer

    def _cut_short(self, method: str, path: str, headers: dict[str, str], raw: bytes) -> None:
        """A body that ended before its Content-Length: the caller died mid-request."""
        provider = _provider(path)
        with self._lock:
            self.requests.append(Recorded(provider, method, path, headers, raw, False, raw))

    def _call_hook(self, recorded: Recorded) -> None:
        assert self.on_accept is not None
        try:
            self.on_accept(recorded)
        except Exception:
            with self._lock:
                self.hook_errors.append(traceback.format_exc())

    def start(self) -> None:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            # One request per connection: no idle keep-alive thread for ``stop`` to wait on.
            protocol_version = "HTTP/1.0"
            timeout = 10

            def do_POST(self) -> None:  # noqa: N802 (http.server's naming)
                length = int(self.headers.get("Content-Length") or 0)
                path = urlsplit(self.path).path
                try:
                    raw = self.rfile.read(length)
                except OSError:
                    raw = b""
                if len(raw) < length:
                    fake._cut_short("POST", path, dict(self.headers.items()), raw)
                    self.close_connection = True
                    return
                answer = fake._answer("POST", path, dict(self.headers.items()), raw)
                # Wakes early when the server stops, so no handler thread outlives the test.
                if answer.delay and fake._stopping.wait(answer.delay):
                    return
                payload = b"" if answer.body is None else json.dumps(answer.body).encode()
                try:
                    self.send_response(answer.status)
                    for name, value in answer.headers.items():
                        self.send_header(name, value)
                    if payload:
                        self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(payload)))
                    self.end_headers()
                    self.wfile.write(payload)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up waiting (a timeout test): nothing to answer

            def log_message(self, format: str, *args: Any) -> None:
                pass  # recorded in ``requests`` instead of printed

        self._stopping.clear()
        # Its threads start with the first hook call, so an unused pool costs nothing.
        self._hooks = ThreadPoolExecutor(max_workers=4, thread_name_prefix="fake-on-accept")
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        # Handler threads are joined on close rather than left behind as daemons.
        self._server.daemon_threads = False
        self._server.block_on_close = True
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="fake-providers", daemon=True
        )
        self._thread.start()

    def stop(self) -> None:
        if self._server is None:
            return
        self._stopping.set()
        self._server.shutdown()
        self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
        if self._hooks is not None:
            # After the handlers are joined, so every accepted request's hook has run.
            self._hooks.shutdown(wait=True)
        self._server, self._thread, self._hooks = None, None, None

    def __enter__(self) -> FakeProviders:
        self.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.stop()
