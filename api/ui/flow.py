"""A journey's flow as an SVG drawn on the server: one box per step in the order of the spec,
each with its figures, an arrow straight down to the step that follows it, and every other
exit (a jump, a loop back, a timeout, a branch case, a variant, the end) as an arc in a lane
to the right of the boxes, labelled as `journeys render` labels its Mermaid arrows."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from html import escape

from temporal_journeys.journeys.graph import targets
from temporal_journeys.journeys.spec import (
    BranchStep,
    Journey,
    SplitStep,
    Step,
    WaitForStep,
    step_kind,
)

BOX_WIDTH = 470
LINE = 17  # px per line of text in a box
TOP = 56  # room for the start node
GAP = 34  # between boxes, where the straight arrows run
LANE = 26  # px between the lanes of the arcs
LEFT = 20

KIND_COLOURS = {
    "send": "#e8f1fb",
    "wait": "#fdf6e3",
    "wait_for": "#fdf6e3",
    "branch": "#f3ecfa",
    "split": "#f3ecfa",
    "update": "#eef7ee",
    "enter": "#eef7ee",
    "exit": "#f4f4f4",
}


def _edge_words(path: str, step: Step) -> str:
    if path in ("on_timeout", "on_failure"):
        return {"on_timeout": "timeout", "on_failure": "failed"}[path]
    index = int(path.split("[")[1].split("]")[0]) if "[" in path else None
    if isinstance(step, BranchStep):
        return "default" if index is None else f"case {index + 1}"
    if isinstance(step, SplitStep):
        if path.startswith("split.holdout"):
            return "holdout"
        return "" if index is None else step.split.variants[index].name
    return step.wait_for.event if isinstance(step, WaitForStep) else ""


def render(
    journey: Journey,
    headline: Mapping[str, str],
    figures: Mapping[str, Sequence[str]],
    *,
    link: Mapping[str, str] | None = None,
) -> str:
    """The SVG. ``headline`` is a step's one-line description, ``figures`` its lines of
    numbers; ``link`` an optional URL per step (its row in the table below the drawing)."""
    steps = journey.steps
    tops: dict[str, int] = {}
    heights: dict[str, int] = {}
    y = TOP
    for step in steps:
        lines = 2 + len(figures.get(step.id, ()))
        heights[step.id] = 12 + lines * LINE
        tops[step.id] = y
        y += heights[step.id] + GAP
    end_top = y
    index = {step.id: i for i, step in enumerate(steps)}

    straight: list[tuple[str, str | None, str]] = []
    arcs: list[tuple[str, str | None, str]] = []
    for i, step in enumerate(steps):
        exits = list(targets(journey, step))
        for path, target in exits:
            words = _edge_words(path, step)
            following = steps[i + 1].id if i + 1 < len(steps) else None
            if target == following and target is not None:
                straight.append((step.id, target, words))
            elif target is None and following is None:
                straight.append((step.id, None, words))
            else:
                arcs.append((step.id, target, words))

    right = LEFT + BOX_WIDTH
    pill = min(BOX_WIDTH, 40 + 7 * len(journey.name))  # the start node fits the name
    width = right + 40 + LANE * max(1, len(arcs)) + 90
    height = end_top + 40
    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="flow" width="{width}" '
        f'height="{height}" viewBox="0 0 {width} {height}" role="img" '
        f'aria-label="flow of {escape(journey.key)}">',
        "<defs><marker id='arrow' viewBox='0 0 10 10' refX='9' refY='5' markerWidth='7' "
        "markerHeight='7' orient='auto-start-reverse'><path d='M0,0 L10,5 L0,10 z' "
        "fill='#555'/></marker></defs>",
        f'<rect x="{LEFT + BOX_WIDTH // 2 - pill // 2}" y="8" width="{pill}" height="28" '
        f'rx="14" class="terminal"/>',
        f'<text x="{LEFT + BOX_WIDTH // 2}" y="27" text-anchor="middle" class="terminal-text">'
        f"{escape(journey.name)}</text>",
        _line(LEFT + BOX_WIDTH // 2, 36, LEFT + BOX_WIDTH // 2, TOP),
    ]
    for step in steps:
        top, tall = tops[step.id], heights[step.id]
        kind = step_kind(step)
        group = [
            f'<g class="step" data-step="{escape(step.id)}" data-kind="{kind}">',
            f'<rect x="{LEFT}" y="{top}" width="{BOX_WIDTH}" height="{tall}" rx="6" '
            f'fill="{KIND_COLOURS.get(kind, "#fff")}" stroke="#889" />',
            f'<text x="{LEFT + 10}" y="{top + 18}" class="step-id">{escape(step.id)}</text>',
            f'<text x="{LEFT + 10}" y="{top + 18 + LINE}" class="step-what">'
            f"{escape(headline.get(step.id, kind))}</text>",
        ]
        for n, text in enumerate(figures.get(step.id, ())):
            group.append(
                f'<text x="{LEFT + 10}" y="{top + 18 + LINE * (2 + n)}" class="figure">'
                f"{escape(text)}</text>"
            )
        group.append("</g>")
        href = (link or {}).get(step.id)
        if href:
            out.append(f'<a href="{escape(href)}">{"".join(group)}</a>')
        else:
            out.extend(group)
    centre = LEFT + BOX_WIDTH // 2
    out.append(
        f'<rect x="{centre - 50}" y="{end_top}" width="100" height="26" rx="13" class="terminal"/>'
        f'<text x="{centre}" y="{end_top + 18}" text-anchor="middle" class="terminal-text">'
        "end</text>"
    )
    for source, target, words in straight:
        y1 = tops[source] + heights[source]
        y2 = tops[target] if target is not None else end_top
        out.append(_line(centre, y1, centre, y2))
        if words:
            out.append(
                f'<text x="{centre + 6}" y="{(y1 + y2) // 2 + 4}" class="edge">'
                f"{escape(words)}</text>"
            )
    for lane, (source, target, words) in enumerate(arcs):
        x = right + 30 + LANE * lane
        y1 = tops[source] + min(heights[source] // 2, 30) + (lane % 3) * 4
        if target is None:
            y2 = end_top + 13
            x2 = centre + 50
        else:
            y2 = tops[target] + min(heights[target] // 2, 30) + 8
            x2 = right
        backwards = target is not None and index[target] <= index[source]
        out.append(
            f'<path d="M{right},{y1} H{x} V{y2} H{x2}" fill="none" stroke="#555" '
            f'stroke-width="1.3" marker-end="url(#arrow)" '
            f'class="arc{" back" if backwards else ""}"/>'
        )
        if words:
            out.append(f'<text x="{x + 4}" y="{y1 - 4}" class="edge">{escape(words)}</text>')
    out.append("</svg>")
    return "".join(out)


def _line(x1: int, y1: int, x2: int, y2: int) -> str:
    return (
        f'<line x1="{x1}" y1="{y1}" x2="{x2}" y2="{y2}" stroke="#555" stroke-width="1.3" '
        f'marker-end="url(#arrow)"/>'
    )
