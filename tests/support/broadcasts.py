"""Broadcast tests' helpers: an audience (contacts, a segment of exactly them, backfilled), a
template, a broadcast created by API and awaited, and what each recipient was sent."""

from __future__ import annotations

import asyncio
import json
import os
import time
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import delete, insert, select
from temporalio.client import Client
from temporalio.testing import WorkflowEnvironment

from temporal_journeys.store.db import Database
from temporal_journeys.store.models import (
    Broadcast,
    BroadcastRecipient,
    Contact,
    Message,
    SegmentMember,
    SegmentRow,
)
from temporal_journeys.workflows.segments import backfill_id
from tests.support import harness as h

HISTORIES = Path(__file__).resolve().parents[1] / "broadcasts" / "histories"


def add_contacts(db: Database, prefix: str, count: int, **traits: Any) -> list[str]:
    """``count`` contacts ``<prefix>-0000``..., each with an email and ``batch: prefix``;
    ``timezone`` among ``traits`` sets their zone."""
    zone = traits.pop("timezone", "UTC")
    now = datetime.now(UTC)
    ids = [f"{prefix}-{n:04d}" for n in range(count)]
    with db.transaction() as session:
        session.execute(
            insert(Contact),
            [
                {
                    "id": contact_id,
                    "email": f"{contact_id}@example.com",
                    "timezone": zone,
                    "traits": {"batch": prefix, "first_name": "Ada", **traits},
                    "tags": [],
                    "scores": {},
                    "unsubscribed": [],
                    "created_at": now,
                    "updated_at": now,
                }
                for contact_id in ids
            ],
        )
    return ids


async def segment_of_batch(
    http: httpx.AsyncClient, admin: dict[str, str], client: Client | None, prefix: str
) -> str:
    """A segment whose members are the contacts of ``prefix``, backfilled."""
    key = f"bc-{prefix}"[:100]
    response = await http.put(
        f"/v1/segments/{key}",
        json={"name": key, "condition": {"trait": "batch", "eq": prefix}},
        headers=admin,
    )
    assert response.status_code == 200, response.text
    if client is not None:
        await client.get_workflow_handle(backfill_id(key, 1)).result()
    return key


async def create(http: httpx.AsyncClient, admin: dict[str, str], **body: Any) -> dict[str, Any]:
    response = await http.post("/v1/broadcasts", json=body, headers=admin)
    assert response.status_code == 201, response.text
    return response.json()


async def until_status(
    http: httpx.AsyncClient,
    admin: dict[str, str],
    broadcast_id: str,
    statuses: tuple[str, ...],
    seconds: float = 60,
    *,
    started: bool = False,
) -> dict[str, Any]:
    """The broadcast once its status is one of ``statuses`` (and, with ``started``, its
    snapshot is taken)."""
    deadline = time.monotonic() + seconds
    while True:
        body = (await http.get(f"/v1/broadcasts/{broadcast_id}", headers=admin)).json()
        if body["status"] in statuses and (body["total"] is not None or not started):
            return body
        if time.monotonic() > deadline:
            raise AssertionError(f"broadcast {broadcast_id} still {body} after {seconds:.0f} s")
        await asyncio.sleep(0.1)


async def result(env: WorkflowEnvironment, client: Client, created: dict[str, Any]) -> Any:
    """The run's result, the time-skipping server's clock skipping timers meanwhile (a handle
    not returned by ``start_workflow`` does not skip by itself)."""
    handle = client.get_workflow_handle(created["workflow_id"])
    async with env.time_skipping_unlocked():  # type: ignore[attr-defined]
        return await handle.result()


async def record(client: Client, created: dict[str, Any], name: str) -> None:
    """Keep the run's history for the replay test when JOURNEYS_RECORD_HISTORIES=1."""
    if os.environ.get("JOURNEYS_RECORD_HISTORIES") != "1":
        return
    history = await client.get_workflow_handle(created["workflow_id"]).fetch_history()
    HISTORIES.mkdir(exist_ok=True)
    document = {"workflow_id": created["workflow_id"], "history": json.loads(history.to_json())}
    (HISTORIES / f"{name}.json").write_text(json.dumps(document, indent=1) + "\n")


def messages(db: Database, broadcast_id: str) -> list[Message]:
    with db.transaction() as session:
        return list(
            session.scalars(
                select(Message).where(Message.workflow_id == f"broadcast/{broadcast_id}")
            )
        )


def per_contact(db: Database, broadcast_id: str) -> Counter[str]:
    return Counter(m.contact_id for m in messages(db, broadcast_id))


def forget(db: Database, prefix: str) -> None:
    """Remove a test's segment and broadcasts, so later ingest in the shared database does not
    evaluate them."""
    key = f"bc-{prefix}"[:100]
    with db.transaction() as session:
        ids = list(session.scalars(select(Broadcast.id).where(Broadcast.segment_key == key)))
        session.execute(delete(BroadcastRecipient).where(BroadcastRecipient.broadcast_id.in_(ids)))
        session.execute(delete(Broadcast).where(Broadcast.id.in_(ids)))
        session.execute(delete(SegmentMember).where(SegmentMember.segment_key == key))
        session.execute(delete(SegmentRow).where(SegmentRow.key == key))


unique = h.unique
