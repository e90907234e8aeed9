"""Liveness, readiness (database and Temporal) and Prometheus metrics."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from sqlalchemy import text

router = APIRouter(tags=["health"])


@router.get("/healthz")
def healthz() -> dict[str, str]:
    """The process is up."""
    return {"status": "ok"}


@router.get("/readyz")
async def readyz(request: Request) -> JSONResponse:
    """Ready when the database answers and Temporal is reachable."""
    checks = {
        "database": _database_ok(request),
        "temporal": await request.app.state.temporal.healthy(),
    }
    ready = all(checks.values())
    return JSONResponse(status_code=200 if ready else 503, content={"ready": ready, **checks})


def _database_ok(request: Request) -> bool:
    try:
        with request.app.state.db.engine.connect() as connection:
            connection.execute(text("SELECT 1"))
        return True
    except Exception:
        return False


@router.get("/metrics")
def metrics() -> Response:
    """Prometheus text format."""
    return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)
