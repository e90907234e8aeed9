"""temporal-journeys: marketing journeys as durable Temporal workflows.

What a team imports to run journeys in its own worker::

    from temporal_journeys import JourneysPlugin, Settings

    client = await Client.connect("localhost:7233", plugins=[JourneysPlugin(Settings())])

Everything else (the layers ``journeys``, ``store``, ``workflows``, ``activities``, ``api``,
``cli``) lives in subpackages of this one namespace; docs/architecture.md draws them. The names
below load on first use, so importing a pure module such as ``temporal_journeys.journeys.spec``
(workflow code does, inside the sandbox) never pulls in the worker, the database or the API.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from temporal_journeys.journeys.settings import Settings, get_settings
    from temporal_journeys.journeys.spec import Journey, Step
    from temporal_journeys.plugin import JourneysPlugin
    from temporal_journeys.worker import build_worker, run_worker

_EXPORTS = {
    "JourneysPlugin": "temporal_journeys.plugin",
    "Settings": "temporal_journeys.journeys.settings",
    "get_settings": "temporal_journeys.journeys.settings",
    "Journey": "temporal_journeys.journeys.spec",
    "Step": "temporal_journeys.journeys.spec",
    "build_worker": "temporal_journeys.worker",
    "run_worker": "temporal_journeys.worker",
}

__all__ = [
    "Journey",
    "JourneysPlugin",
    "Settings",
    "Step",
    "build_worker",
    "get_settings",
    "run_worker",
]


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(import_module(_EXPORTS[name]), name)
    globals()[name] = value
    return value
