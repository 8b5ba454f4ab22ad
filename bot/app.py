"""``herald serve``: one asyncio process — scheduler, chat adapters, web app — wired by config.

This module is the app factory: the one place in ``bot/`` that picks adapters (imported lazily,
only when enabled).  Everything platform-specific stays in ``adapters/``.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
import signal
import threading
from collections import defaultdict
from collections.abc import Sequence
from typing import Any

from bot.commands import Commands
from bot.config import Config
from bot.delivery import DeliveryReport, Sender, deliver
from bot.engine import Engine
from bot.models import Digest, Subscription
from bot.scheduler import Scheduler, due_days, set_service

log = logging.getLogger(__name__)

MAX_PARALLEL_DELIVERIES = 64
SHUTDOWN_GRACE_S = 20.0


class Service:
    """Everything ``herald serve`` runs, with a clean start and a clean stop."""

    def __init__(
        self,
        config: Config,
        engine: Engine | None = None,
        *,
        adapters: dict[str, Any] | None = None,
    ) -> None:
        self.config = config
        self.engine = engine or Engine(config)
        self.store = self.engine.store
        self.scheduler = Scheduler(self.store, config.schedule)
        self.commands = Commands(
            self.engine, on_change=self.subscription_changed, next_run=self.scheduler.next_run
        )
        self.adapters: dict[str, Any] = dict(adapters or {})
        self._injected = adapters is not None
        self.web: Any = None
        self.stopping = asyncio.Event()
        self._sub_locks: dict[int, asyncio.Lock] = defaultdict(asyncio.Lock)
        self._tasks: set[asyncio.Task[Any]] = set()
        self._fetch_lock = asyncio.Lock()
        self._stopped = asyncio.Event()

    # -- wiring ------------------------------------------------------------------------------
    def build_adapters(self) -> None:
        cfg = self.config
        if not self._injected and cfg.slack.enabled:
            from adapters.slack import SlackAdapter

            self.adapters["slack"] = SlackAdapter(cfg, self.engine, self.commands)
        if not self._injected and cfg.telegram.enabled:
            from adapters.telegram import TelegramAdapter

            self.adapters["telegram"] = TelegramAdapter(cfg, self.engine, self.commands)
        for adapter in self.adapters.values():
            # /digest from a chat goes through the same ledger as scheduled digests.
            if hasattr(adapter, "service"):
                adapter.service = self

    def subscription_changed(self, sub: Subscription) -> None:
        """A chat changed its settings: move its digest job at once."""
        if self.scheduler.running:
            self.scheduler.sync(self.engine.active_subscriptions())

    # -- lifecycle ---------------------------------------------------------------------------
    async def start(self) -> None:
        from bot.web import WebApp

        set_service(self)
        self.engine.default_subscription()
        self.build_adapters()
        for name, adapter in self.adapters.items():
            await adapter.connect()
            log.info("%s: connected", name)
        self.web = WebApp(self)
        if self.config.web.enabled:
            await self.web.start()
        self.scheduler.start(self.engine.active_subscriptions())
        for adapter in self.adapters.values():
            await adapter.listen()
        # After downtime: finish half-sent digests, then whatever became due while we were away.
        self.spawn(self.resume())

    async def run_once(self) -> list[DeliveryReport]:
        """``herald run`` with chats configured: deliver every due digest now, then leave."""
        set_service(self)
        self.engine.default_subscription()
        self.build_adapters()
        try:
            for adapter in self.adapters.values():
                await adapter.connect()
            return await self.run_digests()
        finally:
            for adapter in self.adapters.values():
                with contextlib.suppress(Exception):
                    await adapter.disconnect()
            set_service(None)

    def spawn(self, coro: Any) -> asyncio.Task[Any]:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    async def run_forever(self, stop_requested: threading.Event | None = None) -> None:
        """Run until SIGTERM/SIGINT; ``stop_requested`` carries a signal that arrived before
        the event loop could take them over (during imports and start-up)."""
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.add_signal_handler(sig, self.request_stop)
        if stop_requested is not None and stop_requested.is_set():
            self.request_stop()
        await self.start()
        log.info("herald serve is running (web: %s)", self.web.url if self.web else "off")
        await self.stopping.wait()
        await self.stop()

    def request_stop(self) -> None:
        if not self.stopping.is_set():
            log.info("stopping: finishing the messages in flight")
            self.stopping.set()

    async def stop(self) -> None:
        self.stopping.set()
        self.scheduler.shutdown()
        # Deliveries check `stopping` between messages; the one in flight completes and is
        # recorded, so no ledger row is left half-written.
        if self._tasks:
            _, pending = await asyncio.wait(list(self._tasks), timeout=SHUTDOWN_GRACE_S)
            for task in pending:
                task.cancel()
        for adapter in self.adapters.values():
            with contextlib.suppress(Exception):
                await adapter.disconnect()
        if self.web is not None:
            await self.web.stop()
        set_service(None)
        self.store.close()
        self._stopped.set()

    # -- work --------------------------------------------------------------------------------
    async def run_fetch(self) -> None:
        async with self._fetch_lock:
            report = await asyncio.to_thread(self.engine.fetch)
        log.info("fetch: %s", report.summary())
        if report.status == "ok":
            await asyncio.to_thread(self.write_embedded_outputs)
            # Digests whose time already passed today were waiting for this fetch.
            await self.run_digests(only_past_time=True)
        elif report.status == "empty" and self.config.schedule.no_papers_note:
            await self.send_no_papers_notes(report.day)

    def write_embedded_outputs(self) -> None:
        """Keep the Markdown and feed files of the default subscription fresh, as `herald run`
        writes them (the web app's feeds and page show the same digests, live)."""
        from adapters.embedded import write_outputs

        try:
            digest = self.engine.digest()
            # Like `herald run`: the top N get summaries (cached ones cost nothing).
            self.engine.summarize_digests([digest])
            for line in write_outputs(self.engine, digest, terminal=False):
                log.info("%s", line)
        except Exception:
            log.exception("writing the embedded outputs failed")

    async def run_digests(
        self,
        *,
        time: str | None = None,
        timezone: str | None = None,
        only_past_time: bool = False,
    ) -> list[DeliveryReport]:
        """Deliver every due digest of the matching chat subscriptions."""
        now = dt.datetime.now(dt.UTC)
        subs = [
            s
            for s in self.engine.active_subscriptions()
            if s.platform in self.adapters
            and (time is None or (s.time == time and s.timezone == timezone))
            and (not only_past_time or _time_passed(s, now))
        ]
        if not subs:
            return []
        by_day: dict[dt.date, list[Subscription]] = defaultdict(list)
        for s in subs:
            for day in due_days(self.store, s):
                by_day[day].append(s)
        reports: list[DeliveryReport] = []
        for day in sorted(by_day):
            if self.stopping.is_set():
                break
            digests = await asyncio.to_thread(self._prepare, by_day[day], day)
            reports += await self.deliver_all(digests)
        return reports

    def _prepare(self, subs: Sequence[Subscription], day: dt.date) -> list[Digest]:
        """Rank all subscriptions due for a day in one pass, then summarize (one call per key)."""
        digests = self.engine.digests(subs, day)
        self.engine.summarize_digests([d for d in digests if d.items])
        return digests

    async def deliver_all(self, digests: Sequence[Digest]) -> list[DeliveryReport]:
        sem = asyncio.Semaphore(MAX_PARALLEL_DELIVERIES)

        async def one(d: Digest) -> DeliveryReport:
            async with sem:
                return await self.deliver_digest(d)

        tasks = [self.spawn(one(d)) for d in digests]
        results = await asyncio.gather(*tasks, return_exceptions=True)
        out = []
        for d, r in zip(digests, results, strict=True):
            if isinstance(r, BaseException):
                log.error("delivery to %s failed: %r", d.subscription.label, r)
            else:
                out.append(r)
        return out

    async def deliver_digest(self, digest: Digest) -> DeliveryReport:
        sub = digest.subscription
        assert sub.id is not None
        sender: Sender | None = self.adapters.get(sub.platform)
        async with self._sub_locks[sub.id]:
            if sender is None:
                return DeliveryReport(sub, digest.day, failed=f"no {sub.platform} adapter")
            if not digest.items and not self.store.deliveries(sub.id, digest.day):
                if self.config.schedule.no_papers_note:
                    await sender.send_note(
                        sub,
                        f"No new papers matched on {digest.day:%a %d %b} "
                        f"({digest.total_candidates} candidates).",
                    )
                self.store.mark_done(sub.id, digest.day, "empty", 0)
                return DeliveryReport(sub, digest.day)
            report = await deliver(self.store, sender, digest, should_stop=self.stopping.is_set)
            if report.complete:
                self.store.mark_done(sub.id, digest.day, "delivered", report.sent + report.already)
            elif report.deactivated:
                self.store.mark_done(sub.id, digest.day, "deactivated", report.sent)
            return report

    async def send_no_papers_notes(self, day: dt.date | None) -> None:
        label = f"{day:%a %d %b}" if day else "today"
        for s in self.engine.active_subscriptions():
            sender = self.adapters.get(s.platform)
            if sender is None:
                continue
            key = f"note:{s.id}:{day}"
            if self.store.get_meta(key):
                continue
            await sender.send_note(s, f"No new arXiv papers {label} (weekend or holiday).")
            self.store.set_meta(key, "sent")

    async def resume(self) -> None:
        """On start: finish interrupted deliveries, fetch if one was missed, send due digests."""
        try:
            for row in self.store.unfinished_deliveries():
                sub = self.store.subscription_by_id(row["subscription_id"])
                if sub is None or not sub.active or sub.platform not in self.adapters:
                    continue
                day = dt.date.fromisoformat(row["day"])
                log.info("resuming the %s digest of %s (%d left)", day, sub.label, row["remaining"])
                digests = await asyncio.to_thread(
                    self.engine.digests, [sub], day, skip_delivered=False
                )
                digest = digests[0]
                await self.deliver_digest(digest)
            if self._fetch_overdue():
                await self.run_fetch()
            else:
                await self.run_digests(only_past_time=True)
        except Exception:
            log.exception("catching up after start failed")

    def _fetch_overdue(self) -> bool:
        """True when the last scheduled fetch time passed without a fetch after it."""
        from bot.scheduler import fetch_trigger

        last = self.store.last_fetch()
        if last is None:
            return True
        now = dt.datetime.now(dt.UTC)
        trigger = fetch_trigger(self.config.schedule.fetch)
        prev, t = None, trigger.get_next_fire_time(None, now - dt.timedelta(days=8))
        while t is not None and t <= now:
            prev, t = t, trigger.get_next_fire_time(t, t + dt.timedelta(seconds=1))
        started = dt.datetime.fromisoformat(last["started_at"])
        return prev is not None and started < prev


def _time_passed(sub: Subscription, now: dt.datetime) -> bool:
    """True when the subscription's digest time has already passed today, in its timezone."""
    import zoneinfo

    local = now.astimezone(zoneinfo.ZoneInfo(sub.timezone))
    hour, minute = (int(x) for x in sub.time.split(":"))
    return (local.hour, local.minute) >= (hour, minute)


def serve(config: Config, stop_requested: threading.Event | None = None) -> None:
    """Run until SIGTERM/SIGINT."""
    asyncio.run(Service(config).run_forever(stop_requested))
