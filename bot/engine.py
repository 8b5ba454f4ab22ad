"""The day's flow: fetch → store → rank → (summaries) → digests.  No platform code here."""

from __future__ import annotations

import datetime as dt
import logging
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING

from bot.arxiv_source import (
    ArxivSource,
    FeedItem,
    FeedResult,
    business_days_before,
    derive_announcements,
    normalize_title,
)
from bot.authors import AuthorMatcher, parse_name
from bot.config import Config
from bot.digest import Rescorer, build_digests, follow_reason
from bot.errors import ConfigError, SourceError, UserError
from bot.ids import parse_arxiv_id
from bot.models import CONFIG_SETTINGS, Digest, Paper, Rating, ScoredPaper, Subscription
from bot.politeness import Throttle, turn_file
from bot.scoring import explain
from bot.summaries import Outcome, Summarizer
from storage import Store, StoreError

if TYPE_CHECKING:
    from bot.ask import Asker
    from bot.learning import LearnedProfile, Learner

log = logging.getLogger(__name__)

MAX_CATCH_UP_DAYS = 5


@dataclass
class FetchReport:
    status: str  # ok | empty | error
    day: dt.date | None = None
    items: int = 0
    new_papers: int = 0
    updated_papers: int = 0
    announcements: int = 0
    message: str = ""
    backfilled: list[dt.date] = field(default_factory=list)

    def summary(self) -> str:
        if self.status == "error":
            return f"fetch failed: {self.message}"
        if self.status == "empty":
            return f"no announcements in today's feed ({self.message or 'weekend or holiday'})"
        extra = f"; backfilled {len(self.backfilled)} missed day(s)" if self.backfilled else ""
        return (
            f"{self.day}: {self.items} listings, {self.new_papers} new papers, "
            f"{self.updated_papers} updated, {self.announcements} announcements recorded{extra}"
        )


class Engine:
    """Wires configuration, storage and the arXiv source; adapters sit on top of it."""

    def __init__(
        self,
        config: Config,
        store: Store | None = None,
        source: ArxivSource | None = None,
    ) -> None:
        self.config = config
        try:
            self.store = store or Store(config.database_path)
        except StoreError as exc:
            raise ConfigError(str(exc)) from None
        self.source = source or ArxivSource(
            config.arxiv,
            Throttle(config.arxiv.request_interval_s, turn_file(config.database_path)),
        )
        self._summarizer: Summarizer | None = None
        self._learner: Learner | None = None
        self._asker: Asker | None = None
        self._asker_lock = threading.Lock()  # one Asker: its locks make questions single-flight

    # -- subscriptions -----------------------------------------------------------------------
    def default_subscription(self) -> Subscription:
        """The config file's own subscription, kept in storage so ledger and feeds can use it."""
        want = self.config.default_subscription()
        have = self.store.get_subscription("default", "default")
        if have is not None:
            want = replace(want, feed_token=have.feed_token, muted=have.muted)
            if _same_settings(have, want):
                return have
        return self.store.upsert_subscription(want)

    def active_subscriptions(self) -> list[Subscription]:
        subs = [self.default_subscription()]
        subs += [s for s in self.store.list_subscriptions() if s.platform != "default"]
        return subs

    def all_categories(self) -> list[str]:
        cats: list[str] = []
        for s in self.active_subscriptions():
            for c in s.categories:
                if c not in cats:
                    cats.append(c)
        return cats

    # -- fetch -------------------------------------------------------------------------------
    def fetch(self, categories: Sequence[str] | None = None) -> FetchReport:
        """Fetch today's feed for every followed category, store it, catch up missed days."""
        cats = list(categories or self.all_categories())
        started = _now()
        try:
            feed = self.source.fetch_feed(cats)
        except SourceError as exc:
            log.error("arXiv fetch failed: %s", exc)
            self._log_fetch(started, cats, "error", None, 0, str(exc))
            return FetchReport("error", message=str(exc))
        if not feed.items:
            log.info("arXiv feed %s has no announcements (weekend or holiday)", feed.url)
            self._log_fetch(started, cats, "empty", feed.day, 0, "empty feed")
            return FetchReport("empty", day=feed.day, message="empty feed: weekend or holiday")
        report = self._store_feed(feed, cats)
        assert report.day is not None
        report.backfilled = self._catch_up(cats, report.day)
        self.fetch_followed(report.day)
        self._log_fetch(started, cats, "ok", report.day, report.items, report.summary())
        log.info("fetched %s", report.summary())
        return report

    def _log_fetch(
        self,
        started: str,
        cats: Sequence[str],
        status: str,
        day: dt.date | None,
        items: int,
        message: str,
        source: str = "rss",
    ) -> None:
        self.store.record_fetch(
            started_at=started,
            day=day,
            categories=cats,
            source=source,
            status=status,
            items=items,
            message=message,
        )

    def _store_feed(self, feed: FeedResult, cats: Sequence[str]) -> FetchReport:
        assert feed.day is not None
        papers = [it.paper for it in feed.items]
        anns = [a for it in feed.items for a in derive_announcements(it, feed.day, cats)]
        with self.store.atomic():
            new, updated = self.store.upsert_papers(papers)
            recorded = self.store.record_announcements(anns)
        return FetchReport(
            "ok",
            day=feed.day,
            items=len(feed.items),
            new_papers=new,
            updated_papers=updated,
            announcements=recorded,
        )

    def _catch_up(self, cats: Sequence[str], today: dt.date) -> list[dt.date]:
        """Backfill announcement days the RSS feed no longer shows (downtime, days_back)."""
        last = self.store.last_fetch("ok")
        if last and last.day:
            since = last.day
        elif self.config.arxiv.days_back:
            since = today - dt.timedelta(days=self.config.arxiv.days_back + 1)
        else:
            return []
        fetched = self.store.fetched_days(since)
        missing: list[dt.date] = []
        d = business_days_before(today, 1)
        while d > since and len(missing) < MAX_CATCH_UP_DAYS:
            if d not in fetched:
                missing.append(d)
            d = business_days_before(d, 1)
        done = []
        for day in sorted(missing):
            started = _now()
            try:
                rows = self.source.backfill(cats, day)
            except SourceError as exc:
                log.warning("could not backfill %s: %s", day, exc)
                continue
            with self.store.atomic():
                self.store.upsert_papers([p for p, _ in rows])
                self.store.record_announcements([a for _, anns in rows for a in anns])
            status = "ok" if rows else "empty"
            note = "backfilled through the arXiv API (announcement day estimated)"
            self._log_fetch(started, cats, status, day, len(rows), note, source="api")
            log.info("backfilled %s: %d papers through the arXiv API", day, len(rows))
            done.append(day)
        return done

    def fetch_followed(self, day: dt.date) -> int:
        """Followed authors' new papers of ``day`` in any category, when ``follows.
        search_all_categories`` is on: one API query per followed surname, 3 s apart.  Papers
        storage did not know are stored as announced that day; returns how many."""
        cfg = self.config.follows
        if not cfg.search_all_categories:
            return 0
        ids = [s.id for s in self.active_subscriptions() if s.id is not None]
        by_surname: dict[str, list[str]] = {}
        for records in self.store.follows_of(ids).values():
            for f in records:
                name = parse_name(f.name)
                if name is not None:
                    by_surname.setdefault(name.surname, []).append(f.name)
        added = 0
        for surname, names in list(by_surname.items())[: cfg.max_authors]:
            try:
                papers = self.source.search_author(surname, day)
            except SourceError as exc:
                log.warning("searching arXiv for followed authors failed: %s", exc)
                break  # arXiv is down: the next fetch tries again
            matcher = AuthorMatcher.of(names)
            mine = [p for p in papers if matcher.followed_in(p.authors)]
            known = self.store.get_papers([p.id for p in mine])
            new = [p for p in mine if p.id not in known]
            if not new:
                continue
            anns = [
                a for p in new for a in derive_announcements(FeedItem(p, "new"), day, p.categories)
            ]
            with self.store.atomic():
                self.store.upsert_papers(new)
                self.store.record_announcements(anns)
            added += len(new)
        if added:
            log.info("followed authors: %d new papers of %s outside the fetched feed", added, day)
        return added

    # -- lookups -----------------------------------------------------------------------------
    def lookup(self, text: str) -> Paper:
        """A paper by any id form: from storage, else from the arXiv API (then stored)."""
        aid = parse_arxiv_id(text)
        paper = self.store.get_paper(aid.base)
        if paper is not None and (aid.version is None or aid.version <= paper.version):
            return (
                paper
                if aid.version in (None, paper.version)
                else replace(paper, version=aid.version)
            )
        found = self.source.lookup([str(aid)])
        if not found:
            raise UserError(f"arXiv has no paper {aid}. Check the id and try again.")
        self.store.upsert_papers(found)
        return found[0]

    def lookup_many(self, ids: Sequence[str]) -> tuple[dict[str, Paper], list[str]]:
        """Papers by base id, from storage or else the arXiv API (50 ids per request, then
        stored); returns (found by id, ids arXiv does not know).  ``ids`` are base ids."""
        wanted = list(dict.fromkeys(ids))
        found = self.store.get_papers(wanted)
        need = [i for i in wanted if i not in found]
        if need:
            fetched = self.source.lookup(need)
            if fetched:
                self.store.upsert_papers(fetched)
            found.update({p.id: p for p in fetched})
        return {i: found[i] for i in wanted if i in found}, [i for i in wanted if i not in found]

    def find_by_title(self, title: str) -> Paper | None:
        """The arXiv paper with exactly this title (case, punctuation and LaTeX aside), through
        one API request; stored when found."""
        want = normalize_title(title)
        if not want:
            return None
        for paper in self.source.search_title(title):
            if normalize_title(paper.title) == want:
                self.store.upsert_papers([paper])
                return self.store.get_paper(paper.id) or paper
        return None

    # -- digests -----------------------------------------------------------------------------
    def latest_day(self) -> dt.date | None:
        return self.store.latest_day()

    def paper_count(self) -> int:
        return self.store.count_papers()

    def announcement_days(self, limit: int = 30) -> list[dt.date]:
        """The most recent announcement days stored, newest first."""
        return self.store.announcement_days(limit)

    def digests(
        self,
        subscriptions: Sequence[Subscription],
        day: dt.date,
        *,
        skip_delivered: bool = True,
    ) -> list[Digest]:
        return build_digests(
            self.store,
            subscriptions,
            day,
            rescorer=self.rescorer(),
            skip_delivered=skip_delivered,
            follow_anywhere=self.config.follows.search_all_categories,
        )

    def digest(self, day: dt.date | None = None, sub: Subscription | None = None) -> Digest:
        sub = sub or self.default_subscription()
        day = day or self.latest_day()
        if day is None:
            raise UserError("Nothing has been fetched yet. Run `herald fetch` first.")
        return self.digests([sub], day)[0]

    # -- learning ----------------------------------------------------------------------------
    @property
    def learner(self) -> Learner | None:
        """Ratings → learned scores (bot.learning); None when learning is turned off."""
        if not self.config.learning.enabled:
            return None
        if self._learner is None:
            from bot.learning import Learner

            self._learner = Learner(self.store, self.config.learning)
        return self._learner

    def rescorer(self) -> Rescorer | None:
        learner = self.learner
        return learner.rescore if learner is not None else None

    def explain(self, sub: Subscription, paper: Paper, user: str | None = None) -> ScoredPaper:
        """One paper's score for a subscription with every reason (keywords, learned part)."""
        score, reasons = explain(paper, sub)
        item = ScoredPaper(
            paper=paper, score=score, reasons=reasons, category=paper.primary_category
        )
        if self.learner is not None:
            self.learner.explain_item(sub, item, user=user)
        follows = self.store.follows(sub.id) if sub.id is not None else []
        names = AuthorMatcher.of(f.name for f in follows).followed_in(paper.authors)
        if names:
            item.reasons.insert(0, follow_reason(names))
        return item

    def learned_profile(self, sub: Subscription) -> LearnedProfile | None:
        """What the chat's ratings taught, in the rated papers' words (None: no ratings yet or
        learning off)."""
        return self.learner.profile(sub) if self.learner is not None else None

    def more_like_this(self, sub: Subscription, user: str, paper: Paper) -> list[str]:
        """Steer towards a paper; returns the terms that will be boosted (may be empty)."""
        if self.learner is not None:
            return self.learner.more_like_this(sub, user, paper)
        assert sub.id is not None
        self.store.record_rating(Rating(sub.id, user, paper.id, 1))
        return []

    def rating_changed(self, sub: Subscription) -> None:
        if self.learner is not None:
            self.learner.invalidate(sub.id)

    # -- summaries ---------------------------------------------------------------------------
    @property
    def summarizer(self) -> Summarizer:
        if self._summarizer is None:
            self._summarizer = Summarizer(
                self.config.summaries,
                self.store,
                pdf_fetcher=self.source.download_pdf,
                base_dir=self.config.base_dir,
            )
        return self._summarizer

    def summarize_digests(
        self,
        digests: Sequence[Digest],
        progress: Callable[[int, int], None] | None = None,
    ) -> None:
        """Fill summaries for each digest's top N, one LLM call per distinct key."""
        work = [(item, d.subscription) for d in digests for item in d.items]
        self.summarizer.summarize_items(work, progress=progress)

    def attach_cached_summaries(self, items: Sequence[ScoredPaper], sub: Subscription) -> None:
        self.summarizer.attach_cached(items, sub)

    def summarize(
        self,
        text: str,
        *,
        language: str | None = None,
        source: str | None = None,
        fresh: bool = False,
        sub: Subscription | None = None,
    ) -> tuple[Paper, Outcome]:
        """One paper by any id form, summarized now (or from the cache)."""
        paper = self.lookup(text)
        lang = language or self.summarizer.language_for(sub)
        return paper, self.summarizer.summarize_paper(paper, lang, source=source, fresh=fresh)

    # -- questions about a paper -------------------------------------------------------------
    @property
    def asker(self) -> Asker:
        """Answers questions about a paper from its full text (bot.ask)."""
        with self._asker_lock:
            if self._asker is None:
                from bot.ask import Asker

                self._asker = Asker(
                    self.config.ask,
                    self.store,
                    self.summarizer,
                    lookup=self.lookup,
                    fetch_pdf=self.source.download_pdf,
                )
            return self._asker


def _same_settings(a: Subscription, b: Subscription) -> bool:
    return all(getattr(a, k) == getattr(b, k) for k in CONFIG_SETTINGS) and a.active


def _now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
