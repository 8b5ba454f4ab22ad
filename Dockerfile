# arxiv-herald: `herald serve` (scheduler + Slack/Telegram + web app) in a small image.
# The install step is .ci/install, the same script CI runs (CI adds the test extras).
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    HERALD_CONFIG=/data/config.yaml

WORKDIR /app
COPY pyproject.toml README.md ./
COPY .ci/install .ci/install
COPY bot ./bot
COPY adapters ./adapters
COPY storage ./storage
RUN sh .ci/install . \
    && useradd --create-home --uid 10001 herald \
    && mkdir -p /data && chown herald:herald /data

USER herald
WORKDIR /data
VOLUME ["/data"]
EXPOSE 8080

# /healthz answers 503 when the database, the scheduler or a chat connection is down.
HEALTHCHECK --interval=60s --timeout=5s --start-period=60s --retries=3 \
    CMD python -c "import sys, urllib.request as u; sys.exit(0 if u.urlopen('http://127.0.0.1:8080/healthz', timeout=4).status == 200 else 1)"

# First start writes a commented /data/config.yaml to edit; secrets come from the environment.
CMD ["sh", "-c", "[ -f \"$HERALD_CONFIG\" ] || herald init \"$HERALD_CONFIG\"; exec herald serve --host 0.0.0.0 --port 8080"]
