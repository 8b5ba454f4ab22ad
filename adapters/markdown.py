"""The digest as Markdown, in the original arxiv_rss_bot README format."""

from __future__ import annotations

import datetime as dt
import re

from bot.models import Digest, ScoredPaper
from bot.render import reasons_text, summary_marker

_MD_SPECIAL = re.compile(r"([\\`*_\[\]<>|])")


def escape_inline(text: str) -> str:
    """Escape text for inline Markdown (titles, authors): no links, emphasis or raw HTML."""
    text = text.replace("&", "&amp;")
    return _MD_SPECIAL.sub(
        lambda m: "&lt;" if m[1] == "<" else "&gt;" if m[1] == ">" else "\\" + m[1], text
    )


def escape_block(text: str) -> str:
    """Escape a paragraph of paper text: keep it readable, neutralise raw HTML."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _summary_block(item: ScoredPaper) -> str:
    if not item.summary:
        return ""
    model = escape_inline(item.summary_model or "LLM")
    # The summary is Markdown and keeps its formatting (blockquotes included), but no raw
    # HTML: an LLM (or a prompt-injected abstract) must not be able to close the block.
    body = item.summary.replace("<", "&lt;")
    return (
        "\n<details>\n"
        f"<summary><strong>🤖 AI Summary (by {model})</strong> - Click to expand</summary>\n\n"
        f"{body.strip()}\n\n</details>\n"
    )


def render_item(rank: int, item: ScoredPaper, day: dt.date, top_n: int | None = None) -> str:
    p = item.paper
    abstract = " ".join(p.abstract.split())
    cut = abstract[:300] + ("..." if len(abstract) > 300 else "")
    marker = summary_marker(item, top_n)
    lines = [
        f"### {rank}. [{escape_inline(p.title)}]({p.url})",
        "",
        f"**Authors**: {escape_inline(', '.join(p.authors) or 'Unknown')}  ",
        f"**Category**: {item.category or p.primary_category}  ",
        f"**Published**: {day.isoformat()}  ",
        f"**Score**: {item.score:.1f}  ",
        f"**Why**: {escape_inline(reasons_text(item))}  ",
        f"**Type**: {item.announce_type}  ",
        f"**ArXiv ID**: {p.versioned_id}  ",
        "",
        "#### Abstract",
        escape_block(cut),
        "",
    ]
    text = "\n".join(lines)
    if item.summary:
        text += _summary_block(item)
    if marker:
        text += f"\n> _{escape_inline(marker)}_\n"
    return text + "\n---"


def render_markdown(
    digest: Digest, *, top_n: int | None = None, now: dt.datetime | None = None
) -> str:
    now = now or dt.datetime.now(dt.UTC)
    sub = digest.subscription
    cats = ", ".join(digest.categories)
    head = [
        "# arXiv Papers Bot 🤖",
        "",
        "This file is written by arxiv-herald: the day's relevant new arXiv papers, scored "
        "against the configured keywords.",
        "",
        "## 📊 Statistics",
        "",
        f"- **Last Updated**: {now:%Y-%m-%d %H:%M:%S} UTC",
        f"- **Announcement Day**: {digest.day.isoformat()}",
        f"- **Total Papers Found**: {len(digest.items)}",
        f"- **Categories Monitored**: {cats}",
        "",
        "## 📚 Recent Papers",
        "",
    ]
    if digest.items:
        body = "\n\n".join(
            render_item(i, item, digest.day, top_n) for i, item in enumerate(digest.items, 1)
        )
    else:
        body = f"No papers matching the criteria were announced on {digest.day.isoformat()}."
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
