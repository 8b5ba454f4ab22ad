"""LLM summaries through the real `openai` client against the fake: once per key, never silent."""

from __future__ import annotations

import datetime as dt
import json
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import pytest
from click.testing import CliRunner

from bot.cli import main
from bot.config import Config
from bot.engine import Engine
from bot.models import Digest, SummaryStatus
from bot.summaries import drop_references, extract_pdf_text, truncate_tokens
from tests.conftest import DAY
from tests.fakes import corpus
from tests.fakes.arxiv import FakeArxiv
from tests.fakes.openai_api import FakeOpenAI, parse_marker

KEY_ENV = "HERALD_TEST_LLM_KEY"


@pytest.fixture
def llm_engine(
    make_config: Callable[..., Config], fake_openai: FakeOpenAI, monkeypatch: pytest.MonkeyPatch
) -> Callable[..., Engine]:
    """``llm_engine(**overrides)``: an Engine with DAY fetched and the fake LLM's key set."""
    monkeypatch.setenv(KEY_ENV, fake_openai.api_key)
    made: list[Engine] = []

    def make(**overrides: object) -> Engine:
        cfg = make_config(openai=fake_openai, **{"learning.enabled": False, **overrides})
        eng = Engine(cfg)
        if eng.latest_day() is None:
            assert eng.fetch().status == "ok"
        made.append(eng)
        return eng

    yield make
    for e in made:
        e.store.close()


def _digest(eng: Engine, **sub_changes: object) -> Digest:
    d = eng.digest(dt.date.fromisoformat(DAY))
    if sub_changes:
        d.subscription = replace(d.subscription, **sub_changes)
    return d


def test_top_n_summarized_rest_skipped(
    llm_engine: Callable[..., Engine], fake_openai: FakeOpenAI
) -> None:
    eng = llm_engine(**{"summaries.top_n": 3})
    d = _digest(eng)
    eng.summarize_digests([d])
    statuses = [i.summary_status for i in d.items]
    assert statuses[:3] == [SummaryStatus.OK] * 3
    assert set(statuses[3:]) == {SummaryStatus.SKIPPED}
    assert fake_openai.requests == 3
    # Each summary is the one the LLM wrote for that paper (title in the prompt).
    for item, prompt in zip(
        d.items[:3], sorted(fake_openai.prompts, key=lambda p: p["at"]), strict=False
    ):
        assert item.summary and parse_marker(item.summary)
        assert any(
            item.paper.title in m["content"] for p in fake_openai.prompts for m in p["messages"]
        )
        assert prompt["model"] == eng.config.summaries.model


def test_cache_across_subscriptions_and_runs(
    llm_engine: Callable[..., Engine], fake_openai: FakeOpenAI
) -> None:
    eng = llm_engine(**{"summaries.top_n": 4})
    a, b = _digest(eng), _digest(eng, id=999, name="other")
    eng.summarize_digests([a, b])
    assert fake_openai.requests == 4  # two subscriptions, same papers: one call per paper
    assert {i.summary_status for i in a.items[:4]} == {SummaryStatus.OK}
    # Another run (a new engine on the same database): everything comes from the cache.
    eng2 = llm_engine(**{"summaries.top_n": 4})
    c = _digest(eng2)
    eng2.summarize_digests([c])
    assert fake_openai.requests == 4
    assert {i.summary_status for i in c.items[:4]} == {SummaryStatus.CACHED}
    assert [i.summary for i in c.items[:4]] == [i.summary for i in a.items[:4]]


def test_language_model_and_prompt_changes_make_new_keys(
    llm_engine: Callable[..., Engine], fake_openai: FakeOpenAI, tmp_path: Path
) -> None:
    eng = llm_engine(**{"summaries.top_n": 1})
    eng.summarize_digests([_digest(eng)])
    assert fake_openai.requests == 1
    zh = _digest(eng, language="zh")
    eng.summarize_digests([zh])  # per-subscription language overrides the global one
    assert fake_openai.requests == 2
    assert "中文" in fake_openai.prompts[-1]["messages"][0]["content"]
    assert any("\u4e00" <= ch <= "\u9fff" for ch in zh.items[0].summary or "")
    other_model = llm_engine(**{"summaries.top_n": 1, "summaries.model": "gpt-4o"})
    other_model.summarize_digests([_digest(other_model)])
    assert fake_openai.requests == 3
    prompt = tmp_path / "p.txt"
    prompt.write_text("Summarize in two sentences.")
    custom = llm_engine(**{"summaries.top_n": 1, "summaries.prompt_file": str(prompt)})
    custom.summarize_digests([_digest(custom)])
    assert fake_openai.requests == 4
    assert fake_openai.prompts[-1]["messages"][0]["content"] == "Summarize in two sentences."


def test_a_new_version_gets_its_own_summary(
    llm_engine: Callable[..., Engine], fake_openai: FakeOpenAI, fake_arxiv: FakeArxiv
) -> None:
    eng = llm_engine(**{"summaries.top_n": 1})
    v1, first = eng.summarize("2601.14053")
    assert (v1.version, first.status) == (1, SummaryStatus.OK)
    revised = dict(corpus.papers_by_id()["2601.14053"])
    revised.update(
        id="2601.14053v2",
        version="v2",
        abstract="We withdraw the orbit analogy and report a new scaling study instead.",
    )
    fake_arxiv.add_item("2026-01-23", revised, announce_type="replace")
    v2, second = eng.summarize("2601.14053v2")
    # v1's cached text must not stand in for the revised paper.
    assert (v2.version, second.status) == (2, SummaryStatus.OK)
    assert fake_openai.requests == 2
    assert "2601.14053v2" in fake_openai.prompts[-1]["messages"][1]["content"]
    assert second.text != first.text and "scaling study" in (second.text or "")
    # Each version keeps its own summary from then on.
    _, latest = eng.summarize("2601.14053")
    _, old = eng.summarize("2601.14053v1")
    assert (latest.status, latest.text) == (SummaryStatus.CACHED, second.text)
    assert (old.status, old.text) == (SummaryStatus.CACHED, first.text)
    assert fake_openai.requests == 2


def test_full_text_and_abstract_summaries_are_cached_apart(
    llm_engine: Callable[..., Engine], fake_openai: FakeOpenAI
) -> None:
    eng = llm_engine()
    _, abstract = eng.summarize("2601.14053")
    _, full = eng.summarize("2601.14053", source="fulltext")  # `herald summarize --source`
    assert (abstract.status, full.status) == (SummaryStatus.OK, SummaryStatus.OK)
    assert fake_openai.requests == 2
    assert "Full text (references removed):" in fake_openai.prompts[-1]["messages"][1]["content"]
    assert full.text != abstract.text
    _, again = eng.summarize("2601.14053")
    assert (again.status, again.text) == (SummaryStatus.CACHED, abstract.text)


def test_concurrency_limit_and_single_flight(
    llm_engine: Callable[..., Engine], fake_openai: FakeOpenAI
) -> None:
    eng = llm_engine(**{"summaries.top_n": 12, "summaries.max_workers": 3})
    fake_openai.latency = 0.2
    d = _digest(eng)
    # Two threads asking for the same keys at once still make one call per key.
    t = threading.Thread(target=eng.summarize_digests, args=([_digest(eng)],))
    t.start()
    eng.summarize_digests([d])
    t.join()
    assert fake_openai.requests == 12
    assert fake_openai.max_in_flight <= 3 * 2  # two summarize runs, three workers each
    single = llm_engine(**{"summaries.top_n": 12, "summaries.max_workers": 3})
    fake_openai.reset()
    fake_openai.latency = 0.1
    single.summarize_digests([_digest(single, language="de")])
    assert fake_openai.max_in_flight <= 3
    assert fake_openai.requests == 12


def test_missing_key_is_visible_and_calls_nothing(
    llm_engine: Callable[..., Engine], fake_openai: FakeOpenAI, monkeypatch: pytest.MonkeyPatch
) -> None:
    eng = llm_engine(**{"summaries.top_n": 2})
    monkeypatch.delenv(KEY_ENV)
    d = _digest(eng)
    eng.summarize_digests([d])
    assert d.items[0].summary_status == SummaryStatus.MISSING_KEY
    assert KEY_ENV in (d.items[0].summary_note or "")
    assert fake_openai.attempts == 0
    from adapters.markdown import render_markdown

    assert "no summary: no LLM API key is configured" in render_markdown(d)


def test_failure_is_reported_and_retried_next_run(
    llm_engine: Callable[..., Engine], fake_openai: FakeOpenAI
) -> None:
    eng = llm_engine(**{"summaries.top_n": 1})
    fake_openai.fail_always(500)
    d = _digest(eng)
    eng.summarize_digests([d])
    item = d.items[0]
    assert item.summary_status == SummaryStatus.FAILED
    assert "HTTP 500" in (item.summary_note or "")
    assert fake_openai.attempts == 2  # one try + the client's own retry (max_retries=1)
    fake_openai.fail_always(None)
    again = _digest(eng)
    eng.summarize_digests([again])
    assert again.items[0].summary_status == SummaryStatus.OK


def test_429_retry_after_is_honoured_by_the_client(
    llm_engine: Callable[..., Engine], fake_openai: FakeOpenAI
) -> None:
    eng = llm_engine(**{"summaries.top_n": 1})
    fake_openai.fail_next(1, status=429, retry_after=1)
    t0 = time.monotonic()
    d = _digest(eng)
    eng.summarize_digests([d])
    assert d.items[0].summary_status == SummaryStatus.OK
    assert time.monotonic() - t0 >= 0.9
    assert fake_openai.attempts == 2


def test_hung_endpoint_ends_at_the_timeout(
    llm_engine: Callable[..., Engine], fake_openai: FakeOpenAI
) -> None:
    eng = llm_engine(
        **{"summaries.top_n": 1, "summaries.timeout_s": 0.5, "summaries.max_retries": 0}
    )
    fake_openai.hang = True
    d = _digest(eng)
    eng.summarize_digests([d])  # returns at all only because the client gives up
    assert d.items[0].summary_status == SummaryStatus.FAILED
    assert "no answer within 0.5 s" in (d.items[0].summary_note or "")
    assert fake_openai.attempts == 1  # max_retries 0: one call, abandoned at the timeout
    # The digest still goes out, with the abstract and a visible marker.
    from adapters.markdown import render_markdown

    assert "no summary yet: the LLM call failed" in render_markdown(d)


def test_budget_stops_calls_and_says_so(
    llm_engine: Callable[..., Engine], fake_openai: FakeOpenAI, caplog: pytest.LogCaptureFixture
) -> None:
    eng = llm_engine(
        **{
            "summaries.top_n": 6,
            "summaries.max_workers": 1,
            "summaries.daily_budget": {"tokens": 1},
        }
    )
    d = _digest(eng)
    with caplog.at_level(logging.WARNING):
        eng.summarize_digests([d])
    statuses = [i.summary_status for i in d.items[:6]]
    assert statuses[0] == SummaryStatus.OK  # the first call spends the (tiny) budget
    assert set(statuses[1:]) == {SummaryStatus.BUDGET}
    assert fake_openai.requests == 1
    assert any("daily LLM budget spent" in r.getMessage() for r in caplog.records)
    from adapters.markdown import render_markdown

    assert "today's LLM budget is spent" in render_markdown(d)


def test_money_budget(llm_engine: Callable[..., Engine], fake_openai: FakeOpenAI) -> None:
    eng = llm_engine(
        **{
            "summaries.top_n": 3,
            "summaries.max_workers": 1,
            "summaries.prices": {"input": 1000.0, "output": 1000.0},
            "summaries.daily_budget": {"money": 0.5},
        }
    )
    d = _digest(eng)
    eng.summarize_digests([d])
    assert [i.summary_status for i in d.items[:3]] == [
        SummaryStatus.OK,
        SummaryStatus.BUDGET,
        SummaryStatus.BUDGET,
    ]
    usage = eng.store.usage_on(dt.datetime.now(dt.UTC).date())
    assert usage.cost > 0.5 and usage.calls == 1


def test_fulltext_from_the_pdf_drops_references(
    llm_engine: Callable[..., Engine], fake_openai: FakeOpenAI
) -> None:
    eng = llm_engine(**{"summaries.top_n": 1, "summaries.source": "fulltext"})
    d = _digest(eng)
    eng.summarize_digests([d])
    assert d.items[0].summary_status == SummaryStatus.OK
    body = fake_openai.prompts[-1]["messages"][1]["content"]
    assert "Full text (references removed):" in body
    assert "References" not in body.split("Full text (references removed):", 1)[1]
    first_words = " ".join(d.items[0].paper.abstract.split()[:6])
    assert first_words.split()[0] in body


def test_fulltext_falls_back_to_the_abstract_and_says_so(
    llm_engine: Callable[..., Engine], fake_openai: FakeOpenAI, fake_arxiv: FakeArxiv
) -> None:
    fake_arxiv.pdf_mode = "corrupt"
    eng = llm_engine(**{"summaries.top_n": 1, "summaries.source": "fulltext"})
    d = _digest(eng)
    eng.summarize_digests([d])
    item = d.items[0]
    assert item.summary_status == SummaryStatus.ABSTRACT_ONLY
    assert item.summary and "full text unavailable" in (item.summary_note or "")
    assert "Abstract:" in fake_openai.prompts[-1]["messages"][1]["content"]
    from adapters.markdown import render_markdown

    assert "summarized from the abstract only" in render_markdown(d)
    # The fallback is retried with the full text on the next run, and then replaced.
    fake_arxiv.pdf_mode = "normal"
    again = _digest(eng)
    eng.summarize_digests([again])
    assert again.items[0].summary_status == SummaryStatus.OK


def test_pending_for_cache_only_renders(llm_engine: Callable[..., Engine]) -> None:
    eng = llm_engine()
    d = _digest(eng)
    eng.attach_cached_summaries(d.items, d.subscription)
    assert {i.summary_status for i in d.items} == {SummaryStatus.PENDING}


def test_pdf_text_helpers(fake_arxiv: FakeArxiv) -> None:
    import requests

    pdf = requests.get(fake_arxiv.url + "/pdf/2601.14053", timeout=10).content
    text = extract_pdf_text(pdf)
    assert "LLMOrbit" in text
    assert "References" not in text[-2000:]
    assert drop_references("intro\n" * 50 + "References\n[1] x") == ("intro\n" * 50).rstrip()
    cut, was_cut = truncate_tokens("word. " * 1000, 100)
    assert was_cut and len(cut) <= 400


def test_api_key_never_reaches_logs(
    llm_engine: Callable[..., Engine],
    fake_openai: FakeOpenAI,
    caplog: pytest.LogCaptureFixture,
    capfd: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from bot.logs import setup_logging

    secret = "sk-live-abcdefghijklmnopqrstuvwxyz0123456789"
    fake_openai.api_key = secret
    monkeypatch.setenv(KEY_ENV, secret)
    setup_logging("DEBUG", "text", secret_env=[KEY_ENV])
    eng = llm_engine(**{"summaries.top_n": 2})
    fake_openai.fail_next(1, status=401)
    with caplog.at_level(logging.DEBUG):
        eng.summarize_digests([_digest(eng)])
        logging.getLogger("x").error("leak attempt: %s", secret)
    err = capfd.readouterr().err
    assert secret not in err
    assert "[redacted]" in err


def test_cli_summarize_and_usage(
    write_config: Callable[..., Path], fake_openai: FakeOpenAI, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(KEY_ENV, fake_openai.api_key)
    cfg = str(write_config(openai=fake_openai, learning={"enabled": False}))
    runner = CliRunner()
    first = runner.invoke(main, ["--config", cfg, "summarize", "arXiv:2601.14053v1"])
    assert first.exit_code == 0, first.output
    assert "LLMOrbit" in first.output and "1." in first.output
    again = runner.invoke(main, ["--config", cfg, "summarize", "https://arxiv.org/abs/2601.14053"])
    assert again.exit_code == 0 and fake_openai.requests == 1
    zh = runner.invoke(
        main, ["--config", cfg, "summarize", "2601.14053", "--lang", "zh", "--fresh"]
    )
    assert zh.exit_code == 0 and fake_openai.requests == 2
    bad = runner.invoke(main, ["--config", cfg, "summarize", "2601.1"])
    assert bad.exit_code == 1 and "not" in bad.output
    usage = runner.invoke(main, ["--config", cfg, "usage", "--days", "1"])
    assert usage.exit_code == 0
    assert "total" in usage.output and " 2 " in usage.output


def test_digest_json_fills_summary_fields(
    write_config: Callable[..., Path], fake_openai: FakeOpenAI, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(KEY_ENV, fake_openai.api_key)
    cfg = str(write_config(openai=fake_openai, learning={"enabled": False}, summaries={"top_n": 2}))
    runner = CliRunner()
    assert runner.invoke(main, ["--config", cfg, "fetch"]).exit_code == 0
    out = runner.invoke(main, ["--config", cfg, "digest", "--format", "json"])
    assert out.exit_code == 0, out.output
    items = json.loads(out.output[out.output.index("{") :])["items"]
    assert [i["summary_status"] for i in items[:3]] == ["ok", "ok", "skipped"]
    assert items[0]["summary"]
