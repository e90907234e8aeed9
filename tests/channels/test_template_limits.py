"""Liquid with limits: a template whose loops or output run away is refused when saved (422
naming the part), stopped at send time if it slipped in another way, and never rendered while
the send holds a database transaction."""

from __future__ import annotations

import time

import pytest
from temporalio.client import Client

from temporal_journeys.activities import sends
from temporal_journeys.journeys.rendering import Rendered
from temporal_journeys.store.db import Database
from tests.support import channels
from tests.support import harness as h
from tests.support.api import Api
from tests.support.fake_providers import FakeProviders

NESTED_5000 = "{% for i in (1..5000) %}{% for j in (1..5000) %}x{% endfor %}{% endfor %}"


@pytest.mark.parametrize(
    ("part", "source"),
    [
        ("html", NESTED_5000),
        ("text", "{% for i in (1..5000) %}{{ i }}{% endfor %}"),
        ("subject", "{% for i in (1..100) %}{% for j in (1..100) %}x{% endfor %}{% endfor %}"),
        # No loop runs long, but the string it builds doubles 30 times (a gigabyte).
        (
            "text",
            "{% assign s = 'x' %}{% for i in (1..30) %}{% assign s = s | append: s %}"
            "{% endfor %}{{ s }}",
        ),
    ],
    ids=["5000x5000", "one-5000-range", "100x100", "doubling-string"],
)
async def test_a_template_that_runs_away_is_refused_when_saved(
    api: Api,  # noqa: F811
    part: str,
    source: str,
):
    body = {"channel": "email", "subject": "Hi", "text": "Hi", part: source}
    began = time.monotonic()

    response = await api.http.put("/v1/templates/ch-runaway", json=body, headers=api.admin)

    assert response.status_code == 422, response.text
    [problem] = response.json()["detail"]
    assert problem["path"] == f"$.{part}"
    assert "limit" in problem["message"]
    assert time.monotonic() - began < 5
    missing = await api.http.get("/v1/templates/ch-runaway", headers=api.admin)
    assert missing.status_code == 404


async def test_a_template_with_small_loops_and_traits_is_saved(api: Api):  # noqa: F811
    body = {
        "channel": "email",
        "subject": "Hi {{ contact.first_name }}",
        "html": "{% for i in (1..20) %}<p>{{ i }} {{ event.items[i].name }}</p>{% endfor %}",
    }

    response = await api.http.put("/v1/templates/ch-small-loops", json=body, headers=api.admin)

    assert response.status_code == 200, response.text


async def test_a_runaway_template_stored_anyway_fails_its_message_at_send_time(
    channel_client: Client, engine_db: Database, fake_providers: FakeProviders
):
    # Written to the store directly: the API would have refused it.
    loop = "{% for i in (1..3000) %}{% for j in (1..100) %}x{% endfor %}{% endfor %}"
    h.template(engine_db, "ch-runaway-stored", subject="Hi", text=loop)
    contact = h.contact(engine_db)

    result, view = await channels.run_send(
        channel_client, engine_db, contact, "email", "ch-runaway-stored"
    )

    assert result.status == "completed"
    assert channels.step_kinds(view) == [("send", "failed"), ("fallback", "updated")]
    [message] = h.messages(engine_db, contact)
    assert message.status == "failed"
    assert "loop iteration limit" in (message.error or "")
    assert fake_providers.of("sendgrid") == []


async def test_a_template_is_rendered_outside_any_database_transaction(
    channel_client: Client,
    engine_db: Database,
    fake_providers: FakeProviders,
    monkeypatch: pytest.MonkeyPatch,
):
    """A slow render must hold no connection, row lock or transaction open."""
    open_connections: list[int] = []
    real_render = sends.render

    def watched(*args: object, **kwargs: object) -> Rendered:
        open_connections.append(engine_db.engine.pool.checkedout())  # type: ignore[attr-defined]
        return real_render(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(sends, "render", watched)
    h.template(engine_db, "ch-rendered-alone", subject="Hi {{ contact.email }}", text="Hi")
    contact = h.contact(engine_db)

    result, view = await channels.run_send(
        channel_client, engine_db, contact, "email", "ch-rendered-alone"
    )

    assert channels.step_kinds(view) == [("send", "sent")]
    assert open_connections == [0], f"connections checked out while rendering: {open_connections}"
