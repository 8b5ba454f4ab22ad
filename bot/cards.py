"""The paper card: what every surface shows of one paper, decided once.

:func:`card_for` turns a :class:`ScoredPaper` into a :class:`Card` of display-ready, plain
text (titles and author lists on one line, the abstract's whitespace collapsed, the score's
reasons in words, the summary or a visible marker saying why there is none, the rating
buttons with their tally).  The renderers (Slack blocks, Telegram HTML, Markdown, console,
feeds, the web page) only format a card: each escapes for its own medium and none decides
again what a card holds.  Digest-level wording (the header line) lives here too, so every
surface says the same.
"""

from __future__ import annotations

import datetime as dt
import functools
import re
from collections.abc import Sequence
from dataclasses import dataclass, field, replace

from pylatexenc import latex2text
from pylatexenc.latex2text import LatexNodes2Text, MacroTextSpec
from pylatexenc.macrospec import LatexContextDb

from bot.models import (
    SUMMARY_PRESENT,
    Button,
    Card,
    Digest,
    Paper,
    ScoredPaper,
    Subscription,
    SummaryStatus,
)

RATE_UP, RATE_DOWN = "rate_up", "rate_down"
UP, DOWN = "👍", "👎"

_MARKERS = {
    SummaryStatus.MISSING_KEY: "no summary: no LLM API key is configured",
    SummaryStatus.FAILED: "no summary yet: the LLM call failed{note}; retried on the next run",
    SummaryStatus.BUDGET: "no summary: today's LLM budget is spent; it is retried tomorrow",
    SummaryStatus.PENDING: "summary pending",
    SummaryStatus.SKIPPED: "not summarized (outside the top {top_n})",
    SummaryStatus.DISABLED: "summaries are turned off",
}


# Control characters and lone surrogates can't be shown (or sent) anywhere.
_UNSHOWABLE = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\ud800-\udfff]")


def one_line(text: str) -> str:
    """Collapse arXiv's hard-wrapped titles, author names and abstracts to one line (and drop
    what no surface can show)."""
    return " ".join(_UNSHOWABLE.sub("", text or "").split())


def _latex_context() -> LatexContextDb:
    # A macro pylatexenc does not know (``\\slash``, a typo) stays as typed, not dropped.
    db = latex2text.get_default_latex_context_db().filter_context()
    db.set_unknown_macro_spec(
        MacroTextSpec("", simplify_repl=lambda n, _l: f"\\{n.macroname}{n.macro_post_space}")
    )
    return db


_LATEX = LatexNodes2Text(latex_context=_latex_context(), math_mode="text")
# Characters that are plain text in a title but special to LaTeX (``%`` starts a comment),
# unless the author escaped them already.
_LITERAL = re.compile(r"(?<!\\)([%&#~])")
_AS_TEXT = {"%": r"\%", "&": r"\&", "#": r"\#", "~": r"\textasciitilde{}"}


def decode_latex(text: str) -> str:
    """``Vuli\\'c`` → ``Vulić``, ``$\\alpha$-nets`` → ``α-nets``: arXiv keeps the LaTeX people
    typed; readers see what it means.  Text without ``\\`` or ``$`` is returned as it is."""
    if "\\" not in text and "$" not in text:
        return text
    try:
        literal = _LITERAL.sub(lambda m: _AS_TEXT[m[1]], text)
        return one_line(_LATEX.latex_to_text(literal)) or text
    except Exception:  # pylatexenc is tolerant; anything it still can't read stays as typed
        return text


def summary_marker(item: ScoredPaper, top_n: int | None = None) -> str | None:
    """A short visible note when the summary is not there (or came from the abstract only)."""
    status = item.summary_status
    if status == SummaryStatus.ABSTRACT_ONLY:
        note = f" ({item.summary_note})" if item.summary_note else ""
        return f"summarized from the abstract only{note}"
    if status in SUMMARY_PRESENT or status == SummaryStatus.DISABLED:
        return None
    template = _MARKERS.get(status, "no summary")
    note = f" ({item.summary_note})" if item.summary_note else ""
    return template.format(note=note, top_n=top_n if top_n is not None else "N")


def rating_buttons(paper_id: str, up: int = 0, down: int = 0) -> tuple[Button, ...]:
    """👍 / 👎, their labels carrying the tally once someone voted."""
    return (
        Button(RATE_UP, f"{UP} {up}" if up else UP, paper_id, 1),
        Button(RATE_DOWN, f"{DOWN} {down}" if down else DOWN, paper_id, -1),
    )


def card_for(
    item: ScoredPaper,
    *,
    top_n: int | None = None,
    show_score: bool = True,
    buttons: bool = True,
    tally: tuple[int, int] = (0, 0),
) -> Card:
    """The card of one scored paper."""
    p = item.paper
    category = item.category or p.primary_category
    summary = item.summary if item.summary and item.summary.strip() else None
    title, authors, abstract = paper_text(p)
    return Card(
        paper_id=p.id,
        versioned_id=p.versioned_id,
        url=p.url,
        title=title,
        authors=authors,
        category=category,
        announce_type=item.announce_type,
        also=tuple(c for c in p.categories if c != category),
        abstract=abstract,
        score=item.score if show_score else None,
        reasons=tuple(r.text for r in item.reasons),
        explore=item.explore,
        summary=summary,
        summary_by=one_line(item.summary_model or "an LLM") if summary else None,
        marker=_one_line_or_none(summary_marker(item, top_n)),
        buttons=rating_buttons(p.id, *tally) if buttons else (),
    )


@functools.lru_cache(maxsize=4096)
def paper_text(paper: Paper) -> tuple[str, tuple[str, ...], str]:
    """A paper's title, authors and abstract as every card shows them (LaTeX decoded, on one
    line).  Cached: a day's papers go to thousands of chats, and decoding is not cheap."""
    title = one_line(decode_latex(paper.title)) or paper.id
    authors = tuple(a for a in (one_line(decode_latex(a)) for a in paper.authors) if a)
    return title, authors, one_line(paper.abstract)


def _one_line_or_none(text: str | None) -> str | None:
    return one_line(text) if text else None


def day_label(day: dt.date) -> str:
    return f"{day:%a} {day.day} {day:%b %Y}"


def header_text(digest: Digest) -> str:
    """The day's parent message: "arXiv digest · <weekday date> · N papers · <categories>"."""
    n = len(digest.items)
    cats = ", ".join(digest.categories)
    noun = "paper" if n == 1 else "papers"
    return f"arXiv digest · {day_label(digest.day)} · {n} {noun} · {cats}"


@dataclass(slots=True)
class DigestView:
    """A digest as surfaces show it: the header line and one card per paper."""

    day: dt.date
    header: str
    subscription: Subscription
    cards: list[Card] = field(default_factory=list)
    total_candidates: int = 0

    @property
    def categories(self) -> tuple[str, ...]:
        return self.subscription.categories


def digest_view(digest: Digest, *, top_n: int | None = None, buttons: bool = False) -> DigestView:
    """Cards for a whole digest (files, terminal, feeds, web: no tallies to show)."""
    return DigestView(
        day=digest.day,
        header=header_text(digest),
        subscription=digest.subscription,
        cards=[card_for(i, top_n=top_n, buttons=buttons) for i in digest.items],
        total_candidates=digest.total_candidates,
    )


# -- the compact layout: one message listing the day's papers -----------------------------------
#: What a compact message's text aims to stay within (characters, before any markup): one
#: Telegram message holds 4,096 UTF-16 units; the rest is room for markup and odd characters.
COMPACT_BUDGET = 3500
COMPACT_TITLE_MAX = 200
COMPACT_AUTHORS_MAX = 90
COMPACT_SUMMARY_MAX = 450
#: A summary cut shorter than this says nothing: the entries then show none.
COMPACT_SUMMARY_MIN = 80
COMPACT_NOTE_MAX = 200
COMPACT_NOTES_MAX = 3  # distinct notes shown (the markers of every paper, said once)
_MD_NOISE = re.compile(r"\*\*|__|^\s{0,3}#{1,6}\s*|^\s*[-*+]\s+|`", re.MULTILINE)


@dataclass(frozen=True, slots=True)
class CompactEntry:
    """One paper in a compact digest: its number, linked title, a short byline, its score,
    a summary cut to fit, and its 👍/👎 (numbered where a platform shows them apart)."""

    number: int  # its place in the day's digest, from 1: the rating buttons carry it
    paper_id: str
    versioned_id: str
    url: str
    title: str
    byline: str  # authors · category · type
    score: float | None
    explore: bool
    summary: str | None  # the LLM summary, or the abstract when there is none, cut to fit
    buttons: tuple[Button, ...]


@dataclass(frozen=True, slots=True)
class CompactDigest:
    """A compact digest message, or one part of it when a platform must split it."""

    day: dt.date
    header: str | None  # the digest's header line, in the first part only
    entries: tuple[CompactEntry, ...]
    notes: tuple[str, ...] = ()  # what is missing, once for all entries ("no summary: …")

    @property
    def paper_ids(self) -> tuple[str, ...]:
        return tuple(e.paper_id for e in self.entries)


def shorten(text: str, limit: int) -> str:
    """``text`` on one line, at most ``limit`` characters: cut at a word, with "…"."""
    return _cut(one_line(text), limit)


def _cut(text: str, limit: int) -> str:
    """:func:`shorten` for text already on one line."""
    if len(text) <= limit:
        return text
    cut = text[: max(limit - 1, 0)]
    space = cut.rfind(" ")
    if space >= limit // 2:
        cut = cut[:space]
    return cut.rstrip(" ,;:.-–—") + "…"


def plain_summary(markdown: str) -> str:
    """An LLM's Markdown summary as one plain line (no **bold**, headings or bullets)."""
    return one_line(_MD_NOISE.sub(" ", markdown))


def numbered(number: int, button: Button) -> Button:
    """A rating button labelled with its paper's number (``2 👍 3``), for a keyboard shown
    apart from the list it belongs to."""
    return Button(button.action, f"{number} {button.label}", button.paper_id, button.value)


def compact_entry(number: int, card: Card, summary_limit: int) -> CompactEntry:
    byline = f"{card.authors_short(2)} · {card.type_line}"
    return CompactEntry(
        number=number,
        paper_id=card.paper_id,
        versioned_id=card.versioned_id,
        url=card.url,
        # A card's title, authors and abstract are on one line already.
        title=_cut(card.title, COMPACT_TITLE_MAX) or card.paper_id,
        byline=_cut(byline, COMPACT_AUTHORS_MAX),
        score=card.score,
        explore=card.explore,
        summary=_compact_summary(card, summary_limit),
        buttons=card.buttons,
    )


def _compact_summary(card: Card, limit: int) -> str | None:
    if not limit:
        return None
    text = plain_summary(card.summary) if card.summary else card.abstract
    return _cut(text, limit) if text else None


def compact_view(
    day: dt.date, header: str | None, numbered_cards: Sequence[tuple[int, Card]]
) -> CompactDigest:
    """The compact message of these cards (each with its number in the digest).

    Titles and bylines are cut to a bounded length, so that any one entry fits any
    platform's message; the summaries share what is left of :data:`COMPACT_BUDGET`,
    at most :data:`COMPACT_SUMMARY_MAX` each, and are left out when fewer than
    :data:`COMPACT_SUMMARY_MIN` characters would remain for each.
    """
    markers = (shorten(c.marker, COMPACT_NOTE_MAX) for _, c in numbered_cards if c.marker)
    notes = tuple(dict.fromkeys(markers))[:COMPACT_NOTES_MAX]
    bare = [compact_entry(n, c, 0) for n, c in numbered_cards]
    fixed = len(header or "") + sum(len(x) + 2 for x in notes)
    fixed += sum(len(e.title) + len(e.byline) + 24 for e in bare)
    share = (COMPACT_BUDGET - fixed) // max(len(bare), 1)
    limit = min(COMPACT_SUMMARY_MAX, share)
    if limit < COMPACT_SUMMARY_MIN:
        limit = 0
    entries = tuple(
        replace(e, summary=_compact_summary(c, limit)) if limit else e
        for e, (_, c) in zip(bare, numbered_cards, strict=True)
    )
    return CompactDigest(day=day, header=header, entries=entries, notes=notes)


def compact_parts(view: CompactDigest, sizes: Sequence[int]) -> list[CompactDigest]:
    """``view`` cut into consecutive parts of ``sizes`` entries; the header stays with the
    first, and so do the notes."""
    parts: list[CompactDigest] = []
    at = 0
    for i, size in enumerate(sizes):
        parts.append(
            CompactDigest(
                day=view.day,
                header=view.header if i == 0 else None,
                entries=view.entries[at : at + size],
                notes=view.notes if i == 0 else (),
            )
        )
        at += size
    return parts
