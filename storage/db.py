"""The only code that touches SQLite: narrow verbs over a sqlite-utils Database.

Every write is idempotent (upserts keyed by natural keys) and user text only ever travels as
query parameters.  One connection is shared by the threads of a process behind a lock; WAL
lets a CLI command read while ``herald serve`` writes.
"""

from __future__ import annotations

import datetime as dt
import json
import secrets
import sqlite3
import threading
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from typing import Any

from sqlite_utils import Database

from bot.models import Announcement, Paper, Rating, Subscription
from storage.migrations import migrations


def _now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds")


def _j(value: Iterable[str]) -> str:
    return json.dumps(list(value), ensure_ascii=False)


def paper_to_row(p: Paper) -> dict[str, Any]:
    return {
        "id": p.id,
        "version": p.version,
        "title": p.title,
        "authors": _j(p.authors),
        "categories": _j(p.categories),
        "primary_category": p.primary_category,
        "abstract": p.abstract,
        "published": p.published,
        "updated": p.updated,
        "comment": p.comment,
        "doi": p.doi,
        "journal_ref": p.journal_ref,
    }


def row_to_paper(r: dict[str, Any] | sqlite3.Row) -> Paper:
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


_SUB_LISTS = ("categories", "keywords", "excludes", "announce_types", "muted")
_SUB_FIELDS = [
    "platform",
    "chat",
    "name",
    "categories",
    "keywords",
    "excludes",
    "announce_types",
    "min_score",
    "max_papers",
    "title_weight",
    "mode",
    "time",
    "timezone",
    "language",
    "active",
    "muted",
    "feed_token",
    "deactivated_reason",
]


def _sub_to_row(s: Subscription) -> dict[str, Any]:
    row: dict[str, Any] = {}
    for f in _SUB_FIELDS:
        v = getattr(s, f)
        row[f] = _j(v) if f in _SUB_LISTS else (int(v) if f == "active" else v)
    return row


def _row_to_sub(r: dict[str, Any]) -> Subscription:
    kw: dict[str, Any] = {}
    for f in _SUB_FIELDS:
        v = r[f]
        if f in _SUB_LISTS:
            v = tuple(json.loads(v or "[]"))
        elif f == "active":
            v = bool(v)
        kw[f] = v
    return Subscription(id=r["id"], **kw)


class Store:
    """SQLite-backed storage for everything arxiv-herald remembers."""

    def __init__(self, path: str | Path = ":memory:") -> None:
        self.path = str(path)
        if self.path != ":memory:":
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(self.path, check_same_thread=False, timeout=30)
        conn.row_factory = sqlite3.Row
        self.db = Database(conn)
        self._lock = threading.RLock()
        with self._lock:
            if self.path != ":memory:":
                self.db.enable_wal()
                # In WAL mode NORMAL still survives a process crash (SIGKILL) with every
                # committed ledger write; only an OS crash could lose the last few.  FULL
                # costs an fsync per write, ~3 ms on the event loop per delivered message.
                self.db.execute("PRAGMA synchronous = NORMAL")
            self.db.execute("PRAGMA busy_timeout = 30000")
            self.db.execute("PRAGMA foreign_keys = ON")
            # One write transaction around the whole check-and-apply: two processes starting
            # on a fresh file must not both see a migration as pending.
            with self.atomic():
                migrations.apply(self.db)

    def close(self) -> None:
        with self._lock:
            self.db.close()

    @contextmanager
    def atomic(self) -> Iterator[None]:
        """A write transaction, taken with BEGIN IMMEDIATE (nested: a savepoint).

        A deferred transaction that reads and then writes fails at once with "database is
        locked" when another process wrote in between; IMMEDIATE takes the write lock first
        (waiting up to the busy timeout), so concurrent writers queue instead of failing.
        """
        with self._lock:
            conn = self.db.conn
            if conn.in_transaction:
                with self.db.atomic():
                    yield
                return
            conn.execute("BEGIN IMMEDIATE")
            try:
                yield
            except BaseException:
                conn.rollback()
                raise
            conn.execute("COMMIT")

    def _rows(self, sql: str, params: Sequence[Any] | dict[str, Any] = ()) -> list[dict[str, Any]]:
        with self._lock:
            return [dict(r) for r in self.db.execute(sql, params).fetchall()]

    def _one(self, sql: str, params: Sequence[Any] | dict[str, Any] = ()) -> dict[str, Any] | None:
        rows = self._rows(sql, params)
        return rows[0] if rows else None

    def healthy(self) -> bool:
        try:
            with self._lock:
                self.db.execute("SELECT count(*) FROM papers").fetchone()
            return True
        except sqlite3.Error:
            return False

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
        now = _now()
        with self.atomic():
            existing: dict[str, dict[str, Any]] = {}
            ids = list(batch)
            for i in range(0, len(ids), 500):
                chunk = ids[i : i + 500]
                q = ",".join("?" * len(chunk))
                for r in self.db.execute(
                    f"SELECT id, version, title, abstract, authors, categories, first_seen "
                    f"FROM papers WHERE id IN ({q})",
                    chunk,
                ).fetchall():
                    existing[r["id"]] = dict(r)
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
                self.db.table("papers").upsert_all(rows, pk="id", batch_size=500)
        return inserted, updated

    def get_paper(self, paper_id: str) -> Paper | None:
        r = self._one("SELECT * FROM papers WHERE id = ?", [paper_id])
        return row_to_paper(r) if r else None

    def get_papers(self, ids: Sequence[str]) -> dict[str, Paper]:
        out: dict[str, Paper] = {}
        ids = list(dict.fromkeys(ids))
        for i in range(0, len(ids), 500):
            chunk = ids[i : i + 500]
            q = ",".join("?" * len(chunk))
            for r in self._rows(f"SELECT * FROM papers WHERE id IN ({q})", chunk):
                out[r["id"]] = row_to_paper(r)
        return out

    def count_papers(self) -> int:
        r = self._one("SELECT count(*) AS n FROM papers")
        return int(r["n"]) if r else 0

    # -- announcements -----------------------------------------------------------------------
    def record_announcements(self, anns: Iterable[Announcement]) -> int:
        """Record (paper, day, category, type); re-recording the same triple changes nothing."""
        now = _now()
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
        return after - before

    def announced_on(
        self, day: dt.date, categories: Iterable[str] | None = None
    ) -> list[tuple[Paper, list[tuple[str, str]]]]:
        """Papers announced on ``day`` with their (category, announce_type) listings.

        ``categories`` may name archives (``cs``) as well as categories.
        """
        rows = self._rows(
            "SELECT p.*, a.category AS a_category, a.announce_type AS a_type "
            "FROM announcements a JOIN papers p ON p.id = a.paper_id "
            "WHERE a.day = ? ORDER BY p.id",
            [day.isoformat()],
        )
        wanted = set(categories) if categories is not None else None
        by_id: dict[str, tuple[Paper, list[tuple[str, str]]]] = {}
        from bot.categories import in_category_set

        for r in rows:
            if wanted is not None and not in_category_set(r["a_category"], wanted):
                continue
            entry = by_id.get(r["id"])
            if entry is None:
                entry = (row_to_paper(r), [])
                by_id[r["id"]] = entry
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
        r = self._one("SELECT count(*) AS n FROM announcements")
        return int(r["n"]) if r else 0

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
            self.db.table("fetches").insert(
                {
                    "started_at": started_at,
                    "finished_at": _now(),
                    "day": day.isoformat() if day else None,
                    "categories": " ".join(categories),
                    "source": source,
                    "status": status,
                    "items": items,
                    "message": message,
                }
            )

    def last_fetch(self, status: str | None = None) -> dict[str, Any] | None:
        if status:
            return self._one(
                "SELECT * FROM fetches WHERE status = ? ORDER BY id DESC LIMIT 1", [status]
            )
        return self._one("SELECT * FROM fetches ORDER BY id DESC LIMIT 1")

    def fetched_days(self, since: dt.date) -> set[dt.date]:
        rows = self._rows(
            "SELECT DISTINCT day FROM fetches WHERE status IN ('ok', 'empty') AND day >= ?",
            [since.isoformat()],
        )
        return {dt.date.fromisoformat(r["day"]) for r in rows if r["day"]}

    # -- meta --------------------------------------------------------------------------------
    def get_meta(self, key: str) -> str | None:
        r = self._one("SELECT value FROM meta WHERE key = ?", [key])
        return r["value"] if r else None

    def set_meta(self, key: str, value: str) -> None:
        with self.atomic():
            self.db.table("meta").upsert({"key": key, "value": value}, pk="key")

    # -- subscriptions -----------------------------------------------------------------------
    def upsert_subscription(self, sub: Subscription) -> Subscription:
        """Create or replace the subscription for (platform, chat); returns it with its id."""
        now = _now()
        with self.atomic():
            old = self.db.execute(
                "SELECT id, feed_token, created_at FROM subscriptions "
                "WHERE platform = ? AND chat = ?",
                [sub.platform, sub.chat],
            ).fetchone()
            token = (
                sub.feed_token or (old["feed_token"] if old else "") or secrets.token_urlsafe(18)
            )
            sub = replace(sub, feed_token=token)
            row = _sub_to_row(sub)
            row["updated_at"] = now
            if old:
                sid = old["id"]
                self.db.table("subscriptions").update(sid, row)
            else:
                row["created_at"] = now
                sid = self.db.table("subscriptions").insert(row).last_pk
        return replace(sub, id=int(sid))

    def get_subscription(self, platform: str, chat: str) -> Subscription | None:
        r = self._one(
            "SELECT * FROM subscriptions WHERE platform = ? AND chat = ?", [platform, chat]
        )
        return _row_to_sub(r) if r else None

    def subscription_by_id(self, sub_id: int) -> Subscription | None:
        r = self._one("SELECT * FROM subscriptions WHERE id = ?", [sub_id])
        return _row_to_sub(r) if r else None

    def subscription_by_feed_token(self, token: str) -> Subscription | None:
        r = self._one("SELECT * FROM subscriptions WHERE feed_token = ?", [token])
        return _row_to_sub(r) if r else None

    def list_subscriptions(
        self, *, active_only: bool = True, platform: str | None = None
    ) -> list[Subscription]:
        sql = "SELECT * FROM subscriptions WHERE 1=1"
        params: list[Any] = []
        if active_only:
            sql += " AND active = 1"
        if platform:
            sql += " AND platform = ?"
            params.append(platform)
        return [_row_to_sub(r) for r in self._rows(sql + " ORDER BY id", params)]

    def update_subscription(self, sub_id: int, **fields: Any) -> Subscription:
        bad = set(fields) - set(_SUB_FIELDS)
        if bad:
            raise ValueError(f"unknown subscription fields: {sorted(bad)}")
        row: dict[str, Any] = {}
        for f, v in fields.items():
            row[f] = _j(v) if f in _SUB_LISTS else (int(v) if f == "active" else v)
        row["updated_at"] = _now()
        with self.atomic():
            self.db.table("subscriptions").update(sub_id, row)
        sub = self.subscription_by_id(sub_id)
        assert sub is not None
        return sub

    def deactivate_subscription(self, sub_id: int, reason: str) -> None:
        self.update_subscription(sub_id, active=False, deactivated_reason=reason)

    # -- summaries ---------------------------------------------------------------------------
    def get_summary(self, key: str) -> dict[str, Any] | None:
        return self._one("SELECT * FROM summaries WHERE key = ?", [key])

    def get_summaries(self, keys: Sequence[str]) -> dict[str, dict[str, Any]]:
        out: dict[str, dict[str, Any]] = {}
        keys = list(dict.fromkeys(keys))
        for i in range(0, len(keys), 500):
            chunk = keys[i : i + 500]
            q = ",".join("?" * len(chunk))
            for r in self._rows(f"SELECT * FROM summaries WHERE key IN ({q})", chunk):
                out[r["key"]] = r
        return out

    def save_summary(self, row: dict[str, Any]) -> None:
        now = _now()
        with self.atomic():
            old = self.db.execute(
                "SELECT created_at, attempts FROM summaries WHERE key = ?", [row["key"]]
            ).fetchone()
            row = dict(row)
            row["created_at"] = old["created_at"] if old else now
            row["attempts"] = (old["attempts"] or 0) + 1 if old else 1
            row["updated_at"] = now
            self.db.table("summaries").upsert(row, pk="key")

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
            self.db.table("llm_usage").insert(
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

    def usage_on(self, day: dt.date) -> dict[str, float]:
        r = self._one(
            "SELECT count(*) AS calls, coalesce(sum(tokens_in), 0) AS tokens_in, "
            "coalesce(sum(tokens_out), 0) AS tokens_out, coalesce(sum(cost), 0) AS cost "
            "FROM llm_usage WHERE day = ?",
            [day.isoformat()],
        )
        assert r is not None
        return {k: float(v) for k, v in r.items()}

    def usage_by_day(self, since: dt.date) -> list[dict[str, Any]]:
        return self._rows(
            "SELECT day, model, count(*) AS calls, sum(ok) AS ok_calls, "
            "sum(tokens_in) AS tokens_in, sum(tokens_out) AS tokens_out, sum(cost) AS cost "
            "FROM llm_usage WHERE day >= ? GROUP BY day, model ORDER BY day, model",
            [since.isoformat()],
        )

    # -- ratings -----------------------------------------------------------------------------
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
                self.db.table("ratings").upsert(
                    {
                        "subscription_id": rating.subscription_id,
                        "user": rating.user,
                        "paper_id": rating.paper_id,
                        "value": rating.value,
                        "at": _now(),
                    },
                    pk=("subscription_id", "user", "paper_id"),
                )
        return prev, rating.value

    def ratings(self, subscription_id: int | None = None) -> list[dict[str, Any]]:
        sql = (
            "SELECT r.*, s.platform, s.chat, s.name, p.title FROM ratings r "
            "JOIN subscriptions s ON s.id = r.subscription_id "
            "LEFT JOIN papers p ON p.id = r.paper_id"
        )
        params: list[Any] = []
        if subscription_id is not None:
            sql += " WHERE r.subscription_id = ?"
            params.append(subscription_id)
        return self._rows(sql + " ORDER BY r.at, r.paper_id", params)

    def rating_count(self, subscription_id: int) -> int:
        r = self._one(
            "SELECT count(*) AS n FROM ratings WHERE subscription_id = ?", [subscription_id]
        )
        return int(r["n"]) if r else 0

    def tally(self, subscription_id: int, paper_id: str) -> tuple[int, int]:
        r = self._one(
            "SELECT coalesce(sum(value > 0), 0) AS up, coalesce(sum(value < 0), 0) AS down "
            "FROM ratings WHERE subscription_id = ? AND paper_id = ?",
            [subscription_id, paper_id],
        )
        assert r is not None
        return int(r["up"]), int(r["down"])

    def user_vote(self, subscription_id: int, user: str, paper_id: str) -> int | None:
        r = self._one(
            "SELECT value FROM ratings WHERE subscription_id = ? AND user = ? AND paper_id = ?",
            [subscription_id, user, paper_id],
        )
        return r["value"] if r else None

    # -- deliveries (the ledger) -------------------------------------------------------------
    def plan_deliveries(self, subscription_id: int, day: dt.date, paper_ids: Sequence[str]) -> None:
        """Write the day's plan (header + papers) as pending rows, once: a plan that exists is
        kept as it is, so a resumed delivery sends what was planned, not a re-ranked list."""
        now = _now()
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
                self.db.table("deliveries").insert_all(
                    rows, pk=("subscription_id", "day", "paper_id"), ignore=True
                )

    def deliveries(self, subscription_id: int, day: dt.date) -> list[dict[str, Any]]:
        return self._rows(
            "SELECT * FROM deliveries WHERE subscription_id = ? AND day = ? ORDER BY position",
            [subscription_id, day.isoformat()],
        )

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
        params: list[Any] = [state, _now()]
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
        rows = self._rows(sql, params)
        return {r["paper_id"] for r in rows}

    def unfinished_deliveries(self) -> list[dict[str, Any]]:
        """Days with rows still pending or sending, per subscription (for catch-up)."""
        return self._rows(
            "SELECT subscription_id, day, count(*) AS remaining, "
            "sum(state = 'sending') AS ambiguous FROM deliveries "
            "WHERE state IN ('pending', 'sending') GROUP BY subscription_id, day "
            "ORDER BY day, subscription_id"
        )

    # -- digest runs (what the scheduler has settled) ---------------------------------------
    def mark_done(self, subscription_id: int, day: dt.date, outcome: str, papers: int) -> None:
        with self.atomic():
            self.db.table("digest_runs").upsert(
                {
                    "subscription_id": subscription_id,
                    "day": day.isoformat(),
                    "outcome": outcome,
                    "papers": papers,
                    "finished_at": _now(),
                },
                pk=("subscription_id", "day"),
            )

    def done_days(self, subscription_id: int) -> set[dt.date]:
        rows = self._rows(
            "SELECT day FROM digest_runs WHERE subscription_id = ?", [subscription_id]
        )
        return {dt.date.fromisoformat(r["day"]) for r in rows}

    def subscription_created_at(self, sub_id: int) -> str | None:
        r = self._one("SELECT created_at FROM subscriptions WHERE id = ?", [sub_id])
        return r["created_at"] if r else None

    def fetched_days_after(self, after: str, categories: Iterable[str]) -> set[dt.date]:
        """Announcement days whose successful fetch covering ``categories`` finished after
        the given ISO time."""
        rows = self._rows(
            "SELECT day, categories FROM fetches WHERE status = 'ok' AND day IS NOT NULL "
            "AND finished_at >= ?",
            [after],
        )
        from bot.categories import in_category_set

        cats = list(categories)
        covered: dict[str, set[str]] = {}
        for r in rows:
            covered.setdefault(r["day"], set()).update((r["categories"] or "").split())
        return {
            dt.date.fromisoformat(day)
            for day, have in covered.items()
            if any(in_category_set(c, have) for c in cats)
        }

    def deactivated_subscriptions(self) -> list[Subscription]:
        return [
            _row_to_sub(r)
            for r in self._rows(
                "SELECT * FROM subscriptions WHERE active = 0 AND deactivated_reason IS NOT NULL "
                "ORDER BY updated_at DESC"
            )
        ]

    def pending_delivery_count(self) -> int:
        r = self._one("SELECT count(*) AS n FROM deliveries WHERE state IN ('pending', 'sending')")
        return int(r["n"]) if r else 0

    # -- scheduler job store (used by storage.jobstore) -------------------------------------
    def job_rows(self, due_before: float | None = None) -> list[dict[str, Any]]:
        if due_before is None:
            return self._rows("SELECT * FROM scheduler_jobs ORDER BY next_run_time")
        return self._rows(
            "SELECT * FROM scheduler_jobs WHERE next_run_time IS NOT NULL AND "
            "next_run_time <= ? ORDER BY next_run_time",
            [due_before],
        )

    def job_row(self, job_id: str) -> dict[str, Any] | None:
        return self._one("SELECT * FROM scheduler_jobs WHERE id = ?", [job_id])

    def next_job_time(self) -> float | None:
        r = self._one(
            "SELECT min(next_run_time) AS t FROM scheduler_jobs WHERE next_run_time IS NOT NULL"
        )
        return r["t"] if r else None

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
            self.db.table("scheduler_jobs").upsert(
                {"id": job_id, "next_run_time": next_run_time, "job_state": state}, pk="id"
            )
        return True

    def delete_job(self, job_id: str) -> bool:
        with self.atomic():
            cur = self.db.execute("DELETE FROM scheduler_jobs WHERE id = ?", [job_id])
        return cur.rowcount > 0

    def delete_all_jobs(self) -> None:
        with self.atomic():
            self.db.execute("DELETE FROM scheduler_jobs")
