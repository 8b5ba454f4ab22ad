"""APScheduler's persistent job store, kept in the herald SQLite file through ``Store``.

APScheduler 3 ships SQLAlchemyJobStore; this is the same contract (pickled job state, indexed
next run time) on the store we already have, so SQLite stays behind ``storage/`` and the
service doesn't load SQLAlchemy just for a table of a few rows.
"""

from __future__ import annotations

import pickle
from datetime import datetime
from typing import Any

from apscheduler.job import Job
from apscheduler.jobstores.base import BaseJobStore, ConflictingIdError, JobLookupError
from apscheduler.util import datetime_to_utc_timestamp, utc_timestamp_to_datetime

from storage.db import Store
from storage.records import JobRecord


class SQLiteJobStore(BaseJobStore):  # type: ignore[misc]  # apscheduler 3 ships no types
    def __init__(self, store: Store, pickle_protocol: int = pickle.HIGHEST_PROTOCOL) -> None:
        super().__init__()
        self.store = store
        self.pickle_protocol = pickle_protocol

    def lookup_job(self, job_id: str) -> Job | None:
        row = self.store.job_row(job_id)
        return self._reconstitute(row.job_state) if row else None

    def get_due_jobs(self, now: datetime) -> list[Job]:
        return self._jobs(self.store.job_rows(due_before=datetime_to_utc_timestamp(now)))

    def get_next_run_time(self) -> datetime | None:
        return utc_timestamp_to_datetime(self.store.next_job_time())

    def get_all_jobs(self) -> list[Job]:
        jobs = self._jobs(self.store.job_rows())
        self._fix_paused_jobs_sorting(jobs)
        return jobs

    def add_job(self, job: Job) -> None:
        ok = self.store.put_job(
            job.id,
            datetime_to_utc_timestamp(job.next_run_time),
            pickle.dumps(job.__getstate__(), self.pickle_protocol),
            insert=True,
        )
        if not ok:
            raise ConflictingIdError(job.id)

    def update_job(self, job: Job) -> None:
        ok = self.store.put_job(
            job.id,
            datetime_to_utc_timestamp(job.next_run_time),
            pickle.dumps(job.__getstate__(), self.pickle_protocol),
            insert=False,
        )
        if not ok:
            raise JobLookupError(job.id)

    def remove_job(self, job_id: str) -> None:
        if not self.store.delete_job(job_id):
            raise JobLookupError(job_id)

    def remove_all_jobs(self) -> None:
        self.store.delete_all_jobs()

    def _reconstitute(self, state: bytes) -> Job:
        data: dict[str, Any] = pickle.loads(state)  # our own rows, written by add_job
        data["jobstore"] = self
        job = Job.__new__(Job)
        job.__setstate__(data)
        job._scheduler = self._scheduler
        job._jobstore_alias = self._alias
        return job

    def _jobs(self, rows: list[JobRecord]) -> list[Job]:
        jobs, broken = [], []
        for row in rows:
            try:
                jobs.append(self._reconstitute(row.job_state))
            except Exception:  # a job whose function moved must not stop the rest
                self._logger.exception("unable to restore job %r; removing it", row.id)
                broken.append(row.id)
        for job_id in broken:
            self.store.delete_job(job_id)
        return jobs
