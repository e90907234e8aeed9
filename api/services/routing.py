"""Which runs an event concerns: journeys it starts, and running runs that can use it."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from journeys.conditions import evaluate, seen_event_names
from journeys.records import ContactSnapshot, JourneyEvent
from journeys.spec import BranchStep, EventTrigger, Journey, WaitForStep


@dataclass(frozen=True)
class Start:
    journey: Journey
    version: int


@dataclass(frozen=True)
class Signal:
    workflow_id: str


def listens_to(journey: Journey) -> frozenset[str]:
    """Event names a running run of this version reacts to, or asks about in a branch."""
    names = {rule.event for rule in journey.exit_on}
    if journey.goal is not None:
        names.add(journey.goal.event)
    for step in journey.steps:
        if isinstance(step, WaitForStep):
            names.add(step.wait_for.event)
        elif isinstance(step, BranchStep):
            for case in step.branch.cases:
                names.update(seen_event_names(case.when))
    return frozenset(names)


class Router:
    def __init__(self, live: Iterable[tuple[int, Journey]]) -> None:
        self._triggers: dict[str, list[tuple[int, Journey]]] = {}
        for version, journey in live:
            if isinstance(journey.trigger, EventTrigger):
                self._triggers.setdefault(journey.trigger.event, []).append((version, journey))
        self._listening: dict[tuple[str, int], frozenset[str]] = {}

    def starts(self, event: JourneyEvent, contact: ContactSnapshot) -> list[Start]:
        found = []
        for version, journey in self._triggers.get(event.name, []):
            where = journey.trigger.where  # type: ignore[union-attr]
            context = {**contact.condition_context(), "event": event.properties}
            if where is None or evaluate(where, context):
                found.append(Start(journey, version))
        return found

    def wants(self, journey: Journey, version: int, event_name: str) -> bool:
        key = (journey.key, version)
        if key not in self._listening:
            self._listening[key] = listens_to(journey)
        return event_name in self._listening[key]
