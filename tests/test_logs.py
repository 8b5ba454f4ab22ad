"""Logs: JSON lines when asked, and no configured secret (or token-shaped string) in any line."""

from __future__ import annotations

import json
import logging

import pytest

from bot.logs import setup_logging


def test_json_lines_with_secrets_redacted(
    capfd: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MY_BOT_TOKEN", "super-secret-value-123")
    setup_logging("INFO", "json", secret_env=["MY_BOT_TOKEN"])
    log = logging.getLogger("herald.test")
    log.info("posting with %s", "super-secret-value-123")
    log.warning("slack said xoxb-1234567890-abcdefghij and telegram 123456789:%s", "A" * 35)
    try:
        raise RuntimeError("boom super-secret-value-123")
    except RuntimeError:
        log.exception("failed")
    lines = [json.loads(x) for x in capfd.readouterr().err.strip().splitlines()]
    assert [x["level"] for x in lines] == ["info", "warning", "error"]
    assert all({"ts", "level", "logger", "msg"} <= set(x) for x in lines)
    text = json.dumps(lines)
    assert "super-secret-value-123" not in text
    assert "xoxb-1234567890" not in text and "A" * 35 not in text
    assert text.count("[redacted]") >= 4
    assert "RuntimeError" in lines[2]["exc"]
