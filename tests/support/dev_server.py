"""A real Temporal dev server on a free port that a test can stop and start again on the same
database file, and the in-process stack around it that the chaos tests drive."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import httpx
from fastapi import FastAPI
from temporalio.client import Client

from temporal_journeys.cli.devserver import start_dev_server, stop
from temporal_journeys.store.db import Database
from tests.support.stack import free_port


class DevServer:
    def __init__(self, folder: Path) -> None:
        self.port = free_port()
        self.file = folder / "temporal.db"
        self.log = folder / "temporal.log"
        self.process = start_dev_server(self.file, self.port, None, self.log)

    def stop(self) -> None:
        stop(self.process)

    def restart(self) -> None:
        self.process = start_dev_server(self.file, self.port, None, self.log)


@dataclass
class DevStack:
    """The dev server, a database, and the API (over ASGI) with a worker, in this process."""

    server: DevServer
    db: Database
    url: str
    client: Client
    app: FastAPI
    http: httpx.AsyncClient
    admin: dict[str, str]
    track: dict[str, str]

    async def publish(self, key: str, spec: dict) -> None:
        response = await self.http.put(f"/v1/journeys/{key}", json=spec, headers=self.admin)
        assert response.status_code == 200, response.text
        response = await self.http.post(f"/v1/journeys/{key}/publish", headers=self.admin)
        assert response.status_code == 200, response.text
