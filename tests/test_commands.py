"""Every chat command, platform-neutral, through the test bot (the real core behind a recording
adapter).  The Slack and Telegram tests only check how their payloads become these commands
and how the replies travel back."""

from __future__ import annotations

import math

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bot.commands import COMMANDS, help_text, make_command
from bot.config import check_time, check_timezone
from bot.models import Command
from tests.fakes import corpus
from tests.testbot import CHAT, TestBot

# (what a person types, words the reply must contain)
SCRIPT = [
    ("/status", "This chat is not subscribed yet. Start with /subscribe cs.LG"),
    ("/start", "To begin: /subscribe cs.LG cs.CL"),
    ("/help", "/summarize <arXiv id or URL> — an LLM summary of any paper"),
    ("/subscribe cs.lg", "Subscribed to cs.LG."),
    ("/start", "You are subscribed:\nCategories: cs.LG (new)"),
    ('/keywords add "speculative decoding" kv-cache', "Added: speculative decoding, kv-cache."),
    ("/keywords add kv-cache", "Nothing new to add. Already there: kv-cache."),
    ("/keywords list", "• speculative decoding\n• kv-cache"),
    ('/keywords remove "speculative decoding" nothere', "Removed 1. Not in the list: nothere."),
    ("/keyword list", "Keywords ("),  # an alias
    ("/exclude add survey", "Added: survey. Now 1 excluded keywords."),
    ("/excludes list", "Excluded keywords (1):\n• survey"),
    ("/exclude remove survey", "Removed 1. Now 0 excluded keywords."),
    ("/settings", "Digest at 09:00 UTC"),
    (
        "/settings time 7:30 tz Europe/Berlin max 5 lang de cross on",
        "Digest at 07:30 Europe/Berlin · up to 5 papers",
    ),
    ("/settings", "Categories: cs.LG (new, cross)"),
    ("/settings", "summaries in de · thread layout"),  # the platform's default here
    ("/settings layout compact", "Saved.\nCategories: cs.LG"),
    ("/settings", "summaries in de · compact layout"),
    ("/settings layout Thread", "· thread layout"),
    ("/status", "Your private feed: http://"),
    ("/mute diffusion", "Muted: diffusion."),
    ("/mute", "Muted topics: diffusion"),
    ("/unmute diffusion", "Unmuted: diffusion."),
    ("/unsubscribe", "Unsubscribed: no more daily digests here."),
    ("/unsubscribe", "This chat is not subscribed yet"),
    ("/digest", "This chat is not subscribed yet"),
    ("/start", "To begin: /subscribe"),
    ("/subscribe", "Welcome back! Resumed this chat's subscription."),
]

BAD_ARGUMENTS = [
    ("/subscribe cs.FOO", "'cs.FOO' is not an arXiv category."),
    ("/subscribe physics.nope cs.LG", "'physics.nope' is not an arXiv category."),
    ("/keywords frob", 'Usage: /keywords add|remove|list <words or "a phrase">'),
    ("/keywords add", "Usage: /keywords add|remove|list"),
    ("/exclude remove", "Usage: /exclude add|remove|list"),
    ("/settings time 25:00", "time: '25:00' is not a time of day; write it as HH:MM"),
    ("/settings tz Mars/Olympus", "tz: unknown timezone 'Mars/Olympus'"),
    ("/settings max 0", "max: max must be between 1 and 100."),
    ("/settings max lots", "max: 'lots' is not a whole number."),
    ("/settings lang 123", "lang: '123' is not a language code"),
    ("/settings cross maybe", "cross: cross takes on or off."),
    ("/settings layout grid", "layout: layout takes thread (a message per paper) or compact"),
    ("/settings colour blue", "Unknown setting 'colour'. Usage: /settings [time HH:MM]"),
    ("/settings time", "'time' needs a value."),
    ("/summarize", "Usage: /summarize <arXiv id or URL>"),
    ("/summarize 2601.00001 2601.00002", "One paper at a time, please."),
    ("/summarize not-an-id", "not-an-id"),
    ("/summarize 2601.99999", "arXiv has no paper 2601.99999"),
    ("/why", "Usage: /why <arXiv id>"),
    ("/more", "Usage: /more <arXiv id>"),
    ("/why 9999.99999", "has month 99, which does not exist"),
    ("/unmute", "Usage: /unmute <topic>"),
    ("/unmute nothing-muted", "'nothing-muted' is not muted."),
    ("/frobnicate", "I don't know the command 'frobnicate'.\n\narxiv-herald posts"),
    ("/keywords add " + "x" * 2100, "commands take at most 2,000"),
]


def test_every_command_in_a_private_chat(testbot: TestBot) -> None:
    for text, expected in SCRIPT:
        reply = testbot.exec(text)
        assert expected in reply.text, (text, reply.text)
    sub = testbot.sub()
    assert sub is not None and sub.active
    assert (sub.time, sub.timezone, sub.max_papers) == ("07:30", "Europe/Berlin", 5)
    assert sub.language == "de" and sub.announce_types == ("new", "cross")
    assert sub.keywords[-1] == "kv-cache" and sub.excludes == () and sub.muted == ()


def test_bad_arguments_get_a_clear_answer_and_change_nothing(testbot: TestBot) -> None:
    testbot.exec("/subscribe cs.LG")
    before = testbot.sub()
    for text, expected in BAD_ARGUMENTS:
        reply = testbot.exec(text)
        assert reply.error and expected in reply.text, (text, reply.text)
        assert "Traceback" not in reply.text
    assert testbot.sub() == before


def test_in_a_group_only_admins_change_things(testbot: TestBot) -> None:
    member = {"group": True, "admin": False}
    admin = {"group": True, "admin": True}
    assert "To begin" in testbot.exec("/start", **member).text
    denied = testbot.exec("/subscribe cs.CL", **member)
    assert denied.error and "Only this chat's admins can follow categories." in denied.text
    assert testbot.sub() is None
    assert "Subscribed to cs.CL." in testbot.exec("/subscribe cs.CL", **admin).text
    for text in (
        "/keywords add agents",
        "/exclude add survey",
        "/settings max 4",
        "/mute robotics",
        "/unmute robotics",
        "/unsubscribe",
    ):
        reply = testbot.exec(text, **member)
        assert reply.error and "Only this chat's admins can" in reply.text, text
    # reading is fine for anyone
    assert "Keywords (" in testbot.exec("/keywords list", **member).text
    assert "Digest at 09:00 UTC" in testbot.exec("/settings", **member).text
    assert "Your private feed" in testbot.exec("/status", **member).text
    assert "Added: agents." in testbot.exec("/keywords add agents", **admin).text
    sub = testbot.sub()
    assert sub is not None and sub.keywords[-1] == "agents" and sub.active


def test_every_command_that_changes_a_chat_is_declared_so() -> None:
    """Adapters look up who is asking only for commands declared ``changes``: a command that
    saves settings without the declaration would refuse every member of a shared chat."""
    changing = {s.name for s in COMMANDS.listed() if s.changes}
    assert changing == {
        "subscribe",
        "unsubscribe",
        "keywords",
        "exclude",
        "settings",
        "mute",
        "unmute",
        "follow",
        "unfollow",
    }
    quick = Command("test", "c", "u", "keywords", is_group=True)
    assert COMMANDS.needs_admin_check(quick)
    assert not COMMANDS.needs_admin_check(Command("test", "c", "u", "status", is_group=True))
    assert not COMMANDS.needs_admin_check(Command("test", "c", "u", "keywords"))


def test_help_menu_and_acknowledgements_come_from_the_registry() -> None:
    text = help_text("slack")
    for spec in COMMANDS.listed():
        assert f"/arxiv {spec.name}" in text or spec.name == "summarize"
    assert "/summarize <arXiv id or URL> — an LLM summary of any paper" in text
    menu = dict(COMMANDS.menu())
    assert menu["summarize"] == "Summarize any paper: /summarize 2601.19278"
    assert "summary" in COMMANDS.names() and "keyword" in COMMANDS.names()
    summary = make_command("test", "c", "u", "/summary 2601.19278")
    assert COMMANDS.working_text(summary) == "⏳ Summarizing 2601.19278 …"  # the alias too
    assert COMMANDS.working_text(make_command("test", "c", "u", "/summarize")) is None
    assert COMMANDS.working_text(make_command("test", "c", "u", "/digest")) is not None
    assert COMMANDS.working_text(make_command("test", "c", "u", "/keywords add x")) is None


def test_digest_goes_out_once_and_the_reply_says_how_it_went(testbot: TestBot) -> None:
    testbot.exec("/subscribe cs.LG cs.CL")
    testbot.exec("/settings max 3")
    first = testbot.exec("/digest")
    assert first.text == "Posted today's digest: 3 papers, one per reply in the thread."
    posts = testbot.adapter.posts
    assert [p.kind for p in posts] == ["header", "item", "item", "item"]
    again = testbot.exec("/digest")
    assert again.text == "Today's digest (3 papers) is already in this chat."
    assert again.reply_to == posts[0].message_id  # under the header people already have
    assert len(testbot.adapter.posts) == 4  # nothing posted twice


def _a_paper_of_the_day(testbot: TestBot) -> str:
    day = testbot.engine.latest_day()
    assert day is not None
    return testbot.store.announced_on(day, ["cs.LG"])[0][0].id


def test_ratings_change_the_tally_and_flip_exactly(testbot: TestBot) -> None:
    testbot.exec("/subscribe cs.LG")
    paper = _a_paper_of_the_day(testbot)
    first = testbot.press(paper, 1)
    assert first.text.startswith("Thanks — rated 👍") and first.data["changed"]
    assert [b.label for b in first.buttons] == ["👍 1", "👎"]
    same = testbot.press(paper, 1)
    assert same.text == "You already rated this 👍." and not same.data["changed"]
    flipped = testbot.press(paper, -1)
    assert flipped.text == "Changed your rating to 👎."
    assert [b.label for b in flipped.buttons] == ["👍", "👎 1"]
    other = testbot.press(paper, 1, user="bob")
    assert [b.label for b in other.buttons] == ["👍 1", "👎 1"]
    assert testbot.press("2601.99999", 1).error  # a paper we never showed
    assert testbot.press(paper, 1, chat="elsewhere").error  # a chat that is not subscribed


def test_why_and_more_explain_in_words(testbot: TestBot) -> None:
    testbot.exec("/subscribe cs.LG")
    paper = corpus.papers_on("2026-01-22")[0]["base_id"]
    why = testbot.exec(f"/why {paper}")
    assert "score" in why.text and why.item is not None and why.item.paper.id == paper
    assert "Noted: more papers like" in testbot.exec(f"/more {paper}").text


def test_summarize_answers_with_a_card(testbot: TestBot) -> None:
    testbot.exec("/subscribe cs.LG")
    reply = testbot.exec("/summarize https://arxiv.org/abs/2601.19278v1")
    assert not reply.error and reply.card is not None
    assert reply.card.paper_id == "2601.19278"
    assert reply.card.score is not None  # the chat is subscribed: its score and buttons
    assert [b.label for b in reply.card.buttons] == ["👍", "👎"]
    elsewhere = testbot.exec("/summarize 2601.19278", chat="not-subscribed")
    assert elsewhere.card is not None and elsewhere.card.buttons == ()
    assert elsewhere.card.score is None


@pytest.mark.parametrize("text", ["", "   ", "/", "/@bot", "/" + "x" * 500])
def test_nothing_a_person_types_is_a_crash(testbot: TestBot, text: str) -> None:
    reply = testbot.exec(text)
    assert reply.error and "Sorry, something went wrong" not in reply.text


def test_chat_migration_moves_the_subscription(testbot: TestBot) -> None:
    import asyncio

    testbot.exec("/subscribe cs.LG")
    asyncio.run(testbot.core.migrate_chat("test", CHAT, "new-id"))
    assert testbot.sub() is None
    moved = testbot.sub("new-id")
    assert moved is not None and moved.categories == ("cs.LG",)


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("/settings min nan", "'nan' is not a number"),
        ("/settings min inf", "'inf' is not a number"),
        ("/settings min 1e999", "'1e999' is not a number"),
        ("/settings min -1e999", "is not a number"),
        ("/settings min 1000", "min must be between -100 and 100"),
        ("/settings max ٣", "'٣' is not a whole number"),  # a look-alike digit
        ("/settings max 2.5", "'2.5' is not a whole number"),
        ("/settings time ٠٩:٣٠", "is not a time of day"),
        ("/settings time ０９:３０", "is not a time of day"),
        ("/settings tz America", "unknown timezone 'America'"),
        ("/settings tz Europe/Berln", "did you mean Europe/Berlin?"),
        ("/settings tz " + "A/" * 200, "unknown timezone"),
        ("/settings tz ../../etc/passwd", "unknown timezone"),
        ("/settings lang ｅｎ", "is not a language code"),
    ],
)
def test_every_setting_is_validated(testbot: TestBot, text: str, says: str) -> None:
    testbot.exec("/subscribe cs.LG")
    before = testbot.sub()
    reply = testbot.exec(text)
    assert reply.error and says in reply.text, reply.text
    assert testbot.sub() == before


_SETTING_VALUES = st.one_of(
    st.text(max_size=40),
    st.sampled_from(["nan", "-inf", "1e308", "0", "100", "-0", "Europe/Berlin", "23:59", "zh"]),
    st.floats(allow_nan=True, allow_infinity=True).map(str),
)


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    key=st.sampled_from(["time", "tz", "max", "min", "lang", "cross", "timezone", "language"]),
    value=_SETTING_VALUES,
)
def test_any_setting_value_is_saved_valid_or_refused_clearly(
    testbot: TestBot, key: str, value: str
) -> None:
    if testbot.sub() is None:
        testbot.exec("/subscribe cs.LG")
    cmd = make_command("test", CHAT, "alice", "/settings")
    cmd = Command(cmd.platform, cmd.chat, cmd.user, "settings", (key, value), raw=f"{key} x")
    reply = testbot.app.commands.handle(cmd)
    assert "something went wrong" not in reply.text
    sub = testbot.sub()
    assert sub is not None
    # Whatever was typed, what is stored is usable by the ranking and the scheduler.
    assert math.isfinite(sub.min_score) and -100 <= sub.min_score <= 100
    assert 1 <= sub.max_papers <= 100
    check_time(sub.time)
    assert check_timezone(sub.timezone) == sub.timezone
    if not reply.error:
        assert reply.text.startswith("Saved.")


def test_about_names_the_version_and_the_sources(testbot: TestBot) -> None:
    from bot import __version__

    reply = testbot.exec("/about")
    assert f"arxiv-herald {__version__}" in reply.text and "arXiv" in reply.text
    assert "/about" in help_text("telegram") and "about" in dict(COMMANDS.menu())
