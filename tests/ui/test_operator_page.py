"""The operator page in a real headless Chromium (Debian's `chromium` and `chromedriver`,
installed by `make browser-deps`; `make test` installs them when missing): 50 contacts run
through the abandoned cart on the real interpreter (`journeys simulate`'s engine, kept in a
Postgres database of the test's own) and signed SendGrid webhooks report what became of the
reminders; then an operator signs in, reads the journey page, whose figures (steps and
messages) must be the stats API's, opens a contact and follows a message to what it said.

With JOURNEYS_SCREENSHOTS=1 the test also rewrites the screenshots in docs/images/."""

from __future__ import annotations

import asyncio
import os
import shutil
import threading
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import parse_qs, urlparse

import httpx
import pytest
import pytest_asyncio
import uvicorn
from selenium import webdriver
from selenium.common.exceptions import StaleElementReferenceException, WebDriverException
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webelement import WebElement
from selenium.webdriver.support import expected_conditions as ready
from selenium.webdriver.support.wait import WebDriverWait
from sqlalchemy import text

from temporal_journeys.api.app import create_app
from temporal_journeys.api.ui import session as page_session
from temporal_journeys.cli.simulate import ScriptedContact, ScriptedEvent, Start, Timeline, simulate
from temporal_journeys.journeys.settings import Settings
from temporal_journeys.store import keys
from temporal_journeys.store.db import Database
from tests.support.postgres import fresh_database
from tests.support.signed_webhooks import SendGridSigner, sendgrid_body, sendgrid_event
from tests.support.stack import free_port

pytestmark = pytest.mark.slow

ROOT = Path(__file__).parents[2]
EXAMPLES = ROOT / "examples"
IMAGES = ROOT / "docs" / "images"
CONTACTS = 50
OPENERS = range(0, 15)  # open the reminder: the run goes to `done`
BUYERS = range(15, 25)  # buy during the three-day wait: converted
# The rest are still in the three-day wait when the clock stops, two days in.


def timeline() -> Timeline:
    ids = [f"shopper-{n:02d}" for n in range(CONTACTS)]
    events = [
        ScriptedEvent(
            at=timedelta(minutes=n),
            userId=i,
            event="cart.abandoned",
            properties={"cart_id": f"c{n}"},
        )
        for n, i in enumerate(ids)
    ]
    events += [
        ScriptedEvent(
            at=timedelta(hours=3), userId=ids[n], event="email.opened", message_step="reminder"
        )
        for n in OPENERS
    ]
    events += [
        ScriptedEvent(
            at=timedelta(days=1, hours=6),
            userId=ids[n],
            event="order.completed",
            properties={"order_id": f"o{n}"},
        )
        for n in BUYERS
    ]
    contacts = [
        ScriptedContact(
            id=i,
            traits={"email": f"{i}@example.org", "timezone": "UTC", "first_name": f"Shopper {n}"},
        )
        for n, i in enumerate(ids)
    ]
    # 10:00 UTC: the sends fall outside the journey's quiet hours whenever the test runs.
    return Timeline(
        start=Start.model_validate({"at": "10:00"}),
        until=timedelta(days=2),
        contacts=contacts,
        events=events,
    )


# The simulated clock runs ahead of the wall clock; the store is moved back in time so that
# its latest moment lies this long ago: the contacts in the three-day wait have then waited
# longer than three days and an hour, and the stuck view must list them. Moments the store
# took from the wall clock (a message's creation, an entry's start) are set from the
# simulated ones beside them, as a real deployment, whose two clocks agree, would have them.
AGED = timedelta(days=3)
AGEING = (
    "UPDATE step_events SET at = at - :shift",
    "UPDATE events SET timestamp = timestamp - :shift, received_at = timestamp - :shift",
    "UPDATE messages SET sent_at = sent_at - :shift, created_at = coalesce(sent_at, created_at)"
    " - :shift, updated_at = coalesce(sent_at, created_at) - :shift",
    "UPDATE enrollments SET ended_at = ended_at - :shift, started_at = coalesce("
    "(SELECT min(at) FROM step_events WHERE enrollment_id = enrollments.id), started_at)",
    "UPDATE enrollments SET step_since = (SELECT max(at) FROM step_events WHERE enrollment_id"
    " = enrollments.id AND step_id = enrollments.current_step AND kind = 'entered')",
)


def age(db: Database, ago: timedelta) -> None:
    with db.transaction() as session:
        latest = session.execute(text("SELECT max(at) FROM step_events")).scalar_one()
        shift = latest - datetime.now(UTC) + ago
        for statement in AGEING:
            session.execute(text(statement), {"shift": shift})


# What SendGrid reports of the reminders, by shopper number (the console provider sent them;
# the signed webhooks come as SendGrid would post them).
DELIVERED = range(0, 40)
OPENED = range(0, 15)
CLICKED = range(0, 5)
BOUNCED = range(45, 50)


def report_deliveries(http: httpx.Client, signer: SendGridSigner) -> None:
    sent = http.get("/v1/messages", params={"journey": "abandoned-cart", "limit": 1000})
    reminders = {
        m["contact_id"]: m for m in sent.raise_for_status().json() if m["step_id"] == "reminder"
    }
    events = []
    for kind, numbers in (
        ("delivered", DELIVERED),
        ("open", OPENED),
        ("click", CLICKED),
        ("bounce", BOUNCED),
    ):
        for n in numbers:
            message = reminders[f"shopper-{n:02d}"]
            events.append(sendgrid_event(kind, message["id"], email=message["to_address"]))
    body = sendgrid_body(events)
    posted = http.post("/v1/webhooks/sendgrid", content=body, headers=signer.headers(body))
    assert posted.status_code < 300, posted.text


@dataclass
class Served:
    url: str
    admin: str
    http: httpx.Client


@pytest.fixture(scope="module")
def store_url(postgres_server_url: str) -> Iterator[str]:
    with fresh_database(postgres_server_url) as url:
        yield url


@pytest_asyncio.fixture(scope="module")
async def served(store_url: str) -> AsyncIterator[Served]:
    outcomes = await simulate(EXAMPLES / "abandoned-cart.yaml", timeline(), database_url=store_url)
    assert len(outcomes) == CONTACTS
    db = Database(store_url)
    age(db, AGED)
    with db.transaction() as session:
        admin = keys.create(session, "operator", "admin")
    signer = SendGridSigner()
    settings = Settings(
        database_url=store_url,
        temporal_ui_url="http://temporal-ui.test:8233",
        sendgrid_webhook_public_key=signer.public_key_b64,
    )
    app = create_app(settings, db=db, relay=False)
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    for _ in range(200):  # at most 10 s
        if server.started:
            break
        await asyncio.sleep(0.05)
    assert server.started, "uvicorn did not start"
    url = f"http://127.0.0.1:{port}"
    try:
        with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {admin}"}) as http:
            report_deliveries(http, signer)
            yield Served(url, admin, http)
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        db.dispose()


def _binary(*names: str) -> str:
    for name in names:
        found = shutil.which(name)
        if found:
            return found
    # Required, not skipped: CI installs them (`make test` runs `make browser-deps` if missing).
    pytest.fail(f"no {names[0]} on PATH: run `make browser-deps`")


@pytest.fixture(scope="module")
def browser() -> Iterator[webdriver.Chrome]:
    options = webdriver.ChromeOptions()
    options.binary_location = _binary("chromium", "chromium-browser")
    for argument in ("--headless=new", "--no-sandbox", "--disable-gpu", "--window-size=1400,1000"):
        options.add_argument(argument)
    driver = webdriver.Chrome(
        service=Service(executable_path=_binary("chromedriver")), options=options
    )
    try:
        yield driver
    finally:
        driver.quit()


def screenshot(driver: webdriver.Chrome, name: str) -> None:
    """Into docs/images/ only when asked, so a test run leaves the tree as it was."""
    if os.environ.get("JOURNEYS_SCREENSHOTS") != "1":
        return
    height = driver.execute_script("return document.documentElement.scrollHeight")
    driver.set_window_size(1400, min(max(height, 800), 2400))
    driver.save_screenshot(str(IMAGES / name))
    driver.set_window_size(1400, 1000)


def sign_in(driver: webdriver.Chrome, key: str) -> None:
    old = driver.find_element(By.ID, "key")
    old.send_keys(key)
    driver.find_element(By.ID, "sign-in").click()
    # A form post navigates: wait for the new page before looking at it.
    WebDriverWait(driver, 10).until(_replaced(old))


def find(driver: webdriver.Chrome, by: str, selector: str) -> WebElement:
    return WebDriverWait(driver, 10).until(ready.presence_of_element_located((by, selector)))


def navigate(driver: webdriver.Chrome, element: WebElement, act: str = "click") -> None:
    """Click a link (or submit a form) and wait until the next page replaced this one."""
    page = driver.find_element(By.TAG_NAME, "html")
    getattr(element, act)()
    WebDriverWait(driver, 10).until(_replaced(page))


def _replaced(element: WebElement) -> Callable[[webdriver.Chrome], bool]:
    """True once ``element``'s page is gone. ``staleness_of`` is not enough: asked in the
    middle of a navigation, Chrome answers with an "unknown error" saying the node does not
    belong to the document, which means just that."""

    def left(_driver: webdriver.Chrome) -> bool:
        try:
            element.is_enabled()
        except StaleElementReferenceException:
            return True
        except WebDriverException as error:
            if "does not belong to the document" not in str(error.msg):
                raise
            return True
        return False

    return left


def test_the_journey_page_shows_the_apis_figures_and_leads_to_a_message(served, browser):
    journey_url = f"{served.url}/ui/journeys/abandoned-cart"

    # No session: the page sends the browser to the sign-in form, which refuses a wrong key.
    browser.get(journey_url)
    assert urlparse(browser.current_url).path == "/ui/login"
    sign_in(browser, "jk_admin_wrong")
    assert "not an admin key" in browser.find_element(By.ID, "login-error").text
    assert browser.get_cookie(page_session.COOKIE) is None

    # The right key: back to the page asked for, with an http-only, strict cookie.
    browser.get(journey_url)
    sign_in(browser, served.admin)
    assert browser.current_url == journey_url
    cookie = browser.get_cookie(page_session.COOKIE)
    assert cookie is not None and cookie["httpOnly"] and cookie["sameSite"] == "Strict"
    assert served.admin not in cookie["value"]

    # Every step's figures are the stats API's for the live version.
    [stats] = served.http.get("/v1/journeys/abandoned-cart/stats").raise_for_status().json()
    api_steps = {s["step"]: s for s in stats["steps"]}
    shown = {}
    for row in browser.find_elements(By.CSS_SELECTOR, "#steps tr[data-step]"):
        cells = row.find_elements(By.CSS_SELECTOR, "td[data-figure]")
        shown[row.get_attribute("data-step")] = {
            c.get_attribute("data-figure"): c.text for c in cells
        }
    assert set(api_steps) <= set(shown)
    for step, figures in api_steps.items():
        for name in ("entered", "waiting_now", "completed", "converted"):
            assert shown[step][name] == str(figures[name]), (step, name)
    assert int(shown["wait-1h"]["entered"]) == CONTACTS
    assert shown["wait-3d"]["waiting_now"] == str(CONTACTS - len(OPENERS) - len(BUYERS))
    # How long the longest of them has waited: the store's latest moment (the last purchase,
    # some hours after they entered the wait) lies three days ago.
    assert shown["wait-3d"]["oldest_wait"].startswith("3d ")
    # Every send step's message figures are the API's too, from the webhooks posted.
    for step, figures in api_steps.items():
        if not figures.get("messages"):
            continue
        row = browser.find_element(By.CSS_SELECTOR, f"tr[data-metrics-of='{step}']")
        for name in ("sent", "delivered", "opened", "clicked", "bounced", "failed"):
            shown_value = row.find_element(By.CSS_SELECTOR, f"[data-metric={name}] b").text
            assert shown_value == str(figures["messages"][name]), (step, name)
    reminder = api_steps["reminder"]["messages"]
    assert (reminder["delivered"], reminder["opened"], reminder["clicked"]) == (40, 15, 5)
    assert reminder["bounced"] == len(BOUNCED)
    totals = browser.find_element(By.CSS_SELECTOR, "[data-total=converted]").text
    assert totals == str(stats["converted"]) == str(len(BUYERS))
    # The drawing has a box per step, with the same figures in it.
    boxes = browser.find_elements(By.CSS_SELECTOR, "svg.flow g.step")
    assert len(boxes) == len(shown)
    box = browser.find_element(By.CSS_SELECTOR, "svg.flow g.step[data-step=reminder]")
    assert f"entered {api_steps['reminder']['entered']}" in box.text
    screenshot(browser, "ui-journey.png")

    # The stuck view: the contacts in the three-day wait have been there for longer.
    navigate(browser, browser.find_element(By.LINK_TEXT, "stuck contacts"))
    [late] = browser.find_elements(By.CSS_SELECTOR, "section.stuck")
    assert late.get_attribute("data-step") == "wait-3d"
    waiting = CONTACTS - len(OPENERS) - len(BUYERS)
    assert late.find_element(By.CSS_SELECTOR, "[data-figure=late]").text == str(waiting)
    assert len(late.find_elements(By.CSS_SELECTOR, "tbody tr")) == min(waiting, 20)
    # With a grace longer than the age, nobody is late.
    browser.get(f"{journey_url}/stuck?grace_minutes={60 * 24 * 5}")
    assert browser.find_element(By.ID, "nobody-stuck")

    # A contact found with the search box: profile, runs with Temporal UI links, messages.
    browser.get(f"{served.url}/ui")
    row = browser.find_element(By.CSS_SELECTOR, "#journeys tr[data-journey=abandoned-cart]")
    assert row.find_element(By.CSS_SELECTOR, "[data-figure=entered]").text == str(CONTACTS)
    box = browser.find_element(By.NAME, "id")
    box.send_keys("shopper-40")
    navigate(browser, box, "submit")
    assert browser.find_element(By.ID, "contact-id").text == "shopper-40"
    run_link = browser.find_element(By.CSS_SELECTOR, "#runs a.list-link").get_attribute("href")
    listed = urlparse(run_link)
    assert listed.netloc == "temporal-ui.test:8233"
    assert listed.path == "/namespaces/default/workflows"
    assert parse_qs(listed.query)["query"] == ['JourneyContactId = "shopper-40"']
    messages = browser.find_elements(By.CSS_SELECTOR, "#messages tr[data-message]")
    assert len(messages) == 2  # the reminder and the discount; the last chance is days away
    screenshot(browser, "ui-contact.png")

    # Follow the reminder to what it said: the API's subject, text and headers.
    reminder = browser.find_element(By.XPATH, "//tr[@data-message][contains(., 'reminder')]")
    message_id = reminder.get_attribute("data-message")
    navigate(browser, reminder.find_element(By.CSS_SELECTOR, "a.message-link"))
    sent = served.http.get(f"/v1/messages/{message_id}").raise_for_status().json()
    assert browser.find_element(By.ID, "subject").text == sent["subject"]
    assert browser.find_element(By.ID, "text").text.strip() == (sent["text"] or "").strip()
    assert browser.find_element(By.ID, "to").text == "shopper-40@example.org"
    for name in sent["headers"] or {}:
        assert name in browser.find_element(By.ID, "headers").text
