"""Day one is already good: a chat's profile seeded from papers people like, a library they
import, and authors they follow — the verbs behind ``/like``, a library file sent to the bot,
``/follow``, and their ``herald`` twins.

A like or an imported entry becomes an ordinary 👍 rating by the person who gave it, marked with
its source (``storage.profile``): learning counts it like any 👍, and the ranking never sends
such a paper as a new one.  Papers are fetched from the arXiv API when storage does not have
them, 50 ids per request (``ArxivSource.lookup_batch``); entries without an arXiv id are looked
up by their exact title, at most :data:`MAX_TITLE_LOOKUPS` per import, each one request within
arXiv's 3-second rule.  A followed author's new papers in the subscription's categories always
make its digest (:mod:`bot.digest`).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from bot.authors import AuthorMatcher, check_name, parse_name, same_person
from bot.errors import SourceError, UserError
from bot.ids import InvalidArxivId, parse_arxiv_id
from bot.library import ParsedLibrary, Reference, parse_library
from bot.models import Paper, Subscription
from bot.scoring import parse_keywords

if TYPE_CHECKING:
    from bot.engine import Engine

log = logging.getLogger(__name__)

MAX_LIKES = 50  # ids per /like: one arXiv API request at most
MAX_TITLE_LOOKUPS = 20  # per import: 20 requests, a minute at arXiv's pace
MAX_FOLLOWS = 50
EXAMPLES = 3  # skipped entries named per reason


def _shown(paper: Paper, limit: int = 70) -> str:
    title = " ".join(paper.title.split())
    title = title if len(title) <= limit else title[: limit - 1] + "…"
    return f"“{title}” ({paper.id})"


def _some(items: Sequence[str], n: int = EXAMPLES) -> str:
    more = f", … (+{len(items) - n})" if len(items) > n else ""
    return ", ".join(items[:n]) + more


def _plural(n: int, word: str) -> str:
    return f"{n} {word}" + ("" if n == 1 else "s")


@dataclass
class LikeReport:
    liked: list[Paper] = field(default_factory=list)
    already: list[Paper] = field(default_factory=list)
    unknown: list[str] = field(default_factory=list)  # ids arXiv does not know
    invalid: list[str] = field(default_factory=list)  # not arXiv ids at all

    def text(self) -> str:
        lines = []
        if self.liked:
            lines.append(
                f"Liked {_plural(len(self.liked), 'paper')}: "
                + _some([_shown(p) for p in self.liked], 5)
                + ". They count as 👍 for this chat's ranking and are never sent as new papers."
            )
        if self.already:
            lines.append(f"Already liked: {_some([p.id for p in self.already], 10)}.")
        if self.unknown:
            lines.append(f"arXiv has no paper {_some(self.unknown, 10)}.")
        if self.invalid:
            shown = [f"'{t[:40]}'" for t in self.invalid]
            lines.append(f"Not arXiv ids: {_some(shown, 5)}.")
        return "\n".join(lines) or "Nothing to like."


@dataclass
class ImportReport:
    filename: str
    format: str
    entries: int
    by_id: list[Paper] = field(default_factory=list)
    by_title: list[Paper] = field(default_factory=list)
    already: list[Paper] = field(default_factory=list)
    #: reason -> what was skipped for it (titles or ids, as the entry gave them)
    skipped: dict[str, list[str]] = field(default_factory=dict)

    @property
    def imported(self) -> list[Paper]:
        return self.by_id + self.by_title

    def skip(self, reason: str, what: str) -> None:
        self.skipped.setdefault(reason, []).append(what)

    def text(self) -> str:
        n = len(self.imported)
        how = []
        if self.by_id:
            how.append(f"{len(self.by_id)} by their arXiv id")
        if self.by_title:
            how.append(f"{len(self.by_title)} found on arXiv by title")
        noun = "entry" if self.entries == 1 else "entries"
        head = f"Imported {n} of {self.entries} {noun} from {self.filename} ({self.format})"
        lines = [head + (f": {', '.join(how)}." if how else ".")]
        if self.imported:
            lines.append("e.g. " + _some([_shown(p, 60) for p in self.imported]))
            lines.append(
                "They count as 👍 for this chat's ranking and are never sent as new papers."
            )
        if self.already:
            lines.append(f"{_plural(len(self.already), 'paper')} you had liked already.")
        skipped = sum(len(v) for v in self.skipped.values())
        if skipped:
            lines.append(f"Skipped {skipped}:")
            for reason, what in self.skipped.items():
                lines.append(f"• {len(what)} {reason}: {_some(what)}")
        return "\n".join(lines)


class Profile:
    """Likes, library imports and followed authors of a subscription."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    # -- likes ------------------------------------------------------------------------------
    def like(self, sub: Subscription, user: str, texts: Sequence[str]) -> LikeReport:
        """``user`` likes these papers (any id form, up to :data:`MAX_LIKES`)."""
        if len(texts) > MAX_LIKES:
            raise UserError(
                f"That is {len(texts)} papers; like at most {MAX_LIKES} at a time (or send a "
                "library file: a .bib, .ris or CSL .json export)."
            )
        report = LikeReport()
        ids: list[str] = []
        for text in texts:
            try:
                ids.append(parse_arxiv_id(text).base)
            except InvalidArxivId:
                report.invalid.append(text)
        found, report.unknown = self.engine.lookup_many(ids)
        papers = list(found.values())
        added, already = self._seed(sub, user, [p.id for p in papers], "like")
        report.liked = [found[i] for i in added]
        report.already = [found[i] for i in already]
        return report

    # -- library imports ----------------------------------------------------------------------
    def import_library(
        self, sub: Subscription, user: str, filename: str, data: bytes
    ) -> ImportReport:
        """Import a library file's papers as ``user``'s 👍 (LibraryError when unreadable)."""
        lib = parse_library(filename, data)
        return self._import(sub, user, filename, lib)

    def _import(
        self, sub: Subscription, user: str, filename: str, lib: ParsedLibrary
    ) -> ImportReport:
        report = ImportReport(filename, lib.format, len(lib.references) + lib.unreadable)
        for _ in range(lib.unreadable):
            report.skip("unreadable (broken entries in the file)", "?")
        with_id: dict[str, Reference] = {}
        by_title: dict[str, Reference] = {}
        for ref in lib.references:
            if ref.arxiv_id:
                if ref.arxiv_id in with_id:
                    report.skip("listed twice", ref.title or ref.arxiv_id)
                with_id.setdefault(ref.arxiv_id, ref)
            elif ref.title:
                key = ref.title.casefold()
                if key in by_title:
                    report.skip("listed twice", ref.title)
                by_title.setdefault(key, ref)
            else:
                report.skip("without a title or an arXiv id", ref.key)
        found, unknown = self.engine.lookup_many(list(with_id))
        for aid in unknown:
            report.skip("not on arXiv (no such id)", aid)
        papers_by_id = [found[a] for a in with_id if a in found]
        titled: list[Paper] = []
        unreachable = False
        for n, ref in enumerate(by_title.values()):
            if n >= MAX_TITLE_LOOKUPS:
                report.skip(
                    f"not looked up (at most {MAX_TITLE_LOOKUPS} title searches per import)",
                    f"“{ref.title[:60]}”",
                )
                continue
            if unreachable:
                report.skip("not looked up (arXiv could not be reached)", f"“{ref.title[:60]}”")
                continue
            try:
                paper = self.engine.find_by_title(ref.title)
            except SourceError as exc:
                log.warning("title lookup failed during an import: %s", exc)
                unreachable = True
                report.skip("not looked up (arXiv could not be reached)", f"“{ref.title[:60]}”")
                continue
            if paper is None:
                report.skip("not found on arXiv by title", f"“{ref.title[:60]}”")
            elif paper.id in found or any(p.id == paper.id for p in titled):
                report.skip("listed twice", f"“{ref.title[:60]}”")
            else:
                titled.append(paper)
        ids = [p.id for p in papers_by_id + titled]
        added, already = self._seed(sub, user, ids, "import")
        fresh = set(added)
        report.by_id = [p for p in papers_by_id if p.id in fresh]
        report.by_title = [p for p in titled if p.id in fresh]
        known = {p.id: p for p in papers_by_id + titled}
        report.already = [known[i] for i in already]
        return report

    def _seed(
        self, sub: Subscription, user: str, ids: list[str], source: str
    ) -> tuple[list[str], list[str]]:
        assert sub.id is not None
        if not ids:
            return [], []
        added, already = self.engine.store.record_seed(sub.id, user, ids, source)
        self.engine.rating_changed(sub)
        return added, already

    # -- followed authors ---------------------------------------------------------------------
    @staticmethod
    def names(raw: str) -> list[str]:
        """The names in ``/follow``'s text: "quoted" names, or names separated by ``;`` or
        new lines ("Bengio, Yoshua" keeps its comma)."""
        if any(q in raw for q in '"“”'):  # an apostrophe is part of a name: O'Brien
            return parse_keywords(raw)
        parts = [p.strip() for line in raw.splitlines() for p in line.split(";")]
        return [p for p in parts if p]

    def follow(self, sub: Subscription, user: str, names: Sequence[str]) -> str:
        assert sub.id is not None
        if not names:
            raise UserError('Give a name, e.g. "Yoshua Bengio".')
        store = self.engine.store
        current = store.follows(sub.id)
        added: list[str] = []
        already: list[str] = []
        for raw in names:
            name = check_name(raw)
            shown = " ".join(raw.split())
            twin = next(
                (
                    f.name
                    for f in current
                    if (p := parse_name(f.name)) is not None and same_person(p, name)
                ),
                None,
            )
            if twin is not None or shown in added:
                already.append(twin or shown)
                continue
            if len(current) + len(added) >= MAX_FOLLOWS:
                raise UserError(f"A chat follows at most {MAX_FOLLOWS} authors.")
            if store.add_follow(sub.id, name.key, shown, user):
                added.append(shown)
            else:
                already.append(shown)
        lines = []
        if added:
            lines.append(
                f"Following {', '.join(added)}: their new papers in "
                f"{', '.join(sub.categories)} always make this chat's digest."
            )
        if already:
            lines.append(f"Already following {', '.join(dict.fromkeys(already))}.")
        return "\n".join(lines)

    def unfollow(self, sub: Subscription, names: Sequence[str]) -> str:
        assert sub.id is not None
        store = self.engine.store
        current = store.follows(sub.id)
        if [n.strip().lower() for n in names] == ["all"]:
            gone = store.remove_follows(sub.id, [f.key for f in current])
            return f"Stopped following {_plural(gone, 'author')}."
        keys: list[str] = []
        removed: list[str] = []
        missing: list[str] = []
        for raw in names:
            name = check_name(raw)
            hits = [
                f for f in current if (p := parse_name(f.name)) is not None and same_person(p, name)
            ]
            if not hits:
                missing.append(" ".join(raw.split()))
            keys += [f.key for f in hits]
            removed += [f.name for f in hits]
        store.remove_follows(sub.id, keys)
        text = f"Stopped following {', '.join(dict.fromkeys(removed))}." if removed else ""
        if missing:
            following = ", ".join(f.name for f in current) or "nobody"
            text += f"{' ' if text else ''}Not followed: {', '.join(missing)} (following: "
            text += f"{following})."
        return text

    def following(self, sub: Subscription) -> list[str]:
        assert sub.id is not None
        return [f.name for f in self.engine.store.follows(sub.id)]

    # -- status -------------------------------------------------------------------------------
    def status_lines(self, sub: Subscription) -> list[str]:
        """The profile in a few lines: seed size, followed authors, the profile's share of
        the latest digest's scores."""
        assert sub.id is not None
        store = self.engine.store
        counts = store.rating_sources(sub.id)
        liked, imported, pressed = (counts.get(k, 0) for k in ("like", "import", "button"))
        lines = [
            f"Profile: {liked} liked, {imported} imported, {pressed} rated with 👍/👎 "
            f"(seed: {liked + imported} papers)"
        ]
        follows = self.following(sub)
        lines.append(
            f"Following {len(follows)}: {', '.join(follows)}" if follows else "Following: nobody"
        )
        lines.append(self.profile_share(sub))
        lines += self.learned_lines(sub)
        return lines

    def learned_lines(self, sub: Subscription) -> list[str]:
        """What the bot believes this chat likes and dislikes (``/status``, ``why``), in words
        of the rated papers, and the 👍 it does not trust yet: a wrong turn shows here first."""
        learned = self.engine.learned_profile(sub)
        if learned is None:
            return []
        lines = []
        if learned.liked:
            lines.append(f"Learned topics 👍: {', '.join(learned.liked)}")
        if learned.disliked:
            lines.append(f"Learned topics 👎: {', '.join(learned.disliked)}")
        if lines:
            lines.append("A topic that is wrong? Mute it, or rate a paper about it 👎.")
        if learned.unconfirmed:
            shown = ", ".join(f"{pid} ({share:.0%})" for pid, share in learned.unconfirmed[:5])
            more = f", … (+{len(learned.unconfirmed) - 5})" if len(learned.unconfirmed) > 5 else ""
            lines.append(
                f"Not yet confirmed: {shown}{more}. Papers like these were rated the other "
                "way, so these ratings count less until a similar paper gets the same rating "
                '(or "more like this").'
            )
        return lines

    def profile_share(self, sub: Subscription) -> str:
        """How much of the latest digest's score comes from the profile (learning)."""
        engine = self.engine
        if engine.learner is None:
            return "Learned share: learning is off in this bot's config (likes are kept)."
        day = engine.latest_day()
        if day is None:
            return "Learned share: nothing fetched yet."
        digest = engine.digests([sub], day)[0]
        learned = keyword = 0.0
        followed = 0
        for item in digest.items:
            for r in item.reasons:
                if r.kind == "learned":
                    learned += abs(r.weight)
                elif r.kind in ("keyword", "title"):
                    keyword += abs(r.weight)
                elif r.kind == "follow":
                    followed += 1
        total = learned + keyword
        share = learned / total if total else 0.0
        extra = f"; {_plural(followed, 'paper')} by followed authors" if followed else ""
        return (
            f"Learned share: {share:.0%} of the scores in the {day:%a %d %b} digest come from "
            f"this chat's profile, {1 - share:.0%} from keywords "
            f"({_plural(len(digest.items), 'paper')}{extra})."
        )

    def matcher(self, sub: Subscription) -> AuthorMatcher:
        return AuthorMatcher.of(self.following(sub))
