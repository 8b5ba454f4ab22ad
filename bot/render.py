"""Platform-neutral wording shared by every surface (so Slack, Telegram, Markdown agree)."""

from __future__ import annotations

import datetime as dt

from bot.models import SUMMARY_PRESENT, Digest, ScoredPaper, SummaryStatus

_MARKERS = {
    SummaryStatus.MISSING_KEY: "no summary: no LLM API key is configured",
    SummaryStatus.FAILED: "no summary yet: the LLM call failed{note}; retried on the next run",
    SummaryStatus.BUDGET: "no summary: today's LLM budget is spent; it is retried tomorrow",
    SummaryStatus.PENDING: "summary pending",
    SummaryStatus.SKIPPED: "not summarized (outside the top {top_n})",
    SummaryStatus.DISABLED: "summaries are turned off",
}


def short_authors(authors: tuple[str, ...] | list[str], limit: int = 4) -> str:
    if not authors:
        return "Unknown"
    if len(authors) <= limit:
        return ", ".join(authors)
    return ", ".join(authors[:limit]) + f", … (+{len(authors) - limit})"


def summary_marker(item: ScoredPaper, top_n: int | None = None) -> str | None:
    """A short visible note when the summary is not there (or came from the abstract only)."""
    status = item.summary_status
    if status == SummaryStatus.ABSTRACT_ONLY:
        note = f" ({item.summary_note})" if item.summary_note else ""
        return f"summarized from the abstract only{note}"
    if status in SUMMARY_PRESENT or status == SummaryStatus.DISABLED:
        return None
    template = _MARKERS.get(status, "no summary")
    note = f" ({item.summary_note})" if item.summary_note else ""
    return template.format(note=note, top_n=top_n if top_n is not None else "N")


def reasons_text(item: ScoredPaper, limit: int = 6) -> str:
    parts = [r.text for r in item.reasons[:limit]]
    if len(item.reasons) > limit:
        parts.append(f"+{len(item.reasons) - limit} more")
    return "; ".join(parts) if parts else "no keyword matched"


def day_label(day: dt.date) -> str:
    return f"{day:%a} {day.day} {day:%b %Y}"


def header_text(digest: Digest) -> str:
    n = len(digest.items)
    cats = ", ".join(digest.categories)
    noun = "paper" if n == 1 else "papers"
    return f"arXiv digest · {day_label(digest.day)} · {n} {noun} · {cats}"


def type_label(item: ScoredPaper) -> str:
    return f"{item.category or item.paper.primary_category} · {item.announce_type}"
