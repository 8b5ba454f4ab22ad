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

from bot.ask import Question, may_be_question
from bot.cards import one_line, rating_buttons
from bot.commands import COMMANDS, GENERIC_ERROR, Commands, Registry, help_text
from bot.delivery import Deliverer, report_text
from bot.installations import Installations
from bot.library import is_library_name
from bot.models import Button, Command, Reply
from bot.platform import Sender

if TYPE_CHECKING:
    from bot.engine import Engine
    from storage import PaperRef

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
        #: Apps installed into many workspaces (OAuth) keep their tokens here.
        self.installations = Installations(
            engine.store, run=self._run, on_change=commands.on_change
        )

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

    # -- library files ----------------------------------------------------------------------
    async def wants_file(self, platform: str, chat: str, filename: str, *, addressed: bool) -> bool:
        """Should a file that arrived in a chat be imported (or answered)?

        ``addressed``: sent to the bot itself (a private chat, a DM) — always answered, if only
        to say what would work.  Files shared in a group or channel are everyone's business:
        only a library export (.bib, .ris, .json) in a subscribed chat is picked up there.
        """
        if addressed:
            return True
        if not is_library_name(filename):
            return False
        sub = await self._run(self.engine.store.get_subscription, platform, chat)
        return sub is not None and sub.active

    def download_failed(self, filename: str) -> Reply:
        """The answer when the platform would not hand over a file's bytes."""
        name = one_line(filename)[:80] or "the file"
        return Reply(
            text=f"I could not download {name}; please send it again in a moment.",
            ephemeral=True,
            error=True,
        )

    def library_refusal(self, filename: str, size: int | None) -> Reply | None:
        """The answer to a file that is refused before download (not a library, too big);
        None: download it and call :meth:`import_library`."""
        return self.commands.library_refusal(filename, size)

    def import_working_text(self, filename: str) -> str:
        return f"⏳ Importing {one_line(filename)[:80] or 'the library'} …"

    async def import_library(
        self, platform: str, chat: str, user: str, filename: str, data: bytes
    ) -> Reply:
        """A library file someone sent: its papers seed ``user``'s 👍 in this chat."""
        return await self._run(self.commands.import_library, platform, chat, user, filename, data)

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

    async def chats(self, platform: str) -> list[str]:
        """The chats of ``platform`` that have a subscription (active or not)."""
        return await self._run(self._chats, platform)

    def _chats(self, platform: str) -> list[str]:
        subs = self.engine.store.list_subscriptions(active_only=False, platform=platform)
        return [s.chat for s in subs]

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

    # -- questions about a paper (bot.ask) -----------------------------------------------------
    async def paper_for_message(self, platform: str, chat: str, message_id: str) -> PaperRef | None:
        """Which paper a message of ours is about (a digest item, an answer; ``""`` for a
        digest's header), and the conversation it belongs to; None: not one we know."""
        asker = self.engine.asker
        return await self._run(asker.paper_for_message, platform, chat, message_id)

    def may_be_question(self, text: str, *, addressed: bool) -> bool:
        """Cheap first look at a thread message: False means it is surely not a question for
        the bot (no need to find out what its thread is about)."""
        return may_be_question(text, addressed=addressed)

    async def question_in_thread(
        self,
        platform: str,
        chat: str,
        user: str,
        thread: str,
        text: str,
        *,
        about: str | None,
        addressed: bool,
    ) -> Question | None:
        """A message in a paper's thread (or a reply to a paper's message) as a question for
        :meth:`ask`, or None when it is not one for the bot (people talking among
        themselves).  ``about``: the paper of the message it hangs off (``""`` a digest
        header, None not ours); ``addressed``: a reply to the bot or a mention of it."""
        asker = self.engine.asker
        return await self._run(
            functools.partial(
                asker.from_thread,
                platform,
                chat,
                user,
                thread,
                text,
                about=about,
                addressed=addressed,
            )
        )

    async def ask(self, question: Question) -> Reply:
        """Answer a question; after sending it, tell :meth:`answered` where it landed."""
        return await self._run(self.commands.handle_question, question)

    async def answered(self, platform: str, chat: str, message_id: str, reply: Reply) -> None:
        """An answer (or a paper's card, /summarize) went out as ``message_id``: a reply to it
        is a question about that paper, in the same conversation."""
        info = reply.data.get("ask")
        if reply.error or not (info or reply.card):
            return
        if info:
            paper, thread, turn = info["paper"], info["thread"], info["turn"]
        else:
            assert reply.card is not None
            paper, thread, turn = reply.card.paper_id, None, None
        await self._run(self.engine.asker.answered, platform, chat, message_id, paper, thread, turn)
