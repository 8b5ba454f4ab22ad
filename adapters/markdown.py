"""The digest as Markdown, in the original arxiv_rss_bot README format."""

from __future__ import annotations

import datetime as dt
import re

from bot.cards import DigestView, digest_view
from bot.models import Card, Digest

# Everything that can start Markdown syntax inside a line of text.
_MD_SPECIAL = re.compile(r"([\\`*_\[\]|!#~])")
# Link syntax only: what must not survive in an LLM's summary (its **bold** and lists may).
_LINK_SPECIAL = re.compile(r"([\\\[\]!`])")


def _html(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


# A line that starts like a list item, a quote or a heading underline.
_BLOCK_START = re.compile(r"^(\s*(?:[0-9]+)?)([-+=.)])", re.MULTILINE)


def escape_inline(text: str) -> str:
    """Paper text (titles, authors, abstracts) as literal Markdown: no emphasis, lists or
    headings, no links or images, no raw HTML.  A bare URL stays what it is (renderers may
    make it clickable; it shows its own target)."""
    return _BLOCK_START.sub(r"\1\\\2", _MD_SPECIAL.sub(r"\\\1", _html(text)))


def summary_markdown(text: str) -> str:
    """An LLM summary keeps its formatting (bold, lists, headings) but not links, images or
    raw HTML: an LLM (or a prompt-injected abstract) must not plant a tracking pixel, a
    disguised link, or close the surrounding ``<details>`` block."""
    return _LINK_SPECIAL.sub(r"\\\1", _html(text))


def _summary_block(card: Card) -> str:
    if not card.summary:
        return ""
    model = escape_inline(card.summary_by or "LLM")
    body = summary_markdown(card.summary)
    return (
        "\n<details>\n"
        f"<summary><strong>🤖 AI Summary (by {model})</strong> - Click to expand</summary>\n\n"
        f"{body.strip()}\n\n</details>\n"
    )


def render_card(rank: int, card: Card, day: dt.date) -> str:
    cut = card.abstract[:300] + ("..." if len(card.abstract) > 300 else "")
    lines = [
        f"### {rank}. [{escape_inline(card.title)}]({card.url})",
        "",
        f"**Authors**: {escape_inline(', '.join(card.authors) or 'Unknown')}  ",
        f"**Category**: {card.category}  ",
        f"**Published**: {day.isoformat()}  ",
        f"**Score**: {card.score or 0:.1f}  ",
        f"**Why**: {escape_inline(card.why())}  ",
        f"**Type**: {card.announce_type}  ",
        f"**ArXiv ID**: {card.versioned_id}  ",
        "",
        "#### Abstract",
        escape_inline(cut),
        "",
    ]
    text = "\n".join(lines)
    if card.summary:
        text += _summary_block(card)
    if card.marker:
        text += f"\n> _{escape_inline(card.marker)}_\n"
    return text + "\n---"


def render_markdown(
    digest: Digest, *, top_n: int | None = None, now: dt.datetime | None = None
) -> str:
    return render_view(digest_view(digest, top_n=top_n), now=now)


def render_view(view: DigestView, *, now: dt.datetime | None = None) -> str:
    now = now or dt.datetime.now(dt.UTC)
    sub = view.subscription
    cats = ", ".join(view.categories)
    head = [
        "# arXiv Papers Bot 🤖",
        "",
        "This file is written by arxiv-herald: the day's relevant new arXiv papers, scored "
        "against the configured keywords.",
        "",
        "## 📊 Statistics",
        "",
        f"- **Last Updated**: {now:%Y-%m-%d %H:%M:%S} UTC",
        f"- **Announcement Day**: {view.day.isoformat()}",
        f"- **Total Papers Found**: {len(view.cards)}",
        f"- **Categories Monitored**: {cats}",
        "",
        "## 📚 Recent Papers",
        "",
    ]
    if view.cards:
        body = "\n\n".join(render_card(i, c, view.day) for i, c in enumerate(view.cards, 1))
    else:
        body = f"No papers matching the criteria were announced on {view.day.isoformat()}."
    keywords = ", ".join(escape_inline(k) for k in sub.keywords) or "(none)"
    tail = [
        "",
        "",
        "## 🔧 Configuration",
        "",
        "This digest looks for papers containing the following keywords:",
        f"- {keywords}",
        "",
        "---",
        "*Generated automatically by arxiv-herald*",
        "",
    ]
    return "\n".join(head) + body + "\n".join(tail)
