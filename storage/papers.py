"""Papers (one row per base id, the newest version), their announcements, and the fetch log."""

from __future__ import annotations

import datetime as dt
import json
import sqlite3
from collections.abc import Iterable, Sequence
from typing import Any

from bot.models import Announcement, Paper
from storage.base import Base, chunks, marks, now_iso, to_json
from storage.records import FetchRecord


def paper_to_row(p: Paper) -> dict[str, Any]:
    return {
        "id": p.id,
        "version": p.version,
        "title": p.title,
        "authors": to_json(p.authors),
        "categories": to_json(p.categories),
        "primary_category": p.primary_category,
        "abstract": p.abstract,
        "published": p.published,
        "updated": p.updated,
        "comment": p.comment,
        "doi": p.doi,
        "journal_ref": p.journal_ref,
    }


def row_to_paper(r: sqlite3.Row) -> Paper:
    return Paper(
        id=r["id"],
        version=r["version"],
        title=r["title"],
        authors=tuple(json.loads(r["authors"] or "[]")),
        categories=tuple(json.loads(r["categories"] or "[]")),
        abstract=r["abstract"],
        published=r["published"],
        updated=r["updated"],
        comment=r["comment"],
        doi=r["doi"],
        journal_ref=r["journal_ref"],
    )


def _fetch(r: sqlite3.Row) -> FetchRecord:
    return FetchRecord(
        id=r["id"],
        started_at=dt.datetime.fromisoformat(r["started_at"]),
        finished_at=dt.datetime.fromisoformat(r["finished_at"]),
        day=dt.date.fromisoformat(r["day"]) if r["day"] else None,
        categories=tuple((r["categories"] or "").split()),
        source=r["source"],
        status=r["status"],
        items=r["items"] or 0,
        message=r["message"] or "",
    )


#: A listing's category is wanted when it is named, or its archive is (``cs`` → ``cs.LG``).
_WANTED = (
    "(a.category IN ({q}) OR (instr(a.category, '.') > 0 "
    "AND substr(a.category, 1, instr(a.category, '.') - 1) IN ({q})))"
)


class PapersStore(Base):
    # -- papers ----------------------------------------------------------------------------
    def upsert_papers(self, papers: Iterable[Paper]) -> tuple[int, int]:
        """Insert new papers, update a paper when a newer (or equal) version arrives.

        Returns (inserted, updated).  A v2 is the same paper: it updates the row, not a new one.
        """
        batch: dict[str, Paper] = {}
        for p in papers:
            prev = batch.get(p.id)
            if prev is None or p.version >= prev.version:
                batch[p.id] = p
        if not batch:
            return 0, 0
        inserted = updated = 0
        now = now_iso()
        with self.atomic():
            existing: dict[str, sqlite3.Row] = {}
            for chunk in chunks(list(batch)):
                for r in self.db.execute(
                    "SELECT id, version, title, abstract, authors, categories, first_seen "
                    f"FROM papers WHERE id IN ({marks(chunk)})",
                    chunk,
                ).fetchall():
                    existing[r["id"]] = r
            rows = []
            for pid, p in batch.items():
                old = existing.get(pid)
                row = paper_to_row(p)
                if old is None:
                    row["first_seen"] = now
                    row["updated_at"] = now
                    rows.append(row)
                    inserted += 1
                    continue
                if p.version < old["version"]:
                    continue
                same = (
                    p.version == old["version"]
                    and row["title"] == old["title"]
                    and row["abstract"] == old["abstract"]
                    and row["authors"] == old["authors"]
                    and row["categories"] == old["categories"]
                )
                if same:
                    continue
                row["first_seen"] = old["first_seen"]
                row["updated_at"] = now
                rows.append(row)
                updated += 1
            if rows:
                self.table("papers").upsert_all(rows, pk="id", batch_size=500)
        return inserted, updated

    def get_paper(self, paper_id: str) -> Paper | None:
        r = self._one("SELECT * FROM papers WHERE id = ?", [paper_id])
        return row_to_paper(r) if r else None

    def get_papers(self, ids: Sequence[str]) -> dict[str, Paper]:
        out: dict[str, Paper] = {}
        for chunk in chunks(list(dict.fromkeys(ids))):
            for r in self._rows(f"SELECT * FROM papers WHERE id IN ({marks(chunk)})", chunk):
                out[r["id"]] = row_to_paper(r)
        return out

    def count_papers(self) -> int:
        return self._count("SELECT count(*) FROM papers")

    # -- announcements -----------------------------------------------------------------------
    def record_announcements(self, anns: Iterable[Announcement]) -> int:
        """Record (paper, day, category, type); re-recording the same triple changes nothing."""
        now = now_iso()
        rows = [
            {
                "paper_id": a.paper_id,
                "day": a.day.isoformat(),
                "category": a.category,
                "announce_type": a.announce_type,
                "version": a.version,
                "fetched_at": now,
            }
            for a in anns
        ]
        if not rows:
            return 0
        with self.atomic():
            before = self.db.execute("SELECT count(*) FROM announcements").fetchone()[0]
            self.db.conn.executemany(
                "INSERT INTO announcements (paper_id, day, category, announce_type, version, "
                "fetched_at) VALUES (:paper_id, :day, :category, :announce_type, :version, "
                ":fetched_at) ON CONFLICT(paper_id, day, category) DO UPDATE SET "
                "announce_type = excluded.announce_type, version = excluded.version "
                "WHERE announce_type != excluded.announce_type OR version != excluded.version",
                rows,
            )
            after = self.db.execute("SELECT count(*) FROM announcements").fetchone()[0]
        return int(after - before)

    def announced_on(
        self, day: dt.date, categories: Iterable[str] | None = None
    ) -> list[tuple[Paper, list[tuple[str, str]]]]:
        """Papers announced on ``day`` with their (category, announce_type) listings.

        ``categories`` may name archives (``cs``) as well as categories.
        """
        sql = (
            "SELECT p.*, a.category AS a_category, a.announce_type AS a_type "
            "FROM announcements a JOIN papers p ON p.id = a.paper_id WHERE a.day = ?"
        )
        params: list[Any] = [day.isoformat()]
        if categories is not None:
            wanted = sorted(set(categories))
            sql += " AND " + _WANTED.format(q=marks(wanted))
            params += wanted * 2
        by_id: dict[str, tuple[Paper, list[tuple[str, str]]]] = {}
        for r in self._rows(sql + " ORDER BY p.id", params):
            entry = by_id.get(r["id"])
            if entry is None:
                entry = by_id[r["id"]] = (row_to_paper(r), [])
            entry[1].append((r["a_category"], r["a_type"]))
        return list(by_id.values())

    def announcement_days(self, limit: int = 30) -> list[dt.date]:
        rows = self._rows(
            "SELECT DISTINCT day FROM announcements ORDER BY day DESC LIMIT ?", [limit]
        )
        return [dt.date.fromisoformat(r["day"]) for r in rows]

    def latest_day(self) -> dt.date | None:
        days = self.announcement_days(1)
        return days[0] if days else None

    def announcement_count(self) -> int:
        return self._count("SELECT count(*) FROM announcements")

    # -- fetch log ---------------------------------------------------------------------------
    def record_fetch(
        self,
        *,
        started_at: str,
        day: dt.date | None,
        categories: Sequence[str],
        source: str,
        status: str,
        items: int,
        message: str = "",
    ) -> None:
        with self.atomic():
            self.table("fetches").insert(
                {
                    "started_at": started_at,
                    "finished_at": now_iso(),
                    "day": day.isoformat() if day else None,
                    "categories": " ".join(categories),
                    "source": source,
                    "status": status,
                    "items": items,
                    "message": message,
                }
            )

    def last_fetch(self, status: str | None = None) -> FetchRecord | None:
        if status:
            r = self._one(
                "SELECT * FROM fetches WHERE status = ? ORDER BY id DESC LIMIT 1", [status]
            )
        else:
            r = self._one("SELECT * FROM fetches ORDER BY id DESC LIMIT 1")
        return _fetch(r) if r else None

    def fetched_days(self, since: dt.date) -> set[dt.date]:
        rows = self._rows(
            "SELECT DISTINCT day FROM fetches WHERE status IN ('ok', 'empty') AND day >= ?",
            [since.isoformat()],
        )
        return {dt.date.fromisoformat(r["day"]) for r in rows if r["day"]}

    def fetches_finished_after(self, after: str) -> list[FetchRecord]:
        """Successful fetches of an announcement day that finished at or after ``after``."""
        return [
            _fetch(r)
            for r in self._rows(
                "SELECT * FROM fetches WHERE status = 'ok' AND day IS NOT NULL "
                "AND finished_at >= ? ORDER BY id",
                [after],
            )
        ]
