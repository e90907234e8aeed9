"""A journey as a Mermaid flowchart, optionally with per-step counts from the stats API."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import timedelta
from typing import Any

from temporal_journeys.journeys.durations import format_duration
from temporal_journeys.journeys.graph import targets
from temporal_journeys.journeys.spec import (
    BranchStep,
    EnterStep,
    ExitStep,
    Journey,
    SendStep,
    SplitStep,
    Step,
    WaitForStep,
    WaitStep,
    WaitUntil,
)

END = "finish"


def _what(step: Step) -> str:
    if isinstance(step, WaitStep):
        wait = step.wait
        if isinstance(wait, timedelta):
            return f"wait {format_duration(wait)}"
        if isinstance(wait, WaitUntil):
            return f"wait until {wait.until.strftime('%H:%M')} local"
        return f"wait for date in {wait.date_attribute}"
    if isinstance(step, WaitForStep):
        return f"wait for {step.wait_for.event}, at most {format_duration(step.wait_for.timeout)}"
    if isinstance(step, SendStep):
        return f"send {step.send.channel}: {step.send.template}"
    if isinstance(step, EnterStep):
        return f"enter {step.enter.journey}"
    if isinstance(step, ExitStep):
        return "exit" + (f": {step.exit.reason}" if step.exit.reason else "")
    return (
        "branch"
        if isinstance(step, BranchStep)
        else "split"
        if isinstance(step, SplitStep)
        else "update"
    )


def _edge(path: str, step: Step) -> str:
    """The words on an arrow: which case, variant, event or outcome takes it."""
    if path in ("on_timeout", "on_failure"):
        return {"on_timeout": "timeout", "on_failure": "failed"}[path]
    index = int(path.split("[")[1].split("]")[0]) if "[" in path else None
    if isinstance(step, BranchStep):
        return "default" if index is None else f"case {index + 1}"
    if isinstance(step, SplitStep):
        return "holdout" if index is None else step.split.variants[index].name
    return step.wait_for.event if isinstance(step, WaitForStep) else ""


def render(
    journey: Journey,
    counts: Mapping[str, Mapping[str, int]] | None = None,
    notes: Mapping[str, Sequence[str]] | None = None,
) -> str:
    """``counts`` maps a step id to figures such as ``{"entered": 10, "waiting_now": 2}``;
    ``notes`` to further lines of text (``stats_notes``: message metrics, variants)."""
    node = {step.id: f"s{index}" for index, step in enumerate(journey.steps)}
    lines = ["flowchart TD", f'  start(["{journey.name}"]) --> {node[journey.steps[0].id]}']
    for step in journey.steps:
        label = f"{step.id}<br/>{_what(step)}"
        figures = (counts or {}).get(step.id)
        if figures:
            label += "<br/>" + ", ".join(f"{k.replace('_', ' ')} {v}" for k, v in figures.items())
        for note in (notes or {}).get(step.id, ()):
            label += "<br/>" + note
        label = label.replace('"', "'")
        if isinstance(step, BranchStep | SplitStep):
            lines.append(f'  {node[step.id]}{{"{label}"}}')
        else:
            lines.append(f'  {node[step.id]}["{label}"]')
    lines.append(f"  {END}([end])")
    for step in journey.steps:
        exits = list(targets(journey, step)) or [("next", None)]
        for path, target in exits:
            words = _edge(path, step)
            arrow = f" -->|{words}| " if words else " --> "
            lines.append(f"  {node[step.id]}{arrow}{node[target] if target else END}")
    return "\n".join(lines) + "\n"


def what(step: Step) -> str:
    """A step's one-line description (``wait 1h``, ``send email: cart-reminder``), as the
    diagram and the operator page (`/ui`) show it."""
    return _what(step)


# --- figures of GET /v1/journeys/{key}/stats as lines on the graph ------------------------------

_MORE = ("bounced", "complained", "unsubscribed", "undelivered", "failed", "skipped", "pending")


def _share(count: int, rate: float | None) -> str:
    return f"{count} ({rate:.0%})" if rate is not None else str(count)


def _messages(m: Mapping[str, Any]) -> list[str]:
    """A send step's message metrics: the funnel, then whatever went wrong."""
    lines = [
        f"sent {m['sent']}, delivered {_share(m['delivered'], m.get('delivery_rate'))}, "
        f"opened {_share(m['opened'], m.get('open_rate'))}, "
        f"clicked {_share(m['clicked'], m.get('click_rate'))}"
    ]
    more = [f"{name} {m[name]}" for name in _MORE if m.get(name)]
    if m.get("skipped_by_reason"):
        reasons = ", ".join(f"{k.replace('_', ' ')} {v}" for k, v in m["skipped_by_reason"].items())
        more = [part if not part.startswith("skipped") else f"{part} ({reasons})" for part in more]
    if more:
        lines.append(", ".join(more))
    return lines


def _signed(value: float) -> str:
    return f"{value:+.0%}"


def _variant(v: Mapping[str, Any]) -> str:
    text = f"{v['variant']}: entered {v['entered']}, converted {v['converted']}"
    text += f" ({v['conversion_rate']:.0%})"
    tests = {t["rate"]: t for t in v.get("tests") or []}
    m = v.get("messages")
    if m and m.get("sent"):
        text += f", opened {m['opened']}/{m['sent']} ({m['open_rate']:.0%})"
    for rate in ("opened", "conversion"):
        test = tests.get(rate)
        if test is None or test.get("p_value") is None:
            continue
        lift = ""
        if test.get("lift") is not None:
            lift = f" lift {_signed(test['lift'])}"
            if test.get("lift_ci"):
                low, high = test["lift_ci"]
                lift += f" [{_signed(low)}, {_signed(high)}]"
        text += f"; {rate} vs {test['compared_to']}{lift} p {test['p_value']:.3g}"
    return text


def stats_notes(journey: Journey, version: Mapping[str, Any]) -> dict[str, list[str]]:
    """Lines for ``render``'s ``notes`` from one version of the stats API's answer: each send
    step's message metrics, and on each split the variants with their tests."""
    notes: dict[str, list[str]] = {}
    for step in version.get("steps") or []:
        if step.get("messages"):
            notes[step["step"]] = _messages(step["messages"])
    variants = [_variant(v) for v in version.get("variants") or []]
    for step in journey.steps:
        if isinstance(step, SplitStep) and variants:
            notes.setdefault(step.id, []).extend(variants)
    return notes
