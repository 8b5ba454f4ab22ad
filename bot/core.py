"""What chat adapters talk to: the core owns every interaction, adapters only translate.

An adapter turns a platform payload into a :class:`Command` (or a button press) and calls
:class:`Core`; it renders what comes back (a :class:`Reply` with text, a card, buttons) and
sends it.  Everything else is decided here, once for every platform: which commands exist and
how they are acknowledged (:data:`bot.commands.COMMANDS`), who may change a chat, what a
rating does, what a paper card holds, what a person is told after asking for a digest, and
what happens when a chat moves.  Blocking work (storage, the LLM, arXiv) runs in a thread, so
an adapter's event loop is never held up.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import functools
import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

from bot.cards import rating_buttons
from bot.commands import COMMANDS, GENERIC_ERROR, Commands, Registry, help_text
from bot.delivery import Deliverer, report_text
from bot.models import Button, Command, Reply
from bot.platform import Sender

if TYPE_CHECKING:
    from bot.engine import Engine

log = logging.getLogger(__name__)

T = TypeVar("T")


class Core:
    def __init__(
        self, engine: Engine, commands: Commands, deliverer: Deliverer, *, workers: int = 32
    ) -> None:
        self.engine = engine
        self.commands = commands
        self.deliverer = deliverer
        self.registry: Registry = COMMANDS
        self._workers = workers
        self._executor: concurrent.futures.ThreadPoolExecutor | None = None

    async def _run(self, fn: Callable[..., T], *args: Any) -> T:
        # A pool of our own: 50 people asking for summaries at once must not queue behind
        # the loop's small default pool, which aiohttp also needs for DNS lookups.
        if self._executor is None:
            self._executor = concurrent.futures.ThreadPoolExecutor(
                max_workers=self._workers, thread_name_prefix="herald-core"
            )
        return await asyncio.get_running_loop().run_in_executor(
            self._executor, functools.partial(fn, *args)
        )

    def close(self) -> None:
        if self._executor is not None:
            self._executor.shutdown(wait=False, cancel_futures=True)
            self._executor = None

    # -- what a surface needs to know about commands ------------------------------------------
    def help(self, platform: str) -> str:
        return help_text(platform)

    def menu(self) -> list[tuple[str, str]]:
        return self.registry.menu()

    def names(self) -> list[str]:
        return self.registry.names()

    def working_text(self, cmd: Command) -> str | None:
        """The acknowledgement of a slow command (None: answer straight away)."""
        return self.registry.working_text(cmd)

    def needs_admin_check(self, cmd: Command) -> bool:
        """Must the adapter find out whether the sender may change this chat?"""
        return self.registry.needs_admin_check(cmd)

    def is_slow(self, cmd: Command) -> bool:
        spec = self.registry.get(cmd.name)
        return spec is not None and spec.slow

    # -- interactions --------------------------------------------------------------------------
    async def handle(self, cmd: Command, sender: Sender) -> Reply:
        """Run a command.  A digest it asks for goes out through ``sender`` (the ledger
        makes a repeated /digest harmless); the reply then says how that went."""
        reply = await self._run(self.commands.handle, cmd)
        if reply.digest is None:
            return reply
        digest = reply.digest
        try:
            report = await self.deliverer.deliver_digest(digest, sender)
        except Exception:
            log.exception("delivering the digest %s asked for failed", cmd.chat)
            return Reply(text=GENERIC_ERROR, ephemeral=True, error=True)
        thread = report.thread.message_id if report.thread else None
        return Reply(
            text=report_text(report, digest),
            ephemeral=True,
            error=report.failed is not None,
            reply_to=thread if report.sent == 0 else None,
            data={"sent": report.sent, "failed": report.failed, "deactivated": report.deactivated},
        )

    async def rate(self, platform: str, chat: str, user: str, paper_id: str, value: int) -> Reply:
        """A 👍/👎 press; the reply carries the buttons as they should now read."""
        reply = await self._run(self.commands.handle_rating, platform, chat, user, paper_id, value)
        if not reply.error:
            reply.buttons = rating_buttons(paper_id, reply.data["up"], reply.data["down"])
        return reply

    async def buttons(self, platform: str, chat: str, paper_id: str) -> tuple[Button, ...]:
        """The rating buttons of a paper in a chat, with the current tally."""
        return await self._run(self._buttons, platform, chat, paper_id)

    def _buttons(self, platform: str, chat: str, paper_id: str) -> tuple[Button, ...]:
        sub = self.engine.store.get_subscription(platform, chat)
        if sub is None or sub.id is None:
            return rating_buttons(paper_id)
        return rating_buttons(paper_id, *self.engine.store.tally(sub.id, paper_id))

    async def seen(self, platform: str, chat: str, message_id: int) -> None:
        """A message exists in the chat (a command, an answer): where to look from after a
        crash, on platforms that cannot read a chat's history."""
        await self._run(self.engine.store.mark_message, platform, chat, message_id)

    async def last_message_id(
        self, platform: str, chat: str, *, topics: bool = False
    ) -> int | None:
        """The newest message id known in a chat (``topics``: in any of its topics too)."""
        return await self._run(
            functools.partial(self.engine.store.last_message_id, topics=topics), platform, chat
        )

    async def sent_message_ids(self, platform: str, chat: str, after: int) -> set[int]:
        """Message ids past ``after`` that deliveries recorded in a chat or any of its topics."""
        return await self._run(
            functools.partial(self.engine.store.sent_message_ids, topics=True),
            platform,
            chat,
            after,
        )

    async def settings_text(self, platform: str, chat: str) -> str:
        """A chat's digest settings in a few lines (a header's ⚙️ button)."""
        return await self._run(self._settings_text, platform, chat)

    def _settings_text(self, platform: str, chat: str) -> str:
        sub = self.engine.store.get_subscription(platform, chat)
        if sub is None or not sub.active:
            return "This chat is not subscribed."
        return self.commands.describe(sub)

    async def migrate_chat(self, platform: str, old: str, new: str) -> None:
        """A chat got a new id (a Telegram group became a supergroup): its subscription,
        ratings and ledger follow it."""
        await self._run(self._migrate, platform, old, new)

    def _migrate(self, platform: str, old: str, new: str) -> None:
        store = self.engine.store
        sub = store.get_subscription(platform, old)
        if sub is None or sub.id is None:
            return
        if store.get_subscription(platform, new) is not None:
            log.warning(
                "%s chat %s moved to %s, which has its own subscription", platform, old, new
            )
            return
        store.update_subscription(sub.id, chat=new)
        log.info("%s chat %s moved to %s; its subscription followed", platform, old, new)
