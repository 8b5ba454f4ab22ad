"""The summary cache (one row per key: paper version, model, prompt, language, source) and
the LLM usage log behind budgets and ``herald usage``."""

from __future__ import annotations

import dataclasses
import datetime as dt
import sqlite3
from collections.abc import Sequence

from storage.base import Base, chunks, marks, now_iso
from storage.records import SummaryRecord, UsageRow, UsageTotals

_FIELDS = [f.name for f in dataclasses.fields(SummaryRecord)]


def _record(r: sqlite3.Row) -> SummaryRecord:
    values = {f: r[f] for f in _FIELDS}
    values["attempts"] = values["attempts"] or 0
    values["tokens_in"] = values["tokens_in"] or 0
    values["tokens_out"] = values["tokens_out"] or 0
    return SummaryRecord(**values)


class SummariesStore(Base):
    def get_summary(self, key: str) -> SummaryRecord | None:
        r = self._one("SELECT * FROM summaries WHERE key = ?", [key])
        return _record(r) if r else None

    def get_summaries(self, keys: Sequence[str]) -> dict[str, SummaryRecord]:
        out: dict[str, SummaryRecord] = {}
        for chunk in chunks(list(dict.fromkeys(keys))):
            for r in self._rows(f"SELECT * FROM summaries WHERE key IN ({marks(chunk)})", chunk):
                out[r["key"]] = _record(r)
        return out

    def save_summary(self, record: SummaryRecord) -> None:
        """Store the outcome of an attempt under its key; ``attempts`` counts them."""
        now = now_iso()
        row = dataclasses.asdict(record)
        with self.atomic():
            old = self.db.execute(
                "SELECT created_at, attempts FROM summaries WHERE key = ?", [record.key]
            ).fetchone()
            row["created_at"] = old["created_at"] if old else now
            row["attempts"] = (old["attempts"] or 0) + 1 if old else 1
            row["updated_at"] = now
            self.table("summaries").upsert(row, pk="key")

    def record_usage(
        self,
        *,
        model: str,
        paper_id: str,
        tokens_in: int,
        tokens_out: int,
        cost: float,
        ok: bool,
        error: str | None = None,
        at: dt.datetime | None = None,
    ) -> None:
        at = at or dt.datetime.now(dt.UTC)
        with self.atomic():
            self.table("llm_usage").insert(
                {
                    "at": at.isoformat(timespec="seconds"),
                    "day": at.date().isoformat(),
                    "model": model,
                    "paper_id": paper_id,
                    "tokens_in": tokens_in,
                    "tokens_out": tokens_out,
                    "cost": cost,
                    "ok": int(ok),
                    "error": error,
                }
            )

    def usage_on(self, day: dt.date) -> UsageTotals:
        r = self._one(
            "SELECT count(*), coalesce(sum(tokens_in), 0), coalesce(sum(tokens_out), 0), "
            "coalesce(sum(cost), 0) FROM llm_usage WHERE day = ?",
            [day.isoformat()],
        )
        assert r is not None
        return UsageTotals(int(r[0]), int(r[1]), int(r[2]), float(r[3]))

    def usage_by_day(self, since: dt.date) -> list[UsageRow]:
        return [
            UsageRow(
                r["day"],
                r["model"],
                r["calls"] or 0,
                r["ok_calls"] or 0,
                r["tokens_in"] or 0,
                r["tokens_out"] or 0,
                r["cost"] or 0.0,
            )
            for r in self._rows(
                "SELECT day, model, count(*) AS calls, sum(ok) AS ok_calls, "
                "sum(tokens_in) AS tokens_in, sum(tokens_out) AS tokens_out, sum(cost) AS cost "
                "FROM llm_usage WHERE day >= ? GROUP BY day, model ORDER BY day, model",
                [since.isoformat()],
            )
        ]
