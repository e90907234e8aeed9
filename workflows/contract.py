"""The names other code uses to talk to a journey run.

The interpreter's decorators take these constants, and every caller (starter, relay, API
services, CLI, tests) names the workflow, its signal, updates and query through them. They are
on the wire: recorded histories and running runs carry them, so a value never changes. What
travels with them is in ``types`` (inputs, answers) and ``starter`` (how a run begins).
"""

from __future__ import annotations

from typing import Final

WORKFLOW_NAME: Final = "Journey"
"""The workflow type: every run of every journey."""

EVENT_SIGNAL: Final = "event"
"""Signal carrying one ``JourneyEvent`` for the contact (also the start signal)."""

MIGRATE_UPDATE: Final = "migrate"
"""Update taking a ``MigrateRun``: move the run onto a newer version; answers the new step."""

EXIT_UPDATE: Final = "exit"
"""Update taking a reason: end the run now; answers the step it was on."""

STATE_QUERY: Final = "state"
"""Query answering a ``RunView``: where the contact is and how it got there."""
