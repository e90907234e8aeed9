"""The operator page under ``/ui``: a sign-in with an admin API key, the journeys with live
counts, a journey's flow with its figures, the stuck view, a contact, a message. Routes are
thin: ``views`` gathers, the templates draw; every page but the sign-in needs a session."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import parse_qs, quote

from fastapi import APIRouter, Depends, FastAPI, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from jinja2 import Environment, FileSystemLoader, select_autoescape

from temporal_journeys.api.deps import DbDep, SessionDep, SettingsDep
from temporal_journeys.api.errors import NotFound
from temporal_journeys.api.ui import session as page_session
from temporal_journeys.api.ui import views
from temporal_journeys.journeys.validation import SpecInvalid
from temporal_journeys.store import keys

HERE = Path(__file__).parent
PREFIX = "/ui"
MAX_FORM_BYTES = 4096  # a sign-in form holds one key

templates = Environment(
    loader=FileSystemLoader(HERE / "templates"),
    autoescape=select_autoescape(["html"]),
    trim_blocks=True,
    lstrip_blocks=True,
)
templates.globals.update(
    counts=views.MESSAGE_COUNTS, rates=views.RATES, significant=views.SIGNIFICANT
)
templates.filters["span"] = views.span
templates.filters["shown"] = views.shown
templates.filters["percent"] = views.percent
templates.filters["q"] = lambda value: quote(str(value), safe="")
templates.filters["when"] = lambda moment: moment.strftime("%Y-%m-%d %H:%M:%S") if moment else ""
templates.filters["local"] = lambda moment: moment.strftime("%Y-%m-%dT%H:%M") if moment else ""


class LoginRequired(Exception):
    """No valid session: pages answer with a redirect to the sign-in form."""

    def __init__(self, target: str) -> None:
        self.target = target


def _signed_in(request: Request, settings: SettingsDep, db: DbDep) -> int:
    """The admin key's id behind the request's session cookie."""
    found = page_session.read(
        settings.require_secret_key(), request.cookies.get(page_session.COOKIE)
    )
    if found is not None:
        with db.transaction() as session:
            if keys.is_live_admin(session, found.key_id):
                return found.key_id
    target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    raise LoginRequired(target)


SignedIn = Depends(_signed_in)
router = APIRouter(prefix=PREFIX, include_in_schema=False)


def page(name: str, status: int = 200, **context: Any) -> HTMLResponse:
    started = context.pop("started", None)
    body = templates.get_template(name).render(prefix=PREFIX, **context)
    response = HTMLResponse(body, status_code=status)
    if started is not None:
        # Server time of the page, for the browser's devtools and bench/ui.py.
        response.headers["Server-Timing"] = f"app;dur={(time.perf_counter() - started) * 1000:.1f}"
    return response


def _safe_next(target: str | None) -> str:
    # Only a path of ours: an open redirect would let a link send the operator anywhere.
    if target and target.startswith(PREFIX) and not target.startswith("//"):
        return target
    return PREFIX


@router.get("/login")
def login_form(next: str | None = None) -> HTMLResponse:
    """The sign-in form."""
    return page("login.html", next=_safe_next(next), error=None)


@router.post("/login")
async def login(request: Request, settings: SettingsDep, db: DbDep) -> Response:
    """Check the admin key and open a session (an http-only, SameSite=Strict cookie that
    names the key's id, signed; never the key)."""
    body = await request.body()
    form = parse_qs(body[:MAX_FORM_BYTES].decode("utf-8", "replace"))
    key = (form.get("key") or [""])[0].strip()
    target = _safe_next((form.get("next") or [None])[0])
    key_id = None
    if key:
        key_id = await db.run(keys.live_admin_id, key)
    if key_id is None:
        message = (
            "enter an admin API key"
            if not key
            else "unknown, revoked or not an admin key: the page needs an admin API key"
        )
        return page("login.html", status=401, next=target, error=message)
    response = RedirectResponse(target, status_code=303)
    response.set_cookie(
        page_session.COOKIE,
        page_session.issue(settings.require_secret_key(), key_id),
        max_age=page_session.LIFETIME_SECONDS,
        path=PREFIX,
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
    )
    return response


@router.post("/logout", dependencies=[SignedIn])
def logout() -> Response:
    """Forget the session cookie."""
    response = RedirectResponse(f"{PREFIX}/login", status_code=303)
    response.delete_cookie(page_session.COOKIE, path=PREFIX)
    return response


@router.get("", dependencies=[SignedIn])
def journeys(session: SessionDep) -> HTMLResponse:
    """Every journey with its live counts."""
    started = time.perf_counter()
    return page("journeys.html", items=views.journey_list(session), started=started)


@router.get("/contacts", dependencies=[SignedIn])
def find_contact(id: Annotated[str, Query(min_length=1, max_length=200)]) -> Response:
    """The search box: straight to the contact's page."""
    return RedirectResponse(f"{PREFIX}/contacts/{quote(id.strip(), safe='')}", status_code=303)


def _moment(field: str, value: str | None) -> datetime | None:
    """A time range bound from the page's form (``datetime-local``: no offset, read as UTC)."""
    if not value:
        return None
    try:
        moment = datetime.fromisoformat(value)
    except ValueError as exc:
        raise BadField(field, f"{value!r} is not a date and time like 2026-12-01T09:30") from exc
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


class BadField(Exception):
    def __init__(self, field: str, problem: str) -> None:
        super().__init__(f"{field}: {problem}")


@router.get("/journeys/{key}", dependencies=[SignedIn])
def journey(
    key: str,
    session: SessionDep,
    version: Annotated[int | None, Query(ge=1)] = None,
    since: Annotated[str | None, Query(alias="from", max_length=40)] = None,
    until: Annotated[str | None, Query(alias="to", max_length=40)] = None,
    control: Annotated[str | None, Query(max_length=50)] = None,
) -> HTMLResponse:
    """A version's flow with its figures per step, send step and variant, in a time range."""
    started = time.perf_counter()
    try:
        view = views.journey_page(
            session,
            key,
            version,
            since=_moment("from", since),
            until=_moment("to", until),
            control=control or None,
        )
    except NotFound as exc:
        return page("error.html", status=404, message=str(exc))
    except BadField as exc:
        return page("error.html", status=422, message=str(exc))
    except SpecInvalid as exc:  # the stats' own checks: from after to, an unknown control
        message = "; ".join(f"{p.path}: {p.message}" for p in exc.problems)
        return page("error.html", status=422, message=message)
    return page("journey.html", view=view, started=started)


@router.get("/journeys/{key}/stuck", dependencies=[SignedIn])
def stuck(
    key: str,
    session: SessionDep,
    version: Annotated[int | None, Query(ge=1)] = None,
    grace_minutes: Annotated[int, Query(ge=0, le=100_000)] = 60,
) -> HTMLResponse:
    """Steps by contacts waiting there longer than the step's wait or timeout plus a grace."""
    started = time.perf_counter()
    try:
        view, steps = views.stuck(session, key, version, timedelta(minutes=grace_minutes))
    except NotFound as exc:
        return page("error.html", status=404, message=str(exc))
    return page("stuck.html", view=view, steps=steps, grace_minutes=grace_minutes, started=started)


@router.get("/contacts/{contact_id:path}", dependencies=[SignedIn])
def contact(contact_id: str, session: SessionDep, settings: SettingsDep) -> HTMLResponse:
    """A contact: profile, consent, runs (with Temporal UI links), timeline, messages."""
    started = time.perf_counter()
    try:
        view = views.contact_page(session, settings, contact_id)
    except NotFound as exc:
        return page("error.html", status=404, message=str(exc))
    return page("contact.html", view=view, started=started)


@router.get("/messages/{message_id:path}", dependencies=[SignedIn])
def message(message_id: str, session: SessionDep) -> HTMLResponse:
    """One message as it went out: headers, subject, text and HTML (sandboxed)."""
    started = time.perf_counter()
    try:
        found = views.message(session, message_id)
    except NotFound as exc:
        return page("error.html", status=404, message=str(exc))
    return page("message.html", m=found, started=started)


def install(app: FastAPI) -> None:
    """Mount the pages, their stylesheet, and the redirect to the sign-in form."""

    @app.exception_handler(LoginRequired)
    async def to_login(request: Request, exc: LoginRequired) -> Response:
        # A browser is sent to the sign-in form; anything else (a script, curl) gets a 401.
        if "text/html" not in request.headers.get("accept", ""):
            return HTMLResponse("sign in at /ui/login with an admin API key", status_code=401)
        return RedirectResponse(
            f"{PREFIX}/login?next={quote(exc.target, safe='')}", status_code=303
        )

    app.include_router(router)
    app.mount(f"{PREFIX}/static", StaticFiles(directory=HERE / "static"), name="ui-static")
