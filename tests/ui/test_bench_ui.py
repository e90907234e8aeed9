"""`bench/ui.py` at a small size: its set-based seed makes a store the pages read right (the
figures are the seeded ones), and every page it times answers."""

from __future__ import annotations

import re

import httpx

from bench import ui
from temporal_journeys.api.app import create_app
from temporal_journeys.journeys.settings import Settings
from temporal_journeys.store import keys
from temporal_journeys.store.db import Database

ENROLLMENTS = 2_000


async def test_the_seeded_store_reads_as_seeded_and_every_page_is_timed(own_postgres_url: str):
    db = Database(own_postgres_url)
    try:
        ui.seed(db, ENROLLMENTS)
        timings = await ui.time_pages(db, own_postgres_url, rounds=1)
        assert {t.page for t in timings} >= {"journeys", "journey", "stuck", "contact", "message"}
        assert all(t.server_ms and t.server_ms[0] > 0 for t in timings)
        assert "enrollments seeded" in ui.report(ENROLLMENTS, 1.0, timings)

        app = create_app(Settings(database_url=own_postgres_url), db=db, relay=False)
        with db.transaction() as session:
            admin = keys.create(session, "test", "admin")
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as http:
            await http.post("/ui/login", data={"key": admin})
            page = (await http.get(f"/ui/journeys/{ui.KEY}")).text
            stats = (
                await http.get(
                    f"/v1/journeys/{ui.KEY}/stats", headers={"Authorization": f"Bearer {admin}"}
                )
            ).json()
    finally:
        db.dispose()
    entered = re.search(r'data-step="wait-1h">.*?data-figure="entered">(\d+)<', page, re.S)
    assert entered is not None and entered[1] == str(ENROLLMENTS)
    # Path 0 of every ten waits at wait-1h, path 2 at wait-3d: their share of the runs.
    [version] = stats
    waiting = {s["step"]: s["waiting_now"] for s in version["steps"]}
    assert waiting["wait-1h"] == waiting["wait-3d"] == ENROLLMENTS // 10
    # The variants side by side, each rate of b tested against a, with the API's p-values.
    assert '<th data-variant="a">a <small>(control)</small></th>' in page
    assert '<th data-variant="b">b</th>' in page
    [b] = [v for v in version["variants"] if v["variant"] == "b"]
    opened = next(t for t in b["tests"] if t["rate"] == "opened")
    cell = re.search(
        r'data-variant="b" data-rate="opened">.*?data-figure="p_value">([^<]+)<', page, re.S
    )
    assert cell is not None and cell[1] == f"{opened['p_value']:.3g}"
    # Messages: one in five clicked, so the reminders' click rate is a fifth.
    reminder = next(s for s in version["steps"] if s["step"] == "reminder-a")
    assert reminder["messages"]["clicked"] == reminder["messages"]["sent"] // 5
