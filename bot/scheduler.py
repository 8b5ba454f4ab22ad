"""When things happen: APScheduler with a persistent job store.

Two kinds of jobs, both module-level functions (APScheduler 3 stores a reference to them):

* ``fetch`` — the arXiv fetch, on ``schedule.fetch`` (cron, UTC; default 05:00 Mon–Fri, after
  arXiv rebuilds its feeds).
* ``digest <HH:MM> <Area/City>`` — one job per distinct (time, timezone) among active
  subscriptions, firing daily at that local time (DST-aware).  A digest job delivers each
  *announcement day* that was fetched after the subscription was created and has not been
  delivered to it yet — so a day without announcements sends nothing, a digest never goes out
  before its day's fetch finished, and after downtime each missed day is sent once.

``coalesce`` and ``misfire_grace_time`` are set on every job when it is added (APScheduler 3
stores them per job), so a backlog of missed ticks runs once.
"""

from __future__ import annotations

import copy
import datetime as dt
import logging
import zoneinfo
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any, Protocol

from apscheduler.executors.asyncio import AsyncIOExecutor
from apscheduler.schedulers.asyncio import AsyncIOScheduler
from apscheduler.triggers.cron import CronTrigger

from bot.categories import in_category_set
from bot.models import Subscription
from storage import Store
from storage.jobstore import SQLiteJobStore

if TYPE_CHECKING:
    from bot.config import ScheduleSection

log = logging.getLogger(__name__)

FETCH_JOB = "fetch"
MAX_MISSED_DAYS = 5


class JobTarget(Protocol):
    """What the scheduled jobs run (the service)."""

    async def run_fetch(self) -> None: ...

    async def run_digests(self, *, time: str | None = None, timezone: str | None = None) -> Any: ...


async def fetch_job(*, target: JobTarget | None = None) -> None:
    """Scheduled: fetch arXiv, then send digests whose time has already passed today."""
    if target is None:
        raise RuntimeError("the fetch job ran without its target")
    await target.run_fetch()


async def digest_job(time: str, timezone: str, *, target: JobTarget | None = None) -> None:
    """Scheduled: deliver due digests for every subscription at this local time."""
    if target is None:
        raise RuntimeError("the digest job ran without its target")
    await target.run_digests(time=time, timezone=timezone)


class _TargetExecutor(AsyncIOExecutor):  # type: ignore[misc]  # apscheduler 3 has no types
    """Runs each job with the live target as its ``target`` keyword argument.

    APScheduler 3 persists a job as a reference to a module-level function plus its
    arguments; the target (the running service) is not something to pickle, so it is handed
    over here, at run time, instead of through a module-level global.
    """

    def __init__(self, target: JobTarget) -> None:
        super().__init__()
        self._target = target

    def _do_submit_job(self, job: Any, run_times: Any) -> None:
        bound = copy.copy(job)  # the stored job keeps its own (picklable) arguments
        bound._scheduler, bound._jobstore_alias = job._scheduler, job._jobstore_alias
        bound.kwargs = {**job.kwargs, "target": self._target}
        super()._do_submit_job(bound, run_times)


def digest_job_id(time: str, timezone: str) -> str:
    return f"digest {time} {timezone}"


def digest_trigger(time: str, timezone: str) -> CronTrigger:
    hour, minute = (int(x) for x in time.split(":"))
    return CronTrigger(hour=hour, minute=minute, timezone=zoneinfo.ZoneInfo(timezone))


def fetch_trigger(cron: str) -> CronTrigger:
    return CronTrigger.from_crontab(cron, timezone=dt.UTC)


def due_days(store: Store, sub: Subscription, limit: int = MAX_MISSED_DAYS) -> list[dt.date]:
    """Announcement days this subscription should (still) get, oldest first.

    A day is due when a fetch of it finished after the subscription was created and the day
    has not been marked done for it.  Days still half-delivered (a crash) are due too: the
    ledger resumes them where they stopped.
    """
    assert sub.id is not None
    created = store.subscription_created_at(sub.id)
    covered: dict[dt.date, set[str]] = {}
    for f in store.fetches_finished_after(created or ""):
        if f.day is not None:
            covered.setdefault(f.day, set()).update(f.categories)
    days = {
        d for d, have in covered.items() if any(in_category_set(c, have) for c in sub.categories)
    }
    done = store.done_days(sub.id)
    due = sorted(d for d in days if d not in done)
    return due[-limit:]


class Scheduler:
    """APScheduler on the asyncio loop, with jobs persisted in the herald database."""

    def __init__(
        self,
        store: Store,
        cfg: ScheduleSection,
        subscriptions: Callable[[], list[Subscription]],
    ) -> None:
        self.store = store
        self.cfg = cfg
        self.subscriptions = subscriptions
        self.aps = AsyncIOScheduler(jobstores={"default": SQLiteJobStore(store)}, timezone=dt.UTC)

    @property
    def running(self) -> bool:
        return bool(self.aps.running)

    def _job_defaults(self) -> dict[str, Any]:
        return {
            "coalesce": True,
            "misfire_grace_time": self.cfg.misfire_grace_s,
            "max_instances": 1,
        }

    def start(
        self, target: JobTarget, subscriptions: Iterable[Subscription], *, paused: bool = False
    ) -> None:
        """Start firing jobs at ``target`` (the service), with jobs for ``subscriptions``."""
        self.aps.add_executor(_TargetExecutor(target), "default")
        self.aps.start(paused=paused)
        self.sync(subscriptions)

    def subscription_changed(self, sub: Subscription) -> None:
        """A chat changed its settings: move its digest job at once."""
        if self.running:
            self.sync(self.subscriptions())

    def shutdown(self) -> None:
        if self.aps.running:
            self.aps.shutdown(wait=False)

    def sync(self, subscriptions: Iterable[Subscription]) -> None:
        """Make the stored jobs match the config and the subscriptions.

        Existing jobs keep their next run time (a tick missed while we were down still runs,
        once); only new or changed schedules are (re)computed from now.
        """
        fetch = self.aps.get_job(FETCH_JOB)
        want = fetch_trigger(self.cfg.fetch)
        if fetch is None or str(fetch.trigger) != str(want):
            self.aps.add_job(
                "bot.scheduler:fetch_job",
                want,
                id=FETCH_JOB,
                name="arXiv fetch",
                replace_existing=True,
                **self._job_defaults(),
            )
        wanted = {
            digest_job_id(s.time, s.timezone): (s.time, s.timezone)
            for s in subscriptions
            if s.active and s.platform != "default"
        }
        for job in self.aps.get_jobs():
            if job.id.startswith("digest ") and job.id not in wanted:
                job.remove()
        for job_id, (time, tz) in wanted.items():
            if self.aps.get_job(job_id) is None:
                self.aps.add_job(
                    "bot.scheduler:digest_job",
                    digest_trigger(time, tz),
                    args=(time, tz),
                    id=job_id,
                    name=f"digests at {time} {tz}",
                    **self._job_defaults(),
                )

    def next_run(self, sub: Subscription) -> dt.datetime | None:
        job = self.aps.get_job(digest_job_id(sub.time, sub.timezone))
        if job is None or job.next_run_time is None:
            return None
        return job.next_run_time.astimezone(zoneinfo.ZoneInfo(sub.timezone))


def stored_next_runs(store: Store) -> list[tuple[str, dt.datetime | None]]:
    """Next runs straight from the job store, for ``herald status`` (no scheduler running)."""
    jobstore = SQLiteJobStore(store)
    jobstore._scheduler = None
    jobstore._alias = "default"
    jobstore._logger = log
    return [(j.name, j.next_run_time) for j in jobstore.get_all_jobs()]
