"""slack_sdk's installation-store and OAuth-state-store interfaces over herald's database.

Bolt's OAuth flow saves what ``oauth.v2.access`` returned through
:class:`HeraldInstallations` and authorizes every incoming request by finding the bot token
of the request's workspace there; the adapter finds the token of a digest's workspace the
same way.  :class:`HeraldOAuthStates` issues the ``state`` of each install and lets it be
used once, before it expires.  Both go through the core's ``installations`` facade (this
package never touches storage).

A workspace is the team id of a workspace install, or the enterprise id of an org-wide one;
herald asks for bot scopes only, so each workspace has one installation: the latest.
"""

from __future__ import annotations

import logging
import secrets
import time
from collections.abc import Callable
from typing import Any

from slack_sdk.oauth.installation_store.async_installation_store import AsyncInstallationStore
from slack_sdk.oauth.installation_store.models.bot import Bot
from slack_sdk.oauth.installation_store.models.installation import Installation
from slack_sdk.oauth.state_store.async_state_store import AsyncOAuthStateStore

from adapters.slack import PLATFORM
from adapters.slack.address import workspace_prefix
from bot.installations import AppInstallation, Installations

log = logging.getLogger(__name__)


def workspace_key(
    enterprise_id: str | None, team_id: str | None, is_enterprise_install: bool | None = False
) -> str:
    """The workspace an installation belongs to: the team, or the org for an org-wide one."""
    if is_enterprise_install or not team_id:
        return enterprise_id or ""
    return team_id


def to_record(inst: Installation) -> AppInstallation:
    return AppInstallation(
        platform=PLATFORM,
        workspace=workspace_key(inst.enterprise_id, inst.team_id, inst.is_enterprise_install),
        team_id=inst.team_id,
        team_name=inst.team_name,
        enterprise_id=inst.enterprise_id,
        enterprise_name=inst.enterprise_name,
        enterprise_url=inst.enterprise_url,
        is_enterprise_install=bool(inst.is_enterprise_install),
        app_id=inst.app_id,
        installer_id=inst.user_id,
        bot_token=inst.bot_token,
        bot_id=inst.bot_id,
        bot_user_id=inst.bot_user_id,
        bot_scopes=tuple(inst.bot_scopes or ()),
        bot_refresh_token=inst.bot_refresh_token,
        bot_token_expires_at=inst.bot_token_expires_at,
        user_token=inst.user_token,
        user_scopes=tuple(inst.user_scopes or ()),
        user_refresh_token=inst.user_refresh_token,
        user_token_expires_at=inst.user_token_expires_at,
        token_type=inst.token_type,
        incoming_webhook_url=inst.incoming_webhook_url,
        incoming_webhook_channel=inst.incoming_webhook_channel,
        incoming_webhook_channel_id=inst.incoming_webhook_channel_id,
        incoming_webhook_configuration_url=inst.incoming_webhook_configuration_url,
        installed_at=float(inst.installed_at),
    )


def to_installation(rec: AppInstallation) -> Installation:
    return Installation(
        app_id=rec.app_id,
        enterprise_id=rec.enterprise_id,
        enterprise_name=rec.enterprise_name,
        enterprise_url=rec.enterprise_url,
        team_id=rec.team_id,
        team_name=rec.team_name,
        bot_token=rec.bot_token,
        bot_id=rec.bot_id,
        bot_user_id=rec.bot_user_id,
        bot_scopes=list(rec.bot_scopes),
        bot_refresh_token=rec.bot_refresh_token,
        bot_token_expires_at=rec.bot_token_expires_at,
        user_id=rec.installer_id or "",
        user_token=rec.user_token,
        user_scopes=list(rec.user_scopes),
        user_refresh_token=rec.user_refresh_token,
        user_token_expires_at=rec.user_token_expires_at,
        incoming_webhook_url=rec.incoming_webhook_url,
        incoming_webhook_channel=rec.incoming_webhook_channel,
        incoming_webhook_channel_id=rec.incoming_webhook_channel_id,
        incoming_webhook_configuration_url=rec.incoming_webhook_configuration_url,
        is_enterprise_install=rec.is_enterprise_install,
        token_type=rec.token_type,
        installed_at=rec.installed_at,
    )


def to_bot(rec: AppInstallation) -> Bot | None:
    if not rec.bot_token or not rec.bot_id or not rec.bot_user_id:
        return None
    return to_installation(rec).to_bot()


class HeraldInstallations(AsyncInstallationStore):
    """slack_sdk's ``AsyncInstallationStore`` in herald's database.

    ``changed(workspace)`` is called after every write, so the adapter drops the client it
    kept for that workspace.
    """

    def __init__(
        self, installations: Installations, changed: Callable[[str], None] | None = None
    ) -> None:
        self._installations = installations
        self._changed = changed or (lambda workspace: None)

    @property
    def logger(self) -> logging.Logger:
        return log

    async def find(self, workspace: str) -> AppInstallation | None:
        """The live installation of a workspace (None: not installed, or uninstalled)."""
        return await self._installations.find(PLATFORM, workspace)

    async def async_save(self, installation: Installation) -> None:
        rec = to_record(installation)
        reactivated = await self._installations.save(
            rec, chat_prefix=workspace_prefix(rec.workspace)
        )
        self._changed(rec.workspace)
        log.info(
            "Slack: installed in %s (%s)%s",
            rec.team_name or rec.enterprise_name or rec.workspace,
            rec.workspace,
            f"; {reactivated} subscription(s) resumed" if reactivated else "",
        )

    async def async_save_bot(self, bot: Bot) -> None:
        """A rotated bot token: it replaces the workspace's old one."""
        workspace = workspace_key(bot.enterprise_id, bot.team_id, bot.is_enterprise_install)
        old = await self.find(workspace)
        base = to_installation(old) if old is not None else Installation(user_id="")
        base.bot_token, base.bot_id, base.bot_user_id = bot.bot_token, bot.bot_id, bot.bot_user_id
        base.bot_scopes = list(bot.bot_scopes)
        base.bot_refresh_token = bot.bot_refresh_token
        base.bot_token_expires_at = bot.bot_token_expires_at
        base.app_id = base.app_id or bot.app_id
        base.team_id, base.enterprise_id = bot.team_id, bot.enterprise_id
        base.team_name = base.team_name or bot.team_name
        base.is_enterprise_install = bot.is_enterprise_install
        await self.async_save(base)

    async def async_find_bot(
        self,
        *,
        enterprise_id: str | None,
        team_id: str | None,
        is_enterprise_install: bool | None = False,
    ) -> Bot | None:
        rec = await self.find(workspace_key(enterprise_id, team_id, is_enterprise_install))
        return to_bot(rec) if rec is not None else None

    async def async_find_installation(
        self,
        *,
        enterprise_id: str | None,
        team_id: str | None,
        user_id: str | None = None,
        is_enterprise_install: bool | None = False,
    ) -> Installation | None:
        rec = await self.find(workspace_key(enterprise_id, team_id, is_enterprise_install))
        if rec is None or (user_id is not None and user_id != rec.installer_id):
            # Only the installer has an installation of their own (herald asks for no
            # user scopes, so nobody else ever authorizes it).
            return None
        return to_installation(rec)

    async def async_delete_bot(self, *, enterprise_id: str | None, team_id: str | None) -> None:
        workspace = workspace_key(enterprise_id, team_id)
        await self._installations.forget_tokens(PLATFORM, workspace, bot=True, user=False)
        self._changed(workspace)

    async def async_delete_installation(
        self, *, enterprise_id: str | None, team_id: str | None, user_id: str | None = None
    ) -> None:
        workspace = workspace_key(enterprise_id, team_id)
        rec = await self.find(workspace)
        if rec is None:
            return
        if user_id is not None and user_id != rec.installer_id:
            return
        # The installer's own authorization goes; without a user, the whole installation.
        await self._installations.forget_tokens(PLATFORM, workspace, bot=user_id is None)
        self._changed(workspace)

    async def name(self, workspace: str) -> str | None:
        """The workspace's name as its last installation gave it (live or removed)."""
        rec = await self._installations.find(PLATFORM, workspace, removed_too=True)
        return (rec.team_name or rec.enterprise_name) if rec is not None else None

    async def removal(self, workspace: str) -> str | None:
        """Why the app left the workspace (None: it did not, or was never there)."""
        rec = await self._installations.find(PLATFORM, workspace, removed_too=True)
        return rec.removed_reason if rec is not None and not rec.live else None

    async def removed(self, workspace: str, reason: str, *, final: bool = False) -> str | None:
        """The app left the workspace (uninstalled, or its bot token revoked): every token
        goes and its subscriptions stop with ``reason`` — or with the reason of an earlier
        removal, unless this one is ``final`` (the uninstall itself).  Returns the reason
        they carry now."""
        stopped = await self._installations.removed(
            PLATFORM,
            workspace,
            reason=reason,
            chat_prefix=workspace_prefix(workspace),
            final=final,
        )
        self._changed(workspace)
        log.info("Slack: left %s; %d subscription(s) stopped", workspace, stopped)
        return await self.removal(workspace)


class HeraldOAuthStates(AsyncOAuthStateStore):
    """slack_sdk's ``AsyncOAuthStateStore`` in herald's database: a state is good once,
    for ``expiration_seconds``.  ``clock`` is the time source (tests move it on)."""

    def __init__(
        self,
        installations: Installations,
        *,
        expiration_seconds: int,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._installations = installations
        self.expiration_seconds = expiration_seconds
        self.clock = clock

    @property
    def logger(self) -> logging.Logger:
        return log

    async def async_issue(self, *args: Any, **kwargs: Any) -> str:
        state = secrets.token_urlsafe(24)
        now = self.clock()
        await self._installations.issue_state(PLATFORM, state, now + self.expiration_seconds, now)
        return state

    async def async_consume(self, state: str) -> bool:
        if not state:
            return False
        return await self._installations.consume_state(PLATFORM, state, self.clock())
