"""Pure Slack rendering and parsing (adapters/slack/blocks.py): no network."""

from __future__ import annotations

import datetime as dt
import json
import re
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from adapters.slack.blocks import (
    ITEM_EVENT,
    MAX_BLOCKS,
    RATE_BLOCK,
    SECTION_MAX,
    clip_escaped,
    escape_mrkdwn,
    metadata_matches,
    parse_action,
    parse_slash,
    render_card,
    render_header,
    render_item,
    split_text,
    summary_mrkdwn,
    with_buttons,
)
from bot.cards import card_for, rating_buttons
from bot.models import Card, Digest, Paper, Reason, ScoredPaper, Subscription, SummaryStatus
from tests.conftest import DAY
from tests.fakes.slack import (
    GENERAL_CHANNEL,
    MAX_MESSAGE_TEXT,
    block_action_payload,
    slash_command_payload,
    validate_blocks,
)

HOSTILE_TITLES = [
    "<!channel> Attention is all you need",
    "<!here|here> & <!everyone>",
    "See <https://evil.example|arxiv.org/abs/2601.00001> now",
    "<@U0ALICE> and <#C0GENERAL> & co: A < B > C",
    "Ampersands &amp; entities &lt;b&gt; stay literal",
    "*bold* _it_ ~strike~ `code` | pipes | in > title",
]


def _sub(**kw: Any) -> Subscription:
    base = dict(id=7, platform="slack", chat=GENERAL_CHANNEL, categories=("cs.LG", "cs.CL"))
    return Subscription(**{**base, **kw})


def _paper(title: str = "A paper", **kw: Any) -> Paper:
    base = dict(
        id="2601.00001",
        version=2,
        title=title,
        authors=("Ada Lovelace", "Alan Turing"),
        categories=("cs.LG", "cs.AI"),
        abstract="We study things & report <results>.",
    )
    return Paper(**{**base, **kw})


def _item(paper: Paper | None = None, **kw: Any) -> ScoredPaper:
    base: dict[str, Any] = dict(
        paper=paper or _paper(),
        score=2.5,
        reasons=[Reason("keyword", "“LLM” in abstract (+1)", 1.0)],
        category="cs.LG",
        summary="**Contributions**: a <method> & more.\n\n- point one\n- point two",
        summary_status=SummaryStatus.OK,
        summary_model="gpt-4o-mini",
    )
    return ScoredPaper(**{**base, **kw})


def _digest(items: list[ScoredPaper]) -> Digest:
    return Digest(subscription=_sub(), day=dt.date(2026, 1, 22), items=items)


def _render(item: ScoredPaper, **card: Any) -> list[dict[str, Any]]:
    """An item's thread messages in a digest, through its card, as delivery sends them."""
    return render_item(_digest([item]), card_for(item, **card))


def _texts(message: dict[str, Any]) -> list[str]:
    """Every string Slack would parse as mrkdwn in a message (fallback + block texts)."""
    out = [message["text"]]
    for block in message["blocks"]:
        if "text" in block:
            out.append(block["text"]["text"])
        for el in block.get("elements", []):
            if isinstance(el.get("text"), str):
                out.append(el["text"])
    return out


def _assert_slack_accepts(message: dict[str, Any]) -> None:
    assert validate_blocks(message["blocks"]) == []
    assert len(message["blocks"]) <= MAX_BLOCKS
    assert 0 < len(message["text"]) <= MAX_MESSAGE_TEXT
    # Slack's limits count characters, not JSON escapes (a non-ASCII title would count 6x).
    assert len(json.dumps(message["blocks"], ensure_ascii=False)) < 40_000


ITEM_METADATA = {"event_type": ITEM_EVENT, "event_payload": {"paper": "2601.00001"}}
_CONTROL = re.compile(r"<([^>]*)>")


def _controls(text: str) -> list[str]:
    """The ``<…>`` sequences Slack would interpret (links, mentions, channel pings)."""
    return _CONTROL.findall(text)


# -- escaping --------------------------------------------------------------------------------
def test_escape_mrkdwn_replaces_exactly_the_three_control_characters():
    assert escape_mrkdwn("a & b < c > d") == "a &amp; b &lt; c &gt; d"
    assert escape_mrkdwn("&amp;") == "&amp;amp;"  # text is text, even if it looks escaped
    assert escape_mrkdwn("*_~`|@channel") == "*_~`|@channel"


def test_clip_escaped_never_cuts_an_entity():
    out = clip_escaped("&" * 5000, 100)
    assert len(out) <= 100 and out.endswith("…")
    assert re.fullmatch(r"(&amp;)+…", out)


@pytest.mark.parametrize("title", HOSTILE_TITLES)
def test_hostile_titles_cannot_ping_or_link(title):
    paper = _paper(title, authors=(title,), abstract=title)
    item = _item(paper, summary=title, reasons=[Reason("keyword", title, 1.0)])
    (message,) = _render(item)
    _assert_slack_accepts(message)
    for text in _texts(message):
        # The only control sequence left is our own link to the paper.
        assert all(c.startswith("https://arxiv.org/abs/2601.00001|") for c in _controls(text))
        assert "<!" not in text and "<@" not in text and "<#" not in text
    head = message["blocks"][0]["text"]["text"]
    assert escape_mrkdwn(" ".join(title.split())) in head


_HOSTILE_BITS = [
    "<", ">", "&", "<!channel>", "<!here|here>", "<!everyone>", "<@U123>", "<#C0GENERAL>",
    "<https://evil.example|arxiv.org/abs/2601.00001>", "&amp;", "&lt;", "&gt", "*", "_", "~",
    "`", "|", "\n", "\n\n", " ", "**bold**", "# heading", "- bullet", "> quote", "<!-- x -->",
]  # fmt: skip
_bit = st.sampled_from(_HOSTILE_BITS)
# Any character arXiv's XML can carry: no C0 controls (besides the whitespace in _bit), no
# lone surrogates.
_chars = st.characters(exclude_categories=("Cc", "Cs"))
# Ordinary text, text stitched from Slack's control sequences, and very long runs of either.
_text = st.one_of(
    st.text(_chars, max_size=300),
    st.lists(st.one_of(_bit, st.text(_chars, max_size=12)), max_size=80).map("".join),
    st.tuples(
        st.one_of(_bit, st.text(_chars, min_size=1, max_size=8)),
        st.one_of(st.integers(1, 100), st.integers(3000, 6000)),
    ).map(lambda t: t[0] * t[1]),
)
_OUR_LINK = re.compile(r"\*<https://arxiv\.org/abs/2601\.00001\|([^<>]*)>\*")
_ENTITY = re.compile(r"&(?:amp|lt|gt);")


@st.composite
def _cards(draw: st.DrawFn) -> tuple[Card, bool]:
    """A card of a paper whose every text field is arbitrary; True when it carries a note."""
    paper = _paper(
        draw(_text),
        authors=tuple(draw(st.lists(_text, max_size=8))),
        categories=tuple(draw(st.lists(_text, min_size=1, max_size=4))),
        abstract=draw(_text),
    )
    summary = draw(st.one_of(st.none(), _text))
    status = draw(st.sampled_from(list(SummaryStatus)))
    item = _item(
        paper,
        score=draw(st.floats(-1e6, 1e6)),
        reasons=[Reason("keyword", t, 1.0) for t in draw(st.lists(_text, max_size=8))],
        category=draw(_text),
        announce_type=draw(_text),
        summary=summary,
        summary_status=status,
        summary_note=draw(st.one_of(st.none(), _text)),
        summary_model=draw(st.one_of(st.none(), _text)),
        explore=draw(st.booleans()),
    )
    card = card_for(
        item,
        top_n=draw(st.integers(1, 50)),
        show_score=draw(st.booleans()),
        buttons=draw(st.booleans()),
        tally=(draw(st.integers(0, 10**6)), draw(st.integers(0, 10**6))),
    )
    return card, draw(st.booleans())


@settings(max_examples=500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_cards())
def test_any_card_renders_within_limits_and_inert(card_and_note):
    card, with_note = card_and_note
    note = f"/summarize requested by <@{GENERAL_CHANNEL}>" if with_note else None
    messages = render_card(card, note=note, metadata=ITEM_METADATA)
    assert messages
    for i, message in enumerate(messages):
        _assert_slack_accepts(message)
        for block in message["blocks"]:
            if block["type"] == "section":
                assert len(block["text"]["text"]) <= SECTION_MAX
            if block["type"] == "context":
                assert all(len(el["text"]) <= SECTION_MAX for el in block["elements"])
        texts = _texts(message)
        if i == 0 and note:  # our own trusted note, never user text
            assert texts.pop(1) == note
        if i == 0:
            # The title link we generate is the one control sequence; its text is escaped.
            head = message["blocks"][1 if note else 0]["text"]["text"]
            assert _OUR_LINK.match(head)
            texts[texts.index(head)] = _OUR_LINK.sub("", head, count=1)
        for text in texts:
            assert "<" not in text and ">" not in text
            assert "&" not in _ENTITY.sub("", text)  # no entity cut in half or left raw


def test_five_kilobyte_title_is_clipped_not_refused():
    title = "<!channel> " + "Very & long <title> " * 260
    assert len(title) > 5000
    paper = _paper(title)
    item = _item(paper)
    messages = _render(item)
    for message in messages:
        _assert_slack_accepts(message)
        for text in _texts(message):
            assert len(text) <= SECTION_MAX
            assert all(c.startswith("https://arxiv.org/abs/") for c in _controls(text))
    head = messages[0]["blocks"][0]["text"]["text"]
    assert "…>*" in head  # clipped inside the link, the link still closes


def test_header_names_day_count_and_categories():
    items = [_item(_paper(id=f"2601.0000{i}")) for i in range(3)]
    header = render_header(_digest(items))
    assert header["text"] == "arXiv digest · Thu 22 Jan 2026 · 3 papers · cs.LG, cs.CL"
    assert header["metadata"] == {
        "event_type": ITEM_EVENT,
        "event_payload": {"subscription": 7, "day": "2026-01-22", "paper": ""},
    }
    _assert_slack_accepts(header)


def test_item_has_link_authors_type_score_reasons_summary_and_buttons():
    item = _item()
    (message,) = _render(item)
    blocks = message["blocks"]
    head = blocks[0]["text"]["text"]
    assert head.startswith("*<https://arxiv.org/abs/2601.00001|A paper>*")
    assert "Ada Lovelace, Alan Turing" in head
    assert "cs.LG · new · also cs.AI" in head and "`2601.00001v2`" in head
    why = blocks[1]["elements"][0]["text"]
    assert "Score *2.5*" in why and "“LLM” in abstract (+1)" in why
    assert "Summary by gpt-4o-mini" in blocks[2]["elements"][0]["text"]
    summary = blocks[3]["text"]["text"]
    assert summary == "*Contributions*: a &lt;method&gt; &amp; more.\n\n• point one\n• point two"
    assert blocks[-1]["block_id"] == RATE_BLOCK
    assert [b["action_id"] for b in blocks[-1]["elements"]] == ["rate_up", "rate_down"]
    assert {b["value"] for b in blocks[-1]["elements"]} == {"2601.00001"}
    assert message["metadata"]["event_payload"] == {
        "subscription": 7,
        "day": "2026-01-22",
        "paper": "2601.00001",
    }
    assert message["text"].startswith("A paper (2601.00001v2) — Ada Lovelace")


def test_missing_summary_shows_abstract_and_visible_marker():
    item = _item(summary=None, summary_status=SummaryStatus.FAILED, summary_note="HTTP 500: boom")
    (message,) = _render(item)
    texts = "\n".join(_texts(message))
    assert "no summary yet: the LLM call failed (HTTP 500: boom)" in texts
    assert "We study things &amp; report &lt;results&gt;." in texts


def test_long_marker_beside_a_summary_is_clipped():
    note = "<!channel> & " * 1000  # e.g. an LLM provider's error page, quoted in the note
    for status in (SummaryStatus.FAILED, SummaryStatus.ABSTRACT_ONLY):
        item = _item(summary_status=status, summary_note=note)
        for message in _render(item):
            _assert_slack_accepts(message)
            for text in _texts(message):
                assert len(text) <= SECTION_MAX and "<!" not in text
        (by,) = [t for t in _texts(_render(item)[0]) if "Summary by" in t]
        assert by.endswith("…") and "&lt;!channel&gt; &amp;" in by


def test_long_summary_splits_into_thread_messages_within_limits():
    paragraph = "Results & <numbers> improve by 3.2% over the baseline. " * 40
    summary = "\n\n".join(f"**Part {i}** {paragraph}" for i in range(20))
    assert len(summary) > 40_000
    item = _item(summary=summary)
    messages = _render(item)
    assert len(messages) >= 4
    for i, message in enumerate(messages, 1):
        _assert_slack_accepts(message)
        payload = message["metadata"]["event_payload"]
        assert (payload["part"], payload["parts"], payload["paper"]) == (
            i,
            len(messages),
            "2601.00001",
        )
    # Buttons only on the first part, which the ledger records as the item's message.
    with_buttons = [m for m in messages if any(b.get("type") == "actions" for b in m["blocks"])]
    assert with_buttons == [messages[0]]
    assert "continued (2/" in messages[1]["text"]
    # Nothing lost: every part of the summary is somewhere, in order.
    body = "\n".join(
        b["text"]["text"]
        for m in messages
        for b in m["blocks"]
        if b["type"] == "section" and "Part" in b["text"]["text"]
    )
    found = [int(n) for n in re.findall(r"\*Part (\d+)\*", body)]
    assert found == list(range(20))
    assert body.count("improve by 3.2%") == 20 * 40


def test_split_text_prefers_boundaries_and_keeps_entities_whole():
    text = escape_mrkdwn("&" * 7000)
    pieces = split_text(text, 3000)
    assert all(len(p) <= 3000 for p in pieces)
    assert "".join(pieces) == text
    assert all(re.fullmatch(r"(&amp;)+", p) for p in pieces)
    words = "word " * 2000
    assert all(not p.startswith(" ") and len(p) <= 3000 for p in split_text(words))


def test_summary_mrkdwn_drops_html_comments_and_escapes():
    md = "# Title\n**Bold** <script>alert(1)</script>\n<!-- fake:gpt:1234 -->"
    assert summary_mrkdwn(md) == "*Title*\n*Bold* &lt;script&gt;alert(1)&lt;/script&gt;"


def test_summarize_answer_without_subscription_has_no_score_or_buttons():
    card = card_for(_item(), buttons=False, show_score=False)
    (message,) = render_card(card, note="asked by <@U1>")
    assert message["blocks"][0]["elements"][0]["text"] == "asked by <@U1>"
    assert not any(b["type"] == "actions" for b in message["blocks"])
    assert not any("Score" in t for t in _texts(message))


def test_every_paper_of_a_real_day_renders_within_limits(engine):
    sub = engine.store.upsert_subscription(
        _sub(id=None, categories=("cs.AI", "cs.CL", "cs.DC", "cs.LG"), max_papers=100)
    )
    digest = engine.digests([sub], dt.date.fromisoformat(DAY))[0]
    assert len(digest.items) >= 30
    _assert_slack_accepts(render_header(digest))
    for item in digest.items:
        for message in render_item(digest, card_for(item)):
            _assert_slack_accepts(message)
            for text in _texts(message):
                assert all(c.startswith("https://arxiv.org/abs/") for c in _controls(text))


# -- tally -----------------------------------------------------------------------------------
def test_buttons_carry_the_tally():
    (message,) = _render(_item(), tally=(2, 0))
    labels = [el["text"]["text"] for el in message["blocks"][-1]["elements"]]
    assert labels == ["👍 2", "👎"]


def test_with_buttons_relabels_the_rating_buttons_in_place():
    (message,) = _render(_item())
    blocks = with_buttons(message["blocks"], rating_buttons("2601.00001", 3, 1))
    assert len(blocks) == len(message["blocks"]) and blocks[:-1] == message["blocks"][:-1]
    labels = [el["text"]["text"] for el in blocks[-1]["elements"]]
    assert labels == ["👍 3", "👎 1"]
    assert {el["value"] for el in blocks[-1]["elements"]} == {"2601.00001"}
    again = with_buttons(blocks, rating_buttons("2601.00001"))
    assert again[-1]["elements"][0]["text"]["text"] == "👍"
    assert message["blocks"][-1]["elements"][0]["text"]["text"] == "👍"  # input untouched
    # A message echoed without its buttons gets them back at the end.
    bare = [b for b in message["blocks"] if b["type"] != "actions"]
    added = with_buttons(bare, rating_buttons("2601.00001", 1, 0))
    assert added[:-1] == bare and added[-1]["block_id"] == RATE_BLOCK
    assert validate_blocks(added) == []


def test_metadata_matches_only_the_first_part_of_the_same_row():
    day = dt.date(2026, 1, 22)
    item = _item(summary="x " * 30_000)
    first, second, *_ = _render(item)
    assert metadata_matches(first, 7, day, "2601.00001")
    assert not metadata_matches(second, 7, day, "2601.00001")
    assert not metadata_matches(first, 8, day, "2601.00001")
    assert not metadata_matches(first, 7, day + dt.timedelta(days=1), "2601.00001")
    assert not metadata_matches({"metadata": {"event_type": "other"}}, 7, day, "2601.00001")


# -- payloads ----------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("command", "text", "name", "args"),
    [
        ("/arxiv", 'keywords add "speculative decoding" moe', "keywords",
         ("add", "speculative decoding", "moe")),
        ("/arxiv", "settings time 08:30 tz Europe/Berlin", "settings",
         ("time", "08:30", "tz", "Europe/Berlin")),
        ("/arxiv", "", "help", ()),
        ("/arxiv", "SUBSCRIBE cs.LG", "subscribe", ("cs.LG",)),
        ("/arxiv", "/status", "status", ()),
        ("/summarize", "https://arxiv.org/abs/2601.19278", "summarize",
         ("https://arxiv.org/abs/2601.19278",)),
        ("/summarize", "", "summarize", ()),
    ],
)  # fmt: skip
def test_parse_slash(command, text, name, args):
    cmd = parse_slash(slash_command_payload(command, text, channel_id="C0PAPERS"), is_admin=True)
    assert (cmd.platform, cmd.chat, cmd.user) == ("slack", "C0PAPERS", "U0ALICE")
    assert (cmd.name, cmd.args) == (name, args)
    assert cmd.is_group and cmd.is_admin


def test_parse_slash_direct_message_is_not_a_group():
    cmd = parse_slash(slash_command_payload("/arxiv", "status", channel_id="D0ALICE"))
    assert not cmd.is_group and not cmd.is_admin


def test_parse_slash_rejects_foreign_commands():
    with pytest.raises(ValueError):
        parse_slash(slash_command_payload("/giphy", "cats"))


def test_parse_action():
    payload = block_action_payload(
        "rate_down", "2601.00001", message_ts="1.000200", thread_ts="1.000100"
    )
    press = parse_action(payload)
    assert (press.channel, press.user, press.paper_id, press.value) == (
        GENERAL_CHANNEL,
        "U0ALICE",
        "2601.00001",
        -1,
    )
    assert (press.message_ts, press.thread_ts) == ("1.000200", "1.000100")
    assert parse_action(block_action_payload("rate_up", "x", message_ts="1.1")).value == 1
    with pytest.raises(ValueError):
        parse_action(block_action_payload("other", "x", message_ts="1.1"))
    with pytest.raises(ValueError):
        parse_action(block_action_payload("rate_up", "", message_ts="1.1"))
