"""Ask the paper: a question about a paper, answered from its full text, with page-cited sources.

The PDF is fetched once per paper version (through the arXiv throttle, like every arXiv
request), read into one text per page with the references dropped (the summaries' own PDF
reading), and stored compressed.  For each question the text is cut into passages that never
span pages, a BM25 ranker (``bm25s``) picks the passages that match the question best, and only
those go to the LLM with the instruction to answer from them, give page numbers and say plainly
when the paper does not say.  The reply shows the answer and its sources (page, short quote).

Cost and abuse: answers are cached per (paper version, model, prompt, normalised question, and
the earlier turns of a follow-up); a chat may ask ``ask.daily_questions_per_chat`` questions a
day; the LLM's daily budget (``summaries.daily_budget``) applies; overlong questions, PDFs over
``ask.max_pdf_mb`` and papers without a PDF get a clear message.  Every question and answer is
stored with its conversation (platform, chat, thread), so a follow-up carries the earlier turns.

Nothing here knows a chat platform: adapters hand the core a :class:`Question`.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
import re
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, replace
from importlib import resources
from typing import Any

import numpy as np

from bot.arxiv_source import NotAPdf, NotFound, PdfTooLarge
from bot.config import AskSection
from bot.errors import CommandError, HeraldError, SourceError
from bot.ids import InvalidArxivId, parse_arxiv_id
from bot.models import Paper
from bot.scoring import normalize
from bot.summaries import LLMError, Summarizer, count_tokens, extract_pdf_pages
from storage import AskTurn, CachedAnswer, PaperRef, Store

log = logging.getLogger(__name__)

QUOTE_CHARS = 200
MAX_SOURCES = 3
MIN_TEXT_CHARS = 200  # less than this from a whole PDF: a scan, or no text layer
INDEX_CACHE = 32  # papers whose passage index is kept in memory
_NOT_FOUND = re.compile(r"^\W*(?:not in the paper|the paper does not say)", re.I)
_CITED = re.compile(r"\b(?:pp?\.|pages?)\s*(\d{1,4})(?:\s*[-–]\s*(\d{1,4}))?", re.I)
_SENTENCE = re.compile(r"(?<=[.!?])\s+(?=[A-Z0-9(\[“\"'])")
_HYPHENATED = re.compile(r"([a-z])-\n([a-z])")
_COMMENT = re.compile(r"<!--.*?-->", re.S)
_TOKEN = r"(?u)\b\w\w+\b"
#: Function words, question words and words about the paper itself ("what do the authors
#: propose in this paper"): they say nothing about where the answer is.
STOPWORDS = tuple(
    """a about above after again against all also am an and any are as at be because been
    before being below between both but by can could did do does doing done down during each
    either etc few for from further had has have having he her here hers him his how however i
    if in into is it its itself just may me might more most much must my no nor not now of off
    on once only or other our ours out over own same shall she should so some such than that
    the their theirs them then there these they this those through thus to too under until up
    upon us use used uses using very via was we were what when where whether which while who
    whom whose why will with within without would yet you your
    paper papers article work authors author propose proposed proposes present presents
    presented describe describes described say says said tell show shows shown explain
    explains mention mentions mentioned discuss discusses discussed according give gives""".split()
)


# -- values --------------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Question:
    """Someone's question about a paper (``paper`` in any id form; ``""``: not known yet), in
    a conversation (``thread``; None for a fresh ``/ask`` or the CLI, ``chat`` None)."""

    platform: str
    chat: str | None
    user: str
    paper: str
    text: str
    thread: str | None = None


@dataclass(frozen=True, slots=True)
class Passage:
    """A piece of a paper's text, within one page (1-based)."""

    index: int
    page: int
    text: str


@dataclass(frozen=True, slots=True)
class Source:
    page: int
    quote: str


@dataclass(frozen=True, slots=True)
class Answer:
    paper: Paper
    question: str
    text: str
    sources: tuple[Source, ...]
    found: bool  # False: the paper does not say
    model: str
    cached: bool = False
    turn_id: int | None = None
    prompt_tokens: int = 0


# -- text → passages -----------------------------------------------------------------------------
def reflow(page: str) -> str:
    """A page as PDF extraction gives it (hard-wrapped lines) as running text."""
    text = _HYPHENATED.sub(r"\1\2", page.replace("\r", ""))
    return " ".join(text.split())


def sentences(text: str) -> list[str]:
    return [s for s in _SENTENCE.split(text) if s.strip()]


def split_passages(pages: Sequence[str], words: int = 120) -> list[Passage]:
    """Each page cut into passages of about ``words`` words on sentence boundaries.  A passage
    never spans two pages (so it has one page number); a short tail joins the passage before
    it, an overlong sentence is cut by words, so none is longer than ``2⅓ × words``."""
    out: list[Passage] = []
    for page_no, page in enumerate(pages, 1):
        chunks: list[list[str]] = []
        current: list[str] = []
        for sentence in sentences(reflow(page)):
            tokens = sentence.split()
            if current and len(current) + len(tokens) > words + words // 2:
                chunks.append(current)  # a long sentence starts the next passage
                current = []
            while len(tokens) > 2 * words:  # a run-on "sentence" (a table, a formula dump)
                if current:
                    chunks.append(current)
                    current = []
                chunks.append(tokens[:words])
                tokens = tokens[words:]
            current += tokens
            if len(current) >= words:
                chunks.append(current)
                current = []
        if current:
            if chunks and len(current) < words // 3:
                chunks[-1] += current
            else:
                chunks.append(current)
        out += [Passage(len(out) + i, page_no, " ".join(c)) for i, c in enumerate(chunks)]
    return out


# -- lexical ranking -----------------------------------------------------------------------------
_KEEP_S = ("ss", "us", "is", "as", "ys", "ics")


def stem(word: str) -> str:
    """A light English stemmer (plural, -ing, -ed, -ly), enough to match "models" with
    "model" and "trained" with "training" in a question."""
    w = word
    if len(w) > 3 and w.endswith("s") and not w.endswith(_KEEP_S):
        w = w[:-3] + "y" if w.endswith("ies") and len(w) > 4 else w[:-1]
    for suffix in ("ing", "ed", "ly"):
        if w.endswith(suffix) and len(w) - len(suffix) >= 4:
            w = w[: -len(suffix)]
            if len(w) >= 4 and w[-1] == w[-2] and w[-1] not in "lsz":
                w = w[:-1]  # "running" → "run", but "embedding" → "embedd" → "embed"
            break
    return w


def _stems(words: list[str]) -> list[str]:
    return [stem(w) for w in words]


def terms(texts: Sequence[str]) -> list[list[str]]:
    """Lower-cased, stop-word-free, stemmed tokens of each text (what BM25 ranks on)."""
    import bm25s

    tokens: list[list[str]] = bm25s.tokenize(
        list(texts),
        token_pattern=_TOKEN,
        stopwords=list(STOPWORDS),
        stemmer=_stems,
        return_ids=False,
        show_progress=False,
    )
    return tokens


class PassageIndex:
    """BM25 over one paper's passages."""

    def __init__(self, passages: Sequence[Passage]) -> None:
        import bm25s

        self.passages = list(passages)
        self._bm25 = bm25s.BM25()
        self._bm25.index(terms([p.text for p in self.passages]), show_progress=False)

    def scores(self, text: str) -> np.ndarray[Any, np.dtype[np.float64]]:
        ids = self._bm25.get_tokens_ids(terms([text])[0])
        if not ids or not self.passages:
            return np.zeros(len(self.passages))
        return np.asarray(self._bm25.get_scores_from_ids(ids), dtype=np.float64)

    def top(self, question: str, k: int, context: str = "") -> list[Passage]:
        """The ``k`` passages that match ``question`` best (``context``, e.g. the question a
        follow-up follows, counts half).  Nothing matches: the paper's first passages."""
        scores = self.scores(question)
        if context:
            scores = scores + 0.5 * self.scores(context)
        # Stable: equal scores keep the paper's order.
        order = sorted(range(len(self.passages)), key=lambda i: (-scores[i], i))
        return [self.passages[i] for i in order[:k]]


# -- prompts and replies -------------------------------------------------------------------------
def system_prompt() -> str:
    return resources.files("bot").joinpath("prompts", "ask_en.txt").read_text("utf-8").strip()


def prompt_body(paper: Paper, passages: Sequence[Passage], question: str) -> str:
    """The user message: the paper, the numbered passages with their pages, the question."""
    lines = [f"Paper: {' '.join(paper.title.split())} (arXiv:{paper.versioned_id})", ""]
    lines.append("Passages from the paper's full text:")
    for n, p in enumerate(passages, 1):
        lines += [f"[{n}] (p. {p.page}) {p.text}", ""]
    lines.append(f"Question: {question}")
    return "\n".join(lines)


def cited_pages(text: str) -> list[int]:
    """Pages an answer cites ("(p. 3)", "pp. 4-5", "page 7"), in order of first mention."""
    pages: list[int] = []
    for m in _CITED.finditer(text):
        lo = int(m.group(1))
        hi = int(m.group(2)) if m.group(2) else lo
        for page in range(lo, min(hi, lo + 5) + 1):
            if page not in pages:
                pages.append(page)
    return pages


def quote_from(passage: Passage, *texts: str) -> str:
    """The passage's sentence sharing most words with ``texts`` (the answer first, then the
    question), clipped to a short quote."""
    wanted = [set(t) for t in terms(texts)] if texts else []
    best, best_score = "", -1.0
    candidates = sentences(passage.text) or [passage.text]
    for sentence, words in zip(candidates, terms(candidates), strict=True):
        have = set(words)
        score = sum(len(have & w) / (i + 1) for i, w in enumerate(wanted))
        if score > best_score:
            best, best_score = sentence, score
    return clip(best, QUOTE_CHARS)


def clip(text: str, limit: int) -> str:
    text = " ".join(text.split())
    if len(text) <= limit:
        return text
    cut = text[: limit - 1]
    space = cut.rfind(" ")
    return (cut[:space] if space > limit // 2 else cut).rstrip(",;: ") + "…"


def answer_text(answer: Answer) -> str:
    """An answer as every surface shows it: the question, the paper, the answer, the sources."""
    paper = answer.paper
    lines = [
        f"❓ {' '.join(answer.question.split())}",
        f"📄 {' '.join(paper.title.split())} ({paper.versioned_id})",
        "",
        answer.text,
    ]
    if answer.sources:
        lines += ["", "Sources:"]
        lines += [f"• p. {s.page}: “{s.quote}”" for s in answer.sources]
    return "\n".join(lines)


def thread_question(text: str) -> tuple[str, str]:
    """``"2601.19278 what data?"`` → ``("2601.19278", "what data?")``; no id in front →
    ``("", text)``.  Any id form works, and Slack's ``<url|label>`` links too."""
    text = text.strip()
    head, _, rest = text.partition(" ")
    token = head.strip("<>").split("|", 1)[0].rstrip(",:;.?")
    try:
        parse_arxiv_id(token)
    except InvalidArxivId:
        return "", text
    return token, rest.strip()


def may_be_question(text: str, *, addressed: bool) -> bool:
    """Could a message in a thread be a question for the bot?  Only then is it worth finding
    out what the thread is about: addressed to the bot, a question mark, or a paper's id in
    front."""
    return addressed or "?" in text or bool(thread_question(text)[0])


# -- the asker -----------------------------------------------------------------------------------
PdfFetcher = Callable[..., bytes]  # (paper_id, version, *, max_bytes=None) -> PDF bytes


class Asker:
    """Answers :class:`Question` values; blocking (network, LLM, storage), so callers run it in
    a worker thread."""

    def __init__(
        self,
        cfg: AskSection,
        store: Store,
        summarizer: Summarizer,
        *,
        lookup: Callable[[str], Paper],
        fetch_pdf: PdfFetcher,
    ) -> None:
        self.cfg = cfg
        self.store = store
        self.summarizer = summarizer
        self.lookup = lookup
        self.fetch_pdf = fetch_pdf
        self._prompt = system_prompt()
        self.prompt_hash = hashlib.sha256(self._prompt.encode()).hexdigest()[:12]
        self._locks = _KeyLocks()
        self._indexes: OrderedDict[tuple[str, int], PassageIndex] = OrderedDict()
        self._indexes_lock = threading.Lock()

    @property
    def model(self) -> str:
        return self.summarizer.cfg.model

    # -- a chat's question ------------------------------------------------------------------------
    def from_thread(
        self,
        platform: str,
        chat: str,
        user: str,
        thread: str,
        text: str,
        *,
        about: str | None,
        addressed: bool,
    ) -> Question | None:
        """A message in a thread (Slack) or a reply (Telegram) as a question, or None when it
        is not one for us.

        ``about``: the paper of the message the thread hangs off (``""``: a digest's header,
        None: not a message of ours); ``addressed``: the message is plainly for the bot (a
        reply to it, a mention).  A message that starts with an arXiv id asks about that paper;
        otherwise one that is addressed or has a question mark asks about ``about``, or about
        the paper of the conversation's last question; with no paper to go on, a question
        (a "?") to us or under our own message is answered with how to name the paper.
        """
        if not may_be_question(text, addressed=addressed):
            return None
        ref, rest = thread_question(text)
        if ref:
            return Question(platform, chat, user, ref, rest, thread)
        if about:
            return Question(platform, chat, user, about, text, thread)
        earlier = self.store.conversation(platform, chat, thread, limit=1)
        if earlier:
            return Question(platform, chat, user, earlier[-1].paper_id, text, thread)
        if "?" in text and (addressed or about is not None):
            return Question(platform, chat, user, "", text, thread)
        return None

    def paper_for_message(self, platform: str, chat: str, message_id: str) -> PaperRef | None:
        return self.store.paper_for_message(platform, chat, message_id)

    def answered(
        self,
        platform: str,
        chat: str,
        message_id: str,
        paper_id: str,
        thread: str | None,
        turn_id: int | None,
    ) -> None:
        """The answer went out as ``message_id``: a reply to it continues the conversation
        (which starts there when the question had no thread)."""
        self.store.link_answer(platform, chat, message_id, paper_id, thread or message_id, turn_id)

    # -- answering -----------------------------------------------------------------------------
    def ask(self, q: Question, usage_hint: str = "") -> Answer:
        """Answer ``q`` (UserError, with a message for the person, for what they can fix)."""
        cfg = self.cfg
        if not cfg.enabled:
            raise CommandError("Questions about papers are turned off for this bot (ask.enabled).")
        question = " ".join(q.text.split())
        if not question:
            raise CommandError(f"What would you like to know? {usage_hint}".strip())
        if len(question) > cfg.max_question_chars:
            raise CommandError(
                f"That question is {len(question):,} characters long; please keep it under "
                f"{cfg.max_question_chars:,}."
            )
        if not q.paper:
            raise CommandError(
                "Which paper is your question about? Start it with the paper's arXiv id, "
                f"e.g. “2601.19278 {clip(question, 60)}”. {usage_hint}".strip()
            )
        self._check_chat_budget(q)
        paper = self.lookup(q.paper)
        earlier = self._earlier(q, paper)
        key = self._key(paper, question, earlier)
        with self._locks(key):
            cached = self.store.cached_answer(key)
            if cached is not None:
                answer = Answer(
                    paper,
                    question,
                    cached.text,
                    tuple(Source(p, s) for p, s in cached.sources),
                    cached.found,
                    cached.model,
                    cached=True,
                )
            else:
                answer = self._answer(paper, question, earlier, key)
        return replace(answer, turn_id=self._remember(q, answer))

    def _check_chat_budget(self, q: Question) -> None:
        limit = self.cfg.daily_questions_per_chat
        if q.chat is None or limit <= 0:
            return
        today = dt.datetime.now(dt.UTC).date()
        if self.store.questions_asked(q.platform, q.chat, today) >= limit:
            raise CommandError(
                f"This chat has asked its {limit} questions for today — that is the daily "
                "limit (ask.daily_questions_per_chat). Questions open again tomorrow (UTC); "
                "answers already given stay in their threads."
            )

    def _earlier(self, q: Question, paper: Paper) -> list[AskTurn]:
        if q.chat is None or q.thread is None or self.cfg.max_turns == 0:
            return []
        return self.store.conversation(
            q.platform, q.chat, q.thread, paper.id, limit=self.cfg.max_turns
        )

    def _key(self, paper: Paper, question: str, earlier: Sequence[AskTurn]) -> str:
        parts = [paper.id, str(paper.version), self.model, self.prompt_hash]
        parts += [str(self.cfg.passages), str(self.cfg.passage_words), normalize(question)]
        parts += [f"{t.question}\n{t.answer}" for t in earlier]
        return hashlib.sha256("\x1f".join(parts).encode()).hexdigest()[:32]

    def _answer(self, paper: Paper, question: str, earlier: Sequence[AskTurn], key: str) -> Answer:
        summaries = self.summarizer.cfg
        if not summaries.enabled:
            raise CommandError(
                "Questions need the LLM, and it is turned off for this bot (summaries.enabled)."
            )
        if not self.summarizer.api_key:
            raise CommandError(
                "Questions need the LLM, and no API key is configured (the environment "
                f"variable {summaries.api_key_env})."
            )
        spent = self.summarizer.budget.spent()
        if spent:
            raise CommandError(
                f"Today's LLM budget is spent ({spent}); questions work again tomorrow (UTC)."
            )
        index = self.index(paper)
        context = earlier[-1].question if earlier else ""
        passages = index.top(question, self.cfg.passages, context)
        messages = [{"role": "system", "content": self._prompt}]
        for turn in earlier:
            messages += [
                {"role": "user", "content": turn.question},
                {"role": "assistant", "content": turn.answer},
            ]
        messages.append({"role": "user", "content": prompt_body(paper, passages, question)})
        try:
            done = self.summarizer.complete(
                messages, paper_id=paper.id, max_tokens=self.cfg.max_output_tokens
            )
        except LLMError as exc:
            log.warning("question about %s failed: %s", paper.id, exc)
            raise HeraldError(f"the LLM did not answer ({exc}); please try again later") from None
        text = _COMMENT.sub("", done.text).strip()
        if not text:
            raise HeraldError("the LLM returned an empty answer; please try again later")
        found = not _NOT_FOUND.match(text)
        sources = self._sources(text, question, passages) if found else ()
        self.store.save_answer(
            CachedAnswer(
                key=key,
                paper_id=paper.id,
                version=paper.version,
                model=self.model,
                question=normalize(question),
                text=text,
                found=found,
                sources=tuple((s.page, s.quote) for s in sources),
                tokens_in=done.tokens_in,
                tokens_out=done.tokens_out,
            )
        )
        tokens = sum(count_tokens(m["content"]) for m in messages)
        return Answer(paper, question, text, sources, found, self.model, prompt_tokens=tokens)

    def _sources(self, text: str, question: str, passages: Sequence[Passage]) -> tuple[Source, ...]:
        """The passages the answer cites by page (best match first), else the two best."""
        cited = cited_pages(text)
        chosen = [p for p in passages if p.page in cited][:MAX_SOURCES]
        if not chosen:
            chosen = list(passages[:2])
        return tuple(Source(p.page, quote_from(p, text, question)) for p in chosen)

    def _remember(self, q: Question, answer: Answer) -> int | None:
        if q.chat is None:
            return None
        return self.store.add_turn(
            AskTurn(
                id=None,
                platform=q.platform,
                chat=q.chat,
                thread=q.thread,
                user=q.user,
                paper_id=answer.paper.id,
                question=answer.question,
                answer=answer.text,
            )
        )

    # -- the paper's text ----------------------------------------------------------------------
    def index(self, paper: Paper) -> PassageIndex:
        """The paper's passages, ranked by BM25 (built from the stored text, or the PDF)."""
        key = (paper.id, paper.version)
        with self._indexes_lock:
            index = self._indexes.get(key)
            if index is not None:
                self._indexes.move_to_end(key)
                return index
        passages = split_passages(self.pages(paper), self.cfg.passage_words)
        if not passages:
            raise CommandError(f"The PDF of {paper.versioned_id} has no text I can read.")
        index = PassageIndex(passages)
        with self._indexes_lock:
            self._indexes[key] = index
            while len(self._indexes) > INDEX_CACHE:
                self._indexes.popitem(last=False)
        return index

    def pages(self, paper: Paper) -> tuple[str, ...]:
        """The paper version's text per page: stored, or read from its PDF once."""
        with self._locks(f"pdf:{paper.versioned_id}"):
            stored = self.store.paper_text(paper.id, paper.version)
            if stored is not None:
                return stored.pages
            limit = int(self.cfg.max_pdf_mb * 1_000_000)
            name = paper.versioned_id
            try:
                data = self.fetch_pdf(paper.id, paper.version, max_bytes=limit)
            except PdfTooLarge as exc:
                raise CommandError(
                    f"The PDF of {name} is too large to read here ({exc}; ask.max_pdf_mb), "
                    "so I can't answer from its full text."
                ) from None
            except NotFound:
                raise CommandError(
                    f"arXiv has no PDF for {name} (some papers only have their source, or were "
                    "withdrawn), so I can't answer from its full text."
                ) from None
            except NotAPdf:
                raise CommandError(
                    f"The PDF of {name} cannot be read (arXiv sent something that is not a "
                    "PDF), so I can't answer from its full text."
                ) from None
            except SourceError as exc:
                raise HeraldError(
                    f"I could not get the PDF of {name} from arXiv ({exc}); please try again later"
                ) from None
            try:
                pages = extract_pdf_pages(data)
            except SourceError as exc:
                raise CommandError(
                    f"The PDF of {name} cannot be read ({exc}), so I can't answer from its "
                    "full text."
                ) from None
            if sum(len(p.strip()) for p in pages) < MIN_TEXT_CHARS:
                raise CommandError(
                    f"The PDF of {name} has no text I can read (a scanned paper?), so I can't "
                    "answer from its full text."
                )
            self.store.save_paper_text(paper.id, paper.version, pages, len(data))
            return tuple(pages)


class _KeyLocks:
    """``with locks(key):`` one holder per key (one download per paper, one LLM call per
    question), forgotten when nobody holds or waits for it."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._locks: dict[str, tuple[threading.Lock, int]] = {}

    @contextmanager
    def __call__(self, key: str) -> Iterator[None]:
        with self._lock:
            lock, users = self._locks.get(key, (threading.Lock(), 0))
            self._locks[key] = (lock, users + 1)
        try:
            with lock:
                yield
        finally:
            with self._lock:
                lock, users = self._locks[key]
                if users <= 1:
                    del self._locks[key]
                else:
                    self._locks[key] = (lock, users - 1)
