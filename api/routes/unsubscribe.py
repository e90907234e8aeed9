"""Unsubscribe links from messages. No API key: the signed token in the link is the credential.

GET only shows a page with a button, because mail scanners and link previews fetch GET URLs;
the change is made by POST, which is also what RFC 8058 one-click clients send
(``List-Unsubscribe=One-Click``; any body is accepted)."""

from __future__ import annotations

from datetime import UTC, datetime
from html import escape

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse

from api.deps import DbDep
from api.services import consent

router = APIRouter(prefix="/v1/unsubscribe", tags=["consent"])

NOT_VALID = "This unsubscribe link is not valid. Please use the link from a recent message."
CHANNEL_NAMES = {"email": "emails", "sms": "text messages"}


def _page(title: str, text: str, status: int = 200, button: bool = False) -> HTMLResponse:
    form = (
        '<form method="post"><input type="hidden" name="List-Unsubscribe" value="One-Click">'
        '<button type="submit">Unsubscribe</button></form>'
        if button
        else ""
    )
    html = (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{escape(title)}</title></head>"
        f"<body><h1>{escape(title)}</h1><p>{escape(text)}</p>{form}</body></html>"
    )
    return HTMLResponse(html, status_code=status)


def _what(channel: str) -> str:
    return CHANNEL_NAMES.get(channel, f"{channel} messages")


@router.get("/{token}", response_class=HTMLResponse)
def confirm(token: str, request: Request, db: DbDep) -> HTMLResponse:
    """A page that asks to confirm the unsubscribe (changes nothing)."""
    with db.transaction() as session:
        state = consent.link_state(session, request.app.state.settings.secret_key, token)
    if state is None:
        return _page("Link not valid", NOT_VALID, status=404)
    if state.unsubscribed:
        return _page("Unsubscribed", f"You will not receive our {_what(state.channel)} anymore.")
    return _page(
        "Unsubscribe?",
        f"Press the button to stop receiving our {_what(state.channel)}.",
        button=True,
    )


@router.post("/{token}", response_class=HTMLResponse)
def unsubscribe(token: str, request: Request, db: DbDep) -> HTMLResponse:
    """Unsubscribe (RFC 8058 one-click or the confirmation page's button); idempotent."""
    with db.transaction() as session:
        state = consent.unsubscribe_by_link(
            session, request.app.state.settings.secret_key, token, datetime.now(UTC)
        )
    if state is None:
        return _page("Link not valid", NOT_VALID, status=404)
    if state.recorded:
        request.app.state.relay.wake()
    return _page("Unsubscribed", f"You will not receive our {_what(state.channel)} anymore.")
