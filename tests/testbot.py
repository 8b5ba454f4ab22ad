"""A test bot after errbot's ``testbot``: the whole core behind a recording adapter, so a command
script reads like a chat transcript::

    reply = bot.exec("/settings max 0")
    assert "max must be between 1 and 100" in reply.text
    assert bot.sub().max_papers == 30

It runs the real composition (engine, commands, core, delivery) with the platform-neutral
:class:`tests.fakes.recorder.RecordingAdapter` as the chat platform; the Slack and Telegram
tests only check what is about translation and transport.
"""

from __future__ import annotations

import asyncio
from dataclasses import replace
from typing import Any

from bot.app import App, build
from bot.commands import make_command
from bot.config import Config
from bot.engine import Engine
from bot.models import Reply, Subscription
from tests.fakes.recorder import RecordingAdapter

PLATFORM = "test"
CHAT = "chat-1"
USER = "alice"


class TestBot:
    __test__ = False  # not a test class, whatever pytest thinks of the name

    def __init__(self, config: Config, engine: Engine) -> None:
        self.adapter = RecordingAdapter(platform=PLATFORM)
        self.app: App = build(config, engine, adapters={PLATFORM: self.adapter})
        self.engine = engine
        self.store = engine.store
        self.core = self.app.core

    def exec(
        self,
        text: str,
        *,
        chat: str = CHAT,
        user: str = USER,
        group: bool = False,
        admin: bool = False,
    ) -> Reply:
        """Send ``text`` as ``user`` in ``chat`` and return the core's reply."""
        cmd = make_command(PLATFORM, chat, user, text, is_admin=admin, is_group=group)
        return asyncio.run(self.core.handle(cmd, self.adapter))

    def press(self, paper_id: str, value: int, *, chat: str = CHAT, user: str = USER) -> Reply:
        """Tap 👍 (1) or 👎 (-1) under a paper."""
        return asyncio.run(self.core.rate(PLATFORM, chat, user, paper_id, value))

    def sub(self, chat: str = CHAT) -> Subscription | None:
        return self.store.get_subscription(PLATFORM, chat)

    def subscribe(self, chat: str = CHAT, **fields: Any) -> Subscription:
        """A subscription written straight to storage, like ``/subscribe`` would."""
        base = replace(
            self.engine.config.default_subscription(),
            id=None,
            platform=PLATFORM,
            chat=chat,
            name="",
            feed_token="",
        )
        return self.store.upsert_subscription(replace(base, **fields))

    def close(self) -> None:
        self.core.close()
