"""``JourneysPlugin``: the workflows, activities, converter and sandbox settings in one piece.

Add it to ``Client.connect(plugins=[...])`` and every Worker built from that client runs
journeys; the pydantic data converter only reaches the client (and Replayer) this way.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Mapping

from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.converter import DataConverter
from temporalio.plugin import SimplePlugin
from temporalio.worker import UnsandboxedWorkflowRunner, WorkflowRunner
from temporalio.worker.workflow_sandbox import SandboxedWorkflowRunner

from activities.contacts import ContactActivities
from activities.journeys import JourneyActivities
from activities.providers.base import Provider
from activities.providers.console import ConsoleProvider
from activities.providers.sendgrid_email import SendGridEmail
from activities.providers.twilio_sms import TwilioSms
from activities.providers.webhook import SignedWebhook
from activities.sends import SendActivities
from journeys.settings import Settings, get_settings
from store.db import Database
from workflows.journey import JourneyWorkflow

PLUGIN_NAME = "journeys.JourneysPlugin"
# Pure modules the workflow imports: loaded once outside the sandbox instead of per run.
PASSTHROUGH = (
    "pydantic",
    "pydantic_core",
    "annotated_types",
    "journeys",
    "workflows",
    "activities",
)


def _converter(existing: DataConverter | None) -> DataConverter:
    # Keep a converter the user chose; only the stock one is swapped for pydantic's.
    if existing is None or existing == DataConverter.default:
        return pydantic_data_converter
    return existing


def _runner(existing: WorkflowRunner | None, *, sandbox: bool = True) -> WorkflowRunner:
    if existing is not None and not isinstance(existing, SandboxedWorkflowRunner):
        return existing
    if not sandbox:
        return UnsandboxedWorkflowRunner()
    runner = existing or SandboxedWorkflowRunner()
    restrictions = runner.restrictions.with_passthrough_modules(*PASSTHROUGH)
    # ZoneInfo reads tz files on first use; the sandbox forbids it unless exempted, and
    # local times (quiet hours, birthdays) need it. Results are deterministic per zone name.
    restrictions = dataclasses.replace(
        restrictions,
        invalid_module_members=restrictions.invalid_module_members.with_child_unrestricted(
            "zoneinfo", "ZoneInfo"
        ),
    )
    return dataclasses.replace(runner, restrictions=restrictions)


def default_providers(settings: Settings) -> dict[str, Provider]:
    """SendGrid and Twilio when their credentials are set, else the console. Webhook steps
    always post for real (to URLs the user configured), and refuse without a signing secret."""
    console = ConsoleProvider()
    return {
        "email": SendGridEmail(settings) if settings.has_sendgrid else console,
        "sms": TwilioSms(settings) if settings.has_twilio else console,
        "webhook": SignedWebhook(settings),
    }


class JourneysPlugin(SimplePlugin):
    def __init__(
        self,
        settings: Settings | None = None,
        *,
        db: Database | None = None,
        providers: Mapping[str, Provider] | None = None,
    ) -> None:
        self.settings = settings or get_settings()
        self.db = db or Database(self.settings.database_url)
        contacts = ContactActivities(self.db)
        sends = SendActivities(
            self.db, providers or default_providers(self.settings), self.settings
        )
        journeys = JourneyActivities(self.db, self.settings.task_queue)
        super().__init__(
            PLUGIN_NAME,
            data_converter=_converter,
            activities=[
                contacts.begin_enrollment,
                contacts.record_progress,
                contacts.load_condition_data,
                contacts.update_contact,
                sends.send_message,
                journeys.enter_journey,
            ],
            workflows=[JourneyWorkflow],
            workflow_runner=functools.partial(_runner, sandbox=self.settings.workflow_sandbox),
        )
