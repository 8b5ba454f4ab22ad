"""What storage verbs return besides the plain models: typed rows, never raw dicts."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class FetchRecord:
    """One fetch of arXiv (RSS, or an API backfill of a missed day)."""

    id: int
    started_at: dt.datetime
    finished_at: dt.datetime
    day: dt.date | None
    categories: tuple[str, ...]
    source: str  # rss | api
    status: str  # ok | empty | error
    items: int
    message: str


@dataclass(frozen=True, slots=True)
class LedgerRow:
    """One planned message of a subscription's day: the header (paper_id "") or a paper."""

    subscription_id: int
    day: dt.date
    paper_id: str
    position: int
    state: str  # pending | sending | sent | skipped
    message_id: str | None
    thread_id: str | None
    attempts: int
    error: str | None
    updated_at: str
    layout: str = "thread"  # what the day's plan was made for: thread | compact


@dataclass(frozen=True, slots=True)
class Unfinished:
    """A subscription's day with ledger rows still pending or in flight."""

    subscription_id: int
    day: dt.date
    remaining: int
    ambiguous: int  # rows left "sending" by a crash


@dataclass(frozen=True, slots=True)
class SummaryRecord:
    """A cached summary (or the last failed attempt at one) under its cache key."""

    key: str
    paper_id: str
    version: int
    model: str
    prompt_hash: str
    language: str
    source: str
    status: str  # ok | fallback | failed | budget | missing_key
    used_source: str | None
    text: str | None
    error: str | None
    attempts: int
    tokens_in: int
    tokens_out: int


@dataclass(frozen=True, slots=True)
class UsageTotals:
    calls: int
    tokens_in: int
    tokens_out: int
    cost: float


@dataclass(frozen=True, slots=True)
class UsageRow:
    day: str
    model: str
    calls: int
    ok_calls: int
    tokens_in: int
    tokens_out: int
    cost: float


@dataclass(frozen=True, slots=True)
class RatingRecord:
    subscription_id: int
    subscription: str  # its label: name, or platform:chat
    user: str
    paper_id: str
    title: str | None
    value: int
    at: str
    source: str = "button"  # button (👍/👎) | like (/like) | import (a library file)


@dataclass(frozen=True, slots=True)
class JobRecord:
    id: str
    next_run_time: float | None
    job_state: bytes


@dataclass(frozen=True, slots=True)
class FollowRecord:
    """An author a subscription follows: their new papers always make its digest."""

    subscription_id: int
    key: str  # the normalised name (bot.authors.name_key)
    name: str  # as typed
    added_by: str
    at: str
