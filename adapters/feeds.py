"""RSS 2.0 and Atom feeds of digests (feedgen), like the original rss_service's items."""

from __future__ import annotations

import datetime as dt
import html
import re
from collections.abc import Sequence

from feedgen.feed import FeedGenerator

from bot import __version__
from bot.models import Card

# What XML forbids, plus C1 controls (feed readers turn \x80 into "€").
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\ufffe\uffff]")


def _x(text: str) -> str:
    """Text safe for XML (feedgen escapes markup, but lxml rejects control characters)."""
    return _CONTROL.sub("", text)


def item_html(card: Card) -> str:
    e = html.escape
    parts = [
        f"<strong>Authors:</strong> {e(', '.join(card.authors) or 'Unknown')}<br/>",
        f"<strong>Category:</strong> {e(card.category)}<br/>",
        f"<strong>Score:</strong> {card.score or 0:.1f} ({e(card.why())})<br/>",
        f"<strong>Type:</strong> {e(card.announce_type)}<br/>",
        f"<strong>Arxiv ID:</strong> {e(card.versioned_id)}<br/>",
        f"<strong>Abstract:</strong> {e(card.abstract)}",
    ]
    if card.summary:
        body = e(card.summary.strip()).replace("\n", "<br/>")
        by = e(card.summary_by or "LLM")
        parts.append(f"<br/><br/><strong>🤖 AI Summary (by {by}):</strong><br/>{body}")
    if card.marker:
        parts.append(f"<br/><em>{e(card.marker)}</em>")
    return _x("\n".join(parts))


def render_feed(
    entries: Sequence[tuple[dt.date, Card]],
    *,
    title: str,
    link: str,
    self_url: str,
    description: str = "",
    atom: bool = False,
    updated: dt.datetime | None = None,
) -> bytes:
    """A feed of (announcement day, item) pairs, newest day first, best score first."""
    fg = FeedGenerator()
    fg.id(self_url)
    fg.title(_x(title))
    fg.link(href=link, rel="alternate")
    fg.link(href=self_url, rel="self")
    fg.description(_x(description or title))
    fg.language("en")
    fg.generator("arxiv-herald", version=__version__)
    fg.lastBuildDate(updated or dt.datetime.now(dt.UTC))
    ordered = sorted(entries, key=lambda e: (e[0], e[1].score or 0), reverse=True)
    for day, card in ordered:
        fe = fg.add_entry(order="append")
        fe.id(f"{card.url}#{day.isoformat()}")
        fe.guid(f"{card.url}#{day.isoformat()}", permalink=False)
        fe.title(_x(card.title).strip() or card.versioned_id)
        fe.link(href=card.url)
        when = dt.datetime.combine(day, dt.time(0), dt.UTC)
        fe.published(when)
        fe.updated(when)
        body = item_html(card)
        if atom:
            fe.content(body, type="html")
            for name in card.authors[:20]:
                fe.author({"name": _x(name)})
        else:
            fe.description(body)
        for c in (card.category, *card.also):
            fe.category(term=_x(c))
    return fg.atom_str(pretty=True) if atom else fg.rss_str(pretty=True)
