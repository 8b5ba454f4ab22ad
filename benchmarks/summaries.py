"""Summaries: LLM calls vs unique cache keys across many overlapping digests, and wall time of
a parallel batch — against the fake OpenAI-compatible server, with the real `openai` client.

    .venv/bin/python benchmarks/summaries.py [--subs 1000] [--top-n 5]

Targets (issue 3): calls / unique keys == 1.00, keys counted independently of the product's
key function (paper, version, model, prompt text, language, source); 40 summaries at 200 ms
latency with max_workers=8 in <= 2 s.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import random
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


from bot.config import default_config_text, parse_config, read_yaml  # noqa: E402
from bot.engine import Engine  # noqa: E402
from tests.fakes.arxiv import FakeArxiv  # noqa: E402
from tests.fakes.openai_api import FakeOpenAI  # noqa: E402

DAY = "2026-01-22"
KEY_ENV = "HERALD_BENCH_LLM_KEY"
TOPICS = (
    "LLM, reinforcement learning, diffusion, inference, training, attention, retrieval, agents, "
    "benchmark, robot, speech, translation, graph, quantization, sparse, distributed, vision, "
    "reasoning, alignment, safety, federated, compression, kernel, optimization, evaluation"
).split(", ")


def engine_for(tmp: Path, arxiv: FakeArxiv, llm: FakeOpenAI, **summaries: object) -> Engine:
    data = read_yaml(default_config_text())
    data["database"] = str(tmp / "bench.db")
    data["arxiv"].update(
        rss_url=arxiv.rss_url_template,
        api_url=arxiv.api_url,
        pdf_url=arxiv.pdf_url_template,
        request_interval_s=0.01,
    )
    data["summaries"].update(base_url=llm.base_url, api_key_env=KEY_ENV, **summaries)
    data["learning"]["enabled"] = False
    return Engine(parse_config(data, "<bench>", tmp))


def prompt_text(language: str) -> str:
    """The shipped prompt file for a language, read straight from disk (not via bot/)."""
    path = ROOT / "bot" / "prompts" / f"summary_{language}.txt"
    return path.read_text(encoding="utf-8") if path.is_file() else f"en+{language}"


def overlap(subs: int, top_n: int, rng: random.Random) -> None:
    with FakeArxiv(day=DAY) as arxiv, FakeOpenAI() as llm, tempfile.TemporaryDirectory() as tmp:
        os.environ[KEY_ENV] = llm.api_key
        eng = engine_for(Path(tmp), arxiv, llm, top_n=top_n, max_workers=8)
        assert eng.fetch().status == "ok"
        base = eng.default_subscription()
        chats = []
        for i in range(subs):
            kws = tuple(rng.sample(TOPICS, 4))
            lang = "zh" if i % 10 == 0 else "en"  # a tenth of the chats read Chinese
            chats.append(
                eng.store.upsert_subscription(
                    replace(
                        base,
                        id=None,
                        platform="bench",
                        chat=str(i),
                        name="",
                        feed_token="",
                        keywords=kws,
                        language=lang,
                        max_papers=10,
                    )
                )
            )
        day = dt.date.fromisoformat(DAY)
        t0 = time.perf_counter()
        digests = eng.digests(chats, day)
        t_rank = time.perf_counter() - t0
        # Counted independently of the product's key function: what a summary depends on.
        cfg = eng.config.summaries
        keys = {
            (
                i.paper.id,
                i.paper.version,
                cfg.model,
                prompt_text(d.subscription.language or cfg.language),
                d.subscription.language or cfg.language,
                cfg.source,
            )
            for d in digests
            for i in d.items[:top_n]
        }
        t0 = time.perf_counter()
        eng.summarize_digests(digests)
        t_sum = time.perf_counter() - t0
        items = sum(min(len(d.items), top_n) for d in digests)
        print(
            f"{subs:,} subscriptions on {DAY}: {items:,} top-{top_n} digest items, "
            f"ranked in {t_rank:.2f} s"
        )
        print(f"  unique (paper, version, model, prompt, language, source) keys: {len(keys):,}")
        print(
            f"  LLM calls made: {llm.requests:,}   ratio calls / keys = "
            f"{llm.requests / max(len(keys), 1):.2f}  (target 1.00)"
        )
        bodies = llm.distinct_request_bodies()
        print(
            f"  distinct request bodies the LLM saw: {bodies:,} "
            f"({llm.requests - bodies} repeated: the same prompt sent twice)"
        )
        print(f"  summarized in {t_sum:.1f} s")
        # A second run (the next process, say) is all cache hits.
        again = eng.digests(chats, day)
        before = llm.requests
        eng.summarize_digests(again)
        print(f"  second run over the same digests: {llm.requests - before} new calls")


def parallel(n: int, latency: float, workers: int) -> None:
    with FakeArxiv(day=DAY) as arxiv, FakeOpenAI() as llm, tempfile.TemporaryDirectory() as tmp:
        os.environ[KEY_ENV] = llm.api_key
        llm.latency = latency
        eng = engine_for(Path(tmp), arxiv, llm, top_n=n, max_workers=workers)
        assert eng.fetch().status == "ok"
        sub = replace(eng.default_subscription(), max_papers=n, min_score=0.0)
        digest = eng.digests([sub], dt.date.fromisoformat(DAY))[0]
        assert len(digest.items) >= n
        digest.items = digest.items[:n]
        t0 = time.perf_counter()
        eng.summarize_digests([digest])
        wall = time.perf_counter() - t0
        ok = sum(1 for i in digest.items if i.summary)
        floor = -(-n // workers) * latency
        print(
            f"{n} summaries, {latency * 1000:.0f} ms fake latency, max_workers={workers}: "
            f"{wall:.2f} s wall (target <= 2 s; ideal {floor:.2f} s), {ok}/{n} ok, "
            f"peak concurrency {llm.max_in_flight}"
        )


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--subs", type=int, default=1000)
    ap.add_argument("--top-n", type=int, default=5)
    args = ap.parse_args()
    overlap(args.subs, args.top_n, random.Random(3))
    parallel(40, 0.2, 8)


if __name__ == "__main__":
    main()
