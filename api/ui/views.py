"""What each page of the operator UI shows, gathered from the API's services and the store's
read-only queries; the routes render these into templates. The figures are the API's own
(``journey_stats`` is what ``GET /v1/journeys/{key}/stats`` answers), so the page and the API
never disagree."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import quote, urlencode

from sqlalchemy.orm import Session

from temporal_journeys.api.errors import NotFound
from temporal_journeys.api.schemas import ContactOut, MessageOut
from temporal_journeys.api.services import contacts as contact_service
from temporal_journeys.api.services import journeys as journey_service
from temporal_journeys.api.services import messages as message_service
from temporal_journeys.api.services.stats import VersionStats, journey_stats
from temporal_journeys.api.ui import flow
from temporal_journeys.journeys.mermaid import what
from temporal_journeys.journeys.settings import Settings
from temporal_journeys.journeys.spec import (
    Journey,
    SendStep,
    Step,
    WaitForStep,
    WaitStep,
    step_kind,
)
from temporal_journeys.store import enrollments as enrollments_store
from temporal_journeys.store import journeys as journeys_store
from temporal_journeys.store import messages as messages_store
from temporal_journeys.store import views as views_store
from temporal_journeys.workflows import search_attributes as sa
from temporal_journeys.workflows.run_ids import parse_workflow_id

STUCK_LIST = 20  # contacts listed per step on the stuck view
TIMELINE = 200  # rows of each kind on a contact's timeline


def now() -> datetime:
    return datetime.now(UTC)


def aware(moment: datetime) -> datetime:
    # SQLite hands back naive UTC.
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def span(delta: timedelta) -> str:
    """A wait as people read it: ``3d 4h``, ``25m``, ``40s``."""
    seconds = max(0, int(delta.total_seconds()))
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, seconds = divmod(rest, 60)
    parts = [f"{days}d" if days else "", f"{hours}h" if hours else ""]
    if not days:
        parts.append(f"{minutes}m" if minutes else "")
    if not days and not hours:
        parts.append(f"{seconds}s" if seconds or not minutes else "")
    return " ".join(p for p in parts if p)


@dataclass
class JourneyItem:
    key: str
    name: str
    status: str
    latest_version: int | None
    counts: dict[str, int]

    @property
    def entered(self) -> int:
        return sum(n for s, n in self.counts.items() if s != "skipped")


def journey_list(session: Session) -> list[JourneyItem]:
    return [
        JourneyItem(row.key, row.name, row.status, row.latest_version, counts)
        for row, counts in views_store.journeys_with_counts(session)
    ]


MESSAGE_COUNTS = (
    "sent",
    "delivered",
    "opened",
    "clicked",
    "bounced",
    "complained",
    "unsubscribed",
    "undelivered",
    "failed",
    "skipped",
    "pending",
)
RATES = {
    "delivered": "delivery_rate",
    "opened": "open_rate",
    "clicked": "click_rate",
    "bounced": "bounce_rate",
    "complained": "complaint_rate",
    "unsubscribed": "unsubscribe_rate",
}
SIGNIFICANT = 0.05


def percent(value: float | None) -> str:
    return "–" if value is None else f"{value:.1%}"


def shown(value: Any) -> str:
    if value is None:
        return "–"
    if isinstance(value, float):
        return f"{value:.3g}"
    return str(value)


def message_summary(metrics: dict[str, Any] | None) -> list[str]:
    """A send step's messages in the drawing: the funnel, then whatever went wrong."""
    if not metrics:
        return []
    first = [f"sent {metrics.get('sent', 0)}"]
    for name in ("delivered", "opened", "clicked"):
        first.append(f"{name} {metrics.get(name, 0)} ({percent(metrics.get(RATES[name]))})")
    trouble = [
        f"{name} {metrics[name]}"
        for name in ("bounced", "complained", "unsubscribed", "undelivered", "failed", "skipped")
        if metrics.get(name)
    ]
    return [" · ".join(first[:2]), " · ".join(first[2:])] + (
        [" · ".join(trouble)] if trouble else []
    )


@dataclass
class StepRow:
    step: Step
    headline: str
    kind: str
    entered: int
    waiting_now: int
    oldest_wait: str | None
    left: int
    converted: int
    messages: dict[str, Any] | None
    variants: list[dict[str, Any]]

    @property
    def id(self) -> str:
        return self.step.id


@dataclass
class JourneyPage:
    key: str
    name: str
    status: str
    live_version: int | None
    version: int | None
    versions: list[int]
    journey: Journey | None
    totals: VersionStats | None
    steps: list[StepRow] = field(default_factory=list)
    svg: str = ""
    variants: list[dict[str, Any]] = field(default_factory=list)
    tests: list[dict[str, Any]] = field(default_factory=list)
    since: datetime | None = None
    until: datetime | None = None
    control: str | None = None


def journey_page(
    session: Session,
    key: str,
    version: int | None,
    *,
    since: datetime | None = None,
    until: datetime | None = None,
    control: str | None = None,
) -> JourneyPage:
    page = journey_page_header(session, key, version)
    journey, chosen = page.journey, page.version
    page.since, page.until, page.control = since, until, control
    if journey is None or chosen is None:
        return page
    found = journey_stats(session, key, since=since, until=until, version=chosen, control=control)
    page.totals = stats = next((v for v in found if v.version == chosen), None)
    by_step = {s.step: s.model_dump() for s in (stats.steps if stats else [])}
    oldest = views_store.oldest_waits(session, key, chosen)
    moment = now()
    figures: dict[str, list[str]] = {}
    for step in journey.steps:
        values = by_step.get(step.id, {})
        since_ = oldest.get(step.id)
        waiting = values.get("waiting_now", 0)
        row = StepRow(
            step=step,
            headline=what(step),
            kind=step_kind(step),
            entered=values.get("entered", 0),
            waiting_now=waiting,
            oldest_wait=span(moment - aware(since_)) if since_ is not None and waiting else None,
            left=values.get("completed", 0),
            converted=values.get("converted", 0),
            messages=values.get("messages"),
            variants=values.get("variants") or [],
        )
        page.steps.append(row)
        lines = [
            f"entered {row.entered} · waiting {row.waiting_now}"
            + (f" (oldest {row.oldest_wait})" if row.oldest_wait else "")
            + f" · left {row.left} · converted {row.converted}"
        ]
        if isinstance(step, SendStep):
            lines.extend(message_summary(row.messages))
        # After a split, each variant's share of the step, side by side in the box.
        for variant in row.variants:
            sent = (variant.get("messages") or {}).get("sent")
            opened = variant.get("messages") or {}
            lines.append(
                f"{variant['variant']}: entered {variant.get('entered', 0)}"
                + (
                    f" · sent {sent} · opened {opened.get('opened', 0)} "
                    f"({percent(opened.get('open_rate'))})"
                    if sent
                    else ""
                )
                + f" · converted {variant.get('converted', 0)}"
            )
        figures[step.id] = lines
    page.svg = flow.render(
        journey,
        {s.id: s.headline for s in page.steps},
        figures,
        link={s.id: f"#step-{s.id}" for s in page.steps},
    )
    if stats is not None:
        page.variants = [v.model_dump() for v in stats.variants]
        page.tests = [
            {"variant": v["variant"], **t} for v in page.variants for t in v.get("tests") or []
        ]
    return page


def expected_wait(step: Step) -> timedelta | None:
    """How long a contact is expected to stay at a step: a wait's duration, a wait_for's
    timeout, nothing for the steps that act at once (a send that quiet hours or caps hold
    shows up here too: that is what the view is for). None for waits whose length depends on
    the contact (a time of day, a date attribute): those never count as stuck."""
    if isinstance(step, WaitStep):
        return step.wait if isinstance(step.wait, timedelta) else None
    if isinstance(step, WaitForStep):
        return step.wait_for.timeout
    return timedelta(0)


@dataclass
class StuckStep:
    step: str
    headline: str
    expected: str
    late: int
    contacts: list[tuple[str, str, str]]  # contact id, workflow id, how long


def stuck(
    session: Session, key: str, version: int | None, grace: timedelta
) -> tuple[JourneyPage, list[StuckStep]]:
    """Steps by how many running contacts wait there longer than expected plus ``grace``."""
    page = journey_page_header(session, key, version)
    if page.journey is None or page.version is None:
        return page, []
    moment = now()
    found = []
    for step in page.journey.steps:
        expected = expected_wait(step)
        if expected is None:
            continue
        late, rows = views_store.waiting_longer(
            session, key, page.version, step.id, moment - expected - grace, STUCK_LIST
        )
        if late:
            found.append(
                StuckStep(
                    step=step.id,
                    headline=what(step),
                    expected=span(expected) if expected else "no wait",
                    late=late,
                    contacts=[(c, w, span(moment - aware(s))) for c, w, s in rows],
                )
            )
    found.sort(key=lambda s: -s.late)
    return page, found


def journey_page_header(session: Session, key: str, version: int | None) -> JourneyPage:
    """The journey and version alone, for the pages that show no figures of their own."""
    row = journey_service.get_row(session, key)
    versions = [v.version for v in journeys_store.versions(session, key)]
    chosen = version if version is not None else row.latest_version
    journey = journeys_store.version_spec(session, key, chosen) if chosen is not None else None
    if chosen is not None and journey is None:
        raise NotFound(f"version {chosen} of journey {key!r}")
    return JourneyPage(
        key=row.key,
        name=row.name,
        status=row.status,
        live_version=row.latest_version,
        version=chosen,
        versions=versions,
        journey=journey,
        totals=None,
    )


@dataclass
class RunLink:
    journey: str
    version: int
    workflow_id: str
    status: str
    step: str | None
    variant: str | None
    started_at: datetime
    ended_at: datetime | None
    reason: str | None
    run_url: str
    list_url: str


@dataclass
class TimelineRow:
    at: datetime
    what: str  # event, step, message
    title: str
    detail: str
    message_id: str | None = None


@dataclass
class ContactPage:
    contact: ContactOut
    runs: list[RunLink]
    timeline: list[TimelineRow]
    messages: list[MessageOut]


def _quoted(value: str) -> str:
    # A visibility query's string literal: backslashes and double quotes escaped.
    return value.replace("\\", "\\\\").replace('"', '\\"')


def temporal_links(settings: Settings, workflow_id: str) -> tuple[str, str]:
    """The run's page in the Temporal UI, and the UI's workflow list filtered to the
    contact's runs (the contact part of the id is what ``JourneyContactId`` holds, the
    userId or its hash)."""
    base = settings.temporal_ui_url.rstrip("/") + "/namespaces/"
    base += quote(settings.temporal_namespace, safe="")
    run = f"{base}/workflows/{quote(workflow_id, safe='')}"
    try:
        contact = parse_workflow_id(workflow_id).contact
    except ValueError:
        return run, f"{base}/workflows"
    query = f'{sa.CONTACT_ID.name} = "{_quoted(contact)}"'
    return run, f"{base}/workflows?{urlencode({'query': query})}"


def contact_page(session: Session, settings: Settings, contact_id: str) -> ContactPage:
    contact = contact_service.get(session, contact_id)
    enrollments = enrollments_store.of_contact(session, contact_id)
    runs = []
    for e in reversed(enrollments):
        run_url, list_url = temporal_links(settings, e.workflow_id)
        runs.append(
            RunLink(
                journey=e.journey_key,
                version=e.version,
                workflow_id=e.workflow_id,
                status=e.status,
                step=e.current_step,
                variant=e.variant,
                started_at=aware(e.started_at),
                ended_at=aware(e.ended_at) if e.ended_at else None,
                reason=e.exit_reason,
                run_url=run_url,
                list_url=list_url,
            )
        )
    messages = [
        MessageOut.model_validate(m, from_attributes=True)
        for m in messages_store.listing(session, contact_id=contact_id, limit=TIMELINE)
    ]
    timeline = [
        TimelineRow(
            at=aware(ev.timestamp),
            what="event",
            title=ev.name,
            detail=", ".join(f"{k}: {v}" for k, v in (ev.properties or {}).items()),
        )
        for ev in views_store.events_of(session, contact_id, TIMELINE)
    ]
    for se in views_store.steps_of(session, [e.id for e in enrollments], TIMELINE):
        timeline.append(
            TimelineRow(
                at=aware(se.at),
                what="step",
                title=f"{se.journey_key} v{se.version} · {se.step_id or ''} {se.kind}".strip(),
                detail=" ".join(x for x in (se.variant or "", se.detail or "") if x),
            )
        )
    for m in messages:
        timeline.append(
            TimelineRow(
                at=aware(m.created_at),
                what="message",
                title=f"{m.channel} {m.template}" + (f": {m.subject}" if m.subject else ""),
                detail=m.status + (" (test)" if m.test else ""),
                message_id=m.id,
            )
        )
    timeline.sort(key=lambda r: r.at, reverse=True)
    return ContactPage(contact=contact, runs=runs, timeline=timeline, messages=messages)


def message(session: Session, message_id: str) -> MessageOut:
    return message_service.get(session, message_id)
