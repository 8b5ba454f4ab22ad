"""Build each subscription's digest for an announcement day from what storage holds."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Sequence
from dataclasses import replace

from bot.models import Digest, ScoredPaper, Subscription
from bot.scoring import Listing, rank
from storage import Store

_TYPE_ORDER = {"new": 0, "cross": 1, "replace": 2, "replace-cross": 3}

#: Re-scores a subscription's full candidate list (keyword scores, unfiltered) and returns the
#: final digest items: learned scores added, ``min_score`` and ``max_papers`` applied,
#: exploratory picks mixed in.  Learning hooks in here.
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
        for s in subscriptions:
            if s.id is not None:
                exclude[s.id] = store.delivered_paper_ids(s.id, before=day)
    wide = list(subscriptions)
    if rescorer is not None:
        # Learned scores can lift papers no keyword matched: rank everything, cut afterwards.
        wide = [replace(s, min_score=float("-inf")) for s in subscriptions]
    ranked = rank(cands, wide, exclude_ids=exclude, limit=False)
    digests = []
    for sub, items in zip(subscriptions, ranked, strict=True):
        if rescorer is not None:
            total = sum(1 for i in items if i.score >= sub.min_score)
            items = rescorer(sub, items)
        else:
            total = len(items)
            items = items[: sub.max_papers]
        digests.append(Digest(subscription=sub, day=day, items=items, total_candidates=total))
    return digests
