"""The ``journeys`` command: validate specs, migrate, run a worker, run the embedded stack."""

from __future__ import annotations

import asyncio
import json
import shlex
import signal
import sys
from pathlib import Path

import httpx
import typer
from rich.console import Console

from temporal_journeys.cli.relay import relay as relay_command
from temporal_journeys.cli.retention import retention as retention_command
from temporal_journeys.journeys.segments import parse_segment
from temporal_journeys.journeys.settings import Settings, get_settings
from temporal_journeys.journeys.validation import (
    SpecInvalid,
    json_schema,
    load_document,
    parse_journey,
)

app = typer.Typer(help="Marketing journeys as durable Temporal workflows.", no_args_is_help=True)
console = Console(soft_wrap=True)
errors = Console(stderr=True, soft_wrap=True)


@app.command()
def validate(paths: list[Path]) -> None:
    """Check journey, segment, topic and broadcast files (YAML or JSON): schema and graph.
    Exit 1 listing every problem. Segments (`kind: segment`) are checked for references and
    cycles by the API; topics are `kind: topic` or files in a `topics/` folder; broadcasts
    (`kind: broadcast`) are the body of POST /v1/broadcasts, whose segment and template the
    API checks when one is sent."""
    from temporal_journeys.cli.documents import kind_of, parse_broadcast, parse_topic

    failed = False
    for path in paths:
        try:
            document = load_document(path.read_text())
            kind = kind_of(path, document)
            if kind == "segment":
                segment = parse_segment(document)
                console.print(f"{path}: ok (segment {segment.key})", markup=False)
                continue
            if kind == "topic":
                topic = parse_topic(path, document)
                shown = f"topic {topic.key}, {topic.topic.type}"
                console.print(f"{path}: ok ({shown})", markup=False)
                continue
            if kind == "broadcast":
                body = parse_broadcast(document)
                what = f"template {body.template}" if body.template else f"journey {body.journey}"
                shown = f"broadcast of {what} to segment {body.segment}"
                console.print(f"{path}: ok ({shown})", markup=False)
                continue
            journey = parse_journey(document)
        except SpecInvalid as invalid:
            failed = True
            for problem in invalid.problems:
                errors.print(f"{path}: {problem.path}: {problem.message}", markup=False)
            continue
        except OSError as exc:
            failed = True
            errors.print(f"{path}: {exc.strerror}", markup=False)
            continue
        console.print(f"{path}: ok ({journey.key}, {len(journey.steps)} steps)", markup=False)
    raise typer.Exit(1 if failed else 0)


@app.command()
def render(
    path: Path,
    stats: bool = typer.Option(
        False,
        help="Add per-step counts, send steps' message metrics and the variants' tests from "
        "the API's stats.",
    ),
    version: int | None = typer.Option(
        None, "--version", help="With --stats: this version's figures (default: the latest)."
    ),
    since: str | None = typer.Option(
        None, "--from", help="With --stats: from this ISO 8601 moment (inclusive)."
    ),
    until: str | None = typer.Option(
        None, "--to", help="With --stats: up to this ISO 8601 moment (exclusive)."
    ),
    api_url: str = typer.Option("http://127.0.0.1:8000", envvar="JOURNEYS_API_URL"),
    api_key: str | None = typer.Option(None, envvar="JOURNEYS_API_KEY"),
) -> None:
    """Print a journey file as a Mermaid flowchart."""
    from temporal_journeys.journeys.mermaid import render as to_mermaid
    from temporal_journeys.journeys.mermaid import stats_notes

    try:
        journey = parse_journey(path.read_text())
    except SpecInvalid as invalid:
        for problem in invalid.problems:
            errors.print(f"{path}: {problem.path}: {problem.message}", markup=False)
        raise typer.Exit(1) from invalid
    counts = notes = None
    if stats:
        params = {
            name: value
            for name, value in (("version", version), ("from", since), ("to", until))
            if value is not None
        }
        try:
            with _api(api_url, api_key) as http:
                response = http.get(f"/v1/journeys/{journey.key}/stats", params=params)
        except httpx.TransportError as exc:
            errors.print(f"stats: {api_url}: {exc}", markup=False)
            raise typer.Exit(1) from exc
        if response.status_code != 200:
            errors.print(f"stats: HTTP {response.status_code}: {response.text[:200]}", markup=False)
            raise typer.Exit(1)
        latest = response.json()[-1] if response.json() else {"steps": []}
        counts = {
            s["step"]: {k: s[k] for k in ("entered", "waiting_now", "completed", "converted")}
            for s in latest["steps"]
        }
        notes = stats_notes(journey, latest)
    sys.stdout.write(to_mermaid(journey, counts, notes))


@app.command()
def simulate(
    path: Path,
    events: Path = typer.Option(
        ...,
        help="YAML timeline (examples/timelines/): contacts, then events, identifies, "
        "enrolments and broadcasts with `at` offsets (negative: history); optional `start` "
        "(pins the clock) and `until` (stops it).",
    ),
) -> None:
    """Run a journey (or a broadcast file) on the real interpreter against a scripted timeline
    (time-skipping server, throwaway SQLite store, console provider) and print each contact's
    trace. Journeys in the same folder that it hands contacts to are simulated too, segments
    in its segments/ folder are kept up to date; channel settings (quiet hours, caps) come
    from the environment."""
    from pydantic import ValidationError

    from temporal_journeys.cli.simulate import format_outcomes, load_timeline, simulated_key
    from temporal_journeys.cli.simulate import simulate as run_simulation

    try:
        timeline = load_timeline(events)
    except (OSError, SpecInvalid, ValidationError) as exc:
        errors.print(f"{events}: {exc}", markup=False)
        raise typer.Exit(1) from exc
    try:
        key = simulated_key(path)  # a journey, or a broadcast file (examples/broadcasts/)
        outcomes = asyncio.run(run_simulation(path, timeline))
    except SpecInvalid as invalid:
        for problem in invalid.problems:
            errors.print(f"{path}: {problem.path}: {problem.message}", markup=False)
        raise typer.Exit(1) from invalid
    except OSError as exc:
        errors.print(f"{path}: {exc.strerror}", markup=False)
        raise typer.Exit(1) from exc
    sys.stdout.write(format_outcomes(outcomes, main=key))


def _api(url: str, key: str | None):  # type: ignore[no-untyped-def]
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    return httpx.Client(base_url=url, headers=headers, timeout=30)


API_URL = typer.Option("http://127.0.0.1:8000", envvar="JOURNEYS_API_URL", help="The API.")
API_KEY = typer.Option(None, envvar="JOURNEYS_API_KEY", help="An admin API key.")


@app.command("diff")
def diff_command(path: Path, api_url: str = API_URL, api_key: str | None = API_KEY) -> None:
    """What publishing PATH would change against the live version, step by step (for a
    segment or a topic file: against the stored one, field by field)."""
    from temporal_journeys.cli.remote import RemoteError, plan

    try:
        with _api(api_url, api_key) as http:
            change = plan(http, path)
    except (SpecInvalid, RemoteError, httpx.TransportError) as exc:
        errors.print(f"{path}: {exc}", markup=False)
        raise typer.Exit(1) from exc
    shown = "\n".join(change.lines) or change.note or "no change"
    console.print(shown if change.lines else f"{change.key}: {shown}", markup=False)


@app.command("apply")
def apply_command(
    paths: list[Path],
    dry_run: bool = typer.Option(False, help="Show the changes, publish nothing."),
    migrate: list[str] = typer.Option(
        [], help="OLD=NEW: move waiting runs from step OLD of the live version to NEW."
    ),
    api_url: str = API_URL,
    api_key: str | None = API_KEY,
) -> None:
    """Save journey files as drafts and publish those that changed, showing each diff; topic
    files (`kind: topic`, or in a `topics/` folder) are saved first, then segment files
    (`kind: segment`), each new or changed one backfilled by the API. Broadcast files are
    listed and left alone: `journeys broadcast` sends them."""
    from rich.progress import Progress

    from temporal_journeys.cli.remote import RemoteError, apply

    mapping = dict(item.split("=", 1) for item in migrate if "=" in item)
    try:
        with _api(api_url, api_key) as http, Progress(console=errors, transient=True) as bar:
            task = bar.add_task("applying", total=len(paths))

            def report(change) -> None:  # type: ignore[no-untyped-def]
                bar.advance(task)
                saved = change.kind in ("segment", "topic")
                verb, done = ("save", "saved") if saved else ("publish", "published")
                version = f" v{change.version}" if change.version is not None else ""
                state = (
                    change.note
                    or ("no change" if not change.lines else None)
                    or (f"would {verb}" if dry_run else f"{done}{version}")
                )
                console.print(f"{change.path}: {change.key}: {state}", markup=False)
                for line in change.lines:
                    console.print(f"  {line}", markup=False)

            apply(http, paths, dry_run=dry_run, migrate=mapping or None, progress=report)
    except (SpecInvalid, RemoteError, httpx.TransportError) as exc:
        errors.print(str(exc), markup=False)
        raise typer.Exit(1) from exc


@app.command("enroll")
def enroll_command(
    key: str,
    user_ids: list[str] = typer.Argument(None, metavar="USER_ID...", show_default=False),
    users: Path | None = typer.Option(
        None, help="A file of userIds, one a line (blank lines and # comments skipped)."
    ),
    properties: str = typer.Option("{}", help="JSON object given to each run as its trigger."),
    chunk_size: int = typer.Option(1000, min=1, max=1000, help="userIds per API call."),
    api_url: str = API_URL,
    api_key: str | None = API_KEY,
) -> None:
    """Put contacts into a journey's live version by API, in chunks, with a progress bar.
    Exit 1 if any contact could not be enrolled."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from temporal_journeys.cli.remote import RemoteError, enroll

    wanted = list(user_ids or [])
    try:
        extra = json.loads(properties)
        if users is not None:
            wanted += [
                line.strip()
                for line in users.read_text().splitlines()
                if line.strip() and not line.lstrip().startswith("#")
            ]
    except (OSError, ValueError) as exc:
        errors.print(f"enroll: {exc}", markup=False)
        raise typer.Exit(2) from exc
    if not isinstance(extra, dict):
        errors.print("enroll: --properties must be a JSON object", markup=False)
        raise typer.Exit(2)
    wanted = list(dict.fromkeys(wanted))  # each contact once, in the given order
    if not wanted:
        errors.print("enroll: no userIds (give them as arguments or with --users)")
        raise typer.Exit(2)
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn())
    try:
        with (
            _api(api_url, api_key) as http,
            Progress(*columns, TimeElapsedColumn(), console=errors) as bar,
        ):
            task = bar.add_task(f"enrolling into {key}", total=len(wanted))
            results = enroll(
                http,
                key,
                wanted,
                properties=extra,
                chunk=chunk_size,
                progress=lambda done: bar.advance(task, len(done)),
            )
    except (RemoteError, httpx.TransportError) as exc:
        errors.print(
            f"{api_url}: {exc}" if isinstance(exc, httpx.TransportError) else str(exc), markup=False
        )
        raise typer.Exit(1) from exc
    refused = [r for r in results if r.get("error")]
    for result in refused:
        errors.print(f"{result['userId']}: {result['error']}", markup=False)
    console.print(f"{key}: {len(results) - len(refused)} of {len(results)} enrolled", markup=False)
    raise typer.Exit(1 if refused else 0)


@app.command("preview")
def preview_command(
    template: str = typer.Argument(..., metavar="TEMPLATE", help="A stored template's key."),
    contact: str | None = typer.Option(None, help="Render for this stored contact (userId)."),
    traits: str | None = typer.Option(
        None, help="Or for sample traits, a JSON object (email, phone, timezone are profile)."
    ),
    data: str = typer.Option("{}", help="JSON object: the send step's data (data.*)."),
    event: str = typer.Option("{}", help="JSON object: the trigger's properties (event.*)."),
    api_url: str = API_URL,
    api_key: str | None = API_KEY,
) -> None:
    """Render a template as a send would, without sending: subject, headers, text, HTML.
    Exit 1 naming the part, line and variable that did not render; 2 on bad options."""
    if contact is not None and traits is not None:
        errors.print("preview: give --contact or --traits, not both", markup=False)
        raise typer.Exit(2)
    body: dict[str, object] = {}
    try:
        for name, raw in (("traits", traits), ("data", data), ("event", event)):
            if raw is None:
                continue
            value = json.loads(raw)
            if not isinstance(value, dict):
                raise ValueError(f"--{name} must be a JSON object")
            body[name] = value
    except ValueError as exc:
        errors.print(f"preview: {exc}", markup=False)
        raise typer.Exit(2) from exc
    if contact is not None:
        body["contact"] = contact
    try:
        with _api(api_url, api_key) as http:
            response = http.post(f"/v1/templates/{template}/preview", json=body)
    except httpx.TransportError as exc:
        errors.print(f"preview: {api_url}: {exc}", markup=False)
        raise typer.Exit(1) from exc
    if response.status_code == 422 and isinstance(response.json().get("detail"), list):
        for problem in response.json()["detail"]:
            errors.print(f"{template}: {problem.get('message')}", markup=False)
        raise typer.Exit(1)
    if response.status_code != 200:
        errors.print(f"preview: HTTP {response.status_code}: {response.text[:300]}", markup=False)
        raise typer.Exit(1)
    shown = response.json()
    lines = [f"template: {template} ({shown['channel']}) for contact {shown['contact_id']}"]
    if shown.get("subject") is not None:
        lines.append(f"subject: {shown['subject']}")
    if shown.get("url") is not None:
        lines.append(f"url: {shown['url']}")
    lines += [f"{name}: {value}" for name, value in shown.get("headers", {}).items()]
    for part in ("text", "html"):
        if shown.get(part) is not None:
            lines += ["", f"--- {part} ---", shown[part]]
    sys.stdout.write("\n".join(lines) + "\n")


parked_app = typer.Typer(
    help="Events the outbox relay parked (Temporal's client refused them): list, retry, drop.",
    no_args_is_help=True,
)
app.add_typer(parked_app, name="parked")


@parked_app.command("list")
def parked_list(api_url: str = API_URL, api_key: str | None = API_KEY) -> None:
    """Every parked event, oldest first: id, contact, event, attempts, when, and the error."""
    from temporal_journeys.cli.remote import RemoteError, parked

    try:
        with _api(api_url, api_key) as http:
            found = 0
            for item in parked(http):
                found += 1
                console.print(
                    f"{item['id']}  {item['contact_id']}  {item['event']}  "
                    f"attempts {item['attempts']}  parked {item['parked_at']}  {item['error']}",
                    markup=False,
                )
    except (RemoteError, httpx.TransportError) as exc:
        errors.print(f"{api_url}: {exc}", markup=False)
        raise typer.Exit(1) from exc
    if not found:
        console.print("no parked events")


def _each_parked(ids: list[int], api_url: str, api_key: str | None, act: str) -> None:
    from temporal_journeys.cli.remote import RemoteError, drop_parked, retry_parked

    call, done = (retry_parked, "queued again") if act == "retry" else (drop_parked, "dropped")
    failed = False
    try:
        with _api(api_url, api_key) as http:
            for entry_id in ids:
                try:
                    call(http, entry_id)
                except RemoteError as exc:
                    failed = True
                    errors.print(f"{entry_id}: {exc}", markup=False)
                    continue
                console.print(f"{entry_id}: {done}", markup=False)
    except httpx.TransportError as exc:
        errors.print(f"{api_url}: {exc}", markup=False)
        raise typer.Exit(1) from exc
    raise typer.Exit(1 if failed else 0)


@parked_app.command("retry")
def parked_retry(ids: list[int], api_url: str = API_URL, api_key: str | None = API_KEY) -> None:
    """Queue parked events again (ids from `journeys parked list`); exit 1 if any is not parked."""
    _each_parked(ids, api_url, api_key, "retry")


@parked_app.command("drop")
def parked_drop(ids: list[int], api_url: str = API_URL, api_key: str | None = API_KEY) -> None:
    """Give parked events up for good (they stay stored, never routed); exit 1 if any is not
    parked."""
    _each_parked(ids, api_url, api_key, "drop")


broadcast_app = typer.Typer(
    help="Broadcasts under way or done: show, pause, resume, cancel (`journeys broadcast` "
    "starts one).",
    no_args_is_help=True,
)
app.add_typer(broadcast_app, name="broadcasts")
_OVER = ("completed", "cancelled", "failed")


def _broadcast_answer(response: httpx.Response) -> dict:
    """The broadcast in the answer; exit 2 naming each field for a 422, 1 for other refusals."""
    if response.status_code == 422:
        for problem in response.json().get("detail", []):
            errors.print(f"{problem.get('path')}: {problem.get('message')}", markup=False)
        raise typer.Exit(2)
    if response.status_code >= 400:
        errors.print(f"{response.status_code}: {response.json().get('detail')}", markup=False)
        raise typer.Exit(1)
    return response.json()


def _watch_broadcast(http: httpx.Client, shown: dict, poll: float) -> dict:
    """A progress bar of the recipients settled until the broadcast is over."""
    import time

    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn())
    with Progress(*columns, TimeElapsedColumn(), console=errors) as bar:
        task = bar.add_task(f"broadcast {shown['id']}", total=shown["total"])
        while True:
            counts = shown["counts"]
            waiting = ("queued", "deferred")
            settled = sum(n for status, n in counts.items() if status not in waiting)
            skipped = counts.get("skipped", 0)
            bar.update(
                task,
                total=shown["total"],
                completed=settled,
                description=f"broadcast {shown['id']} {shown['status']}, {skipped} skipped",
            )
            if shown["status"] in _OVER:
                return shown
            time.sleep(poll)
            shown = _broadcast_answer(http.get(f"/v1/broadcasts/{shown['id']}"))


def _broadcast_summary(shown: dict) -> int:
    counts = ", ".join(f"{n} {status}" for status, n in sorted(shown["counts"].items()))
    total = shown["total"] if shown["total"] is not None else "?"
    console.print(
        f"broadcast {shown['id']} ({shown['workflow_id']}): {shown['status']}; "
        f"{total} recipients: {counts or 'none yet'}",
        markup=False,
    )
    for reason, n in shown.get("reasons", {}).items():
        console.print(f"  {n} {reason}", markup=False)
    return 0 if shown["status"] in ("completed", "scheduled", "sending", "paused") else 1


@app.command("broadcast")
def broadcast_send(
    segment: str,
    template: str | None = typer.Option(None, help="A one-off message: the template's key."),
    journey: str | None = typer.Option(None, help="Or enter each member into this journey."),
    channel: str | None = typer.Option(None, help="Defaults to the template's channel."),
    topic: str | None = typer.Option(None, help="Only the topic's subscribers get it."),
    send_at: str | None = typer.Option(None, help="ISO 8601 with an offset; default: now."),
    local_time: str | None = typer.Option(None, help="HH:MM in each contact's own zone."),
    rate: int | None = typer.Option(None, min=1, help="At most this many messages a minute."),
    data: str = typer.Option("{}", help="JSON object: {{ data.* }} in the template."),
    batch_size: int = typer.Option(500, min=1, max=5000, help="Recipients per batch."),
    wait: bool = typer.Option(True, help="Follow it with a progress bar until it is over."),
    poll: float = typer.Option(1.0, help="Seconds between progress reads."),
    api_url: str = API_URL,
    api_key: str | None = API_KEY,
) -> None:
    """Start a broadcast to SEGMENT's members (as of its start) and follow its progress.
    Exit 2 for bad input (each field named), 1 if it ends other than completed."""
    try:
        extra = json.loads(data)
    except ValueError as exc:
        errors.print(f"broadcast: --data: {exc}", markup=False)
        raise typer.Exit(2) from exc
    body = {
        "segment": segment,
        "template": template,
        "journey": journey,
        "channel": channel,
        "topic": topic,
        "send_at": send_at,
        "local_time": local_time,
        "rate_per_minute": rate,
        "data": extra,
        "batch_size": batch_size,
    }
    body = {k: v for k, v in body.items() if v is not None}
    try:
        with _api(api_url, api_key) as http:
            shown = _broadcast_answer(http.post("/v1/broadcasts", json=body))
            console.print(f"broadcast {shown['id']} started: {shown['workflow_id']}", markup=False)
            if wait and shown["status"] != "scheduled":
                shown = _watch_broadcast(http, shown, poll)
    except httpx.TransportError as exc:
        errors.print(f"{api_url}: {exc}", markup=False)
        raise typer.Exit(1) from exc
    raise typer.Exit(_broadcast_summary(shown))


@broadcast_app.command("show")
def broadcast_show(
    broadcast_id: str,
    wait: bool = typer.Option(False, help="Follow it with a progress bar until it is over."),
    poll: float = typer.Option(1.0, help="Seconds between progress reads."),
    api_url: str = API_URL,
    api_key: str | None = API_KEY,
) -> None:
    """A broadcast's status and recipients by outcome."""
    try:
        with _api(api_url, api_key) as http:
            shown = _broadcast_answer(http.get(f"/v1/broadcasts/{broadcast_id}"))
            if wait:
                shown = _watch_broadcast(http, shown, poll)
    except httpx.TransportError as exc:
        errors.print(f"{api_url}: {exc}", markup=False)
        raise typer.Exit(1) from exc
    raise typer.Exit(_broadcast_summary(shown))


def _broadcast_control(broadcast_id: str, action: str, api_url: str, api_key: str | None) -> None:
    try:
        with _api(api_url, api_key) as http:
            shown = _broadcast_answer(http.post(f"/v1/broadcasts/{broadcast_id}/{action}"))
    except httpx.TransportError as exc:
        errors.print(f"{api_url}: {exc}", markup=False)
        raise typer.Exit(1) from exc
    _broadcast_summary(shown)


@broadcast_app.command("pause")
def broadcast_pause(
    broadcast_id: str, api_url: str = API_URL, api_key: str | None = API_KEY
) -> None:
    """Stop after the batch under way (exit 1 if it is over)."""
    _broadcast_control(broadcast_id, "pause", api_url, api_key)


@broadcast_app.command("resume")
def broadcast_resume(
    broadcast_id: str, api_url: str = API_URL, api_key: str | None = API_KEY
) -> None:
    _broadcast_control(broadcast_id, "resume", api_url, api_key)


@broadcast_app.command("cancel")
def broadcast_cancel(
    broadcast_id: str, api_url: str = API_URL, api_key: str | None = API_KEY
) -> None:
    """Stop for good; answered once nothing more will be sent."""
    _broadcast_control(broadcast_id, "cancel", api_url, api_key)


@app.command("runs")
def runs_command(
    user_id: str = typer.Argument(..., metavar="USER_ID"),
    ui_url: str = typer.Option(
        "http://127.0.0.1:8233", envvar="JOURNEYS_TEMPORAL_UI_URL", help="The Temporal UI."
    ),
    namespace: str = typer.Option(
        "default", envvar="JOURNEYS_TEMPORAL_NAMESPACE", help="The runs' Temporal namespace."
    ),
    api_url: str = API_URL,
    api_key: str | None = API_KEY,
) -> None:
    """A contact's runs: workflow id, status, step, the Temporal UI link and the list filter
    (with encryption on, ids hold a hash of the userId, not the userId)."""
    from temporal_journeys.cli.remote import RemoteError, runs

    try:
        with _api(api_url, api_key) as http:
            found = runs(http, user_id, namespace=namespace, ui_url=ui_url)
    except (RemoteError, httpx.TransportError) as exc:
        errors.print(f"{api_url}: {exc}", markup=False)
        raise typer.Exit(1) from exc
    if not found:
        console.print(f"{user_id}: no runs", markup=False)
        return
    for run in found:
        console.print(
            f"{run.workflow_id}  {run.status}  step {run.step or '-'}\n  {run.link}",
            markup=False,
        )
    filters = sorted({run.list_filter for run in found})
    console.print("list filter: " + " OR ".join(filters), markup=False)


@app.command()
def schema() -> None:
    """Print the JSON Schema of a journey document."""
    sys.stdout.write(json.dumps(json_schema(), indent=2, sort_keys=True) + "\n")


@app.command()
def migrate() -> None:
    """Upgrade the configured database to the latest schema."""
    from temporal_journeys.store.migrate import upgrade

    upgrade(get_settings().database_url)
    console.print("database is at the latest revision")


@app.command()
def worker() -> None:
    """Run a worker for the configured Temporal server and database."""
    import logging

    from temporal_journeys.worker import run_worker

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    asyncio.run(run_worker(get_settings()))


@app.command()
def dev(
    data_dir: Path = typer.Option(Path(".data"), help="Where the SQLite files live."),
    temporal_port: int = typer.Option(7233, help="Temporal frontend port."),
    ui_port: int = typer.Option(8233, help="Temporal UI port."),
    api_port: int = typer.Option(8000, help="HTTP API port."),
    examples: Path = typer.Option(Path("examples"), help="Journeys and templates to load."),
) -> None:
    """Run everything on this machine: Temporal dev server, SQLite store, console provider,
    worker and API. Ctrl-C stops all of it; the data stays in DATA_DIR for the next run."""
    from temporal_journeys.cli.devserver import start_dev_server, stop

    def _interrupt(*_: object) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, _interrupt)  # stop the children on `kill` as on Ctrl-C
    settings = Settings(
        database_url=f"sqlite:///{data_dir / 'journeys.db'}",
        temporal_address=f"127.0.0.1:{temporal_port}",
        public_url=f"http://127.0.0.1:{api_port}",
        # The operator page links each run to this dev server's UI.
        temporal_ui_url=f"http://127.0.0.1:{ui_port}",
    )
    if not settings.secret_key:
        settings = settings.model_copy(update={"secret_key": _dev_secret(data_dir)})
    # With keys set, the UI shows payloads decoded by the API's codec server; its pages call it
    # from the UI's origin, under either name of this machine.
    codec_endpoint = f"http://127.0.0.1:{api_port}/codec" if settings.encryption_keys else None
    if codec_endpoint:
        ui_origins = [f"http://{host}:{ui_port}" for host in ("127.0.0.1", "localhost")]
        origins = [*settings.codec_cors_origins, *ui_origins]
        settings = settings.model_copy(update={"codec_cors_origins": origins})
    console.print("starting the Temporal dev server ...")
    try:
        server = start_dev_server(
            data_dir / "temporal.db",
            temporal_port,
            ui_port,
            log=data_dir / "temporal.log",
            codec_endpoint=codec_endpoint,
        )
    except (RuntimeError, TimeoutError) as exc:
        errors.print(f"journeys dev: {exc}", markup=False)
        raise typer.Exit(1) from exc
    try:
        key_file = _prepare_store(settings, data_dir, examples)
        # The key itself stays out of this output, which ends up in terminals' scrollback and
        # in logs: the banner says where it is and reads it in the example.
        auth = f'"Authorization: Bearer $(cat {shlex.quote(str(key_file))})"'
        console.print(f"API:          {settings.public_url}  (docs: {settings.public_url}/docs)")
        console.print(f"Temporal UI:  http://127.0.0.1:{ui_port}")
        console.print(f"journeys UI:  {settings.public_url}/ui  (sign in with the admin key)")
        if codec_endpoint:
            console.print(f"codec server: {codec_endpoint} (with the admin key)")
        console.print(f"API key:      in {key_file} (admin)", markup=False)
        console.print("put a contact into the abandoned-cart journey:")
        sys.stdout.write(
            f"  curl -s -X POST {settings.public_url}/v1/track -H {auth}"
            " -H 'Content-Type: application/json'"
            """ -d '{"userId": "ada", "event": "cart.abandoned","""
            """ "properties": {"cart_id": "c1", "item": "shoes"}}'\n"""
        )
        console.print("Ctrl-C stops everything.")
        asyncio.run(_serve(settings, api_port))
    except KeyboardInterrupt:
        console.print("stopping ...")
    finally:
        stop(server)


def _private_file(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.touch(mode=0o600)
    path.write_text(text)


def _dev_secret(data_dir: Path) -> str:
    """The dev stack's unsubscribe secret: made once per data dir, so links in the message log
    keep working across runs, and never the same on two machines."""
    import secrets

    secret_file = data_dir / "dev-secret-key"
    if not secret_file.exists():
        _private_file(secret_file, secrets.token_hex(32) + "\n")
    return secret_file.read_text().strip()


def _prepare_store(settings: Settings, data_dir: Path, examples: Path) -> Path:
    """Migrate, keep one admin key across runs (in the file returned), load the example
    journeys and templates."""
    from temporal_journeys.cli.loader import load_folder
    from temporal_journeys.store import keys
    from temporal_journeys.store.db import Database
    from temporal_journeys.store.migrate import upgrade

    upgrade(settings.database_url)
    db = Database(settings.database_url)
    try:
        key_file = data_dir / "dev-api-key"
        if not key_file.exists():
            with db.transaction() as session:
                _private_file(key_file, keys.create(session, "journeys dev", "admin") + "\n")
        if examples.is_dir():
            for change in load_folder(db, examples):
                console.print(change)
        return key_file
    finally:
        db.dispose()


async def _serve(settings: Settings, api_port: int) -> None:
    import uvicorn

    from temporal_journeys.api.app import create_app
    from temporal_journeys.worker import run_worker

    stop_worker = asyncio.Event()
    api_server = uvicorn.Server(
        uvicorn.Config(create_app(settings), host="127.0.0.1", port=api_port, log_level="warning")
    )
    worker_task = asyncio.create_task(run_worker(settings, stop_worker))
    try:
        await api_server.serve()
    finally:
        stop_worker.set()
        await worker_task


@app.command("register-search-attributes")
def register_search_attributes() -> None:
    """Add the journeys search attributes to the configured Temporal namespace."""
    from temporalio.client import Client

    from temporal_journeys.workflows import search_attributes
    from temporal_journeys.workflows.codec import data_converter

    async def register() -> None:
        settings = get_settings()
        client = await Client.connect(
            settings.temporal_address,
            namespace=settings.temporal_namespace,
            data_converter=data_converter(settings),
        )
        await search_attributes.register(client, settings.temporal_namespace)

    asyncio.run(register())
    console.print("search attributes registered")


@app.command("create-key")
def create_key(
    name: str = typer.Option(..., help="Who the key is for, e.g. the app's name."),
    scope: str = typer.Option("track", help="track (send events only) or admin (everything)."),
) -> None:
    """Create an API key and print it once; only its digest is stored."""
    from temporal_journeys.store import keys
    from temporal_journeys.store.db import Database

    db = Database(get_settings().database_url)
    try:
        with db.transaction() as session:
            key = keys.create(session, name, scope)
    except ValueError as exc:
        errors.print(str(exc))
        raise typer.Exit(2) from exc
    finally:
        db.dispose()
    sys.stdout.write(key + "\n")


@app.command("revoke-key")
def revoke_key(
    key: str | None = typer.Argument(
        None,
        help="The key. Left out (and no --name), it is read from standard input, which keeps "
        "it out of the shell's history.",
        show_default=False,
    ),
    name: str | None = typer.Option(None, help="Revoke every live key of this name instead."),
) -> None:
    """Revoke an API key: requests with it get 401 from then on. Exit 1 if no live key matched."""
    from temporal_journeys.store import keys
    from temporal_journeys.store.db import Database

    if key is not None and name is not None:
        errors.print("revoke-key: give the key or --name, not both")
        raise typer.Exit(2)
    if key is None and name is None:
        key = sys.stdin.readline().strip()
        if not key:
            errors.print("revoke-key: give the key on standard input, or --name")
            raise typer.Exit(2)
    db = Database(get_settings().database_url)
    try:
        with db.transaction() as session:
            revoked = keys.revoke(session, key=key, name=name)
    finally:
        db.dispose()
    if not revoked:
        errors.print("no such key, or revoked already")
        raise typer.Exit(1)
    plural = "" if len(revoked) == 1 else "s"
    console.print(f"revoked {len(revoked)} key{plural} ({', '.join(sorted(set(revoked)))})")


@app.command()
def api(
    host: str = typer.Option("127.0.0.1"),
    port: int = typer.Option(8000),
    workers: int = typer.Option(
        1,
        min=1,
        help="API processes (uvicorn workers); each runs its own outbox relay, and relays share "
        "the work. `bench.ingest --compare-workers` says what more processes buy on a machine.",
    ),
) -> None:
    """Serve the HTTP API with uvicorn."""
    import uvicorn

    from temporal_journeys.journeys.settings import MissingSecretKey

    try:
        get_settings().require_secret_key()
    except MissingSecretKey as exc:
        errors.print(f"journeys api: {exc}", markup=False)
        raise typer.Exit(2) from exc
    uvicorn.run(
        "temporal_journeys.api.app:app", factory=True, host=host, port=port, workers=workers
    )


app.command("retention")(retention_command)
app.command("relay")(relay_command)


if __name__ == "__main__":
    app()
