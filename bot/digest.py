"""Build each subscription's digest for an announcement day from what storage holds."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Sequence
from dataclasses import replace

from bot.models import Digest, ScoredPaper, Subscription
from bot.scoring import Listing, _gc_paused, score_all
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
) -> list[Digest]:
    """One digest per subscription, scored in a single pass over the day's papers.

    Papers already delivered to a subscription on an earlier day are left out, so a paper that
    is announced again (a cross-list, a late listing) is never sent twice.
    """
    if not subscriptions:
        return []
    cats = sorted({c for s in subscriptions for c in s.categories})
    cands = candidates_for(store, day, cats)
    exclude: dict[int | None, set[str]] = {}
    if skip_delivered:
        ids = [s.id for s in subscriptions if s.id is not None]
        for sid, delivered in store.delivered_paper_ids_many(ids, before=day).items():
            exclude[sid] = delivered
    # Learned scores can lift papers no keyword matched: a subscription with ratings is ranked
    # over everything and cut after the rescorer.  One nobody has rated has no learned score
    # (learning works from ratings only), so its digest is its keyword ranking, cut: only
    # those few items are explained, not every candidate of every chat (100,000 chats ×
    # hundreds of papers), and the rescorer is not asked.
    rated = store.rated_subscription_ids() if rescorer is not None else set()
    wide = [replace(s, min_score=float("-inf")) if s.id in rated else s for s in subscriptions]
    with _gc_paused():
        ranking = score_all(cands, wide, exclude_ids=exclude)
        digests = []
        for si, sub in enumerate(subscriptions):
            if sub.id in rated:
                assert rescorer is not None
                items = ranking.items(si, limit=False)
                total = sum(1 for i in items if i.score >= sub.min_score)
                items = rescorer(sub, items)
            else:
                items = ranking.items(si)
                total = ranking.count(si)
            digests.append(Digest(subscription=sub, day=day, items=items, total_candidates=total))
    return digests
