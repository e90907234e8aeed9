"""The pages' answers to what they cannot show: an unknown journey, version, contact or
message is a 404 page, a bad time range a 422 page naming the field, never a 500."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest_asyncio

from temporal_journeys.api.app import create_app
from temporal_journeys.journeys.settings import Settings
from temporal_journeys.journeys.validation import parse_journey
from temporal_journeys.store import journeys as journeys_store
from temporal_journeys.store import keys
from temporal_journeys.store.db import Database

HTML = {"Accept": "text/html"}
JOURNEY = {
    "key": "hello",
    "name": "Hello <b>there</b>",
    "trigger": {"event": "signed.up"},
    "steps": [{"id": "pause", "wait": "PT1H"}, {"id": "bye", "exit": {}}],
}


@pytest_asyncio.fixture
async def http(db: Database) -> AsyncIterator[httpx.AsyncClient]:
    url = db.engine.url.render_as_string(hide_password=False)
    app = create_app(Settings(database_url=url), db=db, relay=False)
    with db.transaction() as session:
        admin = keys.create(session, "operator", "admin")
        journeys_store.publish(session, parse_journey(JOURNEY))
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://ui.test") as client:
        await client.post("/ui/login", data={"key": admin})
        yield client


async def test_a_journey_without_runs_is_drawn_with_zeros_and_its_name_escaped(http):
    page = await http.get("/ui/journeys/hello", headers=HTML)
    assert page.status_code == 200
    assert "Hello &lt;b&gt;there&lt;/b&gt;" in page.text and "<b>there</b>" not in page.text
    assert page.text.count('class="step"') == 2
    assert 'data-step="pause"' in page.text and 'data-figure="entered">0<' in page.text


async def test_what_does_not_exist_is_a_404_page(http):
    for path in (
        "/ui/journeys/nope",
        "/ui/journeys/hello?version=9",
        "/ui/journeys/nope/stuck",
        "/ui/contacts/nobody",
        "/ui/messages/m-none",
    ):
        page = await http.get(path, headers=HTML)
        assert page.status_code == 404, path
        assert "not found" in page.text, path


async def test_a_bad_time_range_is_a_422_page_naming_the_field(http):
    page = await http.get("/ui/journeys/hello?from=yesterday", headers=HTML)
    assert page.status_code == 422 and "from: &#39;yesterday&#39; is not a date" in page.text
    page = await http.get(
        "/ui/journeys/hello?from=2026-12-02T00:00&to=2026-12-01T00:00", headers=HTML
    )
    assert page.status_code == 422 and "$.query.from" in page.text
    page = await http.get("/ui/journeys/hello?from=&to=", headers=HTML)  # the empty form
    assert page.status_code == 200


async def test_the_stuck_view_of_a_quiet_journey_says_nobody_is_stuck(http):
    page = await http.get("/ui/journeys/hello/stuck", headers=HTML)
    assert page.status_code == 200 and 'id="nobody-stuck"' in page.text
