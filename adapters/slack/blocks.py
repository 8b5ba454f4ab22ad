"""Pure Slack translation: digests → Block Kit messages, payloads → plain values.

No network here, so every limit and every escape is unit-tested directly.  Slack's rules:
at most 50 blocks per message, 3,000 characters per section/context text, ~40,000 per
message; ``&``, ``<`` and ``>`` must be escaped in any text Slack parses as mrkdwn, or a paper
title like ``<!channel>`` would ping a whole channel.
"""

from __future__ import annotations

import copy
import datetime as dt
import re
from dataclasses import dataclass
from typing import Any

from bot.cards import RATE_DOWN, RATE_UP, CompactDigest, CompactEntry, header_text
from bot.commands import make_command
from bot.models import Button, Card, Command, Digest

Message = dict[str, Any]  # keyword arguments for chat.postMessage (text, blocks, metadata)

PLATFORM = "slack"
ITEM_EVENT = "arxiv_herald_item"  # metadata event_type on every digest message
SUMMARY_EVENT = "arxiv_herald_summary"  # metadata event_type on /summarize answers
ANSWER_EVENT = "arxiv_herald_answer"  # metadata event_type on /arxiv ask answers
RATE_BLOCK = "arxiv_rate"
ARXIV_COMMAND, SUMMARIZE_COMMAND = "/arxiv", "/summarize"

MAX_BLOCKS = 50
SECTION_MAX = 3000
# Slack accepts ~40k characters, but clients collapse long messages and large block payloads
# are refused (msg_blocks_too_long); 12k of block text per message keeps every part readable.
MESSAGE_BUDGET = 12_000
FALLBACK_MAX = 1000
TITLE_MAX = 1000  # a real arXiv title is < 300 characters; longer ones are hostile or broken
AUTHORS_MAX = 600
LINE_MAX = 600
REASONS_MAX = 2000
REPLY_MAX = 38_000

_COMMENT = re.compile(r"<!--.*?-->", re.DOTALL)
_BOLD = re.compile(r"\*\*(?=\S)(.+?)(?<=\S)\*\*")
_HEADING = re.compile(r"^#{1,6}\s+(.+?)\s*#*\s*$", re.MULTILINE)
_BULLET = re.compile(r"^(\s*)[-*+]\s+", re.MULTILINE)


# -- text --------------------------------------------------------------------------------------
def escape_mrkdwn(text: str) -> str:
    """Escape the three characters Slack treats as control sequences in mrkdwn text."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def clip(text: str, limit: int) -> str:
    """One line of at most ``limit`` characters (whitespace collapsed), "…" when cut."""
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


def clip_escaped(text: str, limit: int) -> str:
    """Escape ``text`` and keep the result within ``limit`` characters, never cutting an
    entity (``&amp;``) in half: the raw text is shortened until its escaped form fits."""
    out = escape_mrkdwn(clip(text, limit))
    if len(out) <= limit:
        return out
    used = 0
    kept: list[str] = []
    budget = limit - 1
    for ch in " ".join(text.split()):
        size = len(escape_mrkdwn(ch))
        if used + size > budget:
            break
        kept.append(ch)
        used += size
    return escape_mrkdwn("".join(kept)) + "…"


def summary_mrkdwn(markdown: str) -> str:
    """An LLM's Markdown as Slack mrkdwn: escaped first, then **bold**/headings/bullets mapped.

    HTML comments are dropped: Markdown renderers hide them, Slack would print them.
    """
    text = escape_mrkdwn(_COMMENT.sub("", markdown).strip())
    text = _HEADING.sub(r"*\1*", text)
    text = _BOLD.sub(r"*\1*", text)
    return _BULLET.sub(r"\1• ", text)


def split_text(text: str, limit: int = SECTION_MAX) -> list[str]:
    """Cut already-escaped mrkdwn into pieces of at most ``limit`` characters, preferring
    paragraph, then line, then word boundaries, and never splitting an ``&…;`` entity."""
    pieces: list[str] = []
    rest = text.strip()
    while len(rest) > limit:
        window = rest[: limit + 1]
        cut = -1
        for sep in ("\n\n", "\n", " "):
            at = window.rfind(sep, 0, limit)
            if at >= limit // 3:
                cut = at
                break
        if cut <= 0:
            cut = limit
            amp = rest.rfind("&", max(0, cut - 5), cut)
            if amp != -1 and ";" not in rest[amp:cut]:
                cut = amp
        pieces.append(rest[:cut].rstrip())
        rest = rest[cut:].lstrip()
    if rest:
        pieces.append(rest)
    return pieces


# -- blocks ------------------------------------------------------------------------------------
def section(text: str) -> dict[str, Any]:
    return {"type": "section", "text": {"type": "mrkdwn", "text": text}}


def context(text: str) -> dict[str, Any]:
    return {"type": "context", "elements": [{"type": "mrkdwn", "text": text}]}


def buttons_block(buttons: tuple[Button, ...]) -> dict[str, Any]:
    """A card's buttons (👍 / 👎 with their tally) as one actions block."""
    return {
        "type": "actions",
        "block_id": RATE_BLOCK,
        "elements": [
            {
                "type": "button",
                "action_id": b.action,
                "value": b.paper_id,
                "text": {"type": "plain_text", "text": b.label, "emoji": True},
            }
            for b in buttons
        ],
    }


def with_buttons(blocks: list[dict[str, Any]], buttons: tuple[Button, ...]) -> list[dict[str, Any]]:
    """``blocks`` (as Slack echoes them in an action payload) with the rating buttons
    replaced by ``buttons`` (their new tally); added if the message had none.  In a compact
    message, the buttons of ``buttons``' paper are the ones replaced (each paper has its own
    actions block; its block_id is kept)."""
    out = copy.deepcopy(blocks)
    fresh = buttons_block(buttons)
    paper = buttons[0].paper_id if buttons else None
    rating = [
        i
        for i, block in enumerate(out)
        if block.get("type") == "actions"
        and any(el.get("action_id") in (RATE_UP, RATE_DOWN) for el in block.get("elements", []))
    ]
    mine = [i for i in rating if any(el.get("value") == paper for el in out[i]["elements"])]
    for i in mine[:1] or rating[:1]:
        fresh["block_id"] = out[i].get("block_id", RATE_BLOCK)
        out[i] = fresh
        return out
    return [*out, fresh]


def item_metadata(
    subscription: int | None, day: dt.date | None, paper_id: str, part: int = 1, parts: int = 1
) -> dict[str, Any]:
    """Slack message metadata that lets delivery find a message again after a crash."""
    payload: dict[str, Any] = {
        "subscription": subscription,
        "day": day.isoformat() if day else "",
        "paper": paper_id,
    }
    if parts > 1:
        payload.update(part=part, parts=parts)
    return {"event_type": ITEM_EVENT, "event_payload": payload}


def render_header(digest: Digest) -> Message:
    """The day's parent message: "arXiv digest · <weekday date> · N papers · <categories>"."""
    head = header_text(digest)
    return {
        "text": escape_mrkdwn(head),
        "blocks": [
            section(f"*{escape_mrkdwn(head)}*"),
            context("One reply per paper in the thread · 👍 / 👎 tune the next digest"),
        ],
        "metadata": item_metadata(digest.subscription.id, digest.day, ""),
    }


def _card_blocks(card: Card) -> list[dict[str, Any]]:
    title = clip_escaped(card.title, TITLE_MAX)
    line = card.type_line + (f" · also {', '.join(card.also)}" if card.also else "")
    head = (
        f"*<{escape_mrkdwn(card.url)}|{title}>*\n"
        f"{clip_escaped(card.authors_short(), AUTHORS_MAX)}\n"
        f"{clip_escaped(line, LINE_MAX)} · `{clip_escaped(card.versioned_id, 60)}`"
    )
    blocks = [section(head)]
    if card.score is not None:
        why = clip_escaped(card.why(), REASONS_MAX)
        explore = " · _exploring_" if card.explore else ""
        blocks.append(context(f"Score *{card.score:.1f}*{explore} · {why}"))
    marker = card.marker
    if card.summary:
        body = summary_mrkdwn(card.summary)
        by = f"🤖 Summary by {clip_escaped(card.summary_by or 'an LLM', 100)}"
        blocks.append(context(by + (f" · ⚠️ {clip_escaped(marker, REASONS_MAX)}" if marker else "")))
    else:
        body = "*Abstract*\n" + escape_mrkdwn(card.abstract or "(none)")
        if marker:
            blocks.append(context(f"⚠️ {clip_escaped(marker, REASONS_MAX)}"))
    blocks += [section(piece) for piece in split_text(body, SECTION_MAX)]
    return blocks


def _block_chars(block: dict[str, Any]) -> int:
    if "text" in block:
        return len(block["text"]["text"])
    return sum(len(el.get("text", "")) for el in block.get("elements", []))


def _pack(blocks: list[dict[str, Any]]) -> list[list[dict[str, Any]]]:
    """Group blocks into messages within the block and character budgets, one block slot
    kept free in each (the first gets the rating buttons, the others a "continued" line)."""
    groups: list[list[dict[str, Any]]] = [[]]
    chars = 0
    for block in blocks:
        size = _block_chars(block)
        cur = groups[-1]
        if cur and (len(cur) + 1 > MAX_BLOCKS - 1 or chars + size > MESSAGE_BUDGET):
            groups.append([])
            chars = 0
        groups[-1].append(block)
        chars += size
    return groups


def render_card(
    card: Card,
    *,
    metadata: dict[str, Any] | None = None,
    note: str | None = None,
) -> list[Message]:
    """One paper as one or more messages (long summaries split); the first message carries
    the metadata and the card's buttons, the rest continue in the same thread.  ``note`` is
    trusted mrkdwn shown above the paper (e.g. who asked for it)."""
    groups = _pack([context(note), *_card_blocks(card)] if note else _card_blocks(card))
    n = len(groups)
    title = clip(card.title, 300)
    messages: list[Message] = []
    for i, group in enumerate(groups, 1):
        blocks = group
        if i == 1:
            fallback = f"{title} ({card.versioned_id}) — {card.authors_short()} — {card.url}"
            if card.buttons:
                blocks = [*blocks, buttons_block(card.buttons)]
        else:
            fallback = f"{title} ({card.versioned_id}), continued ({i}/{n})"
            blocks = [context(f"_continued ({i}/{n})_"), *blocks]
        msg: Message = {"text": clip_escaped(fallback, FALLBACK_MAX), "blocks": blocks}
        if metadata is not None:
            md = copy.deepcopy(metadata)
            if n > 1:
                md["event_payload"].update(part=i, parts=n)
            msg["metadata"] = md
        messages.append(msg)
    return messages


def render_item(digest: Digest, card: Card) -> list[Message]:
    """A digest's thread reply for one paper (several when it must be split)."""
    md = item_metadata(digest.subscription.id, digest.day, card.paper_id)
    return render_card(card, metadata=md)


# -- the compact layout: one message listing the day's papers ----------------------------------
#: Each paper is a section and its actions block: 2 of the 50 blocks a message may hold.
COMPACT_ENTRIES_MAX = 20
COMPACT_TITLE_MAX = 600  # escaped: the view model keeps titles to 200 characters
COMPACT_BYLINE_MAX = 300
COMPACT_SUMMARY_MAX = 1500


def _compact_entry_blocks(e: CompactEntry) -> list[dict[str, Any]]:
    text = (
        f"*{e.number}. <{escape_mrkdwn(e.url)}|{clip_escaped(e.title, COMPACT_TITLE_MAX)}>*\n"
        f"{clip_escaped(e.byline, COMPACT_BYLINE_MAX)}"
    )
    if e.score is not None:
        text += f" · *{e.score:.1f}*" + (" · _exploring_" if e.explore else "")
    if e.summary:
        text += "\n" + clip_escaped(e.summary, COMPACT_SUMMARY_MAX)
    block = section(text)
    block["block_id"] = f"arxiv_paper_{e.number}"
    rate = buttons_block(e.buttons)
    rate["block_id"] = f"{RATE_BLOCK}_{e.number}"
    return [block, rate] if e.buttons else [block]


def _compact_head_blocks(part: CompactDigest) -> list[dict[str, Any]]:
    if part.header is None:
        return [context(f"_arXiv digest · {part.day:%a %d %b} (continued)_")]
    return [
        section(f"*{escape_mrkdwn(part.header)}*"),
        context("All papers in this one message · 👍 / 👎 tune the next digest"),
    ]


def _compact_note_blocks(part: CompactDigest) -> list[dict[str, Any]]:
    return [context(f"⚠️ {clip_escaped(note, REASONS_MAX)}") for note in part.notes]


def render_compact(digest: Digest, part: CompactDigest) -> Message:
    """A compact digest message (or one part of it): the header, each paper as a numbered
    section with its own 👍 / 👎, and what is missing.  Its metadata names the first row it
    carries (the header, or a later part's first paper), like the thread layout's messages,
    so a crash's unsure message is found the same way."""
    blocks = _compact_head_blocks(part)
    for e in part.entries:
        blocks += _compact_entry_blocks(e)
    blocks += _compact_note_blocks(part)
    first = "" if part.header is not None else (part.entries[0].paper_id if part.entries else "")
    fallback = part.header or f"arXiv digest · {part.day:%a %d %b} (continued)"
    return {
        "text": clip_escaped(fallback, FALLBACK_MAX),
        "blocks": blocks,
        "metadata": item_metadata(digest.subscription.id, digest.day, first),
    }


def compact_sizes(view: CompactDigest) -> list[int]:
    """How many of the view's papers each message holds: within 50 blocks
    (:data:`COMPACT_ENTRIES_MAX` papers) and :data:`MESSAGE_BUDGET` characters of text."""
    sizes: list[int] = []
    used = sum(map(_block_chars, _compact_head_blocks(view) + _compact_note_blocks(view)))
    size = 0
    for e in view.entries:
        n = sum(map(_block_chars, _compact_entry_blocks(e)))
        if size and (size >= COMPACT_ENTRIES_MAX or used + n > MESSAGE_BUDGET):
            sizes.append(size)
            used, size = _block_chars(_compact_head_blocks(CompactDigest(view.day, None, ()))[0]), 0
        used += n
        size += 1
    sizes.append(size)
    return sizes


def reply_text(text: str) -> str:
    """A command's reply as safe mrkdwn (it may quote titles and keywords people typed)."""
    out = escape_mrkdwn(text)
    return out if len(out) <= REPLY_MAX else split_text(out, REPLY_MAX - 1)[0] + "…"


# -- payloads → plain values ---------------------------------------------------------------------
def parse_slash(payload: dict[str, Any], *, is_admin: bool = False) -> Command:
    """A slash command payload as a :class:`Command`: ``/arxiv <sub> …`` → ``<sub>``,
    ``/summarize X`` → ``summarize``; a bare ``/arxiv`` is ``help``."""
    command = str(payload.get("command") or "")
    text = str(payload.get("text") or "").strip()
    channel = str(payload.get("channel_id") or "")
    user = str(payload.get("user_id") or "")
    if not channel or not user:
        raise ValueError("slash command payload without channel_id/user_id")
    if command == SUMMARIZE_COMMAND:
        text = f"summarize {text}"
    elif command == ARXIV_COMMAND:
        text = text.lstrip("/") or "help"
    else:
        raise ValueError(f"not an arxiv-herald command: {command!r}")
    return make_command(
        PLATFORM, channel, user, text, is_admin=is_admin, is_group=not channel.startswith("D")
    )


@dataclass(frozen=True, slots=True)
class RatingPress:
    """A 👍/👎 button press, out of a ``block_actions`` payload."""

    channel: str
    user: str
    paper_id: str
    value: int
    message_ts: str
    thread_ts: str | None
    blocks: list[dict[str, Any]]
    text: str


def parse_action(payload: dict[str, Any]) -> RatingPress:
    """The rating button in a ``block_actions`` payload; ValueError for anything else."""
    actions = payload.get("actions") or []
    action = next((a for a in actions if a.get("action_id") in (RATE_UP, RATE_DOWN)), None)
    if action is None:
        raise ValueError("no rating action in the payload")
    container = payload.get("container") or {}
    channel = (payload.get("channel") or {}).get("id") or container.get("channel_id")
    user = (payload.get("user") or {}).get("id")
    paper_id = str(action.get("value") or "").strip()
    message = payload.get("message") or {}
    ts = container.get("message_ts") or message.get("ts")
    if not channel or not user or not paper_id or not ts:
        raise ValueError("rating payload without channel, user, paper or message")
    thread_ts = container.get("thread_ts") or message.get("thread_ts")
    return RatingPress(
        channel=str(channel),
        user=str(user),
        paper_id=paper_id,
        value=1 if action["action_id"] == RATE_UP else -1,
        message_ts=str(ts),
        thread_ts=str(thread_ts) if thread_ts else None,
        blocks=list(message.get("blocks") or []),
        text=str(message.get("text") or ""),
    )


def metadata_matches(
    message: dict[str, Any], subscription: int | None, day: dt.date, paper_id: str
) -> bool:
    """Is ``message`` the (first part of the) ledger row (subscription, day, paper)?"""
    md = message.get("metadata") or {}
    if md.get("event_type") != ITEM_EVENT:
        return False
    p = md.get("event_payload") or {}
    return (
        str(p.get("subscription")) == str(subscription)
        and p.get("day") == day.isoformat()
        and p.get("paper") == paper_id
        and int(p.get("part") or 1) == 1
    )


# -- questions in a paper's thread (bot.ask) ------------------------------------------------------
def render_answer(
    text: str, *, note: str | None = None, metadata: dict[str, Any] | None = None
) -> Message:
    """An answer to a question about a paper (the core's text, with the LLM's Markdown) as one
    message; ``note`` is trusted mrkdwn shown above it (who asked)."""
    blocks = [context(note)] if note else []
    blocks += [section(piece) for piece in split_text(summary_mrkdwn(text), SECTION_MAX)]
    msg: Message = {"text": clip_escaped(text, FALLBACK_MAX), "blocks": blocks[:MAX_BLOCKS]}
    if metadata is not None:
        msg["metadata"] = metadata
    return msg


def paper_of(message: dict[str, Any]) -> str | None:
    """The paper one of our messages is about, from its metadata (``""``: a digest's header);
    None when it carries none of ours."""
    md = message.get("metadata") or {}
    if md.get("event_type") not in (ITEM_EVENT, SUMMARY_EVENT, ANSWER_EVENT):
        return None
    return str((md.get("event_payload") or {}).get("paper") or "")


@dataclass(frozen=True, slots=True)
class ThreadMessage:
    """A person's reply in a thread, out of a ``message`` event."""

    channel: str
    user: str
    ts: str
    thread_ts: str
    text: str  # the bot's mention removed, Slack's &amp; &lt; &gt; decoded
    addressed: bool  # the bot was mentioned


def parse_thread_message(event: dict[str, Any], bot_user_id: str | None) -> ThreadMessage | None:
    """A person's message in a thread, or None for anything else (top-level messages, edits,
    joins and other subtypes, bots' messages, empty text)."""
    if event.get("type") != "message" or event.get("bot_id"):
        return None
    if event.get("subtype") not in (None, "thread_broadcast"):
        return None
    channel, user = event.get("channel"), event.get("user")
    ts, thread_ts = event.get("ts"), event.get("thread_ts")
    if not (channel and user and ts and thread_ts) or ts == thread_ts:
        return None
    text = str(event.get("text") or "")
    mention = f"<@{bot_user_id}>" if bot_user_id else ""
    addressed = bool(mention) and mention in text
    if addressed:
        text = text.replace(mention, " ")
    text = " ".join(text.split()).replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")
    if not text:
        return None
    return ThreadMessage(str(channel), str(user), str(ts), str(thread_ts), text, addressed)
