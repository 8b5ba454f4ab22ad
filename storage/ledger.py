"""The delivery ledger: every (subscription, day, paper) before and after its platform call,
and the days the scheduler has settled."""

from __future__ import annotations

import datetime as dt
import sqlite3
from collections.abc import Sequence
from typing import Any

from storage.base import Base, now_iso
from storage.records import LedgerRow, Unfinished


def _row(r: sqlite3.Row) -> LedgerRow:
    return LedgerRow(
        subscription_id=r["subscription_id"],
        day=dt.date.fromisoformat(r["day"]),
        paper_id=r["paper_id"],
        position=r["position"],
        state=r["state"],
        message_id=r["message_id"],
        thread_id=r["thread_id"],
        attempts=r["attempts"] or 0,
        error=r["error"],
        updated_at=r["updated_at"],
    )


class LedgerStore(Base):
    def plan_deliveries(self, subscription_id: int, day: dt.date, paper_ids: Sequence[str]) -> None:
        """Write the day's plan (header + papers) as pending rows, once: a plan that exists is
        kept as it is, so a resumed delivery sends what was planned, not a re-ranked list."""
        now = now_iso()
        rows = [
            {
                "subscription_id": subscription_id,
                "day": day.isoformat(),
                "paper_id": pid,
                "position": i,
                "state": "pending",
                "attempts": 0,
                "updated_at": now,
            }
            for i, pid in enumerate(["", *paper_ids])
        ]
        with self.atomic():
            exists = self.db.execute(
                "SELECT 1 FROM deliveries WHERE subscription_id = ? AND day = ? LIMIT 1",
                [subscription_id, day.isoformat()],
            ).fetchone()
            if not exists:
                self.table("deliveries").insert_all(
                    rows, pk=("subscription_id", "day", "paper_id"), ignore=True
                )

    def deliveries(self, subscription_id: int, day: dt.date) -> list[LedgerRow]:
        return [
            _row(r)
            for r in self._rows(
                "SELECT * FROM deliveries WHERE subscription_id = ? AND day = ? ORDER BY position",
                [subscription_id, day.isoformat()],
            )
        ]

    def set_delivery_state(
        self,
        subscription_id: int,
        day: dt.date,
        paper_id: str,
        state: str,
        *,
        message_id: str | None = None,
        thread_id: str | None = None,
        error: str | None = None,
        count_attempt: bool = False,
    ) -> None:
        sets = ["state = ?", "updated_at = ?"]
        params: list[Any] = [state, now_iso()]
        if message_id is not None:
            sets.append("message_id = ?")
            params.append(message_id)
        if thread_id is not None:
            sets.append("thread_id = ?")
            params.append(thread_id)
        if error is not None or state == "sent":
            sets.append("error = ?")
            params.append(error)
        if count_attempt:
            sets.append("attempts = attempts + 1")
        params += [subscription_id, day.isoformat(), paper_id]
        with self.atomic():
            self.db.execute(
                f"UPDATE deliveries SET {', '.join(sets)} "
                "WHERE subscription_id = ? AND day = ? AND paper_id = ?",
                params,
            )

    def delivered_paper_ids(self, subscription_id: int, before: dt.date | None = None) -> set[str]:
        """Papers sent (or possibly sent) to a subscription, optionally only before a day."""
        sql = (
            "SELECT paper_id FROM deliveries WHERE subscription_id = ? AND paper_id != '' "
            "AND state IN ('sent', 'sending')"
        )
        params: list[Any] = [subscription_id]
        if before is not None:
            sql += " AND day < ?"
            params.append(before.isoformat())
        return {r["paper_id"] for r in self._rows(sql, params)}

    def unfinished_deliveries(self) -> list[Unfinished]:
        """Days with rows still pending or sending, per subscription (for catch-up)."""
        return [
            Unfinished(
                r["subscription_id"],
                dt.date.fromisoformat(r["day"]),
                r["remaining"],
                r["ambiguous"],
            )
            for r in self._rows(
                "SELECT subscription_id, day, count(*) AS remaining, "
                "sum(state = 'sending') AS ambiguous FROM deliveries "
                "WHERE state IN ('pending', 'sending') GROUP BY subscription_id, day "
                "ORDER BY day, subscription_id"
            )
        ]

    def pending_delivery_count(self) -> int:
        return self._count("SELECT count(*) FROM deliveries WHERE state IN ('pending', 'sending')")

    # -- digest runs (what the scheduler has settled) ---------------------------------------
    def mark_done(self, subscription_id: int, day: dt.date, outcome: str, papers: int) -> None:
        with self.atomic():
            self.table("digest_runs").upsert(
                {
                    "subscription_id": subscription_id,
                    "day": day.isoformat(),
                    "outcome": outcome,
                    "papers": papers,
                    "finished_at": now_iso(),
                },
                pk=("subscription_id", "day"),
            )

    def done_days(self, subscription_id: int) -> set[dt.date]:
        rows = self._rows(
            "SELECT day FROM digest_runs WHERE subscription_id = ?", [subscription_id]
        )
        return {dt.date.fromisoformat(r["day"]) for r in rows}

    # -- where a chat's messages have got to ------------------------------------------------
    def mark_message(self, platform: str, chat: str, message_id: int) -> None:
        """Remember that ``message_id`` exists in the chat (only ever moves forward)."""
        with self.atomic():
            self.db.execute(
                "INSERT INTO chat_marks (platform, chat, message_id) VALUES (?, ?, ?) "
                "ON CONFLICT(platform, chat) DO UPDATE SET message_id = excluded.message_id "
                "WHERE excluded.message_id > chat_marks.message_id",
                [platform, chat, message_id],
            )

    def last_message_id(self, platform: str, chat: str) -> int | None:
        """The newest message id known in a chat: marked, or sent through the ledger."""
        row = self._one(
            "SELECT max(m) FROM ("
            "SELECT message_id AS m FROM chat_marks WHERE platform = ? AND chat = ? "
            "UNION ALL SELECT CAST(d.message_id AS INTEGER) FROM deliveries d "
            "JOIN subscriptions s ON s.id = d.subscription_id "
            "WHERE s.platform = ? AND s.chat = ? AND d.message_id GLOB '[0-9]*')",
            [platform, chat, platform, chat],
        )
        return int(row[0]) if row is not None and row[0] is not None else None
