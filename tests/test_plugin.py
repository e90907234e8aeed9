"""JourneysPlugin is built without a server and merges into a user's configuration."""

from __future__ import annotations

from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.converter import DataConverter
from temporalio.worker import UnsandboxedWorkflowRunner
from temporalio.worker.workflow_sandbox import SandboxedWorkflowRunner

from temporal_journeys.journeys.settings import Settings
from temporal_journeys.plugin import PLUGIN_NAME, JourneysPlugin
from temporal_journeys.workflows.broadcast import BroadcastWorkflow
from temporal_journeys.workflows.date_entry import DateEntryWorkflow
from temporal_journeys.workflows.journey import JourneyWorkflow
from temporal_journeys.workflows.retention import RetentionWorkflow
from temporal_journeys.workflows.scheduled_entry import ScheduledEntryWorkflow
from temporal_journeys.workflows.segments import SegmentBackfillWorkflow, SegmentRefreshWorkflow


def plugin() -> JourneysPlugin:
    return JourneysPlugin(Settings(database_url="sqlite:///:memory:"))


def test_client_gets_the_pydantic_converter_only_in_place_of_the_default():
    built = plugin()
    assert built.name() == PLUGIN_NAME
    assert (
        built.configure_client({"data_converter": DataConverter.default})["data_converter"]
        is pydantic_data_converter
    )
    custom = DataConverter(payload_codec=None)
    assert built.configure_client({"data_converter": custom})["data_converter"] is custom


def test_worker_gets_workflows_activities_and_a_sandbox_that_allows_zoneinfo():
    config = plugin().configure_worker({"workflows": [], "activities": []})  # type: ignore[typeddict-item]
    assert config["workflows"] == [
        JourneyWorkflow,
        DateEntryWorkflow,
        ScheduledEntryWorkflow,
        SegmentBackfillWorkflow,
        SegmentRefreshWorkflow,
        BroadcastWorkflow,
        RetentionWorkflow,
    ]
    names = {fn.__temporal_activity_definition.name for fn in config["activities"]}  # type: ignore[attr-defined]
    assert names == {
        "journeys.begin_enrollment",
        "journeys.record_progress",
        "journeys.load_condition_data",
        "journeys.update_contact",
        "journeys.send_message",
        "journeys.enter_journey",
        "journeys.admit_date_entries",
        "journeys.admit_scheduled_entries",
        "segments.count_contacts",
        "segments.backfill_batch",
        "segments.finish_backfill",
        "segments.recompute",
        "broadcasts.snapshot",
        "broadcasts.send_batch",
        "broadcasts.set_status",
        "retention.delete_events",
        "retention.clear_message_bodies",
    }
    runner = config["workflow_runner"]
    assert isinstance(runner, SandboxedWorkflowRunner)
    assert "temporal_journeys" in runner.restrictions.passthrough_modules
    zoneinfo = runner.restrictions.invalid_module_members.children["zoneinfo"]
    assert "ZoneInfo" not in zoneinfo.children


def test_workflow_sandbox_off_gives_the_unsandboxed_runner_even_over_a_sandboxed_one():
    built = JourneysPlugin(Settings(database_url="sqlite:///:memory:", workflow_sandbox=False))
    for given in (None, SandboxedWorkflowRunner()):
        config = built.configure_worker({"workflow_runner": given})  # type: ignore[typeddict-item]
        assert isinstance(config["workflow_runner"], UnsandboxedWorkflowRunner)
