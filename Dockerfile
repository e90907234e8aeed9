# One image for the API, the worker and the one-shot setup job.
FROM python:3.11-slim
WORKDIR /app
COPY pyproject.toml README.md ./
COPY journeys journeys
COPY store store
COPY workflows workflows
COPY activities activities
COPY api api
COPY migrations migrations
COPY worker.py ./
RUN pip install --no-cache-dir .
RUN useradd --create-home journeys
USER journeys
CMD ["journeys", "worker"]
