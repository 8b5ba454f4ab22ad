"""RSS 2.0 and Atom feeds of digests (feedgen), like the original rss_service's items."""

from __future__ import annotations

import datetime as dt
import html
import re
from collections.abc import Sequence

from feedgen.feed import FeedGenerator

from bot import __version__
from bot.models import ScoredPaper
from bot.render import reasons_text, summary_marker

_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")


def _x(text: str) -> str:
    """Text safe for XML (feedgen escapes markup, but lxml rejects control characters)."""
    return _CONTROL.sub("", text)


def item_html(item: ScoredPaper) -> str:
    p = item.paper
    e = html.escape
    parts = [
        f"<strong>Authors:</strong> {e(', '.join(p.authors) or 'Unknown')}<br/>",
        f"<strong>Category:</strong> {e(item.category or p.primary_category)}<br/>",
        f"<strong>Score:</strong> {item.score:.1f} ({e(reasons_text(item))})<br/>",
        f"<strong>Type:</strong> {e(item.announce_type)}<br/>",
        f"<strong>Arxiv ID:</strong> {e(p.versioned_id)}<br/>",
        f"<strong>Abstract:</strong> {e(' '.join(p.abstract.split()))}",
    ]
    if item.summary:
        model = e(item.summary_model or "LLM")
        body = e(item.summary.strip()).replace("\n", "<br/>")
        parts.append(f"<br/><br/><strong>🤖 AI Summary (by {model}):</strong><br/>{body}")
    marker = summary_marker(item)
    if marker:
        parts.append(f"<br/><em>{e(marker)}</em>")
    return _x("\n".join(parts))


def render_feed(
    entries: Sequence[tuple[dt.date, ScoredPaper]],
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
    ordered = sorted(entries, key=lambda e: (e[0], e[1].score), reverse=True)
    for day, item in ordered:
        p = item.paper
        fe = fg.add_entry(order="append")
        fe.id(f"{p.url}#{day.isoformat()}")
        fe.guid(f"{p.url}#{day.isoformat()}", permalink=False)
        fe.title(_x(p.title))
        fe.link(href=p.url)
        when = dt.datetime.combine(day, dt.time(0), dt.UTC)
        fe.published(when)
        fe.updated(when)
        body = item_html(item)
        if atom:
            fe.content(body, type="html")
            for name in p.authors[:20]:
                fe.author({"name": _x(name)})
        else:
            fe.description(body)
        for c in p.categories:
            fe.category(term=_x(c))
    return fg.atom_str(pretty=True) if atom else fg.rss_str(pretty=True)
