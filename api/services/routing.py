"""Which runs an event concerns: journeys it starts, and running runs that can use it."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from temporal_journeys.journeys.conditions import evaluate, seen_event_names
from temporal_journeys.journeys.records import ContactSnapshot, JourneyEvent
from temporal_journeys.journeys.segments import SEGMENT_ENTERED
from temporal_journeys.journeys.spec import (
    BranchStep,
    EventTrigger,
    Journey,
    SegmentTrigger,
    WaitForStep,
)


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
            elif isinstance(journey.trigger, SegmentTrigger):
                # Entering the segment is its `segment.entered` event (store/segments.py).
                self._triggers.setdefault(SEGMENT_ENTERED, []).append((version, journey))
        self._listening: dict[tuple[str, int], frozenset[str]] = {}

    def starts(self, event: JourneyEvent, contact: ContactSnapshot) -> list[Start]:
        found = []
        for version, journey in self._triggers.get(event.name, []):
            if isinstance(journey.trigger, SegmentTrigger):
                if event.properties.get("segment") == journey.trigger.segment:
                    found.append(Start(journey, version))
                continue
            where = journey.trigger.where  # type: ignore[union-attr]
            context = {**contact.condition_context(), "event": event.properties}
            if where is None or evaluate(where, context):
                found.append(Start(journey, version))
        return found

    def wants(
        self, journey: Journey, version: int, event: JourneyEvent, correlation: str | None
    ) -> bool:
        """Whether a running run of this version, keyed by ``correlation``, gets the event:
        it listens for the name, and the event concerns it (``concerns``)."""
        key = (journey.key, version)
        if key not in self._listening:
            self._listening[key] = listens_to(journey)
        return event.name in self._listening[key] and concerns(journey, correlation, event)


def concerns(journey: Journey, correlation: str | None, event: JourneyEvent) -> bool:
    """Keyed follow-ups: in a journey whose trigger has ``correlate: P``, an event carrying
    ``P`` concerns only the run keyed by the same value (``order.completed {cart_id: a1}``
    converts cart a1's run, not a2's); an event without ``P`` concerns every run of the contact.

    Decided here, in routing, rather than in the workflow: a run that is not concerned is
    never signalled, so its history does not grow and no recorded history changes meaning."""
    trigger = journey.trigger
    if not isinstance(trigger, EventTrigger) or trigger.correlate is None or correlation is None:
        return True
    value = event.properties.get(trigger.correlate)
    if value is None or value == "":
        return True  # as ``correlation_of`` reads it: an empty key is no key
    return str(value) == correlation
