"""Installations of a chat app into other people's workspaces ("Add to Slack"), and the
one-time ``state`` values of the OAuth flows that create them.

One row per (platform, workspace): the latest installation, with the bot token the app
posts with there.  The workspace is the team id, or the enterprise id of an org-wide
install.  An uninstalled workspace keeps its row with every token cleared, so ``herald
status`` can say when and why it went away; a reinstall overwrites it.
"""

from __future__ import annotations

import dataclasses
import sqlite3
from dataclasses import dataclass
from typing import Any

from storage.base import Base, now_iso


@dataclass(frozen=True, slots=True)
class AppInstallation:
    """What an OAuth install handed over (Slack's ``oauth.v2.access`` answer, as slack_sdk's
    ``Installation`` holds it), plus when and why it was removed, if it was."""

    platform: str
    workspace: str  # team id, or enterprise id for an org-wide install
    team_id: str | None = None
    team_name: str | None = None
    enterprise_id: str | None = None
    enterprise_name: str | None = None
    enterprise_url: str | None = None
    is_enterprise_install: bool = False
    app_id: str | None = None
    installer_id: str | None = None  # the user who installed
    bot_token: str | None = None
    bot_id: str | None = None
    bot_user_id: str | None = None
    bot_scopes: tuple[str, ...] = ()
    bot_refresh_token: str | None = None
    bot_token_expires_at: int | None = None
    user_token: str | None = None
    user_scopes: tuple[str, ...] = ()
    user_refresh_token: str | None = None
    user_token_expires_at: int | None = None
    token_type: str | None = None
    incoming_webhook_url: str | None = None
    incoming_webhook_channel: str | None = None
    incoming_webhook_channel_id: str | None = None
    incoming_webhook_configuration_url: str | None = None
    installed_at: float = 0.0  # Unix time
    removed_at: str | None = None
    removed_reason: str | None = None

    @property
    def live(self) -> bool:
        """Does it still hold a token to act with?"""
        return bool(self.bot_token or self.user_token)


_COLUMNS = tuple(f.name for f in dataclasses.fields(AppInstallation))
_SCOPES = ("bot_scopes", "user_scopes")
_BOT_TOKENS = ("bot_token", "bot_refresh_token", "bot_token_expires_at")
_USER_TOKENS = ("user_token", "user_refresh_token", "user_token_expires_at")


def _to_row(inst: AppInstallation) -> dict[str, Any]:
    row = {c: getattr(inst, c) for c in _COLUMNS}
    for c in _SCOPES:
        row[c] = ",".join(row[c])
    row["is_enterprise_install"] = int(inst.is_enterprise_install)
    return row


def _to_installation(r: sqlite3.Row) -> AppInstallation:
    kw: dict[str, Any] = {c: r[c] for c in _COLUMNS}
    for c in _SCOPES:
        kw[c] = tuple(s for s in (kw[c] or "").split(",") if s)
    kw["is_enterprise_install"] = bool(kw["is_enterprise_install"])
    return AppInstallation(**kw)


class InstallationsStore(Base):
    def save_installation(self, inst: AppInstallation, *, chat_prefix: str | None = None) -> int:
        """Store the workspace's latest installation (a reinstall replaces the old one).

        When the workspace had been uninstalled and ``chat_prefix`` is given, its chats that
        the uninstall stopped (and only those) become active again; returns how many.
        """
        row = _to_row(dataclasses.replace(inst, removed_at=None, removed_reason=None))
        with self.atomic():
            old = self.db.execute(
                "SELECT removed_reason FROM installations WHERE platform = ? AND workspace = ?",
                [inst.platform, inst.workspace],
            ).fetchone()
            self.table("installations").upsert(row, pk=("platform", "workspace"))
            reason = old["removed_reason"] if old else None
            if not reason or chat_prefix is None:
                return 0
            cur = self.db.execute(
                "UPDATE subscriptions SET active = 1, deactivated_reason = NULL, updated_at = ? "
                "WHERE platform = ? AND active = 0 AND deactivated_reason = ? AND "
                "substr(chat, 1, length(?)) = ?",
                [now_iso(), inst.platform, reason, chat_prefix, chat_prefix],
            )
            return int(cur.rowcount)

    def installation(self, platform: str, workspace: str) -> AppInstallation | None:
        """The workspace's installation, live or removed (None: never installed)."""
        r = self._one(
            "SELECT * FROM installations WHERE platform = ? AND workspace = ?",
            [platform, workspace],
        )
        return _to_installation(r) if r else None

    def installations(self, platform: str | None = None) -> list[AppInstallation]:
        """Every workspace the app was ever installed in, live ones first, oldest first."""
        sql = "SELECT * FROM installations"
        params: list[Any] = []
        if platform:
            sql += " WHERE platform = ?"
            params.append(platform)
        sql += " ORDER BY removed_at IS NOT NULL, installed_at, workspace"
        return [_to_installation(r) for r in self._rows(sql, params)]

    def forget_installation_tokens(
        self, platform: str, workspace: str, *, bot: bool = True, user: bool = True
    ) -> None:
        """Clear the workspace's bot and/or user tokens (revoked or uninstalled)."""
        cols = (_BOT_TOKENS if bot else ()) + (_USER_TOKENS if user else ())
        if not cols:
            return
        sets = ", ".join(f"{c} = NULL" for c in cols)
        with self.atomic():
            self.db.execute(
                f"UPDATE installations SET {sets} WHERE platform = ? AND workspace = ?",
                [platform, workspace],
            )

    def remove_installation(
        self,
        platform: str,
        workspace: str,
        *,
        reason: str,
        chat_prefix: str,
        final: bool = False,
    ) -> int:
        """The app left the workspace: clear every token, remember when and why, and
        deactivate the workspace's subscriptions (the chats whose address starts with
        ``chat_prefix``) with that reason, in one transaction.  Returns how many stopped.

        Removed twice (Slack sends ``tokens_revoked`` and ``app_uninstalled``, in no fixed
        order): the first time stays the time of removal, and the first reason stays unless
        this one is ``final`` — then it replaces it, on the subscriptions it stopped too.
        """
        now = now_iso()
        sets = ", ".join(f"{c} = NULL" for c in _BOT_TOKENS + _USER_TOKENS)
        in_workspace = "platform = ? AND substr(chat, 1, length(?)) = ?"
        scope = [platform, chat_prefix, chat_prefix]
        with self.atomic():
            old = self.db.execute(
                "SELECT removed_reason FROM installations WHERE platform = ? AND workspace = ?",
                [platform, workspace],
            ).fetchone()
            before = old["removed_reason"] if old is not None else None
            if before and not final:
                reason = before
            self.db.execute(
                f"UPDATE installations SET {sets}, removed_at = coalesce(removed_at, ?), "
                "removed_reason = ? WHERE platform = ? AND workspace = ?",
                [now, reason, platform, workspace],
            )
            if before and before != reason:
                self.db.execute(
                    "UPDATE subscriptions SET deactivated_reason = ? "
                    f"WHERE active = 0 AND deactivated_reason = ? AND {in_workspace}",
                    [reason, before, *scope],
                )
            cur = self.db.execute(
                "UPDATE subscriptions SET active = 0, deactivated_reason = ?, updated_at = ? "
                f"WHERE active = 1 AND {in_workspace}",
                [reason, now, *scope],
            )
            return int(cur.rowcount)

    # -- OAuth state ---------------------------------------------------------------------------
    def issue_oauth_state(self, platform: str, state: str, expires_at: float, now: float) -> None:
        """Remember a state handed to a browser until ``expires_at`` (Unix time); states
        expired at ``now`` are dropped on the way."""
        with self.atomic():
            self.db.execute("DELETE FROM oauth_states WHERE expires_at <= ?", [now])
            self.table("oauth_states").insert(
                {"state": state, "platform": platform, "expires_at": expires_at}
            )

    def consume_oauth_state(self, platform: str, state: str, now: float) -> bool:
        """True once for a state issued for ``platform`` and not expired at ``now``; it is
        gone afterwards, so a replayed state is refused."""
        with self.atomic():
            cur = self.db.execute(
                "DELETE FROM oauth_states WHERE state = ? AND platform = ? AND expires_at > ?",
                [state, platform, now],
            )
            return cur.rowcount == 1
