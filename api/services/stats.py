"""Funnel, message and experiment figures per journey version: steps, variants, significance.

Everything is added up from the few grouped rows ``store/stats.py`` answers (per version, step,
variant and kind), never from messages one by one, so the figures of a journey with 100,000
enrollments cost the same handful of statements as those of a journey with ten.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any, Literal

from pydantic import BaseModel, Field
from sqlalchemy.orm import Session

from temporal_journeys.journeys import significance
from temporal_journeys.journeys.validation import Problem, SpecInvalid
from temporal_journeys.store import stats as stats_store

LEFT_STEP = (
    "waited",
    "sent",
    "skipped",
    "event",
    "timeout",
    "branched",
    "variant",
    "updated",
    "handed_off",
    "failed",
    "migrated",
)
HOLDOUT = "holdout"

# Kept importable from here: tests and callers of the first stats API use it.
two_proportion_test = significance.two_proportion_test

MessageRate = Literal["delivered", "opened", "clicked", "bounced", "complained", "unsubscribed"]
MESSAGE_RATES: tuple[MessageRate, ...] = (
    "delivered",
    "opened",
    "clicked",
    "bounced",
    "complained",
    "unsubscribed",
)


class MessageMetrics(BaseModel):
    """What became of a set of messages (one step, one variant, one version): each message
    counted once per outcome it reached, from its status and the delivery webhooks received.
    Rates are per message sent (every channel has that denominator; many have no delivery
    receipts), None when none was sent."""

    sent: int = Field(0, description="Accepted by the provider (outcome unknown included).")
    delivered: int = Field(0, description="Delivered, or opened/clicked/complained/unsubscribed.")
    opened: int = Field(
        0, description="Unique opens: messages opened at least once (a click counts)."
    )
    clicked: int = Field(0, description="Unique clicks: messages clicked at least once.")
    bounced: int = 0
    complained: int = Field(0, description="Marked as spam.")
    unsubscribed: int = 0
    undelivered: int = Field(0, description="Accepted, then dropped by the provider or carrier.")
    failed: int = Field(0, description="Refused by the provider, or the template did not render.")
    skipped: int = Field(0, description="Never sent: see skipped_by_reason.")
    pending: int = Field(0, description="Not settled yet: held back or being sent.")
    skipped_by_reason: dict[str, int] = Field(
        default_factory=dict,
        description="no_address, invalid_address, unsubscribed, topic, suppressed, "
        "frequency_cap, other.",
    )
    delivery_rate: float | None = None
    open_rate: float | None = None
    click_rate: float | None = None
    bounce_rate: float | None = None
    complaint_rate: float | None = None
    unsubscribe_rate: float | None = None

    def add(self, counts: dict[str, Any]) -> None:
        for name in stats_store.OUTCOMES:
            setattr(self, name, getattr(self, name) + counts.get(name, 0))

    def finish(self) -> MessageMetrics:
        for name, rate in RATE_FIELDS.items():
            setattr(self, rate, getattr(self, name) / self.sent if self.sent else None)
        return self


RATE_FIELDS: dict[str, str] = {
    "delivered": "delivery_rate",
    "opened": "open_rate",
    "clicked": "click_rate",
    "bounced": "bounce_rate",
    "complained": "complaint_rate",
    "unsubscribed": "unsubscribe_rate",
}


class RateTest(BaseModel):
    """One rate of a variant against the same rate of another (``compared_to``): the
    two-proportion z-test's two-sided p-value, the difference in rate points and the relative
    lift (``rate / control_rate - 1``), each with its 95 % confidence interval."""

    rate: Literal[
        "conversion", "delivered", "opened", "clicked", "bounced", "complained", "unsubscribed"
    ]
    compared_to: str
    successes: int
    trials: int
    control_successes: int
    control_trials: int
    value: float
    control_value: float
    difference: float
    difference_ci: tuple[float, float]
    lift: float | None
    lift_ci: tuple[float, float] | None
    z: float | None
    p_value: float | None


class StepVariantStats(BaseModel):
    """One step's figures for the runs of one variant."""

    variant: str
    entered: int = 0
    completed: int = 0
    converted: int = 0
    messages: MessageMetrics | None = None
    tests: list[RateTest] = Field(default_factory=list)


class StepStats(BaseModel):
    step: str
    entered: int = 0
    waiting_now: int = 0
    completed: int = 0
    converted: int = 0
    channel: str | None = None
    messages: MessageMetrics | None = Field(
        None, description="Send steps: what their messages did."
    )
    variants: list[StepVariantStats] = Field(
        default_factory=list, description="The step's figures per variant, after a split."
    )


class VariantStats(BaseModel):
    variant: str
    entered: int
    converted: int
    conversion_rate: float
    compared_to: str | None = None
    z: float | None = None
    p_value: float | None = None
    messages: MessageMetrics | None = Field(None, description="All the variant's sends.")
    tests: list[RateTest] = Field(
        default_factory=list,
        description="Conversion against compared_to; each message rate against the control, "
        "or, when the control sent nothing (a holdout), the first variant that did.",
    )


class VersionStats(BaseModel):
    version: int
    entered: int
    running: int
    converted: int
    ended: dict[str, int]
    steps: list[StepStats]
    variants: list[VariantStats]
    messages: MessageMetrics | None = Field(None, description="All the version's sends.")


def _test(rate: Any, compared_to: str, c1: int, n1: int, c2: int, n2: int) -> RateTest | None:
    found = significance.compare(c1, n1, c2, n2)
    if found is None:
        return None
    lift_ci = (
        (found.lift_low, found.lift_high)
        if found.lift_low is not None and found.lift_high is not None
        else None
    )
    return RateTest(
        rate=rate,
        compared_to=compared_to,
        successes=c1,
        trials=n1,
        control_successes=c2,
        control_trials=n2,
        value=found.rate,
        control_value=found.control_rate,
        difference=found.difference,
        difference_ci=(found.difference_low, found.difference_high),
        lift=found.lift,
        lift_ci=lift_ci,
        z=found.z,
        p_value=found.p_value,
    )


def _message_tests(
    metrics: dict[str, MessageMetrics | None], control: str | None
) -> dict[str, list[RateTest]]:
    """Each message rate of each variant against the baseline: ``control`` if it sent
    messages, else the first variant (by name) that did."""
    senders = sorted(v for v, m in metrics.items() if m is not None and m.sent)
    if len(senders) < 2:
        return {}
    baseline = control if control in senders else senders[0]
    base = metrics[baseline]
    assert base is not None
    out: dict[str, list[RateTest]] = {}
    for variant in senders:
        mine = metrics[variant]
        if variant == baseline or mine is None:
            continue
        tests = [
            _test(rate, baseline, getattr(mine, rate), mine.sent, getattr(base, rate), base.sent)
            for rate in MESSAGE_RATES
        ]
        out[variant] = [t for t in tests if t is not None]
    return out


def _control(names: Iterable[str], asked: str | None) -> str:
    present = sorted(names)
    if asked in present:
        return asked  # type: ignore[return-value]
    return HOLDOUT if HOLDOUT in present else present[0]


def _variants(
    rows: list[Any], messages: dict[str, MessageMetrics], asked: str | None
) -> list[VariantStats]:
    totals: Counter[str] = Counter()
    converted: Counter[str] = Counter()
    for variant, is_converted, count in rows:
        if variant is None:
            continue
        totals[variant] += count
        if is_converted:
            converted[variant] += count
    if not totals:
        return []
    control = _control(totals, asked)
    per_variant = {v: messages.get(v) for v in totals}
    message_tests = _message_tests(per_variant, control)
    out = []
    for variant in sorted(totals):
        stats = VariantStats(
            variant=variant,
            entered=totals[variant],
            converted=converted[variant],
            conversion_rate=converted[variant] / totals[variant],
            messages=per_variant[variant],
        )
        if variant != control:
            stats.compared_to = control
            test = _test(
                "conversion",
                control,
                converted[variant],
                totals[variant],
                converted[control],
                totals[control],
            )
            if test is not None:
                stats.z, stats.p_value = test.z, test.p_value
                stats.tests.append(test)
        stats.tests.extend(message_tests.get(variant, []))
        out.append(stats)
    return out


def _step_variants(
    step: StepStats,
    counts: dict[str, Counter[str]],
    messages: dict[str, MessageMetrics],
    asked: str | None,
) -> None:
    names = sorted(set(counts) | set(messages))
    if not names:
        return
    tests = _message_tests({n: messages.get(n) for n in names}, _control(names, asked))
    for name in names:
        kinds = counts.get(name, Counter())
        step.variants.append(
            StepVariantStats(
                variant=name,
                entered=kinds["entered"],
                completed=sum(kinds[k] for k in LEFT_STEP),
                converted=kinds["converted"],
                messages=messages.get(name),
                tests=tests.get(name, []),
            )
        )


def _utc(moment: datetime | None) -> datetime | None:
    """In UTC, as the store keeps moments (SQLite compares them as text); a moment without
    an offset is taken as UTC."""
    if moment is None:
        return None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def journey_stats(
    session: Session,
    key: str,
    *,
    since: datetime | None = None,
    until: datetime | None = None,
    version: int | None = None,
    control: str | None = None,
) -> list[VersionStats]:
    """The journey's figures per version (only ``version`` if given), for step events,
    entries and messages in [since, until); variants compared with ``control`` (default: the
    holdout, else the first variant by name)."""
    since, until = _utc(since), _utc(until)
    if since is not None and until is not None and since >= until:
        raise SpecInvalid([Problem("$.query.from", "must be before `to`")])
    window = stats_store.Window(version=version, since=since, until=until)
    steps: dict[int, dict[str, StepStats]] = defaultdict(dict)

    def step(version: int, step_id: str) -> StepStats:
        return steps[version].setdefault(step_id, StepStats(step=step_id))

    step_kinds: dict[tuple[int, str], dict[str, Counter[str]]] = defaultdict(dict)
    for version_, step_id, variant, kind, count in stats_store.step_event_counts(
        session, key, window
    ):
        target = step(version_, step_id)
        if kind == "entered":
            target.entered += count
        elif kind == "converted":
            target.converted += count
        elif kind in LEFT_STEP:
            target.completed += count
        if variant is not None:
            step_kinds[(version_, step_id)].setdefault(variant, Counter())[kind] += count

    statuses: dict[int, Counter[str]] = defaultdict(Counter)
    variant_rows: dict[int, list[Any]] = defaultdict(list)
    for version_, status, current, variant, converted, count in stats_store.enrollment_counts(
        session, key, window
    ):
        statuses[version_][status] += count
        if status == "running" and current is not None:
            step(version_, current).waiting_now += count
        if status != "skipped":  # refused by the re-entry rule: never in the experiment
            variant_rows[version_].append((variant, converted, count))

    by_step: dict[tuple[int, str], MessageMetrics] = defaultdict(MessageMetrics)
    by_step_variant: dict[tuple[int, str], dict[str, MessageMetrics]] = defaultdict(dict)
    by_variant: dict[int, dict[str, MessageMetrics]] = defaultdict(dict)
    by_version: dict[int, MessageMetrics] = defaultdict(MessageMetrics)
    channels: dict[tuple[int, str], str] = {}
    for row in stats_store.message_counts(session, key, window):
        if row["version"] is None or row["step"] is None:
            continue  # not a journey step's send
        at = (row["version"], row["step"])
        channels[at] = row["channel"]
        targets = [by_step[at], by_version[row["version"]]]
        if row["variant"] is not None:
            targets.append(by_step_variant[at].setdefault(row["variant"], MessageMetrics()))
            targets.append(by_variant[row["version"]].setdefault(row["variant"], MessageMetrics()))
        for target in targets:
            target.add(row)
            if row["skip_reason"] is not None:
                reasons = target.skipped_by_reason
                reasons[row["skip_reason"]] = reasons.get(row["skip_reason"], 0) + row["skipped"]
    for metrics in [
        *by_step.values(),
        *by_version.values(),
        *(m for d in by_step_variant.values() for m in d.values()),
        *(m for d in by_variant.values() for m in d.values()),
    ]:
        metrics.finish()

    for (version_, step_id), metrics in by_step.items():
        target = step(version_, step_id)
        target.messages, target.channel = metrics, channels.get((version_, step_id))

    known = {v for rows in variant_rows.values() for v, _, _ in rows if v is not None}
    if control is not None and control not in known:
        raise SpecInvalid(
            [Problem("$.query.control", f"no variant {control!r} in {key!r}: {sorted(known)}")]
        )

    result = []
    for version_ in sorted(set(statuses) | set(steps) | set(by_version)):
        for step_id, target in steps[version_].items():
            _step_variants(
                target,
                step_kinds.get((version_, step_id), {}),
                by_step_variant.get((version_, step_id), {}),
                control,
            )
        counts = statuses[version_]
        result.append(
            VersionStats(
                version=version_,
                entered=sum(n for s, n in counts.items() if s != "skipped"),
                running=counts["running"],
                converted=counts["converted"],
                ended={s: n for s, n in counts.items() if s != "running"},
                steps=list(steps[version_].values()),
                variants=_variants(variant_rows[version_], by_variant[version_], control),
                messages=by_version.get(version_),
            )
        )
    return result
