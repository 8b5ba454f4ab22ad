"""Ratings change the next ranking, and every learned point is explained (bot/learning.py).

Everything runs on the real corpus day the fake arXiv serves (2026-01-22, 320 papers in the
default categories), through the engine and the chat commands where a person would notice.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from bot.cli import main
from bot.commands import Commands, make_command
from bot.config import Config
from bot.engine import Engine
from bot.learning import EXPLORE_TEXT, features
from bot.models import Digest, Paper, Reason, ScoredPaper, Subscription
from bot.scoring import normalize

# Titles of the day's papers on two topics the default keywords rank low / high.
TIME_SERIES = "time series"
FEDERATED = "federated"


@pytest.fixture
def learning(engine: Engine, make_config: Callable[..., Config]) -> Iterator[Engine]:
    """The fixture's fetched day, seen by an engine with learning on (default settings)."""
    yield Engine(make_config(**{"learning.enabled": True}), store=engine.store)


def learning_engine(engine: Engine, make_config: Callable[..., Config], **over: Any) -> Engine:
    return Engine(make_config(**{"learning.enabled": True, **over}), store=engine.store)


def about(topic: str, p: Paper, *, title_only: bool = False) -> bool:
    text = p.title if title_only else f"{p.title} {p.abstract}"
    return f" {topic} " in f" {normalize(text)} "


def ranked(eng: Engine, sub: Subscription) -> list[ScoredPaper]:
    """Every candidate of the day by score, best first (the digest without its cut)."""
    wide = replace(sub, max_papers=1000, min_score=float("-inf"))
    items = eng.digests([wide], eng.latest_day())[0].items  # type: ignore[arg-type]
    return sorted(items, key=lambda it: -it.score)  # exploratory picks back in score order


def topic_papers(eng: Engine, sub: Subscription, topic: str) -> list[Paper]:
    return [it.paper for it in ranked(eng, sub) if about(topic, it.paper, title_only=True)]


def rows(d: Digest) -> list[tuple[str, float, bool]]:
    return [(it.paper.id, round(it.score, 9), it.explore) for it in d.items]


def learned(item: ScoredPaper) -> list[Reason]:
    return [r for r in item.reasons if r.kind == "learned"]


def rate(eng: Engine, sub: Subscription, user: str, paper: Paper, value: int) -> str:
    reply = Commands(eng).handle_rating(sub.platform, sub.chat, user, paper.id, value)
    assert not reply.error, reply.text
    return reply.text


def chat(eng: Engine, platform: str, chat_id: str, user: str, text: str) -> Any:
    reply = Commands(eng).handle(make_command(platform, chat_id, user, text, is_admin=True))
    assert not reply.error, reply.text
    return reply


# -- cold start -------------------------------------------------------------------------------
def test_cold_start_is_the_keyword_ranking(engine: Engine, learning: Engine) -> None:
    sub = engine.default_subscription()
    plain = engine.digest()
    learned_digest = learning.digest()
    assert len(plain.items) == sub.max_papers
    assert [(it.paper.id, it.score, it.reasons) for it in learned_digest.items] == [
        (it.paper.id, it.score, it.reasons) for it in plain.items
    ]
    assert not any(it.explore for it in learned_digest.items)
    # Ratings in another chat leave this one cold.
    other = chat(learning, "telegram", "42", "u1", "/subscribe cs.LG cs.AI cs.CL cs.DC")
    assert "Subscribed" in other.text
    tg = learning.store.get_subscription("telegram", "42")
    assert tg is not None
    rate(learning, tg, "u1", plain.items[0].paper, -1)
    assert rows(learning.digest()) == rows(plain)


# -- ratings move the ranking -------------------------------------------------------------------
def test_a_rating_moves_the_next_ranking(learning: Engine) -> None:
    sub = learning.default_subscription()
    before = learning.digest()
    series = topic_papers(learning, sub, TIME_SERIES)
    assert len(series) >= 6
    assert not any(about(TIME_SERIES, it.paper, title_only=True) for it in before.items)
    rank_before = {it.paper.id: n for n, it in enumerate(ranked(learning, sub))}

    text = rate(learning, sub, "me", series[0], 1)
    assert "rated 👍" in text
    rate(learning, sub, "me", series[1], 1)

    rank_after = {it.paper.id: n for n, it in enumerate(ranked(learning, sub))}
    others = [p for p in series[2:]]
    # Every other paper on the topic moves up, and the best of them into the digest...
    assert all(rank_after[p.id] < rank_before[p.id] for p in others), [
        (rank_before[p.id], rank_after[p.id]) for p in others
    ]
    after = learning.digest()
    risen = [it for it in after.items if it.paper in others]
    assert risen, [it.paper.title for it in after.items]
    # ...saying why, in the topic's words.
    for it in risen:
        plus = [r for r in learned(it) if r.weight > 0]
        assert plus and TIME_SERIES in " ".join(plus[0].terms), it.reasons
        assert plus[0].text.startswith("+") and "like papers you rated 👍: " in plus[0].text
        assert it.score == pytest.approx(it.keyword_score + sum(r.weight for r in learned(it)))


def test_thumbs_down_removes_a_topic(learning: Engine) -> None:
    sub = learning.default_subscription()
    before = learning.digest()
    fed = [it.paper for it in before.items if about(FEDERATED, it.paper)]
    assert len(fed) >= 3
    for paper in fed[:2]:
        rate(learning, sub, "me", paper, -1)
    after = learning.digest()
    # Every paper about it is gone, the third one nobody rated included...
    assert not [it.paper.title for it in after.items if about(FEDERATED, it.paper)]
    # ...and "why" says what pushed it down, in words.
    item = learning.explain(sub, fed[2])
    minus = [r for r in learned(item) if r.weight < 0]
    assert minus and minus[0].text.startswith("−")
    assert "like papers you rated 👎" in minus[0].text and "federated" in minus[0].text


def test_a_single_thumbs_up_still_learns(learning: Engine) -> None:
    """One 👍, no 👎, the unrated papers counting for nothing: the topic still moves up."""
    sub = learning.default_subscription()
    series = topic_papers(learning, sub, TIME_SERIES)
    before = {it.paper.id: n for n, it in enumerate(ranked(learning, sub))}
    rate(learning, sub, "me", series[0], 1)
    after = ranked(learning, sub)
    now = {it.paper.id: n for n, it in enumerate(after)}
    assert all(now[p.id] < before[p.id] for p in series[1:]), [
        (before[p.id], now[p.id]) for p in series[1:]
    ]
    assert not [r for it in after for r in learned(it) if "👎" in r.text]


# -- explanations -----------------------------------------------------------------------------
def _is_feature_of(term: str, p: Paper) -> bool:
    """``term`` is an author, a category, or words that stand in the title or abstract."""
    if term.startswith("author: "):
        return term.removeprefix("author: ") in p.authors
    if term.startswith("category: "):
        return term.removeprefix("category: ") in p.categories

    def word(w: str) -> str:  # as written, or in the plural the features folded away
        plural = f"|{re.escape(w[:-1])}ies" if w.endswith("y") else ""
        return f"(?:{re.escape(w)}(?:e?s)?{plural})"

    rx = re.compile(rf"\b{' '.join(word(w) for w in term.split())}\b")
    return any(rx.search(normalize(text)) for text in (p.title, p.abstract))


def test_why_names_real_features_of_the_paper(learning: Engine) -> None:
    chat(learning, "telegram", "7", "ann", "/subscribe cs.LG cs.AI cs.CL cs.DC")
    sub = learning.store.get_subscription("telegram", "7")
    assert sub is not None
    series = topic_papers(learning, sub, TIME_SERIES)
    fed = topic_papers(learning, sub, FEDERATED)
    for p in series[:2]:
        rate(learning, sub, "ann", p, 1)
    rate(learning, sub, "ann", fed[0], -1)

    for paper in (series[2], fed[1]):
        reply = chat(learning, "telegram", "7", "ann", f"/why {paper.id}")
        item = reply.item
        assert item is not None
        parts = learned(item)
        assert parts, reply.text
        assert item.score == pytest.approx(item.keyword_score + sum(r.weight for r in parts))
        assert [r for r in parts if r.text.startswith(("+", "−")) and " like " in r.text]
        for r in parts:
            assert r.text in reply.text
            if " unlike " in r.text:  # less like those papers than an average paper is
                assert re.fullmatch(r"[+−]\d+\.\d unlike papers you rated [👍👎]", r.text)
                assert (r.weight > 0) == ("👎" in r.text) and not r.terms
                continue
            assert re.match(r"^[+−]\d+\.\d like papers you rated [👍👎]: ", r.text), r.text
            assert (r.weight > 0) == ("👍" in r.text)
            assert r.text.endswith(": " + ", ".join(r.terms))
            assert r.terms and all(_is_feature_of(t, paper) for t in r.terms), r.terms
            assert set(r.terms) <= set(features(paper))
        head = reply.text.splitlines()[0]
        assert head == f"{paper.title} ({paper.versioned_id}): score {item.score:+.1f}"

    # Slack asks the same through /arxiv why.
    chat(learning, "slack", "C1", "U1", "/subscribe cs.LG cs.AI cs.CL cs.DC")
    slack = learning.store.get_subscription("slack", "C1")
    assert slack is not None
    rate(learning, slack, "U1", series[0], 1)
    reply = chat(learning, "slack", "C1", "U1", f"why {series[2].id}")
    assert re.search(r"\+\d\.\d like papers you rated 👍: .*time series", reply.text)


def test_more_like_this_boosts_the_papers_words(learning: Engine) -> None:
    chat(learning, "telegram", "8", "bo", "/subscribe cs.LG cs.AI cs.CL cs.DC")
    sub = learning.store.get_subscription("telegram", "8")
    assert sub is not None
    series = topic_papers(learning, sub, TIME_SERIES)
    reply = chat(learning, "telegram", "8", "bo", f"/more {series[0].id}")
    about_terms = re.search(r"\(about (.+)\) from the next digest on\.$", reply.text)
    assert about_terms, reply.text
    terms = about_terms.group(1).split(", ")
    assert all(_is_feature_of(t, series[0]) for t in terms)
    assert any("series" in t for t in terms)
    assert learning.store.user_vote(sub.id, "bo", series[0].id) == 1  # type: ignore[arg-type]
    strong = learning.explain(sub, series[2])

    # A plain 👍 of the same paper counts less than "more like this".
    chat(learning, "telegram", "9", "cy", "/subscribe cs.LG cs.AI cs.CL cs.DC")
    plain_sub = learning.store.get_subscription("telegram", "9")
    assert plain_sub is not None
    rate(learning, plain_sub, "cy", series[0], 1)
    plain = learning.explain(plain_sub, series[2])
    assert sum(r.weight for r in learned(strong)) > sum(r.weight for r in learned(plain)) > 0


# -- mute ------------------------------------------------------------------------------------
def test_mute_beats_learning_and_unmute_restores(learning: Engine) -> None:
    chat(learning, "telegram", "5", "dee", "/subscribe cs.LG cs.AI cs.CL cs.DC")
    sub = learning.store.get_subscription("telegram", "5")
    assert sub is not None
    series = topic_papers(learning, sub, TIME_SERIES)
    for p in series[:2]:
        rate(learning, sub, "dee", p, 1)
    digest = chat(learning, "telegram", "5", "dee", "/digest").digest
    assert any(about(TIME_SERIES, it.paper) for it in digest.items)

    chat(learning, "telegram", "5", "dee", '/mute "time series"')
    digest = chat(learning, "telegram", "5", "dee", "/digest").digest
    assert digest.items
    assert not [it.paper.title for it in digest.items if about(TIME_SERIES, it.paper)]
    why = chat(learning, "telegram", "5", "dee", f"/why {series[2].id}")
    assert "dropped: muted topic “time series”" in why.text

    chat(learning, "telegram", "5", "dee", '/unmute "time series"')
    digest = chat(learning, "telegram", "5", "dee", "/digest").digest
    assert any(about(TIME_SERIES, it.paper) for it in digest.items)


# -- exploration -------------------------------------------------------------------------------
@pytest.mark.parametrize(("share", "expected"), [(0.1, 2), (0.25, 5), (0.0, 0)])
def test_exploration_share_is_respected(
    engine: Engine, make_config: Callable[..., Config], share: float, expected: int
) -> None:
    eng = learning_engine(
        engine, make_config, **{"learning.exploration": share, "scoring.max_papers": 20}
    )
    sub = eng.default_subscription()
    assert not any(it.explore for it in eng.digest().items)  # no ratings: no exploring
    rate(eng, sub, "me", eng.digest().items[0].paper, 1)
    digest = eng.digest()
    assert len(digest.items) == 20
    picks = [it for it in digest.items if it.explore]
    assert len(picks) == expected
    # Labelled, and after the regular picks.
    assert all(it.explore for it in digest.items[20 - expected :])
    for it in picks:
        assert Reason("explore", EXPLORE_TEXT, 0.0) in it.reasons
    regular = [it for it in digest.items if not it.explore]
    assert [it.score for it in regular] == sorted((it.score for it in regular), reverse=True)


def test_exploration_never_exceeds_its_share_of_a_short_digest(
    engine: Engine, make_config: Callable[..., Config]
) -> None:
    eng = learning_engine(engine, make_config, **{"scoring.min_score": 8.5})
    sub = eng.default_subscription()
    rate(eng, sub, "me", eng.digest().items[0].paper, 1)
    digest = eng.digest()
    regular = [it for it in digest.items if not it.explore]
    assert 1 <= len(regular) < 9 and all(it.score >= 8.5 for it in regular)
    assert not any(it.explore for it in digest.items)  # one pick would be more than 10 %


# -- idempotence ------------------------------------------------------------------------------
def test_repeated_and_flipped_ratings_are_idempotent(
    learning: Engine, make_config: Callable[..., Config]
) -> None:
    sub = learning.default_subscription()
    papers = [it.paper for it in learning.digest().items]
    rate(learning, sub, "me", papers[3], 1)
    once = rows(learning.digest())

    assert rate(learning, sub, "me", papers[3], 1) == "You already rated this 👍."
    assert rows(learning.digest()) == once

    assert "Changed your rating to 👎" in rate(learning, sub, "me", papers[3], -1)
    assert rows(learning.digest()) != once
    rate(learning, sub, "me", papers[3], 1)
    assert rows(learning.digest()) == once

    # Counts kept up to date one rating at a time equal counts rebuilt from storage.
    fresh = Engine(make_config(**{"learning.enabled": True}), store=learning.store)
    assert rows(fresh.digest()) == once


# -- shared channels -----------------------------------------------------------------------------
def test_one_member_cannot_rewrite_another_members_taste(learning: Engine) -> None:
    chat(learning, "slack", "C9", "alice", "/subscribe cs.LG cs.AI cs.CL cs.DC")
    sub = learning.store.get_subscription("slack", "C9")
    assert sub is not None
    share = learning.config.learning.user_share
    series = topic_papers(learning, sub, TIME_SERIES)
    target = series[4]

    for p in series[:2]:
        rate(learning, sub, "bob", p, 1)
    bob_alone = sum(r.weight for r in learned(learning.explain(sub, target, user="bob")))
    assert bob_alone > 0

    # Alice dislikes the topic, loudly.
    for p in series[1:4]:
        rate(learning, sub, "alice", p, -1)

    channel = sum(r.weight for r in learned(learning.explain(sub, target)))
    bob = learning.explain(sub, target, user="bob")
    mine = [r for r in learned(bob) if "papers you rated" in r.text]
    ours = [r for r in learned(bob) if "papers this chat rated" in r.text]
    # Bob's own part is exactly what it was, scaled to his share...
    assert sum(r.weight for r in mine) == pytest.approx(share * bob_alone, abs=1e-6)
    assert TIME_SERIES in mine[0].terms
    # ...and Alice reaches Bob's view only through the channel's share.
    assert sum(r.weight for r in ours) == pytest.approx((1 - share) * channel, abs=1e-6)
    alice = learning.explain(sub, target, user="alice")
    assert bob.score > alice.score
    assert [r for r in learned(alice) if "papers you rated 👎" in r.text]

    # A member who never rated sees the channel's share and nothing of their own.
    carol = learning.explain(sub, target, user="carol")
    assert sum(r.weight for r in learned(carol)) == pytest.approx((1 - share) * channel, abs=1e-6)


# -- the command line ----------------------------------------------------------------------------
def test_cli_rate_ratings_and_why(write_config: Callable[..., Path]) -> None:
    cfg = str(write_config())
    runner = CliRunner()

    def herald(*args: str, code: int = 0) -> str:
        result = runner.invoke(main, ["--config", cfg, *args])
        assert result.exit_code == code, result.output
        assert "Traceback" not in result.output
        return result.output

    herald("fetch")
    out = herald("ratings")
    assert "No ratings yet" in out

    out = herald("rate", "2601.13824", "down")
    assert out.startswith("Rated 👎: ELSA: Efficient LLM-Centric Split Aggregation")
    assert "as cli" in out and "like papers you rated 👎" in out
    assert "Already rated 👎" in herald("rate", "2601.13824", "DOWN")
    out = herald("rate", "arXiv:2601.12917v1", "up", "--user", "bob", "-s", "default")
    assert out.startswith("Rated 👍: CooperLLM")

    out = herald("ratings")
    assert "2 ratings" in out
    for text in ("2601.13824", "2601.12917", "cli", "bob", "👍", "👎", "CooperLLM", "default"):
        assert text in out
    assert "2 ratings" in herald("ratings", "--subscription", "default")

    out = herald("why", "2601.11977")
    lines = out.splitlines()
    assert lines[0].startswith("One-Shot Price Forecasting") and "score " in lines[0]
    assert any(line.startswith("• “") for line in lines)  # a keyword match
    assert any("papers this chat rated" in line for line in lines)  # two people rated
    # What the bot believes, in words of the rated papers (issue 18).
    assert any(line.startswith("Learned topics 👍: ") for line in lines)

    assert any(line.startswith("Learned topics 👎: ") and "split" in line for line in lines)
    out = herald("why", "2601.11977", "--user", "bob")
    assert "papers you rated" in out and "papers this chat rated" in out

    # Mistakes are messages, not tracebacks.
    assert "No subscription 'nope'" in herald("rate", "2601.13824", "up", "-s", "nope", code=1)
    assert "Known subscriptions: 1 (default)" in herald("why", "2601.13824", "-s", "7", code=1)
    assert "arXiv has no paper 2601.99999" in herald("rate", "2601.99999", "up", code=1)
    assert "'sideways' is not one of" in herald("rate", "2601.13824", "sideways", code=2)
