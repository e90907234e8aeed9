"""A fake SendGrid, Twilio and webhook receiver: real HTTP on 127.0.0.1 for the real SDK clients.

Point ``sendgrid_base_url`` and ``twilio_base_url`` at ``FakeProviders.url`` and webhook
templates at ``<url>/hooks/...``. Every request is recorded; by default each is answered as the
real service answers (SendGrid 202 with ``X-Message-Id``, Twilio 201 with a Message resource,
hooks 200). ``script`` queues other answers (400, 429, 5xx, slow) per provider, used in order
before the default comes back.

``Recorded.accepted`` is what the provider would have done with the message: an answer under
300 is accepted even when it comes too late for the client (a slow answer after the message was
taken), and ``Answer(accept=True)`` marks a 5xx as accepted too (a 500 after the provider queued
it). Tests count ``accepted(provider)`` to prove a message went out exactly once.
"""

from __future__ import annotations

import json
import threading
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, urlsplit

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


@dataclass
class Answer:
    status: int
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0
    accept: bool | None = None
    """Record the request as accepted whatever the status (None: accepted when status < 300)."""


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

    def __init__(self) -> None:
        self.url = ""
        self.requests: list[Recorded] = []
        self._scripts: dict[str, list[Answer]] = {}
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

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

    def reset(self) -> None:
        """Forget recorded requests and unused scripted answers (between tests)."""
        with self._lock:
            self.requests.clear()
            self._scripts.clear()

    def _answer(self, method: str, path: str, headers: dict[str, str], raw: bytes) -> Answer:
        provider = _provider(path)
        body = _parse(headers.get("Content-Type", ""), raw)
        with self._lock:
            queue = self._scripts.get(provider)
            answer = queue.pop(0) if queue else _default(provider, path, body)
            accepted = answer.accept if answer.accept is not None else answer.status < 300
            self.requests.append(Recorded(provider, method, path, headers, body, accepted, raw))
        return answer

    def start(self) -> None:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            # One request per connection: no idle keep-alive thread for ``stop`` to wait on.
            protocol_version = "HTTP/1.0"
            timeout = 10

            def do_POST(self) -> None:  # noqa: N802 (http.server's naming)
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length)
                path = urlsplit(self.path).path
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
        self._server, self._thread = None, None

    def __enter__(self) -> FakeProviders:
        self.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.stop()
