"""The ``journeys`` command: validate specs, migrate, run a worker, run the embedded stack."""

from __future__ import annotations

import asyncio
import json
import signal
import sys
from pathlib import Path

import httpx
import typer
from rich.console import Console

from journeys.settings import Settings, get_settings
from journeys.validation import SpecInvalid, json_schema, parse_journey

app = typer.Typer(help="Marketing journeys as durable Temporal workflows.", no_args_is_help=True)
console = Console(soft_wrap=True)
errors = Console(stderr=True, soft_wrap=True)


@app.command()
def validate(paths: list[Path]) -> None:
    """Check journey files (YAML or JSON): schema and graph. Exit 1 listing every problem."""
    failed = False
    for path in paths:
        try:
            journey = parse_journey(path.read_text())
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
    stats: bool = typer.Option(False, help="Add per-step counts from the API's stats."),
    api_url: str = typer.Option("http://127.0.0.1:8000", envvar="JOURNEYS_API_URL"),
    api_key: str | None = typer.Option(None, envvar="JOURNEYS_API_KEY"),
) -> None:
    """Print a journey file as a Mermaid flowchart."""
    from journeys.mermaid import render as to_mermaid

    try:
        journey = parse_journey(path.read_text())
    except SpecInvalid as invalid:
        for problem in invalid.problems:
            errors.print(f"{path}: {problem.path}: {problem.message}", markup=False)
        raise typer.Exit(1) from invalid
    counts = None
    if stats:
        try:
            with _api(api_url, api_key) as http:
                response = http.get(f"/v1/journeys/{journey.key}/stats")
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
    sys.stdout.write(to_mermaid(journey, counts))


@app.command()
def simulate(
    path: Path,
    events: Path = typer.Option(
        ...,
        help="YAML timeline (examples/timelines/): contacts, then events and enrolments with "
        "`at` offsets; optional `start` (pins the clock) and `until` (stops it).",
    ),
) -> None:
    """Run a journey on the real interpreter against a scripted timeline (time-skipping server,
    throwaway SQLite store, console provider) and print each contact's trace. Journeys in the
    same folder that it hands contacts to are simulated too; channel settings (quiet hours,
    caps) come from the environment."""
    from pydantic import ValidationError

    from journeys.simulate import format_outcomes, load_timeline
    from journeys.simulate import simulate as run_simulation

    try:
        timeline = load_timeline(events)
    except (OSError, SpecInvalid, ValidationError) as exc:
        errors.print(f"{events}: {exc}", markup=False)
        raise typer.Exit(1) from exc
    try:
        key = parse_journey(path.read_text()).key
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
    """What publishing PATH would change against the live version, step by step."""
    from journeys.remote import RemoteError, plan

    try:
        with _api(api_url, api_key) as http:
            change = plan(http, path)
    except (SpecInvalid, RemoteError, httpx.TransportError) as exc:
        errors.print(f"{path}: {exc}", markup=False)
        raise typer.Exit(1) from exc
    console.print("\n".join(change.lines) or f"{change.key}: no change", markup=False)


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
    """Save journey files as drafts and publish those that changed, showing each diff."""
    from rich.progress import Progress

    from journeys.remote import RemoteError, apply

    mapping = dict(item.split("=", 1) for item in migrate if "=" in item)
    try:
        with _api(api_url, api_key) as http, Progress(console=errors, transient=True) as bar:
            task = bar.add_task("applying", total=len(paths))

            def report(change) -> None:  # type: ignore[no-untyped-def]
                bar.advance(task)
                state = (
                    "no change"
                    if not change.lines
                    else ("would publish" if dry_run else f"published v{change.version}")
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

    from journeys.remote import RemoteError, enroll

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


@app.command()
def schema() -> None:
    """Print the JSON Schema of a journey document."""
    sys.stdout.write(json.dumps(json_schema(), indent=2, sort_keys=True) + "\n")


@app.command()
def migrate() -> None:
    """Upgrade the configured database to the latest schema."""
    from store.migrate import upgrade

    upgrade(get_settings().database_url)
    console.print("database is at the latest revision")


@app.command()
def worker() -> None:
    """Run a worker for the configured Temporal server and database."""
    import logging

    from worker import run_worker

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
    from journeys.devserver import start_dev_server, stop

    def _interrupt(*_: object) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, _interrupt)  # stop the children on `kill` as on Ctrl-C
    settings = Settings(
        database_url=f"sqlite:///{data_dir / 'journeys.db'}",
        temporal_address=f"127.0.0.1:{temporal_port}",
        public_url=f"http://127.0.0.1:{api_port}",
    )
    console.print("starting the Temporal dev server ...")
    server = start_dev_server(
        data_dir / "temporal.db", temporal_port, ui_port, log=data_dir / "temporal.log"
    )
    try:
        key = _prepare_store(settings, data_dir, examples)
        console.print(f"API:          {settings.public_url}  (docs: {settings.public_url}/docs)")
        console.print(f"Temporal UI:  http://127.0.0.1:{ui_port}")
        console.print(f"API key:      {key}  (admin; kept in {data_dir / 'dev-api-key'})")
        console.print("put a contact into the abandoned-cart journey:")
        sys.stdout.write(
            f"  curl -s -X POST {settings.public_url}/v1/track -H 'Authorization: Bearer {key}'"
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


def _prepare_store(settings: Settings, data_dir: Path, examples: Path) -> str:
    """Migrate, keep one admin key across runs, load the example journeys and templates."""
    from journeys.loader import load_folder
    from store import keys
    from store.db import Database
    from store.migrate import upgrade

    upgrade(settings.database_url)
    db = Database(settings.database_url)
    try:
        key_file = data_dir / "dev-api-key"
        if not key_file.exists():
            with db.transaction() as session:
                key_file.write_text(keys.create(session, "journeys dev", "admin") + "\n")
        if examples.is_dir():
            for change in load_folder(db, examples):
                console.print(change)
        return key_file.read_text().strip()
    finally:
        db.dispose()


async def _serve(settings: Settings, api_port: int) -> None:
    import uvicorn

    from api.app import create_app
    from worker import run_worker

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

    from journeys import search_attributes

    async def register() -> None:
        settings = get_settings()
        client = await Client.connect(
            settings.temporal_address, namespace=settings.temporal_namespace
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
    from store import keys
    from store.db import Database

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


@app.command()
def api(host: str = typer.Option("127.0.0.1"), port: int = typer.Option(8000)) -> None:
    """Serve the HTTP API with uvicorn."""
    import uvicorn

    uvicorn.run("api.app:app", factory=True, host=host, port=port)


if __name__ == "__main__":
    app()
