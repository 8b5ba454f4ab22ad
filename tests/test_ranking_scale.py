"""Ranking many chats at once gives what ranking each alone gives: the indexed eligibility,
the batch ledger and ratings look-ups, and the rescorer asked only for rated chats change
nothing a chat would notice.  And the storage verbs that large fan-outs and forum topics
need."""

from __future__ import annotations

import datetime as dt
import random
from dataclasses import replace
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from bot.engine import Engine
from bot.models import Paper, Rating, Subscription
from bot.scoring import Listing, _eligible, eligible, rank, score_all
from storage import Store
from tests.conftest import DAY
from tests.fakes import corpus

CATEGORIES = ["cs.LG", "cs.CL", "cs.AI", "cs.DC", "cs", "stat.ML", "stat", "math.OC", "hep-th"]
TYPES = ["new", "cross", "replace", "replace-cross"]
D = dt.date.fromisoformat(DAY)


def _papers() -> list[Paper]:
    return [corpus.as_paper(p) for p in corpus.papers_on(DAY)[:80]]


PAPERS = _papers()
WORDS = sorted({w for p in PAPERS for w in p.title.split() if len(w) > 4})[:400]

_subs = st.lists(
    st.builds(
        lambda i, cats, types, kws, mode, mn, mx: Subscription(
            id=i,
            platform="t",
            chat=str(i),
            categories=tuple(dict.fromkeys(cats)),
            announce_types=tuple(dict.fromkeys(types)),
            keywords=tuple(kws),
            mode=mode,
            min_score=mn,
            max_papers=mx,
        ),
        st.integers(0, 10**6),
        st.lists(st.sampled_from(CATEGORIES), min_size=1, max_size=3),
        st.lists(st.sampled_from(TYPES), min_size=1, max_size=3),
        st.lists(st.sampled_from(WORDS), max_size=6),
        st.sampled_from(["words", "words", "seed"]),
        st.sampled_from([0.0, 1.0, 2.0]),
        st.integers(1, 30),
    ),
    min_size=1,
    max_size=12,
)
_listings = st.lists(
    st.tuples(
        st.sampled_from([*CATEGORIES[:4], "stat.ML", "math.OC", "hep-th"]), st.sampled_from(TYPES)
    ),
    min_size=1,
    max_size=3,
)


@settings(max_examples=30, deadline=None)
@given(subs=_subs, listings=st.lists(_listings, min_size=len(PAPERS), max_size=len(PAPERS)))
def test_ranking_many_chats_together_equals_ranking_each_alone(
    subs: list[Subscription], listings: list[list[tuple[str, str]]]
) -> None:
    cands = [Listing(p, tuple(ls)) for p, ls in zip(PAPERS, listings, strict=True)]
    together = rank(cands, subs, limit=False)
    for sub, items in zip(subs, together, strict=True):
        (alone,) = rank(cands, [sub], limit=False)
        assert [(i.paper.id, i.score, i.category, i.announce_type) for i in items] == [
            (i.paper.id, i.score, i.category, i.announce_type) for i in alone
        ]
        # the same reasons (their order among title hits, or abstract hits, follows the
        # order keywords were first seen in the batch: that was so before ranking at scale)
        assert [sorted(r.text for r in i.reasons) for i in items] == [
            sorted(r.text for r in i.reasons) for i in alone
        ]
        if sub.mode == "seed":
            continue  # seed mode keeps only papers a keyword matched, whatever min_score
        # the index finds exactly the papers eligible() allows
        seen = {
            i.paper.id
            for i in score_all(cands, [replace(sub, min_score=float("-inf"))]).items(0, limit=False)
        }
        assert seen == {c.paper.id for c in cands if eligible(sub, c.listings) is not None}


def test_the_private_eligibility_is_the_public_one() -> None:
    rng = random.Random(3)
    for _ in range(500):
        sub = Subscription(
            None,
            "t",
            "c",
            tuple(rng.sample(CATEGORIES, 2)),
            announce_types=tuple(rng.sample(TYPES, 2)),
            mode=rng.choice(["words", "seed"]),
        )
        ls = tuple((rng.choice(CATEGORIES), rng.choice(TYPES)) for _ in range(3))
        assert _eligible(sub, frozenset(sub.categories), ls) == eligible(sub, ls)


def test_a_days_digests_for_many_chats_match_each_chats_own_with_learning_on(
    make_config: object,
) -> None:
    """Rated chats go through the learner over every candidate; unrated ones keep their
    keyword ranking: exactly what each gets when ranked alone."""
    cfg = make_config(**{"learning.enabled": True})  # type: ignore[operator]
    engine = Engine(cfg)
    try:
        assert engine.fetch().status == "ok"
        rng = random.Random(5)
        base = engine.default_subscription()
        subs = []
        for i in range(12):
            kws = (*rng.sample(WORDS, 5), "LLM", "training")
            subs.append(
                engine.store.upsert_subscription(
                    replace(
                        base,
                        id=None,
                        platform="t",
                        chat=f"c{i}",
                        name="",
                        feed_token="",
                        keywords=kws,
                        max_papers=rng.choice([3, 8]),
                        min_score=1.0,
                    )
                )
            )
        for sub in subs[::3]:  # some chats rated papers, one learned "more like this"
            assert sub.id is not None
            for p in rng.sample(PAPERS, 6):
                engine.store.record_rating(Rating(sub.id, "u", p.id, rng.choice([1, -1])))
        # a paper delivered earlier to one chat is not offered again
        assert subs[1].id is not None
        first = engine.digests([subs[1]], D)[0].items[0].paper.id
        engine.store.plan_deliveries(subs[1].id, D - dt.timedelta(days=1), [first])
        engine.store.set_delivery_state(subs[1].id, D - dt.timedelta(days=1), first, "sent")
        together = engine.digests(subs, D)
        for sub, digest in zip(subs, together, strict=True):
            (alone,) = engine.digests([sub], D)
            assert digest.total_candidates == alone.total_candidates
            assert [(i.paper.id, round(i.score, 9), i.explore) for i in digest.items] == [
                (i.paper.id, round(i.score, 9), i.explore) for i in alone.items
            ]
        assert first not in {i.paper.id for i in together[1].items}
    finally:
        engine.store.close()


# -- storage verbs ------------------------------------------------------------------------------
def test_plans_for_many_chats_are_written_once(tmp_path: Path) -> None:
    store = Store(tmp_path / "h.db")
    try:
        subs = [
            store.upsert_subscription(Subscription(None, "t", f"c{i}", ("cs.LG",)))
            for i in range(3)
        ]
        ids = [s.id for s in subs]
        assert None not in ids
        plans = [(sid, D, ["a", "b"], "compact") for sid in ids if sid is not None]
        assert store.plan_deliveries_many(plans) == 9
        assert store.plan_deliveries_many(plans) == 0  # a plan that exists is kept
        rows = store.deliveries(ids[0], D)  # type: ignore[arg-type]
        assert [(r.paper_id, r.position, r.layout) for r in rows] == [
            ("", 0, "compact"),
            ("a", 1, "compact"),
            ("b", 2, "compact"),
        ]
        store.set_delivery_states(ids[0], D, ["", "a"], "sent", message_id="41", thread_id="41")  # type: ignore[arg-type]
        rows = store.deliveries(ids[0], D)  # type: ignore[arg-type]
        assert [(r.state, r.message_id) for r in rows] == [
            ("sent", "41"),
            ("sent", "41"),
            ("pending", None),
        ]
        assert store.delivered_paper_ids_many(ids) == {ids[0]: {"a"}, ids[1]: set(), ids[2]: set()}  # type: ignore[arg-type]
    finally:
        store.close()


def test_a_forums_topics_share_its_message_ids(tmp_path: Path) -> None:
    store = Store(tmp_path / "h.db")
    try:
        chat = "-1009990001"
        subs = {
            c: store.upsert_subscription(Subscription(None, "telegram", c, ("cs.LG",)))
            for c in (chat, f"{chat}/7", f"{chat}/12", "-10099900010", "-100999000/1")
        }
        for i, sub in enumerate(subs.values()):
            assert sub.id is not None
            store.plan_deliveries(sub.id, D, [])
            store.set_delivery_state(sub.id, D, "", "sent", message_id=str(100 + 10 * i))
        store.mark_message("telegram", chat, 105)
        assert store.last_message_id("telegram", chat) == 105
        assert store.last_message_id("telegram", chat, topics=True) == 120  # "/12", not others
        assert store.last_message_id("telegram", f"{chat}/7") == 110
        assert store.sent_message_ids("telegram", chat, 100, topics=True) == {110, 120}
        assert store.sent_message_ids("telegram", chat, 0) == {100}
    finally:
        store.close()


def test_a_database_from_before_layouts_reads_the_platform_default(tmp_path: Path) -> None:
    store = Store(tmp_path / "h.db")
    try:
        sub = store.upsert_subscription(Subscription(None, "telegram", "1", ("cs.LG",)))
        assert sub.id is not None
        store.db.execute("UPDATE subscriptions SET layout = NULL")  # as the migration leaves it
        again = store.subscription_by_id(sub.id)
        assert again is not None and again.layout == ""
        assert store.update_subscription(sub.id, layout="compact").layout == "compact"
    finally:
        store.close()
