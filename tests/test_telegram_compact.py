"""The compact layout on Telegram: a digest as one message with numbered 👍/👎 rows, its
presses, its crash recovery, its split past 4,096 units — and paid broadcasts.

Real python-telegram-bot against tests/fakes/telegram.py, as in tests/test_telegram.py.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from adapters.telegram.render import MAX_MESSAGE_UNITS, utf16_len
from bot.config import Config
from bot.fanout import FanOut
from bot.models import SummaryStatus
from tests.fakes.openai_api import FakeOpenAI
from tests.fakes.telegram import FakeTelegram, StoredMessage
from tests.test_telegram import (
    LLM_KEY_ENV,
    PRIVATE,
    ask_reply,
    running,
    subscribe,
    telegram_config,
    todays_digest,
)


@pytest.fixture
def fake() -> Iterator[FakeTelegram]:
    with FakeTelegram() as server:
        server.add_chat(PRIVATE, "private", username="alice", first_name="Alice")
        yield server


@pytest.fixture
def tg_config(
    make_config: Callable[..., Config], fake: FakeTelegram, monkeypatch: pytest.MonkeyPatch
) -> Callable[..., Config]:
    """Telegram on, pointed at the fake, with its default layout (compact)."""
    return telegram_config(make_config, fake, monkeypatch)


def digest_messages(fake: FakeTelegram, chat: int) -> list[StoredMessage]:
    return [m for m in fake.messages(chat) if m.text.startswith("arXiv digest")]


def labels(msg: StoredMessage) -> list[str]:
    rows = (msg.reply_markup or {}).get("inline_keyboard", [])
    return [b["text"] for row in rows for b in row]


def datas(msg: StoredMessage) -> list[str]:
    rows = (msg.reply_markup or {}).get("inline_keyboard", [])
    return [b["callback_data"] for row in rows for b in row]


async def test_a_digest_is_one_message_with_numbered_buttons(
    tg_config: Callable[..., Config], fake: FakeTelegram
) -> None:
    cfg = tg_config(**{"telegram.layout": "compact", "scoring.max_papers": 5})
    async with running(cfg, fake) as bot:
        answer = await bot.reply(PRIVATE, PRIVATE, "/subscribe cs.LG")
        assert answer.startswith("Subscribed")
        assert "compact layout" in await bot.reply(PRIVATE, PRIVATE, "/settings")
        before = len(fake.sends(PRIVATE))
        bot.push(PRIVATE, PRIVATE, "/digest")
        await fake.wait_for_async(lambda: digest_messages(fake, PRIVATE))
        await bot.idle()
        (msg,) = digest_messages(fake, PRIVATE)
        # "working…", the digest, then "working…" edited into the report: one new message
        assert len(fake.sends(PRIVATE)) - before == 2
        sub = bot.store.get_subscription("telegram", str(PRIVATE))
        assert sub is not None and sub.id is not None
        day = bot.engine.latest_day()
        assert day is not None
        rows = bot.store.deliveries(sub.id, day)
        assert len(rows) == 6 and {(r.state, r.message_id) for r in rows} == {
            ("sent", str(msg.message_id))
        }
        assert msg.text.splitlines()[0].startswith("arXiv digest · ")
        for n in range(1, 6):
            assert f"\n{n}. " in msg.text
        assert labels(msg) == [f"{n} {t}" for n in range(1, 6) for t in ("👍", "👎")] + [
            "⚙️ Settings"
        ]
        assert len(msg.reply_markup["inline_keyboard"][0]) == 4  # type: ignore[index]
        report = [m for m in fake.messages(PRIVATE) if m.text.startswith("Posted today's")]
        assert report and report[-1].text == "Posted today's digest: 5 papers in one message."


async def test_a_numbered_press_rates_its_paper_and_relabels_only_it(
    tg_config: Callable[..., Config], fake: FakeTelegram
) -> None:
    async with running(tg_config(**{"telegram.layout": "compact"}), fake) as bot:
        sub = subscribe(bot.store, PRIVATE)
        assert sub.id is not None
        digest = todays_digest(bot.engine, sub)
        assert (await bot.deliver(digest)).complete
        (msg,) = digest_messages(fake, PRIVATE)
        second_down = datas(msg)[3]
        answer = await bot.press(PRIVATE, PRIVATE, msg.message_id, second_down)
        assert answer["text"].startswith("Thanks — rated 👎")
        paper = digest.items[1].paper.id
        assert bot.store.tally(sub.id, paper) == (0, 1)
        want = ["1 👍", "1 👎", "2 👍", "2 👎 1", "3 👍", "3 👎", "⚙️ Settings"]
        assert await bot.buttons(PRIVATE, msg.message_id, want) == want
        edited = fake.message(PRIVATE, msg.message_id)
        assert edited is not None and datas(edited) == datas(msg)  # data untouched

        # A forged press (a button this message does not have) rates nothing.
        forged = second_down.replace(paper, digest.items[0].paper.id).replace("r:-", "r:+")
        forged = forged.replace(digest.items[0].paper.id, "2601.99999")
        await bot.press(PRIVATE, PRIVATE, msg.message_id, forged)
        assert bot.store.rating_count(sub.id) == 1


@pytest.mark.parametrize("accepted", [False, True], ids=["not-sent", "sent-then-crash"])
async def test_a_compact_message_left_in_flight_is_found_or_sent_once(
    tg_config: Callable[..., Config],
    fake: FakeTelegram,
    monkeypatch: pytest.MonkeyPatch,
    accepted: bool,
) -> None:
    async with running(tg_config(**{"telegram.layout": "compact"}), fake) as bot:
        sub = subscribe(bot.store, PRIVATE)
        assert sub.id is not None
        bot.push(PRIVATE, PRIVATE, "/status")  # an answer the ledger does not know about
        await fake.wait_for_async(lambda: bot.store.last_message_id("telegram", str(PRIVATE)))
        digest = todays_digest(bot.engine, sub)
        real_post = bot.adapter._post

        async def die(*args: Any, **kwargs: Any) -> Any:
            if accepted:
                await real_post(*args, **kwargs)
            raise asyncio.CancelledError

        monkeypatch.setattr(bot.adapter, "_post", die)
        with pytest.raises(asyncio.CancelledError):
            await bot.deliver(digest)
        monkeypatch.setattr(bot.adapter, "_post", real_post)
        assert {r.state for r in bot.store.deliveries(sub.id, digest.day)} == {"sending"}
        fake.push_message(PRIVATE, PRIVATE, "meanwhile, someone types")
        report = await bot.deliver(digest)
        assert report.complete and report.reconciled == (4 if accepted else 0)
        assert len(digest_messages(fake, PRIVATE)) == 1
        assert fake.duplicate_texts(PRIVATE) == {}
        (status,) = [m for m in fake.messages(PRIVATE) if m.text.startswith("Categories:")]
        assert status.reply_markup is None


async def test_a_digest_past_4096_units_splits_into_replies_within_the_limit(
    tg_config: Callable[..., Config], fake: FakeTelegram
) -> None:
    cfg = tg_config(**{"telegram.layout": "compact", "scoring.max_papers": 45})
    async with running(cfg, fake) as bot:
        sub = subscribe(bot.store, PRIVATE, max_papers=45, min_score=0.0)
        digest = todays_digest(bot.engine, sub, n=41)
        for item in digest.items:  # long summaries, shortened to fit
            item.summary, item.summary_status = "😀 A long summary. " * 200, SummaryStatus.OK
        report = await bot.deliver(digest)
        assert report.complete and report.messages >= 2
        parts = [m for m in fake.messages(PRIVATE) if m.reply_markup]
        assert len(parts) == report.messages
        assert all(utf16_len(m.text) <= MAX_MESSAGE_UNITS for m in parts)
        assert all(m.reply_to == parts[0].message_id for m in parts[1:])
        assert all(len(labels(m)) <= 100 for m in parts)
        shown = [d.split(":")[2] for m in parts for d in datas(m) if d.startswith("r:+")]
        assert shown == [i.paper.id for i in digest.items]


async def test_paid_broadcasts_are_flagged_and_paced_at_their_rate(
    tg_config: Callable[..., Config], fake: FakeTelegram
) -> None:
    fake.enforce_rate_limits = True
    fake.global_rate = 5  # anything unpaid past 5 a second would be refused
    for chat in range(7000, 7040):
        fake.add_chat(chat, "private")
    cfg = tg_config(**{"telegram.paid_broadcast": True, "telegram.layout": "compact"})
    async with running(cfg, fake) as bot:
        assert bot.adapter.pace.per_second == 1000
        subs = [subscribe(bot.store, chat) for chat in range(7000, 7040)]
        reports = await FanOut(bot.core.deliverer).deliver(
            [todays_digest(bot.engine, s) for s in subs], {"telegram": bot.adapter}
        )
        assert all(r.complete for r in reports) and fake.rejected_429 == 0
        sends = [s for chat in range(7000, 7040) for s in fake.sends(chat)]
        assert len(sends) == 40 and all(s.paid for s in sends)
    set_rate = tg_config(**{"telegram.paid_broadcast": True, "telegram.global_rate": 300})
    async with running(set_rate, fake) as bot:
        assert bot.adapter.pace.per_second == 300
    async with running(tg_config(), fake) as bot:
        assert bot.adapter.pace.per_second == 28 and bot.adapter.section.layout == "compact"
        assert bot.adapter.section.paid_broadcast is False


async def test_a_reply_to_a_compact_digest_must_name_its_paper(
    tg_config: Callable[..., Config],
    fake: FakeTelegram,
    fake_openai: FakeOpenAI,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """One message lists every paper: a reply to it is about none in particular until it
    names one (an id), and then about exactly that one."""
    monkeypatch.setenv(LLM_KEY_ENV, fake_openai.api_key)
    cfg = tg_config(**{"telegram.layout": "compact"}, openai=fake_openai)
    async with running(cfg, fake) as bot:
        sub = subscribe(bot.store, PRIVATE)
        assert sub.id is not None
        report = await bot.deliver(todays_digest(bot.engine, sub))
        assert report.sent == 4
        (msg,) = digest_messages(fake, PRIVATE)
        day = bot.engine.latest_day()
        assert day is not None
        papers = [r.paper_id for r in bot.store.deliveries(sub.id, day) if r.paper_id]
        assert len(papers) == 3

        which = await ask_reply(bot, PRIVATE, PRIVATE, "what is new here?", msg.message_id)
        assert which.text.startswith("Which paper is your question about?")
        assert fake_openai.requests == 0

        second = papers[1]
        named = await ask_reply(
            bot, PRIVATE, PRIVATE, f"{second} what do they evaluate on?", msg.message_id
        )
        assert named.text.startswith("❓ what do they evaluate on?")
        title = bot.store.get_paper(second)
        assert title is not None and title.title.split()[0] in named.text
        assert fake_openai.requests == 1
