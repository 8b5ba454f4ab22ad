"""The pure half of the Telegram adapter: no network, no event loop.

* Digest header, digest items and plain replies as Telegram HTML, split into messages that each
  stay within 4,096 UTF-16 code units *after entity parsing* (what Telegram counts), on
  paragraph boundaries first, then lines, sentences, words, and only then hard.
* The 👍/👎 inline keyboard and its ``callback_data`` (``r:+:<paper id>``, at most 64 bytes).
* A PTB ``Message`` carrying ``/cmd`` or ``/cmd@botname`` as a plain :class:`Command`.

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

from telegram import InlineKeyboardButton, InlineKeyboardMarkup, Message

from bot.cards import DOWN, UP, header_text
from bot.commands import make_command
from bot.models import Button, Card, Command, Digest

PLATFORM = "telegram"
MAX_MESSAGE_UNITS = 4096  # Telegram's limit, in UTF-16 code units of the parsed text
MAX_CALLBACK_BYTES = 64
GROUP_TYPES = frozenset({"group", "supergroup"})
RATING_KIND = "r"
SETTINGS_KIND = "h"

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


# -- rating buttons ----------------------------------------------------------------------------
def encode_rating(value: int, paper_id: str, day: dt.date | None = None) -> str:
    """``r:+:2601.19278`` (a paper shown on request) or ``r:-:2601.19278:260122`` (in the
    digest of 22 Jan 2026: the day makes every digest message's keyboard its own, which is
    how a message is recognised after a crash).  ValueError past Telegram's 64 bytes."""
    data = f"{RATING_KIND}:{'+' if value > 0 else '-'}:{paper_id}"
    if day is not None:
        data += f":{day:%y%m%d}"
    if len(data.encode("utf-8")) > MAX_CALLBACK_BYTES:
        raise ValueError(f"callback data for {paper_id!r} is longer than {MAX_CALLBACK_BYTES} B")
    return data


def decode_rating(data: str | None) -> tuple[int, str] | None:
    """``(+1 | -1, paper id)`` from callback data, or None when it is not a rating button."""
    kind, _, rest = (data or "").partition(":")
    sign, _, rest = rest.partition(":")
    paper_id, _, day = rest.partition(":")
    if kind != RATING_KIND or sign not in ("+", "-") or not paper_id:
        return None
    if day and not (len(day) == 6 and day.isdigit()):
        return None
    return (1 if sign == "+" else -1), paper_id


def keyboard(
    buttons: tuple[Button, ...], day: dt.date | None = None
) -> InlineKeyboardMarkup | None:
    """A card's buttons ([👍 n] [👎 m]) as an inline keyboard; the votes live in storage.
    ``day``: the digest the card belongs to (see :func:`encode_rating`)."""
    if not buttons:
        return None
    return InlineKeyboardMarkup(
        [
            [
                InlineKeyboardButton(b.label, callback_data=encode_rating(b.value, b.paper_id, day))
                for b in buttons
            ]
        ]
    )


def header_keyboard(day: dt.date) -> InlineKeyboardMarkup:
    """The digest header's one button: this chat's digest settings, in a pop-up.  Its data
    carries the day, so each day's header is recognisable after a crash."""
    return InlineKeyboardMarkup(
        [[InlineKeyboardButton("⚙️ Settings", callback_data=f"{SETTINGS_KIND}:{day:%y%m%d}")]]
    )


def is_settings_press(data: str | None) -> bool:
    kind, _, day = (data or "").partition(":")
    return kind == SETTINGS_KIND and len(day) == 6 and day.isdigit()


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
        str(chat.id),
        who,
        text,
        is_admin=is_admin,
        is_group=chat.type in GROUP_TYPES,
    )
