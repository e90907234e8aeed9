"""``JourneysPlugin``: the workflows, activities, converter and sandbox settings in one piece.

Add it to ``Client.connect(plugins=[...])`` and every Worker built from that client runs
journeys; the pydantic data converter only reaches the client (and Replayer) this way.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Mapping

from temporalio.converter import DataConverter
from temporalio.plugin import SimplePlugin
from temporalio.worker import UnsandboxedWorkflowRunner, WorkflowRunner
from temporalio.worker.workflow_sandbox import SandboxedWorkflowRunner

from temporal_journeys.activities.broadcast import BroadcastActivities
from temporal_journeys.activities.contacts import ContactActivities
from temporal_journeys.activities.date_entry import DateEntryActivities
from temporal_journeys.activities.journeys import JourneyActivities
from temporal_journeys.activities.progress import ProgressWriter
from temporal_journeys.activities.providers import default_providers
from temporal_journeys.activities.providers.base import Provider
from temporal_journeys.activities.retention import RetentionActivities
from temporal_journeys.activities.scheduled_entry import ScheduledEntryActivities
from temporal_journeys.activities.segments import SegmentActivities
from temporal_journeys.activities.sends import SendActivities
from temporal_journeys.journeys.settings import Settings, get_settings
from temporal_journeys.store.contact_keys import keyring
from temporal_journeys.store.db import Database
from temporal_journeys.workflows.broadcast import BroadcastWorkflow
from temporal_journeys.workflows.codec import ContactKeys, data_converter, with_encryption
from temporal_journeys.workflows.date_entry import DateEntryWorkflow
from temporal_journeys.workflows.journey import JourneyWorkflow
from temporal_journeys.workflows.retention import RetentionWorkflow
from temporal_journeys.workflows.scheduled_entry import ScheduledEntryWorkflow
from temporal_journeys.workflows.segments import SegmentBackfillWorkflow, SegmentRefreshWorkflow

PLUGIN_NAME = "journeys.JourneysPlugin"
# Modules the workflow imports, all pure: loaded once outside the sandbox instead of per run.
# Our own namespace passes whole; its workflow code imports only the domain and its own contract.
PASSTHROUGH = (
    "pydantic",
    "pydantic_core",
    "annotated_types",
    "temporal_journeys",
)


def _converter(
    existing: DataConverter | None, *, settings: Settings, contact_keys: ContactKeys | None
) -> DataConverter:
    # Keep a converter the user chose (with the codec added when keys are set and it has no
    # codec of its own); only the stock one is swapped for ours.
    if existing is None or existing == DataConverter.default:
        return data_converter(settings, contact_keys)
    return with_encryption(existing, settings, contact_keys)


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
        # One writer: the progress reports of record_progress and of sends share transactions.
        progress = ProgressWriter(self.db)
        contacts = ContactActivities(self.db, progress)
        sends = SendActivities(
            self.db, providers or default_providers(self.settings), self.settings, progress
        )
        journeys = JourneyActivities(self.db, self.settings.task_queue)
        dates = DateEntryActivities(self.db, self.settings)
        scheduled = ScheduledEntryActivities(self.db, self.settings)
        segments = SegmentActivities(self.db)
        broadcasts = BroadcastActivities(self.db, sends, self.settings.task_queue)
        retention = RetentionActivities(self.db, self.settings)
        super().__init__(
            PLUGIN_NAME,
            data_converter=functools.partial(
                _converter, settings=self.settings, contact_keys=keyring(self.db, self.settings)
            ),
            activities=[
                contacts.begin_enrollment,
                contacts.record_progress,
                contacts.load_condition_data,
                contacts.update_contact,
                sends.send_message,
                journeys.enter_journey,
                dates.admit_date_entries,
                scheduled.admit_scheduled_entries,
                segments.count_contacts,
                segments.backfill_batch,
                segments.finish_backfill,
                segments.recompute,
                broadcasts.snapshot,
                broadcasts.send_batch,
                broadcasts.set_status,
                retention.delete_events,
                retention.clear_message_bodies,
            ],
            workflows=[
                JourneyWorkflow,
                DateEntryWorkflow,
                ScheduledEntryWorkflow,
                SegmentBackfillWorkflow,
                SegmentRefreshWorkflow,
                BroadcastWorkflow,
                RetentionWorkflow,
            ],
            workflow_runner=functools.partial(_runner, sandbox=self.settings.workflow_sandbox),
        )
