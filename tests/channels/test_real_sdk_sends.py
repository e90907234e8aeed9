"""A journey's sends reach the fake SendGrid and Twilio through their real SDKs, rendered, with
our message id for delivery webhooks and one-click unsubscribe headers."""

from __future__ import annotations

from temporalio.client import Client

from temporal_journeys.journeys.consent import read_token
from temporal_journeys.store.db import Database
from tests.support import channels
from tests.support import harness as h
from tests.support.channels import PUBLIC_URL, SECRET_KEY, TWILIO_SID
from tests.support.fake_providers import FakeProviders


async def test_a_journey_sends_rendered_email_and_sms_with_unsubscribe_headers(
    channel_client: Client, engine_db: Database, fake_providers: FakeProviders
):
    h.template(
        engine_db,
        "ch-welcome",
        subject="Welcome, {{ contact.first_name }}",
        html="<p>Your code is {{ data.code }} for {{ event.plan }}</p>",
        text="Your code is {{ data.code }}",
    )
    h.template(
        engine_db, "ch-welcome-sms", "sms", text="Hi {{ contact.first_name }}: {{ data.code }}"
    )
    contact = h.contact(engine_db, first_name="Ada", phone="+15551230001")
    steps = [
        {
            "id": "mail",
            "send": {"channel": "email", "template": "ch-welcome", "data": {"code": "W10"}},
        },
        {
            "id": "text",
            "send": {"channel": "sms", "template": "ch-welcome-sms", "data": {"code": "W10"}},
        },
    ]

    result, view = await channels.run_journey(channel_client, engine_db, contact, steps, plan="pro")

    assert result.status == "completed"
    assert channels.step_kinds(view) == [("mail", "sent"), ("text", "sent")]
    email, sms = h.messages(engine_db, contact)

    [mail] = fake_providers.accepted("sendgrid")
    assert mail.headers["Authorization"] == "Bearer SG.test"
    body = mail.body
    assert body["personalizations"] == [{"to": [{"email": f"{contact}@example.com"}]}]
    assert body["subject"] == "Welcome, Ada"
    assert body["content"] == [
        {"type": "text/plain", "value": "Your code is W10"},
        {"type": "text/html", "value": "<p>Your code is W10 for pro</p>"},
    ]
    assert body["custom_args"] == {"journeys_message_id": email.id}
    link, mailto = body["headers"]["List-Unsubscribe"].split(", ")
    prefix = f"<{PUBLIC_URL}/v1/unsubscribe/"
    assert link.startswith(prefix) and link.endswith(">")
    assert read_token(SECRET_KEY, link[len(prefix) : -1]) == (contact, "email")
    assert mailto.startswith("<mailto:unsubscribe@journeys.example.test")
    assert body["headers"]["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"

    [text] = fake_providers.accepted("twilio")
    assert text.path == f"/2010-04-01/Accounts/{TWILIO_SID}/Messages.json"
    assert text.body["To"] == "+15551230001"
    assert text.body["From"] == "+15005550006"
    assert text.body["Body"] == "Hi Ada: W10"
    assert text.body["StatusCallback"] == (
        f"{PUBLIC_URL}/v1/webhooks/twilio/status?message_id={sms.id}"
    )

    # The rows carry the providers' ids, so webhooks that only know those still find them.
    assert email.status == sms.status == "sent"
    assert email.provider == "sendgrid" and email.provider_message_id
    assert sms.provider == "twilio" and (sms.provider_message_id or "").startswith("SM")
    assert [s["status"] for s in email.status_history] == ["pending", "sending", "sent"]
    assert email.sent_at is not None and email.subject == "Welcome, Ada"


async def test_a_provider_hosted_template_sends_its_id_and_the_data(
    channel_client: Client, engine_db: Database, fake_providers: FakeProviders
):
    h.template(engine_db, "ch-dynamic", provider_template_id="d-0123456789abcdef")
    contact = h.contact(engine_db, first_name="Grace")

    result, _ = await channels.run_send(
        channel_client, engine_db, contact, "email", "ch-dynamic", plan="team"
    )

    assert result.status == "completed"
    [mail] = fake_providers.accepted("sendgrid")
    assert mail.body["template_id"] == "d-0123456789abcdef"
    assert "content" not in mail.body
    data = mail.body["personalizations"][0]["dynamic_template_data"]
    assert data["contact"]["first_name"] == "Grace"
    assert data["event"] == {"plan": "team"}
    assert "List-Unsubscribe" in mail.body["headers"]
