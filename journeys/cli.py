"""The ``journeys`` command: validate specs, migrate, run a worker, run the embedded stack."""

from __future__ import annotations

import asyncio
import json
import signal
import sys
from pathlib import Path

import typer
from rich.console import Console

from journeys.settings import get_settings
from journeys.validation import SpecInvalid, json_schema, parse_journey

app = typer.Typer(help="Marketing journeys as durable Temporal workflows.", no_args_is_help=True)
console = Console()
errors = Console(stderr=True)


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
) -> None:
    """Run everything on this machine: Temporal dev server, SQLite store, console provider."""
    from journeys.devserver import start_dev_server, stop
    from journeys.settings import Settings
    from store.migrate import upgrade
    from worker import run_worker

    def _interrupt(*_: object) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, _interrupt)  # stop the children on `kill` as on Ctrl-C
    settings = Settings(
        database_url=f"sqlite:///{data_dir / 'journeys.db'}",
        temporal_address=f"127.0.0.1:{temporal_port}",
    )
    console.print("starting the Temporal dev server ...")
    server = start_dev_server(
        data_dir / "temporal.db", temporal_port, ui_port, log=data_dir / "temporal.log"
    )
    try:
        upgrade(settings.database_url)
        console.print(f"Temporal UI:  http://127.0.0.1:{ui_port}")
        console.print(f"database:     {settings.database_url}")
        console.print("worker running on task queue " + settings.task_queue + "; Ctrl-C stops all")
        asyncio.run(run_worker(settings))
    except KeyboardInterrupt:
        console.print("stopping ...")
    finally:
        stop(server)


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
