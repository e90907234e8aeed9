"""The operator page's door: without a session every page sends a browser to the sign-in form
and anything else away with a 401; only a live admin key opens a session, and the session's
cookie is http-only, SameSite=Strict, signed, and holds no key."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest_asyncio

from temporal_journeys.api.app import create_app
from temporal_journeys.api.ui import session as page_session
from temporal_journeys.journeys.settings import Settings
from temporal_journeys.store import keys
from temporal_journeys.store.db import Database

HTML = {"Accept": "text/html,application/xhtml+xml"}
PAGES = ["/ui", "/ui/journeys/abandoned-cart", "/ui/contacts/ada", "/ui/messages/m1"]


@pytest_asyncio.fixture
async def page(db: Database) -> AsyncIterator[tuple[httpx.AsyncClient, str, str]]:
    settings = Settings(database_url=str(db.engine.url.render_as_string(hide_password=False)))
    app = create_app(settings, db=db, relay=False)
    with db.transaction() as session:
        admin = keys.create(session, "operator", "admin")
        track = keys.create(session, "the app", "track")
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://ui.test") as http:
        yield http, admin, track


async def test_every_page_refuses_without_a_session(page):
    http, _, _ = page
    for path in PAGES:
        browser = await http.get(path, headers=HTML)
        assert browser.status_code == 303, path
        assert browser.headers["location"].startswith("/ui/login?next=%2Fui"), path
        script = await http.get(path)
        assert script.status_code == 401, path


async def test_a_bearer_key_is_no_session(page):
    http, admin, _ = page
    response = await http.get("/ui", headers={"Authorization": f"Bearer {admin}", **HTML})
    assert response.status_code == 303


async def test_a_wrong_key_and_a_track_key_are_refused(page):
    http, _, track = page
    for key in ("jk_admin_not-a-key", track, ""):
        response = await http.post("/ui/login", data={"key": key, "next": "/ui"})
        assert response.status_code == 401, key
        assert "journeys_ui" not in response.headers.get("set-cookie", "")
        assert "admin" in response.text
    assert (await http.get("/ui", headers=HTML)).status_code == 303


async def test_an_admin_key_opens_a_session_whose_cookie_holds_no_key(page):
    http, admin, _ = page
    response = await http.post("/ui/login", data={"key": admin, "next": "/ui/journeys/x"})
    assert response.status_code == 303
    assert response.headers["location"] == "/ui/journeys/x"
    cookie = response.headers["set-cookie"]
    assert cookie.startswith(f"{page_session.COOKIE}=")
    assert "HttpOnly" in cookie and "SameSite=strict" in cookie and "Path=/ui" in cookie
    # The key's secret part is random URL-safe base64, which may hold "_" itself.
    secret = admin.removeprefix("jk_admin_")
    assert admin not in cookie and secret not in cookie
    listing = await http.get("/ui", headers=HTML)
    assert listing.status_code == 200 and "<h1>Journeys</h1>" in listing.text
    assert float(listing.headers["server-timing"].split("dur=")[1]) >= 0


async def test_the_sign_in_sends_back_to_our_own_pages_only(page):
    http, admin, _ = page
    response = await http.post("/ui/login", data={"key": admin, "next": "https://evil.test/"})
    assert response.headers["location"] == "/ui"


async def test_a_forged_or_expired_cookie_is_no_session(page):
    http, admin, _ = page
    await http.post("/ui/login", data={"key": admin})
    value = http.cookies[page_session.COOKIE]
    key_id, expires, signature = value.split(".")
    http.cookies.clear()
    forged = f"{int(key_id) + 1}.{expires}.{signature}"
    expired = page_session.issue("tests-secret-key", int(key_id), now=0)
    other_secret = page_session.issue("another secret", int(key_id))
    for bad in (forged, expired, other_secret, "garbage"):
        http.cookies.set(page_session.COOKIE, bad, domain="ui.test", path="/ui")
        assert (await http.get("/ui", headers=HTML)).status_code == 303, bad
        http.cookies.clear()


async def test_revoking_the_key_ends_its_sessions(page, db: Database):
    http, admin, _ = page
    await http.post("/ui/login", data={"key": admin})
    assert (await http.get("/ui", headers=HTML)).status_code == 200
    with db.transaction() as session:
        keys.revoke(session, key=admin)
    assert (await http.get("/ui", headers=HTML)).status_code == 303


async def test_signing_out_forgets_the_cookie(page):
    http, admin, _ = page
    await http.post("/ui/login", data={"key": admin})
    response = await http.post("/ui/logout")
    assert response.status_code == 303 and response.headers["location"] == "/ui/login"
    assert (await http.get("/ui", headers=HTML)).status_code == 303
