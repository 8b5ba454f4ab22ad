"""Slack adapter: slack-bolt's AsyncApp behind :class:`bot.platform.Adapter` (Socket Mode or
HTTP events; one bot token, or an app installed into many workspaces through OAuth).

A thin translator: payloads become ``Command`` values and button presses for
:class:`bot.core.Core`, whose replies and cards are rendered (:mod:`adapters.slack.blocks`)
and sent back; digests are posted through the core's delivery, for which this class is the
:class:`~bot.platform.Sender`.

Slack drops a slash command or button press that is not acknowledged within 3 seconds, and
the core may spend seconds on the LLM or arXiv.  So every listener only parses and acks (with
the command's declared "working…" text); the work runs afterwards as a task of ours and the
answer goes out through ``response_url`` or the channel.

With ``slack.oauth`` each workspace installs the app through Bolt's own OAuth flow
(``/slack/install``, ``/slack/oauth_redirect``); the installations live in herald's database
(:mod:`adapters.slack.installs`), Bolt authorizes every request with its workspace's token, and
every message to a chat goes out with the token of the workspace in its address
(:mod:`adapters.slack.address`).
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import logging
import re
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass
from typing import Any

import aiohttp
from aiohttp import web
from slack_bolt.adapter.aiohttp import to_aiohttp_response
from slack_bolt.adapter.socket_mode.async_handler import AsyncSocketModeHandler
from slack_bolt.app.async_app import AsyncApp
from slack_bolt.authorization import AuthorizeResult
from slack_bolt.authorization.async_authorize import AsyncInstallationStoreAuthorize
from slack_bolt.context.async_context import AsyncBoltContext
from slack_bolt.oauth.async_oauth_settings import AsyncOAuthSettings
from slack_bolt.request.async_request import AsyncBoltRequest
from slack_sdk.errors import SlackApiError
from slack_sdk.http_retry.builtin_async_handlers import (
    AsyncConnectionErrorRetryHandler,
    AsyncRateLimitErrorRetryHandler,
    AsyncServerErrorRetryHandler,
)
from slack_sdk.http_retry.interval_calculator import RetryIntervalCalculator
from slack_sdk.oauth.installation_store.models.installation import Installation
from slack_sdk.web.async_client import AsyncWebClient

from adapters.slack import PLATFORM, SlackSection
from adapters.slack.address import chat_address, split_address
from adapters.slack.blocks import (
    ANSWER_EVENT,
    ARXIV_COMMAND,
    SUMMARIZE_COMMAND,
    SUMMARY_EVENT,
    Message,
    compact_sizes,
    metadata_matches,
    paper_of,
    parse_action,
    parse_slash,
    parse_thread_message,
    render_answer,
    render_card,
    render_compact,
    render_header,
    render_item,
    reply_text,
    with_buttons,
)
from adapters.slack.files import FileImports
from adapters.slack.installs import HeraldInstallations, HeraldOAuthStates, workspace_key
from bot.cards import RATE_DOWN, RATE_UP, CompactDigest
from bot.commands import GENERIC_ERROR, make_command
from bot.config import Config, secret
from bot.core import Core
from bot.delivery import HEADER
from bot.errors import ConfigError, DeliveryError
from bot.models import Card, Command, Digest, Reply, Subscription
from bot.pacing import KeyedLocks, Pacer
from bot.platform import Sent

log = logging.getLogger(__name__)

EVENTS_PATH = "/slack/events"
INSTALL_PATH = "/slack/install"
REDIRECT_PATH = "/slack/oauth_redirect"
_WORKSPACE_ID = re.compile(r"^[TE][A-Z0-9]{1,20}$")
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


# Errors that mean the workspace's token is dead: with OAuth, the app left that workspace.
DEAD_TOKEN_ERRORS = frozenset(
    {"invalid_auth", "not_authed", "token_revoked", "token_expired", "account_inactive"}
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


@dataclass(frozen=True, slots=True)
class _Bot:
    """The client that speaks for the app in one workspace, and who it is there."""

    client: AsyncWebClient
    bot_id: str | None
    bot_user_id: str | None


def _installation_of(token: str, auth: Any) -> Installation:
    """The installation a bot token stands for, from its auth.test (scopes from the header)."""
    headers = {k.lower(): v for k, v in (getattr(auth, "headers", None) or {}).items()}
    scopes = headers.get("x-oauth-scopes") or ""
    return Installation(
        app_id=auth.get("app_id"),
        enterprise_id=auth.get("enterprise_id"),
        team_id=auth.get("team_id"),
        team_name=auth.get("team"),
        bot_token=token,
        bot_id=auth.get("bot_id"),
        bot_user_id=auth.get("user_id"),
        bot_scopes=[s.strip() for s in str(scopes).split(",") if s.strip()],
        user_id="",
        is_enterprise_install=bool(auth.get("is_enterprise_install")),
        token_type="bot",
    )


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
        self.oauth = cfg.oauth
        # With OAuth the bot token is optional: when set, it is the workspace the app served
        # before it was distributed, adopted on connect().
        bot_token = (
            secret(cfg.bot_token_env)
            if cfg.oauth
            else _require(cfg, "bot_token_env", "the bot token, xoxb-…")
        )
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
        self._base_url = (
            cfg.api_base_url if cfg.api_base_url.endswith("/") else cfg.api_base_url + "/"
        )
        self._retries = (rate_limit_retries, server_error_retries)
        self._home_token = bot_token
        # The single-token client; with OAuth a client without a token (Bolt's OAuth flow
        # calls oauth.v2.access with it, each workspace gets a client of its own).
        self.client = self._new_client(None if cfg.oauth else bot_token)
        self._auth: AuthorizeResult | None = None
        self._auth_lock = asyncio.Lock()
        self._bots: dict[str, _Bot] = {}  # workspace -> its client, while installed
        self._client_credentials: tuple[str, str] | None = None
        self.installations: HeraldInstallations | None = None
        self.oauth_states: HeraldOAuthStates | None = None
        if cfg.oauth:
            self.app = self._oauth_app(cfg, signing_secret)
        else:

            async def authorize(team_id: str | None) -> AuthorizeResult:
                return await self._authorization()

            self.app = AsyncApp(
                client=self.client,
                signing_secret=signing_secret,
                # Socket Mode messages are not signed; HTTP requests are checked by Bolt.
                request_verification_enabled=cfg.mode == "http",
                # Bolt's default single-team authorization calls auth.test on the first
                # request, once per request until one returns: a burst right after start-up
                # would pay for 50 auth.tests before the first ack.  connect() already knows
                # the answer.
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
        # Questions in threads (bot.ask): the paper each thread hangs off, and the events
        # already handled (Slack redelivers an event it thinks was missed).
        self._thread_papers: dict[tuple[str, str], str | None] = {}
        self._seen_messages: dict[tuple[str, str], None] = {}

    def _new_client(self, token: str | None) -> AsyncWebClient:
        # 429s wait out Retry-After and 5xx back off, inside slack_sdk: no retry loop of ours.
        # slack_sdk counts attempts per request across all handlers, so each budget is the
        # total number of retries one call may take, whatever the mix of 429s and 5xx.
        rate_limit_retries, server_error_retries = self._retries
        return AsyncWebClient(
            token=token,
            base_url=self._base_url,
            timeout=30,
            retry_handlers=[
                AsyncConnectionErrorRetryHandler(max_retry_count=1),
                AsyncRateLimitErrorRetryHandler(max_retry_count=rate_limit_retries),
                AsyncServerErrorRetryHandler(
                    max_retry_count=server_error_retries, interval_calculator=_CappedBackoff()
                ),
            ],
        )

    def _oauth_app(self, cfg: SlackSection, signing_secret: str) -> AsyncApp:
        """Bolt with its own OAuth flow, installation store and state store in our database."""
        client_id = _require(cfg, "client_id_env", "the app's Client ID")
        client_secret = _require(cfg, "client_secret_env", "the app's Client Secret")
        self._client_credentials = (client_id, client_secret)
        installations = self.installations = HeraldInstallations(
            self.core.installations, changed=self._forget_bot
        )
        states = self.oauth_states = HeraldOAuthStates(
            self.core.installations, expiration_seconds=cfg.state_expiration_s
        )
        settings = AsyncOAuthSettings(
            client_id=client_id,
            client_secret=client_secret,
            scopes=list(cfg.scopes),
            user_scopes=[],
            redirect_uri=self.redirect_uri,
            install_path=INSTALL_PATH,
            redirect_uri_path=REDIRECT_PATH,
            authorization_url=cfg.authorize_url,
            installation_store=installations,
            installation_store_bot_only=True,
            state_store=states,
            state_expiration_seconds=cfg.state_expiration_s,
            logger=_BOLT_LOG,
        )
        # Bolt's own authorize, finding each request's workspace in the installations, with
        # its cache on: no auth.test per request (the cache is keyed by token, so a reinstall
        # or an uninstall, which replace or remove the token, are never served stale).
        settings.authorize = AsyncInstallationStoreAuthorize(
            logger=_BOLT_LOG,
            installation_store=installations,
            client_id=client_id,
            client_secret=client_secret,
            bot_only=True,
            cache_enabled=True,
        )
        app = AsyncApp(
            client=self.client,
            signing_secret=signing_secret,
            oauth_settings=settings,
            logger=_BOLT_LOG,
            name="arxiv-herald",
        )
        return app

    @property
    def redirect_uri(self) -> str | None:
        """Where Slack sends the browser back after an install: slack.redirect_uri, else
        web.public_url's /slack/oauth_redirect, else (None) the app's own Redirect URL."""
        if self.section.redirect_uri:
            return self.section.redirect_uri
        public = self.config.web.public_url
        return public.rstrip("/") + REDIRECT_PATH if public else None

    @property
    def install_url(self) -> str:
        public = self.config.web.public_url
        return (public.rstrip("/") if public else "") + INSTALL_PATH

    # -- adapter lifecycle ---------------------------------------------------------------------
    @property
    def connected(self) -> bool:
        return self._authed and (self._listening or self.mode == "http")

    async def connect(self) -> None:
        cfg = self.section
        if self.oauth:
            await self._connect_oauth()
            return
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

    async def _connect_oauth(self) -> None:
        """Nothing to check up front: each workspace's token is checked by Bolt on its first
        request.  A bot token in the environment is the workspace herald served before OAuth
        was on: it becomes that workspace's installation, and its chats get addresses with
        the workspace in them, so nobody has to install or subscribe again."""
        assert self.installations is not None and self._client_credentials is not None
        await self._check_client_credentials(*self._client_credentials)
        plain = [c for c in await self.core.chats(PLATFORM) if split_address(c)[0] is None]
        if self._home_token:
            client = self._new_client(self._home_token)
            auth = await self._check(client.auth_test(), self.section.bot_token_env, "bot token")
            workspace = workspace_key(
                auth.get("enterprise_id"), auth.get("team_id"), auth.get("is_enterprise_install")
            )
            if await self.installations.find(workspace) is None:
                await self.installations.async_save(_installation_of(self._home_token, auth))
            for chat in plain:
                await self.core.migrate_chat(PLATFORM, chat, chat_address(workspace, chat))
            if plain:
                log.info("Slack: %d chat(s) of %s now carry its workspace", len(plain), workspace)
        elif plain:
            log.warning(
                "Slack: %d subscription(s) predate OAuth and name no workspace; set %s to the "
                "old bot token once, so herald can tell which workspace they are in",
                len(plain),
                self.section.bot_token_env,
            )
        self._authed = True
        log.info("Slack: OAuth on; workspaces add the app at %s", self.install_url)

    async def _check_client_credentials(self, client_id: str, client_secret: str) -> None:
        """A wrong client id or secret would only show when the first workspace installs.
        Slack names them before it looks at the code, so exchanging a code that is no code
        tells now (``invalid_code`` means both are right)."""
        cfg = self.section
        wrong = {
            "invalid_client_id": f"the Client ID in {cfg.client_id_env}",
            "bad_client_secret": f"the Client Secret in {cfg.client_secret_env}",
        }
        try:
            await self.client.oauth_v2_access(
                client_id=client_id, client_secret=client_secret, code="herald-start-check"
            )
        except SlackApiError as exc:
            data = exc.response.data if isinstance(exc.response.data, dict) else {}
            what = wrong.get(str(data.get("error")))
            if what is not None:
                raise ConfigError(
                    f"Slack rejected {what} ({data.get('error')}); copy it again from the "
                    "app's Basic Information → App Credentials (api.slack.com/apps)"
                ) from None
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise self._unreachable(exc) from None

    def _unreachable(self, exc: BaseException) -> ConfigError:
        return ConfigError(
            f"cannot reach the Slack API at {self.client.base_url} ({exc!r}); "
            "check slack.api_base_url and the network"
        )

    async def _check(self, call: Awaitable[Any], env_name: str, what: str) -> Any:
        try:
            return await call
        except SlackApiError as exc:
            raise ConfigError(
                f"Slack rejected the {what} in {env_name}: {_api_error(exc)}; copy it again "
                "from the app's settings page (api.slack.com/apps)"
            ) from None
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise self._unreachable(exc) from None

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
        routes = [web.post(EVENTS_PATH, self.handle_http)]
        if self.oauth:
            routes += [
                web.get(INSTALL_PATH, self.handle_oauth),
                web.get(REDIRECT_PATH, self.handle_oauth),
            ]
        return routes

    async def handle_oauth(self, request: web.Request) -> web.Response:
        """The "Add to Slack" page and the OAuth redirect, answered by Bolt's OAuth flow: it
        issues the state (cookie + our state store), and on the way back checks both,
        exchanges the code through oauth.v2.access and saves the installation."""
        flow = self.app.oauth_flow
        if flow is None:
            raise web.HTTPNotFound()
        query = request.query_string
        if request.path == INSTALL_PATH:
            # Bolt copies ?team= into the authorize URL as it is: only a workspace id passes.
            team = request.query.get("team", "")
            query = f"team={team}" if _WORKSPACE_ID.match(team) else ""
        bolt_request = AsyncBoltRequest(
            body="", query=query, headers={k: v for k, v in request.headers.items()}
        )
        try:
            if request.path == INSTALL_PATH:
                response = await flow.handle_installation(bolt_request)
            else:
                response = await flow.handle_callback(bolt_request)
        except (aiohttp.ClientError, TimeoutError) as exc:
            log.warning("Slack install: cannot reach the Slack API (%r)", exc)
            return web.Response(
                status=502, text="Slack could not be reached to finish the install; try again."
            )
        return await to_aiohttp_response(response)

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

    def _forget_bot(self, workspace: str) -> None:
        """The workspace was (re)installed or removed: its next message looks its token up."""
        self._bots.pop(workspace, None)

    async def _bot(self, workspace: str | None) -> _Bot:
        """Who speaks in ``workspace`` (None: the single-token workspace)."""
        if workspace is None:
            if self.oauth:
                raise DeliveryError(
                    "this Slack subscription predates OAuth and names no workspace; set "
                    f"{self.section.bot_token_env} to the old bot token and restart, or "
                    "/arxiv subscribe in the channel again",
                    permanent=True,
                )
            return _Bot(self.client, self.bot_id, self.bot_user_id)
        bot = self._bots.get(workspace)
        if bot is not None:
            return bot
        assert self.installations is not None
        inst = await self.installations.find(workspace)
        if inst is None or not inst.bot_token:
            # Removed: the very reason its subscriptions were stopped with, so that a
            # reinstall starts this one again too.
            reason = await self.installations.removal(workspace)
            raise DeliveryError(
                reason
                or f"the Slack app is not installed in workspace {workspace}; install it "
                f"there from {self.install_url}",
                permanent=True,
            )
        bot = _Bot(self._new_client(inst.bot_token), inst.bot_id, inst.bot_user_id)
        self._bots[workspace] = bot
        return bot

    async def _route(self, chat: str) -> tuple[_Bot, str]:
        """The client for a chat address, and the channel id to give it."""
        workspace, channel = split_address(chat)
        return await self._bot(workspace), channel

    async def speaker(self, chat: str) -> tuple[AsyncWebClient, str, str | None]:
        """(client, channel id, the bot's user id) for a chat address."""
        bot, channel = await self._route(chat)
        return bot.client, channel, bot.bot_user_id

    def address(self, context: AsyncBoltContext, channel: str) -> str:
        """The chat address of ``channel`` in the workspace a request came from."""
        return chat_address(self._workspace(context), channel)

    def _workspace(self, context: AsyncBoltContext) -> str | None:
        """The workspace a request came from, as chat addresses name it (None: one token)."""
        if not self.oauth:
            return None
        return workspace_key(context.enterprise_id, context.team_id, context.is_enterprise_install)

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
        async def on_command(
            ack: Any, body: dict[str, Any], respond: Any, context: AsyncBoltContext
        ) -> None:
            try:
                cmd = parse_slash(body)
                cmd = dataclasses.replace(
                    cmd, chat=chat_address(self._workspace(context), cmd.chat)
                )
            except ValueError as exc:
                await ack(text=f"Sorry, I can't handle that: {exc}")
                return
            working = self.core.working_text(cmd)
            if working is not None:
                await ack(text=reply_text(working))
            else:
                await ack()
            self._spawn(self._run_command(cmd, respond))

        async def on_rate(
            ack: Any, body: dict[str, Any], respond: Any, context: AsyncBoltContext
        ) -> None:
            await ack()
            self._spawn(self._run_rating(body, respond, self._workspace(context)))

        async def on_uninstalled(context: AsyncBoltContext) -> None:
            await self._remove_workspace(
                self._workspace(context), "Slack app uninstalled from {}", final=True
            )

        async def on_tokens_revoked(event: dict[str, Any], context: AsyncBoltContext) -> None:
            tokens = event.get("tokens") or {}
            if tokens.get("bot"):
                await self._remove_workspace(
                    self._workspace(context), "Slack bot token revoked in {}"
                )
                return
            assert self.installations is not None
            for user in tokens.get("oauth") or []:
                await self.installations.async_delete_installation(
                    enterprise_id=context.enterprise_id, team_id=context.team_id, user_id=user
                )

        async def on_error(error: Exception, body: dict[str, Any]) -> None:
            log.error("Slack listener failed: %r (payload type %s)", error, body.get("type"))

        async def on_message(event: dict[str, Any], context: AsyncBoltContext) -> None:
            self._spawn(self._run_thread_message(event, self._workspace(context)))

        app.command(ARXIV_COMMAND)(on_command)
        app.command(SUMMARIZE_COMMAND)(on_command)
        app.event("message")(on_message)
        app.action(RATE_UP)(on_rate)
        app.action(RATE_DOWN)(on_rate)
        if self.oauth:
            app.event("app_uninstalled")(on_uninstalled)
            app.event("tokens_revoked")(on_tokens_revoked)
        app.error(on_error)
        # Library files shared with the app (BibTeX, RIS, CSL JSON) seed a chat's profile.
        FileImports(self, self._spawn, self._post).register(app)

    async def _remove_workspace(
        self, workspace: str | None, why: str, *, final: bool = False
    ) -> str:
        """Uninstalled, or its bot token revoked or dead: the workspace's tokens go and its
        chats' digests stop, saying why (``herald status`` shows it); returns the reason
        they carry.  ``why`` has a ``{}`` for the workspace; the uninstall itself is
        ``final`` (its reason wins over a revocation's, whichever event came first)."""
        assert self.installations is not None and workspace is not None
        name = await self.installations.name(workspace)
        reason = why.format(f"{name} ({workspace})" if name else workspace)
        reason = f"{reason} on {dt.datetime.now(dt.UTC):%Y-%m-%d}"
        log.info("%s", reason)
        return await self.installations.removed(workspace, reason, final=final) or reason

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
            if reply.data.get("ask") and not reply.error:
                await self._post_answer(cmd, reply, respond)
            elif reply.card is not None and not reply.error:
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
            bot, channel_id = await self._route(channel)
            while True:
                page = await bot.client.conversations_members(
                    channel=channel_id, limit=1000, cursor=cursor
                )
                if user in (page.get("members") or []):
                    return True
                cursor = (page.get("response_metadata") or {}).get("next_cursor") or None
                if not cursor:
                    return False
        except (SlackApiError, DeliveryError, aiohttp.ClientError, TimeoutError) as exc:
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

    # -- questions about a paper (bot.ask) ------------------------------------------------------
    async def _post_answer(
        self, cmd: Command, reply: Reply, respond: Callable[..., Awaitable[Any]]
    ) -> None:
        """An answer to ``/arxiv ask``, in the channel: its thread is where follow-ups go."""
        paper = reply.data["ask"]["paper"]
        message = render_answer(
            reply.text,
            note=f"asked by <@{cmd.user}>",
            metadata={
                "event_type": ANSWER_EVENT,
                "event_payload": {"paper": paper, "user": cmd.user},
            },
        )
        try:
            sent = await self._post(cmd.chat, message)
        except DeliveryError as exc:
            # Not in this conversation: response_url still reaches it (without a thread).
            log.info(
                "cannot post the answer into %s (%s); answering through response_url", cmd.chat, exc
            )
            try:
                await respond(
                    text=message["text"], blocks=message["blocks"], response_type="in_channel"
                )
            except Exception:
                log.exception("cannot answer /arxiv ask through response_url either")
            return
        await self.core.answered(PLATFORM, cmd.chat, sent["ts"], reply)

    async def _run_thread_message(self, event: dict[str, Any], workspace: str | None) -> None:
        """A reply in a thread: a question about the thread's paper is answered there."""
        try:
            bot = await self._bot(workspace)
        except DeliveryError:
            return  # a workspace we are no longer installed in
        msg = parse_thread_message(event, bot.bot_user_id)
        if msg is None or not self.core.may_be_question(msg.text, addressed=msg.addressed):
            return
        chat = chat_address(workspace, msg.channel)
        if not self._first_delivery(chat, msg.ts):
            return
        try:
            about = await self._thread_paper(chat, msg.thread_ts)
            question = await self.core.question_in_thread(
                PLATFORM,
                chat,
                msg.user,
                msg.thread_ts,
                msg.text,
                about=about,
                addressed=msg.addressed,
            )
            if question is None:
                return
            working = self.core.working_text(make_command(PLATFORM, chat, msg.user, "ask"))
            if working:
                await self._tell(chat, msg.user, msg.thread_ts, working, fallback=False)
            reply = await self.core.ask(question)
            if reply.error:
                await self._tell(chat, msg.user, msg.thread_ts, reply.text)
                return
            sent = await self._post(chat, render_answer(reply.text), thread_ts=msg.thread_ts)
            await self.core.answered(PLATFORM, chat, sent["ts"], reply)
        except asyncio.CancelledError:
            raise
        except DeliveryError as exc:
            log.warning("cannot answer a question in %s/%s: %s", chat, msg.thread_ts, exc)
        except Exception:
            log.exception("a question in %s/%s failed", chat, msg.thread_ts)

    def _first_delivery(self, channel: str, ts: str) -> bool:
        key = (channel, ts)
        if key in self._seen_messages:
            return False
        self._seen_messages[key] = None
        if len(self._seen_messages) > 4096:
            self._seen_messages.pop(next(iter(self._seen_messages)))
        return True

    async def _thread_paper(self, chat: str, thread_ts: str) -> str | None:
        """The paper a thread hangs off (``""``: a digest's header; None: not ours): the core
        knows digests and answers; anything else (a /summarize card) says so in its metadata."""
        ref = await self.core.paper_for_message(PLATFORM, chat, thread_ts)
        if ref is not None:
            return ref.paper_id
        key = (chat, thread_ts)
        if key in self._thread_papers:
            return self._thread_papers[key]
        try:
            bot, channel = await self._route(chat)
            page = await bot.client.conversations_replies(
                channel=channel, ts=thread_ts, limit=1, include_all_metadata=True
            )
        except (SlackApiError, aiohttp.ClientError, TimeoutError, DeliveryError) as exc:
            log.info("cannot read the parent of thread %s/%s: %s", chat, thread_ts, exc)
            return None
        parent: dict[str, Any] = next(iter(page.get("messages") or []), {})
        paper = paper_of(parent) if parent and _ours(bot, parent) else None
        if len(self._thread_papers) > 4096:
            self._thread_papers.clear()
        self._thread_papers[key] = paper
        return paper

    async def _tell(
        self, chat: str, user: str, thread_ts: str, text: str, *, fallback: bool = True
    ) -> None:
        """A note only ``user`` sees, in the thread; when Slack refuses that, posted in the
        thread for everyone (``fallback``) or dropped."""
        try:
            bot, channel = await self._route(chat)
            await bot.client.chat_postEphemeral(
                channel=channel, user=user, thread_ts=thread_ts, text=reply_text(text)
            )
            return
        except (SlackApiError, aiohttp.ClientError, TimeoutError) as exc:
            log.info("cannot post an ephemeral note in %s (%s)", chat, exc)
        if fallback:
            await self._post(chat, {"text": reply_text(text)}, thread_ts=thread_ts)

    # -- ratings ---------------------------------------------------------------------------------
    async def _run_rating(
        self,
        body: dict[str, Any],
        respond: Callable[..., Awaitable[Any]],
        workspace: str | None = None,
    ) -> None:
        try:
            press = parse_action(body)
        except ValueError as exc:
            log.warning("ignoring a malformed rating payload: %s", exc)
            return
        press = dataclasses.replace(press, channel=chat_address(workspace, press.channel))
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
            bot, channel_id = await self._route(channel)
            await bot.client.chat_update(
                channel=channel_id, ts=ts, text=text or "arXiv paper", blocks=blocks
            )
            return
        except (SlackApiError, DeliveryError, aiohttp.ClientError, TimeoutError) as exc:
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
        return await self._find(digest, card.paper_id if card is not None else HEADER, thread)

    async def _find(self, digest: Digest, paper_id: str, thread: Sent | None) -> Sent | None:
        """The message carrying ``paper_id``'s row (HEADER: the digest's header) by its
        metadata; None when it is not there."""
        sub, day = digest.subscription, digest.day
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
        return await self._find(
            digest, HEADER if part.header is not None else part.paper_ids[0], thread
        )

    async def _find_header(self, sub: Subscription, day: dt.date) -> Sent | None:
        # A day's header is posted on that announcement day or later (catch-up), never before.
        since = dt.datetime.combine(day - dt.timedelta(days=1), dt.time(), tzinfo=dt.UTC)
        bot, channel = await self._route(sub.chat)
        cursor: str | None = None
        for _ in range(20):
            page = await bot.client.conversations_history(
                channel=channel,
                oldest=f"{since.timestamp():.6f}",
                include_all_metadata=True,
                limit=200,
                cursor=cursor,
            )
            for msg in page.get("messages") or []:
                if _ours(bot, msg) and metadata_matches(msg, sub.id, day, HEADER):
                    return Sent(msg["ts"], msg["ts"])
            cursor = (page.get("response_metadata") or {}).get("next_cursor") or None
            if not cursor:
                break
        return None

    async def _find_reply(
        self, sub: Subscription, day: dt.date, paper_id: str, thread: Sent
    ) -> Sent | None:
        thread_ts = thread.thread_id or thread.message_id
        bot, channel = await self._route(sub.chat)
        cursor: str | None = None
        for _ in range(50):
            page = await bot.client.conversations_replies(
                channel=channel,
                ts=thread_ts,
                include_all_metadata=True,
                limit=200,
                cursor=cursor,
            )
            for msg in page.get("messages") or []:
                if _ours(bot, msg) and metadata_matches(msg, sub.id, day, paper_id):
                    return Sent(msg["ts"], thread_ts)
            cursor = (page.get("response_metadata") or {}).get("next_cursor") or None
            if not cursor:
                break
        return None

    async def send_note(self, sub: Subscription, text: str) -> None:
        await self._post(sub.chat, {"text": reply_text(text)})

    async def _post(self, chat: str, message: Message, thread_ts: str | None = None) -> Any:
        """chat.postMessage into a chat address with its workspace's token, at most one per
        post_interval_s per channel; Slack's refusals become DeliveryError (permanent when
        the channel, or the app's place in the workspace, is gone for good)."""
        bot, channel = await self._route(chat)
        async with self._pacer.turn(chat):
            try:
                return await bot.client.chat_postMessage(
                    channel=channel,
                    thread_ts=thread_ts,
                    unfurl_links=False,
                    unfurl_media=False,
                    **message,
                )
            except SlackApiError as exc:
                error = _api_error(exc)
                code = exc.response.get("error") if isinstance(exc.response.data, dict) else None
                workspace = split_address(chat)[0]
                if self.oauth and workspace and code in DEAD_TOKEN_ERRORS:
                    # The app left the workspace while we were not listening (no event).
                    gone = await self._remove_workspace(
                        workspace, f"Slack app's token stopped working in {{}} ({code})"
                    )
                    raise DeliveryError(gone, permanent=True) from None
                permanent = code in PERMANENT_ERRORS
                raise DeliveryError(
                    f"Slack refused a message to {chat}: {error}", permanent=permanent
                ) from None
            except (aiohttp.ClientError, TimeoutError) as exc:
                raise DeliveryError(f"cannot reach Slack to post to {chat}: {exc!r}") from None


def _ours(bot: _Bot, msg: dict[str, Any]) -> bool:
    # Any app can attach metadata of any event_type: only trust our own bot's messages.
    return bot.bot_id is None or msg.get("bot_id") == bot.bot_id
