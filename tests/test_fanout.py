"""Many digests at once, and the compact layout's ledger: fair order, the platform's pace from
the core, a bounded pool of workers, and every paper exactly once through failures and
crashes — platform-neutral, with the recording adapter as the chat platform."""

from __future__ import annotations

import asyncio
import datetime as dt
import itertools
from collections import Counter
from dataclasses import dataclass, replace
from typing import Any

import pytest

from bot.delivery import Deliverer, report_text
from bot.engine import Engine
from bot.errors import DeliveryError
from bot.fanout import FanOut, RateGate
from bot.models import Digest, Subscription
from bot.platform import Pace, Sent
from tests.conftest import DAY
from tests.fakes.recorder import Crash, Post, RecordingAdapter

D = dt.date.fromisoformat(DAY)


def subscribe(engine: Engine, chat: str, **fields: Any) -> Subscription:
    base = engine.default_subscription()
    return engine.store.upsert_subscription(
        replace(
            base,
            id=None,
            platform="test",
            chat=chat,
            name="",
            feed_token="",
            **{"max_papers": 6, **fields},
        )
    )


def digests(engine: Engine, subs: list[Subscription]) -> list[Digest]:
    out = engine.digests(subs, D)
    assert all(len(d.items) == subs[0].max_papers for d in out), "the day fills every digest"
    return out


@dataclass
class Timed(RecordingAdapter):
    """Records when each send started and ended (loop time), and how many tasks were alive."""

    spans: list[tuple[str, float, float]] | None = None
    tasks: list[int] | None = None

    async def _send(self, post: Post) -> Sent:
        loop = asyncio.get_running_loop()
        start = loop.time()
        self.tasks = (self.tasks or []) + [len(asyncio.all_tasks())]
        sent = await super()._send(post)
        self.spans = (self.spans or []) + [(post.chat, start, loop.time())]
        return sent


# -- fairness, bounded workers, pace -------------------------------------------------------------
async def test_every_chat_gets_its_first_message_before_any_gets_its_third(
    engine: Engine,
) -> None:
    subs = [subscribe(engine, f"c{i:02d}") for i in range(30)]
    rec = Timed(delay=0.001)
    fan = FanOut(Deliverer(engine.store), workers=4)
    reports = await fan.deliver(digests(engine, subs), {"test": rec})
    assert [r.subscription.chat for r in reports] == [s.chat for s in subs]  # in order
    assert all(r.complete and r.sent == 7 for r in reports)
    # The n-th message of each chat, by the position it went out at.
    nth: dict[int, list[int]] = {}
    seen: Counter[str] = Counter()
    for at, post in enumerate(rec.posts):
        seen[post.chat] += 1
        nth.setdefault(seen[post.chat], []).append(at)
    assert max(nth[1]) < min(nth[3])  # every first before any third (4 workers in flight)
    assert max(nth[1]) < min(nth[5])
    assert max(nth[2]) < min(nth[4])
    # the workers are the only tasks: none per chat
    assert max(rec.tasks or [0]) <= 4 + 2


async def test_the_core_paces_a_fan_out_at_the_platforms_rate(engine: Engine) -> None:
    subs = [subscribe(engine, f"p{i}", max_papers=2) for i in range(8)]
    rec = Timed()
    rec.pace = Pace(per_second=100)  # type: ignore[attr-defined]
    begin = asyncio.get_running_loop().time()
    reports = await FanOut(Deliverer(engine.store), workers=16).deliver(
        digests(engine, subs), {"test": rec}
    )
    assert all(r.complete for r in reports)
    starts = sorted(start for _, start, _ in rec.spans or [])
    assert len(starts) == 24
    # 100 a second: the k-th message never goes out before k/100 s (however the loop
    # happens to wake the senders, none gets ahead of its turn)
    for k, start in enumerate(starts):
        assert start - begin >= k * 0.01 - 1e-6


async def test_topics_of_one_chat_share_its_pace_one_message_at_a_time(engine: Engine) -> None:
    """Two subscriptions in one chat (a forum's topics): never two sends to it at once, and
    the chat's interval between any two of them."""
    subs = [subscribe(engine, f"g/{t}", max_papers=2) for t in (1, 2)]
    rec = Timed(delay=0.01)
    rec.pace = Pace(chat_interval=0.05, chat_of=lambda chat: chat.split("/")[0])  # type: ignore[attr-defined]
    reports = await FanOut(Deliverer(engine.store), workers=8).deliver(
        digests(engine, subs), {"test": rec}
    )
    assert all(r.complete and r.sent == 3 for r in reports)
    spans = sorted((start, end) for _, start, end in rec.spans or [])
    assert len(spans) == 6
    for (_, end), (start, _) in itertools.pairwise(spans):
        assert start - end >= 0.05 - 0.005


async def test_a_stop_leaves_the_rest_planned_for_the_next_start(engine: Engine) -> None:
    subs = [subscribe(engine, f"s{i}") for i in range(10)]
    deliverer = Deliverer(engine.store)
    rec = RecordingAdapter()

    async def stop_after_five(post: Post) -> Sent:
        if rec.sends == 5:
            deliverer.stop()
        return await RecordingAdapter._send(rec, post)

    rec._send = stop_after_five  # type: ignore[method-assign]
    reports = await FanOut(deliverer, workers=2).deliver(digests(engine, subs), {"test": rec})
    assert len(rec.posts) <= 5 + 2  # the messages in flight finish
    assert not all(r.complete for r in reports)
    planned = {u.subscription_id for u in engine.store.unfinished_deliveries()}
    assert planned == {s.id for s in subs} - {r.subscription.id for r in reports if r.complete}


async def test_a_chat_without_an_adapter_is_reported_not_planned(engine: Engine) -> None:
    sub = subscribe(engine, "elsewhere")
    other = replace(sub, platform="nowhere")
    (report,) = await FanOut(Deliverer(engine.store)).deliver(
        [Digest(other, D, digests(engine, [sub])[0].items)], {"test": RecordingAdapter()}
    )
    assert report.failed == "no nowhere adapter"
    assert engine.store.deliveries(sub.id, D) == []  # type: ignore[arg-type]


# -- the compact layout's ledger -----------------------------------------------------------------
async def test_compact_is_one_message_and_every_row_records_it(engine: Engine) -> None:
    sub = subscribe(engine, "cc", layout="compact")
    rec = RecordingAdapter()
    (digest,) = digests(engine, [sub])
    report = await Deliverer(engine.store).deliver_digest(digest, rec)
    assert report.complete and report.sent == 7 and report.messages == 1
    (post,) = rec.posts
    assert post.kind == "compact" and post.papers == tuple(i.paper.id for i in digest.items)
    rows = engine.store.deliveries(sub.id, D)  # type: ignore[arg-type]
    assert {(r.state, r.message_id, r.layout) for r in rows} == {("sent", "m1", "compact")}
    assert report_text(report, digest) == "Posted today's digest: 6 papers in one message."
    assert D in engine.store.done_days(sub.id)  # type: ignore[arg-type]


async def test_compact_split_past_the_limit_replies_in_the_first_ones_thread(
    engine: Engine,
) -> None:
    sub = subscribe(engine, "split", layout="compact")
    rec = RecordingAdapter(compact_max=2)
    (digest,) = digests(engine, [sub])
    report = await Deliverer(engine.store).deliver_digest(digest, rec)
    assert report.complete and report.messages == 3
    assert [p.papers for p in rec.posts] == [
        tuple(i.paper.id for i in digest.items[k : k + 2]) for k in (0, 2, 4)
    ]
    assert [p.text for p in rec.posts][1:] == ["continued", "continued"]
    assert [p.thread for p in rec.posts] == [None, "m1", "m1"]
    rows = engine.store.deliveries(sub.id, D)  # type: ignore[arg-type]
    assert [r.message_id for r in rows] == ["m1", "m1", "m1", "m2", "m2", "m3", "m3"]
    assert "in 3 messages" in report_text(report, digest)


@pytest.mark.parametrize("point", ["before", "after"])
@pytest.mark.parametrize("n", [1, 2, 3])
async def test_compact_crash_at_any_part_then_restart(engine: Engine, point: str, n: int) -> None:
    """A crash before the platform takes part n, or after it took it but before the ledger
    heard: after the restart every paper is there exactly once, the header once."""
    sub = subscribe(engine, "crash", layout="compact")
    rec = RecordingAdapter(compact_max=2, **{f"crash_{point}": n})
    with pytest.raises(Crash):
        await Deliverer(engine.store).deliver_digest(digests(engine, [sub])[0], rec)
    unsure = [r for r in engine.store.deliveries(sub.id, D) if r.state == "sending"]  # type: ignore[arg-type]
    assert len(unsure) == (3 if n == 1 else 2)  # the whole message that was in flight
    rec.crash_before = rec.crash_after = None
    # the chat changed its layout meanwhile: the plan's layout is what gets looked for
    engine.store.update_subscription(sub.id, layout="thread")  # type: ignore[arg-type]
    changed = engine.store.subscription_by_id(sub.id)  # type: ignore[arg-type]
    assert changed is not None
    report = await Deliverer(engine.store).deliver_digest(digests(engine, [changed])[0], rec)
    assert report.complete
    papers = rec.compact_papers()
    assert sorted(papers) == sorted(set(papers)) and len(papers) == 6
    assert [p.text for p in rec.posts].count("continued") == 2
    assert report.reconciled == (len(unsure) if point == "after" else 0)
    assert {r.state for r in engine.store.deliveries(sub.id, D)} == {"sent"}  # type: ignore[arg-type]


async def test_compact_refusals_go_back_to_pending_or_pause_the_chat(engine: Engine) -> None:
    sub = subscribe(engine, "refuse", layout="compact")
    rec = RecordingAdapter(compact_max=2, fail_at={2: DeliveryError("HTTP 503 after retries")})
    deliverer = Deliverer(engine.store)
    first = await deliverer.deliver_digest(digests(engine, [sub])[0], rec)
    assert not first.complete and first.sent == 3
    states = Counter(r.state for r in engine.store.deliveries(sub.id, D))  # type: ignore[arg-type]
    assert states == {"sent": 3, "pending": 4}
    second = await deliverer.deliver_digest(digests(engine, [sub])[0], rec)
    assert second.complete and sorted(rec.compact_papers()) == sorted(set(rec.compact_papers()))

    gone = subscribe(engine, "gone", layout="compact")
    rec = RecordingAdapter(fail_at={1: DeliveryError("chat not found", permanent=True)})
    report = await deliverer.deliver_digest(digests(engine, [gone])[0], rec)
    assert report.deactivated
    after = engine.store.subscription_by_id(gone.id)  # type: ignore[arg-type]
    assert after is not None and not after.active


async def test_a_fan_out_mixes_layouts_and_is_planned_in_one_write(engine: Engine) -> None:
    subs = [subscribe(engine, f"m{i}", layout="compact" if i % 2 else "thread") for i in range(6)]
    rec = RecordingAdapter()
    reports = await FanOut(Deliverer(engine.store)).deliver(digests(engine, subs), {"test": rec})
    assert [r.messages for r in reports] == [7, 1, 7, 1, 7, 1]
    for sub in subs:
        rows = engine.store.deliveries(sub.id, D)  # type: ignore[arg-type]
        assert {r.layout for r in rows} == {sub.layout} and {r.state for r in rows} == {"sent"}


async def test_a_flood_limit_holds_the_chat_and_the_pace_then_its_turn_comes_again(
    engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The platform said "retry after" past its client's own retries: that chat waits what
    it was told, nothing else goes out before the wait is over (Telegram's limit is the
    bot's), and the chat's digest still finishes in the same fan-out, each paper once."""
    subs = [subscribe(engine, f"f{i}", max_papers=2) for i in range(3)]
    refused: list[tuple[str, float]] = []
    held: list[float] = []
    real_hold = RateGate.hold

    def hold(gate: RateGate, seconds: float) -> None:
        held.append(seconds)
        real_hold(gate, seconds)

    monkeypatch.setattr(RateGate, "hold", hold)

    @dataclass
    class Flooded(Timed):
        async def _send(self, post: Post) -> Sent:
            try:
                return await super()._send(post)
            except DeliveryError:
                refused.append((post.chat, asyncio.get_running_loop().time()))
                raise

    flood = DeliveryError("flood limit still hit after retries", retry_after=0.2)
    rec = Flooded(fail_at={2: flood})
    rec.pace = Pace(per_second=1000)  # type: ignore[attr-defined]
    reports = await FanOut(Deliverer(engine.store), workers=4).deliver(
        digests(engine, subs), {"test": rec}
    )
    assert all(r.complete and r.failed is None for r in reports)
    assert all(r.sent == 3 for r in reports)
    assert Counter(p.chat for p in rec.posts) == {s.chat: 3 for s in subs}
    ((chat, at),) = refused
    spans = rec.spans or []
    assert min(start for c, start, _ in spans if c == chat and start > at) >= at + 0.2 - 1e-3
    assert held == [0.2]  # and the platform's pace held back as long


async def test_a_held_rate_gate_grants_no_slot_before_the_hold_ends() -> None:
    gate = RateGate(per_second=1000)
    loop = asyncio.get_running_loop()
    await gate.wait()
    gate.hold(0.2)
    begin = loop.time()
    await gate.wait()
    assert loop.time() - begin >= 0.2 - 1e-3
    gate.hold(5.0)
    gate.hold(0.1)  # a shorter hold never brings the next slot forward
    waiting = asyncio.create_task(gate.wait())
    await asyncio.sleep(0.3)
    assert not waiting.done()
    waiting.cancel()
