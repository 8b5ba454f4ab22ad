"""The Slack adapter end to end: real slack-bolt / slack_sdk against tests/fakes/slack.py.

Only translation and transport are tested here (signatures, acks, threads, metadata, pacing,
retries, escaping, buttons, membership); what each command does is the platform-neutral
command script's business (tests/test_commands.py, on the test bot).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import datetime as dt
import itertools
import json
import re
import time
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from adapters.slack.adapter import EVENTS_PATH, SlackAdapter
from adapters.slack.blocks import ANSWER_EVENT, ITEM_EVENT, SUMMARY_EVENT
from adapters.slack.files import download, may_carry_token
from bot.app import App, build
from bot.config import Config
from bot.delivery import deliver
from bot.engine import Engine
from bot.errors import ConfigError, DeliveryError
from bot.models import Digest, Paper, Rating, ScoredPaper, Subscription
from bot.platform import Adapter
from tests.conftest import DAY
from tests.fakes.openai_api import FakeOpenAI
from tests.fakes.slack import (
    GENERAL_CHANNEL,
    HUMAN_USER_ID,
    PAPERS_CHANNEL,
    FakeSlack,
    block_action_body,
    event_callback_body,
    sign_request,
    slash_command_body,
)

ROOT = Path(__file__).resolve().parents[1]
SIGNING_SECRET = "test-signing-secret"
THE_DAY = dt.date.fromisoformat(DAY)
BOB = "U0BOB"  # in the workspace, not in #general
_INTERNAL = ("channel", "metadata", "unfurl_links", "unfurl_media")


@pytest.fixture
def fake() -> Iterator[FakeSlack]:
    with FakeSlack() as server:
        server.add_user(BOB, "bob")
        yield server


@pytest.fixture
def tokens(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SLACK_BOT_TOKEN", "xoxb-test")
    monkeypatch.setenv("SLACK_APP_TOKEN", "xapp-test")
    monkeypatch.setenv("SLACK_SIGNING_SECRET", SIGNING_SECRET)


Built = tuple[Engine, SlackAdapter]


@pytest.fixture
def make(make_config: Callable[..., Config], fake: FakeSlack, tokens: None) -> Iterator[Any]:
    """``make(openai, **overrides)`` -> (engine with DAY fetched, the Slack adapter), wired by
    the composition root like ``herald serve`` does."""
    apps: list[App] = []

    def make_(
        openai: FakeOpenAI | None = None, adapter_kw: dict[str, Any] | None = None, **over: Any
    ) -> Built:
        settings = {
            "learning.enabled": False,
            "slack.enabled": True,
            "slack.api_base_url": fake.api_url,
            "slack.post_interval_s": 0.0,
            **over,
        }
        cfg = make_config(openai, **settings)
        engine = Engine(cfg)
        assert engine.fetch().status == "ok"
        app = build(cfg, engine)
        apps.append(app)
        adapter = app.adapters["slack"]
        if adapter_kw:  # the same adapter with other retry budgets
            adapter = SlackAdapter(cfg, app.core, **adapter_kw)
        assert isinstance(adapter, SlackAdapter)
        return engine, adapter

    yield make_
    for app in apps:
        app.core.close()
        app.engine.store.close()


@contextlib.asynccontextmanager
async def running(adapter: SlackAdapter) -> AsyncIterator[SlackAdapter]:
    await adapter.connect()
    await adapter.listen()
    try:
        yield adapter
    finally:
        await adapter.disconnect()


def subscribe(engine: Engine, chat: str = GENERAL_CHANNEL, **kw: Any) -> Subscription:
    base = engine.config.default_subscription()
    fields = dict(id=None, platform="slack", chat=chat, name="", feed_token="", **kw)
    return engine.store.upsert_subscription(dataclasses.replace(base, **fields))


def today(engine: Engine, sub: Subscription) -> Digest:
    return engine.digests([sub], THE_DAY)[0]


def ledger(engine: Engine, sub: Subscription) -> list[Any]:
    assert sub.id is not None
    return engine.store.deliveries(sub.id, THE_DAY)


def item_posts(fake: FakeSlack, channel: str) -> list[dict[str, Any]]:
    return [
        m
        for m in fake.all_posts()
        if m["channel"] == channel and (m.get("metadata") or {}).get("event_type") == ITEM_EVENT
    ]


def papers_posted(fake: FakeSlack, channel: str) -> list[str]:
    """Paper ids of the first part of every item message (header excluded), in post order."""
    out = []
    for m in item_posts(fake, channel):
        p = m["metadata"]["event_payload"]
        if p["paper"] and p.get("part", 1) == 1:
            out.append(p["paper"])
    return out


def before_post(adapter: SlackAdapter, actions: dict[int, Callable[[], None]]) -> None:
    """Run ``actions[n]`` (e.g. inject a failure into the fake) just before the n-th post."""
    original = adapter.client.chat_postMessage
    count = 0

    async def post(**kw: Any) -> Any:
        nonlocal count
        count += 1
        if count in actions:
            actions[count]()
        return await original(**kw)

    adapter.client.chat_postMessage = post  # type: ignore[method-assign]


async def slash(
    fake: FakeSlack, command: str, text: str = "", **kw: Any
) -> tuple[dict[str, Any], str]:
    """Push a slash command over Socket Mode; returns (ack record, response_url)."""
    eid = await asyncio.to_thread(fake.push_slash_command, command, text, **kw)
    ack = await fake.wait_for_ack_async(eid, 5)
    return ack, fake.payload_of(eid)["response_url"]


async def answer(fake: FakeSlack, command: str, text: str = "", **kw: Any) -> dict[str, Any]:
    """The response_url answer to a slash command (text, response_type)."""
    _ack, url = await slash(fake, command, text, **kw)
    (body,) = await fake.wait_for_response_async(url, 10)
    return body


def escaped(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


# -- configuration and connection ------------------------------------------------------------
def test_missing_tokens_name_the_variable(make_config, monkeypatch, engine):
    for name in ("SLACK_APP_TOKEN", "SLACK_SIGNING_SECRET"):
        monkeypatch.delenv(name, raising=False)
    cfg = make_config(**{"slack.enabled": True})
    with pytest.raises(ConfigError, match="SLACK_BOT_TOKEN"):
        build(cfg, engine)
    monkeypatch.setenv("SLACK_BOT_TOKEN", "xoxb-test")
    with pytest.raises(ConfigError, match="SLACK_APP_TOKEN"):
        build(cfg, engine)
    cfg = make_config(**{"slack.enabled": True, "slack.mode": "http"})
    with pytest.raises(ConfigError, match="SLACK_SIGNING_SECRET"):
        build(cfg, engine)
    monkeypatch.setenv("SLACK_SIGNING_SECRET", "s")
    assert build(cfg, engine).adapters["slack"].web_routes()


async def test_wrong_tokens_are_a_config_error(make, fake, monkeypatch):
    monkeypatch.setenv("SLACK_BOT_TOKEN", "xoxb-wrong")
    _engine, adapter = make()
    with pytest.raises(ConfigError, match=r"SLACK_BOT_TOKEN: invalid_auth"):
        await adapter.connect()
    monkeypatch.setenv("SLACK_BOT_TOKEN", "xoxb-test")
    monkeypatch.setenv("SLACK_APP_TOKEN", "xapp-wrong")
    _engine, adapter = make()
    with pytest.raises(ConfigError, match="SLACK_APP_TOKEN"):
        await adapter.connect()
    assert not adapter.connected
    await adapter.disconnect()


async def test_socket_mode_connects_and_closes(make, fake):
    _engine, adapter = make()
    assert isinstance(adapter, Adapter) and adapter.platform == "slack"
    async with running(adapter):
        assert adapter.connected and await fake.wait_connected_async(5)
        assert adapter.web_routes() == []
    assert not adapter.connected
    assert await fake.wait_until_async(lambda: fake.open_connections == 0, 5)


# -- digests ---------------------------------------------------------------------------------
async def test_whole_digest_thread_for_a_real_day(make, fake):
    engine, adapter = make()
    sub = subscribe(engine, PAPERS_CHANNEL)
    digest = today(engine, sub)
    n = len(digest.items)
    assert n >= 20
    await adapter.connect()
    report = await deliver(engine.store, adapter, digest)
    assert report.complete and report.sent == n + 1

    (header,) = fake.top_level(PAPERS_CHANNEL)
    assert header["text"] == f"arXiv digest · Thu 22 Jan 2026 · {n} papers · " + ", ".join(
        sub.categories
    )
    thread = fake.thread(PAPERS_CHANNEL, header["ts"])
    assert len(thread) == n + 1  # abstracts fit: one reply per paper
    assert papers_posted(fake, PAPERS_CHANNEL) == [i.paper.id for i in digest.items]
    for msg, item in zip(thread[1:], digest.items, strict=True):
        head = msg["blocks"][0]["text"]["text"]
        assert head.startswith(f"*<{item.paper.url}|")
        assert msg["thread_ts"] == header["ts"] and msg["text"]
        assert msg["unfurl_links"] is False
        assert [b["type"] for b in msg["blocks"]][-1] == "actions"
    # The ledger points at the messages carrying the buttons.
    rows = ledger(engine, sub)
    assert {r.state for r in rows} == {"sent"}
    assert [r.message_id for r in rows] == [m["ts"] for m in thread]

    again = await deliver(engine.store, adapter, today(engine, sub))
    assert again.sent == 0 and len(fake.all_posts()) == n + 1
    await adapter.disconnect()


async def test_posts_are_paced_per_channel(make, fake):
    engine, adapter = make(**{"slack.post_interval_s": 0.25})
    fake.rate_limit_per_channel(per_second=4.0)
    sub = subscribe(engine, max_papers=4)
    await adapter.connect()
    report = await deliver(engine.store, adapter, today(engine, sub))
    assert report.sent == 5
    posts = [c.at for c in fake.calls_to("/api/chat.postMessage")]
    assert len(posts) == 5 and fake.rate_limited_count == 0
    assert min(b - a for a, b in itertools.pairwise(posts)) >= 0.24
    await adapter.disconnect()


async def test_429_and_5xx_storm_completes_with_every_paper_once(make, fake):
    engine, adapter = make()
    sub = subscribe(engine, max_papers=6)
    digest = today(engine, sub)
    fail = fake.fail_next
    before_post(
        adapter,
        {
            1: lambda: fail(1, "chat.postMessage", status=429, retry_after=1),
            3: lambda: fail(1, "chat.postMessage", status=500),
            5: lambda: (fail(1, "chat.postMessage", status=503), fail(1, "chat.postMessage")),
            6: lambda: fail(2, "chat.postMessage", status=429, retry_after=1),
        },
    )
    await adapter.connect()
    report = await deliver(engine.store, adapter, digest)
    assert report.complete and report.sent == 7
    assert sorted(i["status"] for i in fake.injected) == [429, 429, 429, 429, 500, 503]
    assert papers_posted(fake, GENERAL_CHANNEL) == [i.paper.id for i in digest.items]
    assert len(fake.all_posts()) == 7 and len(fake.top_level(GENERAL_CHANNEL)) == 1
    await adapter.disconnect()


async def test_retries_exhausted_pause_then_resume_without_doubles(make, fake):
    engine, adapter = make(adapter_kw={"rate_limit_retries": 0})
    sub = subscribe(engine, max_papers=5)
    await adapter.connect()
    before_post(adapter, {3: lambda: fake.fail_next(1, "chat.postMessage", status=429)})
    first = await deliver(engine.store, adapter, today(engine, sub))
    assert first.failed and "ratelimited" in first.failed and not first.deactivated
    assert first.sent == 2 and len(fake.all_posts()) == 2
    second = await deliver(engine.store, adapter, today(engine, sub))
    assert second.complete and second.already == 2 and second.sent == 4
    planned = [r.paper_id for r in ledger(engine, sub)][1:]
    assert papers_posted(fake, GENERAL_CHANNEL) == planned
    assert len(fake.top_level(GENERAL_CHANNEL)) == 1
    await adapter.disconnect()


async def test_crash_mid_digest_is_reconciled_through_metadata(make, fake):
    engine, adapter = make()
    sub = subscribe(engine, max_papers=5)
    await adapter.connect()
    # The third post hangs: Slack stores the message, but the process dies before the ledger
    # hears back, leaving the row in 'sending'.
    before_post(adapter, {3: lambda: fake.hang_next("chat.postMessage")})
    task = asyncio.create_task(deliver(engine.store, adapter, today(engine, sub)))
    assert await fake.wait_until_async(lambda: len(fake.calls_to("chat.postMessage")) == 3, 5)
    states = ["sent", "sent", "sending", "pending", "pending", "pending"]
    assert await fake.wait_until_async(lambda: [r.state for r in ledger(engine, sub)] == states)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    fake.release_hangs()
    assert await fake.wait_until_async(lambda: len(fake.all_posts()) == 3, 5)
    await adapter.disconnect()
    rows = {r.paper_id: r.state for r in ledger(engine, sub)}
    ids = list(rows)
    assert list(rows.values()) == states
    # Also a row claimed but never sent (crash before the call), and an ambiguous header.
    assert sub.id is not None
    engine.store.set_delivery_state(sub.id, THE_DAY, ids[4], "sending")
    engine.store.set_delivery_state(sub.id, THE_DAY, "", "sending")

    _engine, restarted = make()  # a new process: fresh adapter, same database
    await restarted.connect()
    report = await deliver(engine.store, restarted, today(engine, sub))
    assert report.complete
    assert report.reconciled == 2  # the header and the hung paper, found by their metadata
    assert report.sent == 3  # the one that never reached Slack and the two never tried
    assert papers_posted(fake, GENERAL_CHANNEL) == ids[1:]
    assert len(fake.top_level(GENERAL_CHANNEL)) == 1
    assert {r.state for r in ledger(engine, sub)} == {"sent"}
    await restarted.disconnect()


async def test_split_item_posts_every_part_in_the_thread(make, fake):
    engine, adapter = make()
    sub = subscribe(engine, max_papers=2)
    digest = today(engine, sub)
    digest.items[0].summary = ("A long & <careful> result. " * 40 + "\n\n") * 30
    await adapter.connect()
    report = await deliver(engine.store, adapter, digest)
    assert report.complete
    (header,) = fake.top_level(GENERAL_CHANNEL)
    thread = fake.thread(GENERAL_CHANNEL, header["ts"])
    parts = [
        m for m in thread if m["metadata"]["event_payload"]["paper"] == digest.items[0].paper.id
    ]
    assert len(parts) >= 3
    assert [m["metadata"]["event_payload"]["part"] for m in parts] == list(range(1, len(parts) + 1))
    row = next(r for r in ledger(engine, sub) if r.paper_id == digest.items[0].paper.id)
    assert row.message_id == parts[0]["ts"]
    assert papers_posted(fake, GENERAL_CHANNEL) == [i.paper.id for i in digest.items]
    await adapter.disconnect()


async def test_hostile_titles_are_posted_inert(make, fake):
    engine, adapter = make()
    sub = subscribe(engine)
    titles = [
        "<!channel> wake up",
        "<https://evil.example|click me> & win",
        "Tom & Jerry <3",
        "<!here> " + "x & <y> " * 700,  # ~5.6 kB
    ]
    papers = [
        Paper(
            id=f"2601.9000{i}",
            version=1,
            title=t,
            authors=(t[:50],),
            categories=("cs.LG",),
            abstract=t,
        )
        for i, t in enumerate(titles)
    ]
    engine.store.upsert_papers(papers)
    items = [ScoredPaper(paper=p, score=1.0, category="cs.LG", summary=p.title) for p in papers]
    await adapter.connect()
    report = await deliver(engine.store, adapter, Digest(sub, THE_DAY, items))
    assert report.complete and report.sent == 5
    for msg in fake.all_posts():
        raw = json.dumps(msg["blocks"]) + msg["text"]
        assert "<!" not in raw and "<https://evil" not in raw
    assert "Tom &amp; Jerry &lt;3" in fake.all_posts()[3]["blocks"][0]["text"]["text"]
    await adapter.disconnect()


async def test_archived_channel_deactivates_the_subscription(make, fake):
    engine, adapter = make()
    fake.add_channel("C0OLD", "old", is_archived=True)
    sub = subscribe(engine, "C0OLD", max_papers=2)
    await adapter.connect()
    report = await deliver(engine.store, adapter, today(engine, sub))
    assert report.deactivated and "is_archived" in (report.failed or "")
    assert not engine.store.get_subscription("slack", "C0OLD").active
    await adapter.disconnect()


# -- commands over Socket Mode -----------------------------------------------------------------
async def test_slash_commands_are_parsed_acked_and_answered_escaped(make, fake):
    """``/arxiv <subcommand> …`` and ``/summarize <id>`` reach the core as commands; answers
    go back through response_url as escaped mrkdwn, changes visible to the channel."""
    engine, adapter = make()
    fake.add_channel("D0ALICE", "D0ALICE", members=["U0HERALDBOT", HUMAN_USER_ID], is_im=True)
    # (command text, expected words in the answer (unescaped), ephemeral?)
    script: list[tuple[str, str, bool]] = [
        ("", "/arxiv subscribe cs.LG cs.CL — follow categories", True),  # bare: help
        ("help", '/arxiv keywords add|remove|list <words or "a phrase">', True),
        ("subscribe cs.LG cs.CL", "Subscribed to cs.LG, cs.CL.", False),
        ('keywords add "speculative decoding" mamba', "Added: speculative decoding, mamba.", False),
        ('keyword add "<!channel> & co" <@U0BOB>', "Added: <!channel> & co, <@U0BOB>.", False),
        ("/settings time 8:30 tz Europe/Berlin", "Digest at 08:30 Europe/Berlin", False),
        ("keywords frob x", "Usage: /arxiv keywords add|remove|list", True),
        ("frobnicate now", "I don't know the command 'frobnicate'", True),
    ]
    async with running(adapter):
        for text, expected, ephemeral in script:
            body = await answer(fake, "/arxiv", text)
            assert escaped(expected) in body["text"], text
            assert "<!" not in body["text"] and "<@" not in body["text"], text
            want = "ephemeral" if ephemeral else "in_channel"
            assert body["response_type"] == want, text
        for text, expected in [
            ("", "Usage: /summarize <arXiv id or URL>"),
            ("2601.00001 2601.00002", "One paper at a time"),
        ]:
            body = await answer(fake, "/summarize", text)
            assert body["response_type"] == "ephemeral", text
            assert escaped(expected) in body["text"], text
        # A direct message is the person's own digest: no membership needed.
        body = await answer(fake, "/arxiv", "subscribe cs.CL", channel_id="D0ALICE")
        assert "Subscribed to cs.CL." in body["text"]
    sub = engine.store.get_subscription("slack", GENERAL_CHANNEL)
    assert sub.keywords[-4:] == ("speculative decoding", "mamba", "<!channel> & co", "<@U0BOB>")
    assert (sub.time, sub.timezone) == ("08:30", "Europe/Berlin")
    assert engine.store.get_subscription("slack", "D0ALICE").categories == ("cs.CL",)
    assert len(fake.acks) == len(script) + 3 and not fake.duplicate_acks
    # Only commands that may change a shared channel ask Slack who is in it (subscribe, the
    # three keyword commands, settings); help, unknown commands and the DM never do.
    members = fake.requests_for("conversations.members")
    assert [m["channel"] for m in members] == [GENERAL_CHANNEL] * 5


async def test_settings_need_a_member_or_an_admin(make, fake):
    engine, adapter = make()
    async with running(adapter):
        body = await answer(fake, "/arxiv", "subscribe cs.LG", user_id=BOB)
        assert "Only this chat's admins can follow categories" in body["text"]
        assert body["response_type"] == "ephemeral"
        assert engine.store.get_subscription("slack", GENERAL_CHANNEL) is None
        body = await answer(fake, "/arxiv", "subscribe cs.LG")  # Alice is a member
        assert "Subscribed to cs.LG." in body["text"]
        body = await answer(fake, "/arxiv", "settings max 3", user_id=BOB)
        assert "Only this chat's admins can change settings" in body["text"]
        body = await answer(fake, "/arxiv", "keywords list", user_id=BOB)  # reading is fine
        assert body["text"].startswith("Keywords (")
    assert engine.store.get_subscription("slack", GENERAL_CHANNEL).max_papers != 3

    engine, adapter = make(**{"slack.admins": [BOB]})
    async with running(adapter):
        body = await answer(fake, "/arxiv", "settings max 3")  # member, but not an admin
        assert "Only this chat's admins can change settings" in body["text"]
        body = await answer(fake, "/arxiv", "settings max 3", user_id=BOB)
        assert body["text"].startswith("Saved.")
    assert engine.store.get_subscription("slack", GENERAL_CHANNEL).max_papers == 3


@pytest.fixture
def slow_llm(fake_openai: FakeOpenAI, monkeypatch: pytest.MonkeyPatch) -> FakeOpenAI:
    monkeypatch.setenv("HERALD_TEST_LLM_KEY", fake_openai.api_key or "sk")
    fake_openai.latency = 2.0
    return fake_openai


async def test_summarize_acks_at_once_and_answers_in_the_channel(make, fake, slow_llm):
    engine, adapter = make(slow_llm)
    ids = [i.paper.id for i in engine.digest(THE_DAY).items[:6]]
    async with running(adapter):
        slow_llm.hang = True  # no summary can be written until the test says so
        eids = [
            await asyncio.to_thread(
                fake.push_slash_command, "/summarize", f"https://arxiv.org/abs/{pid}"
            )
            for pid in ids
        ]
        # Every command is acknowledged while its LLM call cannot finish: ack first, work after.
        acks = [await fake.wait_for_ack_async(e, 10) for e in eids]
        assert slow_llm.requests == 0
        assert acks[0]["payload"]["text"].startswith("⏳ Summarizing https://arxiv.org/abs/")
        slow_llm.hang = False
        assert await fake.wait_until_async(lambda: len(fake.top_level(GENERAL_CHANNEL)) == 6, 30)
    answers = {m["metadata"]["event_payload"]["paper"]: m for m in fake.top_level(GENERAL_CHANNEL)}
    assert set(answers) == set(ids)
    msg = answers[ids[0]]
    assert msg["metadata"]["event_type"] == SUMMARY_EVENT
    texts = json.dumps(msg["blocks"], ensure_ascii=False)
    assert "Summary by gpt-4o-mini" in texts and "Contributions / novelty" in texts
    assert f"/summarize requested by <@{HUMAN_USER_ID}>" in texts
    assert "actions" not in texts  # no subscription here: nothing to rate against
    assert slow_llm.requests == 6


async def test_summarize_in_a_subscribed_channel_has_score_and_tally(make, fake, slow_llm):
    engine, adapter = make(slow_llm)
    slow_llm.latency = 0
    sub = subscribe(engine)
    pid = today(engine, sub).items[0].paper.id
    assert sub.id is not None
    engine.store.record_rating(Rating(sub.id, BOB, pid, 1))
    async with running(adapter):
        _ack, url = await slash(fake, "/summarize", pid)
        assert await fake.wait_until_async(lambda: len(fake.top_level(GENERAL_CHANNEL)) == 1)
    (msg,) = fake.top_level(GENERAL_CHANNEL)
    assert msg["metadata"] == {
        "event_type": SUMMARY_EVENT,
        "event_payload": {"paper": pid, "user": HUMAN_USER_ID},
    }
    assert "Score *" in json.dumps(msg["blocks"], ensure_ascii=False)
    labels = [el["text"]["text"] for el in msg["blocks"][-1]["elements"]]
    assert labels == ["👍 1", "👎"]
    assert fake.responses[fake.response_id(url)] == []  # the channel post is the answer


async def test_summarize_in_a_conversation_the_bot_is_not_in(make, fake, slow_llm):
    engine, adapter = make(slow_llm)
    slow_llm.latency = 0
    fake.add_channel("G0SECRET", "secret", members=[HUMAN_USER_ID], is_private=True)
    pid = engine.digest(THE_DAY).items[0].paper.id
    async with running(adapter):
        body = await answer(fake, "/summarize", pid, channel_id="G0SECRET")
    assert body["response_type"] == "in_channel" and "Summary by" in json.dumps(body["blocks"])


async def test_digest_command_posts_the_thread_and_reports_back(make, fake, slow_llm):
    engine, adapter = make(slow_llm, **{"summaries.top_n": 3})
    async with running(adapter):
        assert "Subscribed" in (await answer(fake, "/arxiv", "subscribe cs.LG cs.CL"))["text"]
        assert "Saved." in (await answer(fake, "/arxiv", "settings max 3"))["text"]
        # Slack refuses the third post (the second paper): the person is told how far it got.
        before_post(
            adapter,
            {3: lambda: fake.fail_next(1, "chat.postMessage", status=200, error="msg_too_long")},
        )
        slow_llm.hang = True  # the digest's summaries wait: the ack must not
        ack, url = await slash(fake, "/arxiv", "digest")
        assert ack["payload"]["text"] == "⏳ Putting today's digest together …"
        assert slow_llm.requests == 0
        slow_llm.hang = False
        (body,) = await fake.wait_for_response_async(url, 15)
        assert body["response_type"] == "ephemeral"
        assert body["text"].startswith(
            "Posted 1 of 3 papers, then the platform refused: Slack refused a message to "
            f"{GENERAL_CHANNEL}: msg_too_long."
        )
        assert len(item_posts(fake, GENERAL_CHANNEL)) == 2
        # Asked again, the rest follows in the same thread.
        body = await answer(fake, "/arxiv", "digest")
        assert body["text"] == "Posted today's digest: 3 papers, one per reply in the thread."
        body = await answer(fake, "/arxiv", "digest")
        assert body["text"] == "Today's digest (3 papers) is already in this chat."
    posts = item_posts(fake, GENERAL_CHANNEL)
    (header,) = [m for m in posts if m["metadata"]["event_payload"]["paper"] == ""]
    thread = fake.thread(GENERAL_CHANNEL, header["ts"])
    assert len(thread) == 4 and len(posts) == 4  # one header, each paper once
    assert all("Summary by gpt-4o-mini" in json.dumps(m["blocks"]) for m in thread[1:])
    sub = engine.store.get_subscription("slack", GENERAL_CHANNEL)
    assert {r.state for r in ledger(engine, sub)} == {"sent"}


async def test_digest_in_a_channel_the_bot_cannot_post_in_says_so(make, fake):
    engine, adapter = make()
    fake.add_channel("G0SECRET", "secret", members=[HUMAN_USER_ID], is_private=True)
    async with running(adapter):
        body = await answer(fake, "/arxiv", "subscribe cs.LG", channel_id="G0SECRET")
        assert "Subscribed to cs.LG." in body["text"]
        _ack, url = await slash(fake, "/arxiv", "digest", channel_id="G0SECRET")
        assert await fake.wait_until_async(
            lambda: not engine.store.get_subscription("slack", "G0SECRET").active
        )
    # The adapter's tasks are finished once it disconnected: whatever it answered is there.
    (body,) = fake.responses[fake.response_id(url)]
    assert body["response_type"] == "ephemeral" and "not_in_channel" in body["text"]
    assert "digest is paused" in body["text"]


# -- ratings ---------------------------------------------------------------------------------
async def test_rating_buttons_are_idempotent_and_show_the_tally(make, fake):
    engine, adapter = make()
    fake.channel_members[GENERAL_CHANNEL].append(BOB)
    sub = subscribe(engine, max_papers=2)
    async with running(adapter):
        await deliver(engine.store, adapter, today(engine, sub))
        _header, first, _second = fake.thread(
            GENERAL_CHANNEL, fake.top_level(GENERAL_CHANNEL)[0]["ts"]
        )
        pid = first["metadata"]["event_payload"]["paper"]

        async def press(action: str, user: str = HUMAN_USER_ID) -> str:
            eid = await asyncio.to_thread(
                fake.push_block_action, action, None, user, GENERAL_CHANNEL, first["ts"]
            )
            await fake.wait_for_ack_async(eid, 5)
            (body,) = await fake.wait_for_response_async(fake.payload_of(eid)["response_url"], 5)
            assert body["response_type"] == "ephemeral"
            return body["text"]

        def labels() -> list[str]:
            msg = fake.message(GENERAL_CHANNEL, first["ts"])
            return [el["text"]["text"] for el in msg["blocks"][-1]["elements"]]

        assert (await press("rate_up")).startswith("Thanks — rated 👍")
        assert labels() == ["👍 1", "👎"]
        updates = len(fake.updates)
        assert await press("rate_up") == "You already rated this 👍."
        assert labels() == ["👍 1", "👎"] and len(fake.updates) == updates
        assert await press("rate_down") == "Changed your rating to 👎."
        assert labels() == ["👍", "👎 1"]
        assert (await press("rate_up", BOB)).startswith("Thanks")
        assert labels() == ["👍 1", "👎 1"]
    rows = {(r.user, r.paper_id): r.value for r in engine.store.ratings(sub.id)}
    assert rows == {(HUMAN_USER_ID, pid): -1, (BOB, pid): 1}
    msg = fake.message(GENERAL_CHANNEL, first["ts"])
    assert msg["metadata"]["event_payload"]["paper"] == pid  # chat.update kept the metadata
    assert msg["blocks"][0] == first["blocks"][0]
    assert {u["via"] for u in fake.updates} == {"chat.update"}


async def test_rating_in_an_unsubscribed_channel_explains(make, fake):
    _engine, adapter = make()
    async with running(adapter):
        eid = await asyncio.to_thread(
            fake.push_block_action, "rate_up", "2601.00001", message_ts="1700000000.000100"
        )
        (body,) = await fake.wait_for_response_async(fake.payload_of(eid)["response_url"], 5)
    assert "not subscribed yet" in body["text"] and not fake.updates


# -- HTTP mode -------------------------------------------------------------------------------
async def test_http_mode_checks_signatures(make, fake, caplog):
    engine, adapter = make(**{"slack.mode": "http"})
    await adapter.connect()
    await adapter.listen()  # nothing to open in HTTP mode
    assert adapter.connected
    app = web.Application()
    app.add_routes(adapter.web_routes())
    form = {"Content-Type": "application/x-www-form-urlencoded"}
    async with TestClient(TestServer(app)) as client:
        url = fake.new_response_url(channel_id=GENERAL_CHANNEL, user_id=HUMAN_USER_ID)
        body = slash_command_body("/arxiv", "help", response_url=url)
        signed = {**form, **sign_request(body, SIGNING_SECRET)}
        assert (await client.post(EVENTS_PATH, data=body, headers=signed)).status == 200
        (answer_body,) = await fake.wait_for_response_async(url, 5)
        assert "/arxiv subscribe" in answer_body["text"]

        forged = {**form, **sign_request(body, "not-the-secret")}
        assert (await client.post(EVENTS_PATH, data=body, headers=forged)).status == 401
        stale = {**form, **sign_request(body, SIGNING_SECRET, timestamp=int(time.time()) - 600)}
        assert (await client.post(EVENTS_PATH, data=body, headers=stale)).status == 401
        assert (await client.post(EVENTS_PATH, data=body, headers=form)).status == 401
        # Malformed requests: a 4xx, never a 500 (nor a traceback in the log).
        bad_ts = {**signed, "X-Slack-Request-Timestamp": "yesterday"}
        assert (await client.post(EVENTS_PATH, data=body, headers=bad_ts)).status == 401
        huge_ts = {**signed, "X-Slack-Request-Timestamp": "9" * 40}
        assert (await client.post(EVENTS_PATH, data=body, headers=huge_ts)).status == 401
        latin1 = "text=caf\xe9".encode("latin-1")
        resp = await client.post(EVENTS_PATH, data=latin1, headers=signed)
        assert resp.status == 400
        assert not [r for r in caplog.records if r.exc_info], "a traceback was logged"

        sub = subscribe(engine, max_papers=1)
        await deliver(engine.store, adapter, today(engine, sub))
        item = fake.all_posts()[-1]
        url = fake.new_response_url(channel_id=GENERAL_CHANNEL, user_id=HUMAN_USER_ID)
        body = block_action_body(
            "rate_up",
            item["metadata"]["event_payload"]["paper"],
            message_ts=item["ts"],
            message={k: v for k, v in item.items() if k not in _INTERNAL},
            response_url=url,
        )
        signed = {**form, **sign_request(body, SIGNING_SECRET)}
        assert (await client.post(EVENTS_PATH, data=body, headers=signed)).status == 200
        (rated,) = await fake.wait_for_response_async(url, 5)
        assert rated["text"].startswith("Thanks — rated 👍")
        labels = [e["text"]["text"] for e in fake.updates[-1]["blocks"][-1]["elements"]]
        assert labels == ["👍 1", "👎"]
    await adapter.disconnect()


# -- library files (issue 13): a shared file reaches the core's import -----------------------------
LIBRARY = Path(__file__).parent / "data" / "library"


async def _import_answer(fake: FakeSlack, channel: str, file_ts: str) -> str:
    """The final text of the bot's answer in the shared file's thread."""

    def done() -> bool:
        replies = [m for m in fake.thread(channel, file_ts) if m["ts"] != file_ts]
        return bool(replies) and not replies[0]["text"].startswith("⏳")

    assert await fake.wait_until_async(done, 20)
    (answer_msg,) = [m for m in fake.thread(channel, file_ts) if m["ts"] != file_ts]
    return str(answer_msg["text"])


def _file_ts(fake: FakeSlack, file_id: str) -> str:
    return str(fake.files[file_id]["shares"]["public"][GENERAL_CHANNEL][0]["ts"])


async def test_a_library_shared_in_the_channel_is_imported_once(make, fake):
    engine, adapter = make()
    sub = subscribe(engine)
    async with running(adapter):
        data = (LIBRARY / "zotero_export.json").read_bytes()
        # Both events Slack sends for one share: one download, one answer.
        file_id = await asyncio.to_thread(
            fake.share_file, GENERAL_CHANNEL, HUMAN_USER_ID, "zotero_export.json", data
        )
        text = await _import_answer(fake, GENERAL_CHANNEL, _file_ts(fake, file_id))
        assert text.startswith("Imported 9 of 15 entries from zotero_export.json (CSL-JSON)")
        assert fake.requests_for("files.info")[0]["file"] == file_id
        assert [d["authorized"] for d in fake.file_downloads] == [True]
        assert sub.id is not None
        rows = engine.store.ratings(sub.id)
        assert len(rows) == 9 and {(r.user, r.source) for r in rows} == {(HUMAN_USER_ID, "import")}
        # The "importing…" message was edited into the answer, not followed by a second one.
        assert fake.requests_for("chat.update")
        assert len(fake.thread(GENERAL_CHANNEL, _file_ts(fake, file_id))) == 2


async def test_other_files_and_unsubscribed_channels_are_left_alone(make, fake):
    engine, adapter = make()
    async with running(adapter):
        # An unsubscribed channel: even a .bib is its members' business.
        await asyncio.to_thread(
            fake.share_file, PAPERS_CHANNEL, HUMAN_USER_ID, "refs.bib", b"@misc{a, title={x}}"
        )
        subscribe(engine, GENERAL_CHANNEL)
        photo = await asyncio.to_thread(
            fake.share_file, GENERAL_CHANNEL, HUMAN_USER_ID, "team.png", b"\x89PNG"
        )
        # A library shared after those is answered; the others never were.
        file_id = await asyncio.to_thread(
            fake.share_file,
            GENERAL_CHANNEL,
            HUMAN_USER_ID,
            "broken.bib",
            b"\x00\x01 not text",
        )
        text = await _import_answer(fake, GENERAL_CHANNEL, _file_ts(fake, file_id))
        assert "'broken.bib' is a binary file" in text
    # disconnect() waited for every event's handling: the others were looked at and let be.
    assert len(fake.requests_for("files.info")) == 3
    assert fake.thread(GENERAL_CHANNEL, _file_ts(fake, photo))[1:] == []
    ours = [m for m in fake.all_posts() if m["channel"] == PAPERS_CHANNEL and m.get("bot_id")]
    assert ours == []
    assert len(fake.file_downloads) == 1


async def test_the_token_goes_only_to_slack_and_a_refused_download_is_answered(make, fake):
    engine, adapter = make()
    subscribe(engine)
    async with running(adapter):
        data = (LIBRARY / "zotero_export.bib").read_bytes()
        file_id = await asyncio.to_thread(
            fake.share_file, GENERAL_CHANNEL, HUMAN_USER_ID, "lib.bib", data, events=()
        )
        good_url = fake.files[file_id]["url_private_download"]
        # files.info pointing somewhere else: the bot token is not sent there.
        fake.files[file_id]["url_private_download"] = "https://files.example.org/lib.bib"
        event = {"type": "file_shared", "channel_id": GENERAL_CHANNEL, "file_id": file_id,
                 "user_id": HUMAN_USER_ID, "file": {"id": file_id}}  # fmt: skip
        await asyncio.to_thread(fake.push_event, event)
        text = await _import_answer(fake, GENERAL_CHANNEL, _file_ts(fake, file_id))
        assert text == "I could not download lib.bib; please send it again in a moment."
        assert fake.file_downloads == []
        # Without a token that may read files Slack answers with its sign-in page (HTTP 200).
        with pytest.raises(DeliveryError, match="files:read"):
            await download(good_url, "xoxb-not-allowed")
        assert await download(good_url, "xoxb-test") == data
        assert not may_carry_token("https://evil.example/slack.com/x", fake.api_url)
        assert may_carry_token("https://files.slack.com/files-pri/T-F/x", "https://slack.com/api/")


# -- questions in a paper's thread (bot.ask) -------------------------------------------------
ASK_WORKING = "⏳ Reading the paper for your question …"


def about_words(engine: Engine, paper_id: str) -> str:
    """A question sharing words with the paper (its title's three longest words)."""
    paper = engine.store.get_paper(paper_id)
    assert paper is not None
    words = sorted(paper.title.replace(":", " ").split(), key=len, reverse=True)[:3]
    return f"What does it say about {' '.join(words)}?"


def bot_replies(fake: FakeSlack, channel: str, thread_ts: str) -> list[dict[str, Any]]:
    """The bot's answers in a thread (blocks as text), oldest first."""
    return [
        m
        for m in fake.thread(channel, thread_ts)
        if m.get("bot_id") and m["ts"] != thread_ts and "❓" in json.dumps(m, ensure_ascii=False)
    ]


async def wait_answers(fake: FakeSlack, channel: str, thread_ts: str, n: int) -> list[str]:
    assert await fake.wait_until_async(
        lambda: len(bot_replies(fake, channel, thread_ts)) >= n, 10
    ), fake.ephemerals
    return [
        json.dumps(m["blocks"], ensure_ascii=False) for m in bot_replies(fake, channel, thread_ts)
    ]


async def test_a_question_in_a_digest_thread_is_answered_in_the_thread(make, fake, slow_llm):
    """Socket Mode ``message`` events: a question in a digest's thread names its paper; a
    follow-up there carries the earlier turn; people talking get no answer; a /summarize
    card's thread is about its paper (Slack metadata)."""
    engine, adapter = make(slow_llm)
    slow_llm.latency = 0
    sub = subscribe(engine, max_papers=2)
    async with running(adapter):
        await deliver(engine.store, adapter, today(engine, sub))
        header = fake.top_level(GENERAL_CHANNEL)[0]
        pid = papers_posted(fake, GENERAL_CHANNEL)[0]
        eid = await asyncio.to_thread(
            fake.push_thread_reply,
            GENERAL_CHANNEL,
            HUMAN_USER_ID,
            f"<@{adapter.bot_user_id}> {pid} {about_words(engine, pid)}",
            header["ts"],
        )
        ack = await fake.wait_for_ack_async(eid, 5)
        assert not ack["late"]
        (first,) = await wait_answers(fake, GENERAL_CHANNEL, header["ts"], 1)
        assert "The paper says" in first and "(p. " in first
        assert re.search(r"Sources:\\n• p\. \d+: “", first), first  # JSON: \\n
        working = [e for e in fake.ephemerals if e["text"] == ASK_WORKING]
        assert working and working[0]["thread_ts"] == header["ts"]
        assert working[0]["user"] == HUMAN_USER_ID

        # People talking in the thread: no answer; a follow-up question: answered, with the
        # earlier turn.
        await asyncio.to_thread(
            fake.push_thread_reply, GENERAL_CHANNEL, HUMAN_USER_ID, "nice one", header["ts"]
        )
        await asyncio.to_thread(
            fake.push_thread_reply,
            GENERAL_CHANNEL,
            BOB,
            "And which datasets do they use?",
            header["ts"],
        )
        answers = await wait_answers(fake, GENERAL_CHANNEL, header["ts"], 2)
        assert "Following up on" in answers[1]
        assert len(answers) == 2

        # A /summarize card: its thread is about its paper.
        await slash(fake, "/summarize", pid)
        assert await fake.wait_until_async(lambda: len(fake.top_level(GENERAL_CHANNEL)) == 2)
        card = fake.top_level(GENERAL_CHANNEL)[-1]
        await asyncio.to_thread(
            fake.push_thread_reply,
            GENERAL_CHANNEL,
            HUMAN_USER_ID,
            about_words(engine, pid),
            card["ts"],
        )
        (on_card,) = await wait_answers(fake, GENERAL_CHANNEL, card["ts"], 1)
        assert "The paper says" in on_card
    assert fake.requests_for("conversations.replies")  # the card's metadata was read


async def test_ask_command_and_a_follow_up_over_signed_http(make, fake, slow_llm):
    """HTTP mode: ``/arxiv ask`` is acked with its working text and answered in the channel;
    a signed ``message`` event in the answer's thread is a follow-up."""
    engine, adapter = make(slow_llm, **{"slack.mode": "http"})
    slow_llm.latency = 0
    pid = engine.digest(THE_DAY).items[0].paper.id
    await adapter.connect()
    app = web.Application()
    app.add_routes(adapter.web_routes())
    async with TestClient(TestServer(app)) as client:
        url = fake.new_response_url(channel_id=GENERAL_CHANNEL, user_id=HUMAN_USER_ID)
        body = slash_command_body(
            "/arxiv", f"ask {pid} <!channel> {about_words(engine, pid)}", response_url=url
        )
        form = {"Content-Type": "application/x-www-form-urlencoded"}
        resp = await client.post(
            EVENTS_PATH, data=body, headers={**form, **sign_request(body, SIGNING_SECRET)}
        )
        assert resp.status == 200 and ASK_WORKING in await resp.text()
        assert await fake.wait_until_async(lambda: len(fake.top_level(GENERAL_CHANNEL)) == 1)
        (posted,) = fake.top_level(GENERAL_CHANNEL)
        assert posted["metadata"] == {
            "event_type": ANSWER_EVENT,
            "event_payload": {"paper": pid, "user": HUMAN_USER_ID},
        }
        blocks = json.dumps(posted["blocks"], ensure_ascii=False)
        assert f"asked by <@{HUMAN_USER_ID}>" in blocks and "Sources:" in blocks
        assert "❓ &lt;!channel&gt; What does" in blocks and "<!channel>" not in blocks

        event = fake.post_as_user(
            GENERAL_CHANNEL, HUMAN_USER_ID, "how does it compare?", thread_ts=posted["ts"]
        )
        body = event_callback_body(event)
        headers = {"Content-Type": "application/json", **sign_request(body, SIGNING_SECRET)}
        assert (await client.post(EVENTS_PATH, data=body, headers=headers)).status == 200
        forged = {"Content-Type": "application/json", **sign_request(body, "nope")}
        assert (await client.post(EVENTS_PATH, data=body, headers=forged)).status == 401
        (follow,) = await wait_answers(fake, GENERAL_CHANNEL, posted["ts"], 1)
        assert "Following up on" in follow
        # The same event delivered again (Slack retries) is not answered twice.
        assert (await client.post(EVENTS_PATH, data=body, headers=headers)).status == 200
        assert len(bot_replies(fake, GENERAL_CHANNEL, posted["ts"])) == 1
    await adapter.disconnect()


def test_the_manifest_asks_for_thread_messages() -> None:
    manifest = yaml.safe_load((ROOT / "slack-manifest.yaml").read_text(encoding="utf-8"))
    events = set(manifest["settings"]["event_subscriptions"]["bot_events"])
    assert {"message.channels", "message.groups"} <= events
    assert {"channels:history", "groups:history"} <= set(manifest["oauth_config"]["scopes"]["bot"])
