"""Ratings that survive mis-taps, exploration that finds interests the keywords miss, and a
profile the reader can see (issue 18, bot/learning.py).

On the fixture's fetched day (2026-01-22), through the engine and the chat commands.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Iterator

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bot.config import Config
from bot.engine import Engine
from bot.learning import EXPLORE_TEXT, features
from bot.models import Digest, Paper, Reason, ScoredPaper, Subscription
from tests.test_learning import (
    FEDERATED,
    TIME_SERIES,
    chat,
    learned,
    learning_engine,
    ranked,
    rate,
    topic_papers,
)

_chats = itertools.count(100)
#: Time-series papers of the fixture's day: the target ("Patch-Level Tokenization with CNN
#: Encoders …"), the paper most like it, another like it, and six more like it.
TARGET, CONFIRM, PROBE = "2601.12467", "2601.13768", "2601.13534"
CONTRA = ("2601.12893", "2601.12706", "2601.11977", "2601.11821", "2601.12785", "2601.12288")


@pytest.fixture
def learning(engine: Engine, make_config: Callable[..., Config]) -> Iterator[Engine]:
    yield Engine(make_config(**{"learning.enabled": True}), store=engine.store)


def new_chat(eng: Engine, **settings_: str) -> Subscription:
    """A fresh Telegram chat subscribed to the default categories (no ratings yet)."""
    chat_id = str(next(_chats))
    chat(eng, "telegram", chat_id, "me", "/subscribe cs.LG cs.AI cs.CL cs.DC")
    for name, value in settings_.items():
        chat(eng, "telegram", chat_id, "me", f"/settings {name} {value}")
    sub = eng.store.get_subscription("telegram", chat_id)
    assert sub is not None
    return sub


def words(p: Paper) -> set[str]:
    return {t for t in features(p) if not t.startswith(("author: ", "category: "))}


def cosine(a: Paper, b: Paper) -> float:
    x, y = words(a), words(b)
    return len(x & y) / math.sqrt(len(x) * len(y)) if x and y else 0.0


def liked_part(item: ScoredPaper) -> float:
    """The 👍 side of an item's learned score (as the reasons state it)."""
    return sum(r.weight for r in learned(item) if "rated 👍" in r.text)


def status(eng: Engine, sub: Subscription) -> str:
    return str(chat(eng, sub.platform, sub.chat, "me", "/status").text)


# -- a 👍 the other ratings contradict counts less until confirmed ---------------------------------
def test_a_contradicted_thumbs_up_counts_less_until_a_similar_one_confirms_it(
    learning: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    import bot.learning

    # One day of 320 papers is a thin background: papers are less alike than on a full corpus.
    monkeypatch.setattr(bot.learning, "SIMILAR", 0.06)
    day = {it.paper.id: it.paper for it in ranked(learning, learning.default_subscription())}
    target, confirm, probe = day[TARGET], day[CONFIRM], day[PROBE]
    federated = topic_papers(learning, learning.default_subscription(), FEDERATED)

    # Chat "alone": a 👍 of a time-series paper among 👎 of unrelated (federated) papers.
    alone = new_chat(learning)
    for p in federated[:5]:
        rate(learning, alone, "me", p, -1)
    rate(learning, alone, "me", target, 1)
    # Chat "against": the same 👍 among 👎 of papers like it (a mis-tap, probably).
    against = new_chat(learning)
    for pid in CONTRA:
        rate(learning, against, "me", day[pid], -1)
    rate(learning, against, "me", target, 1)

    assert "Not yet confirmed" not in status(learning, alone)
    assert f"Not yet confirmed: {TARGET} (45%)" in status(learning, against)
    # It still counts at once, only less than the same 👍 uncontradicted.
    own_alone = liked_part(learning.explain(alone, probe))
    own_against = liked_part(learning.explain(against, probe))
    assert 0 < own_against < own_alone

    # A second 👍 of a similar paper confirms it: both count in full.
    rate(learning, against, "me", confirm, 1)
    assert "Not yet confirmed" not in status(learning, against)
    assert liked_part(learning.explain(against, probe)) > own_alone
    # A flip of the confirming rating takes the confirmation back.
    rate(learning, against, "me", confirm, -1)
    assert f"Not yet confirmed: {TARGET} (" in status(learning, against)


def test_more_like_this_confirms_at_once(learning: Engine, monkeypatch: pytest.MonkeyPatch) -> None:
    import bot.learning

    monkeypatch.setattr(bot.learning, "SIMILAR", 0.06)
    day = {it.paper.id: it.paper for it in ranked(learning, learning.default_subscription())}
    sub = new_chat(learning)
    for pid in CONTRA:
        rate(learning, sub, "me", day[pid], -1)
    rate(learning, sub, "me", day[TARGET], 1)
    assert f"Not yet confirmed: {TARGET} (" in status(learning, sub)
    learning.more_like_this(sub, "me", day[TARGET])
    assert "Not yet confirmed" not in status(learning, sub)


# -- exact undo, whatever the order ----------------------------------------------------------------
@settings(
    max_examples=8, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    moves=st.lists(st.tuples(st.integers(0, 7), st.sampled_from([1, -1])), min_size=1, max_size=14)
)
def test_any_sequence_of_ratings_gives_the_scores_of_its_final_votes(
    learning: Engine, moves: list[tuple[int, int]]
) -> None:
    """Rating, flipping and re-flipping in any order ends in exactly the scores of rating the
    final votes once, in one go, on a fresh chat — to the last bit, trust included."""
    import bot.learning

    day = learning.latest_day()
    assert day is not None
    everything = {it.paper.id: it.paper for it in ranked(learning, learning.default_subscription())}
    papers = [everything[pid] for pid in (TARGET, CONFIRM, *CONTRA)]  # alike: trust has work
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(bot.learning, "SIMILAR", 0.06)
        played, direct = replay(learning, papers, moves)
        assert exact(learning.digests([played], day)[0]) == exact(
            learning.digests([direct], day)[0]
        )


def exact(d: Digest) -> list[tuple[str, float, bool, list[str]]]:
    return [(it.paper.id, it.score, it.explore, [r.text for r in it.reasons]) for it in d.items]


def replay(
    eng: Engine, papers: list[Paper], moves: list[tuple[int, int]]
) -> tuple[Subscription, Subscription]:
    """The moves on a fresh chat, and their final votes rated once each on another."""
    played = new_chat(eng)
    final: dict[int, int] = {}
    for i, value in moves:
        rate(eng, played, "me", papers[i], value)
        final[i] = value
    direct = new_chat(eng)
    for i, value in sorted(final.items(), reverse=True):
        rate(eng, direct, "me", papers[i], value)
    return played, direct


# -- exploration from the whole day ----------------------------------------------------------------
def test_exploration_from_the_whole_day_is_unlike_what_was_rated_down_and_each_other(
    engine: Engine, make_config: Callable[..., Config], monkeypatch: pytest.MonkeyPatch
) -> None:
    import bot.learning

    eng = learning_engine(engine, make_config, **{"learning.exploration": 0.3})
    sub = new_chat(eng, max="10")
    day = eng.latest_day()
    assert day is not None
    assert not any(it.explore for it in eng.digests([sub], day)[0].items)  # no ratings yet
    downs = [it.paper for it in ranked(eng, sub)[:12]]  # the keywords' neighbourhood
    for p in downs:
        rate(eng, sub, "me", p, -1)

    def picks() -> list[ScoredPaper]:
        return [it for it in eng.digests([sub], day)[0].items if it.explore]

    def likeness(p: Paper) -> float:
        return max(cosine(p, d) for d in downs)

    mixed = picks()
    assert len(mixed) == 3  # floor(0.3 × 10): one near miss, two (half, rounded up) from the day
    for it in mixed:
        assert Reason("explore", EXPLORE_TEXT, 0.0) in it.reasons
    monkeypatch.setattr(bot.learning, "WIDE_SHARE", 0.0)
    near_only = picks()
    assert len(near_only) == 3
    wide = [it.paper for it in mixed if it.paper.id not in {n.paper.id for n in near_only}]
    assert len(wide) >= 2
    day_papers = [it.paper for it in ranked(eng, sub)]
    typical = sorted(likeness(p) for p in day_papers)[len(day_papers) // 2]
    assert all(likeness(p) < typical for p in wide)
    assert sum(map(likeness, wide)) / len(wide) < min(likeness(it.paper) for it in near_only)
    assert cosine(wide[0], wide[1]) < 0.2  # and unlike each other


def test_a_chat_that_likes_its_digest_keeps_its_near_misses(
    engine: Engine, make_config: Callable[..., Config], monkeypatch: pytest.MonkeyPatch
) -> None:
    import bot.learning

    eng = learning_engine(engine, make_config, **{"learning.exploration": 0.3})
    sub = new_chat(eng, max="10")
    day = eng.latest_day()
    assert day is not None
    top = [it.paper for it in ranked(eng, sub)[:6]]
    for p, value in zip(top, (1, 1, 1, -1, -1, -1), strict=True):
        rate(eng, sub, "me", p, value)

    def picks() -> list[str]:
        return [it.paper.id for it in eng.digests([sub], day)[0].items if it.explore]

    mixed = picks()
    assert len(mixed) == 3
    monkeypatch.setattr(bot.learning, "WIDE_SHARE", 0.0)
    assert picks() == mixed  # half its ratings are 👍: no picks from afar


def test_exploration_never_picks_a_muted_paper(learning: Engine) -> None:
    sub = new_chat(learning)
    chat(learning, sub.platform, sub.chat, "me", f'/mute "{TIME_SERIES}"')
    for it in ranked(learning, sub)[:10]:
        rate(learning, sub, "me", it.paper, -1)
    sub = learning.store.get_subscription(sub.platform, sub.chat)  # type: ignore[assignment]
    digest = learning.digests([sub], learning.latest_day())[0]  # type: ignore[list-item]
    assert not any(r.kind == "muted" for it in digest.items for r in it.reasons)
    assert all(math.isfinite(it.score) for it in digest.items)


# -- what the bot believes ----------------------------------------------------------------------
def test_status_shows_the_strongest_topics_in_the_rated_papers_words(learning: Engine) -> None:
    sub = new_chat(learning)
    assert "Learned topics" not in status(learning, sub)  # nothing rated, nothing believed

    series = topic_papers(learning, learning.default_subscription(), TIME_SERIES)
    federated = topic_papers(learning, learning.default_subscription(), FEDERATED)
    for p in series[:4]:
        rate(learning, sub, "me", p, 1)
    for p in federated[:4]:
        rate(learning, sub, "me", p, -1)
    lines = status(learning, sub).splitlines()
    liked = next(line for line in lines if line.startswith("Learned topics 👍: "))
    disliked = next(line for line in lines if line.startswith("Learned topics 👎: "))
    assert TIME_SERIES in liked and FEDERATED not in liked
    assert any(FEDERATED in t for t in disliked.split(": ", 1)[1].split(", "))
    # Every topic is words of the papers rated that way.
    rated_up = set().union(*(words(p) for p in series[:4]))
    assert all(t in rated_up for t in liked.split(": ", 1)[1].split(", "))
    assert any("Mute it" in line for line in lines)

    # ``why`` (the chat command and ``herald why``) says it too.
    text = "\n".join(learning_why(learning, sub, series[5]))
    assert liked in text and disliked in text


def learning_why(eng: Engine, sub: Subscription, paper: Paper) -> list[str]:
    from bot.commands import Commands

    return Commands(eng).why(sub, paper)[1]
