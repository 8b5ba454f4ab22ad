"""Ask the paper: does retrieval find the passage that holds the answer, how much of the paper
goes to the LLM, and how long a question takes — on multi-page PDFs of real corpus text.

    .venv/bin/python benchmarks/ask.py [--docs 12] [--sections 14] [--questions 12] [--k 4]

Documents.  Each is a real, multi-page PDF built with fpdf2: ``--sections`` real abstracts of
the corpus (several papers of one arXiv category, so the sections share a vocabulary as a
paper's sections do; one per numbered section, under their own titles), so where every
sentence sits — and so which passage holds an answer — is known.  Only Latin-1 abstracts of
at least 120 words are used (the PDF core fonts), from the full 20,000-paper corpus when it
is present (benchmarks/corpus_data.py), else tests/data.

Questions.  ``--questions`` per document, each written from one sentence of one section: a
template question ("What does the paper say about A, B and C?", "How does A relate to B?",
…) over content words drawn at random from that sentence, one of them re-inflected (plural ↔
singular), so the question never repeats the sentence.  Two styles: three words from the
sentence, and the harder two.  The passage(s) holding the sentence are the answer.  These are
lexical questions — the regime BM25 is built for; paraphrases sharing no word with the paper
would score lower, which is why the prompt tells the LLM to say when the passages don't answer.

The product path measures it: bot.summaries.extract_pdf_pages → bot.ask.split_passages
(ask.passage_words) → bot.ask.PassageIndex (bm25s) → top k; the prompt is bot.ask's own
(system prompt + the k passages + the question) against the whole text in one prompt (system
prompt + every page + the question), both counted as the product counts tokens (4 characters
a token).  Latency runs bot.ask.Asker end to end against the OpenAI fake with ``--llm-delay``:
a paper's first question (PDF → text → stored → index → LLM), a later question (stored text,
LLM), a repeated question (answer cache), and the whole-text prompt through the same client.

Targets (issue 16): recall@k of the answer passage >= 0.9 at the chosen k; prompt tokens per
question <= 25 % of sending the whole text.
"""

from __future__ import annotations

import argparse
import os
import random
import re
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))


from benchmarks.corpus_data import use_full_corpus  # noqa: E402
from bot.app import parse_config  # noqa: E402
from bot.ask import (  # noqa: E402
    Asker,
    PassageIndex,
    Question,
    prompt_body,
    split_passages,
    system_prompt,
)
from bot.config import default_config_text, read_yaml  # noqa: E402
from bot.models import Paper  # noqa: E402
from bot.summaries import Summarizer, count_tokens, extract_pdf_pages  # noqa: E402
from storage import Store  # noqa: E402
from tests.fakes import corpus  # noqa: E402
from tests.fakes.openai_api import FakeOpenAI  # noqa: E402

KEY_ENV = "HERALD_BENCH_LLM_KEY"
KS = (1, 2, 3, 4, 5, 6, 8)
_SENTENCE = re.compile(r"(?<=[.!?])\s+(?=[A-Z])")
_WORD = re.compile(r"[A-Za-z][A-Za-z-]{3,}")
_COMMON = frozenset(
    """this that these those with from have been were which where while their there into
    than then also such each more most other some only both between across about over under
    using used based show shows shown propose proposed present paper work results method
    methods approach model models study new novel however further first second well high
    large small within without they them when what will would could should can may""".split()
)
TEMPLATES_3 = (
    "What does the paper say about {a}, {b} and {c}?",
    "How are {a} and {b} used for {c}?",
    "What is reported on {a} {b} in terms of {c}?",
)
TEMPLATES_2 = (
    "What does the paper say about {a} and {b}?",
    "How does {a} relate to {b}?",
)


@dataclass
class Doc:
    id: str
    paper: Paper
    pdf: bytes
    sections: list[tuple[str, str]]  # (title, abstract)


@dataclass
class Item:
    doc: Doc
    question: str
    sentence: str
    style: str


def latin1(text: str) -> bool:
    try:
        text.encode("latin-1")
    except UnicodeEncodeError:
        return False
    return True


def pick_sections(n_docs: int, per_doc: int, rng: random.Random) -> list[list[dict]]:
    """``n_docs`` groups of ``per_doc`` abstracts, each group from one primary category (like
    the sections of one paper, they share a vocabulary: harder than unrelated abstracts)."""
    by_cat: dict[str, list[dict]] = {}
    for p in corpus.load_papers():
        if latin1(p["title"] + p["abstract"]) and len(p["abstract"].split()) >= 120:
            by_cat.setdefault(p["primary_category"], []).append(p)
    cats = sorted(c for c, ps in by_cat.items() if len(ps) >= per_doc)
    if not cats:
        sys.exit("no category has enough usable abstracts; ask for fewer --sections")
    docs = []
    for i in range(n_docs):
        cat = cats[i % len(cats)] if len(cats) < n_docs else rng.choice(cats)
        pool = by_cat[cat]
        rng.shuffle(pool)
        docs.append(pool[:per_doc])
        del pool[:per_doc]
        if len(pool) < per_doc:
            cats.remove(cat)
            if not cats and len(docs) < n_docs:
                sys.exit("not enough usable abstracts; ask for fewer --docs/--sections")
    return docs


def build_doc(index: int, rows: list[dict]) -> Doc:
    from fpdf import FPDF
    from fpdf.enums import XPos, YPos

    def norm(text: str) -> str:
        return " ".join(text.split())

    sections = [(norm(r["title"]), norm(r["abstract"])) for r in rows]
    title = f"Collected abstracts {index + 1}: {sections[0][0]}"
    pdf = FPDF(format="letter")
    pdf.set_margins(25, 25, 25)
    pdf.set_auto_page_break(True, margin=22)
    pdf.add_page()

    def para(text: str, size: float, style: str = "", h: float = 5.2) -> None:
        pdf.set_font("Times", style, size)
        pdf.multi_cell(0, h, text, align="J", new_x=XPos.LMARGIN, new_y=YPos.NEXT)

    para(title, 15, "B", 7)
    pdf.ln(4)
    for number, (head, body) in enumerate(sections, 1):
        para(f"{number} {head}", 12, "B", 6.5)
        para(body, 10.5)
        pdf.ln(3)
    doc_id = f"2601.9{index:04d}"
    paper = Paper(doc_id, 1, title, ("Benchmark",), ("cs.LG",), sections[0][1])
    return Doc(doc_id, paper, bytes(pdf.output()), sections)


def write_questions(doc: Doc, n: int, rng: random.Random) -> list[Item]:
    items: list[Item] = []
    candidates = []
    for _, body in doc.sections:
        for s in _SENTENCE.split(body):
            words = [w for w in _WORD.findall(s) if w.lower() not in _COMMON]
            if len(s.split()) >= 12 and len(set(w.lower() for w in words)) >= 4:
                candidates.append((s, list(dict.fromkeys(words))))
    for sentence, words in rng.sample(candidates, min(n, len(candidates))):
        for style, count, templates in (("3 words", 3, TEMPLATES_3), ("2 words", 2, TEMPLATES_2)):
            chosen = [w.lower() for w in rng.sample(words, count)]
            chosen[0] = reinflect(chosen[0])
            question = rng.choice(templates).format(**dict(zip("abc", chosen, strict=False)))
            items.append(Item(doc, question, sentence, style))
    return items


def reinflect(word: str) -> str:
    if word.endswith("ies"):
        return word[:-3] + "y"
    if word.endswith("s") and not word.endswith("ss"):
        return word[:-1]
    if word.endswith("y"):
        return word[:-1] + "ies"
    return word + "s"


def holds(passage_text: str, sentence: str) -> bool:
    """Does the passage hold the sentence (its middle 8 words, as PDF extraction spaced them)?"""
    words = sentence.split()
    mid = len(words) // 2
    window = " ".join(words[max(0, mid - 4) : mid + 4])
    return window in " ".join(passage_text.split())


def retrieval(docs: list[Doc], items: list[Item], words: int) -> dict[str, object]:
    system = system_prompt()
    indexes = {}
    pages_of = {}
    for d in docs:
        pages = extract_pdf_pages(d.pdf)
        pages_of[d.id] = pages
        indexes[d.id] = PassageIndex(split_passages(pages, words))
    hits: dict[str, dict[int, int]] = {}
    totals: dict[str, int] = {}
    ratio: list[float] = []
    ours_tokens: list[int] = []
    whole_tokens: list[int] = []
    unanswerable = 0
    timings: list[float] = []
    for it in items:
        index = indexes[it.doc.id]
        if not any(holds(p.text, it.sentence) for p in index.passages):
            unanswerable += 1  # the sentence did not survive extraction intact: skip it
            continue
        t0 = time.perf_counter()
        ranked = index.top(it.question, max(KS))
        timings.append(time.perf_counter() - t0)
        first = next((i for i, p in enumerate(ranked) if holds(p.text, it.sentence)), None)
        style = hits.setdefault(it.style, {k: 0 for k in KS})
        totals[it.style] = totals.get(it.style, 0) + 1
        for k in KS:
            if first is not None and first < k:
                style[k] += 1
        if it.style == "3 words":
            ours = count_tokens(system) + count_tokens(
                prompt_body(it.doc.paper, ranked[: ARGS.k], it.question)
            )
            whole = count_tokens(system) + count_tokens(
                f"Paper: {it.doc.paper.title}\n\nFull text:\n"
                + "\n".join(pages_of[it.doc.id])
                + f"\n\nQuestion: {it.question}"
            )
            ours_tokens.append(ours)
            whole_tokens.append(whole)
            ratio.append(ours / whole)
    return {
        "hits": hits,
        "totals": totals,
        "ratio": ratio,
        "ours": ours_tokens,
        "whole": whole_tokens,
        "skipped": unanswerable,
        "pages": [len(p) for p in pages_of.values()],
        "passages": [len(i.passages) for i in indexes.values()],
        "retrieve_ms": statistics.median(timings) * 1000 if timings else 0.0,
    }


def latency(docs: list[Doc], items: list[Item], delay: float, tmp: Path) -> dict[str, list[float]]:
    """End to end through bot.ask.Asker against the OpenAI fake (``delay`` s per call)."""
    by_id = {d.id: d for d in docs}
    out: dict[str, list[float]] = {"first": [], "later": [], "cached": [], "whole": []}
    with FakeOpenAI(latency=delay) as llm:
        os.environ[KEY_ENV] = llm.api_key or "sk"
        data = read_yaml(default_config_text())
        data["summaries"].update(base_url=llm.base_url, api_key_env=KEY_ENV, max_retries=0)
        data["ask"].update(daily_questions_per_chat=0, passages=ARGS.k)
        cfg = parse_config(data, "<bench>", tmp)
        store = Store(tmp / "ask.db")
        summarizer = Summarizer(cfg.summaries, store)

        def fetch(paper_id: str, version: int, *, max_bytes: int | None = None) -> bytes:
            return by_id[paper_id].pdf

        asker = Asker(
            cfg.ask, store, summarizer, lookup=lambda ref: by_id[ref].paper, fetch_pdf=fetch
        )
        summarizer.client()  # the openai client's one-off set-up is not a question's cost
        seen: set[str] = set()
        per_doc: dict[str, int] = {}
        for it in items:
            if it.style != "3 words" or per_doc.get(it.doc.id, 0) >= ARGS.latency_questions:
                continue
            per_doc[it.doc.id] = per_doc.get(it.doc.id, 0) + 1
            q = Question("bench", None, "bench", it.doc.id, it.question)
            t0 = time.perf_counter()
            asker.ask(q)
            took = time.perf_counter() - t0
            out["later" if it.doc.id in seen else "first"].append(took)
            seen.add(it.doc.id)
            t0 = time.perf_counter()
            asker.ask(q)
            out["cached"].append(time.perf_counter() - t0)
            pages = extract_pdf_pages(it.doc.pdf)
            messages = [
                {"role": "system", "content": system_prompt()},
                {
                    "role": "user",
                    "content": f"Paper: {it.doc.paper.title}\n\nFull text:\n"
                    + "\n".join(pages)
                    + f"\n\nQuestion: {it.question}",
                },
            ]
            t0 = time.perf_counter()
            summarizer.complete(messages, paper_id=it.doc.id, max_tokens=600)
            out["whole"].append(time.perf_counter() - t0)
        store.close()
    return out


def main() -> None:
    rng = random.Random(ARGS.seed)
    where = use_full_corpus(allow_test_data=True)
    t0 = time.perf_counter()
    docs = [
        build_doc(i, rows) for i, rows in enumerate(pick_sections(ARGS.docs, ARGS.sections, rng))
    ]
    items = [it for d in docs for it in write_questions(d, ARGS.questions, rng)]
    built = time.perf_counter() - t0
    r = retrieval(docs, items, ARGS.passage_words)
    pages, passages = r["pages"], r["passages"]
    assert isinstance(pages, list) and isinstance(passages, list)
    print(
        f"corpus: {where}\n{len(docs)} PDFs of {ARGS.sections} real abstracts each "
        f"({min(pages)}–{max(pages)} pages, {min(passages)}–{max(passages)} passages of "
        f"~{ARGS.passage_words} words), {len(items)} questions, built in {built:.1f} s"
    )
    if r["skipped"]:
        print(f"({r['skipped']} questions skipped: their sentence did not survive extraction)")
    hits, totals = r["hits"], r["totals"]
    assert isinstance(hits, dict) and isinstance(totals, dict)
    print("\nrecall@k of the passage holding the answer")
    print(f"{'question':<10}" + "".join(f"{'k=' + str(k):>8}" for k in KS) + f"{'n':>6}")
    for style in ("3 words", "2 words"):
        row = "".join(f"{hits[style][k] / totals[style]:>8.3f}" for k in KS)
        print(f"{style:<10}{row}{totals[style]:>6}")
    ratio, ours, whole = r["ratio"], r["ours"], r["whole"]
    assert isinstance(ratio, list) and isinstance(ours, list) and isinstance(whole, list)
    print(f"\nprompt tokens per question at k={ARGS.k} (system prompt + passages + question)")
    print(f"{'':<28}{'median':>10}{'mean':>10}{'max':>10}")
    print(
        f"{'ask (k passages)':<28}{statistics.median(ours):>10.0f}"
        f"{statistics.mean(ours):>10.0f}{max(ours):>10.0f}"
    )
    print(
        f"{'whole text':<28}{statistics.median(whole):>10.0f}"
        f"{statistics.mean(whole):>10.0f}{max(whole):>10.0f}"
    )
    print(
        f"{'ask / whole':<28}{statistics.median(ratio):>10.1%}"
        f"{statistics.mean(ratio):>10.1%}{max(ratio):>10.1%}"
    )
    print(f"retrieval alone (BM25 over one paper's passages): {r['retrieve_ms']:.2f} ms (median)")
    with tempfile.TemporaryDirectory() as tmp:
        lat = latency(docs, items, ARGS.llm_delay, Path(tmp))
    print(f"\nlatency per question, LLM fake delay {ARGS.llm_delay:g} s")
    print(f"{'':<44}{'median':>10}{'p95':>10}{'n':>6}")
    names = {
        "first": "first question on a paper (PDF→text→LLM)",
        "later": "later question (stored text)",
        "cached": "repeated question (answer cache)",
        "whole": "whole-text prompt, same LLM",
    }
    for key, label in names.items():
        xs = sorted(lat[key])
        if not xs:
            continue
        p95 = xs[min(len(xs) - 1, int(0.95 * len(xs)))]
        print(f"{label:<44}{statistics.median(xs) * 1000:>8.1f}ms{p95 * 1000:>8.1f}ms{len(xs):>6}")
    three = hits["3 words"][ARGS.k] / totals["3 words"]
    ok_recall = three >= 0.9
    ok_tokens = statistics.mean(ratio) <= 0.25
    print(
        f"\ntargets: recall@{ARGS.k} >= 0.9: {'yes' if ok_recall else 'NO'} ({three:.3f}); "
        f"prompt tokens <= 25 % of the whole text: {'yes' if ok_tokens else 'NO'} "
        f"({statistics.mean(ratio):.1%})"
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--docs", type=int, default=12)
    parser.add_argument("--sections", type=int, default=14)
    parser.add_argument("--questions", type=int, default=12, help="per document")
    parser.add_argument("--k", type=int, default=4, help="passages sent to the LLM")
    parser.add_argument("--passage-words", type=int, default=120)
    parser.add_argument("--llm-delay", type=float, default=0.3)
    parser.add_argument(
        "--latency-questions", type=int, default=4, help="per document, for the latency table"
    )
    parser.add_argument("--seed", type=int, default=16)
    ARGS = parser.parse_args()
    main()
