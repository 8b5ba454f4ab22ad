"""Shared fixtures: fakes on 127.0.0.1, a config pointed at them, an engine with a fetched day."""

from __future__ import annotations

import os
import socket
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from bot.app import parse_config
from bot.config import Config, default_config_text, read_yaml
from tests.fakes.arxiv import FakeArxiv
from tests.fakes.openai_api import FakeOpenAI

# A real announcement day of the corpus with many cs.LG/cs.CL/cs.AI papers.
DAY = "2026-01-22"
# Every item of `herald digest --format json` has these keys (issue 2's contract).
JSON_ITEM_KEYS = frozenset(
    "id version title authors categories announce_type score reasons summary summary_status "
    "url".split()
)

# Nothing in a test may leave the machine: no proxies, and a guard on outgoing connections.
for _var in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy"):
    os.environ.pop(_var, None)
os.environ["NO_PROXY"] = os.environ["no_proxy"] = "127.0.0.1,localhost"

_real_connect = socket.socket.connect


def _loopback_only(self: socket.socket, address: Any) -> Any:
    if isinstance(address, tuple) and self.family in (socket.AF_INET, socket.AF_INET6):
        host = address[0]
        if host not in ("127.0.0.1", "localhost", "::1"):
            raise AssertionError(f"a test tried to reach {address!r}: only loopback is allowed")
    return _real_connect(self, address)


socket.socket.connect = _loopback_only  # type: ignore[method-assign]


@pytest.fixture(autouse=True)
def _reset_logging() -> Iterator[None]:
    """CLI runs install a stderr handler; drop it so the next test doesn't write to a closed
    stream."""
    import logging

    yield
    root = logging.getLogger()
    for h in list(root.handlers):
        if getattr(h, "_herald", False):
            root.removeHandler(h)


@pytest.fixture(autouse=True)
def _no_stray_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in (
        "HERALD_CONFIG",
        "OPENAI_API_KEY",
        "SLACK_BOT_TOKEN",
        "SLACK_APP_TOKEN",
        "SLACK_SIGNING_SECRET",
        "TELEGRAM_BOT_TOKEN",
        "TELEGRAM_WEBHOOK_SECRET",
    ):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def fake_arxiv() -> Iterator[FakeArxiv]:
    with FakeArxiv(day=DAY) as fake:
        yield fake


@pytest.fixture
def fake_openai() -> Iterator[FakeOpenAI]:
    with FakeOpenAI() as fake:
        yield fake


def config_dict(
    tmp_path: Path, arxiv: FakeArxiv, openai: FakeOpenAI | None = None
) -> dict[str, Any]:
    """The shipped default config, pointed at the fakes and at ``tmp_path``."""
    data = read_yaml(default_config_text())
    data["database"] = str(tmp_path / "herald.db")
    data["arxiv"].update(
        rss_url=arxiv.rss_url_template,
        api_url=arxiv.api_url,
        pdf_url=arxiv.pdf_url_template,
        request_interval_s=0.05,
        # Generous: a loaded CI machine must not turn a slow answer into a failed fetch.
        # Tests of hung servers set their own short timeouts.
        timeout_s=30,
        retries=1,
    )
    data["outputs"] = {
        "console": False,
        "markdown": str(tmp_path / "digest.md"),
        "feed": str(tmp_path / "feed.xml"),
        "atom": str(tmp_path / "feed.atom"),
        "json": str(tmp_path / "digest.json"),
    }
    if openai is not None:
        data["summaries"].update(
            base_url=openai.base_url,
            api_key_env="HERALD_TEST_LLM_KEY",
            timeout_s=30,
            max_retries=1,
        )
    else:
        data["summaries"]["enabled"] = False
    data["web"]["port"] = 0
    return data


@pytest.fixture
def make_config(tmp_path: Path, fake_arxiv: FakeArxiv) -> Callable[..., Config]:
    """``make_config(openai=fake, **{"scoring.max_papers": 5})`` -> a validated Config."""

    def make(openai: FakeOpenAI | None = None, **overrides: Any) -> Config:
        data = config_dict(tmp_path, fake_arxiv, openai)
        for dotted, value in overrides.items():
            node = data
            *parents, leaf = dotted.split(".")
            for part in parents:
                node = node.setdefault(part, {})
            node[leaf] = value
        return parse_config(data, "<test>", tmp_path)

    return make


@pytest.fixture
def write_config(tmp_path: Path, fake_arxiv: FakeArxiv) -> Callable[..., Path]:
    """Write a config file for CLI tests; returns its path."""

    def write(openai: FakeOpenAI | None = None, **sections: Any) -> Path:
        data = config_dict(tmp_path, fake_arxiv, openai)
        for key, value in sections.items():
            if isinstance(value, dict) and isinstance(data.get(key), dict):
                data[key].update(value)
            else:
                data[key] = value
        path = tmp_path / "config.yaml"
        path.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
        return path

    return write


@pytest.fixture
def engine(make_config: Callable[..., Config]) -> Iterator[Any]:
    """An Engine on the fakes with DAY fetched (learning off, summaries off)."""
    from bot.engine import Engine

    cfg = make_config(**{"learning.enabled": False})
    eng = Engine(cfg)
    report = eng.fetch()
    assert report.status == "ok", report.summary()
    yield eng
    eng.store.close()


@pytest.fixture
def testbot(engine: Any) -> Iterator[Any]:
    """The whole core behind a recording adapter: ``testbot.exec("/settings max 0")``."""
    from tests.testbot import TestBot

    bot = TestBot(engine.config, engine)
    yield bot
    bot.close()
