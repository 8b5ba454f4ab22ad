"""``herald serve``: one asyncio process — scheduler, chat adapters, web app — and the day's
work they share: fetch, then deliver every due digest, after a restart too.

The service is built by the composition root (:mod:`bot.app`) from parts it is given; it
names no platform.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
import signal
import threading
import zoneinfo
from collections import defaultdict
from collections.abc import Callable, Coroutine, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from bot.config import Config
from bot.delivery import Deliverer, DeliveryReport
from bot.engine import Engine
from bot.fanout import FanOut
from bot.models import Digest, Subscription
from bot.platform import Adapter
from bot.scheduler import Scheduler, due_days, fetch_trigger
from storage import Unfinished

if TYPE_CHECKING:
    from bot.web import WebApp

log = logging.getLogger(__name__)

MAX_PARALLEL_DELIVERIES = 64  # the fan-out's workers
SHUTDOWN_GRACE_S = 20.0
READY = "herald serve is running"

#: Writes the default subscription's files (Markdown, feeds); returns one line per file.
OutputWriter = Callable[[Engine, Digest], list[str]]


class Service:
    """Everything ``herald serve`` runs, with a clean start and a clean stop."""

    def __init__(
        self,
        config: Config,
        engine: Engine,
        deliverer: Deliverer,
        scheduler: Scheduler,
        adapters: Mapping[str, Adapter],
        *,
        web: WebApp | None = None,
        write_outputs: OutputWriter | None = None,
    ) -> None:
        self.config = config
        self.engine = engine
        self.store = engine.store
        self.deliverer = deliverer
        self.fanout = FanOut(deliverer, workers=MAX_PARALLEL_DELIVERIES)
        self.scheduler = scheduler
        self.adapters = dict(adapters)
        self.web = web
        self.write_outputs = write_outputs
        self.stopping = asyncio.Event()
        self._tasks: set[asyncio.Task[Any]] = set()
        self._fetch_lock = asyncio.Lock()

    # -- lifecycle ---------------------------------------------------------------------------
    async def start(self) -> None:
        await asyncio.to_thread(self.engine.default_subscription)
        for name, adapter in self.adapters.items():
            await adapter.connect()
            log.info("%s: connected", name)
        if self.web is not None and self.config.web.enabled:
            await self.web.start()
        subs = await asyncio.to_thread(self.engine.active_subscriptions)
        self.scheduler.start(self, subs)
        for adapter in self.adapters.values():
            await adapter.listen()
        # After downtime: finish half-sent digests, then whatever became due while we were away.
        self.spawn(self.resume())

    async def run_once(self) -> list[DeliveryReport]:
        """``herald run`` with chats configured: deliver every due digest now, then leave."""
        await asyncio.to_thread(self.engine.default_subscription)
        try:
            for adapter in self.adapters.values():
                await adapter.connect()
            return await self.run_digests()
        finally:
            for adapter in self.adapters.values():
                with contextlib.suppress(Exception):
                    await adapter.disconnect()

    def spawn(self, coro: Coroutine[Any, Any, Any]) -> asyncio.Task[Any]:
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
        log.info("%s (web: %s)", READY, self.web.url if self.web else "off")
        await self.stopping.wait()
        await self.stop()

    def request_stop(self) -> None:
        if not self.stopping.is_set():
            log.info("stopping: finishing the messages in flight")
            self.stopping.set()
            self.deliverer.stop()

    async def stop(self) -> None:
        self.request_stop()
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
        self.store.close()

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
        if self.write_outputs is None:
            return
        try:
            digest = self.engine.digest()
            # Like `herald run`: the top N get summaries (cached ones cost nothing).
            self.engine.summarize_digests([digest])
            for line in self.write_outputs(self.engine, digest):
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
            for s in await asyncio.to_thread(self.engine.active_subscriptions)
            if s.platform in self.adapters
            and (time is None or (s.time == time and s.timezone == timezone))
            and (not only_past_time or _time_passed(s, now))
        ]
        if not subs:
            return []
        by_day = await asyncio.to_thread(self._due, subs)
        reports: list[DeliveryReport] = []
        for day in sorted(by_day):
            if self.stopping.is_set():
                break
            digests = await asyncio.to_thread(self._prepare, by_day[day], day)
            reports += await self.deliver_all(digests)
        return reports

    def _due(self, subs: Sequence[Subscription]) -> dict[dt.date, list[Subscription]]:
        by_day: dict[dt.date, list[Subscription]] = defaultdict(list)
        for s in subs:
            for day in due_days(self.store, s):
                by_day[day].append(s)
        return by_day

    def _prepare(self, subs: Sequence[Subscription], day: dt.date) -> list[Digest]:
        """Rank all subscriptions due for a day in one pass, then summarize (one call per key).

        One chat's failure never stops the others: if the shared pass fails, each chat is
        ranked on its own and a chat that still fails is left out today (it stays due, so the
        next tick tries again); a summarizing failure only leaves summaries pending.
        """
        try:
            digests = self.engine.digests(subs, day)
        except Exception:
            log.exception("ranking %d digests together failed; ranking each alone", len(subs))
            digests = []
            for sub in subs:
                try:
                    digests += self.engine.digests([sub], day)
                except Exception:
                    log.exception("the %s digest of %s could not be ranked", day, sub.label)
        try:
            self.engine.summarize_digests([d for d in digests if d.items])
        except Exception:
            log.exception("summarizing the %s digests failed; they go out without", day)
        return digests

    async def deliver_all(self, digests: Sequence[Digest]) -> list[DeliveryReport]:
        """Every digest, fairly interleaved at each platform's pace (:mod:`bot.fanout`)."""
        return await self.fanout.deliver(digests, self.adapters)

    async def deliver_digest(self, digest: Digest) -> DeliveryReport:
        return await self.deliverer.deliver_digest(
            digest, self.adapters.get(digest.subscription.platform)
        )

    async def send_no_papers_notes(self, day: dt.date | None) -> None:
        label = f"{day:%a %d %b}" if day else "today"
        for s in await asyncio.to_thread(self.engine.active_subscriptions):
            sender = self.adapters.get(s.platform)
            if sender is None:
                continue
            key = f"note:{s.id}:{day}"
            if await asyncio.to_thread(self.store.get_meta, key):
                continue
            await sender.send_note(s, f"No new arXiv papers {label} (weekend or holiday).")
            await asyncio.to_thread(self.store.set_meta, key, "sent")

    async def resume(self) -> None:
        """On start: finish interrupted deliveries, fetch if one was missed, send due digests."""
        try:
            # Chats with a message left unsure by the crash first: on a platform without
            # history (Telegram) it is looked for past the chat's newest known message, so
            # nothing new may be posted in its chat (another forum topic) before.
            batches: dict[tuple[bool, dt.date], list[Subscription]] = defaultdict(list)
            for sub, row in await asyncio.to_thread(self._unfinished):
                log.debug(
                    "resuming the %s digest of %s (%d left)", row.day, sub.label, row.remaining
                )
                batches[(row.ambiguous == 0, row.day)].append(sub)
            for (_, day), subs in sorted(batches.items()):
                log.info("resuming the %s digests of %d chats", day, len(subs))
                digests = await asyncio.to_thread(
                    self.engine.digests, subs, day, skip_delivered=False
                )
                await self.deliver_all(digests)
            if await asyncio.to_thread(self._fetch_overdue):
                await self.run_fetch()
            else:
                await self.run_digests(only_past_time=True)
        except Exception:
            log.exception("catching up after start failed")

    def _unfinished(self) -> list[tuple[Subscription, Unfinished]]:
        out = []
        for row in self.store.unfinished_deliveries():
            sub = self.store.subscription_by_id(row.subscription_id)
            if sub is None or not sub.active or sub.platform not in self.adapters:
                continue
            out.append((sub, row))
        return out

    def _fetch_overdue(self) -> bool:
        """True when the last scheduled fetch time passed without a fetch after it."""
        last = self.store.last_fetch()
        if last is None:
            return True
        now = dt.datetime.now(dt.UTC)
        trigger = fetch_trigger(self.config.schedule.fetch)
        prev, t = None, trigger.get_next_fire_time(None, now - dt.timedelta(days=8))
        while t is not None and t <= now:
            prev, t = t, trigger.get_next_fire_time(t, t + dt.timedelta(seconds=1))
        return prev is not None and last.started_at < prev


def _time_passed(sub: Subscription, now: dt.datetime) -> bool:
    """True when the subscription's digest time has already passed today, in its timezone."""
    local = now.astimezone(zoneinfo.ZoneInfo(sub.timezone))
    hour, minute = (int(x) for x in sub.time.split(":"))
    return (local.hour, local.minute) >= (hour, minute)
