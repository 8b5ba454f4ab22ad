"""Where an app installed into many workspaces keeps each one's tokens ("Add to Slack").

Adapters never touch storage: an adapter whose app people install into their own workspace
gets this facade from the core (``core.installations``) and keeps its platform's view of an
installation (Slack's ``Installation``, its chat addresses) on its own side.  The storage
verbs block, so each call here runs on the core's thread pool.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, TypeVar

from storage import AppInstallation

if TYPE_CHECKING:
    from bot.models import Subscription
    from storage import Store

__all__ = ["AppInstallation", "Installations"]

T = TypeVar("T")
Runner = Callable[..., Awaitable[Any]]


async def _in_thread(fn: Callable[..., T], *args: Any) -> T:
    return await asyncio.to_thread(functools.partial(fn, *args))


class Installations:
    """The installations of chat apps, and the one-time states of their OAuth flows."""

    def __init__(
        self,
        store: Store,
        *,
        run: Runner | None = None,
        on_change: Callable[[Subscription], None] | None = None,
    ) -> None:
        self._store = store
        self._run: Runner = run or _in_thread
        self._on_change = on_change

    async def save(self, inst: AppInstallation, *, chat_prefix: str | None = None) -> int:
        """Keep a (re)installation.  A workspace coming back gets the chats its uninstall
        stopped (those under ``chat_prefix``) going again; returns how many."""
        count: int = await self._run(self._save, inst, chat_prefix)
        return count

    def _save(self, inst: AppInstallation, chat_prefix: str | None) -> int:
        count = self._store.save_installation(inst, chat_prefix=chat_prefix)
        if count and self._on_change is not None and chat_prefix is not None:
            # The scheduler may have no job left for their digest time.
            for sub in self._store.list_subscriptions(platform=inst.platform):
                if sub.chat.startswith(chat_prefix):
                    self._on_change(sub)
                    break
        return count

    async def find(
        self, platform: str, workspace: str, *, removed_too: bool = False
    ) -> AppInstallation | None:
        """The workspace's installation while it holds a token (None: not installed);
        ``removed_too``: also after the app left (its tokens gone)."""
        inst: AppInstallation | None = await self._run(
            self._store.installation, platform, workspace
        )
        return inst if inst is not None and (inst.live or removed_too) else None

    async def forget_tokens(
        self, platform: str, workspace: str, *, bot: bool = True, user: bool = True
    ) -> None:
        await self._run(
            functools.partial(
                self._store.forget_installation_tokens, platform, workspace, bot=bot, user=user
            )
        )

    async def removed(
        self, platform: str, workspace: str, *, reason: str, chat_prefix: str, final: bool = False
    ) -> int:
        """The app left the workspace: its tokens go, its chats' digests stop (with
        ``reason``; a second removal keeps the first reason unless ``final``); returns how
        many subscriptions stopped."""
        count: int = await self._run(
            functools.partial(
                self._store.remove_installation,
                platform,
                workspace,
                reason=reason,
                chat_prefix=chat_prefix,
                final=final,
            )
        )
        return count

    async def issue_state(self, platform: str, state: str, expires_at: float, now: float) -> None:
        """Remember a state handed out at ``now`` until ``expires_at`` (Unix times)."""
        await self._run(self._store.issue_oauth_state, platform, state, expires_at, now)

    async def consume_state(self, platform: str, state: str, now: float) -> bool:
        """True once per issued, unexpired state."""
        ok: bool = await self._run(self._store.consume_oauth_state, platform, state, now)
        return ok

    def workspaces(self, platform: str | None = None) -> list[AppInstallation]:
        """Every workspace an app was installed in, live or removed (``herald status``)."""
        return self._store.installations(platform)
