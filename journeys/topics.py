"""Subscription topics (a preference centre): what a contact agreed to receive, per topic.

A topic (newsletter, promotions, product news) is a resource kept in the database and managed
through ``/v1/topics``, not a setting: marketing teams add and rename topics as campaigns come
and go, and the preference page shows them by name, so a new topic must not need a redeploy of
the workers and the API. Each topic is ``opt_out`` (everyone is subscribed until they leave:
product news, service updates) or ``opt_in`` (nobody is, until they agree: promotions where the
law asks for prior consent).

A send names at most one topic (``send: {topic: newsletter}``); a send without a topic is
governed by channel consent alone, exactly as before topics existed. A contact's explicit
choices are stored per topic; the topic's type decides for everyone who never chose.

This module is pure: the decision, the identify trait that carries choices, and the checks
that name the offending JSON path. ``store/topics.py`` keeps the rows and
``activities/send_guards.py`` applies the decision to each send.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import Field

from temporal_journeys.journeys.graph import Problem
from temporal_journeys.journeys.spec import Journey, Model, SendStep
from temporal_journeys.journeys.validation import SpecInvalid

TopicType = Literal["opt_out", "opt_in"]

IDENTIFY_TRAIT = "topic_subscriptions"
"""The identify trait that sets subscriptions: ``{"newsletter": true, "promotions": false}``.
Named so that it cannot be mistaken for an app's own ``subscriptions`` (a billing plan, say);
it is applied to the contact's subscriptions and not kept among the traits."""


class TopicIn(Model):
    """A topic as ``PUT /v1/topics/{key}`` takes it."""

    name: str = Field(min_length=1, max_length=200, description="Shown on the preference page.")
    description: str | None = Field(default=None, max_length=2000)
    type: TopicType = Field(
        default="opt_out",
        description="opt_out: subscribed until the contact leaves; "
        "opt_in: not subscribed until the contact agrees.",
    )


@dataclass(frozen=True)
class TopicInfo:
    key: str
    name: str
    description: str | None
    type: TopicType


def subscribed(topic_type: str, choice: bool | None) -> bool:
    """Whether a contact receives a topic's messages: their explicit choice if they made one,
    else the topic's default (opt-out topics include everyone who never said no)."""
    if choice is not None:
        return choice
    return topic_type == "opt_out"


def suppression_reason(topic: str, topic_type: str | None, choice: bool | None) -> str | None:
    """Why a send on ``topic`` must not go to this contact, or None when it may.

    ``topic_type`` None means the topic no longer exists (deleted after a journey naming it
    was published): such sends are skipped rather than sent to people who can no longer manage
    that subscription on the preference page."""
    if topic_type is None:
        return f"unknown topic {topic!r}"
    if subscribed(topic_type, choice):
        return None
    if choice is False:
        return f"unsubscribed from topic {topic!r}"
    return f"not opted in to topic {topic!r}"


class UnknownTopics(SpecInvalid):
    """Subscriptions that name topics nobody defined, or are not true/false: a 422 whose
    problems name each JSON path, as for a journey document."""


def parse_choices(value: Any, path: str, known: Iterable[str]) -> dict[str, bool]:
    """``{topic: bool}`` from an API body or an identify trait, checked against the defined
    topics; ``UnknownTopics`` names every bad entry by its JSON path (``path`` is where the
    mapping sits)."""
    if not isinstance(value, Mapping):
        raise UnknownTopics([Problem(path, "an object of topic keys to true or false")])
    known_keys = set(known)
    problems: list[Problem] = []
    choices: dict[str, bool] = {}
    for topic, choice in value.items():
        at = f"{path}.{topic}"
        if topic not in known_keys:
            problems.append(Problem(at, f"unknown topic {topic!r}"))
        elif not isinstance(choice, bool):
            problems.append(Problem(at, "true (subscribed) or false (unsubscribed)"))
        else:
            choices[str(topic)] = choice
    if problems:
        raise UnknownTopics(problems)
    return choices


def topics_of(journey: Journey) -> dict[str, list[int]]:
    """The topics a journey's sends name, each with the indexes of its send steps."""
    named: dict[str, list[int]] = {}
    for index, step in enumerate(journey.steps):
        if isinstance(step, SendStep) and step.send.topic is not None:
            named.setdefault(step.send.topic, []).append(index)
    return named


def unknown_topic_problems(journey: Journey, known: Iterable[str]) -> list[Problem]:
    """A problem at ``$.steps[i].send.topic`` for each send naming an undefined topic."""
    known_keys = set(known)
    return [
        Problem(f"$.steps[{index}].send.topic", f"unknown topic {topic!r}")
        for topic, indexes in topics_of(journey).items()
        if topic not in known_keys
        for index in indexes
    ]


__all__ = [
    "IDENTIFY_TRAIT",
    "TopicIn",
    "TopicInfo",
    "TopicType",
    "UnknownTopics",
    "parse_choices",
    "subscribed",
    "suppression_reason",
    "topics_of",
    "unknown_topic_problems",
]
