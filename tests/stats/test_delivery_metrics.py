"""The whole loop: runs split into two variants email through the real SendGrid SDK, SendGrid's
signed Event Webhook reports what became of each mail, and the stats show it per send step and
per variant; `journeys render --stats` draws the same figures on the Mermaid graph."""

from __future__ import annotations

import asyncio
from collections import Counter
from pathlib import Path
from typing import Any

import yaml
from sqlalchemy import select
from temporalio.client import Client
from typer.testing import CliRunner

from temporal_journeys.cli import commands as cli
from temporal_journeys.store.db import Database
from temporal_journeys.store.models import Enrollment, Message
from temporal_journeys.workflows.starter import start_run
from tests.support import harness as h
from tests.support import signed_webhooks as sw
from tests.support import stats_rows as rows
from tests.support.api import Api
from tests.support.fake_providers import FakeProviders

# One contact has no email address: its send is skipped ("no_address").
CONTACTS = 9


def spec(key: str) -> dict[str, Any]:
    return {
        "key": key,
        "name": "Subject test",
        "trigger": {"event": "trial.started"},
        "steps": [
            {
                "id": "subject",
                "split": {
                    "variants": [
                        {"name": "plain", "weight": 1, "next": "upgrade-plain"},
                        {"name": "urgent", "weight": 1, "next": "upgrade-urgent"},
                    ]
                },
            },
            {
                "id": "upgrade-plain",
                "send": {"channel": "email", "template": "stats-plain"},
                "next": "hold",
            },
            {"id": "upgrade-urgent", "send": {"channel": "email", "template": "stats-urgent"}},
            {"id": "hold", "wait": "P30D"},
        ],
    }


# What SendGrid reports about the i-th message that went out (in message id order).
def reported(index: int) -> list[str]:
    events = ["processed"]
    if index == 5:
        return [*events, "bounce"]
    events.append("delivered")
    if index < 5:
        events.append("open")
    if index < 2:
        events.append("open")  # opened twice: one unique open
    if index in (0, 2):
        events.append("click")
    if index == 6:
        events.append("spamreport")
    if index == 7:
        events.append("unsubscribe")
    return events


def outcomes(events: list[str]) -> set[str]:
    """What one message counts as, from what SendGrid said of it."""
    found = {"sent"}
    if "bounce" in events:
        found.add("bounced")
    else:
        found.add("delivered")
    for event, outcome in (
        ("open", "opened"),
        ("click", "clicked"),
        ("spamreport", "complained"),
        ("unsubscribe", "unsubscribed"),
    ):
        if event in events:
            found.add(outcome)
    return found


FIGURES = ("sent", "delivered", "opened", "clicked", "bounced", "complained", "unsubscribed")


async def test_metrics_per_step_and_variant_come_from_signed_sendgrid_webhooks(
    api: Api,
    client: Client,
    engine_db: Database,
    signer: sw.SendGridSigner,
    sendgrid_worker: Any,
    served: dict[str, str],
    tmp_path: Path,
):
    fake: FakeProviders = sendgrid_worker.fake
    h.template(engine_db, "stats-plain", subject="Your trial", text="Upgrade")
    h.template(engine_db, "stats-urgent", subject="Last days!", text="Upgrade now")
    key = h.unique("subject-test")
    version, journey = h.publish(engine_db, spec(key))
    contacts = [h.contact(engine_db) for _ in range(CONTACTS - 1)]
    contacts.append(h.contact(engine_db, email=None))
    for contact in contacts:
        await start_run(
            client,
            journey=journey,
            version=version,
            contact_id=contact,
            task_queue=sendgrid_worker.queue,
            event=h.event("trial.started"),
        )
    await h.wait_until(lambda: settled(engine_db, key) == CONTACTS, "every send", seconds=60)
    # Runs record their variant with their progress, before the wait that follows the send.
    await h.wait_until(lambda: holding(engine_db, key) == CONTACTS, "every run at the wait")
    assert len(fake.accepted("sendgrid")) == CONTACTS - 1

    variant_of, messages = runs(engine_db, key)
    sent = [m for m in messages if m.status == "sent"]
    expected: dict[tuple[str, str], Counter[str]] = {}
    posted = []
    for index, message in enumerate(sent):
        events = reported(index)
        mail = rows.Sent(message.id, message.contact_id, message.to_address or "")
        posted.extend((mail, event) for event in events)
        cell = expected.setdefault((message.step_id, variant_of[message.id]), Counter())
        cell.update(outcomes(events))
    applied = await rows.post_sendgrid(api.http, signer, posted)
    assert applied["applied"] == len(posted) and applied["duplicates"] == 0

    response = await api.http.get(f"/v1/journeys/{key}/stats", headers=api.admin)
    assert response.status_code == 200, response.text
    [stats] = response.json()

    totals = stats["messages"]
    assert {name: totals[name] for name in FIGURES} == {
        "sent": 8,
        "delivered": 7,
        "opened": 5,  # seven open events, five messages
        "clicked": 2,
        "bounced": 1,
        "complained": 1,
        "unsubscribed": 1,
    }
    assert totals["skipped"] == 1 and totals["skipped_by_reason"] == {"no_address": 1}
    steps = {s["step"]: s for s in stats["steps"]}
    for (step, variant), counted in expected.items():
        shown = steps[step]["messages"]
        [per_variant] = [v for v in steps[step]["variants"] if v["variant"] == variant]
        for name in FIGURES:
            assert shown[name] == counted[name], (step, name)
            assert per_variant["messages"][name] == counted[name], (step, variant, name)
        assert per_variant["entered"] == sum(1 for v in variant_of.values() if v == variant)
    variants = {v["variant"]: v for v in stats["variants"]}
    for variant in ("plain", "urgent"):
        in_variant = [c for (_, v), c in expected.items() if v == variant]
        opened = sum(c["opened"] for c in in_variant)
        assert variants[variant]["messages"]["opened"] == opened
    if all(variants[v]["messages"]["sent"] for v in ("plain", "urgent")):
        assert "opened" in {t["rate"] for t in variants["urgent"]["tests"]}

    # The same figures on the Mermaid graph.
    path = tmp_path / "journey.yaml"
    path.write_text(yaml.safe_dump(spec(key)))
    result = await asyncio.to_thread(
        CliRunner().invoke, cli.app, ["render", "--stats", str(path)], env=served
    )
    assert result.exit_code == 0, result.output
    for step in ("upgrade-plain", "upgrade-urgent"):
        shown = steps[step]["messages"]
        if shown is None or not shown["sent"]:
            continue
        line = render_line(result.output, step)
        assert f"sent {shown['sent']}" in line
        assert f"opened {shown['opened']} ({shown['open_rate']:.0%})" in line
        assert f"clicked {shown['clicked']}" in line
    split_line = render_line(result.output, "subject")
    assert "plain" in split_line and "urgent" in split_line


def render_line(output: str, step: str) -> str:
    [line] = [line for line in output.splitlines() if f'"{step}<br/>' in line]
    return line


def settled(db: Database, key: str) -> int:
    with db.transaction() as session:
        statuses = session.scalars(select(Message.status).where(Message.journey_key == key))
        return sum(status in ("sent", "skipped") for status in statuses)


def holding(db: Database, key: str) -> int:
    with db.transaction() as session:
        steps = session.scalars(
            select(Enrollment.current_step).where(Enrollment.journey_key == key)
        )
        return sum(step == "hold" for step in steps)


def runs(db: Database, key: str) -> tuple[dict[str, str], list[Message]]:
    """Each message's variant (from its run's enrollment) and the messages in id order."""
    with db.transaction() as session:
        messages = list(
            session.scalars(select(Message).where(Message.journey_key == key).order_by(Message.id))
        )
        enrollments = {
            e.id: e.variant
            for e in session.scalars(select(Enrollment).where(Enrollment.journey_key == key))
        }
    variant_of = {}
    for message in messages:
        entry = message.idempotency_key.removeprefix(f"{message.workflow_id}/").split("/")[0]
        variant_of[message.id] = enrollments[entry]
    return variant_of, messages
