"""Addresses no message may go to, per channel: hard bounces, spam reports, opt-outs."""

from __future__ import annotations

from sqlalchemy import delete
from sqlalchemy.orm import Session

from temporal_journeys.store.models import Suppression
from temporal_journeys.store.upserts import insert_ignoring_duplicates


def add(session: Session, channel: str, address: str, reason: str) -> None:
    """Suppress an address; one already suppressed keeps its first reason."""
    insert_ignoring_duplicates(
        session, Suppression, [{"channel": channel, "address": address, "reason": reason}]
    )


def lift(session: Session, channel: str, address: str) -> bool:
    """Allow an address again (the person asked to resubscribe); False if it was not held."""
    result = session.execute(
        delete(Suppression).where(Suppression.channel == channel, Suppression.address == address)
    )
    return bool(result.rowcount)
