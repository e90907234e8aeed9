"""What each message said (issue 17, item 2): the message log shows the rendered subject, text,
HTML and the headers sent; templates can be previewed without sending (errors name the part,
line and variable) and test-sent to an address through the real provider, marked as a test
and kept out of frequency caps and out of the journeys' messages."""

from __future__ import annotations

import uuid

import pytest
from temporalio.client import Client
from temporalio.testing import WorkflowEnvironment

from temporal_journeys.store.db import Database
from tests.support import harness as h
from tests.support.api import Api
from tests.support.channels import PUBLIC_URL
from tests.support.fake_providers import FakeProviders

CART_EMAIL = {
    "channel": "email",
    "subject": "{{ contact.first_name }}, your cart is waiting",
    "text": "Hi {{ contact.first_name }},\nuse {{ data.code }} for cart {{ event.cart_id }}.",
    "html": "<p>Hi {{ contact.first_name }}, use <b>{{ data.code }}</b>.</p>",
}


async def put_template(api: Api, key: str, body: dict) -> None:
    response = await api.http.put(f"/v1/templates/{key}", json=body, headers=api.admin)
    assert response.status_code == 200, response.text


async def identify(api: Api, user: str, **traits: object) -> None:
    response = await api.http.post(
        "/v1/identify", json={"userId": user, "traits": traits}, headers=api.track
    )
    assert response.status_code == 202, response.text


async def a_journey_sends(api: Api, template: str) -> tuple[str, str]:
    """Publish a one-send journey, put a contact in it by an event; (journey key, contact)."""
    key = h.unique("content")
    spec = {
        "name": "Content",
        "trigger": {"event": f"{key}.started"},
        "steps": [
            {
                "id": "reminder",
                "send": {"channel": "email", "template": template, "data": {"code": "SAVE10"}},
            }
        ],
    }
    assert (await api.http.put(f"/v1/journeys/{key}", json=spec, headers=api.admin)).is_success
    assert (await api.http.post(f"/v1/journeys/{key}/publish", headers=api.admin)).is_success
    return key, spec["trigger"]["event"]


async def track(api: Api, user: str, event: str, **properties: object) -> None:
    body = {"userId": user, "event": event, "properties": properties}
    body["messageId"] = str(uuid.uuid4())
    response = await api.http.post("/v1/track", json=body, headers=api.track)
    assert response.status_code == 202, response.text


async def test_the_message_log_shows_subject_text_html_and_the_headers_sent(
    channel_api: Api, fake: FakeProviders, client: Client, time_env: WorkflowEnvironment
):
    api = channel_api
    await put_template(api, "results-cart-email", CART_EMAIL)
    key, trigger = await a_journey_sends(api, "results-cart-email")
    user = h.unique("ada")
    await identify(api, user, email=f"{user}@example.com", first_name="Ada")
    await track(api, user, trigger, cart_id="c-9")
    await api.relay()
    handle = client.get_workflow_handle(h.suite_names().workflow_id(key, user))
    result, _ = await h.finish(handle, time_env)
    assert result.status == "completed"

    listed = (await api.http.get(f"/v1/messages?contact={user}", headers=api.admin)).json()
    [message] = listed
    one = (await api.http.get(f"/v1/messages/{message['id']}", headers=api.admin)).json()

    assert one == message
    assert message["subject"] == "Ada, your cart is waiting"
    assert message["text"] == "Hi Ada,\nuse SAVE10 for cart c-9."
    assert message["html"] == "<p>Hi Ada, use <b>SAVE10</b>.</p>"
    assert message["test"] is False
    unsubscribe = message["headers"]["List-Unsubscribe"]
    assert unsubscribe.startswith(f"<{PUBLIC_URL}/v1/unsubscribe/")
    assert message["headers"]["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    # What the log shows is what SendGrid was given.
    [mail] = fake.accepted("sendgrid")
    assert mail.body["headers"] == message["headers"]
    assert mail.body["subject"] == message["subject"]
    assert [part["value"] for part in mail.body["content"]] == [message["text"], message["html"]]


async def test_an_unknown_message_is_a_404(api: Api):
    response = await api.http.get("/v1/messages/no-such-message", headers=api.admin)

    assert response.status_code == 404
    assert "no-such-message" in response.json()["detail"]


async def test_a_preview_renders_for_sample_traits_or_a_stored_contact_without_sending(
    api: Api, engine_db: Database
):
    await put_template(api, "results-preview", CART_EMAIL)
    user = h.unique("lin")
    await identify(api, user, email=f"{user}@example.com", first_name="Lin")
    data = {"data": {"code": "HELLO5"}, "event": {"cart_id": "c-1"}}

    sample = await api.http.post(
        "/v1/templates/results-preview/preview",
        json={"traits": {"first_name": "Sam", "email": "sam@example.com"}, **data},
        headers=api.admin,
    )
    stored = await api.http.post(
        "/v1/templates/results-preview/preview", json={"contact": user, **data}, headers=api.admin
    )

    assert sample.status_code == stored.status_code == 200, (sample.text, stored.text)
    assert sample.json()["subject"] == "Sam, your cart is waiting"
    assert sample.json()["contact_id"] == "preview"
    assert stored.json()["subject"] == "Lin, your cart is waiting"
    assert stored.json()["text"] == "Hi Lin,\nuse HELLO5 for cart c-1."
    assert stored.json()["html"] == "<p>Hi Lin, use <b>HELLO5</b>.</p>"
    assert h.messages(engine_db, user) == []  # nothing sent, nothing logged


async def test_a_preview_error_names_the_part_the_line_and_the_variable(api: Api):
    await put_template(api, "results-preview", CART_EMAIL)

    response = await api.http.post(
        "/v1/templates/results-preview/preview",
        json={"traits": {"first_name": "Sam"}, "event": {"cart_id": "c-1"}},
        headers=api.admin,
    )

    assert response.status_code == 422
    problems = {p["part"]: p for p in response.json()["detail"]}
    assert set(problems) == {"text", "html"}  # the subject needs only first_name
    text = problems["text"]
    assert (text["path"], text["line"], text["variable"]) == ("$.text", 2, "data.code")
    assert text["message"] == "text, line 2, variable data.code: data.code is undefined"
    assert (problems["html"]["line"], problems["html"]["variable"]) == (1, "data.code")


@pytest.mark.parametrize(
    ("body", "status", "path"),
    [
        ({"contact": "nobody-at-all"}, 404, None),
        ({"contact": "x", "traits": {}}, 422, "$"),
        ({"traits": {}, "data": "not a mapping"}, 422, "$.data"),
        ({"traits": {}, "colour": "red"}, 422, "$.colour"),
    ],
)
async def test_a_preview_with_bad_input_is_a_4xx_naming_it(
    api: Api, body: dict, status: int, path: str | None
):
    await put_template(api, "results-preview", CART_EMAIL)

    response = await api.http.post(
        "/v1/templates/results-preview/preview", json=body, headers=api.admin
    )

    assert response.status_code == status, response.text
    if path is not None:
        assert [p["path"] for p in response.json()["detail"]] == [path]


async def test_a_preview_of_an_unknown_template_is_a_404(api: Api):
    response = await api.http.post(
        "/v1/templates/results-nothing/preview", json={}, headers=api.admin
    )

    assert response.status_code == 404
