"""Errors mapped to HTTP once, for every route: 404, 409, 413, 422 with JSON paths, 503."""

from __future__ import annotations

import json

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import DataError, DBAPIError, IntegrityError, InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from temporalio.service import RPCError, RPCStatusCode

from temporal_journeys.journeys.validation import SpecInvalid, json_path


class NotFound(Exception):
    def __init__(self, what: str) -> None:
        super().__init__(f"{what} not found")


class Conflict(Exception):
    pass


class TooLarge(Exception):
    pass


class Unrenderable(Exception):
    """A template that does not render for the data given: each problem names the template's
    part (``$.text``), the line and column in it and, when one is to blame, the variable."""

    def __init__(self, problems: list[dict[str, object]]) -> None:
        super().__init__("; ".join(str(p["message"]) for p in problems))
        self.problems = problems


class ProviderRefused(Exception):
    """A provider refused a test send, or its answer never came: the message row says which."""


UNREACHABLE = "the database is unreachable; try again shortly"


def _problem(status: int, detail: object, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse(status_code=status, content={"detail": detail}, headers=headers)


def _unavailable(detail: str = UNREACHABLE) -> JSONResponse:
    # Segment-style clients retry a 503 and keep the events meanwhile.
    return _problem(503, detail, {"Retry-After": "1"})


def install(app: FastAPI) -> None:
    @app.exception_handler(NotFound)
    async def not_found(_: Request, exc: NotFound) -> JSONResponse:
        return _problem(404, str(exc))

    @app.exception_handler(Conflict)
    async def conflict(_: Request, exc: Conflict) -> JSONResponse:
        return _problem(409, str(exc))

    @app.exception_handler(TooLarge)
    async def too_large(_: Request, exc: TooLarge) -> JSONResponse:
        return _problem(413, str(exc))

    @app.exception_handler(Unrenderable)
    async def unrenderable(_: Request, exc: Unrenderable) -> JSONResponse:
        return _problem(422, exc.problems)

    @app.exception_handler(ProviderRefused)
    async def provider_refused(_: Request, exc: ProviderRefused) -> JSONResponse:
        return _problem(502, str(exc))

    @app.exception_handler(SpecInvalid)
    async def spec_invalid(_: Request, exc: SpecInvalid) -> JSONResponse:
        return _problem(422, [p.as_dict() for p in exc.problems])

    @app.exception_handler(RequestValidationError)
    async def invalid_request(_: Request, exc: RequestValidationError) -> JSONResponse:
        problems = []
        for error in exc.errors():
            if error.get("type") == "json_invalid":
                return _problem(400, f"malformed JSON: {error.get('ctx', {}).get('error', '')}")
            location = [part for part in error["loc"] if part != "body"]
            problems.append(
                {
                    "path": json_path(location),
                    "location": error["loc"][0] if error["loc"] else "body",
                    "message": str(error["msg"]).removeprefix("Value error, "),
                }
            )
        return _problem(422, problems)

    @app.exception_handler(IntegrityError)
    async def integrity(_: Request, exc: IntegrityError) -> JSONResponse:
        return _problem(409, "conflicts with stored data: " + str(exc.orig).splitlines()[0])

    @app.exception_handler(DataError)
    async def unstorable(_: Request, exc: DataError) -> JSONResponse:
        # Postgres refuses NUL characters in text and JSON, whatever the field.
        return _problem(422, "a value cannot be stored: " + str(exc.orig).splitlines()[0])

    @app.exception_handler(OperationalError)
    @app.exception_handler(InterfaceError)
    async def database_down(_: Request, exc: DBAPIError) -> JSONResponse:
        # Refused or cut connections (restart, failover, terminated backends).
        return _unavailable()

    @app.exception_handler(DBAPIError)
    async def database_error(_: Request, exc: DBAPIError) -> JSONResponse:
        if exc.connection_invalidated:  # the driver saw the connection drop mid-statement
            return _unavailable()
        raise exc  # a bug, not an outage: a 500 that gets logged

    @app.exception_handler(PoolTimeout)
    async def database_busy(_: Request, exc: PoolTimeout) -> JSONResponse:
        return _unavailable("the database is busy (no free connection); try again shortly")

    @app.exception_handler(RPCError)
    async def temporal_error(_: Request, exc: RPCError) -> JSONResponse:
        # Temporal down or overloaded is an outage the caller can retry; anything else is a bug.
        if exc.status in (
            RPCStatusCode.UNAVAILABLE,
            RPCStatusCode.DEADLINE_EXCEEDED,
            RPCStatusCode.RESOURCE_EXHAUSTED,
        ):
            return _unavailable("Temporal is unreachable; try again shortly")
        raise exc

    @app.exception_handler(json.JSONDecodeError)
    async def bad_json(_: Request, exc: json.JSONDecodeError) -> JSONResponse:
        return _problem(400, f"malformed JSON: {exc}")
