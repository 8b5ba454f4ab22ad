"""The delivery ledger: every (subscription, day, paper) before and after its platform call,
and the days the scheduler has settled."""

from __future__ import annotations

import datetime as dt
import sqlite3
from collections.abc import Sequence
from typing import Any

from storage.base import Base, chunks, marks, now_iso
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
        layout=r["layout"] or "thread",
    )


class LedgerStore(Base):
    def plan_deliveries(
        self,
        subscription_id: int,
        day: dt.date,
        paper_ids: Sequence[str],
        layout: str = "thread",
    ) -> None:
        """Write the day's plan (header + papers) as pending rows, once: a plan that exists is
        kept as it is, so a resumed delivery sends what was planned, not a re-ranked list."""
        self.plan_deliveries_many([(subscription_id, day, paper_ids, layout)])

    def plan_deliveries_many(self, plans: Sequence[tuple[int, dt.date, Sequence[str], str]]) -> int:
        """:meth:`plan_deliveries` for many (subscription, day, paper ids, layout) at once, in
        one transaction; returns how many ledger rows were written."""
        now = now_iso()
        written = 0
        with self.atomic():
            planned: set[tuple[int, str]] = set()
            by_day: dict[str, list[int]] = {}
            for sid, day, _, _ in plans:
                by_day.setdefault(day.isoformat(), []).append(sid)
            for day_s, ids in by_day.items():
                for chunk in chunks(ids):
                    planned.update(
                        (r[0], day_s)
                        for r in self.db.execute(
                            "SELECT DISTINCT subscription_id FROM deliveries WHERE day = ? "
                            f"AND subscription_id IN ({marks(chunk)})",
                            [day_s, *chunk],
                        )
                    )
            rows = []
            for sid, day, paper_ids, layout in plans:
                key = (sid, day.isoformat())
                if key in planned:
                    continue
                planned.add(key)
                rows += [
                    (sid, key[1], pid, i, "pending", 0, now, layout)
                    for i, pid in enumerate(dict.fromkeys(["", *paper_ids]))
                ]
            if rows:
                cur = self.db.conn.executemany(
                    "INSERT OR IGNORE INTO deliveries (subscription_id, day, paper_id, position, "
                    "state, attempts, updated_at, layout) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                    rows,
                )
                written = cur.rowcount
        return written

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
        self.set_delivery_states(
            subscription_id,
            day,
            [paper_id],
            state,
            message_id=message_id,
            thread_id=thread_id,
            error=error,
            count_attempt=count_attempt,
        )

    def set_delivery_states(
        self,
        subscription_id: int,
        day: dt.date,
        paper_ids: Sequence[str],
        state: str,
        *,
        message_id: str | None = None,
        thread_id: str | None = None,
        error: str | None = None,
        count_attempt: bool = False,
    ) -> None:
        """Move rows of one day together (the papers of one compact message) in one write."""
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
        ids = list(dict.fromkeys(paper_ids))
        with self.atomic():
            for chunk in chunks(ids):
                self.db.execute(
                    f"UPDATE deliveries SET {', '.join(sets)} WHERE subscription_id = ? "
                    f"AND day = ? AND paper_id IN ({marks(chunk)})",
                    [*params, subscription_id, day.isoformat(), *chunk],
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

    def delivered_paper_ids_many(
        self, subscription_ids: Sequence[int], before: dt.date | None = None
    ) -> dict[int, set[str]]:
        """:meth:`delivered_paper_ids` of many subscriptions in a few queries (ranking a
        day for every chat at once)."""
        out: dict[int, set[str]] = {sid: set() for sid in subscription_ids}
        for chunk in chunks(list(out)):
            sql = (
                "SELECT subscription_id, paper_id FROM deliveries WHERE paper_id != '' "
                f"AND state IN ('sent', 'sending') AND subscription_id IN ({marks(chunk)})"
            )
            params: list[Any] = list(chunk)
            if before is not None:
                sql += " AND day < ?"
                params.append(before.isoformat())
            for r in self._rows(sql, params):
                out[r[0]].add(r[1])
        return out

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
            self.db.execute(
                "INSERT INTO digest_runs (subscription_id, day, outcome, papers, finished_at) "
                "VALUES (?, ?, ?, ?, ?) ON CONFLICT(subscription_id, day) DO UPDATE SET "
                "outcome = excluded.outcome, papers = excluded.papers, "
                "finished_at = excluded.finished_at",
                [subscription_id, day.isoformat(), outcome, papers, now_iso()],
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

    @staticmethod
    def _chat_where(chat: str, topics: bool, column: str = "chat") -> tuple[str, list[Any]]:
        if not topics:
            return f"{column} = ?", [chat]
        # "chat/…" as a range, so the (platform, chat) index serves it ("0" follows "/").
        return f"({column} = ? OR ({column} > ? AND {column} < ?))", [chat, chat + "/", chat + "0"]

    def sent_message_ids(
        self, platform: str, chat: str, after: int, *, topics: bool = False
    ) -> set[int]:
        """The message ids past ``after`` that the ledger records in a chat (``topics``: in
        any of its topics too) — messages a search for an unsure one can step over."""
        where, params = self._chat_where(chat, topics, "s.chat")
        rows = self._rows(
            "SELECT DISTINCT CAST(d.message_id AS INTEGER) FROM deliveries d "
            "JOIN subscriptions s ON s.id = d.subscription_id "
            f"WHERE s.platform = ? AND {where} AND d.message_id GLOB '[0-9]*' "
            "AND CAST(d.message_id AS INTEGER) > ?",
            [platform, *params, after],
        )
        return {int(r[0]) for r in rows}

    def last_message_id(self, platform: str, chat: str, *, topics: bool = False) -> int | None:
        """The newest message id known in a chat: marked, or sent through the ledger.

        ``topics``: the chat's topics count too (``chat/7`` on Telegram, where a forum's
        topics share one sequence of message ids)."""
        where, params = self._chat_where(chat, topics)
        s_where, _ = self._chat_where(chat, topics, "s.chat")
        row = self._one(
            "SELECT max(m) FROM ("
            f"SELECT message_id AS m FROM chat_marks WHERE platform = ? AND {where} "
            "UNION ALL SELECT CAST(d.message_id AS INTEGER) FROM deliveries d "
            "JOIN subscriptions s ON s.id = d.subscription_id "
            f"WHERE s.platform = ? AND {s_where} AND d.message_id GLOB '[0-9]*')",
            [platform, *params, platform, *params],
        )
        return int(row[0]) if row is not None and row[0] is not None else None
