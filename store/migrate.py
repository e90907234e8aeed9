"""Run the Alembic migrations from code: ``python -m temporal_journeys.store.migrate``.

The config is built here, not read from a cwd-relative ``alembic.ini``, so an installed package
migrates from anywhere. ``migrations/alembic.ini`` is only for the ``alembic`` command line.
"""

from __future__ import annotations

from importlib.util import find_spec
from pathlib import Path

from alembic import command
from alembic.config import Config

from temporal_journeys.journeys.settings import get_settings


def migrations_dir() -> Path:
    spec = find_spec("temporal_journeys.migrations")
    if spec is None or spec.origin is None:
        raise RuntimeError("the migrations package is not installed")
    return Path(spec.origin).parent


def config(url: str) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(migrations_dir()))
    cfg.set_main_option("path_separator", "os")
    cfg.attributes["url"] = url
    return cfg


def upgrade(url: str, revision: str = "head") -> None:
    command.upgrade(config(url), revision)


def downgrade(url: str, revision: str = "base") -> None:
    command.downgrade(config(url), revision)


if __name__ == "__main__":
    upgrade(get_settings().database_url)
    print("database is at the latest revision")
