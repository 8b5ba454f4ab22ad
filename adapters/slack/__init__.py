"""Slack: each day's digest as a thread in a channel, ``/arxiv`` and ``/summarize``, 👍/👎.

This module is what the composition root imports to read the configuration: the ``slack:``
section and how to create the adapter.  The adapter itself (slack-bolt, slow to import) is
loaded only when Slack is enabled.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Literal

from pydantic import Field, model_validator

from bot.config import Config, PlatformSection

if TYPE_CHECKING:
    from bot.core import Core
    from bot.platform import Adapter

PLATFORM = "slack"

#: The bot scopes herald asks for when a workspace installs it (as slack-manifest.yaml).
BOT_SCOPES = (
    "commands",
    "chat:write",
    "chat:write.public",
    "channels:history",
    "groups:history",
    "im:history",
    "mpim:history",
    "channels:read",
    "groups:read",
    "im:read",
    "mpim:read",
    "files:read",
)


class SlackSection(PlatformSection):
    """``slack:`` — Socket Mode (default) or HTTP events; tokens come from the environment.

    ``oauth: true`` (HTTP mode) makes it one app for many workspaces: each installs it from
    ``/slack/install`` ("Add to Slack") and its bot token is kept in herald's database.
    """

    mode: Literal["socket", "http"] = "socket"
    bot_token_env: str = "SLACK_BOT_TOKEN"
    app_token_env: str = "SLACK_APP_TOKEN"
    signing_secret_env: str = "SLACK_SIGNING_SECRET"
    api_base_url: str = "https://slack.com/api/"
    post_interval_s: Annotated[float, Field(ge=0)] = 1.0
    oauth: bool = False
    client_id_env: str = "SLACK_CLIENT_ID"
    client_secret_env: str = "SLACK_CLIENT_SECRET"
    scopes: list[str] = Field(default_factory=lambda: list(BOT_SCOPES), min_length=1)
    redirect_uri: str | None = None
    authorize_url: str = "https://slack.com/oauth/v2/authorize"
    state_expiration_s: Annotated[int, Field(ge=60, le=86400)] = 600

    @model_validator(mode="after")
    def _oauth_needs_http(self) -> SlackSection:
        if self.oauth and self.mode != "http":
            raise ValueError(
                "oauth: true needs mode: http (the install page, the OAuth redirect and the "
                "events all arrive over HTTP); set slack.mode: http"
            )
        return self


SECTION = SlackSection


def create(config: Config, core: Core) -> Adapter:
    from adapters.slack.adapter import SlackAdapter

    return SlackAdapter(config, core)
