"""LLM summaries through any OpenAI-compatible endpoint: summarized once, never silently missing.

A summary is cached in storage under (base id, version, model, prompt hash, language, source);
one LLM call per key, ever, however many subscriptions receive the paper.  Concurrent requests
for the same key wait for the one call in flight.  Every item says what happened to its
summary (:class:`bot.models.SummaryStatus`), and the renderers show a marker when it is absent.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import io
import logging
import re
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from bot.config import SummariesSection, secret
from bot.errors import ConfigError, HeraldError, SourceError
from bot.models import Paper, ScoredPaper, Subscription, SummaryStatus
from storage import Store, SummaryRecord

log = logging.getLogger(__name__)

CHARS_PER_TOKEN = 4  # a deliberate, model-independent approximation for truncation
MAX_FALLBACK_ATTEMPTS = 3
LANGUAGE_NAMES = {
    "en": "English",
    "zh": "Chinese",
    "de": "German",
    "fr": "French",
    "es": "Spanish",
    "ja": "Japanese",
    "ko": "Korean",
    "ru": "Russian",
    "pt": "Portuguese",
    "it": "Italian",
}
_REFS = re.compile(
    r"^\s*(?:\d+\.?\s*|[IVX]+\.?\s*)?(references|bibliography|literature cited)\s*$",
    re.I | re.M,
)


def count_tokens(text: str) -> int:
    return (len(text) + CHARS_PER_TOKEN - 1) // CHARS_PER_TOKEN


def language_name(code: str) -> str:
    return LANGUAGE_NAMES.get(code.lower(), code)


def extract_pdf_text(data: bytes) -> str:
    """Plain text of a PDF, references/bibliography dropped."""
    return drop_references("\n".join(_page_texts(data)))


def extract_pdf_pages(data: bytes) -> list[str]:
    """The text of each page of a PDF (page 1 first), cut where :func:`extract_pdf_text` cuts
    the references: the pages after that cut are left out."""
    pages = _page_texts(data)
    kept = len(drop_references("\n".join(pages)))
    out: list[str] = []
    start = 0
    for page in pages:
        if start >= kept:
            break
        out.append(page[: kept - start])
        start += len(page) + 1  # the "\n" joining the pages
    return out


def _page_texts(data: bytes) -> list[str]:
    from pypdf import PdfReader
    from pypdf.errors import PdfReadError

    try:
        reader = PdfReader(io.BytesIO(data))
        return [page.extract_text() or "" for page in reader.pages]
    except (PdfReadError, ValueError, KeyError, TypeError) as exc:
        raise SourceError(f"cannot read the PDF ({exc.__class__.__name__})") from None


def drop_references(text: str) -> str:
    """Cut at the last 'References' heading in the second half of the text."""
    last = None
    for m in _REFS.finditer(text):
        if m.start() > len(text) * 0.3:
            last = m
    return text[: last.start()].rstrip() if last else text


def truncate_tokens(text: str, max_tokens: int) -> tuple[str, bool]:
    limit = max_tokens * CHARS_PER_TOKEN
    if len(text) <= limit:
        return text, False
    cut = text[:limit]
    # End on a paragraph or sentence boundary when one is near.
    for sep in ("\n\n", ". "):
        at = cut.rfind(sep)
        if at > limit * 0.8:
            cut = cut[: at + len(sep)]
            break
    return cut, True


@dataclass(frozen=True)
class Prompt:
    system: str
    language: str

    @property
    def hash(self) -> str:
        return hashlib.sha256(f"{self.language}\n{self.system}".encode()).hexdigest()[:12]


class LLMError(HeraldError):
    """An LLM call failed; the text says why, in words for a person."""


@dataclass(frozen=True, slots=True)
class Completion:
    """One answered chat completion and what it cost."""

    text: str
    tokens_in: int
    tokens_out: int
    cost: float


@dataclass
class Outcome:
    status: SummaryStatus
    text: str | None = None
    note: str | None = None
    model: str | None = None


class Budget:
    """Today's spend against ``summaries.daily_budget`` (tokens and/or money)."""

    def __init__(self, cfg: SummariesSection, store: Store) -> None:
        self.cfg = cfg
        self.store = store
        self._lock = threading.Lock()
        self._day: dt.date | None = None
        self._tokens = 0.0
        self._money = 0.0

    def _refresh(self) -> None:
        today = dt.datetime.now(dt.UTC).date()
        if self._day != today:
            used = self.store.usage_on(today)
            self._day = today
            self._tokens = used.tokens_in + used.tokens_out
            self._money = used.cost

    def spent(self) -> str | None:
        """Why the budget is spent, or None when there is room."""
        b = self.cfg.daily_budget
        if b is None:
            return None
        with self._lock:
            self._refresh()
            if b.tokens is not None and self._tokens >= b.tokens:
                return f"{int(self._tokens):,} of {b.tokens:,} tokens used today"
            if b.money is not None and self._money >= b.money:
                return f"{self._money:.4f} of {b.money:.4f} spent today"
        return None

    def add(self, tokens: int, money: float) -> None:
        with self._lock:
            self._refresh()
            self._tokens += tokens
            self._money += money


class Summarizer:
    """Fills ``summary``/``summary_status`` on digest items; at most one LLM call per key."""

    def __init__(
        self,
        cfg: SummariesSection,
        store: Store,
        *,
        pdf_fetcher: Callable[[str, int], bytes] | None = None,
        base_dir: Path | None = None,
    ) -> None:
        self.cfg = cfg
        self.store = store
        self.pdf_fetcher = pdf_fetcher
        self.base_dir = base_dir or Path.cwd()
        self.budget = Budget(cfg, store)
        self._client: Any = None
        self._client_lock = threading.Lock()
        self._inflight: dict[str, Future[Outcome]] = {}
        self._inflight_lock = threading.Lock()
        self._prompts: dict[str, Prompt] = {}
        self._budget_logged = False

    # -- configuration -----------------------------------------------------------------------
    @property
    def api_key(self) -> str | None:
        return secret(self.cfg.api_key_env)

    def prompt(self, language: str) -> Prompt:
        if language not in self._prompts:
            self._prompts[language] = self._load_prompt(language)
        return self._prompts[language]

    def _load_prompt(self, language: str) -> Prompt:
        if self.cfg.prompt_file:
            path = Path(self.cfg.prompt_file)
            path = path if path.is_absolute() else self.base_dir / path
            try:
                text = path.read_text(encoding="utf-8")
            except OSError as exc:
                raise ConfigError(
                    f"summaries.prompt_file: cannot read {path} ({exc.strerror}); fix the path "
                    "or set it to null to use the shipped prompt"
                ) from None
        else:
            shipped = resources.files("bot").joinpath("prompts", f"summary_{language}.txt")
            if shipped.is_file():
                text = shipped.read_text(encoding="utf-8")
            else:
                text = (
                    resources.files("bot")
                    .joinpath("prompts", "summary_en.txt")
                    .read_text(encoding="utf-8")
                )
                text = text.replace("in\nEnglish", "in\n" + language_name(language))
                text += f"\nWrite the whole summary in {language_name(language)}.\n"
        return Prompt(system=text.strip(), language=language)

    def language_for(self, sub: Subscription | None) -> str:
        return (sub.language if sub and sub.language else None) or self.cfg.language

    def key(self, paper: Paper, language: str, source: str | None = None) -> str:
        source = source or self.cfg.source
        parts = [paper.id, str(paper.version), self.cfg.model, self.prompt(language).hash]
        parts += [language, source]
        return hashlib.sha256("|".join(parts).encode()).hexdigest()[:32]

    def client(self) -> Any:
        with self._client_lock:
            if self._client is None:
                import openai

                self._client = openai.OpenAI(
                    base_url=self.cfg.base_url,
                    api_key=self.api_key,
                    timeout=self.cfg.timeout_s,
                    max_retries=self.cfg.max_retries,
                )
            return self._client

    # -- public API --------------------------------------------------------------------------
    def cached(self, paper: Paper, language: str, source: str | None = None) -> Outcome | None:
        row = self.store.get_summary(self.key(paper, language, source))
        return self._row_outcome(row) if row else None

    def attach_cached(self, items: Sequence[ScoredPaper], sub: Subscription | None) -> None:
        """Fill items from the cache only (no LLM): for feeds, web pages, re-renders."""
        lang = self.language_for(sub)
        keys = {id(i): self.key(i.paper, lang) for i in items}
        rows = self.store.get_summaries(list(keys.values()))
        for i in items:
            row = rows.get(keys[id(i)])
            out = self._row_outcome(row) if row else None
            if out and out.text:
                _apply(i, out)
            elif self.cfg.enabled:
                i.summary_status = SummaryStatus.PENDING

    def summarize_items(
        self,
        work: Sequence[tuple[ScoredPaper, Subscription | None]],
        *,
        top_n: int | None = None,
        progress: Callable[[int, int], None] | None = None,
        fresh: bool = False,
    ) -> None:
        """Summarize the first ``top_n`` items of each subscription; mark the rest skipped.

        ``work`` is (item, subscription) in digest order; one LLM call per distinct key.
        """
        top_n = self.cfg.top_n if top_n is None else top_n
        seen: dict[int | None, int] = {}
        todo: dict[str, tuple[Paper, str]] = {}
        plan: list[tuple[ScoredPaper, str | None]] = []
        for item, sub in work:
            sid = sub.id if sub else None
            rank = seen.get(sid, 0)
            seen[sid] = rank + 1
            if not self.cfg.enabled:
                item.summary_status = SummaryStatus.DISABLED
                plan.append((item, None))
                continue
            lang = self.language_for(sub)
            key = self.key(item.paper, lang)
            cached = None if fresh else self._final(key)
            if cached is not None:
                _apply(item, cached)
                plan.append((item, None))
                continue
            if rank >= top_n:
                item.summary_status = SummaryStatus.SKIPPED
                plan.append((item, None))
                continue
            todo.setdefault(key, (item.paper, lang))
            plan.append((item, key))
        results = self._run(todo, progress=progress, fresh=fresh)
        for item, planned in plan:
            if planned is not None:
                _apply(item, results[planned])

    def summarize_paper(
        self, paper: Paper, language: str, *, source: str | None = None, fresh: bool = False
    ) -> Outcome:
        """One paper, now (``herald summarize``, ``/summarize``)."""
        source = source or self.cfg.source
        if not self.cfg.enabled:
            return Outcome(SummaryStatus.DISABLED, note="summaries are turned off in the config")
        key = self.key(paper, language, source)
        if not fresh:
            cached = self._final(key)
            if cached is not None:
                return cached
        return self._summarize_once(key, paper, language, source, fresh=fresh)

    # -- internals ---------------------------------------------------------------------------
    def _final(self, key: str) -> Outcome | None:
        """A cached result that needs no new call (ok, or a fallback that has had its tries)."""
        row = self.store.get_summary(key)
        if row is None:
            return None
        if row.status == "ok":
            return self._row_outcome(row)
        if row.status == "fallback" and row.attempts >= MAX_FALLBACK_ATTEMPTS:
            return self._row_outcome(row)
        return None

    def _row_outcome(self, row: SummaryRecord) -> Outcome | None:
        if row.status == "ok":
            return Outcome(SummaryStatus.CACHED, row.text, None, row.model)
        if row.status == "fallback":
            return Outcome(SummaryStatus.ABSTRACT_ONLY, row.text, row.error, row.model)
        return None

    def _run(
        self,
        todo: dict[str, tuple[Paper, str]],
        *,
        progress: Callable[[int, int], None] | None,
        fresh: bool,
    ) -> dict[str, Outcome]:
        results: dict[str, Outcome] = {}
        if not todo:
            return results
        total = len(todo)
        done = 0
        lock = threading.Lock()

        def one(key: str, paper: Paper, lang: str) -> Outcome:
            nonlocal done
            try:
                return self._summarize_once(key, paper, lang, self.cfg.source, fresh=fresh)
            finally:
                with lock:
                    done += 1
                    if progress:
                        progress(done, total)

        workers = min(self.cfg.max_workers, total)
        with ThreadPoolExecutor(workers, thread_name_prefix="summary") as pool:
            futures = {k: pool.submit(one, k, p, lang) for k, (p, lang) in todo.items()}
            for k, fut in futures.items():
                results[k] = fut.result()
        return results

    def _summarize_once(
        self, key: str, paper: Paper, language: str, source: str, *, fresh: bool
    ) -> Outcome:
        """Single flight per key: a second caller waits for the first caller's result."""
        with self._inflight_lock:
            fut = self._inflight.get(key)
            owner = fut is None
            if owner:
                fut = Future()
                self._inflight[key] = fut
        assert fut is not None
        if not owner:
            return fut.result()
        try:
            if not fresh:
                cached = self._final(key)
                if cached is not None:
                    fut.set_result(cached)
                    return cached
            outcome = self._call(key, paper, language, source)
            fut.set_result(outcome)
            return outcome
        except BaseException as exc:
            fut.set_exception(exc)
            raise
        finally:
            with self._inflight_lock:
                self._inflight.pop(key, None)

    def _call(self, key: str, paper: Paper, language: str, source: str) -> Outcome:
        if not self.api_key:
            return Outcome(
                SummaryStatus.MISSING_KEY,
                note=f"set the environment variable {self.cfg.api_key_env}",
            )
        spent = self.budget.spent()
        if spent:
            if not self._budget_logged:
                log.warning("daily LLM budget spent (%s): no more summaries today", spent)
                self._budget_logged = True
            self._save(key, paper, language, source, "budget", None, spent, "abstract")
            return Outcome(SummaryStatus.BUDGET, note=spent)
        prompt = self.prompt(language)
        body, used, note = self._input(paper, source)
        messages = [
            {"role": "system", "content": prompt.system},
            {"role": "user", "content": body},
        ]
        try:
            done = self.complete(messages, paper_id=paper.id, max_tokens=self.cfg.max_output_tokens)
        except LLMError as exc:
            return self._failed(key, paper, language, source, str(exc), usage=False)
        text, t_in, t_out = done.text, done.tokens_in, done.tokens_out
        if not text:
            return self._failed(key, paper, language, source, "the LLM returned an empty answer")
        status = "ok" if used == source else "fallback"
        self._save(key, paper, language, source, status, text, note, used, t_in, t_out)
        if status == "ok":
            return Outcome(SummaryStatus.OK, text, None, self.cfg.model)
        return Outcome(SummaryStatus.ABSTRACT_ONLY, text, note, self.cfg.model)

    def complete(
        self,
        messages: list[dict[str, str]],
        *,
        paper_id: str,
        max_tokens: int,
        temperature: float = 0.3,
    ) -> Completion:
        """One chat completion with the configured endpoint and model.  Its usage is recorded
        (against ``paper_id``) and counted in the daily budget; a failure is recorded too and
        raises :class:`LLMError` saying why."""
        import openai

        try:
            resp = self.client().chat.completions.create(
                model=self.cfg.model,
                messages=messages,
                max_tokens=max_tokens,
                temperature=temperature,
            )
        except openai.APITimeoutError:
            reason = f"no answer within {self.cfg.timeout_s:g} s"
        except openai.APIStatusError as exc:
            reason = f"HTTP {exc.status_code}: {_short(_error_message(exc))}"
        except openai.APIConnectionError:
            reason = "cannot reach the LLM endpoint"
        except openai.OpenAIError as exc:
            reason = _short(str(exc))
        else:
            text = (resp.choices[0].message.content or "").strip() if resp.choices else ""
            usage = getattr(resp, "usage", None)
            sent = "".join(m["content"] for m in messages)
            t_in = int(getattr(usage, "prompt_tokens", 0) or count_tokens(sent))
            t_out = int(getattr(usage, "completion_tokens", 0) or count_tokens(text))
            cost = self._cost(t_in, t_out)
            self.store.record_usage(
                model=self.cfg.model,
                paper_id=paper_id,
                tokens_in=t_in,
                tokens_out=t_out,
                cost=cost,
                ok=bool(text),
            )
            self.budget.add(t_in + t_out, cost)
            return Completion(text, t_in, t_out, cost)
        self._record_failure(paper_id, reason)
        raise LLMError(reason)

    def _input(self, paper: Paper, source: str) -> tuple[str, str, str | None]:
        head = (
            f"Title: {paper.title}\nAuthors: {', '.join(paper.authors)}\n"
            f"Categories: {', '.join(paper.categories)}\narXiv: {paper.versioned_id}\n\n"
        )
        budget = self.cfg.max_input_tokens - count_tokens(head) - 50
        if source == "fulltext":
            try:
                if self.pdf_fetcher is None:
                    raise SourceError("no PDF source configured")
                text = extract_pdf_text(self.pdf_fetcher(paper.id, paper.version))
                if len(text.strip()) < 500:
                    raise SourceError("the PDF has no extractable text")
                text, cut = truncate_tokens(text, budget)
                extra = "\n\n[Full text truncated to fit the input budget.]" if cut else ""
                return head + "Full text (references removed):\n" + text + extra, "fulltext", None
            except SourceError as exc:
                note = f"full text unavailable: {exc}"
                log.info("%s: %s; summarizing the abstract", paper.id, note)
                abstract, _ = truncate_tokens(paper.abstract, budget)
                return head + "Abstract:\n" + abstract, "abstract", note
        abstract, _ = truncate_tokens(paper.abstract, budget)
        return head + "Abstract:\n" + abstract, "abstract", None

    def _cost(self, t_in: int, t_out: int) -> float:
        p = self.cfg.prices
        if p is None:
            return 0.0
        return (t_in * p.input + t_out * p.output) / 1_000_000

    def _failed(
        self,
        key: str,
        paper: Paper,
        language: str,
        source: str,
        reason: str,
        *,
        usage: bool = True,
    ) -> Outcome:
        """``usage``: also log the failure as a call (``complete`` already did for its own)."""
        log.warning("summary of %s failed: %s", paper.id, reason)
        if usage:
            self._record_failure(paper.id, reason)
        self._save(key, paper, language, source, "failed", None, reason, source)
        return Outcome(SummaryStatus.FAILED, note=reason)

    def _record_failure(self, paper_id: str, reason: str) -> None:
        self.store.record_usage(
            model=self.cfg.model,
            paper_id=paper_id,
            tokens_in=0,
            tokens_out=0,
            cost=0.0,
            ok=False,
            error=reason,
        )

    def _save(
        self,
        key: str,
        paper: Paper,
        language: str,
        source: str,
        status: str,
        text: str | None,
        error: str | None,
        used: str,
        t_in: int = 0,
        t_out: int = 0,
    ) -> None:
        self.store.save_summary(
            SummaryRecord(
                key=key,
                paper_id=paper.id,
                version=paper.version,
                model=self.cfg.model,
                prompt_hash=self.prompt(language).hash,
                language=language,
                source=source,
                status=status,
                used_source=used,
                text=text,
                error=error,
                attempts=0,  # counted by the store
                tokens_in=t_in,
                tokens_out=t_out,
            )
        )


def _apply(item: ScoredPaper, out: Outcome) -> None:
    item.summary_status = out.status
    item.summary = out.text
    item.summary_note = out.note
    item.summary_model = out.model


def _error_message(exc: Any) -> str:
    body = getattr(exc, "body", None)
    if isinstance(body, dict):
        err = body.get("error", body)
        if isinstance(err, dict) and err.get("message"):
            return str(err["message"])
    return str(getattr(exc, "message", "") or exc)


def _short(text: str, limit: int = 160) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"
