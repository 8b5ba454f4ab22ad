"""Hostile text in any field of a paper renders inert on every file surface: proven for
generated inputs (hypothesis), not only for examples.

* Markdown (``digest.md``): no images, no raw HTML but our own ``<details>`` block, and no
  link but the paper's title link or a bare URL shown as itself.
* RSS and Atom: well-formed XML that a feed reader parses, with the title text intact.
* The terminal: a title like ``[bold]`` prints as written.
"""

from __future__ import annotations

import datetime as dt
import io
import re

import feedparser
from hypothesis import given, settings
from hypothesis import strategies as st
from lxml import etree
from markdown_it import MarkdownIt
from rich.console import Console

from adapters.console import render_card as console_card
from adapters.feeds import render_feed
from adapters.markdown import render_markdown
from bot.cards import card_for, decode_latex
from bot.models import Digest, Paper, ScoredPaper, Subscription, SummaryStatus

# Markdown as GitHub reads it: CommonMark + tables, strikethrough and autolinked bare URLs.
MD = MarkdownIt("commonmark").enable(["table", "strikethrough", "linkify"])
MD.options["linkify"] = True
MD.linkify.set({"fuzzy_link": False, "fuzzy_email": True})

NASTY = st.sampled_from(
    [
        "![x](http://e.test/p.png)",
        "[click](http://e.test)",
        "[a]: http://ref.test",
        "<http://auto.test>",
        "<img src=x onerror=alert(1)>",
        "</details>",
        "<details>",
        "<!-- c -->",
        "`code`",
        "**b**",
        "\\",
        "&amp;",
        "&#60;",
        "\n- item\n",
        "\n1. one\n",
        "\n> quote\n",
        "\n# head\n",
        "\n===\n",
        "|a|b|\n|-|-|",
        "https://bare.test/x",
        "www.bare.test",
        "a@b.test",
        "javascript:alert(1)",
        "\x07\x00\ufffe",
        "$\\alpha$",
        "<!channel>",
    ]
)
HOSTILE = st.lists(st.one_of(NASTY, st.text(max_size=12)), min_size=1, max_size=6).map("".join)


def _digest(title: str, author: str, abstract: str, summary: str, model: str) -> Digest:
    sub = Subscription(1, "default", "default", ("cs.LG",), keywords=("x",), name="default")
    paper = Paper("2601.19278", 2, title, (author, "B. Author"), ("cs.LG", "cs.AI"), abstract)
    item = ScoredPaper(
        paper,
        1.5,
        category="cs.LG",
        summary=summary,
        summary_status=SummaryStatus.OK,
        summary_model=model,
    )
    return Digest(sub, dt.date(2026, 1, 22), [item])


_OWN_HTML = re.compile(
    r"^(<details>|</details>|<summary><strong>🤖 AI Summary \(by .*\)</strong> - Click to "
    r"expand</summary>)\s*$"
)


def _tokens(md: str) -> list:
    out = []
    for tok in MD.parse(md):
        out.append(tok)
        out += tok.children or []
    return out


@settings(max_examples=200, deadline=None)
@given(title=HOSTILE, author=HOSTILE, abstract=HOSTILE, summary=HOSTILE, model=HOSTILE)
def test_markdown_has_no_live_links_images_or_html(
    title: str, author: str, abstract: str, summary: str, model: str
) -> None:
    md = render_markdown(_digest(title, author, abstract, summary, model), top_n=5)
    tokens = _tokens(md)
    assert not [t for t in tokens if t.type == "image"]
    for t in tokens:
        if t.type in ("html_inline", "html_block"):
            # our own <details> block, nothing else
            for line in t.content.strip().splitlines():
                assert _OWN_HTML.match(line), line
    opened = [i for i, t in enumerate(tokens) if t.type == "link_open"]
    for i in opened:
        href = tokens[i].attrGet("href")
        if href == "https://arxiv.org/abs/2601.19278":
            continue  # the title link we wrote
        # anything else is a bare URL shown as itself
        assert tokens[i].markup in ("linkify", "autolink"), (href, md)
        raw = tokens[i + 1].content
        shown = raw.rstrip("/").casefold()
        target = MD.normalizeLinkText(str(href)).removeprefix("mailto:").rstrip("/").casefold()
        # The same address, or exactly what Markdown makes of the text shown (a lone "%" is
        # percent-encoded in the link: https://bare.test/x% -> https://bare.test/x%25).
        as_shown = (MD.normalizeLink(raw), MD.normalizeLink("http://" + raw))
        assert target in (shown, "http://" + shown) or href in as_shown, (target, shown)
    # a summary stays inside exactly one <details> block
    assert md.count("</details>") == (1 if summary.strip() else 0)


@settings(max_examples=120, deadline=None)
@given(title=HOSTILE, author=HOSTILE, abstract=HOSTILE, summary=HOSTILE)
def test_feeds_are_well_formed_and_keep_the_title(
    title: str, author: str, abstract: str, summary: str
) -> None:
    d = _digest(title, author, abstract, summary, "m")
    card = card_for(d.items[0])
    for atom in (False, True):
        xml = render_feed(
            [(d.day, card)], title="t", link="http://h/", self_url="http://h/f", atom=atom
        )
        root = etree.fromstring(xml)  # well-formed, or this raises
        parsed = feedparser.parse(xml)
        assert not parsed.bozo, parsed.bozo_exception
        assert len(parsed.entries) == 1
        # The title element holds the title as text (an XML parser reads it back exactly).
        path = "{*}entry/{*}title" if atom else "channel/item/title"
        want = re.sub(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\ufffe\uffff]", "", card.title)
        assert root.findtext(path) == (want.strip() or card.versioned_id)


@settings(max_examples=80, deadline=None)
@given(title=HOSTILE)
def test_the_terminal_prints_titles_as_written(title: str) -> None:
    card = card_for(_digest(title, "A", "x", "", "m").items[0])
    out = io.StringIO()
    Console(file=out, width=400, color_system=None).print(console_card(1, card))
    controls = re.compile(r"[\x00-\x1f\x7f-\x9f\ufffe\uffff]")
    text = controls.sub("", out.getvalue()).replace("\n", " ")
    visible = controls.sub("", card.title).split()
    # rich markup such as [bold] or [link=…] is printed, not interpreted
    assert all(word in text for word in visible[:3] if len(word) > 1), (visible, text)


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=60))
def test_latex_decoding_never_fails_and_leaves_plain_text_alone(text: str) -> None:
    out = decode_latex(text)
    assert isinstance(out, str)
    if "\\" not in text and "$" not in text:
        assert out == text


def test_titles_and_authors_show_latex_decoded_but_are_stored_as_published() -> None:
    d = _digest(r"$\alpha$-nets: 50% faster \& Schr\"odinger", r"Ivan Vuli\'c", "x", "", "m")
    card = card_for(d.items[0])
    assert card.title == "α-nets: 50% faster & Schrödinger"
    assert card.authors[0] == "Ivan Vulić"
    assert d.items[0].paper.title.startswith(r"$\alpha$")  # the paper itself is untouched
