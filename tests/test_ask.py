"""Ask the paper, platform-neutral: questions about a paper answered from its full text, through
the test bot (the real core, the arXiv fake's real multi-page PDFs, the OpenAI fake).  The Slack
and Telegram tests only check how thread replies and replies become these questions and how the
answers travel back."""

from __future__ import annotations

import asyncio
import datetime as dt
import itertools
import re
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner
from hypothesis import given, settings
from hypothesis import strategies as st

from bot.ask import cited_pages, split_passages, stem, thread_question
from bot.cli import main
from bot.commands import help_text
from bot.config import Config
from bot.engine import Engine
from bot.models import Reply
from bot.summaries import extract_pdf_pages, extract_pdf_text
from tests.fakes import corpus
from tests.fakes.arxiv import FakeArxiv, build_pdf
from tests.fakes.openai_api import FakeOpenAI
from tests.testbot import CHAT, PLATFORM, USER, TestBot

PAPER = "2601.19278"  # DART: Diffusion-Inspired Speculative Decoding for Fast LLM Inference
SPEEDUP = "What speedup does DART achieve over EAGLE3?"
ANSWER_SENTENCE = "Experimental results demonstrate that DART achieves a 2.03x--3.44x wall-clock"
LLM_KEY_ENV = "HERALD_TEST_LLM_KEY"


@pytest.fixture
def askbot(
    make_config: Callable[..., Config], fake_openai: FakeOpenAI, monkeypatch: pytest.MonkeyPatch
) -> Iterator[TestBot]:
    """The test bot with the LLM on (the OpenAI fake) and a small daily question budget."""
    monkeypatch.setenv(LLM_KEY_ENV, fake_openai.api_key or "sk")
    cfg = make_config(fake_openai, **{"learning.enabled": False, "ask.daily_questions_per_chat": 5})
    engine = Engine(cfg)
    assert engine.fetch().status == "ok"
    bot = TestBot(cfg, engine)
    yield bot
    bot.close()
    engine.store.close()


def in_thread(
    bot: TestBot,
    text: str,
    *,
    thread: str,
    about: str | None = None,
    addressed: bool = True,
    chat: str = CHAT,
) -> Reply | None:
    """A message in a thread (a reply to a paper's message): the answer, or None when the bot
    stays quiet; the answer "lands" as message ``answer-<n>``."""

    async def run() -> Reply | None:
        q = await bot.core.question_in_thread(
            PLATFORM, chat, USER, thread, text, about=about, addressed=addressed
        )
        if q is None:
            return None
        reply = await bot.core.ask(q)
        await bot.core.answered(PLATFORM, chat, f"answer-{next(_landed)}", reply)
        return reply

    return asyncio.run(run())


_landed = itertools.count(1)


def pdf_requests(fake: FakeArxiv) -> int:
    return sum("/pdf/" in c.path for c in fake.calls)


def page_of(bot: TestBot, paper: str, sentence: str) -> set[int]:
    """The pages of the stored full text that hold ``sentence``."""
    stored = bot.store.get_paper(paper)
    assert stored is not None
    text = bot.store.paper_text(paper, stored.version)
    assert text is not None
    return {i for i, page in enumerate(text.pages, 1) if sentence in " ".join(page.split())}


# -- answers ---------------------------------------------------------------------------------
def test_an_answer_quotes_the_paper_and_cites_its_page(
    askbot: TestBot, fake_arxiv: FakeArxiv, fake_openai: FakeOpenAI
) -> None:
    reply = askbot.exec(f"/ask {PAPER} {SPEEDUP}")
    assert not reply.error, reply.text
    text = reply.text
    assert text.startswith(f"❓ {SPEEDUP}\n📄 DART: Diffusion-Inspired Speculative Decoding")
    m = re.search(r'The paper says: "(.+?)" \(p\. (\d+)\)', text)
    assert m, text
    quoted, page = m.group(1), int(m.group(2))
    assert quoted.startswith(ANSWER_SENTENCE)
    assert page in page_of(askbot, PAPER, quoted)  # the page really holds the quote
    sources = text.split("\nSources:\n", 1)[1].splitlines()
    assert sources and sources[0].startswith(f"• p. {page}: “")
    assert "2.03x--3.44x" in sources[0]
    # Only the best passages went to the LLM, each with its page; the references did not.
    (prompt,) = fake_openai.prompts
    body = prompt["messages"][-1]["content"]
    labels = re.findall(r"^\[(\d+)\] \(p\. (\d+)\) ", body, re.M)
    assert 1 <= len(labels) <= 4
    assert "arXiv preprint arXiv:" not in body
    assert "Answer only from the passages" in prompt["messages"][0]["content"]
    assert pdf_requests(fake_arxiv) == 1


def test_a_question_the_paper_cannot_answer_says_so(askbot: TestBot) -> None:
    reply = askbot.exec(f"/ask {PAPER} What is the best recipe for sourdough bread?")
    assert not reply.error
    assert "Not in the paper" in reply.text
    assert "Sources:" not in reply.text
    assert reply.data["ask"]["found"] is False


def test_any_id_form_works_and_the_text_is_read_once(
    askbot: TestBot, fake_arxiv: FakeArxiv, fake_openai: FakeOpenAI
) -> None:
    forms = [
        f"arXiv:{PAPER}",
        f"https://arxiv.org/abs/{PAPER}v1",
        f"https://arxiv.org/pdf/{PAPER}v1.pdf",
        f"{PAPER}v1",
    ]
    questions = ["How is the drafting latency reduced?", "What does tree pruning construct?"]
    for i, form in enumerate(forms):
        reply = askbot.exec(f"/ask {form} {questions[i % 2]}")
        assert not reply.error, reply.text
        assert "(p. " in reply.text
    # One PDF download for the paper version, stored compressed; two LLM calls (the rest from
    # the cache: same paper version, same normalised question).
    assert pdf_requests(fake_arxiv) == 1
    assert fake_openai.requests == 2
    stored = askbot.store.paper_text(PAPER, 1)
    assert stored is not None and len(stored.pages) >= 2


def test_the_same_question_is_answered_from_the_cache_in_any_chat(
    askbot: TestBot, fake_openai: FakeOpenAI
) -> None:
    first = askbot.exec(f"/ask {PAPER} {SPEEDUP}")
    again = askbot.exec(f"/ask {PAPER}   what SPEEDUP does dart achieve over eagle3", chat="c2")
    assert fake_openai.requests == 1
    assert again.data["ask"]["cached"] is True
    assert again.text.split("\n", 1)[1] == first.text.split("\n", 1)[1]  # same answer


# -- budgets ---------------------------------------------------------------------------------
def test_the_chat_budget_stops_the_next_question_politely(
    askbot: TestBot, fake_openai: FakeOpenAI
) -> None:
    questions = [
        SPEEDUP,
        "How is the drafting latency reduced?",
        "What does tree pruning construct?",
        "Which model inspired DART?",
        SPEEDUP,  # a cached answer still counts as a question
    ]
    for q in questions:
        assert not askbot.exec(f"/ask {PAPER} {q}").error
    calls = fake_openai.requests
    over = askbot.exec(f"/ask {PAPER} Where is the code released?")
    assert over.error
    assert "This chat has asked its 5 questions for today" in over.text
    assert "tomorrow" in over.text
    assert fake_openai.requests == calls  # refused before any work
    assert not askbot.exec(f"/ask {PAPER} Where is the code released?", chat="other").error


def test_the_daily_llm_budget_applies(
    make_config: Callable[..., Config],
    fake_openai: FakeOpenAI,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv(LLM_KEY_ENV, fake_openai.api_key or "sk")
    cfg = make_config(
        fake_openai, **{"learning.enabled": False, "summaries.daily_budget": {"tokens": 100}}
    )
    engine = Engine(cfg)
    assert engine.fetch().status == "ok"
    bot = TestBot(cfg, engine)
    try:
        assert not bot.exec(f"/ask {PAPER} {SPEEDUP}").error
        spent = bot.exec(f"/ask {PAPER} How is the drafting latency reduced?")
        assert spent.error and "Today's LLM budget is spent" in spent.text
        assert fake_openai.requests == 1
        # An answer already given costs nothing: still served.
        assert not bot.exec(f"/ask {PAPER} {SPEEDUP}").error
    finally:
        bot.close()
        engine.store.close()


# -- conversations ---------------------------------------------------------------------------
def test_a_follow_up_carries_the_earlier_turns(askbot: TestBot, fake_openai: FakeOpenAI) -> None:
    first = in_thread(askbot, SPEEDUP, thread="card-1", about=PAPER)
    assert first is not None and "The paper says" in first.text
    follow = in_thread(askbot, "And how is the drafting latency reduced?", thread="card-1")
    assert follow is not None and not follow.error
    assert follow.text.startswith("❓ And how is the drafting latency reduced?\n📄 DART")
    assert f'Following up on "{SPEEDUP}"' in follow.text
    messages = fake_openai.prompts[-1]["messages"]
    roles = [m["role"] for m in messages]
    assert roles == ["system", "user", "assistant", "user"]
    assert messages[1]["content"] == SPEEDUP
    assert messages[2]["content"].startswith("The paper says")
    turns = askbot.store.conversation(PLATFORM, CHAT, "card-1")
    assert [t.question for t in turns] == [SPEEDUP, "And how is the drafting latency reduced?"]
    # Another thread about the same paper starts afresh.
    other = in_thread(askbot, "How is the drafting latency reduced?", thread="card-2", about=PAPER)
    assert other is not None and "Following up" not in other.text


def test_a_fresh_ask_becomes_a_conversation_where_its_answer_lands(askbot: TestBot) -> None:
    reply = askbot.exec(f"/ask {PAPER} {SPEEDUP}")

    async def land() -> None:
        await askbot.core.answered(PLATFORM, CHAT, "m-42", reply)

    asyncio.run(land())
    ref = askbot.store.paper_for_message(PLATFORM, CHAT, "m-42")
    assert ref is not None and ref.paper_id == PAPER and ref.thread == "m-42"
    follow = in_thread(askbot, "how is the drafting latency reduced?", thread="m-42", about=PAPER)
    assert follow is not None and f'Following up on "{SPEEDUP}"' in follow.text


def test_which_messages_in_a_thread_are_questions(askbot: TestBot) -> None:
    # People talking among themselves under a digest: no answer.
    assert in_thread(askbot, "nice paper, thanks", thread="h", about="", addressed=False) is None
    # A question under a digest's header (several papers) must name its paper.
    which = in_thread(askbot, "what speedup do they get?", thread="h", about="", addressed=False)
    assert which is not None and which.error
    assert "Which paper is your question about?" in which.text
    assert "“2601.19278 what speedup do they get?”" in which.text
    # …and then it is answered, and the thread remembers the paper.
    named = in_thread(askbot, f"{PAPER}: {SPEEDUP}", thread="h", about="", addressed=False)
    assert named is not None and "The paper says" in named.text
    later = in_thread(askbot, "how is drafting latency reduced?", thread="h", about="")
    assert later is not None and "Following up" in later.text
    # Not our thread, not addressed: none of our business.
    assert in_thread(askbot, "what is this?", thread="x", about=None, addressed=False) is None


# -- bad input -------------------------------------------------------------------------------
def test_bad_input_gets_a_clear_message(
    askbot: TestBot, fake_arxiv: FakeArxiv, fake_openai: FakeOpenAI
) -> None:
    cases = [
        ("/ask", "Usage: /ask <arXiv id> <question>"),
        (f"/ask {PAPER}", "Usage: /ask <arXiv id> <question>"),
        (f"/ask {PAPER} " + "why? " * 120, "That question is 599 characters long"),
        ("/ask not-an-id what is it?", "'not-an-id' is not an arXiv id"),
        ("/ask 2601.99999 what is it?", "arXiv has no paper 2601.99999"),
    ]
    for text, expected in cases:
        reply = askbot.exec(text)
        assert reply.error and expected in reply.text, (text, reply.text)
    other = [p["base_id"] for p in corpus.papers_on("2026-01-22")[:3]]
    fake_arxiv.pdf_unavailable.add(other[0])
    reply = askbot.exec(f"/ask {other[0]} what is it about?")
    assert reply.error and f"arXiv has no PDF for {other[0]}v" in reply.text
    fake_arxiv.pdf_mode = "corrupt"
    reply = askbot.exec(f"/ask {other[1]} what is it about?")
    assert reply.error and "cannot be read" in reply.text
    assert fake_openai.requests == 0
    assert askbot.store.questions_asked(PLATFORM, CHAT, dt.datetime.now(dt.UTC).date()) == 0


def test_a_pdf_over_the_size_limit_is_not_read(
    make_config: Callable[..., Config],
    fake_openai: FakeOpenAI,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv(LLM_KEY_ENV, fake_openai.api_key or "sk")
    cfg = make_config(fake_openai, **{"learning.enabled": False, "ask.max_pdf_mb": 0.002})
    engine = Engine(cfg)
    assert engine.fetch().status == "ok"
    bot = TestBot(cfg, engine)
    try:
        reply = bot.exec(f"/ask {PAPER} {SPEEDUP}")
        assert reply.error
        assert f"The PDF of {PAPER}v1 is too large to read here" in reply.text
        assert "more than the 2 kB limit" in reply.text and "ask.max_pdf_mb" in reply.text
        assert fake_openai.requests == 0 and engine.store.paper_text(PAPER, 1) is None
    finally:
        bot.close()
        engine.store.close()


def test_without_an_llm_key_questions_say_how_to_fix_it(testbot: TestBot) -> None:
    reply = testbot.exec(f"/ask {PAPER} {SPEEDUP}")
    assert reply.error and "summaries.enabled" in reply.text


def test_help_lists_ask() -> None:
    assert "/ask <arXiv id> <question> — ask a paper a question" in help_text("telegram")
    assert "/arxiv ask <arXiv id> <question>" in help_text("slack")


# -- the command line ------------------------------------------------------------------------
def test_cli_ask(
    write_config: Callable[..., Path],
    fake_openai: FakeOpenAI,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv(LLM_KEY_ENV, fake_openai.api_key or "sk")
    cfg = str(write_config(fake_openai))
    runner = CliRunner()
    result = runner.invoke(main, ["--config", cfg, "ask", f"arXiv:{PAPER}", *SPEEDUP.split()])
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith(f"❓ {SPEEDUP}\n📄 DART")
    assert "(p. " in result.stdout and "\nSources:\n• p. " in result.stdout
    assert "(gpt-4o-mini, fresh)" in result.stderr
    again = runner.invoke(main, ["--config", cfg, "ask", PAPER, SPEEDUP])
    assert again.exit_code == 0 and "(gpt-4o-mini, from cache)" in again.stderr
    assert fake_openai.requests == 1
    bad = runner.invoke(main, ["--config", cfg, "ask", PAPER, "x" * 600])
    assert bad.exit_code == 1
    assert "That question is 600 characters long" in bad.stderr
    assert "Traceback" not in bad.output
    missing = runner.invoke(main, ["--config", cfg, "ask", PAPER])
    assert missing.exit_code == 2 and "Missing argument 'QUESTION" in missing.stderr


# -- pieces ----------------------------------------------------------------------------------
def test_pdf_pages_are_the_summaries_text_page_by_page() -> None:
    for row in corpus.papers_on("2026-01-22")[:5]:
        data = build_pdf(row, 1)
        pages = extract_pdf_pages(data)
        assert len(pages) >= 2
        assert "\n".join(pages) == extract_pdf_text(data)
        assert "References" not in pages[-1].splitlines()[-1:]


words = st.text(alphabet=st.characters(categories=["L", "N"]), min_size=1, max_size=12)
sentence = st.lists(words, min_size=1, max_size=40).map(lambda ws: " ".join(ws) + ".")
page = st.lists(sentence, max_size=30).map(lambda ss: " ".join(ss))


@settings(max_examples=200, deadline=None)
@given(pages=st.lists(page, max_size=6), size=st.integers(min_value=5, max_value=60))
def test_passages_keep_every_word_in_order_on_its_own_page(pages: list[str], size: int) -> None:
    passages = split_passages(pages, size)
    for number, text in enumerate(pages, 1):
        on_page = [p for p in passages if p.page == number]
        assert " ".join(p.text for p in on_page).split() == text.split()
        assert all(len(p.text.split()) <= 2 * size + size // 3 for p in on_page)
    assert [p.index for p in passages] == list(range(len(passages)))


@given(st.text(max_size=200))
def test_thread_question_never_fails(text: str) -> None:
    ref, rest = thread_question(text)
    assert ref == "" or rest in text


def test_thread_question_reads_any_id_form() -> None:
    assert thread_question("2601.19278 what?") == ("2601.19278", "what?")
    assert thread_question("arXiv:2601.19278v2, what?") == ("arXiv:2601.19278v2", "what?")
    link = "<https://arxiv.org/abs/2601.19278|arxiv.org/abs/2601.19278> what?"
    assert thread_question(link) == ("https://arxiv.org/abs/2601.19278", "what?")
    assert thread_question("what about 2601.19278?") == ("", "what about 2601.19278?")


def test_cited_pages_and_stems() -> None:
    assert cited_pages("see (p. 3) and pp. 5-6; page 9, (p. 3)") == [3, 5, 6, 9]
    assert {stem(w) for w in ("models", "model", "modeled")} == {"model"}
    assert stem("training") == stem("trained") == "train"
    assert stem("embedding") == "embed" and stem("running") == "run"
