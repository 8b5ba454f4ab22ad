"""Ratings: one 👍 (+1) or 👎 (-1) per (subscription, user, paper)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from bot.models import Rating
from storage.base import Base, chunks, marks, now_iso
from storage.records import RatingRecord


class RatingsStore(Base):
    def record_rating(self, rating: Rating) -> tuple[int | None, int]:
        """Store a rating; pressing the same again changes nothing, the other flips it.

        Returns (previous value or None, new value).
        """
        with self.atomic():
            old = self.db.execute(
                "SELECT value FROM ratings WHERE subscription_id = ? AND user = ? AND paper_id = ?",
                [rating.subscription_id, rating.user, rating.paper_id],
            ).fetchone()
            prev = old["value"] if old else None
            if prev != rating.value:
                self.table("ratings").upsert(
                    {
                        "subscription_id": rating.subscription_id,
                        "user": rating.user,
                        "paper_id": rating.paper_id,
                        "value": rating.value,
                        "at": now_iso(),
                    },
                    pk=("subscription_id", "user", "paper_id"),
                )
        return prev, rating.value

    def ratings(self, subscription_id: int | None = None) -> list[RatingRecord]:
        sql = (
            "SELECT r.*, coalesce(nullif(s.name, ''), s.platform || ':' || s.chat) AS label, "
            "p.title FROM ratings r JOIN subscriptions s ON s.id = r.subscription_id "
            "LEFT JOIN papers p ON p.id = r.paper_id"
        )
        params: list[Any] = []
        if subscription_id is not None:
            sql += " WHERE r.subscription_id = ?"
            params.append(subscription_id)
        return [
            RatingRecord(
                r["subscription_id"],
                r["label"],
                r["user"],
                r["paper_id"],
                r["title"],
                r["value"],
                r["at"],
                r["source"],
            )
            for r in self._rows(sql + " ORDER BY r.at, r.paper_id", params)
        ]

    def rated_subscription_ids(self) -> set[int]:
        """Every subscription someone has rated a paper for."""
        return {r[0] for r in self._rows("SELECT DISTINCT subscription_id FROM ratings")}

    def rating_count(self, subscription_id: int) -> int:
        return self._count(
            "SELECT count(*) FROM ratings WHERE subscription_id = ?", [subscription_id]
        )

    def tally(self, subscription_id: int, paper_id: str) -> tuple[int, int]:
        return self.tallies(subscription_id, [paper_id]).get(paper_id, (0, 0))

    def tallies(self, subscription_id: int, paper_ids: Sequence[str]) -> dict[str, tuple[int, int]]:
        """(👍, 👎) counts of each paper that has any, in one pass."""
        out: dict[str, tuple[int, int]] = {}
        for chunk in chunks(list(dict.fromkeys(paper_ids))):
            for r in self._rows(
                "SELECT paper_id, sum(value > 0), sum(value < 0) FROM ratings "
                f"WHERE subscription_id = ? AND paper_id IN ({marks(chunk)}) GROUP BY paper_id",
                [subscription_id, *chunk],
            ):
                out[r[0]] = (int(r[1] or 0), int(r[2] or 0))
        return out

    def user_vote(self, subscription_id: int, user: str, paper_id: str) -> int | None:
        r = self._one(
            "SELECT value FROM ratings WHERE subscription_id = ? AND user = ? AND paper_id = ?",
            [subscription_id, user, paper_id],
        )
        return int(r["value"]) if r else None
