"""The delivery ledger: every paper exactly once, through failures, crashes and restarts."""

from __future__ import annotations

import datetime as dt
from collections import Counter

import pytest

from bot.delivery import deliver
from bot.engine import Engine
from bot.errors import DeliveryError
from bot.models import Digest, Subscription
from tests.conftest import DAY
from tests.fakes.recorder import Crash, RecordingAdapter

D = dt.date.fromisoformat(DAY)


def chat_sub(engine: Engine, chat: str = "c1") -> Subscription:
    base = engine.default_subscription()
    from dataclasses import replace

    return engine.store.upsert_subscription(
        replace(base, id=None, platform="test", chat=chat, name="", feed_token="", max_papers=6)
    )


def digest_for(engine: Engine, sub: Subscription) -> Digest:
    return engine.digests([sub], D)[0]


async def test_sends_header_then_items_once(engine: Engine) -> None:
    sub = chat_sub(engine)
    rec = RecordingAdapter()
    d = digest_for(engine, sub)
    report = await deliver(engine.store, rec, d)
    assert report.complete and report.sent == 7
    assert [p.kind for p in rec.posts] == ["header"] + ["item"] * 6
    assert rec.items() == [i.paper.id for i in d.items]
    assert {p.thread for p in rec.posts[1:]} == {rec.posts[0].message_id}
    rows = engine.store.deliveries(sub.id, D)
    assert {r.state for r in rows} == {"sent"}
    assert all(r.message_id for r in rows)
    # Delivering the same day again sends nothing.
    again = await deliver(engine.store, rec, digest_for(engine, sub))
    assert again.sent == 0 and again.already == 7 and len(rec.posts) == 7


async def test_papers_already_sent_are_never_sent_on_later_days(engine: Engine) -> None:
    from bot.models import Announcement

    sub = chat_sub(engine)
    rec = RecordingAdapter()
    await deliver(engine.store, rec, digest_for(engine, sub))
    sent = rec.items()
    # The same papers are listed again the next day (a late cross-listing, say).
    nxt = D + dt.timedelta(days=1)
    engine.store.record_announcements([Announcement(pid, nxt, "cs.LG", "new") for pid in sent])
    later = engine.digests([sub], nxt)[0]
    assert later.total_candidates >= 0
    assert not {i.paper.id for i in later.items} & set(sent)
    assert engine.store.delivered_paper_ids(sub.id) == set(sent)


async def test_transient_failure_halfway_resumes_without_duplicates(engine: Engine) -> None:
    sub = chat_sub(engine)
    rec = RecordingAdapter(fail_at={4: DeliveryError("HTTP 503 after retries")})
    first = await deliver(engine.store, rec, digest_for(engine, sub))
    assert not first.complete and "503" in (first.failed or "")
    assert len(rec.posts) == 3  # header + 2 items, the third failed
    states = Counter(r.state for r in engine.store.deliveries(sub.id, D))
    assert states == {"sent": 3, "pending": 4}
    second = await deliver(engine.store, rec, digest_for(engine, sub))
    assert second.complete
    assert Counter(rec.items()).most_common(1)[0][1] == 1
    assert len(rec.items()) == 6


async def test_permanent_failure_deactivates_the_chat(engine: Engine) -> None:
    sub = chat_sub(engine)
    rec = RecordingAdapter(
        fail_at={1: DeliveryError("bot was blocked by the user", permanent=True)}
    )
    report = await deliver(engine.store, rec, digest_for(engine, sub))
    assert report.deactivated
    stored = engine.store.subscription_by_id(sub.id)
    assert stored is not None and not stored.active
    assert "blocked" in (stored.deactivated_reason or "")
    assert [s.chat for s in engine.store.deactivated_subscriptions()] == ["c1"]


@pytest.mark.parametrize("point", ["before", "after"])
@pytest.mark.parametrize("n", [1, 2, 5, 7])
async def test_crash_at_any_point_then_restart(engine: Engine, point: str, n: int) -> None:
    """A crash before the platform accepts, or after it accepted but before the ledger write:
    after restart every paper is there exactly once (the platform is searched for ambiguous
    rows, like Slack's message metadata)."""
    sub = chat_sub(engine)
    rec = RecordingAdapter(**{f"crash_{point}": n})
    with pytest.raises(Crash):
        await deliver(engine.store, rec, digest_for(engine, sub))
    rec.crash_before = rec.crash_after = None
    report = await deliver(engine.store, rec, digest_for(engine, sub))
    assert report.complete
    assert [p.kind for p in rec.posts].count("header") == 1
    assert Counter(rec.items()) == Counter({i: 1 for i in rec.items()})
    assert len(rec.items()) == 6
    if point == "after":
        assert report.reconciled == 1


async def test_ambiguous_row_is_resent_when_the_platform_cannot_tell(engine: Engine) -> None:
    sub = chat_sub(engine)
    rec = RecordingAdapter(crash_before=3, can_find=False)
    with pytest.raises(Crash):
        await deliver(engine.store, rec, digest_for(engine, sub))
    rec.crash_before = None
    report = await deliver(engine.store, rec, digest_for(engine, sub))
    assert report.complete and len(rec.items()) == 6 and len(set(rec.items())) == 6


async def test_stop_between_messages_leaves_the_rest_pending(engine: Engine) -> None:
    sub = chat_sub(engine)
    rec = RecordingAdapter()
    calls = {"n": 0}

    def stop() -> bool:
        calls["n"] += 1
        return calls["n"] > 3

    report = await deliver(engine.store, rec, digest_for(engine, sub), should_stop=stop)
    assert not report.complete and len(rec.posts) == 3
    assert {r.state for r in engine.store.deliveries(sub.id, D)} == {"sent", "pending"}
    assert engine.store.unfinished_deliveries()[0].remaining == 4


async def test_resume_keeps_the_planned_order_even_if_ranking_moved(engine: Engine) -> None:
    sub = chat_sub(engine)
    rec = RecordingAdapter(fail_at={3: DeliveryError("later")})
    d = digest_for(engine, sub)
    planned = [i.paper.id for i in d.items]
    await deliver(engine.store, rec, d)
    # The chat adds a keyword: today's ranking changes, but the planned digest finishes as is.
    engine.store.update_subscription(sub.id, keywords=("robot",))
    changed = engine.store.subscription_by_id(sub.id)
    assert changed is not None
    await deliver(engine.store, rec, digest_for(engine, changed))
    assert rec.items() == planned
