"""Scheduling: local times across DST, persistence across restarts, catch-up once, moves."""

from __future__ import annotations

import asyncio
import datetime as dt
import zoneinfo
from collections import Counter
from collections.abc import Callable
from dataclasses import replace

import pytest

from bot.app import App, build
from bot.commands import make_command
from bot.config import Config
from bot.engine import Engine
from bot.models import Subscription
from bot.scheduler import (
    FETCH_JOB,
    Scheduler,
    digest_job_id,
    digest_trigger,
    due_days,
    fetch_trigger,
    stored_next_runs,
)
from bot.service import Service
from storage import Store
from tests.fakes.arxiv import FakeArxiv
from tests.fakes.recorder import RecordingAdapter

BERLIN = zoneinfo.ZoneInfo("Europe/Berlin")


def test_digest_fires_at_local_time_across_dst() -> None:
    trig = digest_trigger("09:00", "Europe/Berlin")
    before = dt.datetime(2026, 3, 27, 12, tzinfo=dt.UTC)  # Fri, CET (UTC+1)
    fires = []
    t = trig.get_next_fire_time(None, before)
    for _ in range(4):
        fires.append(t)
        t = trig.get_next_fire_time(t, t + dt.timedelta(seconds=1))
    assert [f.astimezone(BERLIN).hour for f in fires] == [9, 9, 9, 9]
    assert [f.astimezone(dt.UTC).hour for f in fires] == [8, 7, 7, 7]  # DST starts 29 Mar
    autumn = trig.get_next_fire_time(None, dt.datetime(2026, 10, 23, 12, tzinfo=dt.UTC))
    nxt = trig.get_next_fire_time(autumn, autumn + dt.timedelta(seconds=1))
    assert (autumn.astimezone(dt.UTC).hour, nxt.astimezone(dt.UTC).hour) == (7, 8)


def test_fetch_runs_mon_to_fri_at_five_utc() -> None:
    trig = fetch_trigger("0 5 * * mon-fri")
    t = trig.get_next_fire_time(None, dt.datetime(2026, 1, 23, 6, tzinfo=dt.UTC))  # Fri 06:00
    assert t == dt.datetime(2026, 1, 26, 5, tzinfo=dt.UTC)  # the next Monday


def _sub(store: Store, chat: str, time: str = "09:00", tz: str = "UTC") -> Subscription:
    return store.upsert_subscription(
        Subscription(None, "test", chat, ("cs.LG",), keywords=("llm",), time=time, timezone=tz)
    )


class _IdleTarget:
    """A job target that does nothing (the jobs here never come due)."""

    async def run_fetch(self) -> None:
        raise AssertionError("not due")

    async def run_digests(self, *, time: str | None = None, timezone: str | None = None) -> None:
        raise AssertionError("not due")


async def test_restart_keeps_jobs(tmp_path, make_config: Callable[..., Config]) -> None:
    cfg = make_config()
    store = Store(tmp_path / "s.db")
    subs = [_sub(store, "a"), _sub(store, "b", "07:30", "Europe/Berlin")]
    target = _IdleTarget()
    s1 = Scheduler(store, cfg.schedule, lambda: subs)
    s1.start(target, subs)
    before = {j.id: j.next_run_time for j in s1.aps.get_jobs()}
    assert set(before) == {
        FETCH_JOB,
        digest_job_id("09:00", "UTC"),
        digest_job_id("07:30", "Europe/Berlin"),
    }
    job = s1.aps.get_job(FETCH_JOB)
    assert job.coalesce is True and job.misfire_grace_time == cfg.schedule.misfire_grace_s
    s1.shutdown()
    store.close()
    store2 = Store(tmp_path / "s.db")
    assert {n for n, _ in stored_next_runs(store2)} >= {"arXiv fetch", "digests at 09:00 UTC"}
    s2 = Scheduler(store2, cfg.schedule, lambda: subs)
    s2.start(target, subs)
    after = {j.id: j.next_run_time for j in s2.aps.get_jobs()}
    assert after == before
    s2.shutdown()
    store2.close()


@pytest.fixture
def app(make_config: Callable[..., Config], fake_arxiv: FakeArxiv) -> App:
    cfg = make_config(**{"learning.enabled": False, "web.enabled": False})
    return build(cfg, Engine(cfg), adapters={"test": RecordingAdapter()})


@pytest.fixture
def service(app: App) -> Service:
    return app.service


def _chat(service: Service, chat: str, **kw: object) -> Subscription:
    base = service.engine.default_subscription()
    return service.store.upsert_subscription(
        replace(
            base, id=None, platform="test", chat=chat, name="", feed_token="", max_papers=4, **kw
        )
    )


async def test_no_digest_before_its_fetch_then_each_day_once(service: Service) -> None:
    rec: RecordingAdapter = service.adapters["test"]
    sub = _chat(service, "c1", time="00:00")
    # Nothing fetched yet: nothing is due, nothing is sent.
    assert due_days(service.store, sub) == []
    assert await service.run_digests() == []
    # The fetch finishes; the digest time (00:00) has passed, so it goes out right after.
    await service.run_fetch()
    assert len(rec.items("c1")) == 4 and rec.posts[0].kind == "header"
    # Later ticks (or a coalesced backlog of them) send nothing more for that day.
    for _ in range(3):
        await service.run_digests(time="00:00", timezone=sub.timezone)
    assert len(rec.items("c1")) == 4
    assert due_days(service.store, sub) == []


async def test_future_time_waits_for_its_tick(service: Service) -> None:
    rec: RecordingAdapter = service.adapters["test"]
    now = dt.datetime.now(dt.UTC)
    # A timezone where it is not yet 23:00, so a 23:59 digest is still ahead today.
    tz = next(
        z
        for z in ("UTC", "Pacific/Honolulu", "Asia/Tokyo")
        if now.astimezone(zoneinfo.ZoneInfo(z)).hour < 23
    )
    _chat(service, "late", time="23:59", timezone=tz)
    _chat(service, "now", time="00:00")
    await service.run_fetch()
    assert rec.items("late") == [] and len(rec.items("now")) == 4
    await service.run_digests(time="23:59", timezone=tz)  # the tick
    assert len(rec.items("late")) == 4


async def test_downtime_catch_up_sends_each_missed_day_once(
    service: Service, fake_arxiv: FakeArxiv
) -> None:
    rec: RecordingAdapter = service.adapters["test"]
    _chat(service, "c1", time="00:00")
    service.config.arxiv.request_interval_s = 0.01
    # Down over Thu, Fri: the fetches happened (say, from a cron job) but no digest ran.
    service.engine.fetch()
    fake_arxiv.day = "2026-01-23"
    service.engine.fetch()
    # Start-up: coalesced tick(s) and the catch-up both run; each day goes out exactly once.
    await asyncio.gather(service.run_digests(time="00:00", timezone="UTC"), service.run_digests())
    headers = [p for p in rec.posts if p.kind == "header"]
    assert sorted(p.day for p in headers) == ["2026-01-22", "2026-01-23"]
    assert Counter(rec.items()).most_common(1)[0][1] == 1


async def test_day_without_announcements_sends_nothing_or_a_note(
    service: Service, fake_arxiv: FakeArxiv
) -> None:
    rec: RecordingAdapter = service.adapters["test"]
    _chat(service, "c1", time="00:00")
    fake_arxiv.day = "2026-01-24"  # a Saturday: empty feed
    await service.run_fetch()
    assert rec.posts == []
    service.config.schedule.no_papers_note = True
    await service.run_fetch()
    await service.run_fetch()
    notes = [p for p in rec.posts if p.kind == "note"]
    assert len(notes) == 1 and "No new arXiv papers" in notes[0].text


async def test_setting_change_moves_the_job_at_once(app: App, service: Service) -> None:
    sub = _chat(service, "c1", time="09:00")
    service.scheduler.start(service, service.engine.active_subscriptions(), paused=True)
    try:
        assert service.scheduler.aps.get_job(digest_job_id("09:00", "UTC"))
        reply = app.commands.handle(
            make_command("test", "c1", "u", "/settings time 06:15 tz Europe/Berlin")
        )
        assert not reply.error, reply.text
        assert service.scheduler.aps.get_job(digest_job_id("09:00", "UTC")) is None
        job = service.scheduler.aps.get_job(digest_job_id("06:15", "Europe/Berlin"))
        assert job is not None
        local = job.next_run_time.astimezone(BERLIN)
        assert (local.hour, local.minute) == (6, 15)
        moved = service.store.subscription_by_id(sub.id)
        assert moved is not None and service.scheduler.next_run(moved) == local
        status = app.commands.handle(make_command("test", "c1", "u", "/status"))
        assert "Next digest:" in status.text
    finally:
        service.scheduler.shutdown()


async def test_missed_ticks_run_once_when_the_scheduler_starts(
    service: Service, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[tuple[str, str]] = []

    async def fake_run(time: str | None = None, timezone: str | None = None, **_: object) -> list:
        calls.append((time or "", timezone or ""))
        return []

    _chat(service, "c1", time="09:00")
    service.config.schedule.misfire_grace_s = 4 * 86400  # (beyond it, start-up catch-up sends)
    monkeypatch.setattr(service, "run_digests", fake_run)
    service.scheduler.start(service, service.engine.active_subscriptions(), paused=True)
    try:
        job = service.scheduler.aps.get_job(digest_job_id("09:00", "UTC"))
        # Three daily ticks were missed while the process was down.
        job.modify(next_run_time=dt.datetime.now(dt.UTC) - dt.timedelta(days=3))
        service.scheduler.aps.resume()

        def caught_up() -> bool:
            nxt = service.scheduler.aps.get_job(digest_job_id("09:00", "UTC")).next_run_time
            return bool(calls) and nxt > dt.datetime.now(dt.UTC)

        await _until(caught_up)
        # The scheduler submits every run of one wake-up together, before it moves the job to
        # its next (future) time, and each run appends at once: so this is all there will be.
        assert calls == [("09:00", "UTC")]
    finally:
        service.scheduler.shutdown()


async def test_default_subscription_is_not_scheduled_for_chats(
    make_config: Callable[..., Config],
) -> None:
    cfg = make_config()
    eng = Engine(cfg)
    subs = eng.active_subscriptions()
    assert [s.platform for s in subs] == ["default"]
    sched = Scheduler(eng.store, cfg.schedule, lambda: subs)
    sched.start(_IdleTarget(), subs, paused=True)
    try:
        assert [j.id for j in sched.aps.get_jobs()] == [FETCH_JOB]
    finally:
        sched.shutdown()
        eng.store.close()


async def _until(pred: Callable[[], bool], timeout: float = 10.0) -> None:
    """Wait for the state under test; fail (not hang) if it never comes."""
    loop = asyncio.get_running_loop()
    end = loop.time() + timeout
    while not pred():
        assert loop.time() < end, "timed out waiting for the scheduler"
        await asyncio.sleep(0.02)


async def test_one_chats_bad_subscription_does_not_stop_the_others(
    service: Service, monkeypatch: pytest.MonkeyPatch
) -> None:
    rec: RecordingAdapter = service.adapters["test"]
    good = _chat(service, "good", time="00:00")
    bad = _chat(service, "bad", time="00:00")
    # A row damaged before validation existed: NaN was stored as NULL.
    service.store.db.execute("UPDATE subscriptions SET min_score = NULL WHERE id = ?", [bad.id])
    assert service.store.subscription_by_id(bad.id).min_score == 0.0  # read as the default
    # And a chat whose ranking fails outright for any other reason.
    real = service.engine.digests

    def flaky(subs: list[Subscription], day: dt.date, **kw: object) -> list:
        if any(s.chat == "bad" for s in subs):
            raise RuntimeError("boom")
        return real(subs, day, **kw)

    monkeypatch.setattr(service.engine, "digests", flaky)
    await service.run_fetch()
    assert len(rec.items("good")) == 4 and rec.items("bad") == []
    assert due_days(service.store, good) == []
    assert due_days(service.store, bad)  # still due: the next tick tries again
