"""``python -m temporal_journeys.cli``: the ``journeys`` command."""

from temporal_journeys.cli.commands import app

app()
