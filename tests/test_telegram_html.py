"""The pure half of the Telegram adapter: HTML, splitting, buttons, command parsing.

Every rendered message is checked with the fake's port of Telegram's own HTML parser, so
"valid" means "Telegram would accept it" and lengths are what Telegram counts.  Cards come from
the core's view model (``bot.cards.card_for``); this only checks how Telegram shows them.
"""

from __future__ import annotations

import datetime as dt
import re
import unicodedata
from dataclasses import replace

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from telegram import Message

from adapters.telegram.render import (
    MAX_CALLBACK_BYTES,
    MAX_MESSAGE_UNITS,
    Run,
    card_runs,
    clean,
    command_from_message,
    decode_rating,
    encode_rating,
    escape,
    keyboard,
    render_card,
    render_chunks,
    render_header,
    render_text,
    split_runs,
    utf16_len,
)
from bot.cards import card_for, rating_buttons
from bot.models import Card, Digest, Paper, Reason, ScoredPaper, Subscription, SummaryStatus
from tests.fakes import corpus
from tests.fakes.telegram import parse_telegram_html

HOSTILE = [
    "<b>",
    "</a>",
    "&amp;",
    "_*[",
    "a < b > c & d",
    '<a href="javascript:alert(1)">x</a>',
    "&#128512; &lt; &nbsp; AT&T",
    "<!-- comment --> <br/> <tg-spoiler>",
    "back\\slash `tick` ~tilde~ ||bars||",
]


def parsed(html: str) -> tuple[str, list[dict]]:
    """What Telegram makes of ``html`` (raises like Telegram on anything it would refuse)."""
    return parse_telegram_html(html, strict=True)


PAPER = Paper(
    id="2601.19278",
    version=2,
    title="A   title\n  wrapped by arXiv",
    authors=("Ada Lovelace", "Alan Turing"),
    categories=("cs.LG", "cs.CL", "stat.ML"),
    abstract="First sentence.  Second   sentence.",
)


def item(**changes: object) -> ScoredPaper:
    summary = changes.pop("summary", None)
    status = changes.pop("summary_status", SummaryStatus.OK if summary else SummaryStatus.PENDING)
    return ScoredPaper(
        replace(PAPER, **changes),
        3.5,
        [Reason("title", "“LLM” in title (+1.5)", 1.5), Reason("keyword", "“RL” (+1)", 1.0)],
        announce_type="cross",
        category="cs.CL",
        summary=summary,
        summary_status=status,
    )


def card(**changes: object) -> Card:
    return card_for(item(**changes))


# -- escaping ------------------------------------------------------------------------------------
@pytest.mark.parametrize("text", HOSTILE)
def test_escape_round_trips_through_telegrams_parser(text: str) -> None:
    assert parsed(escape(text)) == (text, [])


@pytest.mark.parametrize("title", HOSTILE)
def test_hostile_titles_stay_text_inside_the_link(title: str) -> None:
    (html,) = render_card(card(title=title, authors=(title,), summary=title))
    text, entities = parsed(html)
    assert text.startswith(title + "\n" + title + "\n")
    link = next(e for e in entities if e["type"] == "text_link")
    assert link == {
        "type": "text_link",
        "offset": 0,
        "length": utf16_len(title),
        "url": "https://arxiv.org/abs/2601.19278",
    }
    assert text.count(title) == 3  # title, authors, summary: never interpreted


def test_card_layout() -> None:
    (html,) = render_card(card(summary="**Key idea**: small.\n\n\nSecond paragraph."))
    text, entities = parsed(html)
    assert text == (
        "A title wrapped by arXiv\n"
        "Ada Lovelace, Alan Turing\n"
        "cs.CL · cross · 2601.19278v2 · also cs.LG, stat.ML\n"
        "Score 3.5: “LLM” in title (+1.5); “RL” (+1)\n\n"
        "Summary\n"
        "Key idea: small.\n\nSecond paragraph."
    )
    kinds = [e["type"] for e in entities]
    assert kinds.count("bold") == 4  # title, score, "Summary", the **Key idea**
    assert "expandable_blockquote" in kinds and "italic" in kinds


def test_a_card_without_a_score_or_buttons() -> None:
    """/summarize in a chat that is not subscribed: nothing to score against, nothing to rate."""
    unrated = card_for(item(summary="Short."), show_score=False, buttons=False)
    (html,) = render_card(unrated)
    text, _ = parsed(html)
    assert "Score" not in text and "cs.CL · cross · 2601.19278v2 · also cs.LG, stat.ML\n" in text
    assert keyboard(unrated.buttons) is None


def test_missing_summary_shows_the_abstract_and_a_visible_marker() -> None:
    (html,) = render_card(card(summary_status=SummaryStatus.MISSING_KEY))
    text, _ = parsed(html)
    assert "Abstract\nFirst sentence. Second sentence." in text
    assert text.endswith("⚠ no summary: no LLM API key is configured")
    (html,) = render_card(card(summary="Short.", summary_status=SummaryStatus.ABSTRACT_ONLY))
    assert parsed(html)[0].endswith("⚠ summarized from the abstract only")


def test_control_characters_and_lone_surrogates_are_dropped() -> None:
    (html,) = render_card(card(title="Nul\x00 bell\x07 and \ud800 half", summary="ok\r\nfine"))
    text, _ = parsed(html)
    assert text.startswith("Nul bell and half") and "ok\nfine" in text


def test_header() -> None:
    sub = Subscription(None, "telegram", "1", ("cs.LG", "cs.CL"))
    text, entities = parsed(render_header(Digest(sub, dt.date(2026, 1, 22), [item(), item()])))
    assert text.startswith("arXiv digest · Thu 22 Jan 2026 · 2 papers · cs.LG, cs.CL\n")
    assert entities[0]["type"] == "bold"
    text, _ = parsed(render_header(Digest(sub, dt.date(2026, 1, 22), [])))
    assert text == "arXiv digest · Thu 22 Jan 2026 · 0 papers · cs.LG, cs.CL"


# -- splitting -----------------------------------------------------------------------------------
def _math_abstracts(n: int) -> list[str]:
    rows = [p for p in corpus.load_papers() if p["abstract"].count("$") >= 10]
    rows.sort(key=lambda p: (-len(p["abstract"]), p["base_id"]))
    return [p["abstract"] for p in rows[:n]]


def _non_bmp(text: str) -> str:
    """Real TeX abstracts with their variables as mathematical letters (outside the BMP)."""
    return re.sub(r"[A-Za-z](?=[_^}$ ,)])", lambda m: chr(0x1D400 + ord(m.group()) % 26), text)


def _check(chunks: list[str], limit: int = MAX_MESSAGE_UNITS) -> list[str]:
    texts = []
    for html in chunks:
        text, _ = parsed(html)  # balanced tags, valid entities
        assert 0 < utf16_len(text) <= limit
        assert text == text.strip()
        texts.append(text)
    return texts


def test_real_math_abstracts_with_non_bmp_split_on_paragraphs() -> None:
    paragraphs = [_non_bmp(a) for a in _math_abstracts(8)]
    assert sum(ord(c) > 0xFFFF for c in "".join(paragraphs)) > 200
    long = card(summary="\n\n".join(paragraphs) + " 🧪🚀")
    (whole,) = render_chunks(card_runs(long), limit=10**9)
    full = parsed(whole)[0]
    assert utf16_len(full) > 2 * MAX_MESSAGE_UNITS
    texts = _check(render_card(long))
    assert len(texts) >= 3
    # nothing lost, nothing repeated: the parts put back together are the whole message
    assert re.sub(r"\s+", " ", " ".join(texts)) == re.sub(r"\s+", " ", full)
    ends = [" ".join(p.split())[-30:] for p in paragraphs]
    for text in texts[:-1]:
        assert any(text.endswith(e) for e in ends), text[-60:]  # cut where a paragraph ends
    # the blockquote is reopened in every part it spans
    for html in render_card(long)[1:]:
        assert html.startswith("<blockquote expandable>")


def test_a_paragraph_longer_than_a_message_is_cut_between_sentences() -> None:
    sentence = "We prove that 𝔽₂-linear codes 𝒞 achieve capacity ∎. "
    chunks = render_chunks([Run(sentence * 300, ("<i>",))])
    texts = _check(chunks)
    assert len(texts) >= 4 and all(t.endswith("∎.") for t in texts)
    assert all(h.startswith("<i>") and h.endswith("</i>") for h in chunks)


def test_no_spaces_at_all_is_cut_hard_without_breaking_characters() -> None:
    text = "𝔸" * 5000  # 10,000 UTF-16 units, no boundary anywhere
    texts = _check(render_chunks([Run(text)]))
    assert [len(t) for t in texts] == [2048, 2048, 904]
    # "é" as e + combining acute, shifted so a plain cut at 4,096 would land between the two
    combining = "x" + "e\u0301" * 3000
    texts = _check(render_chunks([Run(combining)]))
    assert len(texts) == 2 and "".join(texts) == combining
    assert not unicodedata.combining(texts[1][0])


def test_exact_limit_and_markup_do_not_count() -> None:
    exact = "a" * MAX_MESSAGE_UNITS
    assert split_runs([Run(exact, ("<b>", '<a href="https://arxiv.org/abs/1">'))]) == [
        [Run(exact, ("<b>", '<a href="https://arxiv.org/abs/1">'))]
    ]
    escaped = "<&>" * (MAX_MESSAGE_UNITS // 3)  # 4× longer once escaped: still one message
    (html,) = render_chunks([Run(escaped)])
    assert len(html) > MAX_MESSAGE_UNITS and parsed(html)[0] == escaped
    assert len(render_chunks([Run(exact + "b")])) == 2


def test_plain_replies_split_too() -> None:
    keywords = "\n".join(f"• keyword number {i} & <{i}>" for i in range(1500))
    texts = _check(render_text(f"Keywords (1500):\n{keywords}"))
    assert len(texts) >= 10
    assert all(t.splitlines()[-1].startswith("• keyword number") for t in texts)
    assert sum(t.count("•") for t in texts) == 1500
    assert render_text("   ") == [escape("(empty)")]


# -- the splitter, for any text -------------------------------------------------------------------
TAG_SETS = [
    (),
    ("<b>",),
    ("<i>",),
    ("<b>", '<a href="https://arxiv.org/abs/2601.19278">'),
    ("<blockquote expandable>",),
    ("<blockquote expandable>", "<b>"),
]
OPENING = {tag for tags in TAG_SETS for tag in tags}
_TAG = re.compile(r"<[^>]*>")
# Any character, and the pieces splitters get wrong; controls (but newline and tab) and lone
# surrogates cannot travel in a message: they are dropped before splitting.
_CHARS = st.characters(exclude_categories=(), include_characters="\n\t\r\x00\ud800")
_PIECES = st.one_of(
    st.text(_CHARS, max_size=12),
    st.sampled_from(
        [
            " ",
            "\n",
            "\n\n",
            ". ",
            "! ",
            "<",
            ">",
            "&",
            "&amp;",
            "&lt;b&gt;",
            "<b>",
            "</a>",
            "🧪",
            "👍🏽",
            "👩\u200d🔬",
            "𝔽₂",
            "e\u0301",
            "\u0301",
            "\u200d",
            "\ufe0f",
            "\u3000",
            "supercalifragilistic",
            "\r\n",
            "\x07",
            "\udfff",
        ]
    ),
)


def _texts(max_repeat: int) -> st.SearchStrategy[str]:
    """Pieces repeated up to ``max_repeat`` times: long words and long runs come cheap."""
    pieces = st.lists(st.tuples(_PIECES, st.integers(1, max_repeat)), max_size=10)
    return pieces.map(lambda ps: "".join(piece * n for piece, n in ps))


def _runs(max_repeat: int) -> st.SearchStrategy[list[Run]]:
    run = st.builds(Run, _texts(max_repeat), st.sampled_from(TAG_SETS))
    return st.lists(run, max_size=6)


def assert_split_well(runs: list[Run], limit: int) -> None:
    """Each chunk is valid Telegram HTML within ``limit`` units after parsing, and together
    they are the input text, give or take whitespace where one chunk ends and the next starts."""
    texts = []
    for html in render_chunks(runs, limit):
        stack: list[str] = []
        for m in _TAG.finditer(html):
            tag = m.group()
            if tag.startswith("</"):
                assert stack and stack.pop() == tag[2:-1], html
            else:
                assert tag in OPENING, html
                stack.append(tag[1:-1].split()[0])
        assert not stack, html
        outside = _TAG.sub("", html)
        assert "<" not in outside and ">" not in outside, html
        assert "&" not in re.sub(r"&(lt|gt|amp);", "", outside), html
        text, _ = parsed(html)  # and Telegram's own parser accepts it
        assert 0 < utf16_len(text) <= limit
        texts.append(text)
    rest = "".join(clean(r.text) for r in runs)
    for text in texts:
        rest = rest.lstrip()
        assert rest.startswith(text)
        rest = rest[len(text) :]
    assert not rest.strip()


@settings(max_examples=300, deadline=None)
@given(runs=_runs(max_repeat=40), limit=st.integers(2, 300))
def test_any_text_splits_into_valid_messages_within_any_limit(runs: list[Run], limit: int) -> None:
    assert_split_well(runs, limit)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(runs=_runs(max_repeat=3000))
def test_any_text_splits_into_valid_messages_within_telegrams_limit(runs: list[Run]) -> None:
    assert_split_well(runs, MAX_MESSAGE_UNITS)


# -- buttons -------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "paper_id", ["2601.19278", "0704.0001", "math-ph/0611800", "supr-con/9608008", "hep-th/9901001"]
)
def test_callback_data_round_trips_within_64_bytes(paper_id: str) -> None:
    for value in (1, -1):
        data = encode_rating(value, paper_id)
        assert len(data.encode()) <= MAX_CALLBACK_BYTES
        assert decode_rating(data) == (value, paper_id)


def test_callback_data_rejects_what_it_cannot_carry() -> None:
    with pytest.raises(ValueError, match="64"):
        encode_rating(1, "x" * 61)
    for junk in (None, "", "r", "r:+", "r:+:", "r:*:2601.19278", "x:+:2601.19278", "more:1"):
        assert decode_rating(junk) is None


def test_keyboard_shows_the_tally() -> None:
    markup = keyboard(rating_buttons("2601.19278", 3, 0))
    assert markup is not None
    kb = markup["inline_keyboard"]
    assert [(b["text"], b["callback_data"]) for b in kb[0]] == [
        ("👍 3", "r:+:2601.19278"),
        ("👎", "r:-:2601.19278"),
    ]
    assert keyboard(()) is None  # a card without buttons gets no keyboard at all


# -- incoming commands ---------------------------------------------------------------------------
def message(text: str, chat_type: str = "private", chat_id: int = 1001) -> Message:
    return Message.de_json(
        {
            "message_id": 5,
            "date": 1769000000,
            "chat": {"id": chat_id, "type": chat_type, "title": "Lab"},
            "from": {"id": 1001, "is_bot": False, "first_name": "Alice"},
            "text": text,
            "entities": [{"type": "bot_command", "offset": 0, "length": len(text.split()[0])}],
        },
        None,
    )


def test_commands_from_private_and_group_messages() -> None:
    cmd = command_from_message(message('/keywords add "speculative decoding" moe'), "herald_bot")
    assert cmd is not None
    assert (cmd.platform, cmd.chat, cmd.user, cmd.name) == ("telegram", "1001", "1001", "keywords")
    assert cmd.args == ("add", "speculative decoding", "moe") and not cmd.is_group

    group = message("/Settings@Herald_Bot max 5", "supergroup", -100123)
    cmd = command_from_message(group, "herald_bot", is_admin=True)
    assert cmd is not None and cmd.name == "settings" and cmd.args == ("max", "5")
    assert cmd.chat == "-100123" and cmd.is_group and cmd.is_admin

    assert command_from_message(message("/help@other_bot"), "herald_bot") is None
    assert command_from_message(message("hello"), "herald_bot") is None
    cmd = command_from_message(message("/keywords\nadd x"), "herald_bot")
    assert cmd is not None and cmd.name == "keywords" and cmd.args == ("add", "x")
