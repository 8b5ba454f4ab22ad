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


class TelegramSection(PlatformSection):
    """``telegram:`` — long polling (default) or a webhook; the token from the environment."""

    mode: Literal["polling", "webhook"] = "polling"
    token_env: str = "TELEGRAM_BOT_TOKEN"
    api_base_url: str = "https://api.telegram.org/bot"
    webhook_url: str | None = None
    webhook_secret_env: str = "TELEGRAM_WEBHOOK_SECRET"
    per_chat_interval_s: Annotated[float, Field(ge=0)] = 1.0
    global_rate: Annotated[float, Field(gt=0)] = 28.0

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
