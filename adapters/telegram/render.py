"""The pure half of the Telegram adapter: no network, no event loop.

* Digest header, digest items and plain replies as Telegram HTML, split into messages that each
  stay within 4,096 UTF-16 code units *after entity parsing* (what Telegram counts), on
  paragraph boundaries first, then lines, sentences, words, and only then hard.
* The 👍/👎 inline keyboard (as the Bot API's JSON: no objects to build for each of a fan-out's
  messages) and its ``callback_data`` (``r:+:<paper id>``, at most 64 bytes).
* The compact layout: a digest as one message (more only past the limit) with numbered
  👍/👎 rows, packed so that every message stays within Telegram's limits.
* A PTB ``Message`` carrying ``/cmd`` or ``/cmd@botname`` as a plain :class:`Command`.
* Chat addresses: a chat is ``-1001234``; a topic of a forum supergroup is ``-1001234/7``
  (chat id / message_thread_id).  Only this adapter reads them.

Text is modelled as *runs* (a piece of plain text plus the tags around it) rather than as an
HTML string: then every chunk can be rendered on its own with balanced tags, and the length
Telegram will count is simply the length of the runs' text.
"""

from __future__ import annotations

import datetime as dt
import html
import re
import unicodedata
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from telegram import InlineKeyboardMarkup, Message

from bot.cards import DOWN, UP, CompactDigest, CompactEntry, header_text, numbered
from bot.commands import make_command
from bot.models import Button, Card, Command, Digest

PLATFORM = "telegram"
MAX_MESSAGE_UNITS = 4096  # Telegram's limit, in UTF-16 code units of the parsed text
MAX_CALLBACK_BYTES = 64
GROUP_TYPES = frozenset({"group", "supergroup"})
RATING_KIND = "r"
SETTINGS_KIND = "h"
#: An inline keyboard holds at most 100 buttons; a compact message's 👍/👎 pairs (plus ⚙️)
#: stay well under it, two papers to a row.
MAX_COMPACT_ENTRIES = 40
COMPACT_ENTRIES_PER_ROW = 2
#: An inline keyboard as the Bot API takes it: ``{"inline_keyboard": [[{"text", …}]]}``.
Markup = dict[str, Any]

# C0 controls other than tab/newline, DEL, and lone surrogates cannot travel in a message.
_UNSENDABLE = re.compile(r"[\x00-\x08\x0b-\x1f\x7f\ud800-\udfff]")
_BOLD_MD = re.compile(r"\*\*(?=\S)(.+?)(?<=\S)\*\*")
_SENTENCE_END = re.compile(r"[.!?…。！？][\"'”’)\]]*\s+")


@dataclass(frozen=True, slots=True)
class Run:
    """Plain text plus its opening tags, outermost first (``('<b>', '<a href="…">')``)."""

    text: str
    tags: tuple[str, ...] = ()


# -- text helpers ------------------------------------------------------------------------------
def utf16_len(text: str) -> int:
    """Length in UTF-16 code units: the unit of Telegram's limits and entity offsets."""
    return len(text.encode("utf-16-le", "surrogatepass")) // 2


def clean(text: str) -> str:
    """Drop what cannot be sent (control characters, lone surrogates); unify newlines."""
    return _UNSENDABLE.sub("", (text or "").replace("\r\n", "\n").replace("\r", "\n"))


def one_line(text: str) -> str:
    """Collapse arXiv's hard-wrapped titles and author lists to one line."""
    return " ".join(clean(text).split())


def escape(text: str) -> str:
    """Escape text for parse_mode=HTML: Telegram wants exactly &, < and > escaped."""
    return html.escape(clean(text), quote=False)


def _attr(value: str) -> str:
    return html.escape(clean(value), quote=True)


def _close(tag: str) -> str:
    name = tag[1:].split(None, 1)[0].rstrip(">")
    return f"</{name}>"


def render_runs(runs: Iterable[Run]) -> str:
    """Runs as HTML, opening and closing only the tags that change between runs."""
    out: list[str] = []
    stack: list[str] = []
    for run in runs:
        if not run.text:
            continue
        keep = 0
        while keep < min(len(stack), len(run.tags)) and stack[keep] == run.tags[keep]:
            keep += 1
        while len(stack) > keep:
            out.append(_close(stack.pop()))
        for tag in run.tags[keep:]:
            out.append(tag)
            stack.append(tag)
        out.append(escape(run.text))
    while stack:
        out.append(_close(stack.pop()))
    return "".join(out)


# -- splitting ---------------------------------------------------------------------------------
def _fit(text: str, limit: int) -> int:
    """The largest index i with utf16_len(text[:i]) <= limit."""
    units = 0
    for i, ch in enumerate(text):
        units += 2 if ord(ch) > 0xFFFF else 1
        if units > limit:
            return i
    return len(text)


def _joins_previous(ch: str) -> bool:
    """Characters that must stay with the one before (accents, ZWJ, variation selectors)."""
    return bool(unicodedata.combining(ch)) or ch == "\u200d" or "\ufe00" <= ch <= "\ufe0f"


def _break_at(text: str, limit: int) -> int:
    """Where to end the first chunk: the last paragraph break that fits, else line, sentence,
    word, and only then a hard cut (never inside a grapheme's combining sequence).

    A boundary in the first half of the window is taken only when the second half has none
    at all: a paragraph break after the first 300 characters would otherwise turn one long
    item into many short messages.
    """
    end = _fit(text, limit)
    window = text[:end]
    sentences = [m.end() for m in _SENTENCE_END.finditer(window)]
    words = [m.start() for m in re.finditer(r"[ \t]", window)]
    candidates = [
        [m.start() for m in re.finditer(r"\n\n", window)],
        [m.start() for m in re.finditer(r"\n", window)],
        sentences,
        words,
    ]
    for floor in (end // 2, 1):
        for positions in candidates:
            good = [i for i in positions if i >= floor and window[:i].strip()]
            if good:
                return good[-1]
    cut = end
    while cut > 1 and (_joins_previous(text[cut]) or text[cut - 1] == "\u200d"):
        cut -= 1
    return cut if cut > 1 else end


def _cut(runs: Sequence[Run], at: int) -> tuple[list[Run], list[Run]]:
    head: list[Run] = []
    tail: list[Run] = []
    pos = 0
    for run in runs:
        n = len(run.text)
        if pos + n <= at:
            head.append(run)
        elif pos >= at:
            tail.append(run)
        else:
            head.append(Run(run.text[: at - pos], run.tags))
            tail.append(Run(run.text[at - pos :], run.tags))
        pos += n
    return head, tail


def _strip(runs: list[Run], *, left: bool, right: bool) -> list[Run]:
    runs = [r for r in runs if r.text]
    while left and runs and not runs[0].text.strip():
        runs.pop(0)
    if left and runs:
        runs[0] = Run(runs[0].text.lstrip(), runs[0].tags)
    while right and runs and not runs[-1].text.strip():
        runs.pop()
    if right and runs:
        runs[-1] = Run(runs[-1].text.rstrip(), runs[-1].tags)
    return runs


def split_runs(runs: Iterable[Run], limit: int = MAX_MESSAGE_UNITS) -> list[list[Run]]:
    """Cut runs into chunks whose text fits ``limit`` UTF-16 units, at the nicest boundary."""
    rest = _strip([Run(clean(r.text), r.tags) for r in runs], left=True, right=True)
    chunks: list[list[Run]] = []
    while rest:
        text = "".join(r.text for r in rest)
        if utf16_len(text) <= limit:
            chunks.append(rest)
            break
        head, rest = _cut(rest, _break_at(text, limit))
        head = _strip(head, left=False, right=True)
        rest = _strip(rest, left=True, right=False)
        if head:
            chunks.append(head)
    return chunks


def render_chunks(runs: Iterable[Run], limit: int = MAX_MESSAGE_UNITS) -> list[str]:
    """HTML messages for ``runs``, each within ``limit`` after Telegram parses it."""
    return [render_runs(chunk) for chunk in split_runs(runs, limit)]


# -- what gets sent ----------------------------------------------------------------------------
def _markdown_bold(text: str, tags: tuple[str, ...]) -> list[Run]:
    """LLM summaries use **bold**; show it as bold rather than as asterisks."""
    runs: list[Run] = []
    pos = 0
    for m in _BOLD_MD.finditer(text):
        if "\n" in m.group(1):
            continue
        runs.append(Run(text[pos : m.start()], tags))
        runs.append(Run(m.group(1), (*tags, "<b>")))
        pos = m.end()
    runs.append(Run(text[pos:], tags))
    return runs


def card_runs(card: Card) -> list[Run]:
    """One paper: linked title, authors, category/type, score with reasons, summary."""
    runs = [Run(one_line(card.title) or card.paper_id, ("<b>", f'<a href="{_attr(card.url)}">'))]
    if card.explore:
        runs.append(Run("  (exploring)", ("<i>",)))
    runs.append(Run("\n" + clean(card.authors_short(6))))
    meta = f"{card.type_line} · {card.versioned_id}"
    if card.also:
        meta += " · also " + ", ".join(card.also)
    runs += [Run("\n"), Run(meta, ("<i>",))]
    if card.score is not None:
        runs += [Run("\nScore "), Run(f"{card.score:.1f}", ("<b>",)), Run(": " + card.why())]
    quote = ("<blockquote expandable>",)
    if card.summary:
        runs += [Run("\n\n"), Run("Summary", ("<b>",)), Run("\n")]
        paragraphs = [q.strip() for q in re.split(r"\n\s*\n", clean(card.summary).strip())]
        body = "\n\n".join(q for q in paragraphs if q)
        runs += _markdown_bold(body, quote)
    elif card.abstract:
        runs += [Run("\n\n"), Run("Abstract", ("<b>",)), Run("\n")]
        runs.append(Run(one_line(card.abstract), quote))
    if card.marker:
        runs += [Run("\n\n"), Run(f"⚠ {card.marker}", ("<i>",))]
    return runs


def render_card(card: Card) -> list[str]:
    """A paper as one or more HTML messages (more only when it exceeds Telegram's limit)."""
    return render_chunks(card_runs(card))


def render_header(digest: Digest) -> str:
    """The day's parent message; the papers follow as replies to it."""
    runs = [Run(header_text(digest), ("<b>",))]
    if digest.items:
        runs.append(Run(f"\nThe papers follow as replies. Rate them with {UP}/{DOWN}."))
    return render_chunks(runs)[0]


def render_text(text: str) -> list[str]:
    """A plain reply (help, settings, errors) as escaped HTML messages."""
    return render_chunks([Run(text)]) or [escape("(empty)")]


# -- chat addresses ------------------------------------------------------------------------------
def parse_chat(chat: str) -> tuple[int, int | None]:
    """``"-1001234/7"`` → ``(-1001234, 7)`` (a forum topic), ``"42"`` → ``(42, None)``.
    ValueError for anything else."""
    head, sep, topic = chat.partition("/")
    if sep and not (topic.isascii() and topic.isdigit() and int(topic) > 0):
        raise ValueError(f"not a Telegram chat address: {chat!r}")
    return int(head), int(topic) if sep else None


def chat_address(chat_id: int, topic: int | None = None) -> str:
    return f"{chat_id}/{topic}" if topic else str(chat_id)


def message_address(message: Message) -> str:
    """Where a message was said: its chat, or its chat's forum topic.  (Replies in an
    ordinary supergroup carry a message_thread_id too; only a forum topic's count.)"""
    topic = message.message_thread_id if message.is_topic_message else None
    return chat_address(message.chat.id, topic)


# -- rating buttons ----------------------------------------------------------------------------
def _is_day(text: str) -> bool:
    return len(text) == 6 and text.isascii() and text.isdigit()


def _is_topic(text: str) -> bool:
    return 0 < len(text) <= 12 and text.isascii() and text.isdigit()


def encode_rating(
    value: int, paper_id: str, day: dt.date | None = None, topic: int | None = None
) -> str:
    """``r:+:2601.19278`` (a paper shown on request) or ``r:-:2601.19278:260122`` (in the
    digest of 22 Jan 2026: the day makes every digest message's keyboard its own, which is
    how a message is recognised after a crash), ``…:260122:7`` in forum topic 7 (two
    topics of one group may get the same paper the same day; message ids are the group's,
    so only the topic tells their messages apart).  ValueError past Telegram's 64 bytes."""
    data = f"{RATING_KIND}:{'+' if value > 0 else '-'}:{paper_id}"
    if day is not None:
        data += f":{day:%y%m%d}"
        if topic:
            data += f":{topic}"
    if len(data.encode("utf-8")) > MAX_CALLBACK_BYTES:
        raise ValueError(f"callback data for {paper_id!r} is longer than {MAX_CALLBACK_BYTES} B")
    return data


def decode_rating(data: str | None) -> tuple[int, str] | None:
    """``(+1 | -1, paper id)`` from callback data, or None when it is not a rating button."""
    kind, _, rest = (data or "").partition(":")
    sign, _, rest = rest.partition(":")
    paper_id, _, tail = rest.partition(":")
    if kind != RATING_KIND or sign not in ("+", "-") or not paper_id:
        return None
    day, _, topic = tail.partition(":")
    if day and not _is_day(day):
        return None
    if topic and not _is_topic(topic):
        return None
    return (1 if sign == "+" else -1), paper_id


def rating_day(data: str) -> dt.date | None:
    """The digest day a rating button carries (``r:+:2601.19278:260122``), if any."""
    if decode_rating(data) is None:
        return None
    parts = data.split(":")
    if len(parts) < 4:
        return None
    try:
        return dt.datetime.strptime(parts[3], "%y%m%d").date()
    except ValueError:
        return None


def _rating_button(b: Button, day: dt.date | None, topic: int | None) -> dict[str, str]:
    return {"text": b.label, "callback_data": encode_rating(b.value, b.paper_id, day, topic)}


def keyboard(
    buttons: tuple[Button, ...], day: dt.date | None = None, topic: int | None = None
) -> Markup | None:
    """A card's buttons ([👍 n] [👎 m]) as an inline keyboard; the votes live in storage.
    ``day``: the digest the card belongs to, ``topic``: its forum topic (see
    :func:`encode_rating`)."""
    if not buttons:
        return None
    return {"inline_keyboard": [[_rating_button(b, day, topic) for b in buttons]]}


def _settings_button(day: dt.date, topic: int | None) -> dict[str, str]:
    data = f"{SETTINGS_KIND}:{day:%y%m%d}" + (f":{topic}" if topic else "")
    return {"text": "⚙️ Settings", "callback_data": data}


def header_keyboard(day: dt.date, topic: int | None = None) -> Markup:
    """The digest header's one button: this chat's digest settings, in a pop-up.  Its data
    carries the day (and the topic), so each day's header is recognisable after a crash."""
    return {"inline_keyboard": [[_settings_button(day, topic)]]}


def is_settings_press(data: str | None) -> bool:
    kind, _, rest = (data or "").partition(":")
    day, _, topic = rest.partition(":")
    return kind == SETTINGS_KIND and _is_day(day) and (not topic or _is_topic(topic))


def buttons_of(markup: InlineKeyboardMarkup | Markup | None) -> list[list[tuple[str, str]]]:
    """A keyboard's rows of (label, callback data): one of ours, or as PTB read it."""
    if markup is None:
        return []
    if isinstance(markup, InlineKeyboardMarkup):
        return [
            [(b.text, b.callback_data if isinstance(b.callback_data, str) else "") for b in row]
            for row in markup.inline_keyboard
        ]
    return [
        [(b["text"], b.get("callback_data", "")) for b in row] for row in markup["inline_keyboard"]
    ]


def relabel(
    markup: InlineKeyboardMarkup | Markup, tallies: dict[str, tuple[Button, ...]]
) -> Markup:
    """``markup`` with each rating button's label replaced by its paper's current one
    (``tallies``: the paper's buttons as the core says they read now), a numbered label
    keeping its number; other buttons (⚙️) and every button's data unchanged."""
    rows = []
    for row in buttons_of(markup):
        new = []
        for text, data in row:
            parsed = decode_rating(data)
            fresh = tallies.get(parsed[1], ()) if parsed else ()
            match = next((f for f in fresh if f.value == parsed[0]), None) if parsed else None
            if match is not None:
                number = text.split(" ", 1)[0]
                text = f"{number} {match.label}" if number.isdigit() else match.label
            new.append({"text": text, "callback_data": data})
        rows.append(new)
    return {"inline_keyboard": rows}


def rated_papers(markup: InlineKeyboardMarkup | Markup | None) -> list[str]:
    """The papers a message's rating buttons are for, in order."""
    out: list[str] = []
    for row in buttons_of(markup):
        for _, data in row:
            parsed = decode_rating(data)
            if parsed and parsed[1] not in out:
                out.append(parsed[1])
    return out


# -- the compact layout ------------------------------------------------------------------------
_COMPACT_HINT = Run(f"\nRate the papers with their numbered {UP}/{DOWN} below.")


def _entry_runs(e: CompactEntry) -> list[Run]:
    runs = [
        Run(f"{e.number}. ", ("<b>",)),
        Run(e.title or e.paper_id, ("<b>", f'<a href="{_attr(e.url)}">')),
    ]
    if e.explore:
        runs.append(Run("  (exploring)", ("<i>",)))
    runs += [Run("\n"), Run(e.byline, ("<i>",))]
    if e.score is not None:
        runs += [Run(" · "), Run(f"{e.score:.1f}", ("<b>",))]
    if e.summary:
        runs.append(Run("\n" + e.summary))
    return runs


def compact_runs(part: CompactDigest) -> list[Run]:
    """A compact message: the header (first part) or "continued", then the numbered papers
    and what is missing; the 👍/👎 are on its keyboard (:func:`compact_keyboard`)."""
    if part.header is not None:
        runs = [Run(part.header, ("<b>",))]
        if part.entries:
            runs.append(_COMPACT_HINT)
    else:
        runs = [Run(f"arXiv digest · {part.day:%a %d %b} (continued)", ("<i>",))]
    for e in part.entries:
        runs.append(Run("\n\n"))
        runs += _entry_runs(e)
    for note in part.notes:
        runs += [Run("\n\n"), Run(f"⚠ {note}", ("<i>",))]
    return runs


def _units(runs: Sequence[Run]) -> int:
    return utf16_len("".join(clean(r.text) for r in runs))


def render_compact(part: CompactDigest) -> str:
    """A compact message as HTML, within Telegram's limit when :func:`compact_sizes` made the
    part (a part that would not fit is cut, never sent over the limit)."""
    runs = compact_runs(part)
    if _units(runs) <= MAX_MESSAGE_UNITS:
        return render_runs(runs)  # sized to fit: no need to look for where to split
    return render_chunks(runs)[0]


def compact_sizes(view: CompactDigest) -> list[int]:
    """How many of ``view``'s papers each message holds: as many as fit 4,096 UTF-16 units
    and :data:`MAX_COMPACT_ENTRIES` (the header and the notes stay in the first).

    A message's length is the sum of its pieces' (a bound: the text is only ever trimmed),
    so each paper is measured once."""
    day = view.day
    first = _units(compact_runs(CompactDigest(day, view.header, (), view.notes)))
    if view.header is not None and view.entries:
        first += _units([_COMPACT_HINT])
    later = _units(compact_runs(CompactDigest(day, None, ())))
    lengths = [_units(compact_runs(CompactDigest(day, None, (e,)))) - later for e in view.entries]
    sizes: list[int] = []
    used, size = first, 0
    for n in lengths:
        if size and (used + n > MAX_MESSAGE_UNITS or size >= MAX_COMPACT_ENTRIES):
            sizes.append(size)
            used, size = later, 0
        elif not size and not sizes and used + n > MAX_MESSAGE_UNITS:
            sizes.append(0)  # the header and notes alone (never with the bounded papers)
            used = later
        used += n
        size += 1
    sizes.append(size)
    return sizes


def compact_keyboard(part: CompactDigest, topic: int | None = None) -> Markup | None:
    """Numbered 👍/👎 for each paper of the part, two papers a row, and ⚙️ Settings under
    the first part.  The data is the thread layout's (paper, day, topic)."""
    buttons = [
        _rating_button(numbered(e.number, b), part.day, topic)
        for e in part.entries
        for b in e.buttons
    ]
    per_row = 2 * COMPACT_ENTRIES_PER_ROW
    rows = [buttons[i : i + per_row] for i in range(0, len(buttons), per_row)]
    if part.header is not None:
        rows.append([_settings_button(part.day, topic)])
    return {"inline_keyboard": rows} if rows else None


# -- incoming ----------------------------------------------------------------------------------
def addressed_to(text: str, bot_username: str) -> bool:
    """False for ``/cmd@other_bot``: in groups, other bots' commands are none of our business."""
    head = text.split(None, 1)[0] if text.strip() else ""
    if "@" not in head:
        return True
    return head.split("@", 1)[1].lower() == bot_username.lower().lstrip("@")


def command_from_message(
    message: Message, bot_username: str, *, is_admin: bool = False
) -> Command | None:
    """The message as a Command, or None when it is no command or one for another bot."""
    text = message.text or ""
    if not text.startswith("/") or not addressed_to(text, bot_username):
        return None
    # "/keywords\nadd x" is as valid a command as "/keywords add x".
    text = re.sub(r"^(\S+)\s+", r"\1 ", text, count=1)
    chat = message.chat
    user = message.from_user
    who = str(user.id) if user is not None else str(getattr(message.sender_chat, "id", chat.id))
    return make_command(
        PLATFORM,
        message_address(message),
        who,
        text,
        is_admin=is_admin,
        is_group=chat.type in GROUP_TYPES,
    )
