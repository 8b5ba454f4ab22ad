"""Forum topics: a subscription per topic of a forum supergroup, delivered into its topic and
nowhere else; a closed or deleted topic handled like a blocked chat; crash recovery in a
group whose topics share one sequence of message ids.

Real python-telegram-bot against tests/fakes/telegram.py, as in tests/test_telegram.py.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from adapters.telegram.adapter import TelegramAdapter
from bot.config import Config
from bot.fanout import FanOut
from bot.models import Digest
from tests.fakes.openai_api import FakeOpenAI
from tests.fakes.telegram import FakeTelegram, StoredMessage
from tests.test_telegram import (
    LLM_KEY_ENV,
    Bot,
    question_about,
    running,
    subscribe,
    telegram_config,
    todays_digest,
)

FORUM = -1009990001
ADMIN = 2002
MEMBER = 3003


@pytest.fixture
def fake() -> Iterator[FakeTelegram]:
    with FakeTelegram() as server:
        server.add_chat(
            FORUM, "supergroup", "Paper club", admins=[ADMIN], members=[MEMBER], is_forum=True
        )
        yield server


@pytest.fixture
def tg_config(
    make_config: Callable[..., Config], fake: FakeTelegram, monkeypatch: pytest.MonkeyPatch
) -> Callable[..., Config]:
    """Telegram on, pointed at the fake."""
    return telegram_config(make_config, fake, monkeypatch)


async def say_in_topic(bot: Bot, topic: int | None, user: int, text: str) -> StoredMessage:
    """``user`` writes ``text`` in a topic of FORUM; returns the bot's one answer there."""
    fake = bot.fake
    before = len(fake.messages(FORUM))
    uid = fake.push_message(FORUM, user, text, message_thread_id=topic)
    assert uid is not None
    await fake.wait_for_async(lambda: len(fake.messages(FORUM)) > before)
    (answer,) = fake.messages(FORUM)[before:]
    return answer


def assert_once_per_topic(fake: FakeTelegram) -> None:
    """No text was accepted twice into one topic (two topics may well get the same paper)."""
    seen = Counter((s.message_thread_id, s.text) for s in fake.sends(FORUM))
    assert [k for k, n in seen.items() if n > 1] == []


async def fan_out(bot: Bot, digests: list[Digest], workers: int = 8) -> list[Any]:
    """The digests through the core's fan-out (as the schedule sends them)."""
    fan = FanOut(bot.core.deliverer, workers=workers)
    return await fan.deliver(digests, {"telegram": bot.adapter})


@pytest.mark.parametrize("layout", ["thread", "compact"])
async def test_a_topic_subscription_delivers_into_its_topic_and_nowhere_else(
    tg_config: Callable[..., Config], fake: FakeTelegram, layout: str
) -> None:
    llm = fake.create_forum_topic(FORUM, "LLMs", by=ADMIN)
    vision = fake.create_forum_topic(FORUM, "Vision", by=ADMIN)
    async with running(tg_config(**{"telegram.layout": layout}), fake) as bot:
        # Each topic subscribes on its own; the answers stay in their topics.
        answer = await say_in_topic(bot, llm, ADMIN, "/subscribe cs.CL")
        assert answer.message_thread_id == llm and answer.text.startswith("Subscribed to cs.CL")
        answer = await say_in_topic(bot, vision, ADMIN, "/subscribe cs.LG")
        assert answer.message_thread_id == vision
        answer = await say_in_topic(bot, llm, ADMIN, "/keywords add language")
        assert answer.message_thread_id == llm
        # A member may not change a topic's digest; told so in the topic.
        answer = await say_in_topic(bot, vision, MEMBER, "/settings max 5")
        assert answer.message_thread_id == vision and "Only this chat's admins" in answer.text
        a = bot.store.get_subscription("telegram", f"{FORUM}/{llm}")
        b = bot.store.get_subscription("telegram", f"{FORUM}/{vision}")
        assert a is not None and b is not None and a.categories == ("cs.CL",)
        assert "language" in a.keywords and b.categories == ("cs.LG",)
        assert bot.store.get_subscription("telegram", str(FORUM)) is None  # General: nothing

        digests = [todays_digest(bot.engine, s) for s in (a, b)]
        reports = await fan_out(bot, digests)
        assert all(r.complete for r in reports)
        expected = 1 if layout == "compact" else 4
        for topic, digest in ((llm, digests[0]), (vision, digests[1])):
            shown = fake.topic_messages(FORUM, topic)
            digest_msgs = [m for m in shown if m.reply_markup]
            assert len(digest_msgs) == expected
            datas = " ".join(
                b["callback_data"]
                for m in digest_msgs
                for row in (m.reply_markup or {})["inline_keyboard"]
                for b in row
            )
            for item in digest.items:
                assert f"r:+:{item.paper.id}:" in datas
        # nothing of either digest in the other topic, nor in General
        assert not [m for m in fake.topic_messages(FORUM, None) if m.reply_markup]
        sends = fake.sends(FORUM)
        assert sends and all(s.message_thread_id in (llm, vision) for s in sends)


async def test_a_press_in_a_topic_rates_for_that_topic(
    tg_config: Callable[..., Config], fake: FakeTelegram
) -> None:
    first = fake.create_forum_topic(FORUM, "One", by=ADMIN)
    second = fake.create_forum_topic(FORUM, "Two", by=ADMIN)
    async with running(tg_config(**{"telegram.layout": "compact"}), fake) as bot:
        subs = [subscribe(bot.store, f"{FORUM}/{t}") for t in (first, second)]
        digests = [todays_digest(bot.engine, s) for s in subs]
        assert [i.paper.id for i in digests[0].items] == [i.paper.id for i in digests[1].items]
        await fan_out(bot, digests)
        (one,) = [m for m in fake.topic_messages(FORUM, first) if m.reply_markup]
        (two,) = [m for m in fake.topic_messages(FORUM, second) if m.reply_markup]
        # Same papers, same day, yet each topic's buttons are its own (they name the topic).
        datas = [
            {b["callback_data"] for row in m.reply_markup["inline_keyboard"] for b in row}  # type: ignore[index]
            for m in (one, two)
        ]
        assert not datas[0] & datas[1]
        up = one.reply_markup["inline_keyboard"][0][0]  # type: ignore[index]
        assert up["text"] == "1 👍"
        answer = await bot.press(FORUM, MEMBER, one.message_id, up["callback_data"])
        assert answer["text"].startswith("Thanks")
        paper = digests[0].items[0].paper.id
        assert subs[0].id is not None and subs[1].id is not None
        assert bot.store.tally(subs[0].id, paper) == (1, 0)
        assert bot.store.tally(subs[1].id, paper) == (0, 0)


async def test_a_closed_or_deleted_topic_is_deactivated_like_a_blocked_chat(
    tg_config: Callable[..., Config], fake: FakeTelegram
) -> None:
    closed = fake.create_forum_topic(FORUM, "Closed", by=ADMIN)
    deleted = fake.create_forum_topic(FORUM, "Deleted", by=ADMIN)
    open_ = fake.create_forum_topic(FORUM, "Open", by=ADMIN)
    async with running(tg_config(), fake) as bot:
        subs = [subscribe(bot.store, f"{FORUM}/{t}") for t in (closed, deleted, open_)]
        digests = [todays_digest(bot.engine, s) for s in subs]
        fake.close_forum_topic(FORUM, closed)
        fake.delete_forum_topic(FORUM, deleted)
        reports = await fan_out(bot, digests)
        by_chat = {r.subscription.chat: r for r in reports}
        r_closed, r_deleted = by_chat[f"{FORUM}/{closed}"], by_chat[f"{FORUM}/{deleted}"]
        assert r_closed.deactivated
        assert "its forum topic was closed (Topic_closed)" in (r_closed.failed or "")
        assert r_deleted.deactivated
        assert "topic was deleted (Message thread not found)" in (r_deleted.failed or "")
        assert by_chat[f"{FORUM}/{open_}"].complete
        assert len(fake.topic_messages(FORUM, open_)) == 1  # one compact message
        # Tried once each, never again; the group's other topic is untouched.
        calls = [c.json() for c in fake.calls_to("/sendMessage")]
        assert sum(c.get("message_thread_id") == closed for c in calls) == 1
        assert sum(c.get("message_thread_id") == deleted for c in calls) == 1
        gone = {s.chat for s in bot.store.deactivated_subscriptions()}
        assert gone == {f"{FORUM}/{closed}", f"{FORUM}/{deleted}"}
        still = bot.store.get_subscription("telegram", f"{FORUM}/{open_}")
        assert still is not None and still.active
        # the next run leaves them out
        assert {s.chat for s in bot.store.list_subscriptions(platform="telegram")} == {
            f"{FORUM}/{open_}"
        }


async def crash_after_telegram_took(bot: Bot, monkeypatch: pytest.MonkeyPatch, n: int) -> None:
    """The adapter's ``n``-th send is taken by Telegram, then the process stops mid-call."""
    real_post = bot.adapter._post
    posts = 0

    async def die(*args: Any, **kwargs: Any) -> Any:
        nonlocal posts
        posts += 1
        if posts == n:
            monkeypatch.setattr(bot.adapter, "_post", real_post)
            await real_post(*args, **kwargs)
            raise asyncio.CancelledError
        return await real_post(*args, **kwargs)

    monkeypatch.setattr(bot.adapter, "_post", die)


async def test_an_unsure_paper_in_a_topic_is_found_past_the_other_topics_messages(
    tg_config: Callable[..., Config], fake: FakeTelegram, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Topic A's digest stops after Telegram took its first paper; then topic B gets the
    same papers the same day (identical buttons but for the topic), so B's messages sit
    between A's and the end of the group.  A's unsure paper is found — not B's — nothing
    is posted twice, and B's buttons are left alone."""
    a_topic = fake.create_forum_topic(FORUM, "A", by=ADMIN)
    b_topic = fake.create_forum_topic(FORUM, "B", by=ADMIN)
    async with running(tg_config(**{"telegram.layout": "thread"}), fake) as bot:
        a, b = (subscribe(bot.store, f"{FORUM}/{t}") for t in (a_topic, b_topic))
        assert a.id is not None
        digest_a = todays_digest(bot.engine, a)
        await crash_after_telegram_took(bot, monkeypatch, 2)
        with pytest.raises(asyncio.CancelledError):
            await bot.core.deliverer.deliver_digest(digest_a, bot.adapter)
        assert "sending" in {r.state for r in bot.store.deliveries(a.id, digest_a.day)}

        digest_b = todays_digest(bot.engine, b)
        assert (await bot.core.deliverer.deliver_digest(digest_b, bot.adapter)).complete
        b_buttons = [m.reply_markup for m in fake.topic_messages(FORUM, b_topic)]

        report = await bot.core.deliverer.deliver_digest(todays_digest(bot.engine, a), bot.adapter)
        assert report.complete and report.reconciled == 1
        assert_once_per_topic(fake)
        assert [m.reply_markup for m in fake.topic_messages(FORUM, b_topic)] == b_buttons
        assert len([m for m in fake.topic_messages(FORUM, a_topic) if m.reply_markup]) == 4
        assert {r.state for r in bot.store.deliveries(a.id, digest_a.day)} == {"sent"}


async def test_after_a_crash_the_unsure_topic_is_settled_before_its_group_gets_more(
    tg_config: Callable[..., Config], fake: FakeTelegram, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A compact message has no earlier message of its own to search from: it is looked for
    past the group's newest known message.  So on restart the chats with an unsure message
    are resumed first, before another topic of the group gets its planned digest."""
    a_topic = fake.create_forum_topic(FORUM, "A", by=ADMIN)
    b_topic = fake.create_forum_topic(FORUM, "B", by=ADMIN)
    async with running(tg_config(**{"telegram.layout": "compact"}), fake) as bot:
        subs = [subscribe(bot.store, f"{FORUM}/{t}") for t in (a_topic, b_topic)]
        digests = [todays_digest(bot.engine, s) for s in subs]
        await crash_after_telegram_took(bot, monkeypatch, 1)  # A's message; B only planned
        with pytest.raises(asyncio.CancelledError):
            await fan_out(bot, digests, workers=1)
        unfinished = {u.subscription_id: u for u in bot.store.unfinished_deliveries()}
        assert set(unfinished) == {s.id for s in subs}

        service = bot.app.service
        service.adapters["telegram"] = bot.adapter
        await service.resume()
        assert_once_per_topic(fake)
        for topic in (a_topic, b_topic):
            assert len([m for m in fake.topic_messages(FORUM, topic) if m.reply_markup]) == 1
        assert not bot.store.unfinished_deliveries()


async def test_the_adapter_only_reads_its_own_addresses(
    tg_config: Callable[..., Config], fake: FakeTelegram
) -> None:
    """A chat address the adapter did not make (a hand-edited database) is refused like a
    chat that is gone: reported, the subscription paused; nothing is sent."""
    async with running(tg_config(), fake) as bot:
        assert isinstance(bot.adapter, TelegramAdapter)
        sub = subscribe(bot.store, f"{FORUM}/notatopic")
        report = await bot.core.deliverer.deliver_digest(
            todays_digest(bot.engine, sub), bot.adapter
        )
        assert report.deactivated and "not a Telegram chat" in (report.failed or "")
        assert fake.calls_to("/sendMessage") == []


async def test_a_question_about_a_paper_in_a_topic_is_answered_in_that_topic(
    tg_config: Callable[..., Config],
    fake: FakeTelegram,
    fake_openai: FakeOpenAI,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    topic = fake.create_forum_topic(FORUM, "Reading group", by=ADMIN)
    monkeypatch.setenv(LLM_KEY_ENV, fake_openai.api_key)
    cfg = tg_config(**{"telegram.layout": "thread"}, openai=fake_openai)
    async with running(cfg, fake) as bot:
        sub = subscribe(bot.store, f"{FORUM}/{topic}")
        await fan_out(bot, [todays_digest(bot.engine, sub)])
        _header, first, *_ = fake.topic_messages(FORUM, topic)
        day = bot.engine.latest_day()
        assert sub.id is not None and day is not None
        paper_id = bot.store.deliveries(sub.id, day)[1].paper_id
        before = len(fake.messages(FORUM))
        uid = fake.push_message(
            FORUM,
            MEMBER,
            question_about(bot, paper_id),
            reply_to_message_id=first.message_id,
            message_thread_id=topic,
        )
        assert uid is not None
        (working,) = await fake.wait_for_async(
            lambda: [m for m in fake.messages(FORUM)[before:] if m.from_bot]
        )
        answer = await bot.edited(working)
        assert answer.message_thread_id == topic
        assert "The paper says" in answer.text and "(p. " in answer.text
        assert all(s.message_thread_id == topic for s in fake.sends(FORUM))
