"""Contacts' data keys: the rows, and the keyring the payload codec draws on.

A data key is 32 random bytes, stored wrapped (AES-256-GCM) by the newest of the settings'
encryption keys and bound to its id and contact, so a row cannot be moved to another contact.
Erasure deletes the row: the codec then cannot open the contact's payloads anywhere.

The keyring reaches the keys through connections and threads of its own. Starters hold a
connection (and on SQLite the write lock) while they start a run, and starting it makes the
codec read or make the contact's key: through the starters' own pool, or behind their checkouts
in asyncio's default threads, enough concurrent starts would wait on themselves. On Postgres
the keys live in the project's database; on SQLite in a file of their own beside it, since
SQLite's lock is the whole file's."""

from __future__ import annotations

import asyncio
import os
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from temporal_journeys.journeys.settings import ENCRYPTION_KEYS, Settings
from temporal_journeys.store.db import Database
from temporal_journeys.store.models import ContactKey, utcnow
from temporal_journeys.store.upserts import insert_ignoring_duplicates

DATA_KEY_BYTES = 32
NONCE_BYTES = 12
# How long a process trusts a data key it read. The process that erases forgets the key at
# once; any other process (another API, a worker) may still use it this long.
CACHE_SECONDS = 60.0
KEY_THREADS = 4

T = TypeVar("T")


def of_contact(session: Session, contact: str) -> ContactKey | None:
    return session.scalars(select(ContactKey).where(ContactKey.contact == contact)).first()


def by_id(session: Session, key_id: str) -> ContactKey | None:
    return session.get(ContactKey, key_id)


def add_unless_present(session: Session, row: ContactKey) -> ContactKey:
    """The contact's key: ``row`` if it had none, else the one another process made first."""
    values = {c.name: getattr(row, c.name) for c in ContactKey.__table__.columns}
    insert_ignoring_duplicates(session, ContactKey, [values])
    found = of_contact(session, row.contact)
    assert found is not None  # inserted, or there already
    return found


def remove(session: Session, contact: str) -> bool:
    """Delete the contact's data key; whether it had one."""
    return bool(session.execute(delete(ContactKey).where(ContactKey.contact == contact)).rowcount)


class ContactKeyring:
    """``workflows.codec.ContactKeys`` over the store, with a short cache: the worker and the
    relay seal every payload of a run, and a data key changes only by being destroyed."""

    def __init__(self, db: Database, settings: Settings) -> None:
        self._db = db
        self._wrapping = {
            key_id: AESGCM(key.get_secret_value())
            for key_id, key in settings.encryption_keys.items()
        }
        if not self._wrapping:
            raise ValueError(f"{ENCRYPTION_KEYS}: contact keys are wrapped by these; none set")
        self._wrap_with = list(self._wrapping)[-1]
        self._by_contact: dict[str, tuple[float, str, bytes]] = {}
        self._by_id: dict[str, tuple[float, bytes]] = {}
        self._threads = ThreadPoolExecutor(KEY_THREADS, thread_name_prefix="contact-keys")

    async def current(self, contact: str) -> tuple[str, bytes]:
        cached = self._by_contact.get(contact)
        if cached is not None and cached[0] > time.monotonic():
            return cached[1], cached[2]
        row = await self._off_loop(self._current_row, contact)
        data_key = self._unwrap(row)
        self._remember(row.id, contact, data_key)
        return row.id, data_key

    async def find(self, key_id: str) -> bytes | None:
        cached = self._by_id.get(key_id)
        if cached is not None and cached[0] > time.monotonic():
            return cached[1]
        row = await self._off_loop(self._row, key_id)
        if row is None:
            return None
        data_key = self._unwrap(row)
        self._remember(row.id, row.contact, data_key)
        return data_key

    def destroy(self, contact: str) -> bool:
        """Delete the contact's data key for good; whether it had one."""
        cached = self._by_contact.pop(contact, None)
        if cached is not None:
            self._by_id.pop(cached[1], None)
        with self._db.transaction() as session:
            return remove(session, contact)

    async def _off_loop(self, call: Callable[..., T], *args: Any) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._threads, call, *args)

    def _remember(self, key_id: str, contact: str, data_key: bytes) -> None:
        until = time.monotonic() + CACHE_SECONDS
        self._by_contact[contact] = (until, key_id, data_key)
        self._by_id[key_id] = (until, data_key)

    def _current_row(self, contact: str) -> ContactKey:
        with self._db.transaction() as session:
            found = of_contact(session, contact)
            if found is not None:
                return found
            key_id = uuid.uuid4().hex
            nonce = os.urandom(NONCE_BYTES)
            sealed = self._wrapping[self._wrap_with].encrypt(
                nonce, os.urandom(DATA_KEY_BYTES), _bound(key_id, contact)
            )
            row = ContactKey(
                id=key_id,
                contact=contact,
                wrapped=nonce + sealed,
                wrapped_with=self._wrap_with,
                created_at=utcnow(),
            )
            return add_unless_present(session, row)

    def _row(self, key_id: str) -> ContactKey | None:
        with self._db.transaction() as session:
            return by_id(session, key_id)

    def _unwrap(self, row: ContactKey) -> bytes:
        wrapping = self._wrapping.get(row.wrapped_with)
        if wrapping is None:
            raise ValueError(
                f"contact key {row.id} is wrapped by key id {row.wrapped_with!r}, which is not "
                f"in {ENCRYPTION_KEYS} (configured: {', '.join(self._wrapping)})"
            )
        nonce, sealed = row.wrapped[:NONCE_BYTES], row.wrapped[NONCE_BYTES:]
        try:
            return wrapping.decrypt(nonce, sealed, _bound(row.id, row.contact))
        except InvalidTag:
            raise ValueError(f"contact key {row.id} does not authenticate: altered") from None


def keyring(db: Database, settings: Settings) -> ContactKeyring | None:
    """The deployment's keyring: one exactly when payloads are encrypted."""
    if not settings.encryption_keys:
        return None
    return ContactKeyring(_key_store(db), settings)


def _key_store(db: Database) -> Database:
    url = db.engine.url
    if url.get_backend_name() != "sqlite":
        # Key reads are short and few (a cache sits in front): a small pool is plenty.
        return Database(url.render_as_string(hide_password=False), pool_size=2, max_overflow=4)
    if url.database and url.database != ":memory:":
        url = url.set(database=f"{url.database}-keys")
    keys = Database(url.render_as_string(hide_password=False))
    # One table, no history of its own to migrate: created where it is missing.
    ContactKey.__table__.create(keys.engine, checkfirst=True)
    return keys


def _bound(key_id: str, contact: str) -> bytes:
    return f"{key_id}|{contact}".encode()
