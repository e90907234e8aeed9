# One image for the API, the worker and the one-shot jobs (migrate, search attributes);
# docker-compose.yml picks the command.
FROM python:3.11-slim
ENV PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /app
COPY pyproject.toml README.md ./
COPY __init__.py plugin.py worker.py ./
COPY journeys journeys
COPY store store
COPY workflows workflows
COPY activities activities
COPY api api
COPY cli cli
COPY migrations migrations
# A regular (not editable) install under the temporal_journeys namespace: migrations/ ships as
# package data, so `python -m temporal_journeys.store.migrate` works from any directory.
RUN pip install . && useradd --create-home journeys
USER journeys
WORKDIR /home/journeys
EXPOSE 8000
CMD ["journeys", "worker"]
