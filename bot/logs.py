"""Logging: text or JSON lines, with every configured secret redacted from every record."""

from __future__ import annotations

import json
import logging
import os
import re
import sys
import time
from collections.abc import Iterable

_TOKEN_SHAPES = re.compile(
    r"(xox[abpors]-[A-Za-z0-9-]{6,}|xapp-[A-Za-z0-9-]{6,}|sk-[A-Za-z0-9_-]{8,}|"
    r"\b\d{6,12}:[A-Za-z0-9_-]{30,}\b|Bearer\s+[A-Za-z0-9._~+/=-]{8,})"
)


class RedactSecrets(logging.Filter):
    """Replaces known secret values (and anything shaped like a token) with ``[redacted]``."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        super().__init__()
        self.secrets = sorted({s for s in secrets if s and len(s) >= 6}, key=len, reverse=True)

    def scrub(self, text: str) -> str:
        for s in self.secrets:
            text = text.replace(s, "[redacted]")
        return _TOKEN_SHAPES.sub("[redacted]", text)

    def filter(self, record: logging.LogRecord) -> bool:
        msg = record.getMessage()
        clean = self.scrub(msg)
        if record.exc_info and record.exc_info[1] is not None:
            record.exc_text = self.scrub(logging.Formatter().formatException(record.exc_info))
            record.exc_info = None
        if clean != msg or record.args:
            record.msg, record.args = clean, None
        return True


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        out = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        for key in ("subscription", "day", "paper", "platform", "event"):
            if hasattr(record, key):
                out[key] = getattr(record, key)
        if record.exc_text:
            out["exc"] = record.exc_text
        return json.dumps(out, ensure_ascii=False)


def setup_logging(level: str = "INFO", fmt: str = "text", secret_env: Iterable[str] = ()) -> None:
    """Configure the root logger once; secrets are read from the named environment variables."""
    root = logging.getLogger()
    for h in list(root.handlers):
        if getattr(h, "_herald", False):
            root.removeHandler(h)
    handler = logging.StreamHandler(sys.stderr)
    handler._herald = True  # type: ignore[attr-defined]
    if fmt == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)-7s %(name)s: %(message)s"))
    handler.addFilter(RedactSecrets(os.environ.get(name, "") for name in secret_env))
    root.addHandler(handler)
    root.setLevel(level)
    # Client libraries log request URLs (a Telegram URL carries the bot token) at DEBUG/INFO.
    for noisy in ("httpx", "httpx2", "httpcore", "urllib3", "arxiv", "apscheduler.executors"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, root.level))
