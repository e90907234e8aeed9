"""The API never waits for the database on its event loop. On SQLite every transaction begins
with BEGIN IMMEDIATE, which waits for the write lock, and the relay holds that lock across
Temporal calls answered on the same loop: a route that waited for the lock there stopped the
holder and itself until SQLite's busy timeout (``journeys dev`` stalled 30 s in CI). Async code
opens its transactions with ``Database.run`` or ``Database.held_transaction``, in a thread."""

from __future__ import annotations

import ast
import asyncio
import threading
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path

import httpx
import pytest

from temporal_journeys.api.app import create_app
from temporal_journeys.api.errors import Conflict, NotFound
from temporal_journeys.api.routes import journeys as journey_routes
from temporal_journeys.api.schemas import BroadcastIn
from temporal_journeys.api.services import broadcasts, contacts, journeys, segments
from temporal_journeys.journeys.settings import Settings
from temporal_journeys.journeys.validation import SpecInvalid
from temporal_journeys.store import contacts as contacts_store
from temporal_journeys.store.db import Database
from temporal_journeys.store.migrate import upgrade

ROOT = Path(__file__).resolve().parents[2]
# Where a loop is shared: requests and the relay (api), activities and the worker, and the
# commands that run a worker and a relay beside their own steps (`journeys simulate`, `dev`).
SERVED = ("api", "activities", "workflows", "cli")

SEGMENT = {"key": "vip", "name": "VIP", "condition": {"tag": "vip"}}
SETTINGS = Settings(database_url="sqlite://")
# Each async service a route awaits, as the route calls it (no Temporal client: what they do
# before they would need one). A route's key check runs in a thread and could take the wait
# for it, so the services are called here directly.
CALLS: dict[str, Callable[[Database], Awaitable[object]]] = {
    "publish": lambda db: journey_routes.publish("welcome", db, None, SETTINGS),
    "change_status": lambda db: journeys.change_status(db, None, "welcome", "pause", SETTINGS),
    "enroll": lambda db: journeys.enroll(db, None, "welcome", ["ada"], {}, "q"),  # type: ignore[arg-type]
    "journeys_of": lambda db: contacts.journeys_of(db, None, "ada"),
    "erase": lambda db: contacts.erase(db, None, None, "bob"),
    "put segment": lambda db: segments.put(db, None, "vip", SEGMENT, "q"),
    "delete segment": lambda db: segments.delete(db, None, "unknown"),
    "create broadcast": lambda db: broadcasts.create(
        db,
        None,
        BroadcastIn(segment="unknown", template="none"),
        "q",  # type: ignore[arg-type]
    ),
    "control broadcast": lambda db: broadcasts.control(db, None, "bc_unknown", "pause"),  # type: ignore[arg-type]
}
REFUSALS = (NotFound, Conflict, SpecInvalid)


@pytest.fixture(scope="module")
def sqlite_db(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Database]:
    url = f"sqlite:///{tmp_path_factory.mktemp('loop') / 'journeys.db'}"
    upgrade(url)
    db = Database(url)
    with db.transaction() as session:
        contacts_store.upsert(session, "ada", {})
        contacts_store.upsert(session, "bob", {})
    yield db
    db.dispose()


async def _while_the_lock_is_held(db: Database, work: Awaitable[object]) -> object:
    """``work`` awaited while another thread holds SQLite's write lock and, as the relay does,
    waits for an answer from this event loop before it commits."""
    loop = asyncio.get_running_loop()
    locked = threading.Event()

    def relay_like_holder() -> None:
        with db.transaction() as session:
            session.connection()  # BEGIN IMMEDIATE: the write lock, until the commit
            locked.set()
            asyncio.run_coroutine_threadsafe(asyncio.sleep(0.3), loop).result(timeout=5)

    holder = asyncio.create_task(asyncio.to_thread(relay_like_holder))
    await asyncio.to_thread(locked.wait)
    try:
        answer: object = await work
    except REFUSALS as exc:
        answer = exc
    # A TimeoutError here: ``work`` held the loop while it waited for the lock.
    await holder
    return answer


@pytest.mark.parametrize("name", list(CALLS))
async def test_a_service_waiting_for_the_write_lock_leaves_the_loop_to_the_lock_holder(
    sqlite_db: Database, name: str
) -> None:
    await _while_the_lock_is_held(sqlite_db, CALLS[name](sqlite_db))


async def test_signing_in_while_the_lock_is_held_leaves_the_loop_to_its_holder(
    sqlite_db: Database,
) -> None:
    app = create_app(Settings(database_url=str(sqlite_db.engine.url)), db=sqlite_db, relay=False)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://api.test") as http:
        sign_in = http.post("/ui/login", data={"key": "jk_admin_unknown", "next": "/ui"})
        response = await _while_the_lock_is_held(sqlite_db, sign_in)
    assert isinstance(response, httpx.Response) and response.status_code == 401


def _blocking_transactions(source: str, name: str) -> list[str]:
    """``with <...>.transaction()`` or ``.connection()`` directly in an async function."""
    found = []

    def visit(node: ast.AST, in_async: bool) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.AsyncFunctionDef):
                visit(child, True)
            elif isinstance(child, (ast.FunctionDef, ast.Lambda)):
                visit(child, False)
            else:
                if in_async and isinstance(child, ast.With):
                    for item in child.items:
                        call = item.context_expr
                        if (
                            isinstance(call, ast.Call)
                            and isinstance(call.func, ast.Attribute)
                            and call.func.attr in ("transaction", "connection")
                        ):
                            found.append(f"{name}:{child.lineno}")
                visit(child, in_async)

    visit(ast.parse(source), False)
    return found


def test_no_async_function_of_a_server_opens_a_transaction_on_its_loop() -> None:
    files = [path for folder in SERVED for path in sorted((ROOT / folder).rglob("*.py"))]
    assert len(files) > 20
    found = [
        where
        for path in files
        for where in _blocking_transactions(path.read_text(), str(path.relative_to(ROOT)))
    ]
    assert found == []


def test_the_scan_finds_a_transaction_opened_on_the_loop() -> None:
    sample = (
        "async def route(db):\n"
        "    with db.transaction() as session:\n"
        "        pass\n"
        "async def fine(db):\n"
        "    def inner():\n"
        "        with db.transaction():\n"
        "            pass\n"
        "    async with db.held_transaction():\n"
        "        pass\n"
    )
    assert _blocking_transactions(sample, "sample.py") == ["sample.py:2"]
