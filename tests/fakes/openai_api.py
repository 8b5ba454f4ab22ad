"""An HTTP-level fake of the OpenAI chat-completions API, for the real ``openai`` client.

Point the client at it with ``openai.OpenAI(base_url=fake.base_url, api_key=fake.api_key)``.

What it does, like the real service:

* ``POST /v1/chat/completions`` checks ``Authorization: Bearer <key>`` (401 ``invalid_api_key``),
  the JSON body (400 for bad JSON, missing ``model`` / ``messages``, empty ``messages``, bad
  roles), the model (404 ``model_not_found`` when ``fake.models`` is set) and answers with a
  ``chat.completion`` object (or an SSE stream of ``chat.completion.chunk`` when ``stream`` is
  true).  ``max_tokens`` / ``max_completion_tokens`` truncate the reply with
  ``finish_reason="length"``.
* ``GET /v1/models`` and ``GET /v1/models/{id}``.
* Error bodies use the real ``{"error": {"message", "type", "param", "code"}}`` shape; injected
  429s carry ``Retry-After`` / ``retry-after-ms`` when asked, and ``x-should-retry`` can be set,
  so the client's own retry logic (``openai._base_client``) is exercised for real.

The reply is deterministic and derived from the prompt: a Markdown summary of the paper whose
``Title:`` line appears in the user message, in four numbered sections, in Chinese when the
prompt asks for it ("中文" / "Chinese"), ending with ``<!-- fake:{model}:{sha8} -->`` where
``sha8`` is :func:`prompt_hash` of the request's model and messages.  A question about a paper
(page-labelled passages ``[1] (p. 3) …`` and a ``Question:`` line) gets a grounded answer
instead: the best-overlapping passage sentence with its page, or "Not in the paper" when the
question shares no content word with the passages (:func:`generate_answer`).

Knobs (safe to set from any thread): ``latency``, ``hang``, ``reply_text``, ``reply_chars``,
``models``, ``api_key``, :meth:`FakeOpenAI.fail_next`, :meth:`FakeOpenAI.fail_always`.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import hashlib
import json
import math
import re
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from .base import FakeServer

DEFAULT_API_KEY = "sk-test-fake"
DEFAULT_MODELS: tuple[str, ...] = (
    "gpt-4o-mini",
    "gpt-4o",
    "gpt-4.1-mini",
    "gpt-4.1",
    "gpt-5-mini",
)
VALID_ROLES = ("system", "assistant", "user", "function", "tool", "developer")

# -- real error bodies -------------------------------------------------------------------------


def error_body(
    message: str, type_: str = "invalid_request_error", param: str | None = None, code: Any = None
) -> dict[str, Any]:
    """The OpenAI error envelope."""
    return {"error": {"message": message, "type": type_, "param": param, "code": code}}


def mask_key(key: str) -> str:
    """Mask an API key the way OpenAI's 401 message does: first 8 and last 4 characters kept."""
    if len(key) <= 12:
        return key[:2] + "*" * max(len(key) - 2, 0)
    return key[:8] + "*" * (len(key) - 12) + key[-4:]


def rate_limit_body(model: str = "gpt-4o-mini", retry_after: float | None = None) -> dict[str, Any]:
    """The body of a real requests-per-minute 429."""
    wait = f"{retry_after:g}s" if retry_after is not None else "20s"
    return error_body(
        f"Rate limit reached for {model} in organization org-fake on requests per min (RPM): "
        f"Limit 3, Used 3, Requested 1. Please try again in {wait}. Visit "
        "https://platform.openai.com/account/rate-limits to learn more.",
        type_="requests",
        code="rate_limit_exceeded",
    )


#: The 429 sent when the account has no credit left.  Note the client retries it like any 429.
INSUFFICIENT_QUOTA_BODY = error_body(
    "You exceeded your current quota, please check your plan and billing details. For more "
    "information on this error, read the docs: "
    "https://platform.openai.com/docs/guides/error-codes/api-errors.",
    type_="insufficient_quota",
    code="insufficient_quota",
)

_SERVER_ERRORS: dict[int, dict[str, Any]] = {
    500: error_body(
        "The server had an error while processing your request. Sorry about that!",
        type_="server_error",
    ),
    502: error_body("Bad gateway.", type_="cf_bad_gateway", code=502),
    503: error_body(
        "The server is overloaded or not ready yet.", type_="server_error", code="overloaded"
    ),
    504: error_body("Gateway timeout.", type_="cf_gateway_timeout", code=504),
}


def default_error_body(status: int, model: str = "gpt-4o-mini") -> dict[str, Any]:
    """A realistic body for an injected failure with this status."""
    if status == 429:
        return rate_limit_body(model)
    if status in _SERVER_ERRORS:
        return _SERVER_ERRORS[status]
    if status >= 500:
        return _SERVER_ERRORS[500]
    if status == 401:
        return error_body("Incorrect API key provided.", code="invalid_api_key")
    if status == 403:
        return error_body(
            "Country, region, or territory not supported",
            type_="request_forbidden",
            code="unsupported_country_region_territory",
        )
    if status == 408:
        return error_body("Request timed out.", type_="timeout")
    if status == 409:
        return error_body("Conflict: a concurrent request is in progress.", type_="conflict")
    return error_body(f"Error {status}.")


# -- tokens, hashing and the canned reply ------------------------------------------------------


def count_tokens(text: str) -> int:
    """Deterministic token estimate: ``ceil(len(text) / 4)`` (0 for empty text)."""
    return math.ceil(len(text) / 4)


def message_text(message: Any) -> str:
    """The text of one chat message; content may be a string or a list of content parts."""
    if not isinstance(message, dict):
        return ""
    content = message.get("content")
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        parts = [p.get("text", "") for p in content if isinstance(p, dict)]
        return "\n".join(p for p in parts if isinstance(p, str))
    return ""


def prompt_tokens(messages: list[Any]) -> int:
    """``prompt_tokens`` the fake reports: the sum of :func:`count_tokens` over message texts."""
    return sum(count_tokens(message_text(m)) for m in messages)


def prompt_hash(model: str, messages: Any) -> str:
    """First 8 hex digits of the SHA-256 of the canonical JSON of ``[model, messages]``."""
    canonical = json.dumps([model, messages], sort_keys=True, ensure_ascii=False)
    return hashlib.sha256(canonical.encode()).hexdigest()[:8]


def marker(model: str, sha8: str) -> str:
    """The last line of every generated reply."""
    return f"<!-- fake:{model}:{sha8} -->"


_MARKER_RE = re.compile(r"<!-- fake:(?P<model>[^:\s]+(?::[^:\s]+)*):(?P<sha>[0-9a-f]{8}) -->")


def parse_marker(text: str) -> tuple[str, str] | None:
    """``(model, sha8)`` from a reply produced by the fake, or None."""
    m = _MARKER_RE.search(text)
    return (m.group("model"), m.group("sha")) if m else None


_TITLE_RE = re.compile(r"^\W*(?:paper\s+)?(?:title|标题)\W*[:：]\s*\**\s*(.+?)\s*\**\s*$", re.I)
_ABSTRACT_RE = re.compile(r"^\W*(?:abstract|summary|摘要)\W*[:：]\s*(.*)$", re.I)
_WORD_RE = re.compile(r"[A-Za-z][A-Za-z0-9\-]+")
_STOP = frozenset(
    re.findall(
        r"\w+",
        "this that with from their these those which where while have been were into than then "
        "also paper propose proposed approach method methods results show shows using based over "
        "under such each more most other some only both between across about model models task "
        "tasks work study new novel existing introduce present demonstrate achieve",
    )
)


def wants_chinese(messages: list[Any]) -> bool:
    """True when a system/developer/user message asks for Chinese."""
    for m in messages:
        if isinstance(m, dict) and m.get("role") in ("system", "developer", "user"):
            text = message_text(m)
            if "中文" in text or "chinese" in text.lower():
                return True
    return False


def _last_user_text(messages: list[Any]) -> str:
    for m in reversed(messages):
        if isinstance(m, dict) and m.get("role") == "user":
            return message_text(m)
    return message_text(messages[-1]) if messages else ""


def extract_title(messages: list[Any]) -> str:
    """The paper title from a ``Title: ...`` line of the user message, else its first line."""
    text = _last_user_text(messages)
    for line in text.splitlines():
        m = _TITLE_RE.match(line)
        if m and m.group(1).strip():
            return m.group(1).strip()
    for line in text.splitlines():
        if line.strip():
            first = line.strip()
            return first if len(first) <= 80 else first[:77] + "..."
    return "Untitled"


def _abstract(text: str) -> str:
    lines = text.splitlines()
    for i, line in enumerate(lines):
        m = _ABSTRACT_RE.match(line)
        if m:
            rest = [m.group(1), *lines[i + 1 :]]
            out: list[str] = []
            for r in rest:
                if not r.strip() and out:
                    break
                out.append(r.strip())
            return " ".join(x for x in out if x)
    return ""


def _keywords(text: str, n: int = 3) -> list[str]:
    counts: collections.Counter[str] = collections.Counter()
    first: dict[str, int] = {}
    canon: dict[str, str] = {}
    for i, w in enumerate(_WORD_RE.findall(text)):
        k = w.lower()
        if len(k) < 5 or k in _STOP:
            continue
        counts[k] += 1
        first.setdefault(k, i)
        canon.setdefault(k, w)
    ranked = sorted(counts, key=lambda k: (-counts[k], first[k]))
    return [canon[k] for k in ranked[:n]]


def _first_sentence(text: str, limit: int = 160) -> str:
    s = re.split(r"(?<=[.!?])\s", text.strip(), maxsplit=1)[0] if text.strip() else ""
    return s if len(s) <= limit else s[: limit - 3] + "..."


# -- questions about a paper (bot.ask's prompt) -------------------------------------------------
_PASSAGE_RE = re.compile(r"^\[(\d+)\] \(p\. (\d+)\) (.+)$")
_QUESTION_RE = re.compile(r"^Question:\s*(.+)$")
_SENTENCE_RE = re.compile(r"(?<=[.!?])\s+(?=[A-Z0-9(\[])")
_FUNCTION_WORDS = frozenset(
    """about after all also and any are authors because been before but can could did does
    doing done during each for from had has have how into its may might more most much must
    not only other our paper said say says should some such than that the their them then
    there these they this those through use used using was were what when where whether which
    while who whom whose why will with would you your""".split()
)


def content_words(text: str) -> set[str]:
    """Lower-case words of 3+ letters, plurals folded, function and question words dropped."""
    out = set()
    for w in re.findall(r"[a-z][a-z0-9-]+", text.lower()):
        if len(w) > 3 and w.endswith("s") and not w.endswith(("ss", "us", "is")):
            w = w[:-1]
        if len(w) >= 3 and w not in _FUNCTION_WORDS:
            out.add(w)
    return out


def question_prompt(messages: list[Any]) -> tuple[str, list[tuple[int, str]]] | None:
    """``(question, [(page, passage), ...])`` when the last user message is a question about a
    paper with numbered, page-labelled passages (``[1] (p. 3) …`` and ``Question: …``)."""
    lines = _last_user_text(messages).splitlines()
    passages = [(int(m[2]), m[3]) for ln in lines if (m := _PASSAGE_RE.match(ln.strip()))]
    question = next((m[1] for ln in reversed(lines) if (m := _QUESTION_RE.match(ln))), None)
    return (question.strip(), passages) if question and passages else None


def generate_answer(model: str, messages: list[Any]) -> str:
    """A grounded answer: the sentence of the passage that shares most content words with the
    question, quoted with its page; "Not in the paper" when no passage shares any.  A
    follow-up (earlier user turns in ``messages``) says which question it follows."""
    parsed = question_prompt(messages)
    assert parsed is not None
    question, passages = parsed
    want = content_words(question)
    best: tuple[int, int, str] | None = None  # (overlap, page, sentence)
    for page, passage in passages:
        for sentence in _SENTENCE_RE.split(passage):
            overlap = len(want & content_words(sentence))
            if overlap and (best is None or overlap > best[0]):
                best = (overlap, page, sentence.strip())
    if best is None:
        shown = ", ".join(sorted(want)[:4]) or "that"
        text = f"Not in the paper: the passages do not mention {shown}."
    else:
        text = f'The paper says: "{best[2]}" (p. {best[1]}).'
    users = [m for m in messages if isinstance(m, dict) and m.get("role") == "user"]
    if len(users) > 1:
        earlier = message_text(users[-2]).strip().splitlines()[0]
        text = f'Following up on "{earlier}": {text}'
    return "\n".join([text, "", marker(model, prompt_hash(model, messages))])


def generate_reply(model: str, messages: list[Any]) -> str:
    """The deterministic summary the fake returns for this prompt (a grounded answer for a
    question about a paper: :func:`generate_answer`)."""
    if question_prompt(messages) is not None:
        return generate_answer(model, messages)
    title = extract_title(messages)
    user = _last_user_text(messages)
    abstract = _abstract(user)
    kws = _keywords(abstract or user) or ["the proposed method"]
    kw = ", ".join(kws)
    lead = _first_sentence(abstract)
    sha8 = prompt_hash(model, messages)
    if wants_chinese(messages):
        body = [
            f"**{title}**",
            "",
            f"1. **主要贡献与创新点**：本文《{title}》围绕 {kw} 提出了新的思路，"
            "相比已有 baseline 具有明显的 novelty。",
            f"2. **方法与实验设置**：作者以 {kws[0]} 为核心构建方法，"
            "并在公开 benchmark 上设计了系统的实验设置与 ablation study。",
            f"3. **主要结果**：实验表明该方法在 {kws[-1]} 相关指标上优于 baseline，"
            "提升稳定且可复现。",
            "4. **结论与局限性**：该工作验证了所提方法的有效性；"
            "局限在于实验规模有限，泛化能力仍需进一步验证。",
        ]
    else:
        body = [
            f"**{title}**",
            "",
            f'1. **Contributions / novelty**: "{title}" introduces a new take on {kw}.',
            f"2. **Methods / setup**: The approach is built around {kws[0]}"
            + (f"; in the authors' words: {lead}" if lead else ".")
            + " It is evaluated on public benchmarks with ablations.",
            f"3. **Results**: It outperforms strong baselines on {kws[-1]}-related metrics.",
            "4. **Conclusions / limitations**: The results support the method; the evaluation "
            "scale is limited and generalisation needs further study.",
        ]
    return "\n".join([*body, "", marker(model, sha8)])


def pad_reply(text: str, n: int, model: str, sha8: str) -> str:
    """Exactly ``n`` characters: ``text`` followed by filler, ending with the marker if it fits."""
    tail = "\n" + marker(model, sha8)
    if n <= len(tail):
        return (text + tail)[:n]
    head = text.rsplit("\n<!-- fake:", 1)[0]
    filler = " Additional discussion of the findings follows."
    need = n - len(tail)
    while len(head) < need:
        head += filler
    return head[:need] + tail


# -- failures and records ----------------------------------------------------------------------


@dataclass
class Failure:
    """One injected error response."""

    status: int = 429
    retry_after: float | str | None = None
    retry_after_ms: float | None = None
    body: dict[str, Any] | str | bytes | None = None
    should_retry: bool | None = None
    headers: dict[str, str] = field(default_factory=dict)

    def response(self, model: str) -> web.Response:
        headers = {"x-request-id": _request_id(), **self.headers}
        if self.retry_after is not None:
            ra = self.retry_after
            headers["Retry-After"] = ra if isinstance(ra, str) else f"{ra:g}"
        if self.retry_after_ms is not None:
            headers["retry-after-ms"] = f"{self.retry_after_ms:g}"
        if self.should_retry is not None:
            headers["x-should-retry"] = "true" if self.should_retry else "false"
        if self.status == 429:
            headers.setdefault("x-ratelimit-limit-requests", "3")
            headers.setdefault("x-ratelimit-remaining-requests", "0")
            headers.setdefault("x-ratelimit-reset-requests", "20s")
        body = self.body
        if body is None:
            body = (
                rate_limit_body(model, _seconds(self.retry_after, self.retry_after_ms))
                if self.status == 429
                else default_error_body(self.status, model)
            )
        if isinstance(body, dict):
            return web.json_response(body, status=self.status, headers=headers)
        raw = body.encode() if isinstance(body, str) else body
        headers.setdefault("Content-Type", "text/html; charset=utf-8")
        return web.Response(body=raw, status=self.status, headers=headers)


def _seconds(retry_after: float | str | None, retry_after_ms: float | None) -> float | None:
    if retry_after_ms is not None:
        return retry_after_ms / 1000
    if isinstance(retry_after, int | float):
        return float(retry_after)
    return None


def _request_id() -> str:
    return "req_" + uuid.uuid4().hex


# -- the fake ----------------------------------------------------------------------------------


class FakeOpenAI(FakeServer):
    """Fake OpenAI API.  ``with FakeOpenAI() as fake: openai.OpenAI(base_url=fake.base_url, ...)``.

    Attributes (knobs, settable from tests at any time):
      api_key: the accepted key (None accepts any bearer token).
      models: accepted model ids (None accepts any; ``GET /v1/models`` then lists
        ``DEFAULT_MODELS``).
      latency: seconds every chat-completion request waits before answering.
      hang: while true, chat-completion requests never answer (until ``hang`` is cleared, when
        they proceed, or the server stops, when they get a 503).
      reply_text: a fixed reply instead of the generated summary.
      reply_chars: force the reply to exactly this many characters.

    Accounting: ``requests`` (completions served with 200), ``in_flight``, ``max_in_flight``,
    ``prompts`` (one dict per served completion), ``usage_total()``, plus the base ``calls``.
    """

    def __init__(
        self,
        *,
        api_key: str | None = DEFAULT_API_KEY,
        models: list[str] | tuple[str, ...] | None = None,
        latency: float = 0.0,
    ) -> None:
        super().__init__()
        self.api_key = api_key
        self.models: list[str] | None = list(models) if models is not None else None
        self.latency = latency
        self.reply_text: str | None = None
        self.reply_chars: int | None = None
        self.prompts: list[dict[str, Any]] = []
        self._requests = 0
        self._in_flight = 0
        self._max_in_flight = 0
        self._usage = {"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0}
        self._failures: collections.deque[Failure] = collections.deque()
        self._always: Failure | None = None
        self._hang = False
        self._stop_ev: asyncio.Event | None = None  # set in on_shutdown
        self._unhang_ev: asyncio.Event | None = None  # set while not hanging
        self._seq = 0

    # -- lifecycle ---------------------------------------------------------------------------
    def __enter__(self) -> FakeOpenAI:
        self.start()
        return self

    def start(self) -> FakeOpenAI:
        super().start()
        return self

    @property
    def base_url(self) -> str:
        """What to pass as ``base_url`` to ``openai.OpenAI``."""
        return f"{self.url}/v1"

    def setup_routes(self, app: web.Application) -> None:
        self._stop_ev = asyncio.Event()
        self._unhang_ev = asyncio.Event()
        self._sync_hang()
        app.router.add_post("/v1/chat/completions", self._chat_completions)
        app.router.add_get("/v1/models", self._list_models)
        app.router.add_get("/v1/models/{model}", self._get_model)

    async def on_shutdown(self) -> None:
        # Wake hung and sleeping handlers first: the runner's cleanup waits for them.
        if self._stop_ev is not None:
            self._stop_ev.set()

    @property
    def _stopping(self) -> bool:
        return self._stop_ev is not None and self._stop_ev.is_set()

    # -- knobs -------------------------------------------------------------------------------
    @property
    def hang(self) -> bool:
        return self._hang

    @hang.setter
    def hang(self, value: bool) -> None:
        self._hang = bool(value)
        loop = self._loop
        if loop is not None:
            with contextlib.suppress(RuntimeError):  # loop already closed
                loop.call_soon_threadsafe(self._sync_hang)

    def _sync_hang(self) -> None:
        if self._unhang_ev is None:
            return
        if self._hang:
            self._unhang_ev.clear()
        else:
            self._unhang_ev.set()

    def fail_next(
        self,
        n: int = 1,
        status: int = 429,
        retry_after: float | str | None = None,
        retry_after_ms: float | None = None,
        body: dict[str, Any] | str | bytes | None = None,
        *,
        should_retry: bool | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        """Answer the next ``n`` chat-completion requests (after auth) with ``status``.

        ``retry_after`` becomes the ``Retry-After`` header (a number of seconds, or a string such
        as an HTTP date), ``retry_after_ms`` the ``retry-after-ms`` header, ``should_retry`` the
        ``x-should-retry`` header.  ``body`` replaces the default realistic JSON body (a str/bytes
        body is sent as text/html, like a proxy's error page).
        """
        failure = Failure(
            status, retry_after, retry_after_ms, body, should_retry, dict(headers or {})
        )
        with self._lock:
            self._failures.extend([failure] * n)

    def fail_always(
        self,
        status: int | None = 500,
        retry_after: float | str | None = None,
        retry_after_ms: float | None = None,
        body: dict[str, Any] | str | bytes | None = None,
        *,
        should_retry: bool | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        """Answer every chat-completion request with ``status`` until ``fail_always(None)``."""
        with self._lock:
            self._always = (
                None
                if status is None
                else Failure(status, retry_after, retry_after_ms, body, should_retry, headers or {})
            )

    def clear_failures(self) -> None:
        with self._lock:
            self._failures.clear()
            self._always = None

    def reset(self) -> None:
        """Forget calls, prompts and counters, and clear failures and reply knobs."""
        self.clear_failures()
        with self._lock:
            self.calls.clear()
            self.prompts.clear()
            self._requests = 0
            self._max_in_flight = self._in_flight
            self._usage = dict.fromkeys(self._usage, 0)
        self.latency = 0.0
        self.reply_text = None
        self.reply_chars = None
        self.hang = False

    # -- accounting --------------------------------------------------------------------------
    @property
    def requests(self) -> int:
        """Chat completions served successfully."""
        with self._lock:
            return self._requests

    @property
    def attempts(self) -> int:
        """Every ``POST /v1/chat/completions`` received, including failed and retried ones."""
        return len(self.calls_to("/chat/completions"))

    @property
    def in_flight(self) -> int:
        with self._lock:
            return self._in_flight

    @property
    def max_in_flight(self) -> int:
        with self._lock:
            return self._max_in_flight

    @property
    def pending_failures(self) -> int:
        with self._lock:
            return len(self._failures)

    def usage_total(self) -> dict[str, int]:
        """Summed ``usage`` over all served completions."""
        with self._lock:
            return dict(self._usage)

    def distinct_request_bodies(self) -> int:
        """How many different (model, messages) pairs were served: a repeat is a prompt the
        client sent twice."""
        with self._lock:
            return len({json.dumps([p["model"], p["messages"]]) for p in self.prompts})

    def replies(self) -> list[str]:
        """The reply text of each served completion, in order."""
        with self._lock:
            return [p["reply"] for p in self.prompts]

    # -- handlers ----------------------------------------------------------------------------
    def _auth_error(self, request: web.Request) -> web.Response | None:
        if self.api_key is None:
            return None
        auth = request.headers.get("Authorization", "")
        scheme, _, token = auth.partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token:
            return _json_error(
                401,
                error_body(
                    "You didn't provide an API key. You need to provide your API key in an "
                    "Authorization header using Bearer auth (i.e. Authorization: Bearer YOUR_KEY)"
                    ", or as the password field (with blank username) if you're accessing the API "
                    "from your browser and are prompted for a username and password. You can "
                    "obtain an API key from https://platform.openai.com/account/api-keys."
                ),
            )
        if token != self.api_key:
            return _json_error(
                401,
                error_body(
                    f"Incorrect API key provided: {mask_key(token)}. You can find your API key at "
                    "https://platform.openai.com/account/api-keys.",
                    code="invalid_api_key",
                ),
            )
        return None

    async def _sleep(self, seconds: float) -> None:
        """Sleep, but wake up early when the server stops."""
        assert self._stop_ev is not None
        if seconds <= 0 or self._stop_ev.is_set():
            return
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stop_ev.wait(), seconds)

    async def _wait_hang(self) -> None:
        """Block while ``hang`` is true, until it is cleared or the server stops."""
        assert self._stop_ev is not None and self._unhang_ev is not None
        while self._hang and not self._stop_ev.is_set():
            self._unhang_ev.clear()  # hang is true right now; a later False re-sets it
            waiters = [
                asyncio.ensure_future(self._unhang_ev.wait()),
                asyncio.ensure_future(self._stop_ev.wait()),
            ]
            try:
                await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
            finally:
                for w in waiters:
                    w.cancel()

    async def _chat_completions(self, request: web.Request) -> web.StreamResponse:
        received = time.monotonic()
        with self._lock:
            self._in_flight += 1
            self._max_in_flight = max(self._max_in_flight, self._in_flight)
        try:
            if self._hang:
                await self._wait_hang()
            await self._sleep(self.latency)
            if self._stopping:  # woken early by stop(): don't pretend to have answered
                return _json_error(503, _SERVER_ERRORS[503])
            if err := self._auth_error(request):
                return err
            body = await request.read()
            try:
                payload = json.loads(body or b"")
            except ValueError:
                payload = None
            model = payload.get("model") if isinstance(payload, dict) else None
            with self._lock:
                failure = self._failures.popleft() if self._failures else self._always
            if failure is not None:
                return failure.response(model if isinstance(model, str) else "gpt-4o-mini")
            if not isinstance(payload, dict):
                return _json_error(
                    400,
                    error_body(
                        "We could not parse the JSON body of your request. (HINT: This likely "
                        "means you aren't using your HTTP library correctly. The OpenAI API "
                        "expects a JSON payload, but what was sent was not valid JSON. If you have "
                        "trouble figuring out how to fix this, please contact us through our help "
                        "center at help.openai.com.)"
                    ),
                )
            if err := self._validate(payload):
                return err
            return await self._complete(request, payload, received)
        finally:
            with self._lock:
                self._in_flight -= 1

    def _validate(self, payload: dict[str, Any]) -> web.Response | None:
        model = payload.get("model")
        if not model or not isinstance(model, str):
            return _json_error(400, error_body("you must provide a model parameter"))
        if "messages" not in payload:
            return _json_error(
                400,
                error_body(
                    "Missing required parameter: 'messages'.",
                    param="messages",
                    code="missing_required_parameter",
                ),
            )
        messages = payload["messages"]
        if not isinstance(messages, list):
            return _json_error(
                400,
                error_body(
                    f"Invalid type for 'messages': expected an array, but got "
                    f"{type(messages).__name__} instead.",
                    param="messages",
                    code="invalid_type",
                ),
            )
        if not messages:
            return _json_error(
                400,
                error_body("[] is too short - 'messages'", param="messages", code="empty_array"),
            )
        for i, m in enumerate(messages):
            role = m.get("role") if isinstance(m, dict) else None
            if role not in VALID_ROLES:
                if role is None:
                    return _json_error(
                        400,
                        error_body(
                            f"Missing required parameter: 'messages[{i}].role'.",
                            param=f"messages[{i}].role",
                            code="missing_required_parameter",
                        ),
                    )
                return _json_error(
                    400,
                    error_body(
                        f"Invalid value: '{role}'. Supported values are: 'system', 'assistant', "
                        "'user', 'function', 'tool', and 'developer'.",
                        param=f"messages[{i}].role",
                        code="invalid_value",
                    ),
                )
        if self.models is not None and model not in self.models:
            return _json_error(
                404,
                error_body(
                    f"The model `{model}` does not exist or you do not have access to it.",
                    code="model_not_found",
                ),
            )
        return None

    def _reply_for(self, model: str, messages: list[Any]) -> str:
        fixed = self.reply_text
        chars = self.reply_chars
        sha8 = prompt_hash(model, messages)
        text = fixed if fixed is not None else generate_reply(model, messages)
        if chars is not None:
            text = pad_reply(text, chars, model, sha8)
        return text

    async def _complete(
        self, request: web.Request, payload: dict[str, Any], received: float
    ) -> web.StreamResponse:
        model: str = payload["model"]
        messages: list[Any] = payload["messages"]
        text = self._reply_for(model, messages)
        finish_reason = "stop"
        limit = payload.get("max_completion_tokens") or payload.get("max_tokens")
        if isinstance(limit, int) and limit > 0 and count_tokens(text) > limit:
            text = text[: limit * 4]
            finish_reason = "length"
        p_tok = prompt_tokens(messages)
        c_tok = count_tokens(text)
        usage = {
            "prompt_tokens": p_tok,
            "completion_tokens": c_tok,
            "total_tokens": p_tok + c_tok,
            "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
            "completion_tokens_details": {
                "reasoning_tokens": 0,
                "audio_tokens": 0,
                "accepted_prediction_tokens": 0,
                "rejected_prediction_tokens": 0,
            },
        }
        with self._lock:
            self._seq += 1
            seq = self._seq
            self._requests += 1
            for k in ("prompt_tokens", "completion_tokens", "total_tokens"):
                self._usage[k] += usage[k]
            self.prompts.append(
                {
                    "model": model,
                    "messages": messages,
                    "at": received,
                    "time": time.time(),
                    "params": {k: v for k, v in payload.items() if k not in ("model", "messages")},
                    "reply": text,
                    "usage": {k: usage[k] for k in ("prompt_tokens", "completion_tokens")},
                }
            )
        completion_id = f"chatcmpl-fake{seq:06d}{prompt_hash(model, messages)}"
        created = int(time.time())
        headers = {
            "x-request-id": _request_id(),
            "openai-processing-ms": str(int((time.monotonic() - received) * 1000)),
            "openai-version": "2020-10-01",
            "openai-organization": "org-fake",
        }
        if payload.get("stream"):
            include_usage = bool((payload.get("stream_options") or {}).get("include_usage"))
            return await self._stream(
                request,
                completion_id,
                created,
                model,
                text,
                finish_reason,
                usage if include_usage else None,
                headers,
            )
        return web.json_response(
            {
                "id": completion_id,
                "object": "chat.completion",
                "created": created,
                "model": model,
                "choices": [
                    {
                        "index": 0,
                        "message": {
                            "role": "assistant",
                            "content": text,
                            "refusal": None,
                            "annotations": [],
                        },
                        "logprobs": None,
                        "finish_reason": finish_reason,
                    }
                ],
                "usage": usage,
                "service_tier": "default",
                "system_fingerprint": "fp_fake",
            },
            headers=headers,
        )

    async def _stream(
        self,
        request: web.Request,
        completion_id: str,
        created: int,
        model: str,
        text: str,
        finish_reason: str,
        usage: dict[str, Any] | None,
        headers: dict[str, str],
    ) -> web.StreamResponse:
        resp = web.StreamResponse(
            headers={**headers, "Content-Type": "text/event-stream; charset=utf-8"}
        )
        await resp.prepare(request)
        base = {
            "id": completion_id,
            "object": "chat.completion.chunk",
            "created": created,
            "model": model,
            "service_tier": "default",
            "system_fingerprint": "fp_fake",
        }

        async def send(choices: list[dict[str, Any]], **extra: Any) -> None:
            chunk = {**base, "choices": choices, **extra}
            if usage is not None and "usage" not in extra:
                chunk["usage"] = None
            await resp.write(f"data: {json.dumps(chunk, ensure_ascii=False)}\n\n".encode())

        delta0 = {"role": "assistant", "content": "", "refusal": None}
        await send([{"index": 0, "delta": delta0, "logprobs": None, "finish_reason": None}])
        for i in range(0, len(text), 64):
            piece = {"content": text[i : i + 64]}
            await send([{"index": 0, "delta": piece, "logprobs": None, "finish_reason": None}])
        await send([{"index": 0, "delta": {}, "logprobs": None, "finish_reason": finish_reason}])
        if usage is not None:
            await send([], usage=usage)
        await resp.write(b"data: [DONE]\n\n")
        await resp.write_eof()
        return resp

    def _model_obj(self, model: str) -> dict[str, Any]:
        return {"id": model, "object": "model", "created": 1_700_000_000, "owned_by": "system"}

    async def _list_models(self, request: web.Request) -> web.Response:
        if err := self._auth_error(request):
            return err
        ids = self.models if self.models is not None else list(DEFAULT_MODELS)
        return web.json_response(
            {"object": "list", "data": [self._model_obj(m) for m in ids]},
            headers={"x-request-id": _request_id()},
        )

    async def _get_model(self, request: web.Request) -> web.Response:
        if err := self._auth_error(request):
            return err
        model = request.match_info["model"]
        ids = self.models if self.models is not None else list(DEFAULT_MODELS)
        if model not in ids:
            return _json_error(
                404,
                error_body(
                    f"The model '{model}' does not exist", param="model", code="model_not_found"
                ),
            )
        return web.json_response(self._model_obj(model), headers={"x-request-id": _request_id()})


def _json_error(status: int, body: dict[str, Any]) -> web.Response:
    return web.json_response(body, status=status, headers={"x-request-id": _request_id()})
