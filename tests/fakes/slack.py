"""An HTTP/WebSocket-level fake of Slack for the real ``slack_sdk`` / ``slack_bolt`` clients.

Web API
    ``POST|GET /api/<method>`` accepting what slack_sdk sends: JSON bodies for the ``chat.*``
    write methods (``WebClient.chat_postMessage`` posts ``json=``), form bodies from the sync
    ``WebClient`` (it POSTs even "GET" methods, form-encoded), query strings from
    ``AsyncWebClient`` (real GETs).  Answers are HTTP 200 with ``{"ok": false, "error": ...}`` on
    errors, like Slack; injected 429/5xx failures use the real status codes.

Socket Mode
    ``apps.connections.open`` (app-level token) hands out ``ws://127.0.0.1:<port>/socket/<id>``;
    the socket sends ``hello``, answers ping frames, records acks and their latency, and can send
    ``disconnect`` messages.  Tests push slash commands / block actions / events with the same
    envelope and payload shapes Slack uses; ``post_as_user`` / ``push_thread_reply`` make a
    person write in a thread and give the ``message`` event Slack sends for it.

``response_url``
    ``new_response_url()`` returns ``<url>/response/<id>``; POSTs are stored in ``responses[id]``
    and applied (``replace_original`` / ``delete_original`` / ``in_channel`` / ephemeral).

Workspaces and OAuth ("Add to Slack")
    One server, many workspaces of one app: ``add_workspace(team_id, name)`` returns a view of
    another workspace with its own users, channels (same ids as the first one's: ids only mean
    something within a workspace) and messages.  Every token works in its own workspace only
    (``auth.test`` answers with that team) and a revoked one nowhere (``token_revoked``).
    ``GET /oauth/v2/authorize`` plays the person clicking Allow (or Cancel) on slack.com and
    sends the browser back to the redirect URI with a ``code``; ``oauth.v2.access`` exchanges
    it (client id and secret as slack_sdk sends them, HTTP Basic auth) for the workspace's bot
    token, in Slack's answer shape (``team``, ``enterprise``, ``bot_user_id``, ``authed_user``
    …), with its errors (``invalid_code``, ``code_already_used``, ``bad_redirect_uri``,
    ``invalid_client_id``, ``bad_client_secret``).  ``uninstall()`` / ``revoke_tokens()``
    revoke the workspace's tokens and POST ``tokens_revoked`` / ``app_uninstalled`` events to
    ``events_url``, signed with ``signing_secret`` like Slack signs them.

HTTP mode helpers (module level): ``sign_request``, ``slash_command_body``,
``block_action_body``, ``event_callback_body`` and the ``*_payload`` builders.

Everything listens on 127.0.0.1 only.  State lives on the fake's loop thread; the public helpers
take ``self._cv`` (a ``threading.Condition``) and return copies, and the ``wait_*`` helpers block
on that condition.  From async test code use the ``*_async`` variants: the blocking ones would
stall the loop the Bolt app runs on.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import copy
import hashlib
import hmac
import json
import math
import re
import secrets
import threading
import time
import uuid
from collections.abc import Callable
from email.parser import BytesParser
from typing import Any, ClassVar
from urllib.parse import parse_qsl, urlencode

from aiohttp import WSMsgType, web

from .base import FakeServer

__all__ = [
    "ACK_DEADLINE",
    "APP_ID",
    "BOT_ID",
    "BOT_USER_ID",
    "CLIENT_ID",
    "CLIENT_SECRET",
    "GENERAL_CHANNEL",
    "HUMAN_USER_ID",
    "PAPERS_CHANNEL",
    "SIGNING_SECRET",
    "TEAM_DOMAIN",
    "TEAM_ID",
    "VERIFICATION_TOKEN",
    "FakeSlack",
    "block_action_body",
    "block_action_payload",
    "event_callback_body",
    "event_callback_payload",
    "sign_request",
    "slash_command_body",
    "slash_command_payload",
    "validate_blocks",
]

# -- identities --------------------------------------------------------------------------------
TEAM_ID = "T0HERALD"
TEAM_DOMAIN = "arxiv-herald"
TEAM_NAME = "arXiv Herald"
APP_ID = "A0HERALD"
BOT_ID = "B0HERALD"
BOT_USER_ID = "U0HERALDBOT"
HUMAN_USER_ID = "U0ALICE"
GENERAL_CHANNEL = "C0GENERAL"
PAPERS_CHANNEL = "C0PAPERS"
VERIFICATION_TOKEN = "fake-verification-token"  # the deprecated "token" field in payloads
CLIENT_ID = "1111111111.2222222222"  # the app's credentials (Basic Information)
CLIENT_SECRET = "fake-client-secret"
SIGNING_SECRET = "fake-signing-secret"
OAUTH_CODE_TTL = 600.0  # an authorization code is good for 10 minutes, once

ACK_DEADLINE = 3.0  # Slack shows "operation_timeout" / retries events after 3 s without an ack

# -- limits (https://docs.slack.dev/reference/block-kit/...) ------------------------------------
MAX_BLOCKS = 50
MAX_MESSAGE_TEXT = 40_000
SECTION_TEXT_MAX = 3000
SECTION_FIELDS_MAX = 10
SECTION_FIELD_TEXT_MAX = 2000
HEADER_TEXT_MAX = 150
BUTTON_TEXT_MAX = 75
ACTION_VALUE_MAX = 2000
ACTION_ID_MAX = 255
BLOCK_ID_MAX = 255
URL_MAX = 3000
ACTIONS_ELEMENTS_MAX = 25
CONTEXT_ELEMENTS_MAX = 10
OPTIONS_MAX = 100
OPTION_TEXT_MAX = 75
OPTION_VALUE_MAX = 150
MARKDOWN_BLOCK_MAX = 12_000
RESPONSE_URL_MAX_USES = 5

# Methods for which Slack accepts a JSON body.  For the others (the read methods) a JSON body
# is ignored by Slack, so arguments sent that way are simply missing.
JSON_METHODS = {
    "auth.test",
    "chat.postMessage",
    "chat.update",
    "chat.postEphemeral",
    "chat.delete",
}
APP_TOKEN_METHODS = {"apps.connections.open"}
# Methods that take no token: the app authenticates with its client id and secret.
CLIENT_METHODS = {"oauth.v2.access"}
BOT_SCOPES = (
    "chat:write,chat:write.public,commands,channels:history,groups:history,im:history,"
    "channels:read,groups:read,users:read,app_mentions:read"
)
_INTERNAL_KEYS = ("channel", "unfurl_links", "unfurl_media")
_KNOWN_BLOCKS = {
    "section",
    "header",
    "divider",
    "context",
    "actions",
    "image",
    "rich_text",
    "input",
    "file",
    "video",
    "markdown",
    "table",
    "context_actions",
}
_EVENT_TYPE_RE = re.compile(r"^[A-Za-z0-9_]{1,255}$")
# What every workspace of one app shares (see FakeSlack.add_workspace).
_SHARED = (
    "_cv",
    "_lock",
    "calls",
    "api_log",
    "injected",
    "rate_limited",
    "warnings",
    "responses",
    "response_contexts",
    "_failures",
    "_hangs",
    "_hang_events",
    "_buckets",
    "connected",
    "socket_messages",
    "pushed",
    "acks",
    "duplicate_acks",
    "_pushed_at",
    "_tickets",
    "_sockets",
    "_tasks",
    "app_tokens",
    "grants",
    "event_deliveries",
    "_workspaces",
)


# ============================================================================================
# HTTP-mode helpers (module level so tests of an HTTP Bolt app can use them without a fake)
# ============================================================================================
def sign_request(
    body: bytes | str, signing_secret: str, timestamp: int | None = None
) -> dict[str, str]:
    """Headers Slack adds to an HTTP request: the v0 HMAC-SHA256 signing scheme."""
    if isinstance(body, str):
        body = body.encode()
    ts = int(time.time()) if timestamp is None else int(timestamp)
    base = b"v0:" + str(ts).encode() + b":" + body
    digest = hmac.new(signing_secret.encode(), base, hashlib.sha256).hexdigest()
    return {"X-Slack-Request-Timestamp": str(ts), "X-Slack-Signature": f"v0={digest}"}


def _trigger_id() -> str:
    return f"{int(time.time())}.{secrets.randbelow(10**12)}.{secrets.token_hex(16)}"


def _action_ts() -> str:
    return f"{time.time():.6f}"


def slash_command_payload(
    command: str,
    text: str = "",
    *,
    user_id: str = HUMAN_USER_ID,
    user_name: str = "alice",
    channel_id: str = GENERAL_CHANNEL,
    channel_name: str = "general",
    response_url: str = "",
    trigger_id: str | None = None,
    team_id: str = TEAM_ID,
    team_domain: str = TEAM_DOMAIN,
    api_app_id: str = APP_ID,
    token: str = VERIFICATION_TOKEN,
    is_enterprise_install: bool = False,
) -> dict[str, str]:
    """The fields of a slash command; all strings, as Slack sends them (form or JSON)."""
    return {
        "token": token,
        "team_id": team_id,
        "team_domain": team_domain,
        "channel_id": channel_id,
        "channel_name": channel_name,
        "user_id": user_id,
        "user_name": user_name,
        "command": command if command.startswith("/") else f"/{command}",
        "text": text,
        "api_app_id": api_app_id,
        "is_enterprise_install": "true" if is_enterprise_install else "false",
        "response_url": response_url,
        "trigger_id": trigger_id or _trigger_id(),
    }


def slash_command_body(command: str, text: str = "", **kwargs: Any) -> bytes:
    """Form-encoded slash command body as Slack POSTs it in HTTP mode."""
    return urlencode(slash_command_payload(command, text, **kwargs)).encode()


def block_action_payload(
    action_id: str,
    value: str | None = None,
    *,
    user_id: str = HUMAN_USER_ID,
    user_name: str = "alice",
    channel_id: str = GENERAL_CHANNEL,
    channel_name: str = "general",
    message_ts: str = "",
    message: dict[str, Any] | None = None,
    block_id: str | None = None,
    action_type: str = "button",
    button_text: str | None = None,
    is_ephemeral: bool = False,
    thread_ts: str | None = None,
    response_url: str = "",
    trigger_id: str | None = None,
    team_id: str = TEAM_ID,
    team_domain: str = TEAM_DOMAIN,
    api_app_id: str = APP_ID,
    token: str = VERIFICATION_TOKEN,
    state: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """A ``block_actions`` payload for a button (etc.) clicked in a channel message."""
    action: dict[str, Any] = {
        "action_id": action_id,
        "block_id": block_id or secrets.token_urlsafe(3)[:4],
        "type": action_type,
        "action_ts": _action_ts(),
    }
    if action_type == "button":
        action["text"] = {"type": "plain_text", "text": button_text or action_id, "emoji": True}
    if value is not None:
        action["value"] = value
    container: dict[str, Any] = {
        "type": "message",
        "message_ts": message_ts,
        "channel_id": channel_id,
        "is_ephemeral": is_ephemeral,
    }
    if thread_ts:
        container["thread_ts"] = thread_ts
    payload: dict[str, Any] = {
        "type": "block_actions",
        "user": {"id": user_id, "username": user_name, "name": user_name, "team_id": team_id},
        "api_app_id": api_app_id,
        "token": token,
        "container": container,
        "trigger_id": trigger_id or _trigger_id(),
        "team": {"id": team_id, "domain": team_domain},
        "enterprise": None,
        "is_enterprise_install": False,
        "channel": {"id": channel_id, "name": channel_name},
        "state": state or {"values": {}},
        "response_url": response_url,
        "actions": [action],
    }
    if not is_ephemeral:
        payload["message"] = message or {
            "type": "message",
            "user": BOT_USER_ID,
            "bot_id": BOT_ID,
            "app_id": api_app_id,
            "ts": message_ts,
            "text": "",
            "team": team_id,
        }
    return payload


def block_action_body(action_id: str, value: str | None = None, **kwargs: Any) -> bytes:
    """``payload=<json>`` form body as Slack POSTs interactions in HTTP mode."""
    payload = block_action_payload(action_id, value, **kwargs)
    return urlencode({"payload": json.dumps(payload)}).encode()


def event_callback_payload(
    event: dict[str, Any],
    *,
    team_id: str = TEAM_ID,
    api_app_id: str = APP_ID,
    authorized_user_id: str = BOT_USER_ID,
    event_id: str | None = None,
    event_time: int | None = None,
    token: str = VERIFICATION_TOKEN,
) -> dict[str, Any]:
    """Events API ``event_callback`` wrapper around an inner ``event`` dict."""
    now = time.time()
    event = dict(event)
    event.setdefault("event_ts", f"{now:.6f}")
    if event.get("type") in ("message", "app_mention"):
        event.setdefault("ts", event["event_ts"])
    return {
        "token": token,
        "team_id": team_id,
        "api_app_id": api_app_id,
        "event": event,
        "type": "event_callback",
        "event_id": event_id or f"Ev{secrets.token_hex(5).upper()}",
        "event_time": int(now) if event_time is None else event_time,
        "authorizations": [
            {
                "enterprise_id": None,
                "team_id": team_id,
                "user_id": authorized_user_id,
                "is_bot": True,
                "is_enterprise_install": False,
            }
        ],
        "is_ext_shared_channel": False,
        "event_context": f"4-{secrets.token_urlsafe(24)}",
    }


def event_callback_body(event: dict[str, Any], **kwargs: Any) -> bytes:
    """JSON body of an Events API request in HTTP mode."""
    return json.dumps(event_callback_payload(event, **kwargs)).encode()


# ============================================================================================
# Block Kit validation (a useful subset of what Slack checks)
# ============================================================================================
def _too_long(ptr: str, limit: int) -> str:
    return f"must be less than {limit + 1} characters [json-pointer:{ptr}]"


def _too_many(ptr: str, limit: int) -> str:
    return f"no more than {limit} items allowed [json-pointer:{ptr}]"


def _missing(ptr: str) -> str:
    return f"missing required field: {ptr.rsplit('/', 1)[-1]} [json-pointer:{ptr}]"


def _check_text_obj(
    obj: Any, ptr: str, errors: list[str], *, max_len: int, plain_only: bool = False
) -> None:
    if not isinstance(obj, dict):
        errors.append(f"must be an object [json-pointer:{ptr}]")
        return
    allowed = ("plain_text",) if plain_only else ("plain_text", "mrkdwn")
    if obj.get("type") not in allowed:
        errors.append(f"must be a valid enum value [json-pointer:{ptr}/type]")
    text = obj.get("text")
    if not isinstance(text, str):
        errors.append(_missing(f"{ptr}/text"))
    elif not text:
        errors.append(f"must be more than 0 characters [json-pointer:{ptr}/text]")
    elif len(text) > max_len:
        errors.append(_too_long(f"{ptr}/text", max_len))


def _check_str(value: Any, ptr: str, errors: list[str], max_len: int) -> None:
    if value is None:
        return
    if not isinstance(value, str):
        errors.append(f"must be a string [json-pointer:{ptr}]")
    elif len(value) > max_len:
        errors.append(_too_long(ptr, max_len))


def _check_element(el: Any, ptr: str, errors: list[str], action_ids: set[str]) -> None:
    if not isinstance(el, dict):
        errors.append(f"must be an object [json-pointer:{ptr}]")
        return
    etype = el.get("type")
    action_id = el.get("action_id")
    if action_id is not None:
        _check_str(action_id, f"{ptr}/action_id", errors, ACTION_ID_MAX)
        if action_id in action_ids:
            errors.append(f"action_id already exists: {action_id} [json-pointer:{ptr}/action_id]")
        action_ids.add(action_id)
    if etype == "button":
        if "text" not in el:
            errors.append(_missing(f"{ptr}/text"))
        else:
            _check_text_obj(
                el["text"], f"{ptr}/text", errors, max_len=BUTTON_TEXT_MAX, plain_only=True
            )
        _check_str(el.get("value"), f"{ptr}/value", errors, ACTION_VALUE_MAX)
        _check_str(el.get("url"), f"{ptr}/url", errors, URL_MAX)
        if "style" in el and el["style"] not in ("primary", "danger"):
            errors.append(f"must be a valid enum value [json-pointer:{ptr}/style]")
    elif etype in (
        "static_select",
        "multi_static_select",
        "overflow",
        "radio_buttons",
        "checkboxes",
    ):
        options = el.get("options")
        if options is None and "option_groups" not in el:
            errors.append(_missing(f"{ptr}/options"))
        elif isinstance(options, list):
            limit = 5 if etype == "overflow" else OPTIONS_MAX
            if len(options) > limit:
                errors.append(_too_many(f"{ptr}/options", limit))
            for j, opt in enumerate(options):
                optr = f"{ptr}/options/{j}"
                if not isinstance(opt, dict):
                    errors.append(f"must be an object [json-pointer:{optr}]")
                    continue
                _check_text_obj(opt.get("text"), f"{optr}/text", errors, max_len=OPTION_TEXT_MAX)
                _check_str(opt.get("value"), f"{optr}/value", errors, OPTION_VALUE_MAX)
    elif etype == "image":
        if not el.get("image_url") and not el.get("slack_file"):
            errors.append(_missing(f"{ptr}/image_url"))
        if not el.get("alt_text"):
            errors.append(_missing(f"{ptr}/alt_text"))
    elif not isinstance(etype, str):
        errors.append(_missing(f"{ptr}/type"))


def validate_blocks(blocks: Any, *, max_blocks: int = MAX_BLOCKS) -> list[str]:
    """Return Slack-style error strings for ``blocks`` (empty list when valid)."""
    errors: list[str] = []
    if not isinstance(blocks, list):
        return ["must be an array [json-pointer:/blocks]"]
    if len(blocks) > max_blocks:
        errors.append(_too_many("/blocks", max_blocks))
    block_ids: set[str] = set()
    for i, block in enumerate(blocks):
        ptr = f"/blocks/{i}"
        if not isinstance(block, dict):
            errors.append(f"must be an object [json-pointer:{ptr}]")
            continue
        btype = block.get("type")
        if btype not in _KNOWN_BLOCKS:
            errors.append(f"unsupported type: {btype} [json-pointer:{ptr}/type]")
            continue
        block_id = block.get("block_id")
        if block_id is not None:
            _check_str(block_id, f"{ptr}/block_id", errors, BLOCK_ID_MAX)
            if block_id in block_ids:
                errors.append(f"block_id already exists: {block_id} [json-pointer:{ptr}/block_id]")
            block_ids.add(block_id)
        action_ids: set[str] = set()
        if btype == "section":
            if "text" not in block and "fields" not in block:
                errors.append(_missing(f"{ptr}/text"))
            if "text" in block:
                _check_text_obj(block["text"], f"{ptr}/text", errors, max_len=SECTION_TEXT_MAX)
            fields = block.get("fields")
            if fields is not None:
                if not isinstance(fields, list):
                    errors.append(f"must be an array [json-pointer:{ptr}/fields]")
                else:
                    if len(fields) > SECTION_FIELDS_MAX:
                        errors.append(_too_many(f"{ptr}/fields", SECTION_FIELDS_MAX))
                    for j, field in enumerate(fields):
                        _check_text_obj(
                            field, f"{ptr}/fields/{j}", errors, max_len=SECTION_FIELD_TEXT_MAX
                        )
            if "accessory" in block:
                _check_element(block["accessory"], f"{ptr}/accessory", errors, action_ids)
        elif btype == "header":
            if "text" not in block:
                errors.append(_missing(f"{ptr}/text"))
            else:
                _check_text_obj(
                    block["text"], f"{ptr}/text", errors, max_len=HEADER_TEXT_MAX, plain_only=True
                )
        elif btype in ("actions", "context"):
            limit = ACTIONS_ELEMENTS_MAX if btype == "actions" else CONTEXT_ELEMENTS_MAX
            elements = block.get("elements")
            if not isinstance(elements, list) or not elements:
                errors.append(_missing(f"{ptr}/elements"))
                continue
            if len(elements) > limit:
                errors.append(_too_many(f"{ptr}/elements", limit))
            for j, el in enumerate(elements):
                eptr = f"{ptr}/elements/{j}"
                if btype == "context" and isinstance(el, dict) and el.get("type") != "image":
                    _check_text_obj(el, eptr, errors, max_len=SECTION_TEXT_MAX)
                else:
                    _check_element(el, eptr, errors, action_ids)
        elif btype == "image":
            if not block.get("image_url") and not block.get("slack_file"):
                errors.append(_missing(f"{ptr}/image_url"))
            _check_str(block.get("image_url"), f"{ptr}/image_url", errors, URL_MAX)
            if not block.get("alt_text"):
                errors.append(_missing(f"{ptr}/alt_text"))
            if "title" in block:
                _check_text_obj(
                    block["title"], f"{ptr}/title", errors, max_len=2000, plain_only=True
                )
        elif btype == "markdown":
            text = block.get("text")
            if not isinstance(text, str) or not text:
                errors.append(_missing(f"{ptr}/text"))
            elif len(text) > MARKDOWN_BLOCK_MAX:
                errors.append(_too_long(f"{ptr}/text", MARKDOWN_BLOCK_MAX))
    return errors


def _normalize_blocks(blocks: list[Any]) -> list[Any]:
    """Slack fills in a random ``block_id`` (and ``action_id`` on elements) when missing."""
    out = copy.deepcopy(blocks)
    for block in out:
        if not isinstance(block, dict):
            continue
        block.setdefault("block_id", secrets.token_urlsafe(4)[:5])
        elements = list(block.get("elements") or []) if block.get("type") == "actions" else []
        if isinstance(block.get("accessory"), dict):
            elements.append(block["accessory"])
        for el in elements:
            if isinstance(el, dict) and el.get("type") not in (None, "image"):
                el.setdefault("action_id", secrets.token_urlsafe(4)[:5])
    return out


# ============================================================================================
# small helpers
# ============================================================================================
class _ApiError(Exception):
    def __init__(self, error: str, *, status: int = 200, **extra: Any) -> None:
        super().__init__(error)
        self.error = error
        self.status = status
        self.extra = extra


def _truthy(value: Any) -> bool:
    return value in (True, 1, "1", "true", "True", "TRUE")


def _ts_key(ts: str) -> tuple[int, int]:
    sec, _, frac = str(ts).partition(".")
    try:
        return int(sec), int((frac + "000000")[:6])
    except ValueError:
        return (0, 0)


def _encode_cursor(prefix: str, value: str) -> str:
    return base64.b64encode(f"{prefix}:{value}".encode()).decode()


def _decode_cursor(cursor: str, prefix: str) -> str:
    try:
        raw = base64.b64decode(cursor.encode(), validate=True).decode()
    except (ValueError, UnicodeDecodeError) as exc:
        raise _ApiError("invalid_cursor") from exc
    head, sep, value = raw.partition(":")
    if head != prefix or not sep:
        raise _ApiError("invalid_cursor")
    return value


def _limit(params: dict[str, Any], default: int, maximum: int) -> int:
    raw = params.get("limit")
    try:
        value = int(raw) if raw not in (None, "") else default
    except (TypeError, ValueError) as exc:
        raise _ApiError("invalid_limit") from exc
    if value <= 0:
        value = default
    return min(value, maximum)


def _json_param(params: dict[str, Any], name: str, error: str) -> Any:
    """Block/attachment/metadata args arrive as objects (JSON body) or JSON strings (form)."""
    value = params.get(name)
    if isinstance(value, str):
        if value == "":
            return None
        try:
            return json.loads(value)
        except ValueError as exc:
            raise _ApiError(error) from exc
    return value


def _parse_multipart(body: bytes, content_type: str) -> dict[str, Any]:
    msg = BytesParser().parsebytes(
        b"Content-Type: " + content_type.encode() + b"\r\nMIME-Version: 1.0\r\n\r\n" + body
    )
    out: dict[str, Any] = {}
    if not msg.is_multipart():
        return out
    for part in msg.get_payload():  # type: ignore[union-attr]
        name = part.get_param("name", header="content-disposition")
        if not name:
            continue
        data = part.get_payload(decode=True) or b""
        out[name] = data if part.get_filename() else data.decode("utf-8", "replace")
    return out


# ============================================================================================
# the fake
# ============================================================================================
class FakeSlack(FakeServer):
    """Slack Web API + Socket Mode + response_url, on 127.0.0.1.

    Attributes (read them after the fact, or through the locked helpers):
      ``bot_tokens`` / ``app_tokens``: accepted tokens (``{"xoxb-test"}`` / ``{"xapp-test"}``);
        ``revoked_tokens``: this workspace's tokens that now answer ``token_revoked``.
      ``redirect_urls`` / ``events_url`` / ``signing_secret`` / ``client_id`` /
        ``client_secret``: the app's settings (OAuth & Permissions, Event Subscriptions).
      ``grants``: ``{code: what it grants}``; ``event_deliveries``: events POSTed, with status.
      ``channels``: ``{id: conversation dict}``; ``channel_members``: ``{id: [user ids]}``;
      ``users``: ``{id: user dict}``.
      ``messages``: ``{channel: [message dict]}`` in ts order; top-level messages and replies.
        Each is the Slack message object plus internal keys ``channel``, ``unfurl_links``,
        ``unfurl_media`` (stripped in API answers); ``metadata`` is always stored.
      ``ephemerals``: ``[dict]`` (channel, user, ts, text, blocks, thread_ts, via).
      ``updates``: ``[dict]`` (channel, ts, text, blocks, metadata, via, at).
      ``deleted``: ``[dict]`` (channel, ts).
      ``responses``: ``{response_id: [JSON body posted to the response_url]}``.
      ``acks``: ``{envelope_id: ack record}``; ``pushed``: ``{envelope_id: envelope}``.
      ``socket_messages``: every JSON message the Socket Mode client sent.
      ``api_log``: every Web API call (``method``, ``params``, ``team`` of its token, ``error``).
      ``injected``: log of failures served by ``fail_next`` / the rate limiter.
      ``rate_limited``: the 429s served by ``rate_limit_per_channel`` (``rate_limited_count``).
      ``warnings``: oddities Slack tolerates silently (e.g. thread_ts of an unknown message).
      ``connected``: ``threading.Event`` set while a Socket Mode connection is open.
    """

    def __init__(
        self,
        *,
        bot_tokens: set[str] | None = None,
        app_tokens: set[str] | None = None,
        require_membership: bool = False,
        auto_create_channels: bool = False,
        replies_parent_on_every_page: bool = True,
        team_id: str = TEAM_ID,
        team_domain: str = TEAM_DOMAIN,
        team_name: str = TEAM_NAME,
        bot_id: str = BOT_ID,
        bot_user_id: str = BOT_USER_ID,
        human_user_id: str = HUMAN_USER_ID,
        home: FakeSlack | None = None,
    ) -> None:
        super().__init__()
        # ``home`` is the server another workspace of the same app lives on
        # (``add_workspace``): they share the server, its logs, failure injection, the
        # response_url registry and Socket Mode; channels, users, messages and tokens are
        # each workspace's own.
        self._home = home
        self.bot_tokens: set[str] = set(
            bot_tokens if bot_tokens is not None else () if home else {"xoxb-test"}
        )
        self.user_tokens: set[str] = set()
        self.revoked_tokens: set[str] = set()
        self.token_scopes: dict[str, str] = {}
        self.app_tokens: set[str] = set(app_tokens or {"xapp-test"})
        self.require_membership = require_membership
        self.auto_create_channels = auto_create_channels
        self.replies_parent_on_every_page = replies_parent_on_every_page
        self.team_id, self.team_domain, self.team_name = team_id, team_domain, team_name
        self.app_id, self.bot_id, self.bot_user_id = APP_ID, bot_id, bot_user_id
        self.human_user_id = human_user_id
        self.response_url_max_uses = RESPONSE_URL_MAX_USES
        self.installed_by: str | None = None  # who installed it through OAuth
        self.oauth_bot_token: str | None = None  # the bot token OAuth handed out here

        self._cv = threading.Condition(threading.RLock())
        self.users: dict[str, dict[str, Any]] = {}
        self.channels: dict[str, dict[str, Any]] = {}
        self.channel_members: dict[str, list[str]] = {}
        self.messages: dict[str, list[dict[str, Any]]] = {}
        self.ephemerals: list[dict[str, Any]] = []
        self.updates: list[dict[str, Any]] = []
        self.deleted: list[dict[str, Any]] = []
        self.responses: dict[str, list[dict[str, Any]]] = {}
        self.response_contexts: dict[str, dict[str, Any]] = {}
        self.injected: list[dict[str, Any]] = []
        self.rate_limited: list[dict[str, Any]] = []
        self.warnings: list[str] = []
        self.api_log: list[dict[str, Any]] = []
        # Files shared in channels (share_file): id -> file object, id -> its bytes; every
        # download attempt of url_private_download (with whether its token was good).
        self.files: dict[str, dict[str, Any]] = {}
        self.file_bytes: dict[str, bytes] = {}
        self.file_downloads: list[dict[str, Any]] = []

        self._failures: list[dict[str, Any]] = []
        self._hangs: list[dict[str, Any]] = []
        self._hang_events: set[asyncio.Event] = set()
        self._rate_per_second: float | None = None
        self._rate_burst = 1.0
        self._rate_methods: tuple[str, ...] = ("chat.postMessage",)
        self._buckets: dict[str, tuple[float, float]] = {}
        self._last_ts_us = 0

        # Socket Mode
        self.connected = threading.Event()
        self.socket_connections_total = 0
        self.socket_messages: list[dict[str, Any]] = []
        self.pushed: dict[str, dict[str, Any]] = {}
        self.acks: dict[str, dict[str, Any]] = {}
        self.duplicate_acks: list[dict[str, Any]] = []
        self._pushed_at: dict[str, float] = {}
        self._tickets: set[str] = set()
        self._sockets: list[web.WebSocketResponse] = []
        self._tasks: set[asyncio.Future[Any]] = set()

        # The app (distribution): OAuth and the Events API request URL.
        self.client_id = CLIENT_ID
        self.client_secret = CLIENT_SECRET
        self.signing_secret = SIGNING_SECRET
        self.redirect_urls: list[str] = []  # the app's Redirect URLs (OAuth & Permissions)
        self.events_url: str | None = None  # the Events API Request URL
        self.signed_in_team = team_id  # the workspace the installing browser is signed in to
        self.deny_next_install = False
        self.grants: dict[str, dict[str, Any]] = {}  # OAuth code -> what it grants
        self.event_deliveries: list[dict[str, Any]] = []  # events POSTed to events_url
        self._workspaces: dict[str, FakeSlack] = {team_id: self}
        if home is not None:
            for name in _SHARED:
                setattr(self, name, getattr(home, name))

        self.add_user(bot_user_id, "herald", real_name="arXiv Herald", is_bot=True, bot_id=bot_id)
        self.add_user(human_user_id, "alice", real_name="Alice Example")
        self.add_channel(GENERAL_CHANNEL, "general", members=[bot_user_id, human_user_id])
        self.add_channel(PAPERS_CHANNEL, "papers", members=[bot_user_id, human_user_id])

    # -- workspaces ------------------------------------------------------------------------------
    def add_workspace(
        self,
        team_id: str,
        team_name: str,
        *,
        team_domain: str | None = None,
        bot_id: str | None = None,
        bot_user_id: str | None = None,
        human_user_id: str | None = None,
    ) -> FakeSlack:
        """Another workspace the app can be installed into, on this server.  It has its own
        users, #general and #papers (with the same channel ids as the first workspace: ids
        only mean something within their workspace here) and no token until an OAuth install
        (``oauth.v2.access``) mints one.  Returns its view; its helpers (``top_level``,
        ``push_slash_command``, ``new_response_url``…) act in that workspace."""
        tail = team_id[1:]
        ws = FakeSlack(
            home=self,
            team_id=team_id,
            team_name=team_name,
            team_domain=team_domain or team_name.lower().replace(" ", "-"),
            bot_id=bot_id or f"B{tail}",
            bot_user_id=bot_user_id or f"U{tail}BOT",
            human_user_id=human_user_id or f"U{tail}ALICE",
        )
        with self._cv:
            self._workspaces[team_id] = ws
        return ws

    def workspace(self, team_id: str) -> FakeSlack:
        with self._cv:
            return self._workspaces[team_id]

    @property
    def url(self) -> str:
        if self._home is not None:
            return self._home.url
        return f"http://{self.host}:{self.port}"

    @property
    def authorize_url(self) -> str:
        """slack.com/oauth/v2/authorize: where "Add to Slack" sends the browser."""
        return f"{self.url}/oauth/v2/authorize"

    # -- addresses ---------------------------------------------------------------------------
    @property
    def api_url(self) -> str:
        """``base_url`` for ``WebClient`` / ``AsyncWebClient`` (ends with ``/api/``)."""
        return f"{self.url}/api/"

    def start(self) -> FakeSlack:
        super().start()
        return self

    def __enter__(self) -> FakeSlack:
        return self.start()

    # -- fixtures: users and channels ----------------------------------------------------------
    def add_user(
        self,
        user_id: str,
        name: str,
        *,
        real_name: str | None = None,
        is_bot: bool = False,
        bot_id: str | None = None,
        tz: str = "Etc/UTC",
        tz_offset: int = 0,
        email: str | None = None,
    ) -> dict[str, Any]:
        profile: dict[str, Any] = {
            "real_name": real_name or name,
            "display_name": name,
            "real_name_normalized": real_name or name,
            "display_name_normalized": name,
            "team": self.team_id,
        }
        if bot_id:
            profile.update({"bot_id": bot_id, "api_app_id": self.app_id, "always_active": True})
        elif email or not is_bot:
            profile["email"] = email or f"{name}@example.invalid"
        user = {
            "id": user_id,
            "team_id": self.team_id,
            "name": name,
            "deleted": False,
            "real_name": real_name or name,
            "tz": tz,
            "tz_label": tz,
            "tz_offset": tz_offset,
            "profile": profile,
            "is_admin": False,
            "is_owner": False,
            "is_bot": is_bot,
            "is_app_user": False,
            "updated": int(time.time()),
        }
        with self._cv:
            self.users[user_id] = user
        return user

    def add_channel(
        self,
        channel_id: str,
        name: str,
        *,
        members: list[str] | None = None,
        is_private: bool = False,
        is_archived: bool = False,
        is_im: bool = False,
        user: str | None = None,
    ) -> dict[str, Any]:
        now = int(time.time())
        chan: dict[str, Any] = {
            "id": channel_id,
            "name": name,
            "is_channel": not is_private and not is_im,
            "is_group": is_private,
            "is_im": is_im,
            "is_mpim": False,
            "is_private": is_private or is_im,
            "is_archived": is_archived,
            "is_general": name == "general",
            "created": now,
            "creator": HUMAN_USER_ID,
            "name_normalized": name,
            "is_shared": False,
            "is_ext_shared": False,
            "is_org_shared": False,
            "context_team_id": self.team_id,
            "topic": {"value": "", "creator": "", "last_set": 0},
            "purpose": {"value": "", "creator": "", "last_set": 0},
        }
        if is_im:
            chan["user"] = user
        with self._cv:
            self.channels[channel_id] = chan
            self.channel_members[channel_id] = list(
                members if members is not None else [self.bot_user_id]
            )
            self.messages.setdefault(channel_id, [])
        return chan

    # -- failure injection -------------------------------------------------------------------
    def fail_next(
        self,
        n: int = 1,
        method: str | None = None,
        status: int = 429,
        retry_after: int = 1,
        *,
        error: str | None = None,
        body: dict[str, Any] | str | None = None,
    ) -> None:
        """Serve the next ``n`` calls (of ``method``, or any) with a failure.

        429 -> ``Retry-After: <retry_after>`` and ``{"ok": false, "error": "ratelimited"}``;
        500 -> ``fatal_error``; 503 -> ``service_unavailable``; 200 + ``error`` -> a plain
        ``ok: false``.  ``body`` overrides the JSON (a str is sent as text/html).
        """
        with self._cv:
            self._failures.append(
                {
                    "remaining": n,
                    "method": method,
                    "status": status,
                    "retry_after": retry_after,
                    "error": error,
                    "body": body,
                }
            )

    def rate_limit_per_channel(
        self,
        per_second: float | None = 1.0,
        *,
        burst: int = 1,
        methods: tuple[str, ...] = ("chat.postMessage",),
    ) -> None:
        """Enforce Slack's ~1 message/second/channel (token bucket); ``None`` turns it off."""
        with self._cv:
            self._rate_per_second = per_second
            self._rate_burst = float(max(1, burst))
            self._rate_methods = methods
            self._buckets.clear()

    @property
    def rate_limited_count(self) -> int:
        with self._cv:
            return len(self.rate_limited)

    def hang_next(
        self,
        method: str | None = None,
        *,
        seconds: float | None = None,
        n: int = 1,
        after: bool = False,
        skip: int = 0,
    ) -> None:
        """The next ``n`` calls (of ``method``) stall for ``seconds`` (``None``: until
        ``release_hangs()`` or shutdown), then get answered normally.

        ``after=True`` carries the call out first (the message is posted) and only then
        stalls the answer: the client cannot know it succeeded, like a connection lost on
        the way back.  ``skip`` lets that many matching calls through first."""
        with self._cv:
            self._hangs.append(
                {"method": method, "seconds": seconds, "remaining": n, "after": after, "skip": skip}
            )

    def release_hangs(self) -> None:
        """Let every currently stalled request proceed (later ``hang_next`` rules still apply)."""
        server = self._home or self
        if server._loop is not None:
            server._loop.call_soon_threadsafe(server._wake_hangs)

    def _wake_hangs(self) -> None:
        for event in self._hang_events:
            event.set()

    # -- state helpers (thread-safe, return copies) --------------------------------------------
    def thread(self, channel: str, ts: str) -> list[dict[str, Any]]:
        """Parent + replies of the thread rooted at ``ts``, oldest first."""
        with self._cv:
            msgs = self.messages.get(channel, [])
            return [
                copy.deepcopy(m)
                for m in msgs
                if m["ts"] == ts or (m.get("thread_ts") == ts and m["ts"] != ts)
            ]

    def top_level(self, channel: str) -> list[dict[str, Any]]:
        """Messages shown in the channel (not thread replies, unless broadcast), oldest first."""
        with self._cv:
            return [copy.deepcopy(m) for m in self.messages.get(channel, []) if _is_top(m)]

    def all_posts(self) -> list[dict[str, Any]]:
        """Every stored message in every channel (each has ``channel``), ts order."""
        with self._cv:
            out = [copy.deepcopy(m) for msgs in self.messages.values() for m in msgs]
        return sorted(out, key=lambda m: _ts_key(m["ts"]))

    def message(self, channel: str, ts: str) -> dict[str, Any] | None:
        with self._cv:
            found = self._find(channel, ts)
            return copy.deepcopy(found) if found else None

    def requests_for(self, method: str) -> list[dict[str, Any]]:
        """Parsed arguments of every call to ``method`` (after token extraction); on another
        workspace's view (``add_workspace``), only the calls made with its tokens."""
        with self._cv:
            return [
                copy.deepcopy(e["params"])
                for e in self.api_log
                if e["method"] == method and (self._home is None or e["team"] == self.team_id)
            ]

    def wait_until(self, predicate: Callable[[], bool], timeout: float = 5.0) -> bool:
        """Block until ``predicate()`` is true (re-checked on every state change of the fake
        and at least every 50 ms, so it may also look at state outside the fake)."""
        deadline = time.monotonic() + timeout
        with self._cv:
            while not predicate():
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._cv.wait(min(remaining, 0.05))
            return True

    async def wait_until_async(self, predicate: Callable[[], bool], timeout: float = 5.0) -> bool:
        return await asyncio.to_thread(self.wait_until, predicate, timeout)

    def wait_for_posts(self, channel: str, count: int, timeout: float = 5.0) -> list[dict]:
        if not self.wait_until(lambda: len(self.messages.get(channel, [])) >= count, timeout):
            raise TimeoutError(f"fewer than {count} messages in {channel} after {timeout}s")
        with self._cv:
            return copy.deepcopy(self.messages[channel])

    # -- response_url --------------------------------------------------------------------------
    def new_response_url(
        self,
        *,
        channel_id: str | None = None,
        user_id: str | None = None,
        message_ts: str | None = None,
        thread_ts: str | None = None,
    ) -> str:
        """A fresh ``response_url``; the context decides what replace/delete/in_channel do."""
        rid = secrets.token_hex(10)
        with self._cv:
            self.responses[rid] = []
            self.response_contexts[rid] = {
                "team": self.team_id,
                "channel": channel_id,
                "user": user_id,
                "message_ts": message_ts,
                "thread_ts": thread_ts,
                "uses": 0,
            }
        return f"{self.url}/response/{rid}"

    @staticmethod
    def response_id(response_url: str) -> str:
        return response_url.rstrip("/").rsplit("/", 1)[-1]

    def wait_for_response(
        self, response_id_or_url: str, timeout: float = 5.0, count: int = 1
    ) -> list[dict[str, Any]]:
        rid = self.response_id(response_id_or_url)
        if not self.wait_until(lambda: len(self.responses.get(rid, [])) >= count, timeout):
            raise TimeoutError(f"no POST to response_url {rid} within {timeout}s")
        with self._cv:
            return copy.deepcopy(self.responses[rid])

    async def wait_for_response_async(
        self, response_id_or_url: str, timeout: float = 5.0, count: int = 1
    ) -> list[dict[str, Any]]:
        return await asyncio.to_thread(self.wait_for_response, response_id_or_url, timeout, count)

    # -- Socket Mode test API ----------------------------------------------------------------
    def wait_connected(self, timeout: float = 5.0) -> bool:
        return self.connected.wait(timeout)

    async def wait_connected_async(self, timeout: float = 5.0) -> bool:
        return await asyncio.to_thread(self.connected.wait, timeout)

    def push_slash_command(
        self,
        command: str,
        text: str = "",
        user_id: str = HUMAN_USER_ID,
        channel_id: str = GENERAL_CHANNEL,
        **kwargs: Any,
    ) -> str:
        """Send a ``slash_commands`` envelope; returns its envelope_id.  The payload's
        ``response_url`` is fresh (``payload_of(envelope_id)["response_url"]``)."""
        response_url = kwargs.pop("response_url", None) or self.new_response_url(
            channel_id=channel_id, user_id=user_id
        )
        with self._cv:
            user_name = self.users.get(user_id, {}).get("name", "someone")
            channel_name = self.channels.get(channel_id, {}).get("name", "unknown")
        kwargs.setdefault("user_name", user_name)
        kwargs.setdefault("channel_name", channel_name)
        kwargs.setdefault("team_id", self.team_id)
        kwargs.setdefault("team_domain", self.team_domain)
        kwargs.setdefault("api_app_id", self.app_id)
        payload = slash_command_payload(
            command,
            text,
            user_id=user_id,
            channel_id=channel_id,
            response_url=response_url,
            **kwargs,
        )
        return self._push("slash_commands", payload, accepts_response_payload=True)

    def push_block_action(
        self,
        action_id: str,
        value: str | None = None,
        user_id: str = HUMAN_USER_ID,
        channel_id: str = GENERAL_CHANNEL,
        message_ts: str = "",
        **kwargs: Any,
    ) -> str:
        """Send an ``interactive`` ``block_actions`` envelope for a click on ``action_id`` in
        the stored message ``message_ts`` (its block_id / button text / message are filled in
        from the store when found)."""
        with self._cv:
            user_name = self.users.get(user_id, {}).get("name", "someone")
            channel_name = self.channels.get(channel_id, {}).get("name", "unknown")
            stored = self._find(channel_id, message_ts) if message_ts else None
            stored = self._public(stored, include_metadata=False) if stored else None
        if stored is not None:
            kwargs.setdefault("message", stored)
            if stored.get("thread_ts") and stored["thread_ts"] != stored["ts"]:
                kwargs.setdefault("thread_ts", stored["thread_ts"])
            element = _find_element(stored.get("blocks") or [], action_id)
            if element is not None:
                block_id, el = element
                kwargs.setdefault("block_id", block_id)
                kwargs.setdefault("action_type", el.get("type", "button"))
                if isinstance(el.get("text"), dict):
                    kwargs.setdefault("button_text", el["text"].get("text"))
                if value is None:
                    value = el.get("value")
        response_url = kwargs.pop("response_url", None) or self.new_response_url(
            channel_id=channel_id,
            user_id=user_id,
            message_ts=message_ts or None,
            thread_ts=kwargs.get("thread_ts"),
        )
        kwargs.setdefault("user_name", user_name)
        kwargs.setdefault("channel_name", channel_name)
        kwargs.setdefault("team_id", self.team_id)
        kwargs.setdefault("team_domain", self.team_domain)
        kwargs.setdefault("api_app_id", self.app_id)
        payload = block_action_payload(
            action_id,
            value,
            user_id=user_id,
            channel_id=channel_id,
            message_ts=message_ts,
            response_url=response_url,
            **kwargs,
        )
        return self._push("interactive", payload, accepts_response_payload=False)

    def push_event(
        self,
        event: dict[str, Any],
        *,
        retry_attempt: int = 0,
        retry_reason: str = "",
        **kwargs: Any,
    ) -> str:
        """Send an ``events_api`` envelope wrapping ``event`` (e.g. ``{"type": "app_mention",
        "user": ..., "channel": ..., "text": ...}``)."""
        kwargs.setdefault("team_id", self.team_id)
        kwargs.setdefault("api_app_id", self.app_id)
        kwargs.setdefault("authorized_user_id", self.bot_user_id)
        payload = event_callback_payload(event, **kwargs)
        return self._push(
            "events_api",
            payload,
            accepts_response_payload=False,
            retry_attempt=retry_attempt,
            retry_reason=retry_reason,
        )

    def share_file(
        self,
        channel: str,
        user: str,
        name: str,
        content: bytes,
        *,
        mimetype: str | None = None,
        events: tuple[str, ...] = ("message", "file_shared"),
    ) -> str:
        """``user`` uploads a file into ``channel``: it is stored (``files.info``, a download
        URL that needs the bot token), a ``file_share`` message appears in the channel, and
        Slack's events for it are pushed — by default both the ``message`` (subtype
        ``file_share``) and the ``file_shared`` event, as a real workspace sends them.
        Returns the file id."""
        file_id = "F" + secrets.token_hex(5).upper()
        ext = name.rsplit(".", 1)[-1].lower() if "." in name else ""
        guessed = {"json": "application/json", "pdf": "application/pdf", "png": "image/png"}
        mime = mimetype or guessed.get(ext, "text/plain")
        ts = self._next_ts()
        with self._cv:
            chan = self.channels[channel]
            share_kind = "private" if chan["is_private"] or chan["is_im"] else "public"
            url = f"{self.url}/files-pri/{self.team_id}-{file_id}/download/{name}"
            f: dict[str, Any] = {
                "id": file_id,
                "created": int(time.time()),
                "timestamp": int(time.time()),
                "name": name,
                "title": name,
                "mimetype": mime,
                "filetype": ext or "binary",
                "pretty_type": ext.upper() or "Binary",
                "user": user,
                "user_team": self.team_id,
                "mode": "hosted",
                "editable": False,
                "is_external": False,
                "is_public": share_kind == "public",
                "size": len(content),
                "url_private": f"{self.url}/files-pri/{self.team_id}-{file_id}/{name}",
                "url_private_download": url,
                "permalink": f"https://{self.team_domain}.slack.com/files/{user}/{file_id}/{name}",
                "channels": [channel] if share_kind == "public" else [],
                "groups": [channel] if share_kind == "private" else [],
                "ims": [],
                "shares": {share_kind: {channel: [{"ts": ts, "channel_name": chan["name"]}]}},
            }
            self.files[file_id] = f
            self.file_bytes[file_id] = content
            message = {
                "type": "message",
                "subtype": "file_share",
                "text": "",
                "files": [copy.deepcopy(f)],
                "upload": True,
                "user": user,
                "display_as_bot": False,
                "ts": ts,
                "channel": channel,
            }
            self.messages.setdefault(channel, []).append(message)
            self._cv.notify_all()
        channel_type = "im" if chan["is_im"] else "group" if chan["is_private"] else "channel"
        if "message" in events:
            event = {k: v for k, v in message.items()}
            event.update(channel_type=channel_type, event_ts=ts)
            self.push_event(event)
        if "file_shared" in events:
            self.push_event(
                {
                    "type": "file_shared",
                    "channel_id": channel,
                    "file_id": file_id,
                    "user_id": user,
                    "file": {"id": file_id},
                    "event_ts": ts,
                }
            )
        return file_id

    def post_as_user(
        self, channel: str, user: str, text: str, *, thread_ts: str | None = None
    ) -> dict[str, Any]:
        """A person writes ``text`` in ``channel`` (in the thread of ``thread_ts`` when given):
        the message is stored as Slack stores it, and the ``message`` event Slack sends for it
        (``message.channels`` / ``message.groups``) is returned — push it over Socket Mode
        with :meth:`push_event`, or POST ``event_callback_body(event)`` in HTTP mode."""
        with self._cv:
            channel = self._resolve_channel(channel)
            parent = self._find(channel, thread_ts) if thread_ts else None
            had_bot = self.bot_user_id in ((parent or {}).get("reply_users") or [])
            stored = self._store_message(channel, {"text": text}, thread_ts=thread_ts)
            for key in ("bot_id", "app_id", "bot_profile"):
                stored.pop(key, None)
            stored["user"] = user
            root = stored.get("thread_ts")
            top = self._find(channel, root) if root else None
            if top is not None:
                users = top.setdefault("reply_users", [])
                if not had_bot and self.bot_user_id in users:
                    users.remove(self.bot_user_id)
                if user not in users:
                    users.append(user)
                top["reply_users_count"] = len(users)
                stored["parent_user_id"] = top.get("user")
            private = bool(self.channels.get(channel, {}).get("is_private"))
            event: dict[str, Any] = {
                "type": "message",
                "channel": channel,
                "user": user,
                "text": text,
                "ts": stored["ts"],
                "team": self.team_id,
                "channel_type": "group" if private else "channel",
                "event_ts": stored["ts"],
            }
            if root:
                event["thread_ts"] = root
                event["parent_user_id"] = stored.get("parent_user_id")
            return event

    def push_thread_reply(
        self, channel: str, user: str, text: str, thread_ts: str, **kwargs: Any
    ) -> str:
        """:meth:`post_as_user` in a thread, and its ``message`` event pushed over Socket Mode;
        returns the envelope id."""
        return self.push_event(
            self.post_as_user(channel, user, text, thread_ts=thread_ts), **kwargs
        )

    def payload_of(self, envelope_id: str) -> dict[str, Any]:
        with self._cv:
            return copy.deepcopy(self.pushed[envelope_id]["payload"])

    def wait_for_ack(self, envelope_id: str, timeout: float = 5.0) -> dict[str, Any]:
        """The ack record: ``envelope_id``, ``type``, ``payload`` (None for a bare ack),
        ``ack_latency`` (s from push to ack received), ``late`` (> 3 s)."""
        if not self.wait_until(lambda: envelope_id in self.acks, timeout):
            raise TimeoutError(f"envelope {envelope_id} not acked within {timeout}s")
        with self._cv:
            return copy.deepcopy(self.acks[envelope_id])

    async def wait_for_ack_async(self, envelope_id: str, timeout: float = 5.0) -> dict[str, Any]:
        return await asyncio.to_thread(self.wait_for_ack, envelope_id, timeout)

    def send_disconnect(
        self, reason: str = "refresh_requested", *, close_after: float | None = None
    ) -> None:
        """Send ``{"type": "disconnect", "reason": ...}`` on every open connection; optionally
        close them server-side ``close_after`` seconds later, as Slack does."""
        msg = {"type": "disconnect", "reason": reason, "debug_info": {"host": "applink-fake-1"}}
        self._run_coro(self._broadcast(json.dumps(msg), close_after))

    def close_connections(self) -> None:
        """Drop every Socket Mode connection server-side (a network blip)."""
        self._run_coro(self._close_sockets())

    @property
    def open_connections(self) -> int:
        with self._cv:
            return len(self._sockets)

    # ==========================================================================================
    # server side
    # ==========================================================================================
    def setup_routes(self, app: web.Application) -> None:
        app.router.add_route("*", "/api/{method}", self._handle_api)
        app.router.add_get("/oauth/v2/authorize", self._handle_authorize)
        app.router.add_post("/response/{rid}", self._handle_response_url)
        app.router.add_get("/socket/{ticket}", self._handle_socket)
        app.router.add_get("/files-pri/{tail:.+}", self._handle_file_download)

    async def on_shutdown(self) -> None:
        self._wake_hangs()
        await self._close_sockets()

    def _run_coro(self, coro: Any) -> Any:
        server = self._home or self
        assert server._loop is not None, "FakeSlack is not started"
        return asyncio.run_coroutine_threadsafe(coro, server._loop).result(10)

    # -- Web API -----------------------------------------------------------------------------
    async def _handle_api(self, request: web.Request) -> web.StreamResponse:
        method = request.match_info["method"]
        params, warnings = await self._parse_params(request, method)
        token = params.pop("token", None)
        auth = request.headers.get("Authorization", "")
        if auth.startswith("Bearer "):
            token = auth[len("Bearer ") :].strip()
        elif auth.startswith("Basic ") and method in CLIENT_METHODS:
            # slack_sdk sends the app's client id and secret as HTTP Basic auth.
            try:
                cid, _, secret = base64.b64decode(auth[6:]).decode().partition(":")
            except (ValueError, UnicodeDecodeError):
                cid, secret = "", ""
            params.setdefault("client_id", cid)
            params.setdefault("client_secret", secret)
        entry: dict[str, Any] = {"method": method, "params": copy.deepcopy(params), "team": None}
        with self._cv:
            self.api_log.append(entry)

        await self._maybe_hang(method, after=False)

        failure = self._take_failure(method)
        if failure is not None:
            return self._failure_response(method, failure)

        token_kind: str | None = None
        ws = self
        try:
            if method in CLIENT_METHODS:
                token_kind = "client"
            else:
                ws, token_kind = self._check_token(token, method)
            with self._cv:
                entry["team"] = ws.team_id
            limited = self._rate_limit(method, params, ws)
            if limited is not None:
                return limited
            handler = self._METHODS.get(method)
            if handler is None:
                raise _ApiError("unknown_method", req_method=method)
            result = handler(ws, params)
            body: dict[str, Any] = {"ok": True, **result}
            status = 200
        except _ApiError as exc:
            body = {"ok": False, "error": exc.error, **exc.extra}
            status = exc.status
            with self._cv:
                entry["error"] = exc.error
        if warnings:
            body["warning"] = ",".join(warnings)
            body.setdefault("response_metadata", {}).setdefault("warnings", []).extend(warnings)
        headers = {"x-slack-req-id": secrets.token_hex(16)}
        if token_kind == "bot":
            headers["x-oauth-scopes"] = ws.token_scopes.get(str(token), BOT_SCOPES)
        elif token_kind == "app":
            headers["x-oauth-scopes"] = "connections:write"
        await self._maybe_hang(method, after=True)
        return web.json_response(body, status=status, headers=headers)

    async def _parse_params(
        self, request: web.Request, method: str
    ) -> tuple[dict[str, Any], list[str]]:
        params: dict[str, Any] = dict(request.query)
        warnings: list[str] = []
        raw = await request.read()
        ctype = request.content_type
        if raw:
            if ctype == "application/json":
                if "charset" not in request.headers.get("Content-Type", "").lower():
                    warnings.append("missing_charset")
                if method in JSON_METHODS or method not in self._METHODS:
                    try:
                        data = json.loads(raw)
                    except ValueError:
                        params["__invalid_json__"] = True
                    else:
                        if isinstance(data, dict):
                            params.update(data)
            elif ctype == "multipart/form-data":
                params.update(_parse_multipart(raw, request.headers.get("Content-Type", "")))
            else:
                params.update(parse_qsl(raw.decode("utf-8", "replace"), keep_blank_values=True))
        return params, warnings

    async def _maybe_hang(self, method: str, *, after: bool) -> None:
        with self._cv:
            rule = next(
                (
                    h
                    for h in self._hangs
                    if h["method"] in (None, method)
                    and h["remaining"] > 0
                    and h.get("after", False) == after
                ),
                None,
            )
            if rule is not None and rule.get("skip", 0) > 0:
                rule["skip"] -= 1
                rule = None
            elif rule is not None:
                rule["remaining"] -= 1
                if rule["remaining"] <= 0:
                    self._hangs.remove(rule)
        if rule is None:
            return
        event = asyncio.Event()
        self._hang_events.add(event)
        try:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(event.wait(), rule["seconds"])
        finally:
            self._hang_events.discard(event)

    def _take_failure(self, method: str) -> dict[str, Any] | None:
        with self._cv:
            for rule in self._failures:
                if rule["method"] in (None, method) and rule["remaining"] > 0:
                    rule["remaining"] -= 1
                    if rule["remaining"] <= 0:
                        self._failures.remove(rule)
                    self.injected.append(
                        {"method": method, "status": rule["status"], "at": time.monotonic()}
                    )
                    return dict(rule)
        return None

    def _failure_response(self, method: str, rule: dict[str, Any]) -> web.Response:
        status = rule["status"]
        headers = {"x-slack-req-id": secrets.token_hex(16)}
        if status == 429:
            headers["Retry-After"] = str(int(rule["retry_after"]))
        body = rule["body"]
        if isinstance(body, str):
            return web.Response(status=status, text=body, content_type="text/html", headers=headers)
        if body is None:
            default = {429: "ratelimited", 500: "fatal_error", 503: "service_unavailable"}
            body = {"ok": False, "error": rule["error"] or default.get(status, "internal_error")}
        return web.json_response(body, status=status, headers=headers)

    def _check_token(self, token: str | None, method: str) -> tuple[FakeSlack, str]:
        """The workspace a token belongs to and its kind: each token works in its own
        workspace only, and a revoked one nowhere."""
        if not token:
            raise _ApiError("not_authed")
        if token in self.app_tokens:
            if method in APP_TOKEN_METHODS:
                return self, "app"
            raise _ApiError("not_allowed_token_type")
        with self._cv:
            workspaces = list(self._workspaces.values())
        for ws in workspaces:
            if token in ws.revoked_tokens:
                raise _ApiError("token_revoked")
            kind = "bot" if token in ws.bot_tokens else "user" if token in ws.user_tokens else ""
            if kind:
                if method in APP_TOKEN_METHODS:
                    raise _ApiError("not_allowed_token_type")
                return ws, kind
        raise _ApiError("invalid_auth")

    def _rate_limit(
        self, method: str, params: dict[str, Any], ws: FakeSlack
    ) -> web.Response | None:
        with self._cv:
            rate = self._rate_per_second
            if rate is None or method not in self._rate_methods:
                return None
            channel = str(params.get("channel") or "")
            if ws is not self:  # a channel id means something within its workspace only
                channel = f"{ws.team_id}/{channel}"
            now = time.monotonic()
            tokens, last = self._buckets.get(channel, (self._rate_burst, now))
            tokens = min(self._rate_burst, tokens + (now - last) * rate)
            if tokens >= 1.0:
                self._buckets[channel] = (tokens - 1.0, now)
                return None
            self._buckets[channel] = (tokens, now)
            wait = (1.0 - tokens) / rate
            retry_after = max(1, math.ceil(wait))
            self.rate_limited.append(
                {"method": method, "channel": channel, "at": now, "retry_after": retry_after}
            )
            self.injected.append({"method": method, "status": 429, "at": now})
            self._cv.notify_all()
        return web.json_response(
            {"ok": False, "error": "ratelimited"},
            status=429,
            headers={"Retry-After": str(retry_after), "x-slack-req-id": secrets.token_hex(16)},
        )

    # -- channel / message lookups (call with the lock held) -----------------------------------
    def _resolve_channel(self, value: Any, *, allow_user: bool = False) -> str:
        channel = str(value or "")
        if not channel:
            raise _ApiError("channel_not_found")
        if channel in self.channels:
            return channel
        name = channel.lstrip("#")
        for cid, chan in self.channels.items():
            if chan["name"] == name and not chan["is_im"]:
                return cid
        if allow_user and channel in self.users:
            dm = "D" + channel[1:]
            if dm not in self.channels:
                self.add_channel(
                    dm, dm, members=[self.bot_user_id, channel], is_im=True, user=channel
                )
            return dm
        if self.auto_create_channels and re.fullmatch(r"[CG][A-Z0-9]{2,}", channel):
            self.add_channel(channel, channel.lower(), members=[self.bot_user_id, HUMAN_USER_ID])
            return channel
        raise _ApiError("channel_not_found")

    def _find(self, channel: str, ts: str) -> dict[str, Any] | None:
        for m in self.messages.get(channel, []):
            if m["ts"] == ts:
                return m
        return None

    def _next_ts(self) -> str:
        with self._cv:
            now_us = int(time.time() * 1_000_000)
            self._last_ts_us = max(now_us, self._last_ts_us + 100)
            us = self._last_ts_us
        return f"{us // 1_000_000}.{us % 1_000_000:06d}"

    def _public(self, msg: dict[str, Any], *, include_metadata: bool) -> dict[str, Any]:
        out = {k: copy.deepcopy(v) for k, v in msg.items() if k not in _INTERNAL_KEYS}
        if not include_metadata:
            out.pop("metadata", None)
        return out

    def _content(self, params: dict[str, Any], *, require: bool = True) -> dict[str, Any]:
        """Validate text/blocks/attachments/metadata like chat.postMessage does."""
        if params.get("__invalid_json__"):
            raise _ApiError("invalid_json")
        text = params.get("text")
        text = None if text is None else str(text)
        blocks = _json_param(params, "blocks", "invalid_blocks_format")
        attachments = _json_param(params, "attachments", "invalid_attachments")
        if blocks is not None:
            if not isinstance(blocks, list):
                raise _ApiError("invalid_blocks_format")
            errors = validate_blocks(blocks)
            if errors:
                raise _ApiError(
                    "invalid_blocks",
                    errors=errors,
                    response_metadata={"messages": [f"[ERROR] {e}" for e in errors]},
                )
            blocks = _normalize_blocks(blocks)
        if attachments is not None and not isinstance(attachments, list):
            raise _ApiError("invalid_attachments")
        if require and not text and not blocks and not attachments:
            raise _ApiError("no_text")
        if text is not None and len(text) > MAX_MESSAGE_TEXT:
            raise _ApiError("msg_too_long")
        metadata = _json_param(params, "metadata", "invalid_metadata_format")
        if metadata is not None:
            if (
                not isinstance(metadata, dict)
                or not isinstance(metadata.get("event_type"), str)
                or not isinstance(metadata.get("event_payload"), dict)
            ):
                raise _ApiError("invalid_metadata_format")
            if not _EVENT_TYPE_RE.match(metadata["event_type"]):
                raise _ApiError("invalid_metadata_schema")
        return {"text": text, "blocks": blocks, "attachments": attachments, "metadata": metadata}

    def _check_postable(self, channel: str) -> None:
        chan = self.channels[channel]
        if chan["is_archived"]:
            raise _ApiError("is_archived")
        members = self.channel_members.get(channel, [])
        if self.bot_user_id not in members and (self.require_membership or chan["is_private"]):
            raise _ApiError("not_in_channel")

    def _store_message(
        self,
        channel: str,
        content: dict[str, Any],
        *,
        thread_ts: str | None = None,
        reply_broadcast: bool = False,
        extra: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        ts = self._next_ts()
        msg: dict[str, Any] = {
            "type": "message",
            "user": self.bot_user_id,
            "bot_id": self.bot_id,
            "app_id": self.app_id,
            "text": content.get("text") or "",
            "ts": ts,
            "team": self.team_id,
            "bot_profile": {
                "id": self.bot_id,
                "app_id": self.app_id,
                "name": self.users[self.bot_user_id]["real_name"],
                "deleted": False,
                "team_id": self.team_id,
            },
        }
        if content.get("blocks") is not None:
            msg["blocks"] = content["blocks"]
        if content.get("attachments") is not None:
            msg["attachments"] = content["attachments"]
        if content.get("metadata") is not None:
            msg["metadata"] = content["metadata"]
        if thread_ts:
            parent = self._find(channel, thread_ts)
            if parent is None:
                # Slack posts it unthreaded rather than failing.
                self.warnings.append(f"thread_ts {thread_ts} not found in {channel}; top-level")
                thread_ts = None
            elif parent.get("thread_ts") and parent["thread_ts"] != parent["ts"]:
                thread_ts = parent["thread_ts"]  # a reply's ts: attach to its thread
                parent = self._find(channel, thread_ts)
            if thread_ts and parent is not None:
                msg["thread_ts"] = thread_ts
                msg["parent_user_id"] = parent.get("user")
                if reply_broadcast:
                    msg["subtype"] = "thread_broadcast"
                    msg["reply_broadcast"] = True
                parent["thread_ts"] = parent["ts"]
                parent["reply_count"] = parent.get("reply_count", 0) + 1
                users = parent.setdefault("reply_users", [])
                if self.bot_user_id not in users:
                    users.append(self.bot_user_id)
                parent["reply_users_count"] = len(users)
                parent["latest_reply"] = ts
                parent.setdefault("is_locked", False)
                parent.setdefault("subscribed", False)
        stored = dict(msg, channel=channel, **(extra or {}))
        self.messages.setdefault(channel, []).append(stored)
        self._cv.notify_all()
        return stored

    # -- methods (each runs with params parsed; raise _ApiError on failure) ------------------
    def _auth_test(self, params: dict[str, Any]) -> dict[str, Any]:
        return {
            "url": f"https://{self.team_domain}.slack.com/",
            "team": self.team_name,
            "user": self.users[self.bot_user_id]["name"],
            "team_id": self.team_id,
            "user_id": self.bot_user_id,
            "bot_id": self.bot_id,
            "is_enterprise_install": False,
        }

    def _apps_connections_open(self, params: dict[str, Any]) -> dict[str, Any]:
        ticket = uuid.uuid4().hex
        with self._cv:
            self._tickets.add(ticket)
        return {"url": f"ws://{self.host}:{self.port}/socket/{ticket}"}

    def _chat_post_message(self, params: dict[str, Any]) -> dict[str, Any]:
        with self._cv:
            channel = self._resolve_channel(params.get("channel"), allow_user=True)
            self._check_postable(channel)
            content = self._content(params)
            extra = {k: _truthy(params[k]) for k in ("unfurl_links", "unfurl_media") if k in params}
            msg = self._store_message(
                channel,
                content,
                thread_ts=str(params["thread_ts"]) if params.get("thread_ts") else None,
                reply_broadcast=_truthy(params.get("reply_broadcast")),
                extra=extra,
            )
            return {
                "channel": channel,
                "ts": msg["ts"],
                "message": self._public(msg, include_metadata=True),
            }

    def _chat_update(self, params: dict[str, Any]) -> dict[str, Any]:
        with self._cv:
            channel = self._resolve_channel(params.get("channel"))
            ts = str(params.get("ts") or "")
            msg = self._find(channel, ts)
            if msg is None:
                raise _ApiError("message_not_found")
            if msg.get("bot_id") != self.bot_id:
                raise _ApiError("cant_update_message")
            content = self._content(params)
            self._apply_update(channel, msg, content, via="chat.update")
            return {
                "channel": channel,
                "ts": ts,
                "text": msg["text"],
                "message": self._public(msg, include_metadata=True),
            }

    def _apply_update(
        self, channel: str, msg: dict[str, Any], content: dict[str, Any], *, via: str
    ) -> None:
        if content.get("text") is not None:
            msg["text"] = content["text"]
        for key in ("blocks", "attachments", "metadata"):
            if content.get(key) is not None:
                msg[key] = content[key]
        msg["edited"] = {"user": self.bot_user_id, "ts": self._next_ts()}
        self.updates.append(
            {
                "channel": channel,
                "ts": msg["ts"],
                "text": content.get("text"),
                "blocks": content.get("blocks"),
                "metadata": content.get("metadata"),
                "via": via,
                "at": time.monotonic(),
            }
        )
        self._cv.notify_all()

    def _chat_delete(self, params: dict[str, Any]) -> dict[str, Any]:
        with self._cv:
            channel = self._resolve_channel(params.get("channel"))
            ts = str(params.get("ts") or "")
            msg = self._find(channel, ts)
            if msg is None:
                raise _ApiError("message_not_found")
            if msg.get("bot_id") != self.bot_id:
                raise _ApiError("cant_delete_message")
            self._delete(channel, msg)
            return {"channel": channel, "ts": ts}

    def _delete(self, channel: str, msg: dict[str, Any]) -> None:
        self.messages[channel].remove(msg)
        self.deleted.append({"channel": channel, "ts": msg["ts"]})
        self._cv.notify_all()

    def _chat_post_ephemeral(self, params: dict[str, Any]) -> dict[str, Any]:
        with self._cv:
            channel = self._resolve_channel(params.get("channel"))
            user = str(params.get("user") or "")
            if user not in self.users:
                raise _ApiError("user_not_found")
            self._check_postable(channel)
            if user not in self.channel_members.get(channel, []):
                raise _ApiError("user_not_in_channel")
            content = self._content(params)
            ts = self._next_ts()
            self.ephemerals.append(
                {
                    "channel": channel,
                    "user": user,
                    "ts": ts,
                    "text": content["text"],
                    "blocks": content["blocks"],
                    "thread_ts": params.get("thread_ts"),
                    "via": "chat.postEphemeral",
                }
            )
            self._cv.notify_all()
            return {"message_ts": ts}

    def _chat_get_permalink(self, params: dict[str, Any]) -> dict[str, Any]:
        with self._cv:
            channel = self._resolve_channel(params.get("channel"))
            ts = str(params.get("message_ts") or "")
            msg = self._find(channel, ts)
            if msg is None:
                raise _ApiError("message_not_found")
            link = f"https://{self.team_domain}.slack.com/archives/{channel}/p{ts.replace('.', '')}"
            if msg.get("thread_ts") and msg["thread_ts"] != ts:
                link += f"?thread_ts={msg['thread_ts']}&cid={channel}"
            return {"channel": channel, "permalink": link}

    def _time_filter(self, msgs: list[dict[str, Any]], params: dict[str, Any]) -> list[dict]:
        inclusive = _truthy(params.get("inclusive"))
        oldest = params.get("oldest")
        latest = params.get("latest")
        out = []
        for m in msgs:
            key = _ts_key(m["ts"])
            if oldest not in (None, ""):
                lo = _ts_key(str(oldest))
                if key < lo or (key == lo and not inclusive):
                    continue
            if latest not in (None, ""):
                hi = _ts_key(str(latest))
                if key > hi or (key == hi and not inclusive):
                    continue
            out.append(m)
        return out

    def _conversations_history(self, params: dict[str, Any]) -> dict[str, Any]:
        with self._cv:
            channel = self._resolve_channel(params.get("channel"))
            limit = _limit(params, 100, 999)
            include_md = _truthy(params.get("include_all_metadata"))
            msgs = [m for m in self.messages.get(channel, []) if _is_top(m)]
            msgs = self._time_filter(msgs, params)
            msgs.sort(key=lambda m: _ts_key(m["ts"]), reverse=True)
            start = 0
            if params.get("cursor"):
                start = _index_of_ts(msgs, _decode_cursor(str(params["cursor"]), "next_ts"))
            page = msgs[start : start + limit]
            rest = msgs[start + limit :]
            out: dict[str, Any] = {
                "messages": [self._public(m, include_metadata=include_md) for m in page],
                "has_more": bool(rest),
                "pin_count": 0,
                "channel_actions_ts": None,
                "channel_actions_count": 0,
            }
            if rest:
                out["response_metadata"] = {
                    "next_cursor": _encode_cursor("next_ts", rest[0]["ts"].replace(".", ""))
                }
            return out

    def _conversations_replies(self, params: dict[str, Any]) -> dict[str, Any]:
        with self._cv:
            channel = self._resolve_channel(params.get("channel"))
            ts = str(params.get("ts") or "")
            if not ts:
                raise _ApiError(
                    "invalid_arguments",
                    response_metadata={"messages": ["[ERROR] missing required field: ts"]},
                )
            msg = self._find(channel, ts)
            if msg is None:
                raise _ApiError("thread_not_found")
            root_ts = msg.get("thread_ts") or msg["ts"]
            parent = self._find(channel, root_ts) or msg
            replies = [
                m
                for m in self.messages.get(channel, [])
                if m.get("thread_ts") == root_ts and m["ts"] != root_ts
            ]
            replies = self._time_filter(replies, params)
            limit = _limit(params, 1000, 1000)
            include_md = _truthy(params.get("include_all_metadata"))
            seq = [parent, *replies]
            start = 0
            if params.get("cursor"):
                start = _index_of_ts(seq, _decode_cursor(str(params["cursor"]), "next_ts"))
            page = seq[start : start + limit]
            rest = seq[start + limit :]
            if start > 0 and self.replies_parent_on_every_page:
                page = [parent, *page]
            out: dict[str, Any] = {
                "messages": [self._public(m, include_metadata=include_md) for m in page],
                "has_more": bool(rest),
            }
            if rest:
                out["response_metadata"] = {
                    "next_cursor": _encode_cursor("next_ts", rest[0]["ts"].replace(".", ""))
                }
            return out

    def _conversations_members(self, params: dict[str, Any]) -> dict[str, Any]:
        with self._cv:
            channel = self._resolve_channel(params.get("channel"))
            members = list(self.channel_members.get(channel, []))
            limit = _limit(params, 100, 1000)
            start = 0
            if params.get("cursor"):
                after = _decode_cursor(str(params["cursor"]), "user")
                start = members.index(after) if after in members else len(members)
            page, rest = members[start : start + limit], members[start + limit :]
            return {
                "members": page,
                "response_metadata": {
                    "next_cursor": _encode_cursor("user", rest[0]) if rest else ""
                },
            }

    def _conversations_info(self, params: dict[str, Any]) -> dict[str, Any]:
        with self._cv:
            channel = self._resolve_channel(params.get("channel"))
            chan = copy.deepcopy(self.channels[channel])
            members = self.channel_members.get(channel, [])
            chan["is_member"] = self.bot_user_id in members
            if _truthy(params.get("include_num_members")):
                chan["num_members"] = len(members)
            return {"channel": chan}

    def _users_info(self, params: dict[str, Any]) -> dict[str, Any]:
        with self._cv:
            user = self.users.get(str(params.get("user") or ""))
            if user is None:
                raise _ApiError("user_not_found")
            return {"user": copy.deepcopy(user)}

    # -- files --------------------------------------------------------------------------------
    def _files_info(self, params: dict[str, Any]) -> dict[str, Any]:
        with self._cv:
            f = self.files.get(str(params.get("file") or ""))
            if f is None:
                raise _ApiError("file_not_found")
            return {"file": copy.deepcopy(f), "comments": [], "response_metadata": {}}

    async def _handle_file_download(self, request: web.Request) -> web.StreamResponse:
        """``url_private_download``: the bytes for a bot token in ``Authorization: Bearer``;
        without one Slack answers 200 with its HTML sign-in page, not an error."""
        auth = request.headers.get("Authorization", "")
        token = auth[len("Bearer ") :].strip() if auth.startswith("Bearer ") else ""
        file_id = request.match_info["tail"].split("/", 1)[0].rsplit("-", 1)[-1]
        ok = token in self.bot_tokens
        with self._cv:
            self.file_downloads.append({"file": file_id, "authorized": ok, "at": time.time()})
            data = self.file_bytes.get(file_id)
            f = self.files.get(file_id)
            self._cv.notify_all()
        if not ok:
            page = "<!DOCTYPE html><html><head><title>Slack</title></head><body>Sign in</body>"
            return web.Response(text=page, content_type="text/html")
        if data is None or f is None:
            return web.Response(status=404, text="file_not_found")
        return web.Response(body=data, content_type=f["mimetype"])

    # -- OAuth (distribution) --------------------------------------------------------------------
    def _oauth_v2_access(self, params: dict[str, Any]) -> dict[str, Any]:
        """Exchange an authorization code for the workspace's bot token (one per workspace;
        a reinstall gets the same token back unless it was revoked)."""
        if params.get("client_id") != self.client_id:
            raise _ApiError("invalid_client_id")
        if params.get("client_secret") != self.client_secret:
            raise _ApiError("bad_client_secret")
        grant_type = params.get("grant_type")
        if grant_type not in (None, "", "authorization_code"):
            raise _ApiError("invalid_grant_type")
        code = str(params.get("code") or "")
        with self._cv:
            grant = self.grants.get(code)
            if grant is None or time.time() > grant["expires_at"]:
                raise _ApiError("invalid_code")
            if grant["used"]:
                raise _ApiError("code_already_used")
            given = params.get("redirect_uri") or None
            if given is not None and given != grant["redirect_uri"]:
                raise _ApiError("bad_redirect_uri")
            if grant["explicit_redirect"] and given is None:
                raise _ApiError("bad_redirect_uri")
            grant["used"] = True
            ws = self._workspaces[grant["team"]]
            token = ws.oauth_bot_token
            if token is None or token not in ws.bot_tokens:
                token = f"xoxb-{ws.team_id}-{secrets.randbelow(10**12)}-{secrets.token_hex(12)}"
                ws.bot_tokens.add(token)
                ws.oauth_bot_token = token
            ws.token_scopes[token] = ",".join(grant["scopes"])
            ws.installed_by = grant["user"]
            authed_user: dict[str, Any] = {"id": grant["user"]}
            if grant["user_scopes"]:
                user_token = f"xoxp-{ws.team_id}-{secrets.token_hex(12)}"
                ws.user_tokens.add(user_token)
                authed_user.update(
                    scope=",".join(grant["user_scopes"]),
                    access_token=user_token,
                    token_type="user",
                )
            self._cv.notify_all()
            return {
                "app_id": self.app_id,
                "authed_user": authed_user,
                "scope": ",".join(grant["scopes"]),
                "token_type": "bot",
                "access_token": token,
                "bot_user_id": ws.bot_user_id,
                "team": {"id": ws.team_id, "name": ws.team_name},
                "enterprise": None,
                "is_enterprise_install": False,
            }

    async def _handle_authorize(self, request: web.Request) -> web.Response:
        """slack.com/oauth/v2/authorize: the installing person (signed in to
        ``signed_in_team``, or the workspace ``team`` names) clicks Allow — or Cancel, when
        ``deny_next_install`` is set — and the browser goes back to the redirect URI with a
        ``code`` (or an ``error``) and the ``state``."""
        q = request.query
        if q.get("client_id") != self.client_id:
            return web.Response(status=400, text="invalid_client_id", content_type="text/html")
        scopes = [x for x in q.get("scope", "").split(",") if x]
        user_scopes = [x for x in q.get("user_scope", "").split(",") if x]
        if not scopes and not user_scopes:
            return web.Response(status=400, text="invalid_scope", content_type="text/html")
        given = q.get("redirect_uri") or None
        redirect = given or (self.redirect_urls[0] if self.redirect_urls else None)
        if redirect is None or (
            self.redirect_urls and not any(redirect.startswith(u) for u in self.redirect_urls)
        ):
            return web.Response(status=400, text="bad_redirect_uri", content_type="text/html")
        with self._cv:
            team = q.get("team") if q.get("team") in self._workspaces else self.signed_in_team
            ws = self._workspaces[team]
            state = q.get("state", "")
            if self.deny_next_install:
                self.deny_next_install = False
                answer = {"error": "access_denied", "state": state}
            else:
                code = f"{int(time.time())}.{secrets.randbelow(10**12)}.{secrets.token_hex(16)}"
                self.grants[code] = {
                    "team": team,
                    "user": ws.human_user_id,
                    "scopes": scopes,
                    "user_scopes": user_scopes,
                    "redirect_uri": redirect,
                    "explicit_redirect": given is not None,
                    "expires_at": time.time() + OAUTH_CODE_TTL,
                    "used": False,
                }
                answer = {"code": code, "state": state}
        sep = "&" if "?" in redirect else "?"
        raise web.HTTPFound(redirect + sep + urlencode(answer))

    # -- Events API over HTTP ------------------------------------------------------------------
    def deliver_event(self, event: dict[str, Any], **kwargs: Any) -> int:
        """POST an ``event_callback`` of this workspace to the app's ``events_url``, signed
        with the signing secret like Slack does; returns the HTTP status of the answer."""
        server = self._home or self
        if not server.events_url:
            raise RuntimeError("set events_url (the app's Request URL) first")
        kwargs.setdefault("team_id", self.team_id)
        kwargs.setdefault("api_app_id", self.app_id)
        kwargs.setdefault("authorized_user_id", self.bot_user_id)
        body = json.dumps(event_callback_payload(event, **kwargs)).encode()
        headers = {
            "Content-Type": "application/json",
            **sign_request(body, server.signing_secret),
        }
        status: int = self._run_coro(self._post_event(server.events_url, body, headers))
        with self._cv:
            self.event_deliveries.append(
                {"team": self.team_id, "event": copy.deepcopy(event), "status": status}
            )
            self._cv.notify_all()
        return status

    async def deliver_event_async(self, event: dict[str, Any], **kwargs: Any) -> int:
        return await asyncio.to_thread(self.deliver_event, event, **kwargs)

    @staticmethod
    async def _post_event(url: str, body: bytes, headers: dict[str, str]) -> int:
        import aiohttp

        timeout = aiohttp.ClientTimeout(total=10)
        async with (
            aiohttp.ClientSession(timeout=timeout) as session,
            session.post(url, data=body, headers=headers) as resp,
        ):
            return resp.status

    def revoke_tokens(self, *, bot: bool = True, users: tuple[str, ...] = ()) -> int:
        """Someone revoked the app's bot token (and/or users' tokens) in this workspace: they
        stop working (``token_revoked``) and a ``tokens_revoked`` event goes out."""
        with self._cv:
            tokens: dict[str, list[str]] = {"oauth": list(users), "bot": []}
            if bot:
                self.revoked_tokens |= self.bot_tokens
                self.bot_tokens.clear()
                tokens["bot"] = [self.bot_user_id]
            if users:
                self.revoked_tokens |= self.user_tokens
                self.user_tokens.clear()
        return self.deliver_event({"type": "tokens_revoked", "tokens": tokens})

    def uninstall(self, *, tokens_revoked_event: bool = True) -> list[int]:
        """The workspace removes the app: every token of it is revoked and Slack sends
        ``tokens_revoked`` (optional here) and ``app_uninstalled``; returns the statuses."""
        statuses = []
        if tokens_revoked_event:
            statuses.append(self.revoke_tokens(bot=True, users=tuple(self._user_ids())))
        with self._cv:
            self.revoked_tokens |= self.bot_tokens | self.user_tokens
            self.bot_tokens.clear()
            self.user_tokens.clear()
            self.installed_by = None
        statuses.append(self.deliver_event({"type": "app_uninstalled"}))
        return statuses

    async def uninstall_async(self, *, tokens_revoked_event: bool = True) -> list[int]:
        return await asyncio.to_thread(self.uninstall, tokens_revoked_event=tokens_revoked_event)

    def _user_ids(self) -> list[str]:
        with self._cv:
            return [self.installed_by] if self.user_tokens and self.installed_by else []

    _METHODS: ClassVar[dict[str, Callable[[FakeSlack, dict[str, Any]], dict[str, Any]]]] = {
        "files.info": _files_info,
        "auth.test": _auth_test,
        "apps.connections.open": _apps_connections_open,
        "chat.postMessage": _chat_post_message,
        "chat.update": _chat_update,
        "chat.delete": _chat_delete,
        "chat.postEphemeral": _chat_post_ephemeral,
        "chat.getPermalink": _chat_get_permalink,
        "conversations.history": _conversations_history,
        "conversations.replies": _conversations_replies,
        "conversations.members": _conversations_members,
        "conversations.info": _conversations_info,
        "users.info": _users_info,
        "oauth.v2.access": _oauth_v2_access,
    }

    # -- response_url --------------------------------------------------------------------------
    async def _handle_response_url(self, request: web.Request) -> web.Response:
        rid = request.match_info["rid"]
        raw = await request.read()
        with self._cv:
            ctx = self.response_contexts.get(rid)
            if ctx is None:
                return web.Response(status=404, text="expired_url", content_type="text/html")
            if ctx["uses"] >= self.response_url_max_uses:
                return web.Response(status=404, text="used_url", content_type="text/html")
            try:
                body = json.loads(raw or b"null")
            except ValueError:
                body = None
            if not isinstance(body, dict):
                return web.Response(status=400, text="invalid_payload", content_type="text/html")
            try:
                delete = _truthy(body.get("delete_original"))
                content = self._content(body, require=not delete)
            except _ApiError as exc:
                return web.Response(status=400, text=exc.error, content_type="text/html")
            ctx["uses"] += 1
            self.responses[rid].append(body)
            self._workspaces.get(ctx.get("team") or "", self)._apply_response(ctx, body, content)
            self._cv.notify_all()
        return web.Response(status=200, text="ok", content_type="text/html")

    def _apply_response(
        self, ctx: dict[str, Any], body: dict[str, Any], content: dict[str, Any]
    ) -> None:
        channel, message_ts = ctx.get("channel"), ctx.get("message_ts")
        original = self._find(channel, message_ts) if channel and message_ts else None
        if _truthy(body.get("delete_original")):
            if original is not None:
                self._delete(channel, original)
            return
        if _truthy(body.get("replace_original")) and original is not None:
            self._apply_update(channel, original, content, via="response_url")
            return
        if body.get("response_type") == "in_channel" and channel in self.channels:
            self._store_message(
                channel, content, thread_ts=body.get("thread_ts") or ctx.get("thread_ts")
            )
            return
        self.ephemerals.append(
            {
                "channel": channel,
                "user": ctx.get("user"),
                "ts": self._next_ts(),
                "text": content.get("text"),
                "blocks": content.get("blocks"),
                "thread_ts": body.get("thread_ts") or ctx.get("thread_ts"),
                "via": "response_url",
            }
        )

    # -- Socket Mode -------------------------------------------------------------------------
    async def _handle_socket(self, request: web.Request) -> web.StreamResponse:
        ticket = request.match_info["ticket"]
        with self._cv:
            known = ticket in self._tickets
        if not known:
            return web.Response(status=401, text="invalid ticket")
        ws = web.WebSocketResponse(autoping=True, timeout=2.0)
        await ws.prepare(request)
        with self._cv:
            self._sockets.append(ws)
            self.socket_connections_total += 1
            count = len(self._sockets)
        hello = {
            "type": "hello",
            "num_connections": count,
            "debug_info": {
                "host": "applink-fake-1",
                "build_number": 1,
                "approximate_connection_time": 18060,
            },
            "connection_info": {"app_id": self.app_id},
        }
        try:
            await ws.send_str(json.dumps(hello))
            self.connected.set()
            with self._cv:
                self._cv.notify_all()
            async for msg in ws:
                if msg.type == WSMsgType.TEXT:
                    self._on_socket_text(msg.data)
                elif msg.type == WSMsgType.ERROR:
                    break
        finally:
            with self._cv:
                if ws in self._sockets:
                    self._sockets.remove(ws)
                if not self._sockets:
                    self.connected.clear()
                self._cv.notify_all()
        return ws

    def _on_socket_text(self, data: str) -> None:
        now = time.monotonic()
        try:
            msg = json.loads(data)
        except ValueError:
            msg = {"_raw": data}
        if not isinstance(msg, dict):
            msg = {"_raw": data}
        with self._cv:
            self.socket_messages.append(msg)
            eid = msg.get("envelope_id")
            if isinstance(eid, str) and eid in self.pushed:
                latency = now - self._pushed_at[eid]
                record = {
                    "envelope_id": eid,
                    "type": self.pushed[eid]["type"],
                    "payload": msg.get("payload"),
                    "ack_latency": latency,
                    "late": latency > ACK_DEADLINE,
                }
                if eid in self.acks:
                    self.duplicate_acks.append(record)
                else:
                    self.acks[eid] = record
            self._cv.notify_all()

    def _push(self, kind: str, payload: dict[str, Any], **envelope_extra: Any) -> str:
        if self._home is not None:  # one Socket Mode connection serves every workspace
            return self._home._push(kind, payload, **envelope_extra)
        if not self.connected.wait(5.0):
            raise RuntimeError("no Socket Mode connection to push to (is the handler connected?)")
        envelope = {
            "envelope_id": str(uuid.uuid4()),
            "payload": payload,
            "type": kind,
            **envelope_extra,
        }
        self._run_coro(self._send_envelope(envelope))
        return envelope["envelope_id"]

    async def _send_envelope(self, envelope: dict[str, Any]) -> None:
        with self._cv:
            live = [ws for ws in self._sockets if not ws.closed]
            if not live:
                raise RuntimeError("no open Socket Mode connection")
            ws = live[-1]
            eid = envelope["envelope_id"]
            self.pushed[eid] = envelope
            self._pushed_at[eid] = time.monotonic()
        await ws.send_str(json.dumps(envelope))

    async def _broadcast(self, text: str, close_after: float | None) -> None:
        with self._cv:
            sockets = list(self._sockets)
        for ws in sockets:
            if not ws.closed:
                await ws.send_str(text)
        if close_after is not None:

            async def _later() -> None:
                await asyncio.sleep(close_after)
                for ws in sockets:
                    if not ws.closed:
                        await ws.close()

            self._tasks.add(task := asyncio.ensure_future(_later()))
            task.add_done_callback(self._tasks.discard)

    async def _close_sockets(self) -> None:
        with self._cv:
            sockets = list(self._sockets)
        for ws in sockets:
            if not ws.closed:
                with contextlib.suppress(Exception):  # best effort
                    await ws.close(code=1001, message=b"going away")


# -- module helpers used above --------------------------------------------------------------------
def _is_top(msg: dict[str, Any]) -> bool:
    thread_ts = msg.get("thread_ts")
    return not thread_ts or thread_ts == msg["ts"] or bool(msg.get("reply_broadcast"))


def _index_of_ts(msgs: list[dict[str, Any]], digits: str) -> int:
    for i, m in enumerate(msgs):
        if m["ts"].replace(".", "") == digits:
            return i
    raise _ApiError("invalid_cursor")


def _find_element(blocks: list[Any], action_id: str) -> tuple[str, dict[str, Any]] | None:
    for block in blocks:
        if not isinstance(block, dict):
            continue
        elements = list(block.get("elements") or []) if block.get("type") == "actions" else []
        if isinstance(block.get("accessory"), dict):
            elements.append(block["accessory"])
        for el in elements:
            if isinstance(el, dict) and el.get("action_id") == action_id:
                return block.get("block_id", ""), el
    return None
