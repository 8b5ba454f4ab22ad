"""Slack adapter: slack-bolt's AsyncApp behind :class:`bot.platform.Adapter` (Socket Mode or
HTTP events).

A thin translator: payloads become ``Command`` values and button presses for
:class:`bot.core.Core`, whose replies and cards are rendered (:mod:`adapters.slack.blocks`)
and sent back; digests are posted through the core's delivery, for which this class is the
:class:`~bot.platform.Sender`.

Slack drops a slash command or button press that is not acknowledged within 3 seconds, and
the core may spend seconds on the LLM or arXiv.  So every listener only parses and acks (with
the command's declared "working…" text); the work runs afterwards as a task of ours and the
answer goes out through ``response_url`` or the channel.
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import logging
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

import aiohttp
from aiohttp import web
from slack_bolt.adapter.aiohttp import to_aiohttp_response
from slack_bolt.adapter.socket_mode.async_handler import AsyncSocketModeHandler
from slack_bolt.app.async_app import AsyncApp
from slack_bolt.authorization import AuthorizeResult
from slack_bolt.request.async_request import AsyncBoltRequest
from slack_sdk.errors import SlackApiError
from slack_sdk.http_retry.builtin_async_handlers import (
    AsyncConnectionErrorRetryHandler,
    AsyncRateLimitErrorRetryHandler,
    AsyncServerErrorRetryHandler,
)
from slack_sdk.http_retry.interval_calculator import RetryIntervalCalculator
from slack_sdk.web.async_client import AsyncWebClient

from adapters.slack import PLATFORM, SlackSection
from adapters.slack.blocks import (
    ARXIV_COMMAND,
    SUMMARIZE_COMMAND,
    SUMMARY_EVENT,
    Message,
    compact_sizes,
    metadata_matches,
    parse_action,
    parse_slash,
    render_card,
    render_compact,
    render_header,
    render_item,
    reply_text,
    with_buttons,
)
from bot.cards import RATE_DOWN, RATE_UP, CompactDigest
from bot.commands import GENERIC_ERROR
from bot.config import Config, secret
from bot.core import Core
from bot.delivery import HEADER
from bot.errors import ConfigError, DeliveryError
from bot.models import Card, Command, Digest, Reply, Subscription
from bot.pacing import KeyedLocks, Pacer
from bot.platform import Sent

log = logging.getLogger(__name__)

EVENTS_PATH = "/slack/events"
TIMESTAMP_HEADER = "X-Slack-Request-Timestamp"
# Errors after which posting to the channel can never work again: the subscription is
# deactivated instead of retried forever.
PERMANENT_ERRORS = frozenset(
    {
        "channel_not_found",
        "is_archived",
        "not_in_channel",
        "account_inactive",
        "invalid_auth",
        "not_authed",
        "token_revoked",
        "token_expired",
        "team_access_not_granted",
        "restricted_action",
        "ekm_access_denied",
    }
)


class _QuietConstruction(logging.Filter):
    """Drop Bolt's start-up notes that the bot token in the environment is not used: it is,
    through the client we hand over."""

    def filter(self, record: logging.LogRecord) -> bool:
        msg = record.getMessage()
        return not ("`token`" in msg and ("will be unused" in msg or "will be ignored" in msg))


_BOLT_LOG = logging.getLogger("adapters.slack.bolt")
_BOLT_LOG.addFilter(_QuietConstruction())


class _CappedBackoff(RetryIntervalCalculator):
    """0.5 s, 1 s, 2 s, then 4 s: the attempt count also grows with 429s, so uncapped
    exponential backoff would sleep for minutes after a rate-limit storm."""

    def calculate_sleep_duration(self, current_attempt: int) -> float:
        return min(4.0, 0.5 * 2**current_attempt)


def _require(section: SlackSection, key: str, what: str) -> str:
    env_name = getattr(section, key)
    value = secret(env_name)
    if not value:
        raise ConfigError(
            f"slack is enabled but the environment variable {env_name} ({what}) is not set; "
            f"export it, or point slack.{key} at the variable that holds it"
        )
    return value


def _api_error(exc: SlackApiError) -> str:
    data = exc.response.data if isinstance(exc.response.data, dict) else {}
    error = str(data.get("error") or f"HTTP {exc.response.status_code}")
    details = (data.get("response_metadata") or {}).get("messages") or []
    return error + (f" ({'; '.join(details[:3])})" if details else "")


class SlackAdapter:
    """Slack surface: digests as threads, ``/arxiv`` + ``/summarize``, 👍/👎 buttons.

    ``connect()`` checks the tokens, ``listen()`` opens Socket Mode (HTTP mode: mount
    ``web_routes()``), ``disconnect()`` closes everything.  As a ``Sender`` it posts a digest's
    header and one thread reply per paper, paced per channel.
    """

    platform = PLATFORM

    def __init__(
        self,
        config: Config,
        core: Core,
        *,
        rate_limit_retries: int = 8,
        server_error_retries: int = 5,
    ) -> None:
        self.config = config
        self.core = core
        cfg = self.section = SlackSection.of(config, PLATFORM)
        self.mode = cfg.mode
        bot_token = _require(cfg, "bot_token_env", "the bot token, xoxb-…")
        self._app_token = (
            _require(cfg, "app_token_env", "the app-level token for Socket Mode, xapp-…")
            if cfg.mode == "socket"
            else None
        )
        signing_secret = (
            _require(cfg, "signing_secret_env", "the app's signing secret for HTTP mode")
            if cfg.mode == "http"
            else ""
        )
        base_url = cfg.api_base_url if cfg.api_base_url.endswith("/") else cfg.api_base_url + "/"
        # 429s wait out Retry-After and 5xx back off, inside slack_sdk: no retry loop of ours.
        # slack_sdk counts attempts per request across all handlers, so each budget is the
        # total number of retries one call may take, whatever the mix of 429s and 5xx.
        self.client = AsyncWebClient(
            token=bot_token,
            base_url=base_url,
            timeout=30,
            retry_handlers=[
                AsyncConnectionErrorRetryHandler(max_retry_count=1),
                AsyncRateLimitErrorRetryHandler(max_retry_count=rate_limit_retries),
                AsyncServerErrorRetryHandler(
                    max_retry_count=server_error_retries, interval_calculator=_CappedBackoff()
                ),
            ],
        )
        self._auth: AuthorizeResult | None = None
        self._auth_lock = asyncio.Lock()

        async def authorize(team_id: str | None) -> AuthorizeResult:
            return await self._authorization()

        self.app = AsyncApp(
            client=self.client,
            signing_secret=signing_secret,
            # Socket Mode messages are not signed; HTTP requests are checked by Bolt.
            request_verification_enabled=cfg.mode == "http",
            # Bolt's default single-team authorization calls auth.test on the first request,
            # once per request until one returns: a burst right after start-up would pay for
            # 50 auth.tests before the first ack.  connect() already knows the answer.
            authorize=authorize,
            logger=_BOLT_LOG,
            name="arxiv-herald",
        )
        self._register(self.app)
        self._handler: AsyncSocketModeHandler | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
        self._pacer = Pacer(cfg.post_interval_s)  # ≈1 message per second per channel
        self._message_locks = KeyedLocks()
        # (subscription, day, paper) -> (first part, parts done) of a split item whose later
        # parts failed: a retry resumes there instead of posting the first part twice.
        self._partial: dict[tuple[int | None, dt.date, str], tuple[Sent, int]] = {}
        self._authed = False
        self._listening = False
        self.bot_id: str | None = None
        self.bot_user_id: str | None = None

    # -- adapter lifecycle ---------------------------------------------------------------------
    @property
    def connected(self) -> bool:
        return self._authed and (self._listening or self.mode == "http")

    async def connect(self) -> None:
        cfg = self.section
        auth = await self._check(self.client.auth_test(), cfg.bot_token_env, "bot token")
        if self._app_token is not None:
            # Socket Mode's own connect() retries a bad app token forever: check it here once.
            await self._check(
                self.client.apps_connections_open(app_token=self._app_token),
                cfg.app_token_env,
                "app-level token",
            )
        self._auth = AuthorizeResult.from_auth_test_response(
            bot_token=self.client.token, auth_test_response=auth
        )
        self.bot_id = auth.get("bot_id")
        self.bot_user_id = auth.get("user_id")
        self._authed = True
        log.info("Slack: connected to %s as %s", auth.get("team"), auth.get("user"))

    async def _check(self, call: Awaitable[Any], env_name: str, what: str) -> Any:
        try:
            return await call
        except SlackApiError as exc:
            raise ConfigError(
                f"Slack rejected the {what} in {env_name}: {_api_error(exc)}; copy it again "
                "from the app's settings page (api.slack.com/apps)"
            ) from None
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise ConfigError(
                f"cannot reach the Slack API at {self.client.base_url} ({exc!r}); "
                "check slack.api_base_url and the network"
            ) from None

    async def listen(self) -> None:
        if self.mode != "socket" or self._listening:
            return
        assert self._app_token is not None
        self._handler = AsyncSocketModeHandler(self.app, self._app_token, web_client=self.client)
        # connect_async returns once the socket is open; start_async would block forever.
        await self._handler.connect_async()
        self._listening = True

    async def disconnect(self, grace_s: float = 5.0) -> None:
        if self._handler is not None:
            await self._handler.close_async()
            self._handler = None
        self._listening = False
        if self._tasks:
            _done, pending = await asyncio.wait(set(self._tasks), timeout=grace_s)
            for task in pending:
                task.cancel()
            if pending:
                await asyncio.gather(*pending, return_exceptions=True)
        self._authed = False

    def web_routes(self) -> list[web.RouteDef]:
        if self.mode != "http":
            return []
        return [web.post(EVENTS_PATH, self.handle_http)]

    async def handle_http(self, request: web.Request) -> web.Response:
        """Events, slash commands and interactivity in HTTP mode; Bolt checks the signature
        (forged or stale: 401) and answers as soon as the listener acked.  A request that is
        not even well-formed (a body that is not UTF-8, a timestamp that is not a number) is
        refused here, before Bolt, with a 4xx and no traceback."""
        raw = await request.read()
        try:
            body = raw.decode("utf-8")
        except UnicodeDecodeError:
            return web.Response(status=400, text="the body is not UTF-8")
        if not request.headers.get(TIMESTAMP_HEADER, "").isdigit():
            return web.Response(status=401, text="invalid request")
        bolt_request = AsyncBoltRequest(
            body=body,
            query=request.query_string,
            headers={k: v for k, v in request.headers.items()},
        )
        return await to_aiohttp_response(await self.app.async_dispatch(bolt_request))

    async def _authorization(self) -> AuthorizeResult:
        # One workspace, one bot token: every request is authorized by the same auth.test.
        if self._auth is not None:
            return self._auth
        async with self._auth_lock:
            if self._auth is None:
                auth = await self.client.auth_test()
                self._auth = AuthorizeResult.from_auth_test_response(
                    bot_token=self.client.token, auth_test_response=auth
                )
        return self._auth

    # -- Bolt listeners --------------------------------------------------------------------------
    def _register(self, app: AsyncApp) -> None:
        # Closures, not bound methods: Bolt injects arguments by parameter name and would try
        # to fill in ``self``.
        async def on_command(ack: Any, body: dict[str, Any], respond: Any) -> None:
            try:
                cmd = parse_slash(body)
            except ValueError as exc:
                await ack(text=f"Sorry, I can't handle that: {exc}")
                return
            working = self.core.working_text(cmd)
            if working is not None:
                await ack(text=reply_text(working))
            else:
                await ack()
            self._spawn(self._run_command(cmd, respond))

        async def on_rate(ack: Any, body: dict[str, Any], respond: Any) -> None:
            await ack()
            self._spawn(self._run_rating(body, respond))

        async def on_error(error: Exception, body: dict[str, Any]) -> None:
            log.error("Slack listener failed: %r (payload type %s)", error, body.get("type"))

        app.command(ARXIV_COMMAND)(on_command)
        app.command(SUMMARIZE_COMMAND)(on_command)
        app.action(RATE_UP)(on_rate)
        app.action(RATE_DOWN)(on_rate)
        app.error(on_error)

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # -- commands --------------------------------------------------------------------------------
    async def _run_command(self, cmd: Command, respond: Callable[..., Awaitable[Any]]) -> None:
        try:
            if self.core.needs_admin_check(cmd):
                cmd = dataclasses.replace(cmd, is_admin=await self.is_admin(cmd.chat, cmd.user))
            reply = await self.core.handle(cmd, self)
            if reply.card is not None and not reply.error:
                await self._post_card(cmd, reply.card, reply.text, respond)
            elif reply.text:
                await self._respond(respond, reply.text, ephemeral=reply.ephemeral or reply.error)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("Slack command %r in %s failed", cmd.name, cmd.chat)
            await self._respond(respond, GENERIC_ERROR)

    async def is_admin(self, channel: str, user: str) -> bool:
        """May ``user`` change ``channel``'s settings?  One of slack.admins when that list is
        set, else any member of the channel."""
        admins = self.section.admins
        if admins:
            return user in admins
        cursor: str | None = None
        try:
            while True:
                page = await self.client.conversations_members(
                    channel=channel, limit=1000, cursor=cursor
                )
                if user in (page.get("members") or []):
                    return True
                cursor = (page.get("response_metadata") or {}).get("next_cursor") or None
                if not cursor:
                    return False
        except (SlackApiError, aiohttp.ClientError, TimeoutError) as exc:
            log.warning(
                "cannot list the members of %s (%s): treating %s as a guest", channel, exc, user
            )
            return False

    async def _post_card(
        self, cmd: Command, card: Card, text: str, respond: Callable[..., Awaitable[Any]]
    ) -> None:
        """A paper someone asked for (/summarize), in the channel, with its buttons."""
        messages = render_card(
            card,
            note=f"/summarize requested by <@{cmd.user}>",
            metadata={
                "event_type": SUMMARY_EVENT,
                "event_payload": {"paper": card.paper_id, "user": cmd.user},
            },
        )
        try:
            first = await self._post(cmd.chat, messages[0])
        except DeliveryError as exc:
            log.info("cannot post the /summarize answer into %s (%s)", cmd.chat, exc)
        else:
            try:
                for msg in messages[1:]:
                    await self._post(cmd.chat, msg, thread_ts=first["ts"])
            except DeliveryError as exc:
                log.warning("the rest of a long /summarize answer was refused: %s", exc)
                await self._respond(respond, f"Only part of the summary could be posted: {exc}")
            return
        # The bot is not in this conversation (a DM, a private channel): response_url still
        # reaches it, without threading.
        try:
            for msg in messages:
                await respond(text=msg["text"], blocks=msg["blocks"], response_type="in_channel")
        except Exception:
            log.exception("cannot answer /summarize through response_url either")
            await self._respond(respond, text)

    async def _respond(
        self, respond: Callable[..., Awaitable[Any]], text: str, *, ephemeral: bool = True
    ) -> None:
        try:
            await respond(
                text=reply_text(text),
                response_type="ephemeral" if ephemeral else "in_channel",
                replace_original=False,
            )
        except Exception:
            log.exception("cannot answer through response_url")

    # -- ratings ---------------------------------------------------------------------------------
    async def _run_rating(
        self, body: dict[str, Any], respond: Callable[..., Awaitable[Any]]
    ) -> None:
        try:
            press = parse_action(body)
        except ValueError as exc:
            log.warning("ignoring a malformed rating payload: %s", exc)
            return
        # Serialised per message so two quick presses can't leave an older tally on screen.
        async with self._message_locks((press.channel, press.message_ts)):
            try:
                reply = await self.core.rate(
                    PLATFORM, press.channel, press.user, press.paper_id, press.value
                )
            except Exception:
                log.exception("rating in %s failed", press.channel)
                reply = Reply(text=GENERIC_ERROR, ephemeral=True, error=True)
            # Without the message's blocks (never the case for a real click) there is nothing
            # to redraw: the ephemeral confirmation alone tells the person.
            if not reply.error and reply.data.get("changed") and press.blocks:
                blocks = with_buttons(press.blocks, reply.buttons)
                await self._show_tally(press.channel, press.message_ts, press.text, blocks, respond)
        await self._respond(respond, reply.text)

    async def _show_tally(
        self,
        channel: str,
        ts: str,
        text: str,
        blocks: list[dict[str, Any]],
        respond: Callable[..., Awaitable[Any]],
    ) -> None:
        try:
            await self.client.chat_update(
                channel=channel, ts=ts, text=text or "arXiv paper", blocks=blocks
            )
            return
        except (SlackApiError, aiohttp.ClientError, TimeoutError) as exc:
            log.info("chat.update of %s/%s failed (%s); trying response_url", channel, ts, exc)
        try:
            await respond(text=text or "arXiv paper", blocks=blocks, replace_original=True)
        except Exception:
            log.exception("cannot update the rated message %s/%s", channel, ts)

    # -- Sender ----------------------------------------------------------------------------------
    async def send_header(self, digest: Digest) -> Sent:
        resp = await self._post(digest.subscription.chat, render_header(digest))
        return Sent(resp["ts"], resp["ts"])

    async def send_item(self, digest: Digest, card: Card, thread: Sent) -> Sent:
        sub = digest.subscription
        messages = render_item(digest, card)
        thread_ts = thread.thread_id or thread.message_id
        key = (sub.id, digest.day, card.paper_id)
        first, done = self._partial.pop(key, (None, 0))
        for i in range(done, len(messages)):
            try:
                resp = await self._post(sub.chat, messages[i], thread_ts=thread_ts)
            except DeliveryError:
                if first is not None:
                    self._partial[key] = (first, i)
                raise
            if first is None:
                first = Sent(resp["ts"], thread_ts)
        assert first is not None
        return first

    async def find_sent(
        self, digest: Digest, card: Card | None, thread: Sent | None
    ) -> Sent | None:
        """Find a message by its metadata; None when it is not there (DeliveryError when Slack
        can't say right now)."""
        sub, day = digest.subscription, digest.day
        paper_id = card.paper_id if card is not None else HEADER
        try:
            if paper_id == HEADER:
                return await self._find_header(sub, day)
            if thread is None:
                return None
            return await self._find_reply(sub, day, paper_id, thread)
        except (SlackApiError, aiohttp.ClientError, TimeoutError) as exc:
            # Not knowing is not "not there": the ledger keeps the row ambiguous and retries.
            raise DeliveryError(
                f"cannot look up {sub.label}/{day}/{paper_id or 'header'} on Slack ({exc})"
            ) from None

    # -- the compact layout ------------------------------------------------------------------
    def compact_sizes(self, view: CompactDigest) -> list[int]:
        return compact_sizes(view)

    async def send_compact(self, digest: Digest, part: CompactDigest, thread: Sent | None) -> Sent:
        """One compact message in the channel; a later part (past Slack's block limits) in
        the first one's thread."""
        thread_ts = (thread.thread_id or thread.message_id) if thread is not None else None
        resp = await self._post(digest.subscription.chat, render_compact(digest, part), thread_ts)
        return Sent(resp["ts"], thread_ts or resp["ts"])

    async def find_compact(
        self, digest: Digest, part: CompactDigest, thread: Sent | None
    ) -> Sent | None:
        """A compact message by its metadata (the first row it carries), like find_sent."""
        sub, day = digest.subscription, digest.day
        first = HEADER if part.header is not None else part.paper_ids[0]
        try:
            if first == HEADER:
                return await self._find_header(sub, day)
            if thread is None:
                return None
            return await self._find_reply(sub, day, first, thread)
        except (SlackApiError, aiohttp.ClientError, TimeoutError) as exc:
            raise DeliveryError(
                f"cannot look up {sub.label}/{day}/{first or 'header'} on Slack ({exc})"
            ) from None

    async def _find_header(self, sub: Subscription, day: dt.date) -> Sent | None:
        # A day's header is posted on that announcement day or later (catch-up), never before.
        since = dt.datetime.combine(day - dt.timedelta(days=1), dt.time(), tzinfo=dt.UTC)
        cursor: str | None = None
        for _ in range(20):
            page = await self.client.conversations_history(
                channel=sub.chat,
                oldest=f"{since.timestamp():.6f}",
                include_all_metadata=True,
                limit=200,
                cursor=cursor,
            )
            for msg in page.get("messages") or []:
                if self._ours(msg) and metadata_matches(msg, sub.id, day, HEADER):
                    return Sent(msg["ts"], msg["ts"])
            cursor = (page.get("response_metadata") or {}).get("next_cursor") or None
            if not cursor:
                break
        return None

    async def _find_reply(
        self, sub: Subscription, day: dt.date, paper_id: str, thread: Sent
    ) -> Sent | None:
        thread_ts = thread.thread_id or thread.message_id
        cursor: str | None = None
        for _ in range(50):
            page = await self.client.conversations_replies(
                channel=sub.chat,
                ts=thread_ts,
                include_all_metadata=True,
                limit=200,
                cursor=cursor,
            )
            for msg in page.get("messages") or []:
                if self._ours(msg) and metadata_matches(msg, sub.id, day, paper_id):
                    return Sent(msg["ts"], thread_ts)
            cursor = (page.get("response_metadata") or {}).get("next_cursor") or None
            if not cursor:
                break
        return None

    def _ours(self, msg: dict[str, Any]) -> bool:
        # Any app can attach metadata of any event_type: only trust our own bot's messages.
        return self.bot_id is None or msg.get("bot_id") == self.bot_id

    async def send_note(self, sub: Subscription, text: str) -> None:
        await self._post(sub.chat, {"text": reply_text(text)})

    async def _post(self, channel: str, message: Message, thread_ts: str | None = None) -> Any:
        """chat.postMessage, at most one per post_interval_s per channel; Slack's refusals
        become DeliveryError (permanent when the channel is gone for good)."""
        async with self._pacer.turn(channel):
            try:
                return await self.client.chat_postMessage(
                    channel=channel,
                    thread_ts=thread_ts,
                    unfurl_links=False,
                    unfurl_media=False,
                    **message,
                )
            except SlackApiError as exc:
                error = _api_error(exc)
                code = exc.response.get("error") if isinstance(exc.response.data, dict) else None
                permanent = code in PERMANENT_ERRORS
                raise DeliveryError(
                    f"Slack refused a message to {channel}: {error}", permanent=permanent
                ) from None
            except (aiohttp.ClientError, TimeoutError) as exc:
                raise DeliveryError(f"cannot reach Slack to post to {channel}: {exc!r}") from None
