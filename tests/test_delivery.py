"""The delivery ledger: every paper exactly once, through failures, crashes and restarts."""

from __future__ import annotations

import asyncio
import datetime as dt
from collections import Counter
from dataclasses import dataclass, replace

import pytest

from bot.delivery import deliver
from bot.engine import Engine
from bot.errors import DeliveryError
from bot.models import Announcement, Card, Digest, Subscription
from bot.platform import Sent
from tests.conftest import DAY
from tests.fakes.recorder import Crash, RecordingAdapter

D = dt.date.fromisoformat(DAY)


def chat_sub(engine: Engine, chat: str = "c1") -> Subscription:
    base = engine.default_subscription()
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
    assert report.thread == Sent(rec.posts[0].message_id, rec.posts[0].message_id)
    rows = engine.store.deliveries(sub.id, D)
    assert {r.state for r in rows} == {"sent"}
    assert all(r.message_id for r in rows)
    # Delivering the same day again sends nothing.
    again = await deliver(engine.store, rec, digest_for(engine, sub))
    assert again.sent == 0 and again.already == 7 and len(rec.posts) == 7
    assert again.thread == report.thread  # rebuilt from the ledger, for a follow-up note


async def test_a_day_with_nothing_to_send_posts_nothing(engine: Engine) -> None:
    sub = chat_sub(engine)
    rec = RecordingAdapter()
    empty = replace(digest_for(engine, sub), items=[])
    report = await deliver(engine.store, rec, empty)
    assert report.complete and (report.sent, report.already) == (0, 0)
    assert rec.posts == [] and engine.store.deliveries(sub.id, D) == []


async def test_papers_already_sent_are_never_sent_on_later_days(engine: Engine) -> None:
    sub = chat_sub(engine)
    rec = RecordingAdapter()
    await deliver(engine.store, rec, digest_for(engine, sub))
    sent = rec.items()
    # The same papers are listed again the next day (a late cross-listing, say).
    nxt = D + dt.timedelta(days=1)
    engine.store.record_announcements([Announcement(pid, nxt, "cs.LG", "new") for pid in sent])
    later = engine.digests([sub], nxt)[0]
    assert later.items == [] and later.total_candidates == 0
    # They are the day's candidates all the same: only the ledger keeps them out.
    unfiltered = engine.digests([sub], nxt, skip_delivered=False)[0]
    assert {i.paper.id for i in unfiltered.items} == set(sent)
    assert engine.store.delivered_paper_ids(sub.id) == set(sent)


@pytest.mark.parametrize("point", ["before", "after"])
async def test_a_paper_possibly_posted_is_never_planned_again(engine: Engine, point: str) -> None:
    """A crash with a row in ``sending``: the platform may or may not have the message.  If
    that day is never resumed, the paper still counts as delivered on every later day."""
    sub = chat_sub(engine)
    rec = RecordingAdapter(**{f"crash_{point}": 2})  # the first paper, after the header
    planned = [i.paper.id for i in digest_for(engine, sub).items]
    with pytest.raises(Crash):
        await deliver(engine.store, rec, digest_for(engine, sub))
    states = {r.paper_id: r.state for r in engine.store.deliveries(sub.id, D)}
    assert states[planned[0]] == "sending"
    nxt = D + dt.timedelta(days=1)
    engine.store.record_announcements([Announcement(pid, nxt, "cs.LG", "new") for pid in planned])
    later = engine.digests([sub], nxt)[0]
    assert planned[0] not in {i.paper.id for i in later.items}
    assert planned[0] in {
        i.paper.id for i in engine.digests([sub], nxt, skip_delivered=False)[0].items
    }
    assert planned[0] in engine.store.delivered_paper_ids(sub.id)


async def test_transient_failure_halfway_resumes_without_duplicates(engine: Engine) -> None:
    sub = chat_sub(engine)
    rec = RecordingAdapter(fail_at={4: DeliveryError("HTTP 503 after retries")})
    first = await deliver(engine.store, rec, digest_for(engine, sub))
    assert not first.complete and first.failed == "HTTP 503 after retries"
    assert not first.deactivated
    assert len(rec.posts) == 3  # header + 2 items, the third failed
    rows = engine.store.deliveries(sub.id, D)
    assert Counter(r.state for r in rows) == {"sent": 3, "pending": 4}
    assert rows[3].error == "HTTP 503 after retries"
    second = await deliver(engine.store, rec, digest_for(engine, sub))
    assert second.complete
    assert Counter(rec.items()).most_common(1)[0][1] == 1
    assert len(rec.items()) == 6
    rows = engine.store.deliveries(sub.id, D)
    assert [r.attempts for r in rows] == [1, 1, 1, 2, 1, 1, 1]
    assert {r.error for r in rows} == {None}


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
    rows = engine.store.deliveries(sub.id, D)
    assert {r.state for r in rows} == {"sent"}
    by_paper = {p.paper: p.message_id for p in rec.posts}
    assert [r.message_id for r in rows] == [by_paper[r.paper_id] for r in rows]
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
    assert report.failed == "stopped before finishing; resumes on the next start"
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


async def test_a_resumed_header_announces_what_was_planned(engine: Engine) -> None:
    sub = chat_sub(engine)
    rec = RecordingAdapter(crash_before=1)
    planned = [i.paper.id for i in digest_for(engine, sub).items]
    with pytest.raises(Crash):
        await deliver(engine.store, rec, digest_for(engine, sub))
    # Restarted after the chat narrowed its keywords: today's ranking has fewer papers now.
    changed = engine.store.update_subscription(sub.id, keywords=("robot",), max_papers=2)
    rec.crash_before = None
    report = await deliver(engine.store, rec, digest_for(engine, changed))
    assert report.complete
    assert [(p.kind, p.text) for p in rec.posts[:1]] == [("header", "6 papers")]
    assert rec.items() == planned


async def test_planned_papers_missing_from_storage_are_skipped(engine: Engine) -> None:
    sub = chat_sub(engine)
    known = [i.paper.id for i in digest_for(engine, sub).items][:2]
    engine.store.plan_deliveries(sub.id, D, ["2601.99999", *known])
    rec = RecordingAdapter()
    # Resuming with nothing ranked today: the plan is rebuilt from storage.
    report = await deliver(engine.store, rec, replace(digest_for(engine, sub), items=[]))
    assert report.complete and report.sent == 3
    assert rec.items() == known
    rows = {r.paper_id: r for r in engine.store.deliveries(sub.id, D)}
    assert (rows["2601.99999"].state, rows["2601.99999"].error) == (
        "skipped",
        "paper unknown",
    )
    assert engine.store.unfinished_deliveries() == []
    # The paper turns up later: that day is done, it is not posted into the old thread.
    engine.store.upsert_papers([replace(engine.store.get_paper(known[0]), id="2601.99999")])
    again = await deliver(engine.store, rec, digest_for(engine, sub))
    assert again.sent == 0 and again.already == 4 and rec.items() == known


@dataclass
class ThreadlessAdapter(RecordingAdapter):
    """A platform whose header carries no thread id of its own (the thread is the message),
    and whose history lookup can fail."""

    lookup_error: DeliveryError | None = None

    async def send_header(self, digest: Digest) -> Sent:
        return Sent((await super().send_header(digest)).message_id, None)

    async def find_sent(
        self, digest: Digest, card: Card | None, thread: Sent | None
    ) -> Sent | None:
        if self.lookup_error is not None:
            raise self.lookup_error
        found = await super().find_sent(digest, card, thread)
        if found is not None and card is None:  # the header
            return Sent(found.message_id, None)
        return found


async def test_items_join_the_headers_thread_when_the_platform_names_none(engine: Engine) -> None:
    sub = chat_sub(engine)
    rec = ThreadlessAdapter()
    report = await deliver(engine.store, rec, digest_for(engine, sub))
    assert report.complete
    assert {p.thread for p in rec.posts[1:]} == {rec.posts[0].message_id}


async def test_items_after_a_header_found_on_the_platform_join_its_thread(
    engine: Engine,
) -> None:
    sub = chat_sub(engine)
    rec = ThreadlessAdapter(crash_after=1)  # the header went out; its ledger write did not
    with pytest.raises(Crash):
        await deliver(engine.store, rec, digest_for(engine, sub))
    rec.crash_after = None
    report = await deliver(engine.store, rec, digest_for(engine, sub))
    assert report.complete and report.reconciled == 1 and report.sent == 6
    assert {p.thread for p in rec.posts[1:]} == {rec.posts[0].message_id}


async def test_a_header_found_after_a_crash_still_threads_the_items(engine: Engine) -> None:
    sub = chat_sub(engine)
    # The header goes out, then the process dies before the ledger write.
    rec = ThreadlessAdapter(crash_after=1)
    with pytest.raises(Crash):
        await deliver(engine.store, rec, digest_for(engine, sub))
    # Restart: the header is found on the platform; the first item fails for now.
    rec.crash_after = None
    rec.fail_at = {2: DeliveryError("HTTP 503")}
    first = await deliver(engine.store, rec, digest_for(engine, sub))
    assert first.reconciled == 1 and not first.complete
    # And again: the thread comes from the ledger row of the found header.
    second = await deliver(engine.store, rec, digest_for(engine, sub))
    assert second.complete and second.sent == 6
    header = rec.posts[0]
    assert [p.kind for p in rec.posts].count("header") == 1
    assert {p.thread for p in rec.posts[1:]} == {header.message_id}
    assert second.thread == Sent(header.message_id, header.message_id)


async def test_a_failed_platform_lookup_pauses_instead_of_risking_a_duplicate(
    engine: Engine,
) -> None:
    sub = chat_sub(engine)
    rec = ThreadlessAdapter(crash_after=3)  # the second item went out; its ledger write did not
    with pytest.raises(Crash):
        await deliver(engine.store, rec, digest_for(engine, sub))
    rec.crash_after = None
    rec.lookup_error = DeliveryError("HTTP 503")
    paused = await deliver(engine.store, rec, digest_for(engine, sub))
    assert paused.failed == "could not check the platform for an earlier send: HTTP 503"
    assert paused.sent == 0 and len(rec.posts) == 3
    states = [r.state for r in engine.store.deliveries(sub.id, D)]
    assert states == ["sent", "sent", "sending", "pending", "pending", "pending", "pending"]
    rec.lookup_error = None
    done = await deliver(engine.store, rec, digest_for(engine, sub))
    assert done.complete and done.reconciled == 1
    assert len(rec.items()) == 6 and len(set(rec.items())) == 6


async def test_cancelled_mid_send_leaves_the_row_ambiguous(engine: Engine) -> None:
    """A shutdown cancels the task while a message is on its way: whether it went out is
    unknown, so the row stays ``sending`` (found or re-sent at the next start)."""
    sub = chat_sub(engine)
    rec = RecordingAdapter(delay=60)
    task = asyncio.create_task(deliver(engine.store, rec, digest_for(engine, sub)))
    loop = asyncio.get_running_loop()
    end = loop.time() + 10
    while not any(r.state == "sending" for r in engine.store.deliveries(sub.id, D)):
        assert loop.time() < end, "delivery never started"
        await asyncio.sleep(0.01)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    states = [r.state for r in engine.store.deliveries(sub.id, D)]
    assert states == ["sending"] + ["pending"] * 6
    assert rec.posts == []
