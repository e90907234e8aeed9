"""Concurrent writers to one contact lose nothing, on Postgres and on SQLite.

Issue 14, item 5: SQLite ran the read of a read-modify-write outside any transaction (the
driver's deferred BEGIN) and ignores ``FOR UPDATE``, so twenty clients scoring one contact at
once overwrote each other's increments."""

from __future__ import annotations

import threading
from collections.abc import Callable

import pytest

from temporal_journeys.journeys.spec import Update
from temporal_journeys.store import contacts
from temporal_journeys.store.db import Database

WRITERS = 20


def _all_at_once(work: Callable[[int], None]) -> None:
    """Run ``work(n)`` for each writer in its own thread, released together."""
    start = threading.Barrier(WRITERS)
    failures: list[BaseException] = []

    def writer(n: int) -> None:
        start.wait()
        try:
            work(n)
        except BaseException as exc:  # noqa: BLE001 - reported by the test
            failures.append(exc)

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(WRITERS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    assert failures == []


@pytest.mark.parametrize("exists", [True, False], ids=["existing", "new"])
def test_twenty_concurrent_score_updates_to_one_contact_all_count(db: Database, exists: bool):
    if exists:
        with db.transaction() as session:
            contacts.get_or_create(session, "racer")

    def score(n: int) -> None:
        with db.transaction() as session:
            contacts.apply_update(session, "racer", Update(score={"lead": 1}), f"race/{n}")

    _all_at_once(score)

    with db.transaction() as session:
        snap = contacts.snapshot(contacts.get_or_create(session, "racer"))
    assert snap.scores == {"lead": float(WRITERS)}


def test_twenty_concurrent_identifies_of_one_contact_keep_every_trait(db: Database):
    def identify(n: int) -> None:
        with db.transaction() as session:
            contacts.upsert(session, "traits", {f"t{n}": n})

    _all_at_once(identify)

    with db.transaction() as session:
        snap = contacts.snapshot(contacts.get_or_create(session, "traits"))
    assert snap.traits == {f"t{n}": n for n in range(WRITERS)}
