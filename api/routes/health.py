"""Liveness, readiness (database and Temporal) and Prometheus metrics."""

from __future__ import annotations

from fastapi import APIRouter, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST

from temporal_journeys.api.deps import DbDep, TemporalConnectionDep
from temporal_journeys.api.metrics import exposition
from temporal_journeys.store.db import Database

router = APIRouter(tags=["health"])


@router.get("/healthz")
def healthz() -> dict[str, str]:
    """The process is up."""
    return {"status": "ok"}


@router.get("/readyz")
async def readyz(db: DbDep, temporal: TemporalConnectionDep) -> JSONResponse:
    """Ready when the database answers and Temporal is reachable."""
    checks = {"database": _database_ok(db), "temporal": await temporal.healthy()}
    ready = all(checks.values())
    return JSONResponse(status_code=200 if ready else 503, content={"ready": ready, **checks})


def _database_ok(db: Database) -> bool:
    try:
        db.ping()
        return True
    except Exception:
        return False


@router.get("/metrics")
def metrics(db: DbDep) -> Response:
    """Prometheus text format; the outbox gauges are read from the database."""
    return Response(exposition(db), media_type=CONTENT_TYPE_LATEST)
