"""Self-test of tests/fakes/openai_api.py against the real ``openai`` client (loopback only)."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import httpx
import openai
import pytest

try:  # `tests` is importable when the repo root is on sys.path (python -m pytest, pythonpath)
    from tests.fakes.openai_api import (
        DEFAULT_MODELS,
        FakeOpenAI,
        count_tokens,
        marker,
        parse_marker,
        prompt_hash,
        prompt_tokens,
    )
except ModuleNotFoundError:  # plain `pytest` (prepend import mode) puts tests/ on sys.path
    from fakes.openai_api import (
        DEFAULT_MODELS,
        FakeOpenAI,
        count_tokens,
        marker,
        parse_marker,
        prompt_hash,
        prompt_tokens,
    )

MODEL = "gpt-4o-mini"
SYSTEM = "You summarise arXiv papers for researchers in four numbered sections."


def paper_prompt(title: str, abstract: str = "We study sparse routing for Transformers.") -> str:
    return f"Title: {title}\nAuthors: A. Author, B. Author\nAbstract: {abstract}\n"


def msgs(title: str = "Sparse Routing for Tiny Transformers", system: str = SYSTEM) -> list[dict]:
    return [
        {"role": "system", "content": system},
        {"role": "user", "content": paper_prompt(title)},
    ]


@pytest.fixture(autouse=True)
def _no_proxy(monkeypatch: pytest.MonkeyPatch) -> None:
    """Keep the clients on loopback even if the environment configures an HTTP proxy."""
    for var in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")


@pytest.fixture
def fake() -> Iterator[FakeOpenAI]:
    with FakeOpenAI() as f:
        yield f


def client(fake: FakeOpenAI, **kw: object) -> openai.OpenAI:
    kw.setdefault("max_retries", 0)
    kw.setdefault("timeout", 5.0)
    kw.setdefault("api_key", fake.api_key)
    return openai.OpenAI(base_url=fake.base_url, **kw)  # type: ignore[arg-type]


def test_completion_shape_usage_and_content(fake: FakeOpenAI) -> None:
    messages = msgs()
    with client(fake) as c:
        r = c.chat.completions.create(model=MODEL, messages=messages)  # type: ignore[arg-type]
    assert r.object == "chat.completion"
    assert r.model == MODEL
    assert r.id.startswith("chatcmpl-")
    choice = r.choices[0]
    assert choice.finish_reason == "stop"
    assert choice.message.role == "assistant"
    text = choice.message.content or ""
    assert "Sparse Routing for Tiny Transformers" in text
    for n in ("1. ", "2. ", "3. ", "4. "):
        assert f"\n{n}**" in text
    assert "Contributions" in text and "Results" in text and "limitations" in text
    assert text.endswith(marker(MODEL, prompt_hash(MODEL, messages)))
    assert parse_marker(text) == (MODEL, prompt_hash(MODEL, messages))

    assert r.usage is not None
    expected_prompt = sum(count_tokens(m["content"]) for m in messages)
    assert r.usage.prompt_tokens == expected_prompt == prompt_tokens(messages)
    assert r.usage.completion_tokens == count_tokens(text)
    assert r.usage.total_tokens == r.usage.prompt_tokens + r.usage.completion_tokens
    assert fake.usage_total() == {
        "prompt_tokens": r.usage.prompt_tokens,
        "completion_tokens": r.usage.completion_tokens,
        "total_tokens": r.usage.total_tokens,
    }
    assert fake.requests == 1
    (p,) = fake.prompts
    assert p["model"] == MODEL and p["messages"] == messages and p["reply"] == text

    # What the real client sends.
    (call,) = fake.calls_to("/chat/completions")
    assert call.headers["Authorization"] == f"Bearer {fake.api_key}"
    assert call.headers["x-stainless-retry-count"] == "0"
    assert call.headers["x-stainless-lang"] == "python"


def test_distinct_prompts_give_distinct_replies(fake: FakeOpenAI) -> None:
    with client(fake) as c:
        a = c.chat.completions.create(model=MODEL, messages=msgs("Paper A"))  # type: ignore[arg-type]
        b = c.chat.completions.create(model=MODEL, messages=msgs("Paper B"))  # type: ignore[arg-type]
        a2 = c.chat.completions.create(model=MODEL, messages=msgs("Paper A"))  # type: ignore[arg-type]
    ta, tb, ta2 = (x.choices[0].message.content or "" for x in (a, b, a2))
    assert "Paper A" in ta and "Paper B" in tb and ta != tb
    assert ta == ta2  # deterministic
    assert parse_marker(ta) != parse_marker(tb)


def test_chinese_prompt_gets_chinese_reply(fake: FakeOpenAI) -> None:
    messages = msgs("Sparse Routing for Tiny Transformers", system=SYSTEM + " 请用中文回答。")
    with client(fake) as c:
        r = c.chat.completions.create(model=MODEL, messages=messages)  # type: ignore[arg-type]
    text = r.choices[0].message.content or ""
    assert "主要贡献" in text and "方法" in text and "结果" in text and "局限" in text
    assert "Sparse Routing for Tiny Transformers" in text  # English terms kept
    assert "Contributions" not in text
    for n in ("1. ", "2. ", "3. ", "4. "):
        assert f"\n{n}**" in text


def test_wrong_key_is_authentication_error(fake: FakeOpenAI) -> None:
    with (
        client(fake, api_key="sk-wrong-0123456789abcdef", max_retries=2) as c,
        pytest.raises(openai.AuthenticationError) as ei,
    ):
        c.chat.completions.create(model=MODEL, messages=msgs())  # type: ignore[arg-type]
    err = ei.value
    assert err.status_code == 401
    assert err.code == "invalid_api_key" and err.type == "invalid_request_error"
    assert "Incorrect API key provided: sk-wrong" in err.message
    assert "0123456789" not in err.message  # masked
    assert len(fake.calls_to("/chat/completions")) == 1  # 401 is not retried
    assert fake.requests == 0


def test_validation_errors(fake: FakeOpenAI) -> None:
    fake.models = [MODEL]
    auth = {"Authorization": f"Bearer {fake.api_key}"}
    url = f"{fake.base_url}/chat/completions"
    with httpx.Client(timeout=5, trust_env=False) as h:
        r = h.post(url, headers=auth, json={"messages": msgs()})
        assert r.status_code == 400 and "model" in r.json()["error"]["message"]
        r = h.post(url, headers=auth, json={"model": MODEL})
        assert r.status_code == 400
        assert r.json()["error"] == {
            "message": "Missing required parameter: 'messages'.",
            "type": "invalid_request_error",
            "param": "messages",
            "code": "missing_required_parameter",
        }
        r = h.post(url, headers=auth, content=b"{not json")
        assert r.status_code == 400
        r = h.post(url, json={"model": MODEL, "messages": msgs()})
        assert r.status_code == 401
    with client(fake) as c:
        with pytest.raises(openai.NotFoundError) as ei:
            c.chat.completions.create(model="gpt-nope", messages=msgs())  # type: ignore[arg-type]
        assert ei.value.code == "model_not_found"
        with pytest.raises(openai.BadRequestError):
            c.chat.completions.create(model=MODEL, messages=[])
        assert [m.id for m in c.models.list()] == [MODEL]
    fake.models = None
    with client(fake) as c:
        assert [m.id for m in c.models.list()] == list(DEFAULT_MODELS)


def test_429_with_retry_after_is_retried(fake: FakeOpenAI) -> None:
    fake.fail_next(1, status=429, retry_after=1)
    with client(fake, max_retries=2) as c:
        t0 = time.monotonic()
        r = c.chat.completions.create(model=MODEL, messages=msgs())  # type: ignore[arg-type]
        elapsed = time.monotonic() - t0
    assert r.choices[0].message.content
    calls = fake.calls_to("/chat/completions")
    assert len(calls) == 2 and fake.requests == 1
    assert [c.headers["x-stainless-retry-count"] for c in calls] == ["0", "1"]
    assert calls[1].at - calls[0].at >= 0.95
    assert elapsed >= 0.95


def test_429_without_retries_is_rate_limit_error(fake: FakeOpenAI) -> None:
    fake.fail_next(1, status=429, retry_after_ms=10)
    with client(fake) as c, pytest.raises(openai.RateLimitError) as ei:
        c.chat.completions.create(model=MODEL, messages=msgs())  # type: ignore[arg-type]
    assert ei.value.code == "rate_limit_exceeded"
    assert ei.value.response.headers["retry-after-ms"] == "10"


def test_500_is_retried_with_backoff(fake: FakeOpenAI) -> None:
    fake.fail_next(1, status=500)
    with client(fake, max_retries=2) as c:
        t0 = time.monotonic()
        r = c.chat.completions.create(model=MODEL, messages=msgs())  # type: ignore[arg-type]
        elapsed = time.monotonic() - t0
    assert r.choices[0].finish_reason == "stop"
    assert len(fake.calls_to("/chat/completions")) == 2
    assert elapsed >= 0.3  # default first backoff: 0.5 s minus up to 25 % jitter


def test_errors_exhaust_retries_and_x_should_retry(fake: FakeOpenAI) -> None:
    fake.fail_always(503, retry_after_ms=20)
    with client(fake, max_retries=2) as c, pytest.raises(openai.InternalServerError):
        c.chat.completions.create(model=MODEL, messages=msgs())  # type: ignore[arg-type]
    assert len(fake.calls_to("/chat/completions")) == 3
    fake.fail_always(None)
    fake.calls.clear()
    fake.fail_next(1, status=500, should_retry=False)
    with client(fake, max_retries=2) as c, pytest.raises(openai.InternalServerError):
        c.chat.completions.create(model=MODEL, messages=msgs())  # type: ignore[arg-type]
    assert len(fake.calls_to("/chat/completions")) == 1


def test_hang_times_out_and_server_stops_quickly() -> None:
    fake = FakeOpenAI().start()
    try:
        fake.hang = True
        with client(fake, timeout=0.5) as c, pytest.raises(openai.APITimeoutError):
            c.chat.completions.create(model=MODEL, messages=msgs())  # type: ignore[arg-type]
        assert fake.in_flight == 1  # still parked in the handler
    finally:
        fake.stop()  # wakes the parked handler instead of waiting for it
    assert fake._thread is not None and not fake._thread.is_alive()


def test_max_in_flight_with_concurrent_threads(fake: FakeOpenAI) -> None:
    fake.latency = 0.2
    barrier = threading.Barrier(8)
    with client(fake) as c:

        def one(i: int) -> str:
            barrier.wait(5)
            r = c.chat.completions.create(model=MODEL, messages=msgs(f"Paper {i}"))  # type: ignore[arg-type]
            return r.choices[0].message.content or ""

        with ThreadPoolExecutor(8) as pool:
            texts = list(pool.map(one, range(8)))
    assert all(f"Paper {i}" in t for i, t in enumerate(texts))
    assert fake.requests == 8
    assert fake.max_in_flight == 8  # all eight were served at once, not one after another
    assert fake.in_flight == 0


def test_reply_knobs_and_max_tokens(fake: FakeOpenAI) -> None:
    with client(fake) as c:
        fake.reply_text = "fixed"
        r = c.chat.completions.create(model=MODEL, messages=msgs())  # type: ignore[arg-type]
        assert r.choices[0].message.content == "fixed"
        fake.reply_text = None
        fake.reply_chars = 20_000
        r = c.chat.completions.create(model=MODEL, messages=msgs())  # type: ignore[arg-type]
        text = r.choices[0].message.content or ""
        assert len(text) == 20_000 and parse_marker(text) is not None
        assert r.usage is not None and r.usage.completion_tokens == 5_000
        r = c.chat.completions.create(model=MODEL, messages=msgs(), max_tokens=10)  # type: ignore[arg-type]
        assert r.choices[0].finish_reason == "length"
        assert len(r.choices[0].message.content or "") == 40


def test_streaming_and_async_client(fake: FakeOpenAI) -> None:
    messages = msgs()
    with client(fake) as c:
        stream = c.chat.completions.create(
            model=MODEL,
            messages=messages,  # type: ignore[arg-type]
            stream=True,
            stream_options={"include_usage": True},
        )
        chunks = list(stream)
    text = "".join(ch.choices[0].delta.content or "" for ch in chunks if ch.choices)
    assert parse_marker(text) == (MODEL, prompt_hash(MODEL, messages))
    assert chunks[-1].usage is not None and chunks[-1].usage.prompt_tokens == prompt_tokens(
        messages
    )

    async def go() -> str:
        async with openai.AsyncOpenAI(
            base_url=fake.base_url, api_key=fake.api_key, max_retries=0, timeout=5
        ) as ac:
            r = await ac.chat.completions.create(model=MODEL, messages=messages)  # type: ignore[arg-type]
            return r.choices[0].message.content or ""

    assert asyncio.run(go()) == text
