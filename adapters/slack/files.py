"""Library files shared in Slack: an event listener and a download helper.

A file shared in a channel (or a DM) with the app arrives twice — as a ``message`` event of
subtype ``file_share`` and as a ``file_shared`` event — so each file is handled once.  Its
details come from ``files.info``, its bytes from ``url_private_download`` with the bot token
(the app needs the ``files:read`` scope).  What to import, and every word of the answer, is
the core's: this module only finds the file, downloads it and posts the reply in the file's
thread.
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Protocol
from urllib.parse import urlsplit

import aiohttp
from slack_bolt.app.async_app import AsyncApp
from slack_bolt.context.async_context import AsyncBoltContext
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from adapters.slack import PLATFORM
from adapters.slack.blocks import reply_text
from bot.core import Core
from bot.errors import DeliveryError
from bot.library import MAX_BYTES

log = logging.getLogger(__name__)

#: Files remembered as handled (both events of one share, or Slack's retries of an event).
SEEN_FILES = 1024
DOWNLOAD_TIMEOUT_S = 60.0


@dataclass(frozen=True, slots=True)
class SharedFile:
    file_id: str
    channel: str
    user: str
    ts: str | None  # the file_share message, when the event says (its thread gets the answer)
    thread_ts: str | None = None


def parse_file_event(event: dict[str, Any]) -> list[SharedFile]:
    """The files a ``message``/``file_share`` or ``file_shared`` event announces."""
    kind = event.get("type")
    if kind == "file_shared":
        file_id = str(event.get("file_id") or (event.get("file") or {}).get("id") or "")
        channel = str(event.get("channel_id") or "")
        user = str(event.get("user_id") or "")
        return [SharedFile(file_id, channel, user, None)] if file_id and channel else []
    if kind == "message" and event.get("subtype") == "file_share":
        channel = str(event.get("channel") or "")
        user = str(event.get("user") or "")
        ts = str(event.get("ts") or "") or None
        thread = str(event.get("thread_ts") or "") or None
        files = event.get("files") or []
        return [
            SharedFile(str(f["id"]), channel, user, ts, thread)
            for f in files
            if isinstance(f, dict) and f.get("id") and channel
        ]
    return []


def may_carry_token(url: str, api_base_url: str) -> bool:
    """The bot token goes only to Slack itself: the API's host or a ``*.slack.com`` host."""
    host = (urlsplit(url).hostname or "").lower()
    api = (urlsplit(api_base_url).hostname or "").lower()
    return bool(host) and (host == api or host == "slack.com" or host.endswith(".slack.com"))


async def download(url: str, token: str, limit: int = MAX_BYTES) -> bytes:
    """A file's bytes (at most ``limit`` + 1: enough to tell it is too big); DeliveryError
    when Slack does not hand it over."""
    timeout = aiohttp.ClientTimeout(total=DOWNLOAD_TIMEOUT_S)
    try:
        async with (
            aiohttp.ClientSession(timeout=timeout) as session,
            session.get(url, headers={"Authorization": f"Bearer {token}"}) as resp,
        ):
            if resp.status != 200:
                raise DeliveryError(f"Slack answered HTTP {resp.status} for the file")
            if resp.content_type == "text/html":
                # Slack's sign-in page: the token may not read files.
                raise DeliveryError(
                    "Slack would not hand over the file; the app needs the files:read scope"
                )
            data = bytearray()
            async for chunk in resp.content.iter_chunked(65536):
                data += chunk
                if len(data) > limit:
                    break
            return bytes(data)
    except (aiohttp.ClientError, TimeoutError) as exc:
        raise DeliveryError(f"cannot download the file from Slack: {exc!r}") from None


class _Host(Protocol):
    """What the imports need of the Slack adapter."""

    core: Core

    async def speaker(self, chat: str) -> tuple[AsyncWebClient, str, str | None]:
        """(client, channel id, the bot's user id) for a chat address."""
        ...

    def address(self, context: AsyncBoltContext, channel: str) -> str:
        """The chat address of ``channel`` in the workspace a request came from."""
        ...


class FileImports:
    """Turns files shared with the app into library imports."""

    def __init__(
        self,
        adapter: _Host,
        spawn: Callable[[Any], None],
        post: Callable[..., Awaitable[Any]],
    ) -> None:
        self.adapter = adapter
        self.core = adapter.core
        self._spawn = spawn
        self._post = post
        self._seen: OrderedDict[str, None] = OrderedDict()

    def register(self, app: AsyncApp) -> None:
        async def on_file(event: dict[str, Any], context: AsyncBoltContext) -> None:
            for shared in parse_file_event(event):
                if self._claim(shared.file_id):
                    chat = self.adapter.address(context, shared.channel)
                    self._spawn(self.handle(shared, chat))

        app.event({"type": "message", "subtype": "file_share"})(on_file)
        app.event("file_shared")(on_file)

    def _claim(self, file_id: str) -> bool:
        if file_id in self._seen:
            return False
        self._seen[file_id] = None
        while len(self._seen) > SEEN_FILES:
            self._seen.popitem(last=False)
        return True

    async def handle(self, shared: SharedFile, chat: str) -> None:
        """A file shared in ``chat`` (its address; ``shared.channel`` is the bare id)."""
        try:
            client, _channel, bot_user = await self.adapter.speaker(chat)
        except DeliveryError as exc:
            log.info("a file shared in %s is not for us: %s", chat, exc)
            return
        if shared.user and shared.user == bot_user:
            return
        try:
            info = await client.files_info(file=shared.file_id)
        except (SlackApiError, aiohttp.ClientError, TimeoutError) as exc:
            log.warning("files.info %s in %s failed: %s", shared.file_id, shared.channel, exc)
            return
        f = info.get("file") or {}
        name = str(f.get("name") or f.get("title") or "file")
        size = f.get("size") if isinstance(f.get("size"), int) else None
        addressed = shared.channel.startswith("D")
        if not await self.core.wants_file(PLATFORM, chat, name, addressed=addressed):
            return
        thread = shared.thread_ts or shared.ts or _share_ts(f, shared.channel)
        try:
            refused = self.core.library_refusal(name, size)
            if refused is not None:
                await self._say(chat, refused.text, thread)
                return
            working = await self._say(chat, self.core.import_working_text(name), thread)
            url = str(f.get("url_private_download") or f.get("url_private") or "")
            try:
                if not may_carry_token(url, str(client.base_url)):
                    raise DeliveryError(f"the file's URL {urlsplit(url).hostname!r} is not Slack's")
                data = await download(url, str(client.token))
            except DeliveryError as exc:
                log.warning("downloading %s from %s failed: %s", name, shared.channel, exc)
                reply = self.core.download_failed(name)
            else:
                reply = await self.core.import_library(PLATFORM, chat, shared.user, name, data)
            await self._show(client, chat, working, reply.text, thread)
        except DeliveryError as exc:
            log.warning("could not answer a file shared in %s: %s", shared.channel, exc)

    async def _say(self, channel: str, text: str, thread: str | None) -> Any:
        return await self._post(channel, {"text": reply_text(text)}, thread_ts=thread)

    async def _show(
        self, client: AsyncWebClient, chat: str, working: Any, text: str, thread: str | None
    ) -> None:
        """The answer in place of "importing…" (or after it, when the edit is refused)."""
        try:
            await client.chat_update(
                channel=working["channel"], ts=working["ts"], text=reply_text(text)
            )
        except (SlackApiError, aiohttp.ClientError, TimeoutError) as exc:
            log.info("chat.update of the import answer failed (%s); posting it", exc)
            await self._say(chat, text, thread)


def _share_ts(f: dict[str, Any], channel: str) -> str | None:
    """The ts of the message that shared ``f`` in ``channel`` (files.info's ``shares``)."""
    shares = f.get("shares") or {}
    for kind in ("public", "private"):
        for share in (shares.get(kind) or {}).get(channel) or []:
            if isinstance(share, dict) and share.get("ts"):
                return str(share["ts"])
    return None
