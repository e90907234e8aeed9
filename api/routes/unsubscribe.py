"""Unsubscribe links from messages, and the preference page. No API key: the signed token in
the link is the credential.

GET only shows a page (with buttons and the topics' checkboxes), because mail scanners and link
previews fetch GET URLs; changes are made by POST. A POST without an ``action`` field is what
RFC 8058 one-click clients send (``List-Unsubscribe=One-Click``; any body is accepted): it
leaves the message's topic when the link names one, else the whole channel. The page's forms
add ``action=preferences`` (the checked ``topic`` fields are subscribed, the other ``shown``
ones not) or ``action=all`` (leave the channel, every topic with it)."""

from __future__ import annotations

from datetime import UTC, datetime
from html import escape
from typing import Annotated
from urllib.parse import parse_qs

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse

from temporal_journeys.api.deps import DbDep, RelayDep, SettingsDep
from temporal_journeys.api.services import consent
from temporal_journeys.journeys.consent import read_link
from temporal_journeys.journeys.topics import UnknownTopics

router = APIRouter(prefix="/v1/unsubscribe", tags=["consent"])

NOT_VALID = "This unsubscribe link is not valid. Please use the link from a recent message."
CHANNEL_NAMES = {"email": "emails", "sms": "text messages"}
ONE_CLICK_FORM = (
    '<form method="post"><input type="hidden" name="List-Unsubscribe" value="One-Click">'
    '<button type="submit">{label}</button></form>'
)


async def _form(request: Request) -> dict[str, list[str]]:
    # Form fields without python-multipart: urlencoded bodies only, which is what RFC 8058
    # clients and the page's forms send (the body size is capped by the BodyLimit middleware).
    if request.method != "POST":
        return {}
    return parse_qs((await request.body()).decode("utf-8", "replace"))


FormDep = Annotated[dict[str, list[str]], Depends(_form)]


def _page(title: str, text: str, status: int = 200, forms: str = "") -> HTMLResponse:
    html = (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{escape(title)}</title></head>"
        f"<body><h1>{escape(title)}</h1><p>{escape(text)}</p>{forms}</body></html>"
    )
    return HTMLResponse(html, status_code=status)


def _what(channel: str) -> str:
    return CHANNEL_NAMES.get(channel, f"{channel} messages")


def _preferences(state: consent.LinkState) -> str:
    """The topics' checkboxes, ticked where the contact receives the topic."""
    if not state.topics:
        return ""
    rows = "".join(
        "<li><label>"
        f'<input type="hidden" name="shown" value="{escape(t.key)}">'
        f'<input type="checkbox" name="topic" value="{escape(t.key)}"'
        f"{' checked' if t.subscribed else ''}> {escape(t.name)}</label>"
        + (f"<br><small>{escape(t.description)}</small>" if t.description else "")
        + "</li>"
        for t in state.topics
    )
    return (
        '<h2>Your subscriptions</h2><form method="post">'
        '<input type="hidden" name="action" value="preferences">'
        f'<ul>{rows}</ul><button type="submit">Save preferences</button></form>'
    )


def _leave_all(state: consent.LinkState) -> str:
    label = f"Unsubscribe from all {_what(state.channel)}"
    return (
        '<form method="post"><input type="hidden" name="action" value="all">'
        f'<button type="submit">{escape(label)}</button></form>'
    )


def _state_page(state: consent.LinkState, notice: str | None = None) -> HTMLResponse:
    what = _what(state.channel)
    if state.unsubscribed:
        return _page("Unsubscribed", f"You will not receive our {what} anymore.")
    topic = state.topic
    if topic is None:
        # A link without a topic (a message sent on none): one-click leaves the channel.
        forms = ONE_CLICK_FORM.format(label="Unsubscribe") + _preferences(state)
        text = notice or f"Press the button to stop receiving our {what}."
        return _page("Unsubscribe?", text, forms=forms)
    forms = _preferences(state) + _leave_all(state)
    if not topic.subscribed:
        text = notice or f"You will not receive {topic.name} anymore."
        return _page("Unsubscribed", text, forms=forms)
    one_click = ONE_CLICK_FORM.format(label=escape(f"Unsubscribe from {topic.name}"))
    text = notice or f"Press the button to stop receiving {topic.name}."
    return _page(f"Unsubscribe from {topic.name}?", text, forms=one_click + forms)


@router.get("/{token}", response_class=HTMLResponse)
def confirm(token: str, db: DbDep, settings: SettingsDep) -> HTMLResponse:
    """A page that asks to confirm the unsubscribe and lists the topics (changes nothing)."""
    with db.transaction() as session:
        state = consent.link_state(session, settings.require_secret_key(), token)
    if state is None:
        return _page("Link not valid", NOT_VALID, status=404)
    return _state_page(state)


@router.post("/{token}", response_class=HTMLResponse)
def unsubscribe(
    token: str, form: FormDep, db: DbDep, settings: SettingsDep, relay: RelayDep
) -> HTMLResponse:
    """One-click unsubscribe (RFC 8058: the message's topic, else the channel), the page's
    "all" button, or its preference form; idempotent."""
    link = read_link(settings.require_secret_key(), token)
    if link is None:
        return _page("Link not valid", NOT_VALID, status=404)
    action = (form.get("action") or [""])[0]
    now = datetime.now(UTC)
    notice = None
    try:
        with db.transaction() as session:
            if action == "preferences":
                state = consent.save_preferences(
                    session, link, form.get("shown", []), form.get("topic", []), now
                )
                notice = "Your preferences are saved."
            elif action == "all":
                state = consent.unsubscribe_everything(session, link, now)
            else:
                state = consent.unsubscribe_by_link(session, link, now)
    except UnknownTopics as exc:
        fields = "; ".join(f"field {p.path.removeprefix('$.')}: {p.message}" for p in exc.problems)
        return _page("Not saved", f"Nothing was changed ({fields}).", status=422)
    if state.recorded:
        relay.wake()
    return _state_page(state, notice)
