"""Day one is already good (issue 13): likes, library imports and followed authors, as command
scripts on the test bot (platform-neutral) and through the CLI.  The Slack and Telegram tests
only check how a file reaches the core."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner

from bot.cli import main
from bot.config import Config
from bot.engine import Engine
from bot.models import Reply
from tests.fakes.arxiv import FakeArxiv
from tests.testbot import CHAT, PLATFORM, USER, TestBot

LIBRARY = Path(__file__).parent / "data" / "library"
FIXTURES = ["zotero_export.bib", "zotero_export.ris", "zotero_export.json"]
#: Papers of the fixture found by id (7) and by exact title (2); a DAY paper among them.
BY_ID = ["2601.10823", "2601.11061", "2601.11113", "2601.11311", "2601.11342", "2601.11864"]
BY_ID += ["2601.19278"]
BY_TITLE = ["2601.12145", "2601.11118"]
ON_DAY = "2601.11864"  # AGGC, announced on the fetched day in cs.LG
MIXFLOW = "2601.11827"  # cs.LG on the fetched day; Pietro Liò is one of its 13 authors
RITTER = "2601.11629"  # cs.CR, cross-listed to cs.LG; Alan Ritter is an author


def api_calls(fake: FakeArxiv) -> list[dict[str, str]]:
    return [c.query for c in fake.calls if c.path.endswith("/api/query")]


def send_file(bot: TestBot, name: str, data: bytes, *, chat: str = CHAT, user: str = USER) -> Reply:
    """What an adapter does with a file someone sent: refused up front, or imported."""
    refused = bot.core.library_refusal(name, len(data))
    if refused is not None:
        return refused
    return asyncio.run(bot.core.import_library(PLATFORM, chat, user, name, data))


def digest_items(bot: TestBot) -> list[Any]:
    day = bot.engine.latest_day()
    sub = bot.sub()
    assert day is not None and sub is not None
    return bot.engine.digests([sub], day)[0].items


@pytest.fixture
def learning_bot(engine: Engine, make_config: Callable[..., Config]) -> Iterator[TestBot]:
    """The test bot on the fetched day with learning on (the product's default)."""
    bot = TestBot(make_config(**{"learning.enabled": True}), engine)
    bot.engine = Engine(bot.app.config, store=engine.store)
    bot.app = __import__("bot.app", fromlist=["build"]).build(
        bot.app.config, bot.engine, adapters={"test": bot.adapter}
    )
    bot.core = bot.app.core
    yield bot
    bot.close()


# -- /like --------------------------------------------------------------------------------------
def test_like_script(testbot: TestBot, fake_arxiv: FakeArxiv) -> None:
    assert "This chat is not subscribed yet" in testbot.exec("/like 2601.10823").text
    testbot.exec("/subscribe cs.LG")
    assert "Usage: /like <arXiv id>" in testbot.exec("/like").text
    before = len(api_calls(fake_arxiv))
    reply = testbot.exec(
        "/like 2601.10823 arXiv:2601.11061v1 https://arxiv.org/abs/2601.11864 2601.99999 nope"
    )
    assert reply.text.startswith("Liked 3 papers: “Mugi: Value Level Parallelism")
    assert "arXiv has no paper 2601.99999." in reply.text
    assert "Not arXiv ids: 'nope'." in reply.text
    # The two papers storage did not hold came in ONE API request; the day's paper was stored.
    (call,) = api_calls(fake_arxiv)[before:]
    assert call["id_list"] == "2601.10823,2601.11061,2601.99999"
    again = testbot.exec("/like 2601.10823")
    assert "Already liked: 2601.10823." in again.text and not again.error
    assert testbot.exec("/like 2601.99999").error
    sub = testbot.sub()
    assert sub is not None and sub.id is not None
    rows = {r.paper_id: r for r in testbot.store.ratings(sub.id)}
    assert set(rows) == {"2601.10823", "2601.11061", "2601.11864"}
    assert {(r.value, r.source, r.user) for r in rows.values()} == {(1, "like", USER)}


def test_fifty_ids_are_one_request_and_more_are_refused(
    testbot: TestBot, fake_arxiv: FakeArxiv
) -> None:
    from tests.fakes import corpus

    testbot.exec("/subscribe cs.LG")
    stored = set(testbot.store.get_papers([p["base_id"] for p in corpus.load_papers()]))
    ids = [p["base_id"] for p in corpus.load_papers() if p["base_id"] not in stored][:51]
    refused = testbot.exec("/like " + " ".join(ids))
    assert refused.error and "like at most 50 at a time" in refused.text
    before = len(api_calls(fake_arxiv))
    reply = testbot.exec("/like " + " ".join(ids[:50]))
    assert reply.text.startswith("Liked 50 papers")
    assert len(api_calls(fake_arxiv)) == before + 1
    assert len(api_calls(fake_arxiv)[-1]["id_list"].split(",")) == 50


def test_a_liked_paper_is_never_delivered(testbot: TestBot) -> None:
    testbot.exec("/subscribe cs.LG")
    testbot.exec("/settings max 100 min 0")
    assert ON_DAY in [it.paper.id for it in digest_items(testbot)]
    testbot.exec(f"/like {ON_DAY}")
    assert ON_DAY not in [it.paper.id for it in digest_items(testbot)]
    testbot.exec("/digest")
    assert ON_DAY not in {p.paper for p in testbot.adapter.posts}
    # …and a 👍 pressed on it later (say under /summarize) keeps it a like.
    testbot.press(ON_DAY, -1)
    testbot.press(ON_DAY, 1)
    sub = testbot.sub()
    assert sub is not None and sub.id is not None
    assert ON_DAY in testbot.store.seed_paper_ids(sub.id)


def test_likes_count_as_thumbs_up_for_learning(learning_bot: TestBot) -> None:
    bot = learning_bot
    bot.exec("/subscribe cs.LG")
    sub = bot.sub()
    assert sub is not None
    day = bot.engine.latest_day()
    assert day is not None
    before = bot.engine.digests([sub], day)[0]
    assert not any(r.kind == "learned" for it in before.items for r in it.reasons)
    assert "Learned share: 0% of the scores" in bot.exec("/status").text
    bot.exec("/like " + " ".join(BY_ID))
    after = bot.engine.digests([sub], day)[0]
    reasons = [r.text for it in after.items for r in it.reasons if r.kind == "learned"]
    assert any("like papers you rated 👍" in t for t in reasons), reasons
    status = bot.exec("/status").text
    assert "Profile: 7 liked, 0 imported, 0 rated with 👍/👎 (seed: 7 papers)" in status
    share = int(status.split("Learned share: ")[1].split("%")[0])
    assert 0 < share < 100


# -- library imports ----------------------------------------------------------------------------
@pytest.mark.parametrize("name", FIXTURES)
def test_importing_a_zotero_export(testbot: TestBot, fake_arxiv: FakeArxiv, name: str) -> None:
    testbot.exec("/subscribe cs.LG")
    before = len(api_calls(fake_arxiv))
    reply = send_file(testbot, name, (LIBRARY / name).read_bytes())
    assert not reply.error, reply.text
    fmt = {"bib": "BibTeX", "ris": "RIS", "json": "CSL-JSON"}[name.rsplit(".", 1)[1]]
    assert reply.text.startswith(
        f"Imported 9 of 15 entries from {name} ({fmt}): 7 by their arXiv id, "
        "2 found on arXiv by title."
    ), reply.text
    assert "Skipped 6:" in reply.text
    assert "• 5 not found on arXiv by title: “Long Short-Term Memory”, “Deep learning”" in (
        reply.text
    )
    assert "• 1 without a title or an arXiv id" in reply.text
    # One id_list request for the six ids storage lacked, one request per title lookup.
    calls = api_calls(fake_arxiv)[before:]
    assert [c for c in calls if c.get("id_list")] == calls[:1]
    assert len(calls[0]["id_list"].split(",")) == 6
    assert len(calls) == 1 + 7
    sub = testbot.sub()
    assert sub is not None and sub.id is not None
    rows = testbot.store.ratings(sub.id)
    assert sorted(r.paper_id for r in rows) == sorted(BY_ID + BY_TITLE)
    assert {(r.source, r.value) for r in rows} == {("import", 1)}
    # The same file again: nothing new.
    again = send_file(testbot, name, (LIBRARY / name).read_bytes())
    assert again.text.startswith("Imported 0 of 15 entries") and "9 papers you had liked" in (
        again.text
    )
    assert ON_DAY not in [it.paper.id for it in digest_items(testbot)]


def test_title_lookups_are_bounded(testbot: TestBot, fake_arxiv: FakeArxiv) -> None:
    testbot.exec("/subscribe cs.LG")
    items = [{"id": f"n{n}", "title": f"A journal paper number {n}"} for n in range(25)]
    before = len(api_calls(fake_arxiv))
    reply = send_file(testbot, "many.json", json.dumps(items).encode())
    assert len(api_calls(fake_arxiv)) - before == 20
    assert "• 20 not found on arXiv by title" in reply.text
    assert "• 5 not looked up (at most 20 title searches per import)" in reply.text


def test_an_import_when_arxiv_is_down_says_so(testbot: TestBot, fake_arxiv: FakeArxiv) -> None:
    testbot.exec("/subscribe cs.LG")
    fake_arxiv.api_mode = "http503"
    reply = send_file(testbot, "x.bib", (LIBRARY / "zotero_export.bib").read_bytes())
    assert reply.error and "Sorry, that did not work: the arXiv API" in reply.text


@pytest.mark.parametrize(
    ("name", "data", "says"),
    [
        ("slides.pdf", b"%PDF-1.7", "it is not a library file"),
        ("library.bib", b"%PDF\x00\x01", "is a binary file"),
        ("library.json", b"{not json", "is not valid JSON"),
        ("library.bib", b"@misc{a, title={x}}\n" * 150_000, "at most 2 MB"),
    ],
)
def test_bad_files_get_a_clear_answer(testbot: TestBot, name: str, data: bytes, says: str) -> None:
    testbot.exec("/subscribe cs.LG")
    reply = send_file(testbot, name, data)
    assert reply.error and says in reply.text, reply.text
    sub = testbot.sub()
    assert sub is not None and sub.id is not None
    assert testbot.store.ratings(sub.id) == []


def test_an_import_needs_a_subscribed_chat(testbot: TestBot) -> None:
    reply = send_file(testbot, "x.bib", (LIBRARY / "zotero_export.bib").read_bytes())
    assert reply.error and "This chat is not subscribed yet" in reply.text
    assert asyncio.run(testbot.core.wants_file(PLATFORM, CHAT, "x.pdf", addressed=True))
    assert not asyncio.run(testbot.core.wants_file(PLATFORM, CHAT, "x.bib", addressed=False))
    testbot.exec("/subscribe cs.LG")
    assert asyncio.run(testbot.core.wants_file(PLATFORM, CHAT, "x.bib", addressed=False))
    assert not asyncio.run(testbot.core.wants_file(PLATFORM, CHAT, "cat.png", addressed=False))


# -- followed authors ---------------------------------------------------------------------------
def test_follow_script(testbot: TestBot) -> None:
    testbot.exec("/subscribe cs.LG")
    script = [
        ("/following", "This chat follows no authors yet."),
        ("/follow", "This chat follows no authors yet."),
        ('/follow "Lio, Pietro"', "Following Lio, Pietro: their new papers in cs.LG always"),
        ('/follow "P. Liò" "Yoshua Bengio"', "Following Yoshua Bengio"),
        ('/follow "Pietro Lio"', "Already following Lio, Pietro."),
        ("/follow Antoni Jaume-i-Capó", "Following Antoni Jaume-i-Capó"),  # no quotes needed
        ("/follow Yann LeCun; Bengio, Samy", "Following Yann LeCun, Bengio, Samy"),
        ("/following", "Following (5):\n• Lio, Pietro\n• Yoshua Bengio"),
        ('/unfollow "Y. LeCun"', "Stopped following Yann LeCun."),
        ('/unfollow "Samy Bengio" "Geoffrey Hinton"', "Stopped following Bengio, Samy. Not"),
        ('/follow "x"', "is no name I can match"),
        ("/unfollow", "Usage: /unfollow"),
    ]
    for text, expected in script:
        reply = testbot.exec(text)
        assert expected in reply.text, (text, reply.text)
    assert "Following 3: Lio, Pietro, Yoshua Bengio, Antoni Jaume-i-Capó" in (
        testbot.exec("/status").text
    )
    assert "Following Conan O'Brien" in testbot.exec("/follow Conan O'Brien").text
    assert testbot.exec("/unfollow all").text == "Stopped following 4 authors."


def test_a_followed_authors_paper_always_makes_the_digest(testbot: TestBot) -> None:
    testbot.exec("/subscribe cs.LG")
    testbot.exec("/settings min 4 max 5")  # MixFlow scores +2 on the default keywords
    assert MIXFLOW not in [it.paper.id for it in digest_items(testbot)]
    testbot.exec('/follow "Pietro Lio"')
    items = digest_items(testbot)
    assert len(items) == 5 and items[0].paper.id == MIXFLOW
    assert items[0].reasons[0].kind == "follow"
    assert items[0].reasons[0].text == "followed author: Pietro Lio"
    # Delivered like any other paper, the reason on its card first.
    testbot.exec("/digest")
    card = testbot.adapter.cards[0]
    assert card.paper_id == MIXFLOW and card.reasons[0] == "followed author: Pietro Lio"
    why = testbot.exec(f"/why {MIXFLOW}").text
    assert "• followed author: Pietro Lio" in why and "below the min score" not in why
    # Keywords play no part, and an excluded word still wins.
    testbot.exec("/keywords clear")
    assert [it.paper.id for it in digest_items(testbot)] == [MIXFLOW]
    testbot.exec("/exclude add flow")
    assert digest_items(testbot) == []


def test_a_followed_authors_cross_list_is_news_too(testbot: TestBot) -> None:
    testbot.exec("/subscribe cs.LG")  # new only: a cs.CR paper cross-listed to cs.LG is out
    assert RITTER not in [it.paper.id for it in digest_items(testbot)]
    testbot.exec('/follow "Alan Ritter"')
    items = digest_items(testbot)
    followed = [it for it in items if it.paper.id == RITTER]
    assert followed and followed[0].announce_type == "cross"
    assert all(it.announce_type == "new" for it in items if it.paper.id != RITTER)


def test_in_a_group_only_admins_follow(testbot: TestBot) -> None:
    testbot.exec("/subscribe cs.LG", group=True, admin=True)
    denied = testbot.exec('/follow "Pietro Lio"', group=True)
    assert denied.error and "Only this chat's admins can always get an author's" in denied.text
    assert (
        "Following Pietro Lio" in testbot.exec('/follow "Pietro Lio"', group=True, admin=True).text
    )
    assert "Following (1)" in testbot.exec("/following", group=True).text
    # Likes are each person's own 👍: anyone may.
    assert testbot.exec(f"/like {MIXFLOW}", group=True).text.startswith("Liked 1 paper")


# -- the command line ---------------------------------------------------------------------------
def test_cli_like_import_follow_ratings_status(
    write_config: Callable[..., Path], fake_arxiv: FakeArxiv
) -> None:
    cfg = write_config(arxiv={"categories": ["cs.LG"]}, learning={"enabled": True})
    run = CliRunner().invoke
    assert run(main, ["--config", str(cfg), "fetch"]).exit_code == 0
    liked = run(main, ["--config", str(cfg), "like", "2601.10823", "2601.99999"])
    assert liked.exit_code == 0, liked.output
    assert "Liked 1 paper: “Mugi" in liked.output and "no paper 2601.99999" in liked.output
    bad = run(main, ["--config", str(cfg), "like", "nope"])
    assert bad.exit_code == 1 and "Not arXiv ids: 'nope'" in bad.output
    imported = run(main, ["--config", str(cfg), "import", str(LIBRARY / "zotero_export.bib")])
    assert imported.exit_code == 0, imported.output
    assert "Imported 8 of 15 entries from zotero_export.bib (BibTeX)" in imported.output
    assert "1 paper you had liked already" in imported.output
    wrong = run(main, ["--config", str(cfg), "import", str(cfg)])
    assert wrong.exit_code == 1 and "it is not a library file" in wrong.output
    missing = run(main, ["--config", str(cfg), "import", "/nonexistent/lib.bib"])
    assert missing.exit_code == 1 and "cannot read /nonexistent/lib.bib" in missing.output
    followed = run(main, ["--config", str(cfg), "follow", "Liò, Pietro", "Y. Bengio"])
    assert "Following Liò, Pietro, Y. Bengio" in followed.output
    listed = run(main, ["--config", str(cfg), "follow"])
    assert listed.output.splitlines() == ["Liò, Pietro", "Y. Bengio"]
    assert (
        "Stopped following Y. Bengio"
        in run(main, ["--config", str(cfg), "unfollow", "Yoshua Bengio"]).output
    )
    ratings = run(main, ["--config", str(cfg), "ratings"])
    assert ratings.exit_code == 0
    lines = [line for line in ratings.output.splitlines() if "2601." in line]
    assert len(lines) == 9
    assert sum("like" in line for line in lines) == 1
    assert sum("import" in line for line in lines) == 8
    status = run(main, ["--config", str(cfg), "status"])
    assert status.exit_code == 0, status.output
    assert "profile of default:" in status.output
    assert "Profile: 1 liked, 8 imported, 0 rated with 👍/👎 (seed: 9 papers)" in status.output
    assert "Following 1: Liò, Pietro" in status.output
    assert "Learned share: " in status.output
    digest = run(main, ["--config", str(cfg), "digest", "--format", "json", "--no-summaries"])
    data = json.loads(digest.output)
    ids = [it["id"] for it in data["items"]]
    assert ids[0] == MIXFLOW and ON_DAY not in ids
    assert data["items"][0]["reasons"][0]["kind"] == "follow"
    assert yaml.safe_load(cfg.read_text())  # the file the CLI read is untouched


AUBREVILLE = "2601.11540"  # cs.HC only, on the fetched day: outside every fetched category


def test_followed_authors_in_any_category_when_configured(
    engine: Engine, make_config: Callable[..., Config], fake_arxiv: FakeArxiv
) -> None:
    on = make_config(**{"learning.enabled": False, "follows.search_all_categories": True})
    bot = TestBot(on, Engine(on, store=engine.store))
    try:
        bot.exec("/subscribe cs.LG")
        bot.exec('/follow "M. Aubreville" "Alan Ritter"')
        assert AUBREVILLE not in [it.paper.id for it in digest_items(bot)]
        before = len(api_calls(fake_arxiv))
        assert bot.engine.fetch().status == "ok"
        # One query per followed surname, in the day's submission window, any category.
        queries = [c["search_query"] for c in api_calls(fake_arxiv)[before:]]
        assert [q.split(" AND ")[0] for q in queries] == ["au:aubreville", "au:ritter"]
        assert all("submittedDate:[202601201900 TO 202601211900]" in q for q in queries)
        items = digest_items(bot)
        # Both followed papers lead the digest: Ritter's cs.CR paper, cross-listed to cs.LG,
        # came with the feed; Aubreville's cs.HC paper only through the author query.
        assert {it.paper.id for it in items[:2]} == {AUBREVILLE, RITTER}
        (found,) = [it for it in items if it.paper.id == AUBREVILLE]
        assert found.category == "cs.HC" and found.announce_type == "new"
        assert found.reasons[0].text == "followed author: M. Aubreville"
    finally:
        bot.close()
    # Off (the default): no author queries, nothing from other categories.
    off = TestBot(make_config(**{"learning.enabled": False}), engine)
    try:
        before = len(api_calls(fake_arxiv))
        assert off.engine.fetch().status == "ok"
        assert api_calls(fake_arxiv)[before:] == []
    finally:
        off.close()
