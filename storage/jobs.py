"""Scheduler jobs (for :mod:`storage.jobstore`) and small key/value facts (``meta``)."""

from __future__ import annotations

import sqlite3

from storage.base import Base
from storage.records import JobRecord


def _job(r: sqlite3.Row) -> JobRecord:
    return JobRecord(r["id"], r["next_run_time"], r["job_state"])


class JobsStore(Base):
    def job_rows(self, due_before: float | None = None) -> list[JobRecord]:
        if due_before is None:
            rows = self._rows("SELECT * FROM scheduler_jobs ORDER BY next_run_time")
        else:
            rows = self._rows(
                "SELECT * FROM scheduler_jobs WHERE next_run_time IS NOT NULL AND "
                "next_run_time <= ? ORDER BY next_run_time",
                [due_before],
            )
        return [_job(r) for r in rows]

    def job_row(self, job_id: str) -> JobRecord | None:
        r = self._one("SELECT * FROM scheduler_jobs WHERE id = ?", [job_id])
        return _job(r) if r else None

    def next_job_time(self) -> float | None:
        r = self._one(
            "SELECT min(next_run_time) FROM scheduler_jobs WHERE next_run_time IS NOT NULL"
        )
        return float(r[0]) if r is not None and r[0] is not None else None

    def put_job(
        self, job_id: str, next_run_time: float | None, state: bytes, *, insert: bool
    ) -> bool:
        with self.atomic():
            exists = self.db.execute(
                "SELECT 1 FROM scheduler_jobs WHERE id = ?", [job_id]
            ).fetchone()
            if insert and exists:
                return False
            if not insert and not exists:
                return False
            self.table("scheduler_jobs").upsert(
                {"id": job_id, "next_run_time": next_run_time, "job_state": state}, pk="id"
            )
        return True

    def delete_job(self, job_id: str) -> bool:
        with self.atomic():
            cur = self.db.execute("DELETE FROM scheduler_jobs WHERE id = ?", [job_id])
        return bool(cur.rowcount > 0)

    def delete_all_jobs(self) -> None:
        with self.atomic():
            self.db.execute("DELETE FROM scheduler_jobs")

    # -- meta --------------------------------------------------------------------------------
    def get_meta(self, key: str) -> str | None:
        r = self._one("SELECT value FROM meta WHERE key = ?", [key])
        return str(r["value"]) if r else None

    def set_meta(self, key: str, value: str) -> None:
        with self.atomic():
            self.table("meta").upsert({"key": key, "value": value}, pk="key")
