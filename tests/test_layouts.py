"""Both digest layouts within both platforms' limits, for hostile and very long papers.

Generated papers (markup characters, entities, astral emoji, combining marks, control
characters, titles and summaries thousands of characters long, up to 100 papers) go through
the core's view model (``bot.cards``) and each renderer; "within the limits" is checked by the
fakes: Telegram's HTML parser port and its 4,096 UTF-16 units, its 64-byte callback data and
100-button keyboards; Slack's Block Kit validator (50 blocks, 3,000 characters a section,
unique block ids).  Every paper is shown exactly once, in order, however the message splits.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import replace

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from adapters.slack import blocks as slack
from adapters.telegram.render import (
    MAX_CALLBACK_BYTES,
    MAX_MESSAGE_UNITS,
    compact_keyboard,
    compact_sizes,
    decode_rating,
    keyboard,
    render_card,
    render_compact,
    utf16_len,
)
from bot.cards import (
    COMPACT_SUMMARY_MAX,
    CompactDigest,
    card_for,
    compact_parts,
    compact_view,
    header_text,
    rating_buttons,
)
from bot.models import Card, Digest, Paper, Reason, ScoredPaper, Subscription, SummaryStatus
from tests.fakes.slack import validate_blocks
from tests.fakes.telegram import parse_telegram_html

DAY = dt.date(2026, 1, 22)
MAX_BUTTONS = 100  # Telegram's inline keyboard

_CHARS = st.characters(exclude_categories=(), include_characters="\n\t\r\x00\ud800&<>")
_PIECES = st.one_of(
    st.text(_CHARS, max_size=10),
    st.sampled_from(
        [
            "<b>",
            "</a>",
            "&amp;",
            "&#128512;",
            "<!channel>",
            "**bold**",
            "$\\alpha$",
            "\\'e",
            "😀",
            "e\u0301",
            "👩\u200d🔬",
            "\u202e",
            "*_~`",
            "# Heading\n",
            "- bullet\n",
            "word ",
        ]
    ),
)


def _text(max_repeat: int) -> st.SearchStrategy[str]:
    pieces = st.lists(st.tuples(_PIECES, st.integers(1, max_repeat)), max_size=8)
    return pieces.map(lambda ps: "".join(p * n for p, n in ps))


_PAPER_IDS = st.one_of(
    st.integers(1, 99_999).map(lambda n: f"2601.{n:05d}"),
    st.sampled_from(["hep-th/9901001", "cond-mat.stat-mech/0601001", "math.CA/0611800"]),
)


@st.composite
def _items(draw: st.DrawFn) -> list[ScoredPaper]:
    """Up to 100 papers, made from a few generated ones (so the inputs stay small enough to
    generate and shrink): long ones are thousands of characters."""
    long = draw(st.booleans())
    repeat = 400 if long else 3
    kinds = []
    for _ in range(draw(st.integers(1, 4))):
        summary = draw(st.one_of(st.none(), _text(repeat * 3)))
        kinds.append(
            (
                draw(_PAPER_IDS),
                draw(_text(repeat)) or "x",
                tuple(draw(st.lists(_text(repeat // 4 + 1), max_size=12))),
                draw(_text(repeat)),
                summary,
                draw(st.one_of(st.none(), _text(repeat))),
                draw(st.floats(-1e6, 1e6)),
            )
        )
    n = draw(st.integers(1, 100))
    items = []
    for i in range(n):
        pid, title, authors, abstract, summary, note, score = kinds[i % len(kinds)]
        paper = Paper(
            id=f"{pid}{i}",  # distinct
            version=1 + i % 12,
            title=title,
            authors=authors,
            categories=("cs.LG", "cs.CL"),
            abstract=abstract,
        )
        items.append(
            ScoredPaper(
                paper=paper,
                score=score,
                reasons=[Reason("keyword", title[:50], 1.0)],
                category="cs.LG",
                summary=summary,
                summary_status=SummaryStatus.OK if summary else SummaryStatus.FAILED,
                summary_note=note,
                explore=i % 7 == 3,
            )
        )
    return items


def _view(items: list[ScoredPaper], tally: tuple[int, int]) -> tuple[Digest, CompactDigest]:
    sub = Subscription(id=7, platform="telegram", chat="-1001234/7", categories=("cs.LG",))
    digest = Digest(sub, DAY, items)
    # One card per kind of paper (decoding LaTeX in thousands of characters is slow), then
    # each paper's own id and buttons.
    kinds: dict[tuple[object, ...], Card] = {}
    cards = []
    for it in items:
        p = it.paper
        key = (p.title, p.authors, p.abstract, it.summary, it.summary_note, it.score, it.explore)
        if key not in kinds:
            kinds[key] = card_for(it, top_n=15, tally=tally)
        cards.append(
            replace(
                kinds[key],
                paper_id=p.id,
                versioned_id=p.versioned_id,
                buttons=rating_buttons(p.id, *tally),
            )
        )
    return digest, compact_view(DAY, header_text(digest), list(enumerate(cards, 1)))


_TALLY = st.tuples(st.integers(0, 10**6), st.integers(0, 10**6))
_SETTINGS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@_SETTINGS
@given(items=_items(), tally=_TALLY, topic=st.one_of(st.none(), st.integers(1, 10**9)))
def test_telegram_compact_messages_are_always_accepted(
    items: list[ScoredPaper], tally: tuple[int, int], topic: int | None
) -> None:
    _, view = _view(items, tally)
    parts = compact_parts(view, compact_sizes(view))
    assert [e.paper_id for p in parts for e in p.entries] == [i.paper.id for i in items]
    assert parts[0].header is not None and all(p.header is None for p in parts[1:])
    for part in parts:
        text, _ = parse_telegram_html(render_compact(part), strict=True)
        assert 0 < utf16_len(text) <= MAX_MESSAGE_UNITS
        markup = compact_keyboard(part, topic)
        assert markup is not None
        rows = markup["inline_keyboard"]
        buttons = [b for row in rows for b in row]
        assert len(buttons) <= MAX_BUTTONS and all(len(row) <= 8 for row in rows)
        for b in buttons:
            assert len(b["callback_data"].encode()) <= MAX_CALLBACK_BYTES
        rated = [decode_rating(b["callback_data"]) for b in buttons]
        assert [r[1] for r in rated if r][::2] == [e.paper_id for e in part.entries]
    # a digest that fits one message is one message
    if sum(len(e.title) + len(e.byline) + len(e.summary or "") for e in view.entries) < 1500:
        assert len(parts) == 1 or len(view.entries) > 40


@_SETTINGS
@given(items=_items(), tally=_TALLY)
def test_slack_compact_messages_are_always_valid_blocks(
    items: list[ScoredPaper], tally: tuple[int, int]
) -> None:
    digest, view = _view(items, tally)
    parts = compact_parts(view, slack.compact_sizes(view))
    assert [e.paper_id for p in parts for e in p.entries] == [i.paper.id for i in items]
    for part in parts:
        msg = slack.render_compact(digest, part)
        assert validate_blocks(msg["blocks"]) == [] and len(msg["blocks"]) <= slack.MAX_BLOCKS
        for block in msg["blocks"]:
            if block["type"] == "section":
                assert len(block["text"]["text"]) <= slack.SECTION_MAX
        assert len(msg["text"]) <= 1000


@_SETTINGS
@given(items=_items(), tally=_TALLY)
def test_the_compact_view_bounds_every_entry(
    items: list[ScoredPaper], tally: tuple[int, int]
) -> None:
    """What the view model decides: titles, bylines and summaries cut to a bounded size, so
    one paper always fits any platform's message; summaries shortened, never overlong."""
    _, view = _view(items, tally)
    for e in view.entries:
        assert len(e.title) <= 200 and len(e.byline) <= 90
        assert e.summary is None or len(e.summary) <= COMPACT_SUMMARY_MAX
        assert "\n" not in e.title + e.byline + (e.summary or "")
    assert len(view.notes) <= 3


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(items=_items(), tally=_TALLY, topic=st.one_of(st.none(), st.integers(1, 10**9)))
def test_thread_layout_messages_are_always_accepted_too(
    items: list[ScoredPaper], tally: tuple[int, int], topic: int | None
) -> None:
    digest, _ = _view(items[:5], tally)
    for item in items[:5]:
        card = card_for(item, top_n=15, tally=tally)
        for chunk in render_card(card):
            text, _ = parse_telegram_html(chunk, strict=True)
            assert 0 < utf16_len(text) <= MAX_MESSAGE_UNITS
        markup = keyboard(card.buttons, DAY, topic)
        assert markup is not None
        for b in markup["inline_keyboard"][0]:
            assert len(b["callback_data"].encode()) <= MAX_CALLBACK_BYTES
        for msg in slack.render_item(digest, card):
            assert validate_blocks(msg["blocks"]) == []
