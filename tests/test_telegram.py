"""The Telegram adapter end to end: real python-telegram-bot against tests/fakes/telegram.py.

Every test runs the real PTB Application (polling, or webhook through a local aiohttp server)
built as the product builds it (``bot.app.build`` → ``Core`` → ``TelegramAdapter``) on the
arXiv fake's real announcement day, and asserts what a person in the chat would see: the
messages' text, their replies, their buttons, and the delivery ledger behind them.

Only translation and transport are tested here: how Telegram messages become commands (and
who may send them), how answers, cards and digests become Telegram messages, and what
Telegram's limits and failures do.  What each command *says* is the core's business and is
scripted once, platform-neutrally, with the test bot (``tests/testbot.py``).
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import itertools
import logging
import re
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import replace
from typing import Any

import pytest
from aiohttp import web
from telegram.error import RetryAfter

from adapters.telegram.adapter import TelegramAdapter, build_rate_limiter
from adapters.telegram.render import MAX_MESSAGE_UNITS, render_card, utf16_len
from bot import delivery
from bot.app import App, build
from bot.cards import card_for
from bot.config import Config
from bot.delivery import DeliveryReport
from bot.engine import Engine
from bot.errors import ConfigError
from bot.models import Card, Digest, Paper, ScoredPaper, Subscription, SummaryStatus
from bot.platform import Adapter
from tests.fakes import corpus
from tests.fakes.openai_api import FakeOpenAI
from tests.fakes.telegram import FakeTelegram, StoredMessage

PRIVATE = 1001  # a private chat's id is its user's id
OTHER_PRIVATE = 1002
GROUP = -1001234567890
ADMIN = 2002  # a chat administrator of GROUP
MEMBER = 3003  # a plain member of GROUP
LISTED = 4004  # not a chat admin, but in telegram.admins
BOT = "herald_test_bot"
LLM_KEY_ENV = "HERALD_TEST_LLM_KEY"
DIGEST_WORKING = "⏳ Putting today's digest together …"


@pytest.fixture(autouse=True)
def _ptb_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PTB_TIMEDELTA", "true")


@pytest.fixture
def fake() -> Iterator[FakeTelegram]:
    with FakeTelegram() as server:
        server.add_chat(PRIVATE, "private", username="alice", first_name="Alice")
        server.add_chat(OTHER_PRIVATE, "private", username="bob", first_name="Bob")
        server.add_chat(GROUP, "supergroup", "Herald Lab", admins=[ADMIN], members=[MEMBER, LISTED])
        yield server


def telegram_config(
    make_config: Callable[..., Config],
    fake: FakeTelegram,
    monkeypatch: pytest.MonkeyPatch,
    **defaults: Any,
) -> Callable[..., Config]:
    """Configs with Telegram on, pointed at the fake (the token in the environment): these
    ``defaults`` under each call's own overrides."""
    monkeypatch.setenv("TELEGRAM_BOT_TOKEN", fake.token)

    def make(openai: FakeOpenAI | None = None, **overrides: Any) -> Config:
        values: dict[str, Any] = {
            "telegram.enabled": True,
            "telegram.api_base_url": fake.api_url,
            "telegram.per_chat_interval_s": 0,
            "learning.enabled": False,
            "scoring.max_papers": 3,
            **defaults,
            **overrides,
        }
        return make_config(openai=openai, **values)

    return make


@pytest.fixture
def tg_config(
    make_config: Callable[..., Config], fake: FakeTelegram, monkeypatch: pytest.MonkeyPatch
) -> Callable[..., Config]:
    """These tests are about a message per paper: the thread layout."""
    defaults = {"telegram.admins": [str(LISTED)], "telegram.layout": "thread"}
    return telegram_config(make_config, fake, monkeypatch, **defaults)


def fast_limiter(max_retries: int = 3) -> Any:
    """Real AIORateLimiter retries, no pacing: tests that check pacing build their own."""
    return build_rate_limiter(10_000, group_per_minute=0, max_retries=max_retries)


class Bot:
    """A running adapter plus helpers that talk to it the way people do."""

    def __init__(self, app: App, adapter: TelegramAdapter, fake: FakeTelegram) -> None:
        self.app = app
        self.core = app.core
        self.adapter = adapter
        self.fake = fake
        self.engine = app.engine
        self.store = app.engine.store
        self.asked: int | None = None  # the message id of the last thing a person said

    def push(self, chat: int, user: int, text: str) -> int:
        uid = self.fake.push_message(chat, user, text)
        assert uid is not None, "the fake did not deliver the message"
        self.asked = self.fake.pushed_updates[uid]["message"]["message_id"]
        return uid

    async def say(
        self, chat: int, user: int, text: str, *, expect: int = 1, timeout: float = 10
    ) -> list[StoredMessage]:
        """Send ``text`` as ``user`` in ``chat``; return the bot's ``expect`` new messages."""
        before = len(self.fake.messages(chat))
        self.push(chat, user, text)
        await self.fake.wait_for_async(
            lambda: len(self.fake.messages(chat)) >= before + expect, timeout=timeout
        )
        return self.fake.messages(chat)[before:]

    async def edited(self, msg: StoredMessage, timeout: float = 10) -> StoredMessage:
        """``msg`` once the bot has edited it (a slow command's answer replacing "working…")."""
        return await self.fake.wait_for_async(
            lambda: (m := self.fake.message(msg.chat_id, msg.message_id)) and m.edits and m,
            timeout=timeout,
        )

    async def answer(self, chat: int, user: int, text: str) -> StoredMessage:
        """The bot's one answer to ``text``; for a slow command, once it is edited in."""
        (msg,) = await self.say(chat, user, text)
        if posted(msg).startswith("⏳"):
            msg = await self.edited(msg)
        return msg

    async def reply(self, chat: int, user: int, text: str) -> str:
        return (await self.answer(chat, user, text)).text

    async def idle(self, timeout: float = 10) -> None:
        """Every update pushed so far has been fetched *and* handled to the end.

        An update leaves the fake's pending list once a later getUpdates confirms it, which PTB
        sends only after putting it on its update queue; the queue's ``join`` returns once the
        handler of every update put there has finished (PTB calls ``task_done`` after it).
        Updates are handled concurrently, so "a later command was answered" would prove
        nothing about an earlier one; this does.
        """
        await self.fake.wait_for_async(lambda: not self.fake.pending_updates(), timeout=timeout)
        await asyncio.wait_for(self.adapter.app.update_queue.join(), timeout)

    async def silent(self, chat: int, user: int, text: str) -> None:
        """The bot reads ``text``, handles it, and answers nothing."""
        before = len(self.fake.messages(chat, include_deleted=True))
        self.push(chat, user, text)
        await self.idle()
        assert len(self.fake.messages(chat, include_deleted=True)) == before, text

    async def silent_reply(self, chat: int, user: int, text: str, to: int) -> None:
        """Like :meth:`silent`, for a reply to message ``to``."""
        before = len(self.fake.messages(chat, include_deleted=True))
        assert self.fake.push_message(chat, user, text, reply_to_message_id=to) is not None
        await self.idle()
        assert len(self.fake.messages(chat, include_deleted=True)) == before, text

    async def press(self, chat: int, user: int, message_id: int, data: str) -> dict[str, Any]:
        """Tap an inline button; returns the answerCallbackQuery the bot made."""
        qid = self.fake.push_callback(chat, user, message_id, data)
        answers = await self.fake.wait_for_async(
            lambda: [a for a in self.fake.answered_callbacks if a["id"] == qid]
        )
        return answers[0]

    async def buttons(self, chat: int, message_id: int, expect: list[str]) -> list[str]:
        """Wait for a message's buttons to read ``expect`` (edits happen after the answer)."""

        def labels() -> list[str]:
            msg = self.fake.message(chat, message_id)
            rows = (msg.reply_markup or {}).get("inline_keyboard", []) if msg else []
            return [b["text"] for row in rows for b in row]

        with contextlib.suppress(TimeoutError):
            await self.fake.wait_for_async(lambda: labels() == expect, timeout=5)
        return labels()

    async def deliver(self, digest: Digest) -> DeliveryReport:
        """A digest through the core's deliverer (as the schedule sends it) to Telegram."""
        return await self.core.deliverer.deliver_digest(digest, self.adapter)


@contextlib.asynccontextmanager
async def running(
    cfg: Config,
    fake: FakeTelegram,
    *,
    limiter: Any = None,
    engine: Engine | None = None,
) -> AsyncIterator[Bot]:
    """The adapter connected and polling (or webhook-registered) on an engine with DAY fetched."""
    eng = engine or Engine(cfg)
    if eng.latest_day() is None:
        report = eng.fetch()
        assert report.status == "ok", report.summary()
    app = build(cfg, eng, adapters={})
    adapter = TelegramAdapter(cfg, app.core, rate_limiter=limiter or fast_limiter(), poll_timeout=1)
    await adapter.connect()
    await adapter.listen()
    try:
        yield Bot(app, adapter, fake)
    finally:
        await adapter.disconnect()
        app.core.close()
        if engine is None:
            eng.store.close()


def subscribe(store: Any, chat: int, **fields: Any) -> Subscription:
    """A Telegram subscription written straight to storage (for delivery-only tests)."""
    base = Subscription(
        id=None,
        platform="telegram",
        chat=str(chat),
        categories=("cs.LG",),
        keywords=("LLM", "inference", "training"),
        max_papers=3,
    )
    return store.upsert_subscription(replace(base, **fields))


def todays_digest(engine: Engine, sub: Subscription, n: int = 3) -> Digest:
    day = engine.latest_day()
    assert day is not None
    digest = engine.digests([sub], day)[0]
    assert len(digest.items) >= n, "the corpus day should fill the digest"
    digest.items = digest.items[:n]
    return digest


def posted(msg: StoredMessage) -> str:
    """The text a message was first posted with (before any edit)."""
    return msg.edits[0]["text"] if msg.edits else msg.text


def item_messages(fake: FakeTelegram, chat: int) -> list[StoredMessage]:
    """The papers' messages: those with 👍/👎 (the header's keyboard is ⚙️ Settings)."""
    return [
        m
        for m in fake.messages(chat)
        if m.reply_markup and m.reply_markup["inline_keyboard"][0][0]["text"].startswith("👍")
    ]


def assert_sent_once(fake: FakeTelegram, chat: int, digest: Digest) -> None:
    """Every paper's title appears in exactly one accepted sendMessage; nothing else repeats."""
    texts = [s.text or "" for s in fake.sends(chat)]
    for item in digest.items:
        title = card_for(item).title  # as shown: LaTeX decoded
        assert sum(t.startswith(title) for t in texts) == 1, title
    assert fake.duplicate_texts(chat) == {}


# -- connecting --------------------------------------------------------------------------------
async def test_connect_checks_token_and_registers_the_menu(
    tg_config: Callable[..., Config], fake: FakeTelegram, monkeypatch: pytest.MonkeyPatch
) -> None:
    cfg = tg_config()
    engine = Engine(cfg)
    core = build(cfg, engine, adapters={}).core
    try:
        monkeypatch.delenv("TELEGRAM_BOT_TOKEN")
        with pytest.raises(ConfigError, match="TELEGRAM_BOT_TOKEN"):
            TelegramAdapter(cfg, core)

        monkeypatch.setenv("TELEGRAM_BOT_TOKEN", "555:AAwrong-token-for-this-fake")
        adapter = TelegramAdapter(cfg, core)
        with pytest.raises(ConfigError, match="TELEGRAM_BOT_TOKEN is not accepted by Telegram"):
            await adapter.connect()
        assert not adapter.connected
        await adapter.disconnect()

        # the composition root creates the adapter when telegram.enabled is set
        monkeypatch.setenv("TELEGRAM_BOT_TOKEN", fake.token)
        app = build(cfg, engine)
        adapter = app.adapters["telegram"]
        assert isinstance(adapter, TelegramAdapter) and isinstance(adapter, Adapter)
        await adapter.connect()
        assert adapter.connected and adapter.platform == "telegram"
        assert adapter.web_routes() == []  # polling needs no route
        await adapter.disconnect()
        app.core.close()
    finally:
        core.close()
        engine.store.close()
    # the menu is the command registry's, in its order, with its descriptions
    menu = fake.commands()
    assert [c["command"] for c in menu] == [name for name, _ in core.menu()]
    assert [c["description"] for c in menu] == [text for _, text in core.menu()]
    for name in ("start", "subscribe", "keywords", "settings", "digest", "summarize", "help"):
        assert name in [c["command"] for c in menu]


# -- subscribe -> digest -> rate ---------------------------------------------------------------
async def test_subscribe_digest_and_rate_a_real_day(
    tg_config: Callable[..., Config],
    fake: FakeTelegram,
    fake_openai: FakeOpenAI,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv(LLM_KEY_ENV, fake_openai.api_key)
    cfg = tg_config(openai=fake_openai)
    async with running(cfg, fake) as bot:
        text = await bot.reply(PRIVATE, PRIVATE, "/subscribe cs.LG cs.CL")
        assert text.startswith("Subscribed to cs.LG, cs.CL.")
        sub = bot.store.get_subscription("telegram", str(PRIVATE))
        assert sub is not None and sub.id is not None and sub.active
        assert sub.categories == ("cs.LG", "cs.CL")

        # /digest is slow: "working…" at once, the digest, then the report edited in
        working, header, *items = await bot.say(PRIVATE, PRIVATE, "/digest", expect=5)
        assert posted(working) == DIGEST_WORKING and working.reply_to is None
        assert header.text.startswith("arXiv digest · Thu 22 Jan 2026 · 3 papers · cs.LG, cs.CL")
        assert header.entities[0]["type"] == "bold"
        assert len(items) == 3
        report = await bot.edited(working)
        assert report.text == "Posted today's digest: 3 papers, one per reply in the thread."
        day = bot.engine.latest_day()
        assert day is not None
        # The fake holds the last message a moment before the adapter records it as sent.
        rows = await fake.wait_for_async(
            lambda: (
                (r := bot.store.deliveries(sub.id, day)) and all(x.state == "sent" for x in r) and r
            )
        )
        assert len(rows) == 4
        for row, msg in zip(rows[1:], items, strict=True):
            paper = bot.store.get_paper(row.paper_id)
            assert paper is not None
            # a reply to the header, HTML with a linked title, no link preview, 👍/👎 buttons
            assert msg.reply_to == header.message_id
            assert msg.parse_mode == "HTML"
            assert msg.link_preview_options == {"is_disabled": True}
            assert msg.text.startswith(" ".join(paper.title.split()))
            link = next(e for e in msg.entities if e["type"] == "text_link")
            assert link["url"] == paper.url and link["offset"] == 0
            assert f"{paper.versioned_id}" in msg.text and "Score " in msg.text
            assert "Summary" in msg.text and "Contributions / novelty" in msg.text
            assert any(e["type"] == "expandable_blockquote" for e in msg.entities)
            assert msg.reply_markup is not None
            buttons = msg.reply_markup["inline_keyboard"][0]
            assert [b["text"] for b in buttons] == ["👍", "👎"]
            # each digest keyboard carries its day, so the message is recognisable after a crash
            assert [b["callback_data"] for b in buttons] == [
                f"r:+:{paper.id}:260122",
                f"r:-:{paper.id}:260122",
            ]
            assert row.message_id == str(msg.message_id)

        # 👍/👎: a short confirmation, then the tally on the buttons (editMessageReplyMarkup)
        first = items[0]
        paper_id = rows[1].paper_id
        up, down = f"r:+:{paper_id}:260122", f"r:-:{paper_id}:260122"
        answer = await bot.press(PRIVATE, PRIVATE, first.message_id, up)
        assert answer["text"].startswith("Thanks — rated 👍")
        assert await bot.buttons(PRIVATE, first.message_id, ["👍 1", "👎"]) == ["👍 1", "👎"]
        answer = await bot.press(PRIVATE, PRIVATE, first.message_id, up)
        assert answer["text"] == "You already rated this 👍."
        answer = await bot.press(PRIVATE, PRIVATE, first.message_id, down)
        assert answer["text"] == "Changed your rating to 👎."
        assert await bot.buttons(PRIVATE, first.message_id, ["👍", "👎 1"]) == ["👍", "👎 1"]
        assert fake.calls_to("/editMessageReplyMarkup")
        ratings = bot.store.ratings(sub.id)
        assert [(r.user, r.paper_id, r.value) for r in ratings] == [(str(PRIVATE), paper_id, -1)]

        # /digest again the same day: nothing is posted twice, and the answer is a reply to
        # the digest's header (so a tap leads there); the "working…" message gives way to it
        before = len(fake.messages(PRIVATE))
        bot.push(PRIVATE, PRIVATE, "/digest")
        (note,) = await fake.wait_for_async(
            lambda: [m for m in fake.messages(PRIVATE)[before:] if not m.text.startswith("⏳")]
        )
        assert note.text == "Today's digest (3 papers) is already in this chat."
        assert note.reply_to == header.message_id
        (gone,) = [m for m in fake.messages(PRIVATE, include_deleted=True) if m.deleted]
        assert gone.text == DIGEST_WORKING
    assert fake.duplicate_texts(PRIVATE) == {DIGEST_WORKING: 2}  # asked twice; nothing else


async def test_group_ratings_tally_every_member(
    tg_config: Callable[..., Config], fake: FakeTelegram
) -> None:
    async with running(tg_config(), fake) as bot:
        sub = subscribe(bot.store, GROUP)
        assert sub.id is not None
        digest = todays_digest(bot.engine, sub)
        report = await bot.deliver(digest)
        assert report.sent == 4 and report.complete
        msg = item_messages(fake, GROUP)[0]
        pid = digest.items[0].paper.id
        up, down = f"r:+:{pid}:260122", f"r:-:{pid}:260122"
        await bot.press(GROUP, ADMIN, msg.message_id, up)
        await bot.press(GROUP, MEMBER, msg.message_id, up)
        answer = await bot.press(GROUP, LISTED, msg.message_id, down)
        assert answer["text"].startswith("Thanks — rated 👎")
        assert await bot.buttons(GROUP, msg.message_id, ["👍 2", "👎 1"]) == ["👍 2", "👎 1"]
        assert bot.store.tally(sub.id, pid) == (2, 1)
        # a button that is not ours, and a rating after unsubscribing
        answer = await bot.press(GROUP, MEMBER, msg.message_id, "something:else")
        assert answer["text"] is None
        # forged presses (the raw API lets a client send any data for any message): another
        # paper's button, or this paper's button of another day, count for nothing
        other = digest.items[1].paper.id
        for forged in (f"r:+:{other}:260122", f"r:+:{pid}", f"r:+:{pid}:260123"):
            answer = await bot.press(GROUP, MEMBER, msg.message_id, forged)
            assert answer["text"] is None
        assert bot.store.tally(sub.id, other) == (0, 0) and bot.store.tally(sub.id, pid) == (2, 1)
        assert await bot.buttons(GROUP, msg.message_id, ["👍 2", "👎 1"]) == ["👍 2", "👎 1"]
        bot.store.update_subscription(sub.id, active=False)
        answer = await bot.press(GROUP, MEMBER, msg.message_id, down)
        assert "not subscribed" in answer["text"]
        assert bot.store.tally(sub.id, pid) == (2, 1)


# -- commands: Telegram's parsing, addressing, and replies ---------------------------------------
async def test_commands_in_a_private_chat(
    tg_config: Callable[..., Config], fake: FakeTelegram
) -> None:
    paper_id = corpus.papers_on("2026-01-22")[0]["base_id"]
    async with running(tg_config(), fake) as bot:
        assert "Subscribed to cs.LG." in await bot.reply(PRIVATE, PRIVATE, "/subscribe cs.lg")
        # the name in any case, addressed to us; an alias; arguments on the next line
        assert "Keywords (" in await bot.reply(PRIVATE, PRIVATE, f"/KEYWORDS@{BOT}")
        assert "Keywords (" in await bot.reply(PRIVATE, PRIVATE, "/keyword list")
        assert "Added: x." in await bot.reply(PRIVATE, PRIVATE, "/keywords\nadd x")
        sub = bot.store.get_subscription("telegram", str(PRIVATE))
        assert sub is not None and sub.keywords[-1] == "x"
        # an unknown command in a private chat is ours: it gets the help
        text = await bot.reply(PRIVATE, PRIVATE, "/frobnicate")
        assert text.startswith("I don't know the command 'frobnicate'.\n\narxiv-herald posts")
        assert "/summarize <arXiv id or URL>" in text

        # slow commands: their "working…" text at once, the answer edited into it
        for command, working, answer in [
            (f"/why {paper_id}", f"⏳ Looking at {paper_id} …", "score"),
            (f"/more {paper_id}", f"⏳ Looking at {paper_id} …", "Noted: more papers like"),
        ]:
            (msg,) = await bot.say(PRIVATE, PRIVATE, command)
            assert posted(msg) == working
            done = await bot.edited(msg)
            assert done.edits[0]["text"] == working and answer in done.text
        # a slow command with bad arguments is answered at once, with no "working…"
        (usage,) = await bot.say(PRIVATE, PRIVATE, "/summarize")
        assert usage.text.startswith("Usage: /summarize <arXiv id or URL>")
        assert not usage.edits
        # nothing above was a reply to the command in a private chat
        assert all(m.reply_to is None for m in fake.messages(PRIVATE))

        # chatter, and commands for another bot, are read and left alone
        await bot.silent(PRIVATE, PRIVATE, "just chatting, no command")
        await bot.silent(PRIVATE, PRIVATE, "/help@some_other_bot")
        # an edited message never becomes a second command: we do not ask Telegram for edits
        polls = fake.calls_to("/getUpdates")
        assert polls and polls[-1].form()["allowed_updates"] == '["message", "callback_query"]'
        uid = bot.push(PRIVATE, PRIVATE, "typo")
        edited = {**fake.pushed_updates[uid]["message"], "text": "/unsubscribe"}
        edited["edit_date"] = edited["date"] + 5
        assert fake.push_update({"edited_message": edited}) is None
        await bot.idle()
        sub = bot.store.get_subscription("telegram", str(PRIVATE))
        assert sub is not None and sub.active


async def test_commands_in_a_group(tg_config: Callable[..., Config], fake: FakeTelegram) -> None:
    at = f"@{BOT}"
    async with running(tg_config(), fake) as bot:
        # addressed to us or not, our commands are answered as a reply to the command
        start = await bot.answer(GROUP, MEMBER, f"/start{at}")
        assert "To begin" in start.text and start.reply_to == bot.asked
        help_ = await bot.answer(GROUP, MEMBER, "/help")
        assert "/subscribe cs.LG cs.CL" in help_.text and help_.reply_to == bot.asked
        # who may change the chat comes from Telegram (getChatMember) or telegram.admins
        denied = "Only this chat's admins can"
        assert denied in await bot.reply(GROUP, MEMBER, "/subscribe cs.CL")
        assert bot.store.get_subscription("telegram", str(GROUP)) is None
        assert "Subscribed to cs.CL." in await bot.reply(GROUP, ADMIN, f"/subscribe{at} cs.CL")
        assert "Added: agents." in await bot.reply(GROUP, LISTED, "/keywords add agents")
        assert "• agents" in await bot.reply(GROUP, MEMBER, f"/keywords{at} list")
        # an unknown command addressed to us gets the help
        assert "I don't know the command 'frobnicate'" in await bot.reply(
            GROUP, MEMBER, f"/frobnicate{at}"
        )
        # other bots' commands, unaddressed unknown ones and chatter are none of our business
        await bot.silent(GROUP, MEMBER, "/help@some_other_bot")
        await bot.silent(GROUP, MEMBER, "/frobnicate")
        await bot.silent(GROUP, MEMBER, "hello everyone")

        # slow commands: "working…" as a reply to the command, the answer edited in
        (working,) = await bot.say(GROUP, MEMBER, "/summarize 2601.19278")
        assert posted(working) == "⏳ Summarizing 2601.19278 …" and working.reply_to == bot.asked
        done = await bot.edited(working)
        assert done.text.startswith("DART") and done.reply_to == bot.asked
        working, header, *items = await bot.say(GROUP, MEMBER, "/digest", expect=5)
        assert posted(working) == DIGEST_WORKING and working.reply_to == bot.asked
        assert header.text.startswith("arXiv digest") and header.reply_to is None
        assert len(items) == 3 and all(m.reply_to == header.message_id for m in items)
        report = await bot.edited(working)
        assert report.text == "Posted today's digest: 3 papers, one per reply in the thread."

    # in a group every answer is a reply to the command that asked
    digest = {header.message_id, *(m.message_id for m in items)}
    answers = [m for m in fake.messages(GROUP) if m.message_id not in digest]
    assert len(answers) == 9
    for m in answers:
        assert m.reply_to is not None
        asked = fake.message(GROUP, m.reply_to)
        assert asked is not None and not asked.from_bot and asked.text.startswith("/")


async def test_admin_status_comes_from_telegram_and_is_cached(
    tg_config: Callable[..., Config], fake: FakeTelegram
) -> None:
    def lookups() -> list[str | None]:
        return [str(c.json().get("user_id")) for c in fake.calls_to("/getChatMember")]

    async with running(tg_config(), fake) as bot:
        assert "Subscribed" in await bot.reply(GROUP, ADMIN, "/subscribe cs.LG")
        assert "Added: a." in await bot.reply(GROUP, ADMIN, "/keywords add a")
        assert "Added: b." in await bot.reply(GROUP, ADMIN, "/keywords add b")
        assert lookups() == [str(ADMIN)]  # asked once, then cached
        # telegram.admins needs no lookup, and neither does a command that cannot change
        # the chat's settings
        assert "Added: c." in await bot.reply(GROUP, LISTED, "/keywords add c")
        assert "Your private feed" in await bot.reply(GROUP, MEMBER, "/status")
        assert "You are subscribed" in await bot.reply(GROUP, MEMBER, "/start")
        assert lookups() == [str(ADMIN)]
        # a member trying a change is looked up (and refused), then cached too
        assert "Only this chat's admins" in await bot.reply(GROUP, MEMBER, "/keywords add d")
        assert "Only this chat's admins" in await bot.reply(GROUP, MEMBER, "/settings max 4")
        assert lookups() == [str(ADMIN), str(MEMBER)]
        # a private chat belongs to its user: no lookup
        assert "Subscribed" in await bot.reply(PRIVATE, PRIVATE, "/subscribe cs.LG")
        assert lookups() == [str(ADMIN), str(MEMBER)]


# -- /summarize ----------------------------------------------------------------------------------
async def test_summarize_shows_working_then_edits_in_the_summary(
    tg_config: Callable[..., Config],
    fake: FakeTelegram,
    fake_openai: FakeOpenAI,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv(LLM_KEY_ENV, fake_openai.api_key)
    cfg = tg_config(openai=fake_openai, **{"summaries.max_output_tokens": 5000})
    async with running(cfg, fake) as bot:
        await bot.reply(PRIVATE, PRIVATE, "/subscribe cs.CL")
        fake_openai.latency = 0.5  # slow enough to see "working…" first
        url = "https://arxiv.org/abs/2601.19278v1"
        (working,) = await bot.say(PRIVATE, PRIVATE, f"/summarize {url}")
        assert working.text == f"⏳ Summarizing {url} …"  # the LLM takes 0.5 s
        done = await bot.edited(working)
        assert done.edits[0]["text"] == working.text
        assert done.text.startswith("DART: Diffusion-Inspired Speculative Decoding")
        assert "Contributions / novelty" in done.text
        assert done.reply_markup is not None
        labels = [b["text"] for b in done.reply_markup["inline_keyboard"][0]]
        assert labels == ["👍", "👎"]  # the chat is subscribed, so the paper can be rated

        # a summary longer than one message: the rest follows as replies, buttons on the last
        fake_openai.latency = 0
        fake_openai.reply_chars = 9000
        other = corpus.papers_on("2026-01-22")[0]["base_id"]  # not in the summary cache yet
        (working,) = await bot.say(PRIVATE, PRIVATE, f"/summarize {other}")

        def parts() -> list[StoredMessage]:
            ms = [m for m in fake.messages(PRIVATE) if m.message_id >= working.message_id]
            return ms if len(ms) == 3 and ms[-1].reply_markup else []

        first, *rest = await fake.wait_for_async(parts)
        assert first.edits and first.edits[0]["text"] == f"⏳ Summarizing {other} …"
        assert first.reply_markup is None
        assert all(m.reply_to == first.message_id for m in rest)
        assert rest[-1].reply_markup is not None and rest[0].reply_markup is None
        assert all(utf16_len(m.text) <= MAX_MESSAGE_UNITS for m in [first, *rest])
        assert sum(m.text.count("Additional discussion") for m in [first, *rest]) > 100

        # errors are edited in too
        (working,) = await bot.say(PRIVATE, PRIVATE, "/summarize not-a-paper")
        assert posted(working) == "⏳ Summarizing not-a-paper …"
        failed = await bot.edited(working)
        assert failed.text.startswith("'not-a-paper' is not an arXiv id.")


# -- what a digest message looks like ------------------------------------------------------------
HOSTILE_TITLES = [
    "<b>Bold</b> claims: </a> closes nothing & &amp; stays &amp;",
    "_*[Markdown]*_ `code` ~strike~ ||spoiler|| \\escaped",
    'A <script>alert("x")</script> title with "quotes" & \'apostrophes\' <!-- comment -->',
    "Entities &lt;tag&gt; &#128512; &#x1F600; &nbsp; AT&T <br/> <i>unclosed",
]


def _italic(letter: str) -> str:
    if letter == "h":
        return "\u210e"  # ℎ sits in the BMP; its slot in the math block is empty
    base = 0x1D44E if letter.islower() else 0x1D434
    return chr(base + ord(letter.lower()) - ord("a"))


def math_alphanumerics(text: str) -> str:
    """What an LLM often makes of $…$: variables as mathematical italic letters (non-BMP)."""

    def convert(m: re.Match[str]) -> str:
        return re.sub(
            r"(?<![\\A-Za-z])[A-Za-z](?![A-Za-z])", lambda v: _italic(v.group()), m.group(1)
        )

    return re.sub(r"\$([^$]+)\$", convert, text)


def math_papers(n: int) -> list[dict[str, Any]]:
    """Real abstracts dense with TeX."""
    papers = [p for p in corpus.load_papers() if p["abstract"].count("$") >= 12]
    papers.sort(key=lambda p: (-p["abstract"].count("$"), p["base_id"]))
    return papers[:n]


def as_paper(row: dict[str, Any], **changes: Any) -> Paper:
    authors = row["authors"]
    if isinstance(authors, str):
        authors = eval(authors)
    cats = row["categories"]
    if isinstance(cats, str):
        cats = eval(cats)
    paper = Paper(
        id=row["base_id"],
        version=int(str(row["version"]).lstrip("v") or 1),
        title=row["title"],
        authors=tuple(authors),
        categories=tuple(cats),
        abstract=row["abstract"],
    )
    return replace(paper, **changes)


async def test_hostile_titles_math_non_bmp_and_long_summaries(
    tg_config: Callable[..., Config], fake: FakeTelegram
) -> None:
    async with running(tg_config(), fake) as bot:
        sub = subscribe(bot.store, PRIVATE)
        rows = math_papers(6)
        papers = [as_paper(r, title=t) for r, t in zip(rows, HOSTILE_TITLES, strict=False)]
        papers[1] = replace(papers[1], authors=("O'Brien <ob@example.org>", "Ana & Bo"))
        # a summary of several real math abstracts turned non-BMP: ~3 messages long
        long_summary = "\n\n".join(math_alphanumerics(r["abstract"]) for r in rows) + " 🚀🧪"
        assert utf16_len(long_summary) > 2 * MAX_MESSAGE_UNITS
        bot.store.upsert_papers(papers)
        items = [
            ScoredPaper(papers[0], 2.0, summary="**Bold** idea: <b>not a tag</b> & co 𝔽₂"),
            ScoredPaper(papers[1], 1.5, summary=None, summary_status=SummaryStatus.FAILED),
            ScoredPaper(papers[2], 1.0, summary=long_summary, summary_status=SummaryStatus.OK),
            ScoredPaper(papers[3], 0.5, summary="x < y && y > z; ½ 🧮 " * 40),
        ]
        digest = Digest(sub, dt.date(2026, 1, 22), items)
        report = await bot.deliver(digest)
        assert report.complete and report.sent == 5

        header, *messages = fake.messages(PRIVATE)
        assert all(m.reply_to == header.message_id for m in messages)
        assert all(utf16_len(m.text) <= MAX_MESSAGE_UNITS for m in messages)
        # every title arrives exactly as written, as one link to the paper
        starts = [m for m in messages if any(m.text.startswith(p.title) for p in papers)]
        assert len(starts) == 4
        for paper, msg in zip(papers, starts, strict=False):
            assert msg.text.startswith(paper.title)
            link = msg.entities[1] if msg.entities[0]["type"] == "bold" else msg.entities[0]
            assert link["type"] == "text_link" and link["url"] == paper.url
            assert link["offset"] == 0 and link["length"] == utf16_len(paper.title)
        assert "O'Brien <ob@example.org>, Ana & Bo" in starts[1].text
        assert "Bold idea: <b>not a tag</b> & co 𝔽₂" in starts[0].text
        assert "⚠ no summary yet: the LLM call failed" in starts[1].text
        # the long one: several messages, buttons only on the last, nothing lost on the way
        i = messages.index(starts[2])
        parts = messages[i : messages.index(starts[3])]
        assert len(parts) >= 3
        assert [m.reply_markup is not None for m in parts] == [False] * (len(parts) - 1) + [True]
        joined = " ".join(m.text for m in parts)
        for row in rows:
            words = math_alphanumerics(row["abstract"]).split()
            assert words[0] in joined and words[-1] in joined
        assert joined.count("🚀🧪") == 1
        assert sum(c > "\uffff" for c in joined) > 100  # plenty of non-BMP characters
        # every part but the last ends where one of the summary's paragraphs ends
        ends = [q.strip()[-40:] for q in long_summary.split("\n\n")]
        assert all(any(m.text.endswith(e) for e in ends) for m in parts[:-1])
        # each part is its own valid HTML (the fake parses strictly): quotes reopen per part
        assert all(any(e["type"] == "expandable_blockquote" for e in m.entities) for m in parts[1:])
        assert fake.duplicate_texts(PRIVATE) == {}


# -- rate limits and failures --------------------------------------------------------------------
async def test_a_429_storm_is_waited_out_and_nothing_repeats(
    tg_config: Callable[..., Config], fake: FakeTelegram
) -> None:
    async with running(tg_config(), fake) as bot:
        sub = subscribe(bot.store, PRIVATE)
        digest = todays_digest(bot.engine, sub)
        fake.fail_next(3, status=429, retry_after=1)
        t0 = asyncio.get_running_loop().time()
        report = await bot.deliver(digest)
        assert asyncio.get_running_loop().time() - t0 >= 3  # retry_after honoured each time
        assert report.complete and report.sent == 4
        assert fake.rejected_429 == 3
        assert_sent_once(fake, PRIVATE, digest)


def storm_on_second_item(bot: Bot, monkeypatch: pytest.MonkeyPatch, fails: int) -> list[int]:
    """``fails`` 429s (retry after 1 s) meet the send of the digest's second paper; the
    returned list counts the adapter's send_item calls."""
    real_send_item = bot.adapter.send_item
    calls = [0]

    async def storm_before_second_item(*args: Any) -> Any:
        calls[0] += 1
        if calls[0] == 2:
            bot.fake.fail_next(fails, status=429, retry_after=1)
        return await real_send_item(*args)

    monkeypatch.setattr(bot.adapter, "send_item", storm_before_second_item)
    return calls


async def test_a_storm_past_the_clients_retries_is_waited_out_in_the_same_delivery(
    tg_config: Callable[..., Config], fake: FakeTelegram, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with running(tg_config(), fake, limiter=fast_limiter(max_retries=1)) as bot:
        sub = subscribe(bot.store, PRIVATE)
        assert sub.id is not None
        digest = todays_digest(bot.engine, sub)
        # PTB's one retry meets the second 429: the core waits it out
        calls = storm_on_second_item(bot, monkeypatch, fails=2)
        report = await bot.deliver(digest)
        assert report.complete and report.sent == 4 and report.failed is None
        assert calls == [4]  # the second paper was asked for twice
        assert_sent_once(fake, PRIVATE, digest)
        states = [r.state for r in bot.store.deliveries(sub.id, digest.day)]
        assert states == ["sent"] * 4


async def test_a_storm_beyond_the_waits_pauses_and_resumes_without_loss(
    tg_config: Callable[..., Config], fake: FakeTelegram, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(delivery, "MAX_WAITS", 1)
    async with running(tg_config(), fake, limiter=fast_limiter(max_retries=1)) as bot:
        sub = subscribe(bot.store, PRIVATE)
        assert sub.id is not None
        digest = todays_digest(bot.engine, sub)
        real_send_item = bot.adapter.send_item
        # two sends of two attempts each: past the one wait allowed
        storm_on_second_item(bot, monkeypatch, fails=4)
        report = await bot.deliver(digest)
        assert not report.complete and not report.deactivated
        assert report.failed and "flood limit" in report.failed
        assert report.sent == 2  # header and the first paper
        states = [r.state for r in bot.store.deliveries(sub.id, digest.day)]
        assert states == ["sent", "sent", "pending", "pending"]
        after = bot.store.get_subscription("telegram", str(PRIVATE))
        assert after is not None and after.active

        monkeypatch.setattr(bot.adapter, "send_item", real_send_item)
        again = bot.engine.digests([sub], digest.day)[0]
        report = await bot.deliver(again)
        assert report.complete and report.sent == 2 and report.already == 2
        assert_sent_once(fake, PRIVATE, digest)
        header = fake.messages(PRIVATE)[0]
        assert all(m.reply_to == header.message_id for m in fake.messages(PRIVATE)[1:])


async def test_a_retry_after_a_429_returns_telegrams_answer_even_on_a_busy_loop(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A slot the loop was too busy to use is given back -- but a retry after a 429 was
    already paced by retry_after, and its answer must come back (it once came back as None
    when the loop was busy: a TypeError in the middle of a fan-out)."""
    limiter = build_rate_limiter(10_000, group_per_minute=0, max_retries=2)
    await limiter.initialize()
    loop = asyncio.get_running_loop()
    real_time = loop.time
    busy = False
    skew = 0.0

    def clock() -> float:  # once busy, every look at the clock finds a second gone
        nonlocal skew
        if busy:
            skew += 1.0
        return real_time() + skew

    monkeypatch.setattr(loop, "time", clock)
    calls = 0

    async def send_message(*args: Any, **kwargs: Any) -> dict[str, int]:
        nonlocal calls, busy
        calls += 1
        if calls == 1:
            busy = True
            raise RetryAfter(dt.timedelta(milliseconds=1))
        return {"message_id": 7}

    try:
        answer = await limiter.process_request(
            send_message, (), {}, "sendMessage", {"chat_id": 1}, None
        )
    finally:
        busy = False
        await limiter.shutdown()
    assert answer == {"message_id": 7} and calls == 2


def test_ptb_rate_limit_give_up_is_one_log_line(caplog: pytest.LogCaptureFixture) -> None:
    logger = logging.getLogger("telegram.ext.AIORateLimiter")
    with caplog.at_level(logging.INFO, logger="telegram.ext.AIORateLimiter"):
        try:
            raise RetryAfter(dt.timedelta(seconds=1))
        except RetryAfter:
            logger.exception("Rate limit hit after maximum of %d retries", 3)
    (record,) = [r for r in caplog.records if r.name == "telegram.ext.AIORateLimiter"]
    assert record.exc_info is None and "Traceback" not in caplog.text
    assert "Rate limit hit after maximum of 3 retries" in caplog.text


async def test_a_server_error_half_way_loses_nothing_and_sends_nothing_twice(
    tg_config: Callable[..., Config], fake: FakeTelegram, monkeypatch: pytest.MonkeyPatch
) -> None:
    cfg = tg_config()
    async with running(cfg, fake) as bot:
        sub = subscribe(bot.store, PRIVATE)
        digest = todays_digest(bot.engine, sub)
        # the third paper is long: its second part fails, so its first part is taken back
        digest.items[2].summary = " ".join(f"Finding {i} holds up." for i in range(1, 800))
        digest.items[2].summary_status = SummaryStatus.OK
        real_post = bot.adapter._post
        posts = 0

        async def fail_fifth_post(*args: Any, **kwargs: Any) -> Any:
            nonlocal posts
            posts += 1
            if posts == 5:
                fake.fail_next(1, status=500, method="sendMessage")
            return await real_post(*args, **kwargs)

        monkeypatch.setattr(bot.adapter, "_post", fail_fifth_post)
        report = await bot.deliver(digest)
        assert report.failed and not report.deactivated and report.sent == 3
        shown = fake.sent_texts(PRIVATE)
        assert len(shown) == 3  # the half-sent paper's first part was deleted again
        assert len(fake.messages(PRIVATE, include_deleted=True)) == 4

        monkeypatch.setattr(bot.adapter, "_post", real_post)
        report = await bot.deliver(digest)
        assert report.complete and report.sent == 1
        shown = fake.sent_texts(PRIVATE)
        title = " ".join(digest.items[2].paper.title.split())
        assert sum(t.startswith(title) for t in shown) == 1
        parts = render_card(card_for(digest.items[2], top_n=cfg.summaries.top_n))
        assert len(parts) >= 3
        assert len(shown) == 3 + len(parts)  # header, two papers, then the long one in parts
        assert len(set(shown)) == len(shown)


@pytest.mark.parametrize("accepted", [False, True], ids=["not-sent", "sent-then-crash"])
@pytest.mark.parametrize("row", [0, 1, 3], ids=["header", "first-paper", "last-paper"])
async def test_a_row_left_in_flight_by_a_crash_is_found_or_sent_once(
    tg_config: Callable[..., Config],
    fake: FakeTelegram,
    monkeypatch: pytest.MonkeyPatch,
    accepted: bool,
    row: int,
) -> None:
    """The process dies while a message is in flight, either before Telegram took it or after
    (the ledger still says "sending").  On restart the message is looked for through
    editMessageReplyMarkup with its own keyboard: found, it is not sent again; not found, it
    is sent once.  Someone's chatter and a command's answer in between change nothing."""
    async with running(tg_config(), fake) as bot:
        sub = subscribe(bot.store, PRIVATE)
        assert sub.id is not None
        bot.push(PRIVATE, PRIVATE, "/status")  # an answer the ledger does not know about
        await fake.wait_for_async(lambda: fake.sent_texts(PRIVATE))
        await fake.wait_for_async(lambda: bot.store.last_message_id("telegram", str(PRIVATE)))
        digest = todays_digest(bot.engine, sub)
        sends = 0
        real_post = bot.adapter._post

        async def die_on_the_row(*args: Any, **kwargs: Any) -> Any:
            nonlocal sends
            sends += 1
            if sends == row + 1:
                if accepted:
                    await real_post(*args, **kwargs)  # Telegram took it; its answer is lost
                raise asyncio.CancelledError  # the process is stopped mid-call
            return await real_post(*args, **kwargs)

        monkeypatch.setattr(bot.adapter, "_post", die_on_the_row)
        with pytest.raises(asyncio.CancelledError):
            await bot.deliver(digest)
        monkeypatch.setattr(bot.adapter, "_post", real_post)
        states = [r.state for r in bot.store.deliveries(sub.id, digest.day)]
        assert states[row] == "sending"
        fake.push_message(PRIVATE, PRIVATE, "meanwhile, someone types")  # a message in the way
        report = await bot.deliver(digest)
        assert report.complete
        assert report.reconciled == (1 if accepted else 0)
        assert_sent_once(fake, PRIVATE, digest)
        headers = [m for m in fake.messages(PRIVATE) if m.text.startswith("arXiv digest")]
        assert len(headers) == 1
        assert [r.state for r in bot.store.deliveries(sub.id, digest.day)] == ["sent"] * 4
        # every paper is a reply to the one header, and no message lost its buttons
        for m in item_messages(fake, PRIVATE):
            assert m.reply_to == headers[0].message_id
        (answer,) = [m for m in fake.messages(PRIVATE) if m.text.startswith("Categories:")]
        assert answer.reply_markup is None  # the /status answer was not given buttons


async def test_a_blocked_or_deleted_chat_is_deactivated_not_retried(
    tg_config: Callable[..., Config], fake: FakeTelegram, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with running(tg_config(), fake) as bot:
        blocked = subscribe(bot.store, PRIVATE)
        fake.block(PRIVATE)
        report = await bot.deliver(todays_digest(bot.engine, blocked))
        assert report.deactivated and report.failed
        assert "bot was blocked by the user" in report.failed
        assert len(fake.calls_to("/sendMessage")) == 1  # no retry of a 403
        after = bot.store.get_subscription("telegram", str(PRIVATE))
        assert after is not None and not after.active
        assert "bot was blocked by the user" in (after.deactivated_reason or "")
        assert after not in bot.store.list_subscriptions()

        gone = subscribe(bot.store, 424242)  # a chat Telegram does not know (deleted)
        report = await bot.deliver(todays_digest(bot.engine, gone))
        assert report.deactivated and "chat not found" in (report.failed or "").lower()

        # blocked in the middle of a digest: what was sent stays, the rest is never tried
        mid = subscribe(bot.store, OTHER_PRIVATE)
        digest = todays_digest(bot.engine, mid)
        real_send_item = bot.adapter.send_item

        async def block_before_second(d: Digest, card: Card, thread: Any) -> Any:
            if card.paper_id == digest.items[1].paper.id:
                fake.block(OTHER_PRIVATE)
            return await real_send_item(d, card, thread)

        monkeypatch.setattr(bot.adapter, "send_item", block_before_second)
        report = await bot.deliver(digest)
        assert report.deactivated and report.sent == 2
        assert len(fake.sent_texts(OTHER_PRIVATE)) == 2
        after = bot.store.get_subscription("telegram", str(OTHER_PRIVATE))
        assert after is not None and not after.active


async def test_a_group_upgraded_to_a_supergroup_keeps_its_digest(
    tg_config: Callable[..., Config], fake: FakeTelegram
) -> None:
    fake.add_chat(-555, "group", "Old group", admins=[ADMIN])
    fake.migrate(-555, -100555)
    fake.add_chat(-777, "group", "Another group", admins=[ADMIN])
    async with running(tg_config(), fake) as bot:
        # found out while sending: Telegram answers "migrated", the digest follows the chat
        sub = subscribe(bot.store, -555)
        assert sub.id is not None
        report = await bot.deliver(todays_digest(bot.engine, sub))
        assert report.complete and report.sent == 4
        assert len(fake.sent_texts(-100555)) == 4
        header = fake.messages(-100555)[0]
        assert all(m.reply_to == header.message_id for m in fake.messages(-100555)[1:])
        moved = bot.store.subscription_by_id(sub.id)
        assert moved is not None and moved.chat == "-100555"

        # told by Telegram's service message: the subscription (and its ratings) move at once
        other = subscribe(bot.store, -777)
        assert other.id is not None
        fake.migrate(-777, -100777)
        fake.push_update(
            {
                "message": {
                    "message_id": 99,
                    "date": 1769000000,
                    "chat": {"id": -777, "type": "group", "title": "Another group"},
                    "from": {"id": ADMIN, "is_bot": False, "first_name": "Ada"},
                    "migrate_to_chat_id": -100777,
                }
            }
        )
        await fake.wait_for_async(
            lambda: (s := bot.store.subscription_by_id(other.id)) and s.chat == "-100777"
        )
        assert bot.store.get_subscription("telegram", "-777") is None
        sub = bot.store.get_subscription("telegram", "-100777")
        assert sub is not None
        report = await bot.deliver(todays_digest(bot.engine, sub))
        assert report.complete and report.sent == 4
        assert len(fake.sent_texts(-100777)) == 4 and not fake.sent_texts(-777)


async def test_a_note_is_a_plain_message(
    tg_config: Callable[..., Config], fake: FakeTelegram
) -> None:
    async with running(tg_config(), fake) as bot:
        sub = subscribe(bot.store, GROUP)
        await bot.adapter.send_note(sub, "No new papers matched on <Thu> & that's fine.")
        (msg,) = fake.messages(GROUP)
        assert msg.text == "No new papers matched on <Thu> & that's fine."
        assert msg.reply_markup is None and msg.link_preview_options == {"is_disabled": True}
        assert fake.calls_to("/editMessageReplyMarkup") == []


async def test_pacing_keeps_one_message_a_second_per_chat(
    tg_config: Callable[..., Config], fake: FakeTelegram
) -> None:
    fake.enforce_rate_limits = True  # the fake answers 429 past 30/s overall or 1/s per chat
    cfg = tg_config(**{"telegram.per_chat_interval_s": 1.0})
    async with running(cfg, fake, limiter=build_rate_limiter(28)) as bot:
        digests = [
            todays_digest(bot.engine, subscribe(bot.store, chat))
            for chat in (PRIVATE, OTHER_PRIVATE)
        ]
        reports = await asyncio.gather(*(bot.deliver(d) for d in digests))
        assert all(r.complete and r.sent == 4 for r in reports)
        assert fake.rejected_429 == 0
        for chat in (PRIVATE, OTHER_PRIVATE):
            at = [s.at for s in fake.sends(chat)]
            assert len(at) == 4
            assert all(b - a >= 1.0 for a, b in itertools.pairwise(at))
        # The two chats were served side by side, not one after the other: each chat's
        # pause let the other's next message through.
        order = [s.chat_id for s in sorted(fake.sends(), key=lambda s: s.at)]
        assert order.index(OTHER_PRIVATE) < order.index(PRIVATE, 1)
        assert order.index(PRIVATE) < order.index(OTHER_PRIVATE, order.index(OTHER_PRIVATE) + 1)


# -- webhook mode -------------------------------------------------------------------------------
WEBHOOK_SECRET = "herald-test_secret-0123456789"


@contextlib.asynccontextmanager
async def serving(routes: list[web.RouteDef]) -> AsyncIterator[str]:
    app = web.Application()
    app.add_routes(routes)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        await runner.cleanup()


async def test_webhook_checks_the_secret_and_registers_it(
    tg_config: Callable[..., Config], fake: FakeTelegram, monkeypatch: pytest.MonkeyPatch
) -> None:
    public = "https://herald.example.org/telegram/webhook"
    cfg = tg_config(**{"telegram.mode": "webhook", "telegram.webhook_url": public})
    engine = Engine(cfg)
    core = build(cfg, engine, adapters={}).core
    try:
        with pytest.raises(ConfigError, match="TELEGRAM_WEBHOOK_SECRET"):
            TelegramAdapter(cfg, core)
        monkeypatch.setenv("TELEGRAM_WEBHOOK_SECRET", WEBHOOK_SECRET)
        async with running(cfg, fake, engine=engine) as bot:
            (route,) = bot.adapter.web_routes()
            assert route.method == "POST" and route.path == "/telegram/webhook"
            hook = fake.webhook
            assert hook is not None
            assert hook["url"] == public and hook["secret_token"] == WEBHOOK_SECRET
            assert hook["allowed_updates"] == ["callback_query", "message"]
            async with serving(bot.adapter.web_routes()) as base:
                url = base + "/telegram/webhook"
                update = {
                    "update_id": 9001,
                    "message": {
                        "message_id": 77,
                        "date": 1769000000,
                        "chat": {"id": PRIVATE, "type": "private", "first_name": "Alice"},
                        "from": {"id": PRIVATE, "is_bot": False, "first_name": "Alice"},
                        "text": "/help",
                        "entities": [{"type": "bot_command", "offset": 0, "length": 5}],
                    },
                }
                # The adapter queues an update before it answers, so a 403 means "not queued".
                assert await fake.apost_update_raw(url, update, secret="wrong") == 403
                assert await fake.apost_update_raw(url, update, secret=None) == 403
                assert await fake.apost_update_raw(url, update, secret=WEBHOOK_SECRET[:-1]) == 403
                bad = await fake.apost_update_raw(url, {"no": "update"}, secret=WEBHOOK_SECRET)
                assert bad == 400
                assert await fake.apost_update_raw(url, update, secret=WEBHOOK_SECRET) == 200
                await fake.wait_for_async(lambda: fake.sent_texts(PRIVATE))
                # Every queued update handled to the end: the same /help sent four times was
                # answered exactly once, so the refused ones were never handled.
                await bot.idle()
                (answer,) = fake.sent_texts(PRIVATE)
                assert "/subscribe cs.LG cs.CL" in answer

                # and the real thing: Telegram delivers a user's message to the webhook
                fake.webhook_redirect = url
                await bot.say(PRIVATE, PRIVATE, "/subscribe cs.CL")
                sub = bot.store.get_subscription("telegram", str(PRIVATE))
                assert sub is not None and sub.active
                assert fake.webhook_deliveries
                assert all(d.secret_sent and d.status == 200 for d in fake.webhook_deliveries)
            assert not fake.calls_to("/getUpdates")  # no polling in webhook mode
    finally:
        core.close()
        engine.store.close()


# -- secrets -------------------------------------------------------------------------------------
async def test_the_token_never_reaches_the_logs(
    tg_config: Callable[..., Config], fake: FakeTelegram, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    async with running(tg_config(), fake) as bot:
        await bot.reply(PRIVATE, PRIVATE, "/subscribe cs.LG")
        fake.fail_next(1, status=429, retry_after=1)
        working, *_ = await bot.say(PRIVATE, PRIVATE, "/digest", expect=5)
        assert (await bot.edited(working)).text.startswith("Posted today's digest")
        fake.block(OTHER_PRIVATE)
        sub = subscribe(bot.store, OTHER_PRIVATE)
        report = await bot.deliver(todays_digest(bot.engine, sub))
        assert report.deactivated
    assert caplog.records, "the run should have logged something"
    secret_part = fake.token.split(":", 1)[1]
    assert secret_part not in caplog.text
    assert all(secret_part not in str(r.args) for r in caplog.records)


# -- library files (issue 13): documents reach the core's import ---------------------------------
LIBRARY = corpus.TEST_DATA / "library"


async def _document_answer(
    bot: Bot, chat: int, user: int, name: str, data: bytes, **kw: Any
) -> Any:
    """Send a file; return the bot's one answer once it is final ("importing…" edited)."""
    before = len(bot.fake.messages(chat))
    uid = bot.fake.push_document(chat, user, name, data, **kw)
    assert uid is not None
    (msg,) = await bot.fake.wait_for_async(lambda: bot.fake.messages(chat)[before:])
    if posted(msg).startswith("⏳"):
        msg = await bot.edited(msg, timeout=20)
    return msg


async def test_a_library_file_sent_to_the_bot_is_imported(
    tg_config: Callable[..., Config], fake: FakeTelegram
) -> None:
    data = (LIBRARY / "zotero_export.bib").read_bytes()
    async with running(tg_config(), fake) as bot:
        # Not subscribed: a private chat still gets an answer.
        msg = await _document_answer(bot, PRIVATE, PRIVATE, "zotero_export.bib", data)
        assert "This chat is not subscribed yet" in msg.text
        await bot.reply(PRIVATE, PRIVATE, "/subscribe cs.LG")
        msg = await _document_answer(bot, PRIVATE, PRIVATE, "zotero_export.bib", data)
        assert posted(msg) == "⏳ Importing zotero_export.bib …"
        assert msg.text.startswith("Imported 9 of 15 entries from zotero_export.bib (BibTeX)")
        assert fake.calls_to("/getFile") and fake.file_downloads  # getFile, then the file route
        sub = bot.store.get_subscription("telegram", str(PRIVATE))
        assert sub is not None and sub.id is not None
        rows = bot.store.ratings(sub.id)
        assert len(rows) == 9 and {(r.user, r.source) for r in rows} == {(str(PRIVATE), "import")}
        # Anything else sent in a private chat gets a clear answer, without a download.
        downloads = len(fake.file_downloads)
        msg = await _document_answer(bot, PRIVATE, PRIVATE, "paper.pdf", b"%PDF-1.7")
        assert "it is not a library file" in msg.text
        msg = await _document_answer(
            bot, PRIVATE, PRIVATE, "huge.bib", b"@misc{", file_size=30_000_000
        )
        assert "is 30.0 MB; a library import takes at most 2 MB" in msg.text
        assert len(fake.file_downloads) == downloads
        msg = await _document_answer(bot, PRIVATE, PRIVATE, "lib.bib", b"\x00\x01binary")
        assert "is a binary file" in msg.text


async def test_files_in_a_group_are_picked_up_only_when_they_are_libraries(
    tg_config: Callable[..., Config], fake: FakeTelegram
) -> None:
    data = (LIBRARY / "zotero_export.ris").read_bytes()
    async with running(tg_config(), fake) as bot:
        # An unsubscribed group: its files are its own business.
        bot.fake.push_document(GROUP, MEMBER, "zotero_export.ris", data)
        await bot.idle()
        assert fake.messages(GROUP) == []
        await bot.reply(GROUP, ADMIN, "/subscribe cs.LG")
        before = len(fake.messages(GROUP))
        bot.fake.push_document(GROUP, MEMBER, "holiday.jpg", b"\xff\xd8\xff")
        await bot.idle()
        assert len(fake.messages(GROUP)) == before
        # A member's library: imported as their 👍, answered under their message.
        msg = await _document_answer(bot, GROUP, MEMBER, "zotero_export.ris", data)
        assert msg.text.startswith("Imported 9 of 15 entries from zotero_export.ris (RIS)")
        assert msg.reply_to is not None
        sub = bot.store.get_subscription("telegram", str(GROUP))
        assert sub is not None and sub.id is not None
        assert {r.user for r in bot.store.ratings(sub.id)} == {str(MEMBER)}


async def test_a_file_telegram_will_not_hand_over(
    tg_config: Callable[..., Config], fake: FakeTelegram
) -> None:
    async with running(tg_config(), fake) as bot:
        await bot.reply(PRIVATE, PRIVATE, "/subscribe cs.LG")
        fake.fail_next(1, status=400, method="getFile", description="Bad Request: file is too big")
        msg = await _document_answer(
            bot, PRIVATE, PRIVATE, "lib.bib", (LIBRARY / "zotero_export.bib").read_bytes()
        )
        assert msg.text == "I could not download lib.bib; please send it again in a moment."


# -- questions about a paper (bot.ask) -----------------------------------------------------------
ASK_WORKING = "⏳ Reading the paper for your question …"


async def ask_reply(bot: Bot, chat: int, user: int, text: str, to: int) -> StoredMessage:
    """``user`` replies ``text`` to message ``to``; the bot's "working…" message, once the
    answer is edited into it."""
    before = len(bot.fake.messages(chat))
    uid = bot.fake.push_message(chat, user, text, reply_to_message_id=to)
    assert uid is not None, "the fake did not deliver the reply"
    asked = bot.fake.pushed_updates[uid]["message"]["message_id"]
    (working,) = await bot.fake.wait_for_async(
        lambda: [m for m in bot.fake.messages(chat)[before:] if m.from_bot]
    )
    assert posted(working) == ASK_WORKING and working.reply_to == asked
    return await bot.edited(working)


def question_about(bot: Bot, paper_id: str) -> str:
    paper = bot.store.get_paper(paper_id)
    assert paper is not None
    words = sorted(paper.title.replace(":", " ").split(), key=len, reverse=True)[:3]
    return f"What does it say about {' '.join(words)}?"


async def test_a_reply_to_a_paper_is_a_question_answered_from_its_full_text(
    tg_config: Callable[..., Config],
    fake: FakeTelegram,
    fake_openai: FakeOpenAI,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv(LLM_KEY_ENV, fake_openai.api_key)
    cfg = tg_config(openai=fake_openai)
    async with running(cfg, fake) as bot:
        sub = subscribe(bot.store, GROUP)
        report = await bot.deliver(todays_digest(bot.engine, sub))
        assert report.sent == 4
        header, first, *_ = fake.messages(GROUP)
        paper_id = bot.store.deliveries(sub.id, bot.engine.latest_day())[1].paper_id

        # A member replies to a paper's message: "working…", then the answer edited in.
        answer = await ask_reply(
            bot, GROUP, MEMBER, question_about(bot, paper_id), first.message_id
        )
        assert answer.text.startswith("❓ What does it say about")
        assert "The paper says" in answer.text and "(p. " in answer.text
        assert re.search(r"\nSources:\n• p\. \d+: “", answer.text)

        # A reply to the answer is a follow-up that carries the first turn.
        follow = await ask_reply(bot, GROUP, ADMIN, "And how is it evaluated?", answer.message_id)
        assert "Following up on" in follow.text
        assert [m["role"] for m in fake_openai.prompts[-1]["messages"]] == [
            "system",
            "user",
            "assistant",
            "user",
        ]

        # A reply to the header names no paper: asked how to name it; chatter: no answer.
        which = await ask_reply(bot, GROUP, MEMBER, "what is new here?", header.message_id)
        assert which.text.startswith("Which paper is your question about?")
        await bot.silent_reply(GROUP, MEMBER, "thanks!", header.message_id)
    assert fake_openai.requests == 2


async def test_ask_command_then_a_reply_to_its_answer(
    tg_config: Callable[..., Config],
    fake: FakeTelegram,
    fake_openai: FakeOpenAI,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv(LLM_KEY_ENV, fake_openai.api_key)
    cfg = tg_config(openai=fake_openai)
    async with running(cfg, fake) as bot:
        paper_id = "2601.19278"
        (working,) = await bot.say(
            PRIVATE, PRIVATE, f"/ask https://arxiv.org/abs/{paper_id} what speedup over EAGLE3?"
        )
        assert posted(working) == ASK_WORKING
        answer = await bot.edited(working)
        assert "2.03x--3.44x" in answer.text and "\nSources:\n• p. " in answer.text
        follow = await ask_reply(
            bot, PRIVATE, PRIVATE, "how is drafting latency reduced?", answer.message_id
        )
        assert 'Following up on "what speedup over EAGLE3?"' in follow.text
        # Bad input: a clear message edited in, no LLM call.
        (working,) = await bot.say(PRIVATE, PRIVATE, f"/ask {paper_id} " + "why " * 200)
        refused = await bot.edited(working)
        assert refused.text.startswith("That question is 799 characters long")
        # A /summarize card (no buttons: this chat is not subscribed) takes questions too.
        card = await bot.edited((await bot.say(PRIVATE, PRIVATE, f"/summarize {paper_id}"))[0])
        assert card.reply_markup is None
        on_card = await ask_reply(
            bot, PRIVATE, PRIVATE, "where is the code released?", card.message_id
        )
        assert on_card.text.startswith("❓ where is the code released?\n📄 DART")
    assert fake_openai.requests == 4  # two answers, one summary, one answer on the card
