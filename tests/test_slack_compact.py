"""The compact layout on Slack: one channel message listing the papers, each with its own
👍/👎, found again by its metadata after a crash; a press relabels only its paper's buttons.

Real slack_sdk / slack-bolt against tests/fakes/slack.py, as in tests/test_slack.py.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import datetime as dt
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import pytest

from adapters.slack.adapter import SlackAdapter
from bot.app import App, build
from bot.config import Config
from bot.engine import Engine
from bot.models import Subscription
from tests.conftest import DAY
from tests.fakes.slack import GENERAL_CHANNEL, HUMAN_USER_ID, FakeSlack, validate_blocks

THE_DAY = dt.date.fromisoformat(DAY)


@pytest.fixture
def fake() -> Iterator[FakeSlack]:
    with FakeSlack() as server:
        yield server


@pytest.fixture
def built(
    make_config: Callable[..., Config], fake: FakeSlack, monkeypatch: pytest.MonkeyPatch
) -> Iterator[tuple[App, SlackAdapter]]:
    monkeypatch.setenv("SLACK_BOT_TOKEN", "xoxb-test")
    monkeypatch.setenv("SLACK_APP_TOKEN", "xapp-test")
    cfg = make_config(
        **{
            "learning.enabled": False,
            "slack.enabled": True,
            "slack.api_base_url": fake.api_url,
            "slack.post_interval_s": 0.0,
            "slack.layout": "compact",
        }
    )
    engine = Engine(cfg)
    assert engine.fetch().status == "ok"
    app = build(cfg, engine)
    adapter = app.adapters["slack"]
    assert isinstance(adapter, SlackAdapter)
    yield app, adapter
    app.core.close()
    engine.store.close()


@contextlib.asynccontextmanager
async def running(adapter: SlackAdapter) -> AsyncIterator[SlackAdapter]:
    await adapter.connect()
    await adapter.listen()
    try:
        yield adapter
    finally:
        await adapter.disconnect()


def subscribe(engine: Engine, **kw: Any) -> Subscription:
    base = engine.config.default_subscription()
    fields = dict(id=None, platform="slack", chat=GENERAL_CHANNEL, name="", feed_token="", **kw)
    return engine.store.upsert_subscription(dataclasses.replace(base, **fields))


async def test_a_compact_digest_is_one_message_with_buttons_per_paper(
    built: tuple[App, SlackAdapter], fake: FakeSlack
) -> None:
    app, adapter = built
    engine = app.engine
    sub = subscribe(engine, max_papers=5)
    assert sub.id is not None
    async with running(adapter):
        digest = engine.digests([sub], THE_DAY)[0]
        report = await app.core.deliverer.deliver_digest(digest, adapter)
        assert report.complete and report.messages == 1
        (msg,) = fake.top_level(GENERAL_CHANNEL)
        assert fake.thread(GENERAL_CHANNEL, msg["ts"])[1:] == []  # no replies
        assert validate_blocks(msg["blocks"]) == []
        assert msg["metadata"]["event_payload"]["paper"] == ""  # the header row's message
        actions = [b for b in msg["blocks"] if b["type"] == "actions"]
        assert [a["elements"][0]["value"] for a in actions] == [i.paper.id for i in digest.items]
        rows = engine.store.deliveries(sub.id, THE_DAY)
        assert {(r.state, r.message_id) for r in rows} == {("sent", msg["ts"])}

        # 👎 on the third paper: its buttons show the tally, the others are untouched
        third = digest.items[2].paper.id
        eid = await asyncio.to_thread(
            fake.push_block_action, "rate_down", third, HUMAN_USER_ID, GENERAL_CHANNEL, msg["ts"]
        )
        await fake.wait_for_response_async(fake.payload_of(eid)["response_url"], 5)
        now = fake.message(GENERAL_CHANNEL, msg["ts"])
        labels = [
            [el["text"]["text"] for el in b["elements"]]
            for b in now["blocks"]
            if b["type"] == "actions"
        ]
        assert labels[2] == ["👍", "👎 1"]
        assert all(lab == ["👍", "👎"] for i, lab in enumerate(labels) if i != 2)
        assert engine.store.tally(sub.id, third) == (0, 1)


async def test_an_unsure_compact_message_is_found_by_its_metadata(
    built: tuple[App, SlackAdapter], fake: FakeSlack
) -> None:
    """Slack took the message, the process stopped before the ledger heard: on restart the
    message is found, not posted again."""
    app, adapter = built
    engine = app.engine
    sub = subscribe(engine, max_papers=5)
    assert sub.id is not None
    async with running(adapter):
        real = adapter.client.chat_postMessage

        async def post_then_die(**kw: Any) -> Any:
            await real(**kw)
            raise asyncio.CancelledError

        adapter.client.chat_postMessage = post_then_die  # type: ignore[method-assign]
        with pytest.raises(asyncio.CancelledError):
            await app.core.deliverer.deliver_digest(engine.digests([sub], THE_DAY)[0], adapter)
        adapter.client.chat_postMessage = real  # type: ignore[method-assign]
        assert {r.state for r in engine.store.deliveries(sub.id, THE_DAY)} == {"sending"}
        report = await app.core.deliverer.deliver_digest(engine.digests([sub], THE_DAY)[0], adapter)
        assert report.complete and report.reconciled == 6 and report.sent == 0
        assert len(fake.top_level(GENERAL_CHANNEL)) == 1
