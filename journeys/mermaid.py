"""A journey as a Mermaid flowchart, optionally with per-step counts from the stats API."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import timedelta

from journeys.durations import format_duration
from journeys.graph import targets
from journeys.spec import (
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


def render(journey: Journey, counts: Mapping[str, Mapping[str, int]] | None = None) -> str:
    """``counts`` maps a step id to figures such as ``{"entered": 10, "waiting_now": 2}``."""
    node = {step.id: f"s{index}" for index, step in enumerate(journey.steps)}
    lines = ["flowchart TD", f'  start(["{journey.name}"]) --> {node[journey.steps[0].id]}']
    for step in journey.steps:
        label = f"{step.id}<br/>{_what(step)}"
        figures = (counts or {}).get(step.id)
        if figures:
            label += "<br/>" + ", ".join(f"{k.replace('_', ' ')} {v}" for k, v in figures.items())
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
