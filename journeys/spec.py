"""The journey document: pydantic models of the trigger, the rules and every step kind.

One key per step names its kind (``wait``, ``wait_for``, ``branch``, ``split``, ``send``,
``update``, ``enter``, ``exit``); ``next`` defaults to the following step and the last step exits.
Graph rules (targets exist, everything reachable, no loop without a wait) live in ``graph.py``.
"""

from __future__ import annotations

import functools
import re
from datetime import time, timedelta
from typing import Annotated, Any, Literal
from zoneinfo import available_timezones

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Discriminator,
    Field,
    PlainSerializer,
    Tag,
    WithJsonSchema,
    model_validator,
)

from temporal_journeys.journeys.conditions import Condition
from temporal_journeys.journeys.cron import parse_cron
from temporal_journeys.journeys.durations import (
    JSON_SCHEMA_PATTERN,
    format_duration,
    parse_duration,
)

MIN_WAIT = timedelta(seconds=1)
MAX_WAIT = timedelta(days=3660)
MAX_OFFSET = timedelta(days=366)


def _parse(value: Any) -> timedelta:
    if isinstance(value, timedelta):
        return value
    if not isinstance(value, str):
        raise ValueError("a duration is an ISO 8601 string such as PT1H or P3D")
    return parse_duration(value)


def _in_wait_range(value: timedelta) -> timedelta:
    if not MIN_WAIT <= value <= MAX_WAIT:
        raise ValueError(f"duration {format_duration(value)} is out of range (PT1S to P3660D)")
    return value


def _in_offset_range(value: timedelta) -> timedelta:
    if abs(value) > MAX_OFFSET:
        raise ValueError(f"offset {format_duration(value)} is out of range (at most P366D)")
    return value


_iso = PlainSerializer(format_duration, return_type=str)
Duration = Annotated[
    timedelta,
    BeforeValidator(_parse),
    AfterValidator(_in_wait_range),
    _iso,
    WithJsonSchema(
        {
            "type": "string",
            "pattern": "^" + JSON_SCHEMA_PATTERN,
            "description": "ISO 8601 duration from PT1S to P3660D, e.g. PT30M, PT1H, P3D, P2W",
        }
    ),
]
Offset = Annotated[
    timedelta,
    BeforeValidator(_parse),
    AfterValidator(_in_offset_range),
    _iso,
    WithJsonSchema(
        {
            "type": "string",
            "pattern": "^-?" + JSON_SCHEMA_PATTERN,
            "description": "ISO 8601 duration, may be negative (-P1D), at most P366D either way",
        }
    ),
]


def _parse_clock(value: Any) -> time:
    if isinstance(value, time):
        return value
    if isinstance(value, str) and re.fullmatch(r"([01]\d|2[0-3]):[0-5]\d", value):
        hours, minutes = value.split(":")
        return time(int(hours), int(minutes))
    raise ValueError("a time of day is written HH:MM, 24-hour, e.g. 09:00")


ClockTime = Annotated[
    time,
    BeforeValidator(_parse_clock),
    PlainSerializer(lambda t: t.strftime("%H:%M"), return_type=str),
    WithJsonSchema(
        {
            "type": "string",
            "pattern": "^([01][0-9]|2[0-3]):[0-5][0-9]$",
            "description": "Local time of day, HH:MM (24-hour)",
        }
    ),
]
Weekday = Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
WEEKDAYS: tuple[Weekday, ...] = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
StepId = Annotated[str, Field(min_length=1, max_length=100, pattern=r"^[^/\s]+$")]
Key = Annotated[str, Field(min_length=1, max_length=100, pattern=r"^[a-z0-9][a-z0-9_.-]*$")]
Channel = Literal["email", "sms", "webhook", "push", "whatsapp"]


class Model(BaseModel):
    # No inf/nan: JSON has no such numbers, so a spec holding one would not survive the trip
    # into a workflow input.
    model_config = ConfigDict(
        extra="forbid", frozen=True, serialize_by_alias=True, allow_inf_nan=False
    )


class EventMatch(Model):
    """An event by name, optionally narrowed by a condition on its properties (``event.*``)."""

    event: str = Field(min_length=1)
    where: Condition | None = None


# --- trigger -------------------------------------------------------------------------------


class EventTrigger(EventMatch):
    correlate: str | None = Field(
        default=None,
        description="Event property that keys the run: one run per (contact, value).",
    )


class ApiTrigger(Model):
    api: Literal[True] = Field(description="Contacts enter only through the enroll API.")


class DateAttributeTrigger(Model):
    """Contacts enter when the date in one of their traits comes round: at local ``at`` in
    each contact's own time zone, shifted by ``offset``, once per occurrence (each year when
    ``yearly``). A Temporal Schedule per journey (``journey-dates/<key>``) finds them."""

    date_attribute: str = Field(
        min_length=1,
        max_length=100,
        description="The trait holding an ISO date (1990-02-14) or date-time (its date counts).",
    )
    yearly: bool = Field(
        default=False,
        description="Every anniversary of the date (birthdays); 29 February is 28 February in "
        "common years. Otherwise the date itself, once.",
    )
    at: ClockTime = Field(default=time(9, 0), json_schema_extra={"default": "09:00"})
    offset: Offset = Field(
        default=timedelta(0),
        description="Shift from the date at `at`, e.g. -P3D for three days before.",
    )


class SegmentTrigger(Model):
    """Contacts enter when they enter the segment (its ``segment.entered`` event, whose
    ``segment`` property is this key); ``re_entry`` decides about a contact who comes back."""

    segment: Key = Field(description="The key of a segment (PUT /v1/segments/{key}).")


def _cron(value: Any) -> str:
    if not isinstance(value, str):
        raise ValueError("a cron expression is a string such as `0 9 * * MON`")
    parse_cron(value)  # raises CronError (a ValueError) saying what is wrong
    return " ".join(value.split())


@functools.cache
def _zones() -> frozenset[str]:
    return frozenset(available_timezones())


def _zone_name(value: str) -> str:
    # The IANA names Temporal's scheduler knows too; a file path or "America" is no zone.
    if value not in _zones():
        raise ValueError(f"{value!r} is not an IANA time zone such as Europe/Paris")
    return value


CronExpression = Annotated[
    str,
    BeforeValidator(_cron),
    WithJsonSchema(
        {
            "type": "string",
            "description": "Five cron fields: minute hour day-of-month month day-of-week, "
            "e.g. `0 9 * * MON`",
        }
    ),
]
ZoneName = Annotated[str, AfterValidator(_zone_name)]


class CronSchedule(Model):
    """Fires at every local time the cron expression names, in ``timezone``."""

    cron: CronExpression
    timezone: ZoneName = Field(default="UTC", description="The IANA zone the fields are in.")


class OnceSchedule(Model):
    """Fires once, at ``at``."""

    at: AwareDatetime = Field(description="An ISO 8601 date-time with its UTC offset.")


def _schedule_kind(value: Any) -> str | None:
    if isinstance(value, CronSchedule) or (isinstance(value, dict) and "cron" in value):
        return "schedule:cron"
    if isinstance(value, OnceSchedule) or (isinstance(value, dict) and "at" in value):
        return "schedule:at"
    return None


class ScheduleTrigger(Model):
    """At each fire of the schedule, the segment's members at that moment enter, once per
    fire; ``re_entry`` decides about a member who entered at an earlier fire. A Temporal
    Schedule per journey (``journey-schedule/<key>``) fires."""

    schedule: Annotated[
        Annotated[CronSchedule, Tag("schedule:cron")] | Annotated[OnceSchedule, Tag("schedule:at")],
        Discriminator(
            _schedule_kind,
            custom_error_type="schedule_kind",
            custom_error_message=(
                "a schedule is {cron: <5 fields>, timezone: <IANA zone>} or "
                "{at: <ISO date-time with offset>}"
            ),
        ),
    ]
    segment: Key = Field(description="The key of the segment whose members enter.")


def _trigger_kind(value: Any) -> str | None:
    # A tag with a colon stays out of error paths (``json_path``): `$.trigger.at`.
    if isinstance(value, DateAttributeTrigger):
        return "trigger:date_attribute"
    if isinstance(value, SegmentTrigger):
        return "trigger:segment"
    if isinstance(value, ScheduleTrigger):
        return "trigger:schedule"
    if isinstance(value, BaseModel):
        return "event" if isinstance(value, EventTrigger) else "api"
    if isinstance(value, dict):
        if "event" in value:
            return "event"
        if "api" in value:
            return "api"
        if "date_attribute" in value:
            return "trigger:date_attribute"
        if "schedule" in value:
            return "trigger:schedule"
        if "segment" in value:
            return "trigger:segment"
    return None


Trigger = Annotated[
    Annotated[EventTrigger, Tag("event")]
    | Annotated[ApiTrigger, Tag("api")]
    | Annotated[DateAttributeTrigger, Tag("trigger:date_attribute")]
    | Annotated[SegmentTrigger, Tag("trigger:segment")]
    | Annotated[ScheduleTrigger, Tag("trigger:schedule")],
    Discriminator(
        _trigger_kind,
        custom_error_type="trigger_kind",
        custom_error_message=(
            "a trigger needs `event` (an event name), `api: true`, `date_attribute` (a trait), "
            "`segment` (a segment key) or `schedule` with a `segment`"
        ),
    ),
]


class ReEntryAfter(Model):
    after: Duration


def _re_entry_kind(value: Any) -> str | None:
    if isinstance(value, str):
        return "re_entry:rule"
    if isinstance(value, ReEntryAfter | dict):
        return "re_entry:after"
    return None


# Discriminated, so an error's path is `$.re_entry`, not a path through each union member.
ReEntry = Annotated[
    Annotated[Literal["never", "always"], Tag("re_entry:rule")]
    | Annotated[ReEntryAfter, Tag("re_entry:after")],
    Discriminator(
        _re_entry_kind,
        custom_error_type="re_entry_kind",
        custom_error_message="re_entry is never, always or {after: <duration>}",
    ),
]


class QuietHours(Model):
    """Local hours (contact's time zone) in which sends wait; ``start`` may be after ``end``."""

    start: ClockTime
    end: ClockTime
    channels: list[Channel] | None = Field(
        default=None, description="Channels it applies to; all when omitted."
    )


# --- steps ---------------------------------------------------------------------------------


class StepBase(Model):
    id: StepId
    next: StepId | None = Field(default=None, description="Defaults to the following step.")
    title: str | None = Field(default=None, description="Words for operators and diagrams.")


class WaitUntil(Model):
    """The next local time of day, optionally only on some weekdays."""

    until: ClockTime
    weekdays: list[Weekday] | None = None


class WaitForDate(Model):
    """A date held in a contact attribute, shifted by ``offset``, at a local time of day."""

    date_attribute: str = Field(min_length=1)
    offset: Offset = timedelta(0)
    at: ClockTime = Field(default=time(9, 0), json_schema_extra={"default": "09:00"})
    yearly: bool = Field(
        default=False, description="Use the next anniversary (birthdays) rather than the date."
    )


def _wait_tag(value: Any) -> str | None:
    if isinstance(value, str | timedelta):
        return "wait:duration"
    if isinstance(value, WaitUntil) or (isinstance(value, dict) and "until" in value):
        return "wait:until"
    if isinstance(value, WaitForDate) or (isinstance(value, dict) and "date_attribute" in value):
        return "wait:date"
    return None


class WaitStep(StepBase):
    wait: Annotated[
        Annotated[Duration, Tag("wait:duration")]
        | Annotated[WaitUntil, Tag("wait:until")]
        | Annotated[WaitForDate, Tag("wait:date")],
        Discriminator(
            _wait_tag,
            custom_error_type="wait_kind",
            custom_error_message=(
                "a wait is a duration (PT1H), {until: HH:MM} or {date_attribute: <trait>}"
            ),
        ),
    ]


class WaitFor(Model):
    event: str = Field(min_length=1)
    where: Condition | None = None
    message: StepId | None = Field(
        default=None, description="A send step: only engagement with that message counts."
    )
    timeout: Duration


class WaitForStep(StepBase):
    wait_for: WaitFor
    on_timeout: StepId | None = Field(
        default=None, description="Where to go when the timeout passes; defaults to `next`."
    )


class Case(Model):
    when: Condition
    next: StepId


class Branch(Model):
    cases: list[Case] = Field(min_length=1)
    default: StepId | None = Field(
        default=None, description="When no case matches; defaults to the following step."
    )


class BranchStep(StepBase):
    branch: Branch


HOLDOUT = "holdout"  # the holdout share's name in assignments and reports; no variant's


class Variant(Model):
    name: str = Field(min_length=1, max_length=50)
    weight: float = Field(gt=0)
    next: StepId | None = None


class Holdout(Model):
    weight: float = Field(gt=0)
    next: StepId | None = Field(default=None, description="Defaults to exiting the journey.")


class Split(Model):
    variants: list[Variant] = Field(min_length=1)
    holdout: Holdout | None = None


class SplitStep(StepBase):
    split: Split


class Send(Model):
    channel: Channel
    template: Key
    data: dict[str, Any] = Field(default_factory=dict)
    if_capped: Literal["defer", "skip"] = "defer"
    topic: Key | None = Field(
        default=None,
        description="The subscription topic the message belongs to (a key of /v1/topics): "
        "sent only to contacts subscribed to it. None: channel consent alone.",
    )


class SendStep(StepBase):
    send: Send
    on_failure: StepId | None = Field(
        default=None, description="Where to go when the send fails permanently."
    )


class Update(Model):
    attributes: dict[str, Any] = Field(default_factory=dict)
    add_tags: list[str] = Field(default_factory=list)
    remove_tags: list[str] = Field(default_factory=list)
    score: dict[str, float] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _not_empty(self) -> Update:
        if not (self.attributes or self.add_tags or self.remove_tags or self.score):
            raise ValueError("an update sets attributes, adds or removes tags, or adds to scores")
        return self


class UpdateStep(StepBase):
    update: Update


class Enter(Model):
    journey: Key


class EnterStep(StepBase):
    enter: Enter


class Exit(Model):
    reason: str | None = None


class ExitStep(StepBase):
    exit: Exit  # required like every kind key (`exit: {}`): a step without one has no kind


STEP_KINDS: dict[str, type[StepBase]] = {
    "wait": WaitStep,
    "wait_for": WaitForStep,
    "branch": BranchStep,
    "split": SplitStep,
    "send": SendStep,
    "update": UpdateStep,
    "enter": EnterStep,
    "exit": ExitStep,
}


def step_kind(step: StepBase) -> str:
    return next(kind for kind, model in STEP_KINDS.items() if isinstance(step, model))


def _step_tag(value: Any) -> str | None:
    if isinstance(value, StepBase):
        return "step:" + step_kind(value)
    if not isinstance(value, dict):
        return None
    kinds = [kind for kind in STEP_KINDS if kind in value]
    return "step:" + kinds[0] if len(kinds) == 1 else None


Step = Annotated[
    Annotated[WaitStep, Tag("step:wait")]
    | Annotated[WaitForStep, Tag("step:wait_for")]
    | Annotated[BranchStep, Tag("step:branch")]
    | Annotated[SplitStep, Tag("step:split")]
    | Annotated[SendStep, Tag("step:send")]
    | Annotated[UpdateStep, Tag("step:update")]
    | Annotated[EnterStep, Tag("step:enter")]
    | Annotated[ExitStep, Tag("step:exit")],
    Discriminator(
        _step_tag,
        custom_error_type="step_kind",
        custom_error_message=(
            "a step has exactly one kind key: wait, wait_for, branch, split, send, update, "
            "enter or exit"
        ),
    ),
]


def _segment_exits(value: Any) -> Any:
    """``{segment_exited: KEY}`` in ``exit_on`` is the ``segment.exited`` event of that segment."""
    if not isinstance(value, list):
        return value
    return [
        {
            "event": "segment.exited",
            "where": {"field": "event.segment", "eq": item["segment_exited"]},
        }
        if isinstance(item, dict) and set(item) == {"segment_exited"}
        else item
        for item in value
    ]


class Journey(Model):
    """A journey version: what starts it, the rules around it and its steps."""

    key: Key
    name: str = Field(min_length=1, max_length=200)
    description: str | None = None
    trigger: Trigger
    re_entry: ReEntry = "never"
    goal: EventMatch | None = None
    exit_on: Annotated[list[EventMatch], BeforeValidator(_segment_exits)] = Field(
        default_factory=list,
        description="Events that end the run; `{segment_exited: KEY}` is the contact leaving "
        "a segment (the event segment.exited whose `segment` is KEY).",
    )
    quiet_hours: QuietHours | None = None
    steps: list[Step] = Field(min_length=1)

    def step_map(self) -> dict[str, Step]:
        return {step.id: step for step in self.steps}

    def following(self, step_id: str) -> str | None:
        """The step after ``step_id`` in document order, or None for the last one."""
        ids = [step.id for step in self.steps]
        index = ids.index(step_id)
        return ids[index + 1] if index + 1 < len(ids) else None
