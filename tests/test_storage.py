"""Storage verbs: every write idempotent, keyed by its natural key; a newer paper version wins;
several processes on one database file queue, never fail."""

from __future__ import annotations

import datetime as dt
import multiprocessing
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest

from bot.models import Announcement, Paper, Rating, Subscription
from storage import Store

D = dt.date(2026, 1, 22)
PID = "2601.00001"


def paper(version: int, pid: str = PID, **changes: object) -> Paper:
    p = Paper(
        pid, version, f"Title v{version}", ("A. Author",), ("cs.LG",), f"Abstract v{version}."
    )
    return replace(p, **changes)


@pytest.fixture
def store() -> Iterator[Store]:
    s = Store()
    yield s
    s.close()


def chat(store: Store, chat: str = "42", **fields: object) -> Subscription:
    fields.setdefault("categories", ("cs.LG",))
    return store.upsert_subscription(Subscription(None, "telegram", chat, **fields))  # type: ignore[arg-type]


# -- papers ------------------------------------------------------------------------------------
@pytest.mark.parametrize("order", [(2, 1), (1, 2), (1, 3, 2)])
def test_one_batch_with_several_versions_keeps_the_newest(store: Store, order: tuple) -> None:
    assert store.upsert_papers([paper(v) for v in order]) == (1, 0)
    stored = store.get_paper(PID)
    newest = max(order)
    assert stored is not None
    assert (stored.version, stored.title) == (newest, f"Title v{newest}")
    assert store.count_papers() == 1


def test_an_older_version_arriving_later_changes_nothing(store: Store) -> None:
    assert store.upsert_papers([paper(2)]) == (1, 0)
    # v1 again (a late feed, a backfill), alone and beside a paper that is new.
    assert store.upsert_papers([paper(1)]) == (0, 0)
    assert store.upsert_papers([paper(1), paper(1, pid="2601.00002")]) == (1, 0)
    stored = store.get_paper(PID)
    assert stored is not None and (stored.version, stored.title) == (2, "Title v2")
    assert store.count_papers() == 2


def test_a_newer_version_updates_the_same_row(store: Store) -> None:
    store.upsert_papers([paper(1)])
    assert store.upsert_papers([paper(2)]) == (0, 1)
    stored = store.get_paper(PID)
    assert stored == paper(2)
    assert store.count_papers() == 1
    assert store.upsert_papers([paper(2)]) == (0, 0)  # the same version again: nothing to do
    # ... also when it shares a batch with papers that are new.
    assert store.upsert_papers([paper(2), paper(1, pid="2601.00003")]) == (1, 0)
    assert store.count_papers() == 2


def test_the_same_version_twice_in_a_batch_keeps_the_later_copy(store: Store) -> None:
    early, late = paper(1, title="Listed first"), paper(1, title="Listed again, corrected")
    assert store.upsert_papers([early, late]) == (1, 0)
    assert store.get_paper(PID) == late


@pytest.mark.parametrize(
    "change",
    [
        {"title": "Title v1, corrected"},
        {"abstract": "A corrected abstract."},
        {"authors": ("A. Author", "B. Author")},
        {"categories": ("cs.LG", "cs.AI")},
    ],
)
def test_corrected_metadata_at_the_same_version_is_stored(store: Store, change: dict) -> None:
    store.upsert_papers([paper(1)])
    assert store.upsert_papers([paper(1, **change)]) == (0, 1)
    assert store.get_paper(PID) == paper(1, **change)


def test_large_batches_are_idempotent(store: Store) -> None:
    many = [paper(1, pid=f"2601.{n:05d}") for n in range(1201)]
    assert store.upsert_papers(many) == (1201, 0)
    assert store.upsert_papers(many) == (0, 0)
    assert store.upsert_papers([replace(p, version=2) for p in many]) == (0, 1201)
    assert store.count_papers() == 1201
    assert {p.version for p in store.get_papers([p.id for p in many]).values()} == {2}
    assert store.upsert_papers([]) == (0, 0)


# -- announcements -------------------------------------------------------------------------------
def test_announcements_are_recorded_once_per_paper_day_and_category(store: Store) -> None:
    store.upsert_papers([paper(1)])
    lg, ai = Announcement(PID, D, "cs.LG", "new"), Announcement(PID, D, "cs.AI", "cross")
    assert store.record_announcements([lg, ai]) == 2
    assert store.record_announcements([lg]) == 0
    assert store.record_announcements([]) == 0
    # The same listing seen again with another type replaces the type; it is not a new row.
    assert store.record_announcements([replace(lg, announce_type="replace", version=2)]) == 0
    assert store.announcement_count() == 2
    ((p, listings),) = store.announced_on(D)
    assert p.id == PID and sorted(listings) == [("cs.AI", "cross"), ("cs.LG", "replace")]
    assert store.announced_on(D + dt.timedelta(days=1)) == []


# -- subscriptions -------------------------------------------------------------------------------
def test_a_chat_has_one_subscription_whose_settings_are_replaced(store: Store) -> None:
    first = chat(store, keywords=("rl",))
    assert first.id is not None and first.feed_token
    assert store.subscription_created_at(first.id)
    again = chat(store, keywords=("llm",), categories=("cs.CL",))
    assert (again.id, again.feed_token) == (first.id, first.feed_token)
    assert store.get_subscription("telegram", "42") == again
    assert again.keywords == ("llm",) and again.categories == ("cs.CL",)
    other = chat(store, "43")
    assert other.id != first.id and other.feed_token not in ("", first.feed_token)
    assert [s.chat for s in store.list_subscriptions()] == ["42", "43"]
    feed = store.subscription_by_feed_token(first.feed_token)
    assert feed is not None and feed.chat == "42"
    # A token given explicitly (a feed link being rotated) is the one kept.
    rotated = store.upsert_subscription(replace(again, id=None, feed_token="tok-2"))
    assert rotated.id == first.id
    stored = store.get_subscription("telegram", "42")
    assert stored is not None and stored.feed_token == "tok-2"


# -- ratings -------------------------------------------------------------------------------------
def test_pressing_a_rating_again_changes_nothing_and_the_other_flips_it(store: Store) -> None:
    store.upsert_papers([paper(1)])
    sid = chat(store).id
    assert sid is not None
    assert store.record_rating(Rating(sid, "u1", PID, 1)) == (None, 1)
    assert store.record_rating(Rating(sid, "u1", PID, 1)) == (1, 1)
    assert store.tally(sid, PID) == (1, 0)
    assert store.record_rating(Rating(sid, "u1", PID, -1)) == (1, -1)
    assert store.tally(sid, PID) == (0, 1)
    assert store.record_rating(Rating(sid, "u2", PID, 1)) == (None, 1)
    assert store.tally(sid, PID) == (1, 1)
    assert store.rating_count(sid) == 2
    assert store.user_vote(sid, "u1", PID) == -1


# -- the delivery plan ---------------------------------------------------------------------------
def test_a_days_plan_is_written_once(store: Store) -> None:
    sid, other = chat(store).id, chat(store, "43").id
    assert sid is not None and other is not None
    store.plan_deliveries(sid, D, ["a", "b"])
    rows = store.deliveries(sid, D)
    assert [(r.paper_id, r.position, r.state, r.attempts) for r in rows] == [
        ("", 0, "pending", 0),
        ("a", 1, "pending", 0),
        ("b", 2, "pending", 0),
    ]
    # Re-ranked later that day (new ratings): the plan that exists is what gets sent.
    store.plan_deliveries(sid, D, ["c", "a"])
    assert [r.paper_id for r in store.deliveries(sid, D)] == ["", "a", "b"]
    # Another day, and another chat, have plans of their own.
    store.plan_deliveries(sid, D + dt.timedelta(days=1), ["c"])
    store.plan_deliveries(other, D, ["b"])
    assert [r.paper_id for r in store.deliveries(sid, D + dt.timedelta(days=1))] == ["", "c"]
    assert [r.paper_id for r in store.deliveries(other, D)] == ["", "b"]
    assert store.pending_delivery_count() == 3 + 2 + 2


def _open_and_write(path: str, n: int, barrier: multiprocessing.synchronize.Barrier) -> None:
    barrier.wait()  # every process opens the fresh file at the same moment
    store = Store(path)
    try:
        for i in range(20):
            # read-then-write transactions, the kind that used to fail with "database is locked"
            store.upsert_papers([Paper(f"2601.{n:02d}{i:03d}", 1, "T", ("A",), ("cs.LG",), "x")])
            store.set_meta(f"writer {n}", str(i))
    finally:
        store.close()


def test_processes_opening_and_writing_one_fresh_file_all_succeed(tmp_path: Path) -> None:
    path = str(tmp_path / "herald.db")
    ctx = multiprocessing.get_context("spawn")
    barrier = ctx.Barrier(4)
    procs = [ctx.Process(target=_open_and_write, args=(path, n, barrier)) for n in range(4)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
    assert [p.exitcode for p in procs] == [0, 0, 0, 0]
    store = Store(path)
    try:
        assert store.count_papers() == 80
        assert {store.get_meta(f"writer {n}") for n in range(4)} == {"19"}
    finally:
        store.close()
