"""Telegram: digests as a header plus replies, commands, 👍/👎 buttons (python-telegram-bot).

This module is what the composition root imports to read the configuration: the
``telegram:`` section and how to create the adapter.  The adapter itself (PTB, slow to import)
is loaded only when Telegram is enabled.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Literal

from pydantic import Field, model_validator

from bot.config import Config, PlatformSection

if TYPE_CHECKING:
    from bot.core import Core
    from bot.platform import Adapter

PLATFORM = "telegram"
#: Paid broadcasts let a bot send up to 1,000 messages a second (Telegram charges Stars for
#: what goes past 30): https://core.telegram.org/bots/faq#how-can-i-message-all-of-my-bot-39s-subscribers-at-once
PAID_BROADCAST_RATE = 1000.0
DEFAULT_RATE = 28.0  # Telegram's limit is about 30 a second; a little room for jitter


class TelegramSection(PlatformSection):
    """``telegram:`` — long polling (default) or a webhook; the token from the environment."""

    mode: Literal["polling", "webhook"] = "polling"
    token_env: str = "TELEGRAM_BOT_TOKEN"
    api_base_url: str = "https://api.telegram.org/bot"
    webhook_url: str | None = None
    webhook_secret_env: str = "TELEGRAM_WEBHOOK_SECRET"
    per_chat_interval_s: Annotated[float, Field(ge=0)] = 1.0
    #: Messages a second overall; None: 28 (Telegram allows about 30), or 1,000 with
    #: ``paid_broadcast``.
    global_rate: Annotated[float, Field(gt=0)] | None = None
    #: Every chat kind shows each message in the main flow (and notifies for it), and the
    #: whole bot shares ~30 messages a second: one message per digest by default.
    layout: Literal["thread", "compact"] = "compact"
    #: Sends carry ``allow_paid_broadcast`` (the bot pays to go past 30 messages a second);
    #: the pacing follows: ``global_rate`` defaults to 1,000 instead of 28.
    paid_broadcast: bool = False

    @property
    def rate(self) -> float:
        """Messages a second overall: what fan-outs are paced to, and the adapter's limiter."""
        if self.global_rate is not None:
            return self.global_rate
        return PAID_BROADCAST_RATE if self.paid_broadcast else DEFAULT_RATE

    @model_validator(mode="after")
    def _webhook(self) -> TelegramSection:
        if self.enabled and self.mode == "webhook" and not self.webhook_url:
            raise ValueError(
                "telegram.mode is 'webhook' but telegram.webhook_url is not set; give the "
                "public https URL that reaches web.host:web.port/telegram/webhook"
            )
        return self


SECTION = TelegramSection


def create(config: Config, core: Core) -> Adapter:
    from adapters.telegram.adapter import TelegramAdapter

    return TelegramAdapter(config, core)
