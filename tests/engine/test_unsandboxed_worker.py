"""With ``JOURNEYS_WORKFLOW_SANDBOX=false`` the worker runs the interpreter outside the SDK's
sandbox, and a journey goes the same way as on a sandboxed worker."""

from __future__ import annotations

from temporalio.testing import WorkflowEnvironment
from temporalio.worker import UnsandboxedWorkflowRunner, Worker

from temporal_journeys.journeys.settings import Settings
from temporal_journeys.plugin import JourneysPlugin
from temporal_journeys.store.db import Database
from temporal_journeys.workflows.starter import start_run
from tests.support import harness as h

QUEUE = "journeys-test-unsandboxed"
SPEC = """
key: {key}
name: Unsandboxed
trigger: {{event: user.signed_up}}
steps:
  - id: hello
    send: {{channel: email, template: unsandboxed-hello}}
  - id: pause
    wait: P1D
  - id: plan?
    branch:
      cases: [{{when: {{field: contact.plan, eq: pro}}, next: pro-tips}}]
      default: tips
  - id: pro-tips
    send: {{channel: email, template: unsandboxed-hello}}
    next: done
  - id: tips
    send: {{channel: email, template: unsandboxed-hello}}
  - id: done
    exit: {{}}
"""


async def test_a_worker_without_the_sandbox_runs_a_journey_to_its_end(
    time_env: WorkflowEnvironment, engine_db: Database, postgres_url: str
):
    settings = Settings(
        database_url=postgres_url, task_queue=QUEUE, sms_quiet_hours="", workflow_sandbox=False
    )
    h.template(engine_db, "unsandboxed-hello", subject="Hello", text="Hello")
    version, journey = h.publish(engine_db, SPEC.format(key=h.unique("unsandboxed")))
    contact = h.contact(engine_db, plan="pro")

    plugin = JourneysPlugin(settings, db=engine_db)
    async with Worker(time_env.client, task_queue=QUEUE, plugins=[plugin]) as worker:
        runner = worker.config(active_config=True)["workflow_runner"]
        handle = await start_run(
            time_env.client,
            journey=journey,
            version=version,
            contact_id=contact,
            task_queue=QUEUE,
            event=h.event("user.signed_up"),
        )
        result, view = await h.finish(handle)

    assert isinstance(runner, UnsandboxedWorkflowRunner)
    assert result.status == "completed"
    assert [(e.step, e.kind) for e in view.trace if e.kind != "entered"] == [
        ("hello", "sent"),
        ("pause", "waited"),
        ("plan?", "branched"),
        ("pro-tips", "sent"),
        (None, "completed"),
    ]
    assert len(h.messages(engine_db, contact)) == 2
