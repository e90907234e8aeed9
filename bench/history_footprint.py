"""The Postgres database's size after a simulated history: per contact, per event, per table.

    .venv/bin/python -m bench.history_footprint [--contacts 10000] [--days 30] [--quick]

On a fresh, migrated database, ``days`` days of ordinary traffic go through the project's own
write paths, the clock moved day by day (nothing waits on the wall clock):

- day 1: every contact identified with a few traits (``ingest``, the /v1/batch service);
- every day: ``TRACKS_PER_DAY`` tracks per contact (product views, cart updates, email opens,
  now and then an order, with properties), through ``ingest`` with that day's timestamps and
  ``now``, in transactions of ``BATCH`` calls, as /v1/batch stores them;
- after each of those transactions: the outbox entries it queued, claimed as the relay claims
  them (``store.outbox.claim``) and removed as it removes them once routed
  (``store.outbox.remove``); no Temporal is involved, so nothing is started or signalled;
- every day: one email per contact per week (a seventh of the contacts each day), its row
  written as the send activity leaves it: ``pending``, then ``sending`` with the rendered
  subject, text, HTML (about 20 KB) and List-Unsubscribe headers, then ``sent`` with the
  provider's id, in transactions of their own; then the provider's webhooks moving it to
  ``delivered`` and, for some, ``opened`` and ``clicked`` (``store.messages.advance``);
- every day: the retention pass the daily schedule runs (``activities.retention``'s events and
  bodies passes, default settings: events kept 365 days, message contents 90), which within 30
  days deletes nothing but costs its scans.

VACUUM: autovacuum's part is done by hand, as a plain ``VACUUM (ANALYZE)`` of every table at
the end of each simulated day and of the outbox every simulated hour. The month passes in
minutes, too fast for autovacuum's once-a-minute rounds (and the Postgres here runs with
``autovacuum = off``); without it the space of the relay's deleted entries and of the
messages' old row versions would never be reused, and the tables would be larger than any
database in service has them. Plain VACUUM, not ``VACUUM FULL``: it makes dead rows' space
reusable and truncates empty tail pages but gives nothing else back to the file system, as in
a live database; FULL would rewrite every table compactly, a size no database in service has.
ANALYZE keeps the planner's estimates current as the tables grow. The sizes are measured right
after the last of these.

Sizes are ``pg_total_relation_size`` (data, TOAST and indexes) and ``pg_indexes_size`` per
table; per contact and per event they are the database's growth over the empty migrated
schema. The default size (10,000 contacts, 30 days: 900,000 tracks, 42,858 emails) took 5 min
50 s here (2 shared cores; 2026-12-01), about 12 s a simulated day; ``--quick`` (500 contacts)
about 30 s.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import random
import shlex
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import select, text

from bench import stack
from temporal_journeys.activities.retention import bodies_pass, events_pass
from temporal_journeys.api.schemas import IdentifyCall, TrackCall
from temporal_journeys.api.services.ingest import ingest
from temporal_journeys.journeys.settings import Settings
from temporal_journeys.store import messages as messages_store
from temporal_journeys.store import outbox as outbox_store
from temporal_journeys.store.db import Database
from temporal_journeys.store.migrate import upgrade
from temporal_journeys.store.models import Message, OutboxEntry

TRACKS_PER_DAY = 3  # per contact, every day: the events count is exact, not a mean
EMAIL_EVERY_DAYS = 7  # one email per contact per week
BATCH = 500  # calls per ingest transaction, as one /v1/batch request of a typical source
MESSAGE_BATCH = 250  # messages per send-path transaction
CARDS = 18  # product cards in a digest: about 20 KB of HTML with the rest
RELAY_BATCH = 500  # the relay's default claim size (api/services/relay.py)
START = datetime(2026, 1, 5, tzinfo=UTC)  # a Monday; any fixed date keeps runs comparable

JOURNEY, TEMPLATE, STEP = "weekly-digest", "weekly-digest", "digest"
# Event kinds of the daily tracks, with their weights: mostly browsing, an order now and then.
KINDS: tuple[tuple[str, int], ...] = (
    ("product.viewed", 55),
    ("cart.updated", 15),
    ("email.opened", 12),
    ("search.performed", 13),
    ("order.completed", 5),
)
CATEGORIES = ("shoes", "outerwear", "knitwear", "bags", "accessories", "denim", "sportswear")
CITIES = ("Berlin", "Lyon", "Porto", "Leeds", "Gdansk", "Utrecht", "Bologna", "Cork")
ZONES = ("Europe/Berlin", "Europe/Paris", "Europe/Lisbon", "Europe/London", "Europe/Dublin")


@dataclass
class Report:
    """What the simulated history left in the database, and what it took."""

    contacts: int
    days: int
    tracks: int  # track calls ingested
    identifies: int  # identify calls ingested (one per contact)
    events: int  # rows in ``events`` at the end
    messages: int
    outbox: int  # rows left in ``outbox`` (the relay removed each one it routed)
    empty_bytes: int  # the migrated, empty database
    database_bytes: int
    # table -> (total: data + TOAST + indexes, indexes), and its row count
    tables: dict[str, tuple[int, int]] = field(default_factory=dict)
    rows: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0
    phases: dict[str, float] = field(default_factory=dict)  # seconds per kind of work
    deleted_by_retention: int = 0
    cleared_by_retention: int = 0

    @property
    def growth_bytes(self) -> int:
        return self.database_bytes - self.empty_bytes

    @property
    def bytes_per_contact(self) -> float:
        return self.growth_bytes / self.contacts

    @property
    def bytes_per_event(self) -> float:
        """The database's growth over every stored event."""
        return self.growth_bytes / self.events

    @property
    def events_table_bytes_per_event(self) -> float:
        return self.tables["events"][0] / self.events


def _mib(size: float) -> str:
    return f"{size / 2**20:,.1f} MiB"


def render(report: Report) -> str:
    """The report as printed."""
    lines = [
        f"database after a {report.days}-day history of {report.contacts:,} contacts: "
        f"{_mib(report.database_bytes)} ({_mib(report.growth_bytes)} over the empty schema's "
        f"{_mib(report.empty_bytes)}), after VACUUM (ANALYZE)",
        f"  contacts {report.contacts:,}, events {report.events:,} ({report.identifies:,} "
        f"identifies + {report.tracks:,} tracks), messages {report.messages:,}, outbox "
        f"{report.outbox:,} left",
        f"  per contact: {report.bytes_per_contact / 1024:,.1f} KiB of growth "
        f"({report.events / report.contacts:,.0f} events, "
        f"{report.messages / report.contacts:,.1f} messages each)",
        f"  per event: {report.bytes_per_event:,.0f} B of the whole growth, "
        f"{report.events_table_bytes_per_event:,.0f} B of the events table (data + indexes)",
        f"  {'table':24} {'rows':>10} {'total':>12} {'indexes':>12} {'data+TOAST':>12}",
    ]
    for name, (total, indexes) in sorted(report.tables.items(), key=lambda t: -t[1][0]):
        lines.append(
            f"  {name:24} {report.rows[name]:>10,} {_mib(total):>12} {_mib(indexes):>12} "
            f"{_mib(total - indexes):>12}"
        )
    phases = ", ".join(f"{name} {seconds:.1f} s" for name, seconds in report.phases.items())
    lines.append(
        f"  simulation took {report.seconds:.1f} s ({phases}); retention deleted "
        f"{report.deleted_by_retention:,} events, cleared {report.cleared_by_retention:,} "
        "message contents"
    )
    return "\n".join(lines)


def contact_id(n: int) -> str:
    return f"hist-{n:06d}"


def _uuid(rng: random.Random) -> str:
    """A messageId as Segment's libraries make them (a random UUID), from the seeded source."""
    return str(uuid.UUID(int=rng.getrandbits(128), version=4))


def identifies(contacts: int, rng: random.Random) -> list[IdentifyCall]:
    calls = []
    for n in range(contacts):
        first = rng.choice(("Ana", "Ben", "Chloé", "Dmitri", "Eva", "Farid", "Greta", "Hugo"))
        last = rng.choice(("Schmidt", "Martin", "Silva", "Novak", "Rossi", "Jansen", "Walsh"))
        calls.append(
            IdentifyCall(
                userId=contact_id(n),
                messageId=_uuid(rng),
                timestamp=START + timedelta(seconds=rng.randrange(86_400)),
                traits={
                    "email": f"{first.lower()}.{last.lower()}.{n}@example.com",
                    "phone": f"+4915{rng.randrange(10**8, 10**9)}",
                    "first_name": first,
                    "last_name": last,
                    "timezone": rng.choice(ZONES),
                    "city": rng.choice(CITIES),
                    "plan": rng.choice(("free", "free", "plus", "premium")),
                    "signed_up_at": (START - timedelta(days=rng.randrange(900))).isoformat(),
                    "favourite_category": rng.choice(CATEGORIES),
                },
            )
        )
    return calls


def _properties(kind: str, rng: random.Random) -> dict[str, Any]:
    product = {
        "product_id": f"sku-{rng.randrange(20_000):05d}",
        "category": rng.choice(CATEGORIES),
        "price": round(rng.uniform(9, 240), 2),
        "currency": "EUR",
    }
    if kind == "product.viewed":
        return {**product, "url": f"https://shop.example.com/p/{product['product_id']}"}
    if kind == "cart.updated":
        return {"cart_id": f"cart-{rng.randrange(10**9)}", **product, "quantity": rng.randint(1, 3)}
    if kind == "email.opened":
        return {"template": TEMPLATE, "campaign": JOURNEY, "client": rng.choice(("gmail", "ios"))}
    if kind == "search.performed":
        return {"query": rng.choice(CATEGORIES) + " " + rng.choice(("sale", "new", "black"))}
    items = [
        {"product_id": f"sku-{rng.randrange(20_000):05d}", "quantity": rng.randint(1, 2)}
        for _ in range(rng.randint(1, 4))
    ]
    return {
        "order_id": f"ord-{rng.randrange(10**10)}",
        "total": round(rng.uniform(20, 600), 2),
        "currency": "EUR",
        "items": items,
        "coupon": rng.choice((None, None, None, "WELCOME10")),
    }


def tracks(contacts: int, day: int, rng: random.Random) -> list[TrackCall]:
    """The day's tracks, ``TRACKS_PER_DAY`` per contact, in the order they happened."""
    names = [name for name, _ in KINDS]
    weights = [weight for _, weight in KINDS]
    midnight = START + timedelta(days=day)
    calls = []
    for n in range(contacts):
        for kind in rng.choices(names, weights, k=TRACKS_PER_DAY):
            calls.append(
                TrackCall(
                    userId=contact_id(n),
                    event=kind,
                    messageId=_uuid(rng),
                    timestamp=midnight + timedelta(seconds=rng.randrange(86_400)),
                    properties=_properties(kind, rng),
                )
            )
    calls.sort(key=lambda call: call.timestamp or midnight)
    return calls


async def ingest_and_relay(db: Database, calls: list[Any], phases: dict[str, float]) -> None:
    """The calls in transactions of ``BATCH``, each received two seconds after its last call
    happened (``now``: the receipt time ingest stores); after each, the relay takes what it
    queued, as it does when the commit's NOTIFY wakes it: its backlog stays one batch deep.
    Every simulated hour the outbox is vacuumed, as autovacuum would (see ``vacuum``)."""
    hour: datetime | None = None
    for start in range(0, len(calls), BATCH):
        chunk = calls[start : start + BATCH]
        received = max(call.timestamp for call in chunk) + timedelta(seconds=2)
        began = time.perf_counter()
        with db.transaction() as session:
            ingest(session, chunk, now=received)
        routed = time.perf_counter()
        await relay(db)
        vacuumed = time.perf_counter()
        phases["ingest"] += routed - began
        phases["relay"] += vacuumed - routed
        if hour != received.replace(minute=0, second=0, microsecond=0):
            hour = received.replace(minute=0, second=0, microsecond=0)
            vacuum(db, "outbox")
            phases["vacuum"] += time.perf_counter() - vacuumed


async def relay(db: Database) -> int:
    """Every pending outbox entry removed as the relay removes one it routed: claimed by the
    relay's own query (its advisory locks and all), then deleted by id. One transaction per
    claim rather than the relay's one per event: the rows deleted and the dead tuples they
    leave are the same, and 900,000 transactions would only make the run slower."""
    removed = 0
    while True:
        async with outbox_store.claim(db, RELAY_BATCH) as claimed:
            if not claimed:
                return removed
            with db.transaction() as session:
                ids = [claim.entry_id for claim in claimed]
                entries = session.scalars(
                    select(OutboxEntry).where(OutboxEntry.id.in_(ids)).with_for_update()
                ).all()
                for entry in entries:
                    outbox_store.remove(session, entry)
                removed += len(entries)


def _html(first_name: str, rng: random.Random, unsubscribe: str) -> str:
    """A weekly digest as an email builder renders it: table layout, inline styles, product
    cards; about 20 KB."""
    cell = (
        '<td class="card" style="padding:12px;border:1px solid #e5e5e5;border-radius:6px;'
        "font-family:Helvetica,Arial,sans-serif;font-size:14px;line-height:20px;color:#333333;"
        'vertical-align:top;width:50%">'
    )
    cards = []
    for _ in range(CARDS):
        sku = f"sku-{rng.randrange(20_000):05d}"
        price = rng.uniform(9, 240)
        cards.append(
            f'{cell}<a href="https://shop.example.com/p/{sku}?utm_source=email&amp;'
            f'utm_medium=digest&amp;utm_campaign={JOURNEY}" style="color:#333333;'
            f'text-decoration:none"><img src="https://cdn.example.com/img/{sku}/600x600.jpg" '
            f'width="260" height="260" alt="{rng.choice(CATEGORIES).title()} {sku}" '
            'style="display:block;border:0;outline:none;width:100%;height:auto"/>'
            f'<p style="margin:8px 0 4px 0;font-weight:bold">{rng.choice(CATEGORIES).title()} '
            f'&middot; {sku}</p><p style="margin:0;color:#c0392b">&euro;{price:.2f}</p>'
            '<p style="margin:8px 0 0 0"><span style="display:inline-block;padding:8px 16px;'
            'background:#111111;color:#ffffff;border-radius:4px">Shop now</span></p></a></td>'
        )
    rows = "".join(
        f'<tr>{cards[i]}<td style="width:16px"></td>{cards[i + 1]}</tr>'
        '<tr><td colspan="3" style="height:16px"></td></tr>'
        for i in range(0, CARDS, 2)
    )
    style = (
        "<style>body{margin:0;padding:0}table{border-collapse:collapse}img{-ms-interpolation-"
        "mode:bicubic}@media only screen and (max-width:600px){.card{display:block!important;"
        "width:100%!important}.wrapper{width:100%!important}}</style>"
    )
    footer = (
        '<p style="font-family:Helvetica,Arial,sans-serif;font-size:11px;line-height:16px;'
        'color:#999999;margin:0 0 8px 0">You receive this weekly digest because you signed up '
        "at shop.example.com. Example Shop GmbH, Musterstra&szlig;e 1, 10115 Berlin, Germany. "
        "Registered at Amtsgericht Charlottenburg HRB 000000. Managing director: A. Example."
        f'</p><p style="font-size:11px;color:#999999;margin:0"><a href="{unsubscribe}" '
        'style="color:#999999">Unsubscribe</a> &middot; <a href="https://shop.example.com/'
        'preferences" style="color:#999999">Preferences</a></p>'
    )
    # Builders repeat the spacer tables and comments a lot; three copies of the legal text is
    # what a footer with a translation and a plain-text fallback block weighs.
    head = (
        '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"/><meta name="viewport" '
        'content="width=device-width,initial-scale=1"/><title>Your weekly picks</title>'
        f"{style * 8}</head>"
    )
    body = (
        '<body style="background:#f4f4f4"><table role="presentation" class="wrapper" '
        'width="600" align="center" style="background:#ffffff">'
        '<tr><td style="padding:24px;font-family:Helvetica,Arial,sans-serif;font-size:22px">'
        f"Hi {first_name}, this week's picks for you</td></tr>"
        f'<tr><td style="padding:0 24px"><table role="presentation" width="100%">{rows}'
        f'</table></td></tr><tr><td style="padding:24px">{footer * 3}</td></tr></table></body>'
    )
    return head + body + "<!-- spacer -->" * 60 + "</html>"


def _text(first_name: str, unsubscribe: str) -> str:
    return (
        f"Hi {first_name},\n\nthis week's picks for you are waiting at "
        "https://shop.example.com/digest.\n\n" + "-" * 40 + "\nExample Shop GmbH, "
        f"Musterstraße 1, 10115 Berlin.\nUnsubscribe: {unsubscribe}\n"
    )


def _chunks(items: list[Any], size: int) -> Iterator[list[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def _locked(session: Any, ids: list[str]) -> list[Message]:
    return list(session.scalars(select(Message).where(Message.id.in_(ids)).with_for_update()).all())


def send_emails(db: Database, recipients: list[int], day: int, rng: random.Random) -> int:
    """The day's emails, each row going through what the send activity and the provider's
    webhooks write, in transactions of ``MESSAGE_BATCH`` (the activity's are one per message;
    the rows and their updates are the same)."""
    week = day // EMAIL_EVERY_DAYS + 1
    sent_at = START + timedelta(days=day, hours=9)
    for chunk in _chunks(recipients, MESSAGE_BATCH):
        keys = {
            n: f"journey/{JOURNEY}/{contact_id(n)}/e{week}/{STEP}/1" for n in chunk
        }  # the run's operation key, as workflows/journey.py builds it
        ids = {n: "msg_" + hashlib.sha256(key.encode()).hexdigest()[:24] for n, key in keys.items()}
        with db.transaction() as session:  # prepare: the row before any provider is called
            for n in chunk:
                message = Message(
                    id=ids[n],
                    idempotency_key=keys[n],
                    contact_id=contact_id(n),
                    journey_key=JOURNEY,
                    version=1,
                    step_id=STEP,
                    workflow_id=f"journey/{JOURNEY}/{contact_id(n)}/e{week}",
                    channel="email",
                    template=TEMPLATE,
                    provider="sendgrid",
                    status_history=[],
                    to_address=f"{contact_id(n)}@example.com",
                    created_at=sent_at,
                    updated_at=sent_at,
                )
                messages_store.add(session, message)
                messages_store.add_status(message, "pending", at=sent_at)
                message.sent_at = sent_at
        with db.transaction() as session:  # mark_sending: the rendered content kept
            for message in _locked(session, list(ids.values())):
                first = rng.choice(("Ana", "Ben", "Chloé", "Dmitri", "Eva", "Farid", "Greta"))
                token = hashlib.sha256(message.id.encode()).hexdigest()
                unsubscribe = f"https://journeys.example.com/u/{message.contact_id}/email/{token}"
                message.subject = f"{first}, your weekly picks: {rng.randrange(3, 40)}% off"
                message.body = _text(first, unsubscribe)
                message.html = _html(first, rng, unsubscribe)
                message.headers = {
                    "List-Unsubscribe": f"<{unsubscribe}>",
                    "List-Unsubscribe-Post": "List-Unsubscribe=One-Click",
                }
                messages_store.add_status(message, "sending", at=sent_at)
        with db.transaction() as session:  # settle: the provider took it
            for message in _locked(session, list(ids.values())):
                message.provider_message_id = uuid.UUID(int=rng.getrandbits(128)).hex
                messages_store.add_status(message, "sent", at=sent_at + timedelta(seconds=1))
        with db.transaction() as session:  # the delivery webhook, minutes later
            for message in _locked(session, list(ids.values())):
                outcome = "bounced" if rng.random() < 0.02 else "delivered"
                messages_store.advance(message, outcome, sent_at + timedelta(minutes=3))
        with db.transaction() as session:  # engagement webhooks, later that day
            for message in _locked(session, list(ids.values())):
                if message.status == "delivered" and rng.random() < 0.3:
                    messages_store.advance(message, "opened", sent_at + timedelta(hours=2))
                    if rng.random() < 0.2:
                        messages_store.advance(message, "clicked", sent_at + timedelta(hours=2))
    return len(recipients)


def retention(db: Database, settings: Settings, now: datetime) -> tuple[int, int]:
    """The daily pass as the schedule's workflow runs it: events, then message contents."""
    deleted = cleared = 0
    for events in events_pass(db, settings, now=now):
        deleted = events.deleted
    for bodies in bodies_pass(db, settings, now=now):
        cleared = bodies.cleared
    return deleted, cleared


# The partitions of ``events`` (by month, migration 0015) count as ``events``.
SIZES = """
SELECT coalesce(parent.relname, c.relname),
       sum(pg_total_relation_size(c.oid)), sum(pg_indexes_size(c.oid))
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
LEFT JOIN pg_inherits i ON i.inhrelid = c.oid
LEFT JOIN pg_class parent ON parent.oid = i.inhparent
WHERE c.relkind = 'r' AND n.nspname = current_schema()
GROUP BY 1
"""


def measure(db: Database, report: Report) -> None:
    """Table sizes and exact row counts; every table with rows, and the four the issue names
    (the outbox, empty by now, still weighs its indexes)."""
    with db.connection() as connection:
        report.database_bytes = connection.scalar(
            text("SELECT pg_database_size(current_database())")
        )
        for name, total, indexes in connection.execute(text(SIZES)).all():
            rows = connection.scalar(text(f'SELECT count(*) FROM "{name}"'))
            if rows or name in ("contacts", "events", "messages", "outbox"):
                report.tables[name] = (total, indexes)
                report.rows[name] = rows
    report.events = report.rows["events"]
    report.messages = report.rows["messages"]
    report.outbox = report.rows["outbox"]


def _database_bytes(db: Database) -> int:
    with db.connection() as connection:
        return connection.scalar(text("SELECT pg_database_size(current_database())"))


def vacuum(db: Database, table: str | None = None) -> None:
    """A plain ``VACUUM (ANALYZE)`` of one table or all: autovacuum's part, done by hand. The
    simulated month passes in minutes, far too fast for autovacuum's once-a-minute rounds
    (and the Postgres here runs with ``autovacuum = off``); without it the space of the
    relay's deleted entries and of the messages' old row versions would never be reused."""
    # VACUUM cannot run inside a transaction block.
    with db.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
        connection.execute(text(f"VACUUM (ANALYZE) {table or ''}"))


async def simulate(
    url: str,
    contacts: int,
    days: int = 30,
    *,
    seed: int = 18,
    progress: Callable[[str], None] | None = None,
) -> Report:
    """``days`` days of traffic from ``contacts`` contacts on the empty Postgres database at
    ``url`` (migrated here if it is not yet), then VACUUM (ANALYZE) and the sizes."""
    say = progress or (lambda line: print(line, flush=True))
    upgrade(url)
    rng = random.Random(seed)
    db = Database(url)
    settings = Settings(database_url=url)  # the retention defaults: 365 and 90 days
    phases = dict.fromkeys(("ingest", "relay", "sends", "retention", "vacuum"), 0.0)
    try:
        empty = _database_bytes(db)
        began = time.perf_counter()
        tracked = deleted = cleared = messages = 0

        def timed(phase: str, began_at: float) -> None:
            phases[phase] += time.perf_counter() - began_at

        for day in range(days):
            calls: list[Any] = identifies(contacts, rng) if day == 0 else []
            daily = tracks(contacts, day, rng)
            tracked += len(daily)
            # The identifies happen through day 1 too: one stream, in time order.
            calls = sorted([*calls, *daily], key=lambda call: call.timestamp)
            await ingest_and_relay(db, calls, phases)
            started = time.perf_counter()
            recipients = [
                n for n in range(contacts) if n % EMAIL_EVERY_DAYS == day % EMAIL_EVERY_DAYS
            ]
            messages += send_emails(db, recipients, day, rng)
            timed("sends", started)
            started = time.perf_counter()
            # 03:00 the next morning, as the schedule fires (api/services/retention.py).
            gone, emptied = retention(db, settings, START + timedelta(days=day + 1, hours=3))
            deleted, cleared = deleted + gone, cleared + emptied
            timed("retention", started)
            started = time.perf_counter()
            vacuum(db)  # a day's worth of autovacuum, over every table
            timed("vacuum", started)
            say(
                f"  day {day + 1}/{days}: {tracked + contacts:,} events, {messages:,} messages, "
                f"{time.perf_counter() - began:.0f} s"
            )
        started = time.perf_counter()
        # A no-op after the last day's own, kept so the sizes follow a VACUUM (ANALYZE) by
        # construction, whatever the loop does.
        vacuum(db)
        timed("vacuum", started)
        report = Report(
            contacts=contacts,
            days=days,
            tracks=tracked,
            identifies=contacts,
            events=0,
            messages=0,
            outbox=0,
            empty_bytes=empty,
            database_bytes=0,
            seconds=time.perf_counter() - began,
            phases=phases,
            deleted_by_retention=deleted,
            cleared_by_retention=cleared,
        )
        measure(db, report)
        return report
    finally:
        db.dispose()


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--contacts", type=int, default=10_000)
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--quick", action="store_true", help="500 contacts, 30 days")
    args = parser.parse_args()
    contacts = 500 if args.quick else args.contacts
    days = 30 if args.quick else args.days
    command = [".venv/bin/python", "-m", "bench.history_footprint", *sys.argv[1:]]
    print(f"command: {shlex.join(command)}")
    print(
        f"history: {contacts:,} contacts over {days} days, {TRACKS_PER_DAY} tracks each a day, "
        f"an email each every {EMAIL_EVERY_DAYS} days",
        flush=True,
    )
    with stack.database() as url:
        report = await simulate(url, contacts, days)
    print(render(report), flush=True)


if __name__ == "__main__":
    asyncio.run(main())
