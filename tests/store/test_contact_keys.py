"""Contacts' data keys in the store: wrapped by the deployment's newest key, still opened after
a rotation, one per contact however many processes race to make it, and on SQLite kept in a
file of their own so that a process holding the database's write lock can still seal."""

from __future__ import annotations

import asyncio
import base64
import os
import threading
from pathlib import Path

from sqlalchemy import select

from temporal_journeys.journeys.settings import Settings
from temporal_journeys.store.contact_keys import ContactKeyring, keyring
from temporal_journeys.store.db import Database
from temporal_journeys.store.migrate import upgrade
from temporal_journeys.store.models import ContactKey

K1, K2 = (base64.b64encode(os.urandom(32)).decode() for _ in range(2))


def _ring(db: Database, keys: str) -> ContactKeyring:
    ring = keyring(db, Settings(encryption_keys=keys))
    assert isinstance(ring, ContactKeyring)
    return ring


def test_no_keyring_without_encryption(engine_db: Database):
    assert keyring(engine_db, Settings(encryption_keys="")) is None


async def test_a_data_key_is_stored_wrapped_and_opens_after_rotation(engine_db: Database):
    key_id, data_key = await _ring(engine_db, f"k1:{K1}").current("rotated-contact")
    with engine_db.transaction() as session:
        row = session.scalars(select(ContactKey).where(ContactKey.id == key_id)).one()
    assert row.wrapped_with == "k1" and data_key not in row.wrapped

    # k2 added and current: the key made under k1 still opens, and stays the contact's.
    rotated = _ring(engine_db, f"k1:{K1},k2:{K2}")
    assert await rotated.find(key_id) == data_key
    assert await rotated.current("rotated-contact") == (key_id, data_key)
    assert (await rotated.current("new-contact"))[0] != key_id
    with engine_db.transaction() as session:
        newer = session.scalars(select(ContactKey).where(ContactKey.contact == "new-contact")).one()
    assert newer.wrapped_with == "k2"
    assert rotated.destroy("rotated-contact") and rotated.destroy("new-contact")


async def test_processes_racing_for_a_contacts_key_all_get_the_same_one(engine_db: Database):
    rings = [_ring(engine_db, f"k1:{K1}") for _ in range(6)]
    made = await asyncio.gather(*(ring.current("raced-contact") for ring in rings))
    assert len(set(made)) == 1
    assert rings[0].destroy("raced-contact")


async def test_on_sqlite_keys_live_beside_the_database_and_seal_while_it_is_locked(
    tmp_path: Path,
):
    url = f"sqlite:///{tmp_path / 'journeys.db'}"
    upgrade(url)
    db = Database(url)
    try:
        ring = _ring(db, f"k1:{K1}")
        # SQLite's write lock held, as the relay holds it while it starts a run.
        with db.transaction() as session:
            session.connection()  # BEGIN IMMEDIATE: the lock is taken
            key_id, _ = await asyncio.wait_for(ring.current("locked-contact"), timeout=5)
        assert (tmp_path / "journeys.db-keys").exists()
        assert await _ring(db, f"k1:{K1}").find(key_id) is not None
    finally:
        db.dispose()


async def test_on_postgres_keys_come_through_connections_of_their_own(postgres_url: str):
    """Starters hold a connection while they start a run; with every connection of their pool
    held, the codec must still reach the key (it once waited on its own starters)."""
    db = Database(postgres_url, pool_size=1, max_overflow=0)
    try:
        ring = _ring(db, f"k1:{K1}")
        async with db.held_connection():
            made = await asyncio.wait_for(ring.current("starved-contact"), timeout=5)
        assert await ring.find(made[0]) == made[1]
        assert ring.destroy("starved-contact")
    finally:
        db.dispose()


async def test_keys_come_through_threads_of_their_own(engine_db: Database):
    """Starters check connections out in asyncio's default threads; with every one of those
    threads blocked, the codec must still reach the key."""
    ring = _ring(engine_db, f"k1:{K1}")
    release = threading.Event()
    loop = asyncio.get_running_loop()
    blocked = [loop.run_in_executor(None, release.wait) for _ in range(64)]
    try:
        made = await asyncio.wait_for(ring.current("threadless-contact"), timeout=5)
    finally:
        release.set()
        await asyncio.gather(*blocked)
    assert ring.destroy("threadless-contact") and made[0]
