"""Message providers behind one interface."""

from __future__ import annotations

from temporal_journeys.activities.providers.base import Provider
from temporal_journeys.activities.providers.console import ConsoleProvider
from temporal_journeys.activities.providers.fcm_push import FcmPush
from temporal_journeys.activities.providers.sendgrid_email import SendGridEmail
from temporal_journeys.activities.providers.twilio_sms import TwilioSms
from temporal_journeys.activities.providers.twilio_whatsapp import TwilioWhatsApp
from temporal_journeys.activities.providers.web_push import PushChannel, WebPush
from temporal_journeys.activities.providers.webhook import SignedWebhook
from temporal_journeys.journeys.settings import Settings


def default_providers(settings: Settings) -> dict[str, Provider]:
    """SendGrid, Twilio (SMS, WhatsApp), FCM and web push (push) when their credentials are
    set, else the console. Webhook steps always post for real (to URLs the user configured),
    and refuse without a signing secret.
    The worker's sends and the API's test sends take their providers from here."""
    console = ConsoleProvider()
    return {
        "email": SendGridEmail(settings) if settings.has_sendgrid else console,
        "sms": TwilioSms(settings) if settings.has_twilio else console,
        "webhook": SignedWebhook(settings),
        "push": _push(settings) or console,
        "whatsapp": TwilioWhatsApp(settings) if settings.has_whatsapp else console,
    }


def _push(settings: Settings) -> Provider | None:
    """Channel push: FCM tokens through FCM, browsers' web push subscriptions through their
    push services (VAPID), whichever of the two is configured; None when neither is."""
    if not (settings.has_fcm or settings.has_webpush):
        return None
    return PushChannel(
        FcmPush(settings) if settings.has_fcm else None,
        WebPush(settings) if settings.has_webpush else None,
    )
