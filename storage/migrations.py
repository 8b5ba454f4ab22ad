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
def m200_seed_sources_follows(db: Database) -> None:
    # How a rating came in: a 👍/👎 press ("button"), a /like ("like") or a library import
    # ("import").  Likes and imports are ordinary 👍 for learning, but never delivered later.
    db.table("ratings").add_column("source", str, not_null_default="button")
    db.table("follows").create(
        {
            "subscription_id": int,
            "key": str,  # the normalised name: one follow per person, however it was typed
            "name": str,  # as the person typed it
            "added_by": str,
            "at": str,
        },
        pk=("subscription_id", "key"),
    )


@migrations()
def m400_ask(db: Database) -> None:
    # Ask the paper: each paper version's full text (pages as compressed JSON), answers cached
    # per (paper version, model, prompt, normalised question), the turns of each conversation
    # (platform, chat, thread), and which paper an answer message is about.
    db.table("paper_texts").create(
        {
            "paper_id": str,
            "version": int,
            "pages": bytes,
            "page_count": int,
            "chars": int,
            "pdf_bytes": int,
            "created_at": str,
        },
        pk=("paper_id", "version"),
    )
    db.table("ask_answers").create(
        {
            "key": str,
            "paper_id": str,
            "version": int,
            "model": str,
            "question": str,
            "text": str,
            "found": int,
            "sources": str,  # JSON [[page, quote], ...]
            "tokens_in": int,
            "tokens_out": int,
            "created_at": str,
        },
        pk="key",
    )
    db.table("ask_turns").create(
        {
            "id": int,
            "platform": str,
            "chat": str,
            "thread": str,
            "user": str,
            "paper_id": str,
            "question": str,
            "answer": str,
            "day": str,
            "at": str,
        },
        pk="id",
    )
    db.table("ask_turns").create_index(["platform", "chat", "thread"])
    db.table("ask_turns").create_index(["platform", "chat", "day"])
    db.table("paper_messages").create(
        {"platform": str, "chat": str, "message_id": str, "paper_id": str, "thread": str},
        pk=("platform", "chat", "message_id"),
    )
    db.table("deliveries").create_index(["message_id"], if_not_exists=True)


@migrations()
def m100_slack_installations(db: Database) -> None:
    # Apps installed into other workspaces through OAuth ("Add to Slack"): one row per
    # (platform, workspace), tokens cleared (and removed_at set) once the app leaves.
    db.table("installations").create(
        {
            "platform": str,
            "workspace": str,
            "team_id": str,
            "team_name": str,
            "enterprise_id": str,
            "enterprise_name": str,
            "enterprise_url": str,
            "is_enterprise_install": int,
            "app_id": str,
            "installer_id": str,
            "bot_token": str,
            "bot_id": str,
            "bot_user_id": str,
            "bot_scopes": str,
            "bot_refresh_token": str,
            "bot_token_expires_at": int,
            "user_token": str,
            "user_scopes": str,
            "user_refresh_token": str,
            "user_token_expires_at": int,
            "token_type": str,
            "incoming_webhook_url": str,
            "incoming_webhook_channel": str,
            "incoming_webhook_channel_id": str,
            "incoming_webhook_configuration_url": str,
            "installed_at": float,
            "removed_at": str,
            "removed_reason": str,
        },
        pk=("platform", "workspace"),
        not_null={"is_enterprise_install", "installed_at"},
        defaults={"is_enterprise_install": 0, "installed_at": 0.0},
    )
    # The one-time `state` of each OAuth flow begun on the install page.
    db.table("oauth_states").create(
        {"state": str, "platform": str, "expires_at": float}, pk="state"
    )
    db.table("oauth_states").create_index(["expires_at"])


@migrations()
def m300_layouts(db: Database) -> None:
    # A chat's digest layout (thread | compact; NULL: its platform's default), and the layout
    # each day's plan was made for, so a delivery resumed after a crash (or after the chat
    # changed its layout) sends and looks for its messages as they were planned.
    db.table("subscriptions").add_column("layout", str)
    db.table("deliveries").add_column("layout", str)
