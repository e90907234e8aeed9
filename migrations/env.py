"""Alembic environment: the URL comes from the caller or from the one settings class."""

from __future__ import annotations

from logging.config import fileConfig

from alembic import context

from temporal_journeys.journeys.settings import get_settings
from temporal_journeys.store import partitions
from temporal_journeys.store.db import make_engine
from temporal_journeys.store.models import Base

config = context.config
if config.config_file_name is not None:
    # Only the alembic command line has an ini file; code calling store.migrate keeps its logging.
    fileConfig(config.config_file_name, disable_existing_loggers=False)


def _url() -> str:
    return (
        config.attributes.get("url")
        or config.get_main_option("sqlalchemy.url")
        or get_settings().database_url
    )


def run_offline() -> None:
    """``alembic upgrade --sql``: print the DDL instead of running it."""
    context.configure(
        url=_url(),
        target_metadata=Base.metadata,
        literal_binds=True,
        render_as_batch=_url().startswith("sqlite"),
    )
    with context.begin_transaction():
        context.run_migrations()


def run_online() -> None:
    engine = make_engine(_url())
    try:
        with engine.connect() as connection:
            context.configure(
                connection=connection,
                target_metadata=Base.metadata,
                # SQLite cannot ALTER most things in place; batch mode rebuilds the table.
                render_as_batch=connection.dialect.name == "sqlite",
                compare_type=True,
                include_name=partitions.include_name,
            )
            with context.begin_transaction():
                context.run_migrations()
    finally:
        engine.dispose()


if context.is_offline_mode():
    run_offline()
else:
    run_online()
