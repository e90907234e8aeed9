"""A segment's refresh schedule on a real Temporal dev server (the time-skipping server has no
schedules), over SQLite this time: created for a window segment, fired, and the contact whose
only order has aged out of the window leaves the segment without sending anything; deleting
the segment deletes its schedule."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
import pytest_asyncio
from sqlalchemy import select
from temporalio.client import Client
from temporalio.service import RPCError, RPCStatusCode
from temporalio.worker import Worker

from temporal_journeys.api.app import create_app
from temporal_journeys.journeys.settings import Settings
from temporal_journeys.plugin import JourneysPlugin
from temporal_journeys.store import keys
from temporal_journeys.store.db import Database
from temporal_journeys.store.migrate import upgrade
from temporal_journeys.store.models import Event
from temporal_journeys.workflows import search_attributes
from temporal_journeys.workflows.codec import data_converter
from temporal_journeys.workflows.segments import schedule_id
from tests.support import harness as h
from tests.support.dev_server import DevServer, DevStack

pytestmark = pytest.mark.slow


@pytest_asyncio.fixture
async def stack(tmp_path: Path) -> AsyncIterator[DevStack]:
    url = f"sqlite:///{tmp_path / 'journeys.db'}"
    upgrade(url)
    server = DevServer(tmp_path)
    db = Database(url)
    settings = Settings(
        database_url=url,
        temporal_address=f"127.0.0.1:{server.port}",
        task_queue=h.unique("segments"),
    )
    try:
        client = await Client.connect(
            settings.temporal_address, data_converter=data_converter(settings)
        )
        await search_attributes.register(client, client.namespace)
        app = create_app(settings, temporal=client, db=db, relay=False)
        with db.transaction() as session:
            admin = {"Authorization": "Bearer " + keys.create(session, "admin", "admin")}
            track = {"Authorization": "Bearer " + keys.create(session, "app", "track")}
        transport = httpx.ASGITransport(app=app)
        async with (
            Worker(
                client, task_queue=settings.task_queue, plugins=[JourneysPlugin(settings, db=db)]
            ),
            httpx.AsyncClient(transport=transport, base_url="http://api.test") as http,
        ):
            yield DevStack(server, db, url, client, app, http, admin, track)
    finally:
        server.stop()
        db.dispose()


async def test_the_schedule_of_a_window_segment_moves_contacts_out_as_time_passes(
    stack: DevStack,
):
    order_at = datetime.now(UTC) - timedelta(minutes=60) + timedelta(seconds=3)
    response = await stack.http.post(
        "/v1/track",
        json={"userId": "ada", "event": "order.completed", "timestamp": order_at.isoformat()},
        headers=stack.track,
    )
    assert response.status_code == 202
    document = {
        "name": "Bought in the last hour",
        "refresh": "PT1M",
        "condition": {"event": "order.completed", "within": "PT1H"},
    }
    response = await stack.http.put(
        "/v1/segments/bought-lately", json=document, headers=stack.admin
    )
    assert response.status_code == 200
    assert response.json()["refreshed_by_schedule"] == schedule_id("bought-lately")
    backfill = stack.client.get_workflow_handle(response.json()["backfill_workflow_id"])
    assert (await backfill.result())["entered"] == 1

    schedule = stack.client.get_schedule_handle(schedule_id("bought-lately"))
    described = await schedule.describe()
    assert described.schedule.spec.intervals[0].every == timedelta(minutes=1)

    await asyncio.sleep(
        max(0.0, (order_at + timedelta(hours=1) - datetime.now(UTC)).total_seconds()) + 0.5
    )
    before = len(described.info.recent_actions)
    triggered_at = datetime.now(UTC)
    await schedule.trigger()
    for _ in range(300):
        described = await schedule.describe()
        fired = described.info.recent_actions[before:]
        if any(action.started_at >= triggered_at for action in fired):
            break
        await asyncio.sleep(0.1)
    else:
        raise AssertionError("the schedule did not fire")
    # Its every-minute fire may come first, once the hour is over: then that one moves ada
    # out and the triggered one finds nothing left. Either way, one exit, by the schedule.
    exited: dict[str, int] = {}
    for action in fired:
        result = await stack.client.get_workflow_handle(action.action.workflow_id).result()
        for key, count in result["exited"].items():
            exited[key] = exited.get(key, 0) + count
    assert exited == {"bought-lately": 1}
    count = await stack.http.get("/v1/segments/bought-lately/count", headers=stack.admin)
    assert count.json()["count"] == 0
    with stack.db.transaction() as session:
        names = session.scalars(
            select(Event.name).where(Event.name.like("segment.%")).order_by(Event.id)
        ).all()
    assert names == ["segment.entered", "segment.exited"]

    assert (
        await stack.http.delete("/v1/segments/bought-lately", headers=stack.admin)
    ).status_code == 204
    with pytest.raises(RPCError) as gone:
        await schedule.describe()
    assert gone.value.status == RPCStatusCode.NOT_FOUND
