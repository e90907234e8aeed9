"""Subscription topics as a resource: created, renamed, listed and deleted through the API.

Deleting a topic that a journey still sends on is refused (409 naming the journeys), since its
sends would then be skipped for everyone ("unknown topic")."""

from __future__ import annotations

from sqlalchemy.orm import Session

from temporal_journeys.api.errors import Conflict, NotFound
from temporal_journeys.api.schemas import TopicOut
from temporal_journeys.journeys.topics import TopicIn, topics_of
from temporal_journeys.store import journeys as journeys_store
from temporal_journeys.store import topics as topics_store
from temporal_journeys.store.models import Topic


def _out(topic: Topic) -> TopicOut:
    return TopicOut(
        key=topic.key,
        name=topic.name,
        description=topic.description,
        type=topic.type,  # type: ignore[arg-type]
        created_at=topic.created_at,
        updated_at=topic.updated_at,
    )


def put(session: Session, key: str, body: TopicIn) -> tuple[TopicOut, bool]:
    """Create or replace a topic; True when it is new. Changing ``type`` changes who receives
    it from now on for contacts who never chose; explicit choices stay."""
    topic, created = topics_store.put(session, key, body.name, body.description, body.type)
    return _out(topic), created


def get(session: Session, key: str) -> TopicOut:
    topic = topics_store.get(session, key)
    if topic is None:
        raise NotFound(f"topic {key!r}")
    return _out(topic)


def listed(session: Session) -> list[TopicOut]:
    return [_out(topic) for topic in topics_store.listed(session)]


def users(session: Session, key: str) -> list[str]:
    """Journeys not archived whose latest published version sends on ``key``."""
    found = []
    for journey_key in sorted(journeys_store.keys(session)):
        row = journeys_store.get(session, journey_key)
        if row is None or row.latest_version is None or row.status == "archived":
            continue
        journey = journeys_store.version_spec(session, journey_key, row.latest_version)
        if journey is not None and key in topics_of(journey):
            found.append(journey_key)
    return found


def delete(session: Session, key: str) -> None:
    if topics_store.get(session, key) is None:
        raise NotFound(f"topic {key!r}")
    using = users(session, key)
    if using:
        raise Conflict(f"topic {key!r} is used by journeys: {', '.join(using)}")
    topics_store.remove(session, key)
