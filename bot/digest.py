"""Build each subscription's digest for an announcement day from what storage holds."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Sequence
from dataclasses import replace

from bot.authors import AuthorMatcher
from bot.models import Digest, Paper, Reason, ScoredPaper, Subscription
from bot.scoring import Listing, _gc_paused, explain, score_all
from storage import Store

_TYPE_ORDER = {"new": 0, "cross": 1, "replace": 2, "replace-cross": 3}

#: Re-scores a subscription's full candidate list (keyword scores, unfiltered) and returns the
#: final digest items: learned scores added, ``min_score`` and ``max_papers`` applied,
#: exploratory picks mixed in.  Learning hooks in here.  It learns from ratings: a
#: subscription nobody has rated keeps its keyword ranking and is not passed to it.
Rescorer = Callable[[Subscription, list[ScoredPaper]], list[ScoredPaper]]


def candidates_for(store: Store, day: dt.date, categories: Sequence[str]) -> list[Listing]:
    """The day's announcements in rss.arxiv.org's own order: new, cross, replace, then id.

    Ranking is a stable sort, so ties keep this order, as they did in the original script.
    """
    rows = store.announced_on(day, categories)
    listings = [Listing(p, tuple(sorted(ls))) for p, ls in rows]
    listings.sort(key=lambda c: c.paper.id)
    listings.sort(key=lambda c: min(_TYPE_ORDER.get(t, 9) for _, t in c.listings))
    return listings


def build_digests(
    store: Store,
    subscriptions: Sequence[Subscription],
    day: dt.date,
    *,
    rescorer: Rescorer | None = None,
    skip_delivered: bool = True,
    follow_anywhere: bool = False,
) -> list[Digest]:
    """One digest per subscription, scored in a single pass over the day's papers.

    Papers already delivered to a subscription on an earlier day are left out, so a paper that
    is announced again (a cross-list, a late listing) is never sent twice; so are papers someone
    there liked or imported (they seeded the profile, they are not news).  A followed author's
    papers always make the digest, first, whatever their score (:func:`with_follows`) — with
    ``follow_anywhere``, also those announced in categories the subscription does not follow.
    """
    if not subscriptions:
        return []
    cats = sorted({c for s in subscriptions for c in s.categories})
    cands = candidates_for(store, day, cats)
    exclude: dict[int | None, set[str]] = {}
    ids = [s.id for s in subscriptions if s.id is not None]
    follows = store.follows_of(ids) if ids else {}
    seeds = store.seed_papers_of(ids) if ids else {}
    delivered = store.delivered_paper_ids_many(ids, before=day) if skip_delivered and ids else {}
    for sid in ids:
        exclude[sid] = delivered.get(sid, set()) | seeds.get(sid, set())
    matchers = {
        si: AuthorMatcher.of(f.name for f in follows[s.id])
        for si, s in enumerate(subscriptions)
        if s.id in follows
    }
    # Learned scores can lift papers no keyword matched, and a followed author's paper needs
    # no score at all: those subscriptions are ranked over everything and cut afterwards.  One
    # nobody has rated has no learned score (learning works from ratings only), so its digest
    # is its keyword ranking, cut: only those few items are explained, not every candidate of
    # every chat (100,000 chats x hundreds of papers), and the rescorer is not asked.
    rated = store.rated_subscription_ids() if rescorer is not None else set()
    wide = list(subscriptions)
    for si, s in enumerate(subscriptions):
        if s.id in rated or si in matchers:
            wide[si] = replace(s, min_score=float("-inf"))
        if si in matchers and "cross" not in s.announce_types and s.mode != "seed":
            # A followed author's paper cross-listed into the categories is news too.
            wide[si] = replace(wide[si], announce_types=(*s.announce_types, "cross"))
    today: list[tuple[Paper, list[tuple[str, str]]]] | None = None  # every category's
    digests = []
    with _gc_paused():
        ranking = score_all(cands, wide, exclude_ids=exclude)
        for si, sub in enumerate(subscriptions):
            matcher = matchers.get(si)
            if matcher is None and sub.id not in rated:
                items = ranking.items(si)
                digests.append(
                    Digest(
                        subscription=sub, day=day, items=items, total_candidates=ranking.count(si)
                    )
                )
                continue
            items = ranking.items(si, limit=False)
            followed: list[ScoredPaper] = []
            if matcher is not None:
                followed = followed_items(items, matcher)
                if follow_anywhere:
                    if today is None:
                        today = store.announced_on(day)
                    seen = {it.paper.id for it in items} | exclude.get(sub.id, set())
                    followed += followed_elsewhere(today, sub, matcher, seen)
                    followed.sort(key=lambda f: -f.score)  # stable: feed order on ties
                if wide[si].announce_types != sub.announce_types:
                    items = [it for it in items if it.announce_type in sub.announce_types]
            if sub.id in rated:
                assert rescorer is not None
                total = sum(1 for i in items if i.score >= sub.min_score)
                items = rescorer(sub, items)
            else:
                items = [it for it in items if it.score >= sub.min_score]
                total = len(items)
                items = items[: sub.max_papers]
            if followed:
                items = with_follows(items, followed, sub.max_papers)
                total += sum(1 for f in followed if f.score < sub.min_score)
            digests.append(Digest(subscription=sub, day=day, items=items, total_candidates=total))
    return digests


def followed_items(items: Sequence[ScoredPaper], matcher: AuthorMatcher) -> list[ScoredPaper]:
    """The candidates a followed author wrote, best first, each with a "follow" reason first.

    A paper dropped outright (already delivered, liked, an excluded keyword, a muted topic:
    score -inf) stays dropped: following someone does not undo an explicit "not this".
    """
    out = []
    for it in items:
        if it.score == float("-inf"):
            continue
        names = matcher.followed_in(it.paper.authors)
        if names:
            out.append(replace(it, reasons=[follow_reason(names), *it.reasons]))
    return out


def followed_elsewhere(
    announced: Sequence[tuple[Paper, Sequence[tuple[str, str]]]],
    sub: Subscription,
    matcher: AuthorMatcher,
    seen: set[str],
) -> list[ScoredPaper]:
    """A followed author's papers announced outside ``sub``'s categories (new or cross-listed,
    never replacements), scored by its keywords; an excluded word or muted topic still drops
    one.  ``seen``: papers the ranking already had, or that must never come again."""
    out = []
    for paper, listings in announced:
        if paper.id in seen:
            continue
        fresh = sorted((_TYPE_ORDER.get(t, 9), c, t) for c, t in listings if t in ("new", "cross"))
        names = matcher.followed_in(paper.authors) if fresh else []
        if not names:
            continue
        score, reasons = explain(paper, sub)
        if any(r.kind in ("exclude", "muted") for r in reasons):
            continue
        _, category, atype = fresh[0]
        reasons = [follow_reason(names), *reasons]
        out.append(ScoredPaper(paper, score, reasons, announce_type=atype, category=category))
    return out


def follow_reason(names: Sequence[str]) -> Reason:
    """Why a paper is in the digest whatever its score: "followed author: Yoshua Bengio"."""
    return Reason("follow", f"followed author: {', '.join(names)}", 0.0, tuple(names))


def with_follows(
    items: list[ScoredPaper], followed: list[ScoredPaper], max_papers: int
) -> list[ScoredPaper]:
    """The digest with every followed author's paper in it, first; the rest fill what is left
    of ``max_papers``.  A followed paper the ranking had picked anyway keeps its own item
    (learned reasons and all), with the "follow" reason put in front."""
    mine = {f.paper.id: f for f in followed}
    head: list[ScoredPaper] = []
    picked = {it.paper.id: it for it in items}
    for pid, f in mine.items():
        ranked = picked.get(pid)
        if ranked is not None:
            kept = [r for r in ranked.reasons if r.kind != "explore"]
            f = replace(ranked, reasons=[f.reasons[0], *kept], explore=False)
        head.append(f)
    rest = [it for it in items if it.paper.id not in mine]
    return head + rest[: max(0, max_papers - len(head))]
