"""Subscription topics (newsletter, promotions, ...): what the preference page offers."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Response

from temporal_journeys.api.deps import AdminKey, SessionDep
from temporal_journeys.api.schemas import TopicOut
from temporal_journeys.api.services import topics
from temporal_journeys.journeys.topics import TopicIn

router = APIRouter(prefix="/v1/topics", tags=["topics"], dependencies=[AdminKey])

TopicKey = Annotated[str, Path(min_length=1, max_length=100, pattern=r"^[a-z0-9][a-z0-9_.-]*$")]


@router.put("/{key}")
def put_topic(key: TopicKey, body: TopicIn, session: SessionDep, response: Response) -> TopicOut:
    """Create (201) or replace (200) a topic: its name on the preference page, a description,
    and its type (opt_out: everyone until they leave; opt_in: nobody until they agree)."""
    out, created = topics.put(session, key, body)
    response.status_code = 201 if created else 200
    return out


@router.get("")
def list_topics(session: SessionDep) -> list[TopicOut]:
    """Every topic, by key."""
    return topics.listed(session)


@router.get("/{key}")
def get_topic(key: str, session: SessionDep) -> TopicOut:
    """One topic."""
    return topics.get(session, key)


@router.delete("/{key}", status_code=204)
def delete_topic(key: str, session: SessionDep) -> Response:
    """Delete a topic no journey sends on (409 naming those that do). Contacts' choices are
    kept, so an unsubscribe is still honoured if the key is used again."""
    topics.delete(session, key)
    return Response(status_code=204)
