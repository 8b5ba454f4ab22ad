"""Slack: each day's digest as a thread in a channel, ``/arxiv`` and ``/summarize``, 👍/👎.

This module is what the composition root imports to read the configuration: the ``slack:``
section and how to create the adapter.  The adapter itself (slack-bolt, slow to import) is
loaded only when Slack is enabled.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Literal

from pydantic import Field

from bot.config import Config, PlatformSection

if TYPE_CHECKING:
    from bot.core import Core
    from bot.platform import Adapter

PLATFORM = "slack"


class SlackSection(PlatformSection):
    """``slack:`` — Socket Mode (default) or HTTP events; tokens come from the environment."""

    mode: Literal["socket", "http"] = "socket"
    bot_token_env: str = "SLACK_BOT_TOKEN"
    app_token_env: str = "SLACK_APP_TOKEN"
    signing_secret_env: str = "SLACK_SIGNING_SECRET"
    api_base_url: str = "https://slack.com/api/"
    post_interval_s: Annotated[float, Field(ge=0)] = 1.0


SECTION = SlackSection


def create(config: Config, core: Core) -> Adapter:
    from adapters.slack.adapter import SlackAdapter

    return SlackAdapter(config, core)
