"""Telegram adapter (python-telegram-bot): commands, digests with 👍/👎 buttons, polling or webhook.

A thin translator behind :class:`bot.platform.Adapter`: updates become plain ``Command``
values and button presses for :class:`bot.core.Core`; its replies and cards go out as HTML
built by :mod:`adapters.telegram.render`.  The core's delivery drives
:meth:`TelegramAdapter.send_header` and :meth:`TelegramAdapter.send_item`.

Flood limits (https://core.telegram.org/bots/faq#my-bot-is-hitting-limits-how-do-i-avoid-this):
about 30 messages a second overall, one a second per chat, 20 a minute per group.  PTB's
``AIORateLimiter`` paces the overall and group limits and retries 429s after their
``retry_after``; it has no per-private-chat limit, so a :class:`bot.pacing.Pacer` adds one.
"""

from __future__ import annotations

import os

# Opt in to PTB 22's timedelta ``RetryAfter.retry_after`` before telegram is imported anywhere
# through us; without it every 429 logs a deprecation warning.
os.environ.setdefault("PTB_TIMEDELTA", "true")

import asyncio
import contextlib
import dataclasses
import datetime as dt
import hmac
import html
import logging
import re
import warnings
from collections.abc import Callable, Coroutine, Iterator
from typing import Any
from urllib.parse import urlsplit

from aiohttp import web
from telegram import (
    BotCommand,
    InlineKeyboardMarkup,
    Message,
    Update,
)
from telegram.constants import ChatMemberStatus, ParseMode
from telegram.error import (
    BadRequest,
    ChatMigrated,
    Conflict,
    Forbidden,
    InvalidToken,
    NetworkError,
    RetryAfter,
    TelegramError,
    TimedOut,
)
from telegram.ext import (
    AIORateLimiter,
    Application,
    BaseRateLimiter,
    CallbackQueryHandler,
    CommandHandler,
    ContextTypes,
    MessageHandler,
    filters,
)
from telegram.request import HTTPXRequest
from telegram.warnings import PTBUserWarning

from adapters.telegram import PLATFORM, TelegramSection
from adapters.telegram.http import AiohttpRequest
from adapters.telegram.render import (
    GROUP_TYPES,
    Markup,
    addressed_to,
    chat_address,
    command_from_message,
    compact_keyboard,
    compact_sizes,
    decode_rating,
    escape,
    header_keyboard,
    is_settings_press,
    keyboard,
    message_address,
    parse_chat,
    rated_papers,
    relabel,
    render_card,
    render_compact,
    render_header,
    render_text,
)
from bot.cards import CompactDigest
from bot.commands import make_command
from bot.config import Config, secret
from bot.core import Core
from bot.errors import ConfigError, DeliveryError, HeraldError
from bot.library import MAX_BYTES as LIBRARY_MAX_BYTES
from bot.models import Button, Card, Command, Digest, Subscription
from bot.pacing import KeyedLocks, Pacer
from bot.platform import Pace, Sent

log = logging.getLogger(__name__)

# Sends and edits go through Bot.do_api_request with the Bot API's JSON (TelegramAdapter._api),
# which PTB would remind us about on every call.
warnings.filterwarnings(
    "ignore",
    message=r"Please use 'Bot\.\w+' instead of 'Bot\.do_api_request",
    category=PTBUserWarning,
)

#: How far past the newest known message a crash's unsure message is looked for.
MAX_PROBES = 30
MAX_PROBE_MISSES = 2  # consecutive ids with no message: the end of the chat
ALLOWED_UPDATES = ("message", "callback_query")
WEBHOOK_PATH = "/telegram/webhook"
SECRET_HEADER = "X-Telegram-Bot-Api-Secret-Token"
ADMIN_CACHE_S = 60.0
MAX_ANSWER_CHARS = 200  # answerCallbackQuery's text limit

#: The methods Telegram's flood limits count; only these go through the rate limiter's buckets.
PACED_METHODS = frozenset({"sendMessage", "editMessageText", "editMessageReplyMarkup"})
OVERALL_BUCKET = 1.25  # messages; see build_rate_limiter
BURST_S = 0.01  # at high rates the bucket holds this long's worth of messages
#: A rate-limiter slot not used within this long is given back, at most this many times.
STALE_SLOT_S = 0.05
MAX_STALE_SLOTS = 3
#: BadRequest descriptions that mean the chat (or its forum topic) is gone for good (lower
#: case, PTB capitalizes): a closed or deleted topic is like a chat that blocked the bot.
_GONE = (
    "chat not found",
    "not enough rights",
    "have no rights",
    "chat_write_forbidden",
    "topic_closed",
    "topic_deleted",
    "message thread not found",
)
_TOPIC_GONE = {
    "topic_closed": "its forum topic was closed",
    "topic_deleted": "its forum topic was deleted",
    "message thread not found": "its forum topic was deleted",
}
GROUP_INTERVAL_S = 3.0  # Telegram: 20 messages a minute per group
_SECRET_RE = re.compile(r"^[A-Za-z0-9_-]{1,256}$")
#: getFile hands out files up to 20 MB; a library import stays well below it.
GETFILE_LIMIT = 20_000_000
if LIBRARY_MAX_BYTES > GETFILE_LIMIT:  # pragma: no cover - a configuration slip
    raise RuntimeError("library imports larger than Telegram's getFile limit cannot work")
_NO_PREVIEW = {"is_disabled": True}


# -- rate limiting ---------------------------------------------------------------------------
class MessageRateLimiter(AIORateLimiter):
    """``AIORateLimiter`` applied to message sends and edits only, with slots used on time.

    Reads such as getChatMember carry a ``chat_id`` too; counting them against a group's 20
    messages a minute would only delay replies.  They still get the 429 retries.

    A slot is granted by the event loop's clock, but the request only reaches Telegram when
    the loop gets round to it.  When the loop is busy (thousands of deliveries starting at
    09:00, each doing its ledger writes), requests granted a few slots apart would leave in one
    burst and earn a 429 — which halts every request.  So a slot that could not be used
    promptly is given back and the request queues again (a few times at most).
    """

    async def process_request(
        self,
        callback: Callable[..., Coroutine[Any, Any, Any]],
        args: Any,
        kwargs: dict[str, Any],
        endpoint: str,
        data: dict[str, Any],
        rate_limit_args: int | None,
    ) -> Any:
        if endpoint not in PACED_METHODS:
            data = {k: v for k, v in data.items() if k != "chat_id"}
            return await super().process_request(
                callback, args, kwargs, endpoint, data, rate_limit_args
            )
        loop = asyncio.get_running_loop()
        for _ in range(MAX_STALE_SLOTS):
            used = False

            async def on_time(*a: Any, **k: Any) -> Any:
                nonlocal used
                if not used:  # a retry after a 429 was paced by retry_after: it always goes
                    granted = loop.time()
                    await asyncio.sleep(0)  # resumes only after whatever else the loop does
                    if loop.time() - granted > STALE_SLOT_S:
                        return None
                    used = True
                return await callback(*a, **k)

            result = await super().process_request(
                on_time, args, kwargs, endpoint, data, rate_limit_args
            )
            if used:
                return result
        return await super().process_request(
            callback, args, kwargs, endpoint, data, rate_limit_args
        )


class _OneLine(logging.Filter):
    """PTB logs "Rate limit hit after maximum of N retries" with the 429's traceback; the
    delivery reports the same in one line (it pauses and resumes), so keep PTB's line and
    drop the traceback."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.exc_info = None
        record.exc_text = None
        return True


_RATE_LOG = logging.getLogger("telegram.ext.AIORateLimiter")
if not any(isinstance(f, _OneLine) for f in _RATE_LOG.filters):
    _RATE_LOG.addFilter(_OneLine())


def build_rate_limiter(
    global_rate: float, *, group_per_minute: float = 20.0, max_retries: int = 3
) -> AIORateLimiter:
    """PTB's limiter with retries on, pacing ``global_rate`` msg/s and ``group_per_minute``.

    Telegram counts in sliding windows.  aiolimiter's default bucket holds ``max_rate``
    messages: it lets that many through at once and then keeps leaking at ``max_rate``, so one
    second can see nearly twice the cap — Telegram answers 429, and PTB then halts every
    request for ``retry_after``.  Here the overall bucket holds 1¼ messages (the quarter
    absorbs timer jitter, so the configured rate is really reached) and the group bucket one:
    the same long-run rates, no bursts.

    At paid-broadcast rates a bucket of 1¼ would let one request through per turn of the event
    loop (aiolimiter wakes a waiter with a timer), far below 1,000 a second; there the bucket
    holds :data:`BURST_S` worth of messages instead (the core's fan-out already spaces them).
    """
    bucket = max(OVERALL_BUCKET, global_rate * BURST_S)
    return MessageRateLimiter(
        overall_max_rate=bucket,
        overall_time_period=bucket / global_rate,
        group_max_rate=1 if group_per_minute else 0,
        group_time_period=60.0 / group_per_minute if group_per_minute else 0,
        max_retries=max_retries,
    )


# -- errors ----------------------------------------------------------------------------------
def delivery_error(exc: TelegramError, chat_id: int | str) -> DeliveryError:
    """Telegram's refusal as a DeliveryError; ``permanent`` when the chat is gone for good."""
    text = exc.message if hasattr(exc, "message") else str(exc)
    where = f"Telegram chat {chat_id}"
    if isinstance(exc, Forbidden):
        return DeliveryError(f"{where}: {text}", permanent=True)
    if isinstance(exc, BadRequest):
        lower = text.lower()
        permanent = any(g in lower for g in _GONE)
        for code, meaning in _TOPIC_GONE.items():
            if code in lower:
                text = f"{meaning} ({text})"
        return DeliveryError(f"{where}: {text}", permanent=permanent)
    if isinstance(exc, RetryAfter):
        after = exc.retry_after
        seconds = after.total_seconds() if isinstance(after, dt.timedelta) else after
        return DeliveryError(
            f"{where}: flood limit still hit after retries (retry after {seconds:g} s)",
            retry_after=seconds,
        )
    if isinstance(exc, InvalidToken):
        return DeliveryError("Telegram no longer accepts the bot token")
    if isinstance(exc, TimedOut):
        # Ambiguous: Telegram may have posted it before the answer was lost.  The ledger
        # treats any DeliveryError as "not posted" and resends later; like a crash right after
        # Telegram's answer, this is a window for a duplicate that no API call can close.
        return DeliveryError(f"{where}: Telegram did not answer in time")
    if isinstance(exc, NetworkError):
        return DeliveryError(f"{where}: network error talking to Telegram: {text}")
    return DeliveryError(f"{where}: {type(exc).__name__}: {text}")


def _is_entity_error(exc: BadRequest) -> bool:
    return "can't parse entities" in exc.message.lower()


def _is_not_modified(exc: BadRequest) -> bool:
    return "message is not modified" in exc.message.lower()


def _html_to_plain(text: str) -> str:
    return html.unescape(re.sub(r"<[^>]*>", "", text))


def _file_url(api_base_url: str) -> str:
    """``…/bot`` → ``…/file/bot`` (never fetched, but no hard-coded host either)."""
    base = api_base_url.rstrip("/")
    return base[: -len("/bot")] + "/file/bot" if base.endswith("/bot") else base + "/file/bot"


@contextlib.contextmanager
def _quiet_debug(*names: str) -> Iterator[None]:
    """Hold these loggers above DEBUG for a moment (PTB logs its token-bearing URL then)."""
    loggers = [logging.getLogger(n) for n in names]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(max(lg.getEffectiveLevel(), logging.INFO))
    try:
        yield
    finally:
        for lg, level in zip(loggers, levels, strict=True):
            lg.setLevel(level)


def _has_button(message: Message, data: str) -> bool:
    markup = message.reply_markup
    rows = markup.inline_keyboard if markup is not None else ()
    return bool(data) and any(b.callback_data == data for row in rows for b in row)


def _is_group(chat: str) -> bool:
    """Groups, supergroups (and their topics) and channels have negative ids."""
    return chat.startswith("-")


def _chat_of(chat: str) -> str:
    """A forum topic's group (its topics share the group's limits and message ids)."""
    return chat.split("/", 1)[0]


def _topic(message: Message) -> int | None:
    """The forum topic a message is in (None: a plain chat, or a forum's General)."""
    return message.message_thread_id if message.is_topic_message else None


def _where(sub: Subscription) -> tuple[int, int | None]:
    """A subscription's chat id and forum topic; a chat we did not make is refused like a
    chat that is gone."""
    try:
        return parse_chat(sub.chat)
    except ValueError:
        raise DeliveryError(
            f"{sub.chat!r} is not a Telegram chat (a chat id, or chat id/topic)", permanent=True
        ) from None


def _paper_of(message: Message) -> str | None:
    """The paper a message of ours is about, from its rating buttons (the last part of a long
    card carries them); None when it has none, or rates several (a compact digest: the
    question then names its paper)."""
    markup = message.reply_markup
    papers = set()
    for row in markup.inline_keyboard if markup is not None else ():
        for button in row:
            rating = decode_rating(
                button.callback_data if isinstance(button.callback_data, str) else None
            )
            if rating is not None:
                papers.add(rating[1])
    return papers.pop() if len(papers) == 1 else None


def _host(url: str) -> str:
    """Where a URL points, without its path (which may hold the token)."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


# -- the adapter -----------------------------------------------------------------------------
class TelegramAdapter:
    """Telegram behind the Adapter protocol; also the Sender that delivery drives."""

    platform = PLATFORM

    def __init__(
        self,
        config: Config,
        core: Core,
        *,
        rate_limiter: BaseRateLimiter[Any] | None = None,
        poll_timeout: int = 10,
    ) -> None:
        self.config = config
        self.section = TelegramSection.of(config, PLATFORM)
        self.core = core
        self.poll_timeout = poll_timeout
        token = secret(self.section.token_env)
        if not token:
            raise ConfigError(
                f"Telegram needs a bot token: the environment variable {self.section.token_env} "
                "(telegram.token_env) is not set; create a bot with @BotFather and put its "
                "token there"
            )
        self._webhook_secret: str | None = None
        if self.section.mode == "webhook":
            self._webhook_secret = secret(self.section.webhook_secret_env)
            if not self._webhook_secret or not _SECRET_RE.match(self._webhook_secret):
                raise ConfigError(
                    f"telegram.mode is 'webhook' but {self.section.webhook_secret_env} "
                    "(telegram.webhook_secret_env) is not set to 1-256 letters, digits, _ or -; "
                    "set it to a random string, e.g. the output of `openssl rand -hex 32`"
                )
        # Client libraries log request URLs, and a Bot API URL carries the token.
        for name in ("httpx", "httpcore"):
            logger = logging.getLogger(name)
            if logger.level < logging.WARNING:
                logger.setLevel(logging.WARNING)
        with _quiet_debug("telegram.Bot", "telegram.ext.ExtBot"):  # "Set Bot API URL: …<token>"
            self.app = self._build(token, rate_limiter)
        self.pacer = Pacer(self.section.per_chat_interval_s)
        self._command_locks = KeyedLocks()
        self._admin_cache: dict[tuple[int, int], tuple[bool, float]] = {}
        self._keyboard_dirty: dict[tuple[int, int], tuple[str, InlineKeyboardMarkup]] = {}
        self._keyboard_tasks: dict[tuple[int, int], asyncio.Task[None]] = {}
        self._connected = False
        self._newest: dict[int, int] = {}  # chat → newest own message id while answering
        names = core.names()
        only_new = filters.UpdateType.MESSAGE  # an edited "/subscribe" is not a second command
        self.app.add_handler(CommandHandler(names, self._on_command, filters=only_new))
        self.app.add_handler(MessageHandler(filters.COMMAND & only_new, self._on_other_command))
        self.app.add_handler(MessageHandler(filters.StatusUpdate.MIGRATE, self._on_migrate))
        self.app.add_handler(MessageHandler(filters.Document.ALL & only_new, self._on_document))
        replies = filters.REPLY & filters.TEXT & ~filters.COMMAND & only_new
        self.app.add_handler(MessageHandler(replies, self._on_reply))  # questions (bot.ask)
        self.app.add_handler(CallbackQueryHandler(self._on_button))
        self.app.add_error_handler(self._on_error)

    def _build(
        self, token: str, rate_limiter: BaseRateLimiter[Any] | None
    ) -> Application[Any, Any, Any, Any, Any, Any]:
        # Timeouts: a send that hangs for long only holds up its own chat; polling adds its
        # long-poll timeout on top of get_updates_read_timeout.
        # Sends go over aiohttp (adapters.telegram.http: 1,000 a second must not cost the
        # machine); long polling keeps PTB's own transport.
        return (
            Application.builder()
            .token(token)
            .base_url(self.section.api_base_url)
            .base_file_url(_file_url(self.section.api_base_url))
            .rate_limiter(rate_limiter or build_rate_limiter(self.section.rate))
            .concurrent_updates(True)
            .request(
                AiohttpRequest(
                    connect_timeout=5.0, read_timeout=15.0, write_timeout=15.0, pool_timeout=10.0
                )
            )
            .get_updates_request(
                HTTPXRequest(
                    connection_pool_size=1,
                    connect_timeout=5.0,
                    read_timeout=10.0,
                    write_timeout=15.0,
                    pool_timeout=10.0,
                )
            )
            .build()
        )

    @property
    def bot(self) -> Any:
        return self.app.bot

    @property
    def connected(self) -> bool:
        return self._connected

    @property
    def top_n(self) -> int:
        return self.config.summaries.top_n

    # -- lifecycle ---------------------------------------------------------------------------
    async def connect(self) -> None:
        """getMe (bad token → ConfigError) and setMyCommands so the menu lists the commands."""
        env = self.section.token_env
        try:
            await self.app.initialize()
        except InvalidToken:
            raise ConfigError(
                f"{env} is not accepted by Telegram (getMe refused it); copy the token "
                "@BotFather gave you again, or revoke it there and use the new one"
            ) from None
        except TelegramError as exc:
            raise HeraldError(
                f"Telegram at {_host(self.section.api_base_url)} could not be reached: "
                f"{type(exc).__name__}: {exc}"
            ) from None
        try:
            await self.bot.set_my_commands([BotCommand(n, d) for n, d in self.core.menu()])
        except TelegramError as exc:
            raise HeraldError(f"Telegram refused setMyCommands: {exc}") from None
        self._connected = True
        log.info("Telegram: connected as @%s (%s mode)", self.bot.username, self.section.mode)

    async def listen(self) -> None:
        """Start handling updates: long polling, or register the webhook with its secret."""
        if not self.app.running:
            await self.app.start()
        if self.section.mode == "webhook":
            assert self.section.webhook_url, "checked by the config loader"
            await self.bot.set_webhook(
                url=self.section.webhook_url,
                secret_token=self._webhook_secret,
                allowed_updates=list(ALLOWED_UPDATES),
            )
            log.info("Telegram: webhook registered at %s", _host(self.section.webhook_url))
            return
        assert self.app.updater is not None
        if not self.app.updater.running:
            await self.app.updater.start_polling(
                poll_interval=0.0,
                timeout=self.poll_timeout,
                allowed_updates=list(ALLOWED_UPDATES),
                error_callback=self._on_polling_error,
            )

    async def disconnect(self) -> None:
        for task in list(self._keyboard_tasks.values()):
            task.cancel()
        await asyncio.gather(*self._keyboard_tasks.values(), return_exceptions=True)
        updater = self.app.updater
        if updater is not None and updater.running:
            await updater.stop()
        if self.app.running:
            await self.app.stop()
        await self.app.shutdown()
        self._connected = False

    def web_routes(self) -> list[web.RouteDef]:
        """``POST /telegram/webhook`` in webhook mode; nothing when polling."""
        if self.section.mode != "webhook":
            return []
        return [web.post(WEBHOOK_PATH, self.handle_webhook)]

    async def handle_webhook(self, request: web.Request) -> web.Response:
        """An update from Telegram: only with the secret we registered, else 403."""
        given = request.headers.get(SECRET_HEADER, "")
        expected = self._webhook_secret or ""
        if not expected or not hmac.compare_digest(given.encode(), expected.encode()):
            return web.Response(status=403, text="forbidden")
        try:
            data = await request.json()
            if not isinstance(data, dict) or "update_id" not in data:
                raise ValueError("not an Update object")
            update = Update.de_json(data, self.bot)
        except (ValueError, TypeError, KeyError, AttributeError):
            return web.Response(status=400, text="bad update")
        # Answer at once: the update queue is worked by the running Application.
        await self.app.update_queue.put(update)
        return web.Response(text="ok")

    # -- Sender ------------------------------------------------------------------------------
    @property
    def pace(self) -> Pace:
        """How fast the core's fan-out may go: the bot's overall rate (1,000 a second with
        paid broadcasts), one message a second per chat, one in 3 s per group."""
        interval = self.section.per_chat_interval_s
        return Pace(
            per_second=self.section.rate,
            chat_interval=interval,
            group_interval=max(interval, GROUP_INTERVAL_S) if interval else 0.0,
            is_group=_is_group,
            chat_of=_chat_of,
        )

    async def send_header(self, digest: Digest) -> Sent:
        sub = digest.subscription
        _, topic = _where(sub)
        markup = header_keyboard(digest.day, topic)
        message_id = await self._post(sub, render_header(digest), keyboard=markup)
        return Sent(str(message_id), str(message_id))

    async def send_item(self, digest: Digest, card: Card, thread: Sent) -> Sent:
        """The paper as a reply to the header; a long one in several parts, buttons on the last.

        If a later part fails, the earlier parts are deleted again, so the ledger's resend of
        this paper does not repeat them.
        """
        sub = digest.subscription
        _, topic = _where(sub)
        chunks = render_card(card)
        reply_to = int(thread.thread_id or thread.message_id)
        buttons = keyboard(card.buttons, digest.day, topic)
        sent: list[int] = []
        try:
            for i, chunk in enumerate(chunks):
                last = i == len(chunks) - 1
                sent.append(
                    await self._post(
                        sub, chunk, reply_to=reply_to, keyboard=buttons if last else None
                    )
                )
        except DeliveryError:
            await self._retract(_where(sub)[0], sent)
            raise
        return Sent(str(sent[0]), thread.thread_id)

    def compact_sizes(self, view: CompactDigest) -> list[int]:
        return compact_sizes(view)

    async def send_compact(self, digest: Digest, part: CompactDigest, thread: Sent | None) -> Sent:
        """One compact message: the papers listed, numbered 👍/👎 rows under it.  A part after
        the first (a digest past 4,096 units) replies to the first."""
        sub = digest.subscription
        _, topic = _where(sub)
        reply_to = int(thread.thread_id or thread.message_id) if thread is not None else None
        message_id = await self._post(
            sub, render_compact(part), reply_to=reply_to, keyboard=compact_keyboard(part, topic)
        )
        first = str(message_id)
        return Sent(first, thread.thread_id if thread is not None else first)

    async def find_sent(
        self, digest: Digest, card: Card | None, thread: Sent | None
    ) -> Sent | None:
        """Was this message sent before a crash?  Telegram has no history to read, but it
        answers an ``editMessageReplyMarkup`` with the *identical* keyboard with "message is
        not modified" for our own message that carries it, "message to edit not found" where
        there is no message, and refuses people's messages.  Every digest message's keyboard
        is its own (it carries the day, and the forum topic), so probing the ids after the
        newest message we know of in the chat — in any of its topics, which share one
        sequence of ids — finds it, or shows it is not there.
        """
        sub = digest.subscription
        _, topic = _where(sub)
        markup: Markup | None
        if card is None:
            markup, text = header_keyboard(digest.day, topic), render_header(digest)
        else:
            markup, text = keyboard(card.buttons, digest.day, topic), render_card(card)[-1]
        return await self._find(sub, markup, text, thread)

    async def find_compact(
        self, digest: Digest, part: CompactDigest, thread: Sent | None
    ) -> Sent | None:
        """:meth:`find_sent` for a compact message: its keyboard is as much its own."""
        sub = digest.subscription
        _, topic = _where(sub)
        return await self._find(sub, compact_keyboard(part, topic), render_compact(part), thread)

    async def _find(
        self,
        sub: Subscription,
        markup: Markup | None,
        text: str,
        thread: Sent | None,
    ) -> Sent | None:
        if markup is None:
            return None
        chat_id, topic = _where(sub)
        if thread is not None:
            # A paper (or a later part) comes after its own digest's first message.
            start = int(thread.message_id)
        else:
            # Nothing known in the chat (no command answered, no digest sent): it is new, so
            # its first messages are the ones to look at.
            start = await self.core.last_message_id(PLATFORM, str(chat_id), topics=True) or 0
        # Messages the ledger knows (this digest's, other topics') are not the unsure one:
        # stepping over them also leaves their buttons alone.
        known = await self.core.sent_message_ids(PLATFORM, str(chat_id), start)
        found = await self._probe(chat_id, topic, start, markup, _html_to_plain(text), known)
        if found is None:
            return None
        return Sent(str(found), thread.thread_id if thread else str(found))

    async def _probe(
        self,
        chat_id: int,
        topic: int | None,
        start: int,
        markup: Markup,
        text: str,
        known: set[int],
    ) -> int | None:
        misses = probes = 0
        message_id = start
        while probes < MAX_PROBES:
            message_id += 1
            if message_id in known:
                continue
            probes += 1
            try:
                async with self.pacer.turn(chat_id):
                    edited = await self._api(
                        "editMessageReplyMarkup",
                        chat_id=chat_id,
                        message_id=message_id,
                        reply_markup=markup,
                    )
            except BadRequest as exc:
                answer = exc.message.lower()
                if "not modified" in answer:
                    return message_id  # ours, with exactly this keyboard
                if "not found" in answer:
                    misses += 1  # past the end (or a deleted message)
                    if misses >= MAX_PROBE_MISSES:
                        return None
                    continue
                if "can't be edited" in answer:
                    misses = 0  # somebody's message
                    continue
                raise delivery_error(exc, chat_id) from None
            except TelegramError as exc:
                raise delivery_error(exc, chat_id) from None
            misses = 0
            # Our own message without this keyboard: the edit went through.  It is ours if it
            # is this very message (its keyboard had changed since) — same text, same topic;
            # otherwise put it back.
            if (
                isinstance(edited, dict)
                and edited.get("text", "") == text
                and (edited.get("message_thread_id") if edited.get("is_topic_message") else None)
                == topic
            ):
                return message_id
            log.warning(
                "probing Telegram chat %s for an unsure message touched message %s; "
                "its buttons are removed again",
                chat_id,
                message_id,
            )
            with contextlib.suppress(TelegramError):
                async with self.pacer.turn(chat_id):
                    await self._api(
                        "editMessageReplyMarkup", chat_id=chat_id, message_id=message_id
                    )
        return None

    async def send_note(self, sub: Subscription, text: str) -> None:
        for chunk in render_text(text):
            await self._post(sub, chunk)

    # -- sending -----------------------------------------------------------------------------
    async def _api(self, method: str, **params: Any) -> Any:
        """A Bot API call with its JSON in and out (through PTB's limiter, retries and
        errors): a fan-out's messages need none of PTB's objects, which cost more to build
        than the rest of the send."""
        return await self.bot.do_api_request(
            method, api_kwargs={k: v for k, v in params.items() if v is not None}
        )

    async def _post(
        self,
        target: Subscription | int,
        text: str,
        *,
        reply_to: int | None = None,
        keyboard: Markup | None = None,
        topic: int | None = None,
    ) -> int:
        """sendMessage (HTML, no link preview), paced per chat; its message id, or a
        DeliveryError.

        ``target``: a subscription (its chat, or its chat's forum topic) or a chat id (with
        ``topic``, a forum topic's message_thread_id).  A chat upgraded to a supergroup is
        followed (and its subscription moved); HTML that Telegram refuses to parse — our bug,
        not the reader's — is sent as plain text instead of blocking the digest.
        """
        sub = target if isinstance(target, Subscription) else None
        if isinstance(target, Subscription):
            chat_id, topic = _where(target)
        else:
            chat_id = target
        parse_mode: str | None = ParseMode.HTML
        replying = (
            {"message_id": reply_to, "allow_sending_without_reply": True} if reply_to else None
        )
        for attempt in range(3):
            try:
                async with self.pacer.turn(chat_id):
                    sent = await self._api(
                        "sendMessage",
                        chat_id=chat_id,
                        text=text,
                        parse_mode=parse_mode,
                        link_preview_options=_NO_PREVIEW,
                        reply_parameters=replying,
                        reply_markup=keyboard,
                        message_thread_id=topic,
                        allow_paid_broadcast=True if self.section.paid_broadcast else None,
                    )
                message_id = int(sent["message_id"])
                if sub is None and chat_id in self._newest:  # an answer to a command
                    self._newest[chat_id] = max(self._newest[chat_id], message_id)
                return message_id
            except ChatMigrated as exc:
                if attempt == 2:
                    raise delivery_error(exc, chat_id) from None
                await self.core.migrate_chat(PLATFORM, str(chat_id), str(exc.new_chat_id))
                if sub is not None:
                    sub.chat = str(exc.new_chat_id)  # the rest of this digest follows it
                chat_id = exc.new_chat_id
                replying = None  # the message replied to stayed in the old group
            except BadRequest as exc:
                if parse_mode is None or not _is_entity_error(exc) or attempt == 2:
                    raise delivery_error(exc, chat_address(chat_id, topic)) from None
                log.warning("Telegram refused our HTML (%s); sending plain text", exc.message)
                text, parse_mode = _html_to_plain(text), None
            except TelegramError as exc:
                raise delivery_error(exc, chat_address(chat_id, topic)) from None
        raise AssertionError("unreachable")  # pragma: no cover

    async def _edit(
        self, chat_id: int, message_id: int, text: str, keyboard: Markup | None
    ) -> None:
        try:
            async with self.pacer.turn(chat_id):
                await self._api(
                    "editMessageText",
                    chat_id=chat_id,
                    message_id=message_id,
                    text=text,
                    parse_mode=ParseMode.HTML,
                    link_preview_options=_NO_PREVIEW,
                    reply_markup=keyboard,
                )
        except BadRequest as exc:
            if not _is_not_modified(exc):
                raise delivery_error(exc, chat_id) from None
        except TelegramError as exc:
            raise delivery_error(exc, chat_id) from None

    async def _retract(self, chat_id: int, message_ids: list[int]) -> None:
        for message_id in message_ids:
            try:
                await self.bot.delete_message(chat_id, message_id)
            except TelegramError as exc:
                log.warning(
                    "could not delete part %s of a half-sent paper in chat %s: %s",
                    message_id,
                    chat_id,
                    exc,
                )

    # -- incoming ----------------------------------------------------------------------------
    async def _on_command(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        message = update.message
        if message is None or not message.text:
            return
        cmd = command_from_message(message, self.bot.username)
        if cmd is None:
            return
        if self.core.needs_admin_check(cmd):
            cmd = dataclasses.replace(cmd, is_admin=await self._is_admin(message))
        self._newest.setdefault(message.chat_id, message.message_id)
        try:
            await self._run_command(message, cmd)
        except DeliveryError as exc:
            log.warning("could not answer /%s in Telegram chat %s: %s", cmd.name, cmd.chat, exc)
        finally:
            # Where this chat's messages have got to (commands and their answers are not in
            # the delivery ledger): after a crash, an unsure digest message is looked for
            # past it.  Kept for the chat, not the topic: its topics share the ids.
            newest = max(message.message_id, self._newest.pop(message.chat_id, 0))
            await self.core.seen(PLATFORM, str(message.chat_id), newest)

    async def _on_other_command(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        """A /command we have no handler for: the core answers with help.

        In groups only when addressed as /cmd@ourbot: other bots there have commands too.
        """
        message = update.message
        if message is None or not message.text:
            return
        head = message.text.split(None, 1)[0]
        if message.chat.type in GROUP_TYPES and "@" not in head:
            return
        if not addressed_to(message.text, self.bot.username):
            return
        await self._on_command(update, context)

    async def _run_command(self, message: Message, cmd: Command) -> None:
        working_text = self.core.working_text(cmd)
        if working_text is None:
            # Quick commands keep their order within the chat.
            async with self._command_locks(cmd.chat):
                reply = await self.core.handle(cmd, self)
            if reply.text:
                await self._answer(message, reply.text, reply.reply_to)
            return
        # Slow ones show "working…" at once, don't hold up the chat's queue, and have the
        # answer edited in.
        chat_id, topic = message.chat_id, _topic(message)
        reply_to = message.message_id if message.chat.type in GROUP_TYPES else None
        working = await self._post(chat_id, escape(working_text), reply_to=reply_to, topic=topic)
        reply = await self.core.handle(cmd, self)
        if reply.reply_to and reply.card is None:
            # The answer belongs under another message (today's digest header), and an edit
            # cannot make a message a reply: "working…" gives way to a reply there.
            try:
                await self.bot.delete_message(chat_id, working)
            except TelegramError as exc:
                log.info("could not delete a working message in chat %s: %s", chat_id, exc)
            else:
                await self._answer(message, reply.text, reply.reply_to)
                return
        if reply.card is not None and not reply.error:
            chunks, buttons = render_card(reply.card), keyboard(reply.card.buttons)
        else:
            chunks, buttons = render_text(reply.text or "✓"), None
        await self._edit(chat_id, working, chunks[0], buttons if len(chunks) == 1 else None)
        for i, chunk in enumerate(chunks[1:], 2):
            last = i == len(chunks)
            await self._post(
                chat_id,
                chunk,
                reply_to=working,
                keyboard=buttons if last else None,
                topic=topic,
            )
        if reply.data.get("ask") or reply.card is not None:  # replies to it ask about it
            await self.core.answered(PLATFORM, cmd.chat, str(working), reply)

    async def _answer(self, message: Message, text: str, reply_to: str | None = None) -> None:
        """A plain reply; in groups as a reply to the command, so it is clear whose it was."""
        to = int(reply_to) if reply_to else None
        if to is None and message.chat.type in GROUP_TYPES:
            to = message.message_id
        for chunk in render_text(text):
            await self._post(message.chat_id, chunk, reply_to=to, topic=_topic(message))
            to = None

    async def _on_reply(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        """A reply to one of our messages about a paper (a digest item, a card, an answer) is
        a question about it: "working…" at once, the answer edited in."""
        message = update.message
        target = message.reply_to_message if message is not None else None
        if message is None or not message.text or target is None:
            return
        if target.from_user is None or target.from_user.id != self.bot.id:
            return  # a reply to a person
        if target.forum_topic_created is not None or (
            message.is_topic_message and message.message_thread_id == target.message_id
        ):
            return  # a plain message in a forum topic "replies" to the topic's first message
        chat = message_address(message)  # a forum topic is a chat of its own
        user = message.from_user
        who = str(user.id) if user is not None else chat
        text = re.sub(rf"@{re.escape(self.bot.username)}\b", " ", message.text, flags=re.I)
        ref = await self.core.paper_for_message(PLATFORM, chat, str(target.message_id))
        about = ref.paper_id if ref is not None else _paper_of(target)
        thread = (ref.thread if ref is not None else None) or str(target.message_id)
        question = await self.core.question_in_thread(
            PLATFORM, chat, who, thread, text, about=about, addressed=True
        )
        if question is None:
            return
        newest = message.message_id
        try:
            working_text = self.core.working_text(make_command(PLATFORM, chat, who, "ask"))
            topic = _topic(message)
            working = await self._post(
                message.chat_id,
                escape(working_text or "⏳"),
                reply_to=message.message_id,
                topic=topic,
            )
            newest = working
            reply = await self.core.ask(question)
            chunks = render_text(reply.text)
            await self._edit(message.chat_id, working, chunks[0], None)
            for chunk in chunks[1:]:
                newest = await self._post(message.chat_id, chunk, reply_to=working, topic=topic)
            await self.core.answered(PLATFORM, chat, str(working), reply)
        except DeliveryError as exc:
            log.warning("could not answer a question in Telegram chat %s: %s", chat, exc)
        finally:
            await self.core.seen(PLATFORM, chat, newest)  # see _on_command

    async def _is_admin(self, message: Message) -> bool:
        """Private chats belong to their user; in groups: telegram.admins or a chat admin."""
        chat = message.chat
        if chat.type not in GROUP_TYPES:
            return True
        if message.sender_chat is not None and message.sender_chat.id == chat.id:
            return True  # an anonymous admin, posting as the group itself
        user = message.from_user
        if user is None:
            return False
        listed = {a.strip().lower().lstrip("@") for a in self.section.admins}
        if str(user.id) in listed or (user.username and user.username.lower() in listed):
            return True
        key = (chat.id, user.id)
        loop = asyncio.get_running_loop()
        cached = self._admin_cache.get(key)
        if cached is not None and cached[1] > loop.time():
            return cached[0]
        try:
            member = await self.bot.get_chat_member(chat.id, user.id)
        except TelegramError as exc:
            log.warning("getChatMember failed in Telegram chat %s: %s", chat.id, exc)
            return False
        is_admin = member.status in (ChatMemberStatus.ADMINISTRATOR, ChatMemberStatus.OWNER)
        if len(self._admin_cache) > 4096:
            self._admin_cache.clear()
        self._admin_cache[key] = (is_admin, loop.time() + ADMIN_CACHE_S)
        return is_admin

    async def _on_button(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        """👍/👎: record it, confirm briefly, then show the new tally on the buttons.

        Callback data comes from the client and can be forged with the raw API; Telegram
        itself fills in the message the button was pressed on.  A press counts only if the
        data is one of that message's own buttons (so a forged press can neither rate another
        paper nor rewrite this message's keyboard).
        """
        query = update.callback_query
        if query is None:
            return
        message = query.message
        data = query.data or ""
        if not isinstance(message, Message) or not _has_button(message, data):
            log.info("ignoring a button press that is not on its message: %r", data[:64])
            with contextlib.suppress(TelegramError):
                await query.answer()
            return
        chat = message_address(message)
        if is_settings_press(data):
            await self._answer_query(query, await self.core.settings_text(PLATFORM, chat))
            return
        parsed = decode_rating(data)
        if parsed is None:
            with contextlib.suppress(TelegramError):
                await query.answer()
            return
        value, paper_id = parsed
        reply = await self.core.rate(PLATFORM, chat, str(query.from_user.id), paper_id, value)
        await self._answer_query(query, reply.text)
        if not reply.error and message.reply_markup is not None:
            self._refresh_keyboard(message.chat.id, message.message_id, chat, message.reply_markup)

    async def _answer_query(self, query: Any, text: str) -> None:
        if len(text) > MAX_ANSWER_CHARS:
            text = text[: MAX_ANSWER_CHARS - 1] + "…"
        try:
            await query.answer(text)
        except TelegramError as exc:  # "query is too old": the press still counted
            log.info("answerCallbackQuery failed: %s", exc)

    def _refresh_keyboard(
        self, chat_id: int, message_id: int, chat: str, markup: InlineKeyboardMarkup
    ) -> None:
        """Show the tally; presses that arrive while an edit is under way share the next one.

        Each edit reads the tallies fresh, so the last edit always shows the final counts, and
        a burst of presses in a busy group costs one or two edits, not one per press.  Every
        paper on the message is relabelled (a compact message holds many): its keyboard is
        rebuilt from the one it carries, each rating button with its paper's count.
        """
        key = (chat_id, message_id)
        self._keyboard_dirty[key] = (chat, markup)
        if key not in self._keyboard_tasks:
            self._keyboard_tasks[key] = asyncio.create_task(self._flush_keyboard(key))

    async def _flush_keyboard(self, key: tuple[int, int]) -> None:
        chat_id, message_id = key
        try:
            while key in self._keyboard_dirty:
                chat, markup = self._keyboard_dirty.pop(key)
                tallies: dict[str, tuple[Button, ...]] = {}
                for paper_id in rated_papers(markup):
                    tallies[paper_id] = await self.core.buttons(PLATFORM, chat, paper_id)
                try:
                    async with self.pacer.turn(chat_id):
                        await self._api(
                            "editMessageReplyMarkup",
                            chat_id=chat_id,
                            message_id=message_id,
                            reply_markup=relabel(markup, tallies),
                        )
                except BadRequest as exc:
                    if not _is_not_modified(exc):
                        log.warning("could not update the buttons in chat %s: %s", chat_id, exc)
                except TelegramError as exc:
                    log.warning("could not update the buttons in chat %s: %s", chat_id, exc)
        finally:
            self._keyboard_tasks.pop(key, None)

    async def _on_document(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        """A file sent to the bot: a library export (BibTeX, RIS, CSL JSON) is imported.

        In a private chat every document gets an answer; in a group only library files, and
        only where the group is subscribed (people share all sorts of files there)."""
        message = update.message
        if message is None or message.document is None:
            return
        doc = message.document
        name = doc.file_name or "document"
        chat = message_address(message)  # a forum topic is a chat of its own
        user = str(message.from_user.id) if message.from_user is not None else chat
        addressed = message.chat.type not in GROUP_TYPES
        if not await self.core.wants_file(PLATFORM, chat, name, addressed=addressed):
            return
        try:
            refused = self.core.library_refusal(name, doc.file_size)
            if refused is not None:
                await self._answer(message, refused.text)
                return
            reply_to = None if addressed else message.message_id
            topic = _topic(message)
            working = await self._post(
                message.chat_id,
                escape(self.core.import_working_text(name)),
                reply_to=reply_to,
                topic=topic,
            )
            try:
                tg_file = await doc.get_file()
                data = bytes(await tg_file.download_as_bytearray())
            except TelegramError as exc:
                log.warning("downloading %s in Telegram chat %s failed: %s", name, chat, exc)
                reply = self.core.download_failed(name)
            else:
                reply = await self.core.import_library(PLATFORM, chat, user, name, data)
            chunks = render_text(reply.text)
            await self._edit(message.chat_id, working, chunks[0], None)
            for chunk in chunks[1:]:
                await self._post(message.chat_id, chunk, reply_to=working, topic=topic)
        except DeliveryError as exc:
            log.warning("could not answer a file in Telegram chat %s: %s", chat, exc)

    async def _on_migrate(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        message = update.message
        if message is not None and message.migrate_to_chat_id:
            await self.core.migrate_chat(
                PLATFORM, str(message.chat_id), str(message.migrate_to_chat_id)
            )

    def _on_polling_error(self, exc: TelegramError) -> None:
        if isinstance(exc, Conflict):
            log.error(
                "Telegram: another process is receiving this bot's updates (%s); stop it, or "
                "use one herald serve per bot token",
                exc.message,
            )
        else:
            log.warning("Telegram polling: %s: %s (retrying)", type(exc).__name__, exc)

    async def _on_error(self, update: object, context: ContextTypes.DEFAULT_TYPE) -> None:
        log.error("handling a Telegram update failed", exc_info=context.error)
