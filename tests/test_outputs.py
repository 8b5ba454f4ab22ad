"""The digest rendered: Markdown in the original README format, RSS/Atom, JSON, terminal."""

from __future__ import annotations

import datetime as dt
import io
import json
import re

import feedparser
from rich.console import Console

from adapters.console import render_console
from adapters.feeds import render_feed
from adapters.jsonout import digest_to_dict
from adapters.markdown import escape_inline, render_markdown
from bot.cards import digest_view
from bot.engine import Engine
from bot.models import Digest, Paper, ScoredPaper, SummaryStatus
from bot.scoring import explain
from tests.conftest import DAY, JSON_ITEM_KEYS

HOSTILE = (
    "Attack <script>alert(1)</script> & [link](http://evil) *bold* `code` </details> "
    "<!channel> \x07 _*["
)


def _digest(engine: Engine) -> Digest:
    return engine.digest(dt.date.fromisoformat(DAY))


def _hostile_digest(engine: Engine) -> Digest:
    d = _digest(engine)
    real = d.items[0].paper
    p = Paper(real.id, real.version, HOSTILE, ("Ann <b>Bold</b>",), real.categories, HOSTILE)
    score, reasons = explain(p, d.subscription)
    item = ScoredPaper(
        p,
        score,
        reasons,
        category=p.primary_category,
        summary="Fine **md**\n</details><b>x</b>",
        summary_status=SummaryStatus.OK,
        summary_model="m<o>del",
    )
    d.items = [item, *d.items[1:3]]
    return d


def test_markdown_matches_the_original_readme_format(engine: Engine) -> None:
    d = _digest(engine)
    md = render_markdown(d, now=dt.datetime(2026, 1, 22, 6, 18, 23, tzinfo=dt.UTC))
    assert "## 📊 Statistics" in md
    assert "- **Last Updated**: 2026-01-22 06:18:23 UTC" in md
    assert f"- **Total Papers Found**: {len(d.items)}" in md
    assert "- **Categories Monitored**: cs.AI, cs.CL, cs.DC, cs.LG" in md
    first = d.items[0]
    assert f"### 1. [{escape_inline(first.paper.title)}]({first.paper.url})" in md
    for field in (
        "**Authors**:",
        "**Category**:",
        "**Published**: 2026-01-22",
        "**Score**:",
        "**Type**: new",
        "**ArXiv ID**:",
    ):
        assert field in md
    # The abstract is cut at 300 characters like the original.
    abstract = " ".join(first.paper.abstract.split())
    assert (
        abstract[:300].replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;") + "..." in md
    )
    assert md.count("\n---") >= len(d.items)


def test_markdown_summary_block_and_markers(engine: Engine) -> None:
    d = _digest(engine)
    d.items[0].summary, d.items[0].summary_status = "1. **Contributions**: x", SummaryStatus.OK
    d.items[0].summary_model = "qwen-long"
    d.items[1].summary_status = SummaryStatus.FAILED
    d.items[1].summary_note = "HTTP 500"
    md = render_markdown(d, top_n=15)
    assert (
        "<summary><strong>🤖 AI Summary (by qwen-long)</strong> - Click to expand</summary>" in md
    )
    assert "LLM call failed (HTTP 500)" in md


def test_markdown_neutralises_hostile_text(engine: Engine) -> None:
    md = render_markdown(_hostile_digest(engine))
    assert "<script>" not in md and "<b>" not in md
    assert "\\[link\\](http://evil)" in md
    assert md.count("</details>") == 1  # the summary cannot close the block early


def test_feeds_parse_with_feedparser(engine: Engine) -> None:
    d = _hostile_digest(engine)
    day = d.day
    for atom in (False, True):
        xml = render_feed(
            [(day, c) for c in digest_view(d).cards],
            title="t",
            link="http://h/",
            self_url="http://h/f.xml",
            atom=atom,
        )
        parsed = feedparser.parse(xml)
        assert not parsed.bozo, parsed.bozo_exception
        assert len(parsed.entries) == len(d.items)
        e = next(x for x in parsed.entries if x.title.startswith("Attack"))
        assert e.title.startswith("Attack <script>")  # the title text survives as text
        assert "\x07" not in e.title
        assert e.link == d.items[0].paper.url
        body = e.get("content", [{}])[0].get("value") if atom else e.summary
        assert "Authors:" in body and "Score:" in body
        assert parsed.version == ("atom10" if atom else "rss20")


def test_json_shape(engine: Engine) -> None:
    d = _digest(engine)
    obj = json.loads(json.dumps(digest_to_dict(d)))
    assert obj["day"] == DAY and obj["subscription"]["name"] == "default"
    assert set(obj["items"][0]) >= JSON_ITEM_KEYS
    assert obj["items"][0]["reasons"][0]["text"]


def test_console_prints_markup_literally(engine: Engine) -> None:
    d = _hostile_digest(engine)
    d.items[0].paper = Paper(d.items[0].paper.id, 1, "[bold red]not markup[/]", (), ("cs.LG",), "x")
    buf = io.StringIO()
    render_console(d, Console(file=buf, width=120, color_system=None))
    out = buf.getvalue()
    assert "[bold red]not markup[/]" in out
    assert re.search(r"arXiv digest · Thu 22 Jan 2026 · \d+ papers", out)
