"""Plain values that cross the seams between engine, storage and adapters."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any


@dataclass(frozen=True, slots=True)
class Paper:
    """One arXiv paper, keyed by its base id (``2601.19278``, ``hep-th/9901001``)."""

    id: str
    version: int
    title: str
    authors: tuple[str, ...]
    categories: tuple[str, ...]  # primary first
    abstract: str
    published: str | None = None
    updated: str | None = None
    comment: str | None = None
    doi: str | None = None
    journal_ref: str | None = None

    @property
    def primary_category(self) -> str:
        return self.categories[0] if self.categories else ""

    @property
    def versioned_id(self) -> str:
        return f"{self.id}v{self.version}"

    @property
    def url(self) -> str:
        return f"https://arxiv.org/abs/{self.id}"


@dataclass(frozen=True, slots=True)
class Announcement:
    """A paper listed on an announcement day under one category, with its announce type."""

    paper_id: str
    day: dt.date
    category: str
    announce_type: str
    version: int = 1


@dataclass(frozen=True, slots=True)
class Reason:
    """One contribution to a score, in words a reader understands."""

    kind: str  # keyword | title | exclude | learned | explore | muted | follow
    text: str
    weight: float = 0.0
    terms: tuple[str, ...] = ()

    def as_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "text": self.text, "weight": round(self.weight, 3)}


@dataclass(slots=True)
class Subscription:
    """Who receives a digest, for which categories, ranked by what."""

    id: int | None
    platform: str  # default | slack | telegram
    chat: str
    categories: tuple[str, ...]
    keywords: tuple[str, ...] = ()
    excludes: tuple[str, ...] = ()
    announce_types: tuple[str, ...] = ("new",)
    min_score: float = 0.0
    max_papers: int = 50
    title_weight: float = 0.5
    mode: str = "words"
    time: str = "09:00"
    timezone: str = "UTC"
    language: str | None = None
    active: bool = True
    muted: tuple[str, ...] = ()
    name: str = ""
    feed_token: str = ""
    deactivated_reason: str | None = None
    #: How a digest looks in the chat (see :data:`LAYOUTS`); "" = the platform's default.
    layout: str = ""

    @property
    def label(self) -> str:
        return self.name or f"{self.platform}:{self.chat}"


#: How a digest is laid out in a chat: ``thread`` — a header, then one message per paper (a
#: thread on Slack, replies on Telegram); ``compact`` — one message listing the papers with
#: numbered rating buttons (split only past the platform's message limits).
LAYOUTS = ("thread", "compact")


#: What a config file sets for its own subscription (the rest is state kept by the bot).
CONFIG_SETTINGS = (
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
)


class SummaryStatus(StrEnum):
    OK = "ok"
    CACHED = "cached"
    MISSING_KEY = "missing_key"
    FAILED = "failed"
    BUDGET = "budget"
    PENDING = "pending"
    SKIPPED = "skipped"
    ABSTRACT_ONLY = "abstract_only"
    DISABLED = "disabled"


SUMMARY_PRESENT = {SummaryStatus.OK, SummaryStatus.CACHED, SummaryStatus.ABSTRACT_ONLY}


@dataclass(slots=True)
class ScoredPaper:
    """A paper with its score for one subscription and every reason behind it."""

    paper: Paper
    score: float
    reasons: list[Reason] = field(default_factory=list)
    announce_type: str = "new"
    category: str = ""
    summary: str | None = None
    summary_status: SummaryStatus = SummaryStatus.PENDING
    summary_note: str | None = None
    summary_model: str | None = None
    explore: bool = False

    @property
    def keyword_score(self) -> float:
        return sum(r.weight for r in self.reasons if r.kind in ("keyword", "title"))


@dataclass(slots=True)
class Digest:
    subscription: Subscription
    day: dt.date
    items: list[ScoredPaper]
    total_candidates: int = 0

    @property
    def categories(self) -> tuple[str, ...]:
        return self.subscription.categories


@dataclass(frozen=True, slots=True)
class Command:
    """A chat command, already parsed out of a platform payload."""

    platform: str
    chat: str
    user: str
    name: str
    args: tuple[str, ...] = ()
    is_admin: bool = False
    is_group: bool = False
    raw: str = ""


@dataclass(frozen=True, slots=True)
class Rating:
    subscription_id: int
    user: str
    paper_id: str
    value: int  # +1 or -1


def short_authors(authors: Sequence[str], limit: int = 4) -> str:
    """``A, B, C, D, … (+3)``."""
    if not authors:
        return "Unknown"
    if len(authors) <= limit:
        return ", ".join(authors)
    return ", ".join(authors[:limit]) + f", … (+{len(authors) - limit})"


@dataclass(frozen=True, slots=True)
class Button:
    """A button under a card: ``action`` (RATE_UP, RATE_DOWN), its label, the paper."""

    action: str
    label: str
    paper_id: str
    value: int


@dataclass(frozen=True, slots=True)
class Card:
    """One paper as every surface shows it (built by :func:`bot.cards.card_for`), in this
    order: title (linked), authors, where it was listed, the score and why, then the summary
    (or the abstract) and any marker, then the buttons."""

    paper_id: str
    versioned_id: str
    url: str
    title: str  # one line
    authors: tuple[str, ...]  # one line each
    category: str  # the listing that brought it: cs.LG
    announce_type: str  # new | cross | replace | replace-cross
    also: tuple[str, ...]  # its other categories
    abstract: str  # whitespace collapsed
    score: float | None = None  # None: not shown (no subscription to score against)
    reasons: tuple[str, ...] = ()
    explore: bool = False
    summary: str | None = None  # Markdown from the LLM, as it answered
    summary_by: str | None = None
    marker: str | None = None  # why there is no summary (or only a partial one)
    buttons: tuple[Button, ...] = ()

    @property
    def type_line(self) -> str:
        return f"{self.category} · {self.announce_type}"

    def authors_short(self, limit: int = 4) -> str:
        return short_authors(self.authors, limit)

    def why(self, limit: int = 6) -> str:
        parts = list(self.reasons[:limit])
        if len(self.reasons) > limit:
            parts.append(f"+{len(self.reasons) - limit} more")
        return "; ".join(parts) if parts else "no keyword matched"


@dataclass(slots=True)
class Reply:
    """What a command handler returns; adapters decide how to send it."""

    text: str
    ephemeral: bool = False
    error: bool = False
    digest: Digest | None = None
    item: ScoredPaper | None = None
    card: Card | None = None
    #: The rating buttons as they should now read (after a 👍/👎).
    buttons: tuple[Button, ...] = ()
    #: A message this reply belongs under (e.g. the digest's header), when there is one.
    reply_to: str | None = None
    data: dict[str, Any] = field(default_factory=dict)
