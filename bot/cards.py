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
import re
from dataclasses import dataclass, field

from pylatexenc import latex2text
from pylatexenc.latex2text import LatexNodes2Text, MacroTextSpec
from pylatexenc.macrospec import LatexContextDb

from bot.models import (
    SUMMARY_PRESENT,
    Button,
    Card,
    Digest,
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
    return Card(
        paper_id=p.id,
        versioned_id=p.versioned_id,
        url=p.url,
        title=one_line(decode_latex(p.title)) or p.id,
        authors=tuple(a for a in (one_line(decode_latex(a)) for a in p.authors) if a),
        category=category,
        announce_type=item.announce_type,
        also=tuple(c for c in p.categories if c != category),
        abstract=one_line(p.abstract),
        score=item.score if show_score else None,
        reasons=tuple(r.text for r in item.reasons),
        explore=item.explore,
        summary=summary,
        summary_by=one_line(item.summary_model or "an LLM") if summary else None,
        marker=_one_line_or_none(summary_marker(item, top_n)),
        buttons=rating_buttons(p.id, *tally) if buttons else (),
    )


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
