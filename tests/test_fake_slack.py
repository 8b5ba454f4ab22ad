"""Self-test of tests/fakes/slack.py against the real slack_sdk and slack_bolt clients."""

from __future__ import annotations

import time

import pytest
from slack_bolt.adapter.socket_mode.async_handler import AsyncSocketModeHandler
from slack_bolt.app.async_app import AsyncApp
from slack_bolt.request.async_request import AsyncBoltRequest
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError
from slack_sdk.http_retry.builtin_async_handlers import AsyncRateLimitErrorRetryHandler
from slack_sdk.http_retry.builtin_handlers import (
    RateLimitErrorRetryHandler,
    ServerErrorRetryHandler,
)
from slack_sdk.web.async_client import AsyncWebClient

from tests.fakes.slack import (
    BOT_USER_ID,
    GENERAL_CHANNEL,
    HUMAN_USER_ID,
    PAPERS_CHANNEL,
    FakeSlack,
    block_action_body,
    sign_request,
    slash_command_body,
)

BOT_TOKEN = "xoxb-test"
APP_TOKEN = "xapp-test"


@pytest.fixture
def fake():
    with FakeSlack() as server:
        yield server


def _client(fake: FakeSlack, **kwargs) -> WebClient:
    return WebClient(token=BOT_TOKEN, base_url=fake.api_url, timeout=5, **kwargs)


def _section(text: str) -> dict:
    return {"type": "section", "text": {"type": "mrkdwn", "text": text}}


# -- Web API ---------------------------------------------------------------------------------
def test_auth_test_and_token_checks(fake):
    resp = _client(fake).auth_test()
    assert resp["ok"] and resp["user_id"] == BOT_USER_ID and resp["bot_id"]
    assert resp["team_id"] and resp["url"].startswith("https://")
    assert "chat:write" in resp.headers["x-oauth-scopes"]

    with pytest.raises(SlackApiError) as err:
        WebClient(token="xoxb-wrong", base_url=fake.api_url).auth_test()
    assert err.value.response["error"] == "invalid_auth"
    assert err.value.response.status_code == 200

    with pytest.raises(SlackApiError) as err:
        WebClient(token=APP_TOKEN, base_url=fake.api_url).chat_postMessage(channel="C", text="x")
    assert err.value.response["error"] == "not_allowed_token_type"

    with pytest.raises(SlackApiError) as err:
        _client(fake).apps_connections_open(app_token=BOT_TOKEN)
    assert err.value.response["error"] == "not_allowed_token_type"
    url = _client(fake).apps_connections_open(app_token=APP_TOKEN)["url"]
    assert url.startswith(f"ws://127.0.0.1:{fake.port}/socket/")


def test_thread_with_metadata_roundtrip(fake):
    client = _client(fake)
    metadata = {"event_type": "herald_digest", "event_payload": {"date": "2024-04-05", "n": 3}}
    parent = client.chat_postMessage(
        channel=PAPERS_CHANNEL,
        text="Today's papers",
        blocks=[_section("*Today's papers*")],
        metadata=metadata,
        unfurl_links=False,
        unfurl_media=False,
    )
    assert parent["channel"] == PAPERS_CHANNEL
    assert parent["message"]["metadata"] == metadata
    assert parent["message"]["blocks"][0]["block_id"]  # Slack fills in block_id
    reply_md = {"event_type": "herald_paper", "event_payload": {"arxiv_id": "2404.01234"}}
    reply = client.chat_postMessage(
        channel=PAPERS_CHANNEL, text="paper 1", thread_ts=parent["ts"], metadata=reply_md
    )
    assert float(reply["ts"]) > float(parent["ts"])

    replies = client.conversations_replies(
        channel=PAPERS_CHANNEL, ts=parent["ts"], include_all_metadata=True
    )
    msgs = replies["messages"]
    assert [m["ts"] for m in msgs] == [parent["ts"], reply["ts"]]
    assert msgs[0]["metadata"] == metadata and msgs[1]["metadata"] == reply_md
    assert msgs[0]["reply_count"] == 1 and msgs[1]["thread_ts"] == parent["ts"]

    plain = client.conversations_replies(channel=PAPERS_CHANNEL, ts=parent["ts"])
    assert all("metadata" not in m for m in plain["messages"])

    history = client.conversations_history(channel=PAPERS_CHANNEL)
    assert [m["ts"] for m in history["messages"]] == [parent["ts"]]  # replies not top-level

    stored = fake.thread(PAPERS_CHANNEL, parent["ts"])
    assert [m["text"] for m in stored] == ["Today's papers", "paper 1"]
    assert stored[0]["unfurl_links"] is False and stored[0]["metadata"] == metadata
    assert [m["ts"] for m in fake.top_level(PAPERS_CHANNEL)] == [parent["ts"]]
    assert len(fake.all_posts()) == 2

    link = client.chat_getPermalink(channel=PAPERS_CHANNEL, message_ts=reply["ts"])
    assert f"thread_ts={parent['ts']}" in link["permalink"]


def test_replies_pagination(fake):
    client = _client(fake)
    parent = client.chat_postMessage(channel=GENERAL_CHANNEL, text="root")["ts"]
    sent = [
        client.chat_postMessage(channel=GENERAL_CHANNEL, text=f"r{i}", thread_ts=parent)["ts"]
        for i in range(5)
    ]
    seen: dict[str, str] = {}
    cursor = None
    pages = 0
    while True:
        page = client.conversations_replies(
            channel=GENERAL_CHANNEL, ts=parent, limit=2, cursor=cursor
        )
        pages += 1
        seen.update({m["ts"]: m["text"] for m in page["messages"]})
        cursor = page.get("response_metadata", {}).get("next_cursor")
        if not page["has_more"]:
            assert not cursor
            break
    assert pages == 3
    assert list(seen) == [parent, *sent]

    with pytest.raises(SlackApiError) as err:
        client.conversations_replies(channel=GENERAL_CHANNEL, ts="1.000001")
    assert err.value.response["error"] == "thread_not_found"


def test_other_methods(fake):
    client = _client(fake)
    assert client.conversations_members(channel=GENERAL_CHANNEL)["members"] == [
        BOT_USER_ID,
        HUMAN_USER_ID,
    ]
    assert client.conversations_info(channel=GENERAL_CHANNEL)["channel"]["is_member"] is True
    assert client.users_info(user=HUMAN_USER_ID)["user"]["name"] == "alice"
    with pytest.raises(SlackApiError) as err:
        client.users_info(user="U404")
    assert err.value.response["error"] == "user_not_found"

    ts = client.chat_postMessage(channel=GENERAL_CHANNEL, text="v1")["ts"]
    updated = client.chat_update(channel=GENERAL_CHANNEL, ts=ts, text="v2")
    assert updated["ts"] == ts and fake.message(GENERAL_CHANNEL, ts)["text"] == "v2"
    assert fake.updates[-1]["via"] == "chat.update"
    eph = client.chat_postEphemeral(channel=GENERAL_CHANNEL, user=HUMAN_USER_ID, text="psst")
    assert eph["message_ts"] and fake.ephemerals[-1]["text"] == "psst"


@pytest.mark.parametrize(
    ("kwargs", "error"),
    [
        ({"text": "x", "blocks": [_section(f"b{i}") for i in range(51)]}, "invalid_blocks"),
        ({"text": "x", "blocks": [_section("s" * 3001)]}, "invalid_blocks"),
        (
            {
                "text": "x",
                "blocks": [{"type": "header", "text": {"type": "plain_text", "text": "h" * 151}}],
            },
            "invalid_blocks",
        ),
        (
            {
                "text": "x",
                "blocks": [
                    {
                        "type": "actions",
                        "elements": [
                            {
                                "type": "button",
                                "action_id": "a",
                                "text": {"type": "plain_text", "text": "b" * 76},
                            }
                        ],
                    }
                ],
            },
            "invalid_blocks",
        ),
        (
            {
                "text": "x",
                "blocks": [
                    {
                        "type": "actions",
                        "elements": [
                            {
                                "type": "button",
                                "action_id": "a",
                                "text": {"type": "plain_text", "text": "ok"},
                                "value": "v" * 2001,
                            }
                        ],
                    }
                ],
            },
            "invalid_blocks",
        ),
        ({"text": "t" * 40_001}, "msg_too_long"),
        ({}, "no_text"),
        ({"text": "x", "channel": "C404"}, "channel_not_found"),
    ],
    ids=["51-blocks", "section-3001", "header-151", "button-76", "value-2001", "40k", "none", "ch"],
)
@pytest.mark.filterwarnings("ignore:The top-level `text` argument is missing")
def test_message_limits(fake, kwargs, error):
    kwargs = {"channel": GENERAL_CHANNEL, **kwargs}
    with pytest.raises(SlackApiError) as err:
        _client(fake).chat_postMessage(**kwargs)
    assert err.value.response["error"] == error
    if error == "invalid_blocks":
        messages = err.value.response["response_metadata"]["messages"]
        assert messages and all(m.startswith("[ERROR] ") for m in messages)
    assert fake.all_posts() == []


def test_51_blocks_message(fake):
    with pytest.raises(SlackApiError) as err:
        _client(fake).chat_postMessage(
            channel=GENERAL_CHANNEL, text="x", blocks=[_section(str(i)) for i in range(51)]
        )
    assert err.value.response["response_metadata"]["messages"] == [
        "[ERROR] no more than 50 items allowed [json-pointer:/blocks]"
    ]


def test_429_is_retried_after_retry_after(fake):
    fake.fail_next(1, "chat.postMessage", status=429, retry_after=1)
    client = _client(fake, retry_handlers=[RateLimitErrorRetryHandler(max_retry_count=1)])
    start = time.monotonic()
    resp = client.chat_postMessage(channel=GENERAL_CHANNEL, text="hi")
    assert resp["ok"] and time.monotonic() - start >= 1.0
    assert len(fake.calls_to("/api/chat.postMessage")) == 2
    assert len(fake.top_level(GENERAL_CHANNEL)) == 1  # the 429'd attempt stored nothing

    fake.fail_next(1, "chat.postMessage", status=429, retry_after=7)
    with pytest.raises(SlackApiError) as err:  # no retry handler: the 429 surfaces
        _client(fake).chat_postMessage(channel=GENERAL_CHANNEL, text="hi")
    assert err.value.response.status_code == 429
    assert err.value.response["error"] == "ratelimited"
    assert err.value.response.headers["Retry-After"] == "7"


def test_500_is_retried_by_server_error_handler(fake):
    fake.fail_next(1, "auth.test", status=500)
    client = _client(fake, retry_handlers=[ServerErrorRetryHandler(max_retry_count=1)])
    assert client.auth_test()["ok"]
    assert len(fake.calls_to("/api/auth.test")) == 2

    fake.fail_next(1, status=503)
    with pytest.raises(SlackApiError) as err:
        _client(fake).auth_test()
    assert err.value.response.status_code == 503


def test_rate_limit_per_channel(fake):
    fake.rate_limit_per_channel(per_second=1.0)
    client = _client(fake)
    client.chat_postMessage(channel=GENERAL_CHANNEL, text="1")
    client.chat_postMessage(channel=PAPERS_CHANNEL, text="other channel is fine")
    with pytest.raises(SlackApiError) as err:
        client.chat_postMessage(channel=GENERAL_CHANNEL, text="2")
    assert err.value.response.status_code == 429
    assert err.value.response.headers["Retry-After"] == "1"
    assert fake.rate_limited_count == 1


def test_hang_next(fake):
    fake.hang_next("auth.test")
    client = WebClient(token=BOT_TOKEN, base_url=fake.api_url, timeout=0.5)
    with pytest.raises(TimeoutError):
        client.auth_test()
    fake.release_hangs()
    assert client.auth_test()["ok"]
    fake.hang_next("auth.test", seconds=0.2)  # a slow answer, not a dead one
    start = time.monotonic()
    assert client.auth_test()["ok"] and time.monotonic() - start >= 0.2


async def test_async_client(fake):
    client = AsyncWebClient(
        token=BOT_TOKEN,
        base_url=fake.api_url,
        retry_handlers=[AsyncRateLimitErrorRetryHandler(max_retry_count=1)],
    )
    assert (await client.auth_test())["user_id"] == BOT_USER_ID
    fake.fail_next(1, "chat.postMessage", status=429, retry_after=1)
    md = {"event_type": "herald_digest", "event_payload": {"k": "v"}}
    parent = await client.chat_postMessage(channel=GENERAL_CHANNEL, text="p", metadata=md)
    await client.chat_postMessage(channel=GENERAL_CHANNEL, text="r", thread_ts=parent["ts"])
    # AsyncWebClient sends conversations.replies as a real GET with a query string
    replies = await client.conversations_replies(
        channel=GENERAL_CHANNEL, ts=parent["ts"], include_all_metadata=True
    )
    assert [m["text"] for m in replies["messages"]] == ["p", "r"]
    assert replies["messages"][0]["metadata"] == md
    assert fake.calls_to("/api/conversations.replies")[-1].method == "GET"
    assert len(fake.injected) == 1


# -- Bolt over Socket Mode ------------------------------------------------------------------
async def test_bolt_socket_mode_slash_command_and_button(fake):
    # Pass the token only through the client: AsyncApp(token=..., client=...) ignores `token`
    # (and logs a warning).  AsyncApp calls auth.test lazily, on the first dispatched request.
    app = AsyncApp(client=AsyncWebClient(token=BOT_TOKEN, base_url=fake.api_url))
    seen: list[str] = []

    @app.command("/herald")
    async def on_command(ack, respond, command):
        await ack()
        seen.append(command["text"])
        await respond(text=f"searching {command['text']}", response_type="ephemeral")

    @app.action("save_paper")
    async def on_save(ack, body, respond, client):
        await ack()
        seen.append(body["actions"][0]["value"])
        await respond(text="saved", replace_original=True)
        await client.chat_postMessage(
            channel=body["channel"]["id"], thread_ts=body["message"]["ts"], text="noted"
        )

    @app.event("app_mention")
    async def on_mention(event):  # Bolt does NOT ack events nobody listens to
        seen.append(event["text"])

    handler = AsyncSocketModeHandler(app, APP_TOKEN)  # web_client defaults to app.client
    try:
        await handler.connect_async()
        assert await fake.wait_connected_async(5)
        assert fake.socket_messages == [] and fake.open_connections == 1

        eid = fake.push_slash_command("/herald", "transformers", channel_id=GENERAL_CHANNEL)
        ack = await fake.wait_for_ack_async(eid, 5)
        assert ack["payload"] is None and ack["type"] == "slash_commands"
        assert ack["ack_latency"] >= 0
        response_url = fake.payload_of(eid)["response_url"]
        (resp,) = await fake.wait_for_response_async(response_url, 5)
        assert resp["text"] == "searching transformers"
        assert fake.ephemerals[-1]["via"] == "response_url"

        posted = await app.client.chat_postMessage(
            channel=GENERAL_CHANNEL,
            text="paper",
            blocks=[
                _section("A paper"),
                {
                    "type": "actions",
                    "elements": [
                        {
                            "type": "button",
                            "action_id": "save_paper",
                            "value": "2404.01234",
                            "text": {"type": "plain_text", "text": "Save"},
                        }
                    ],
                },
            ],
        )
        eid = fake.push_block_action(
            "save_paper", channel_id=GENERAL_CHANNEL, message_ts=posted["ts"]
        )
        ack = await fake.wait_for_ack_async(eid, 5)
        assert ack["type"] == "interactive"
        assert (
            fake.payload_of(eid)["actions"][0]["block_id"]
            == posted["message"]["blocks"][1]["block_id"]
        )
        assert await fake.wait_until_async(
            lambda: len(fake.thread(GENERAL_CHANNEL, posted["ts"])) == 2, 5
        )
        assert fake.message(GENERAL_CHANNEL, posted["ts"])["text"] == "saved"  # replaced
        assert seen == ["transformers", "2404.01234"]
        assert len(fake.calls_to("/api/auth.test")) == 1  # Bolt's lazy, cached auth.test

        fake.send_disconnect("refresh_requested")
        assert await fake.wait_until_async(lambda: fake.socket_connections_total == 2, 5)
        assert await fake.wait_connected_async(5)
        eid = fake.push_event(
            {"type": "app_mention", "user": HUMAN_USER_ID, "channel": GENERAL_CHANNEL, "text": "hi"}
        )
        assert (await fake.wait_for_ack_async(eid, 5))["type"] == "events_api"
        assert await fake.wait_until_async(lambda: "hi" in seen, 5)
    finally:
        await handler.close_async()
    assert await fake.wait_until_async(lambda: fake.open_connections == 0, 5)


# -- Bolt over HTTP (signed requests, no socket) ----------------------------------------------
async def test_http_mode_helpers_pass_bolt_signature_check(fake):
    secret = "shhh"
    app = AsyncApp(
        signing_secret=secret, client=AsyncWebClient(token=BOT_TOKEN, base_url=fake.api_url)
    )

    @app.command("/herald")
    async def on_command(ack, command):
        await ack(text=f"got {command['text']}")

    @app.action("save_paper")
    async def on_save(ack):
        await ack()

    form = {"Content-Type": "application/x-www-form-urlencoded"}
    body = slash_command_body("/herald", "llm", response_url=fake.new_response_url())
    resp = await app.async_dispatch(
        AsyncBoltRequest(body=body.decode(), headers={**form, **sign_request(body, secret)})
    )
    assert resp.status == 200 and "got llm" in resp.body

    bad = {**form, **sign_request(body, "wrong-secret")}
    resp = await app.async_dispatch(AsyncBoltRequest(body=body.decode(), headers=bad))
    assert resp.status == 401

    stale = sign_request(body, secret, timestamp=int(time.time()) - 600)
    resp = await app.async_dispatch(AsyncBoltRequest(body=body.decode(), headers={**form, **stale}))
    assert resp.status == 401

    body = block_action_body("save_paper", "x", message_ts="1712345678.000100")
    resp = await app.async_dispatch(
        AsyncBoltRequest(body=body.decode(), headers={**form, **sign_request(body, secret)})
    )
    assert resp.status == 200


def test_fake_shuts_down_cleanly():
    fake = FakeSlack().start()
    fake.hang_next()  # a hung request must not block stop()
    client = WebClient(token=BOT_TOKEN, base_url=fake.api_url, timeout=0.3)
    with pytest.raises(TimeoutError):
        client.auth_test()
    fake.stop()  # wakes the hung request instead of waiting for it
    assert fake._thread is not None and not fake._thread.is_alive()
