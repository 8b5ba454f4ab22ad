"""A chat's profile beyond 👍/👎 presses: papers it liked or imported, authors it follows.

A like (``/like``) or an imported library entry is stored as an ordinary 👍 rating by the person
who gave it, marked with its ``source`` (``like`` | ``import``; a button press is ``button``):
learning counts it like any 👍, and the ranking never delivers such a paper later.
"""

from __future__ import annotations

from collections.abc import Sequence

from storage.base import Base, chunks, marks, now_iso
from storage.records import FollowRecord

#: Rating sources that seed a profile (as opposed to a press under a delivered paper).
SEED_SOURCES = ("like", "import")


class ProfileStore(Base):
    # -- likes and imports ---------------------------------------------------------------------
    def record_seed(
        self, subscription_id: int, user: str, paper_ids: Sequence[str], source: str
    ) -> tuple[list[str], list[str]]:
        """``user`` likes these papers (``source``: like | import), as 👍 ratings.

        Returns (newly liked, already 👍 before).  A 👎 the person gave earlier is turned into
        the 👍 they give now; an existing 👍 keeps its time and source.
        """
        if source not in SEED_SOURCES:
            raise ValueError(f"not a seed source: {source!r}")
        ids = list(dict.fromkeys(paper_ids))
        added: list[str] = []
        already: list[str] = []
        now = now_iso()
        with self.atomic():
            have: dict[str, int] = {}
            for chunk in chunks(ids):
                for r in self.db.execute(
                    "SELECT paper_id, value FROM ratings WHERE subscription_id = ? AND user = ? "
                    f"AND paper_id IN ({marks(chunk)})",
                    [subscription_id, user, *chunk],
                ).fetchall():
                    have[r["paper_id"]] = int(r["value"])
            rows = []
            for pid in ids:
                if have.get(pid, 0) > 0:
                    already.append(pid)
                    continue
                added.append(pid)
                rows.append(
                    {
                        "subscription_id": subscription_id,
                        "user": user,
                        "paper_id": pid,
                        "value": 1,
                        "at": now,
                        "source": source,
                    }
                )
            if rows:
                self.table("ratings").upsert_all(rows, pk=("subscription_id", "user", "paper_id"))
        return added, already

    def seed_paper_ids(self, subscription_id: int) -> set[str]:
        """Papers someone in this subscription liked or imported (never to be delivered)."""
        return self.seed_papers_of([subscription_id]).get(subscription_id, set())

    def seed_papers_of(self, subscription_ids: Sequence[int]) -> dict[int, set[str]]:
        """:meth:`seed_paper_ids` of many subscriptions in one pass (only those with any)."""
        out: dict[int, set[str]] = {}
        for chunk in chunks(list(dict.fromkeys(subscription_ids))):
            for r in self._rows(
                "SELECT DISTINCT subscription_id, paper_id FROM ratings "
                f"WHERE subscription_id IN ({marks(chunk)}) AND source IN ({marks(SEED_SOURCES)})",
                [*chunk, *SEED_SOURCES],
            ):
                out.setdefault(r["subscription_id"], set()).add(r["paper_id"])
        return out

    def rating_sources(self, subscription_id: int) -> dict[str, int]:
        """How many ratings came in each way: ``{"button": 5, "like": 12, "import": 30}``."""
        rows = self._rows(
            "SELECT source, count(*) FROM ratings WHERE subscription_id = ? GROUP BY source",
            [subscription_id],
        )
        return {str(r[0]): int(r[1]) for r in rows}

    # -- followed authors ----------------------------------------------------------------------
    def add_follow(self, subscription_id: int, key: str, name: str, user: str) -> bool:
        """Follow an author; False when the subscription already follows them."""
        with self.atomic():
            cur = self.db.execute(
                "INSERT OR IGNORE INTO follows (subscription_id, key, name, added_by, at) "
                "VALUES (?, ?, ?, ?, ?)",
                [subscription_id, key, name, user, now_iso()],
            )
            return cur.rowcount > 0

    def remove_follows(self, subscription_id: int, keys: Sequence[str]) -> int:
        """Stop following these authors (by key); returns how many were followed."""
        if not keys:
            return 0
        with self.atomic():
            cur = self.db.execute(
                f"DELETE FROM follows WHERE subscription_id = ? AND key IN ({marks(keys)})",
                [subscription_id, *keys],
            )
            return cur.rowcount

    def follows(self, subscription_id: int) -> list[FollowRecord]:
        return self.follows_of([subscription_id]).get(subscription_id, [])

    def follows_of(self, subscription_ids: Sequence[int]) -> dict[int, list[FollowRecord]]:
        """The followed authors of each of these subscriptions (only those that follow any)."""
        out: dict[int, list[FollowRecord]] = {}
        for chunk in chunks(list(dict.fromkeys(subscription_ids))):
            for r in self._rows(
                f"SELECT * FROM follows WHERE subscription_id IN ({marks(chunk)}) "
                "ORDER BY subscription_id, rowid",
                chunk,
            ):
                out.setdefault(r["subscription_id"], []).append(
                    FollowRecord(r["subscription_id"], r["key"], r["name"], r["added_by"], r["at"])
                )
        return out
