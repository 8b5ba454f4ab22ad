"""Schema, as sqlite-utils migrations: append new steps, never edit an applied one."""

from __future__ import annotations

from sqlite_utils import Database
from sqlite_utils.migrations import Migrations

migrations = Migrations("arxiv-herald")


@migrations()
def m001_papers(db: Database) -> None:
    db.table("papers").create(
        {
            "id": str,
            "version": int,
            "title": str,
            "authors": str,  # JSON list
            "categories": str,  # JSON list, primary first
            "primary_category": str,
            "abstract": str,
            "published": str,
            "updated": str,
            "comment": str,
            "doi": str,
            "journal_ref": str,
            "first_seen": str,
            "updated_at": str,
        },
        pk="id",
        not_null={"version", "title", "abstract"},
    )
    db.table("announcements").create(
        {
            "paper_id": str,
            "day": str,
            "category": str,
            "announce_type": str,
            "version": int,
            "fetched_at": str,
        },
        pk=("paper_id", "day", "category"),
        foreign_keys=[("paper_id", "papers", "id")],
    )
    db.table("announcements").create_index(["day", "category"])
    db.table("fetches").create(
        {
            "id": int,
            "started_at": str,
            "finished_at": str,
            "day": str,
            "categories": str,
            "source": str,
            "status": str,
            "items": int,
            "message": str,
        },
        pk="id",
    )


@migrations()
def m002_subscriptions(db: Database) -> None:
    db.table("subscriptions").create(
        {
            "id": int,
            "platform": str,
            "chat": str,
            "name": str,
            "categories": str,
            "keywords": str,
            "excludes": str,
            "announce_types": str,
            "min_score": float,
            "max_papers": int,
            "title_weight": float,
            "mode": str,
            "time": str,
            "timezone": str,
            "language": str,
            "active": int,
            "muted": str,
            "feed_token": str,
            "deactivated_reason": str,
            "created_at": str,
            "updated_at": str,
        },
        pk="id",
        defaults={"active": 1, "muted": "[]"},
    )
    db.table("subscriptions").create_index(["platform", "chat"], unique=True)
    db.table("subscriptions").create_index(["feed_token"], unique=True)


@migrations()
def m003_summaries_usage(db: Database) -> None:
    db.table("summaries").create(
        {
            "key": str,
            "paper_id": str,
            "version": int,
            "model": str,
            "prompt_hash": str,
            "language": str,
            "source": str,
            "status": str,  # ok | failed | budget | missing_key
            "used_source": str,  # what actually went in: abstract | fulltext
            "text": str,
            "error": str,
            "attempts": int,
            "tokens_in": int,
            "tokens_out": int,
            "created_at": str,
            "updated_at": str,
        },
        pk="key",
    )
    db.table("summaries").create_index(["paper_id"])
    db.table("llm_usage").create(
        {
            "id": int,
            "at": str,
            "day": str,
            "model": str,
            "paper_id": str,
            "tokens_in": int,
            "tokens_out": int,
            "cost": float,
            "ok": int,
            "error": str,
        },
        pk="id",
    )
    db.table("llm_usage").create_index(["day"])


@migrations()
def m004_ratings_deliveries(db: Database) -> None:
    db.table("ratings").create(
        {
            "subscription_id": int,
            "user": str,
            "paper_id": str,
            "value": int,
            "at": str,
        },
        pk=("subscription_id", "user", "paper_id"),
    )
    db.table("ratings").create_index(["paper_id"])
    db.table("deliveries").create(
        {
            "subscription_id": int,
            "day": str,
            "paper_id": str,  # "" is the day's header message
            "position": int,
            "state": str,  # pending | sending | sent | failed | skipped
            "message_id": str,
            "thread_id": str,
            "attempts": int,
            "error": str,
            "updated_at": str,
        },
        pk=("subscription_id", "day", "paper_id"),
    )
    db.table("deliveries").create_index(["state"])
    db.table("deliveries").create_index(["subscription_id", "paper_id"])


@migrations()
def m005_meta_jobs(db: Database) -> None:
    db.table("meta").create({"key": str, "value": str}, pk="key")
    db.table("scheduler_jobs").create(
        {"id": str, "next_run_time": float, "job_state": bytes},
        pk="id",
    )
    db.table("scheduler_jobs").create_index(["next_run_time"])


@migrations()
def m006_digest_runs(db: Database) -> None:
    # One row per (subscription, announcement day) once that day's digest is settled: fully
    # delivered, empty (nothing matched), or skipped.  Scheduling reads it to know what is due.
    db.table("digest_runs").create(
        {"subscription_id": int, "day": str, "outcome": str, "papers": int, "finished_at": str},
        pk=("subscription_id", "day"),
    )


@migrations()
def m007_chat_marks(db: Database) -> None:
    # The newest message id seen in a chat outside the ledger (commands, their answers): where
    # a platform without history (Telegram) starts looking for a message a crash left unsure.
    db.table("chat_marks").create(
        {"platform": str, "chat": str, "message_id": int}, pk=("platform", "chat")
    )


@migrations()
def m300_layouts(db: Database) -> None:
    # A chat's digest layout (thread | compact; NULL: its platform's default), and the layout
    # each day's plan was made for, so a delivery resumed after a crash (or after the chat
    # changed its layout) sends and looks for its messages as they were planned.
    db.table("subscriptions").add_column("layout", str)
    db.table("deliveries").add_column("layout", str)
