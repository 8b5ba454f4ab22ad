"""Scoring speed, like for like, side by side in one run on real papers:

* the original script's rule (case-insensitive substrings, +0.5 in the title, first abstract
  line) as its per-subscription per-keyword loop, against herald's ``seed`` mode, which
  implements the same rule in one pass; their top-30 lists are checked to be identical;
* herald's default whole-word ``words`` mode, reported on its own against the single-pass
  floor (a bare pyahocorasick scan), since it computes a different (stricter) score.

Also ingest speed and the peak memory of ``herald run``.

    .venv/bin/python benchmarks/scoring.py [--papers 2000] [--subs 1000] [--keywords 30]

Needs the full corpus (see benchmarks/corpus_data.py). Targets (issue 2): herald >= 50x faster
than the original loop, and within 3x of the single-pass floor.  Not a test: it prints numbers.
"""

from __future__ import annotations

import argparse
import dataclasses
import gc
import os
import random
import re
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import ahocorasick  # noqa: E402

from benchmarks.corpus_data import use_full_corpus  # noqa: E402
from bot.models import Paper, Subscription  # noqa: E402
from bot.scoring import Listing, _gc_paused, normalize, rank, score_all, seed_abstract  # noqa: E402
from tests.fakes import corpus  # noqa: E402

STOP = set("a an the of for and in on with to via from by at as is are we our using based".split())


def real_papers(n: int, rng: random.Random) -> list[Paper]:
    rows = [p for p in corpus.load_papers() if p["categories"]]
    rng.shuffle(rows)
    return [corpus.as_paper(p) for p in rows[:n]]


def title_phrases(papers: list[Paper]) -> list[str]:
    """1-3 word phrases from real titles (no stop words at the edges)."""
    phrases: set[str] = set()
    for p in papers:
        words = re.findall(r"[A-Za-z][A-Za-z0-9-]+", p.title)
        for n in (1, 2, 2, 3):
            for i in range(len(words) - n + 1):
                gram = words[i : i + n]
                if gram[0].lower() in STOP or gram[-1].lower() in STOP or len(gram[0]) < 3:
                    continue
                phrases.add(" ".join(gram))
    return sorted(phrases)


def make_subs(
    n: int, k: int, phrases: list[str], rng: random.Random, mode: str = "words"
) -> list[Subscription]:
    # Real users share popular phrases: draw with a skew so the same keyword recurs.
    weights = [1.0 / (1 + (i % 500)) for i in range(len(phrases))]
    subs = []
    for i in range(n):
        kws = tuple(dict.fromkeys(rng.choices(phrases, weights=weights, k=k)))
        subs.append(
            Subscription(
                id=i,
                platform="bench",
                chat=str(i),
                categories=("cs",),
                keywords=kws,
                min_score=1.0,
                max_papers=30,
                mode=mode,
            )
        )
    return subs


def original_loop(papers: list[Paper], subs: list[Subscription]) -> list[list[tuple[float, str]]]:
    """The original arxiv_rss_bot rule, per subscription, per paper, per keyword (its regex
    kept only the abstract's first line)."""
    out = []
    for s in subs:
        scored = []
        for p in papers:
            text = f"{p.title} {seed_abstract(p.abstract)}".lower()
            title = p.title.lower()
            score = 0.0
            for kw in s.keywords:
                if kw.lower() in text:
                    score += 1.0
            for kw in s.keywords:
                if kw.lower() in title:
                    score += 0.5
            if score >= s.min_score:
                scored.append((score, p.id))
        scored.sort(key=lambda x: -x[0])
        out.append(scored[: s.max_papers])
    return out


def floor_pass(papers: list[Paper], subs: list[Subscription]) -> int:
    """One plain pyahocorasick pass over all distinct keywords: matching only, the floor."""
    auto = ahocorasick.Automaton()
    for kw in {k.lower() for s in subs for k in s.keywords}:
        auto.add_word(kw, kw)
    auto.make_automaton()
    hits = 0
    for p in papers:
        hits += len({kw for _, kw in auto.iter(f"{p.title} {p.abstract}".lower())})
    return hits


def timed(fn, *args):  # type: ignore[no-untyped-def]
    """Wall time of one call; every contender runs with the collector paused, as rank() does."""
    gc.collect()
    with _gc_paused():
        t0 = time.perf_counter()
        result = fn(*args)
        return time.perf_counter() - t0, result


def herald_scores(cands: list[Listing], subs: list[Subscription]) -> list[list[tuple[float, str]]]:
    """Herald's scoring pass with the same output as the original: top-N (score, paper id)."""
    ranking = score_all(cands, subs)
    return [
        [(score, cands[ci].paper.id) for score, ci in ranking.top(si)] for si in range(len(subs))
    ]


def ingest(n_papers: int) -> tuple[float, float, int]:
    from storage import Store

    papers = [corpus.as_paper(p) for p in corpus.load_papers()[:n_papers]]
    with tempfile.TemporaryDirectory() as tmp:
        store = Store(Path(tmp) / "bench.db")
        t0 = time.perf_counter()
        store.upsert_papers(papers)
        first = time.perf_counter() - t0
        t0 = time.perf_counter()
        store.upsert_papers(papers)
        again = time.perf_counter() - t0
        count = store.count_papers()
        store.close()
    return first, again, count


def herald_run_peak_mb() -> float:
    """Peak RSS of a real `herald run` (fetch + rank + outputs) against the fake arXiv."""
    from tests.fakes.arxiv import FakeArxiv

    with FakeArxiv(day="2026-01-22") as fake, tempfile.TemporaryDirectory() as tmp:
        cfg = Path(tmp) / "config.yaml"
        cfg.write_text(
            "arxiv:\n"
            f"  rss_url: '{fake.rss_url_template}'\n  api_url: '{fake.api_url}'\n"
            f"  pdf_url: '{fake.pdf_url_template}'\n  request_interval_s: 0.05\n"
            "summaries: {enabled: false}\noutputs: {console: false}\n"
        )
        env = {**os.environ, "HERALD_CONFIG": str(cfg)}
        # VmHWM, not ru_maxrss: the latter keeps the parent's size from before exec().
        code = (
            "import re, sys; from bot.cli import main\n"
            "try:\n    main(['run'])\nexcept SystemExit:\n    pass\n"
            "hwm = re.search(r'VmHWM:\\s+(\\d+)', open('/proc/self/status').read()).group(1)\n"
            "print(hwm, file=sys.stderr)"
        )
        res = subprocess.run(
            [sys.executable, "-c", code],
            env=env,
            cwd=tmp,
            capture_output=True,
            text=True,
            check=False,
        )
        kb = int(res.stderr.strip().splitlines()[-1])
    return kb / 1024


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--papers", type=int, default=2000)
    ap.add_argument("--subs", type=int, default=1000)
    ap.add_argument("--keywords", type=int, default=30)
    ap.add_argument("--seed", type=int, default=7)
    args = ap.parse_args()
    use_full_corpus()
    rng = random.Random(args.seed)

    papers = real_papers(args.papers, rng)
    phrases = title_phrases(papers)
    subs = make_subs(args.subs, args.keywords, phrases, rng)
    cands = [Listing(p, (("cs.LG", "new"),)) for p in papers]
    gc.collect()
    gc.freeze()  # the corpus loaded above is long-lived, as in a running service
    distinct = len({normalize(k) for s in subs for k in s.keywords})
    print(
        f"{len(papers):,} real papers, {len(subs):,} subscriptions x {args.keywords} keywords "
        f"({distinct:,} distinct, drawn from {len(phrases):,} real title phrases)"
    )

    seed_subs = [dataclasses.replace(x, mode="seed") for x in subs]
    best = {}
    for name, fn, a in (
        ("seed", herald_scores, (cands, seed_subs)),
        ("words", herald_scores, (cands, subs)),
        ("rank", rank, (cands, subs)),
        ("floor", floor_pass, (papers, subs)),
    ):
        runs = [timed(fn, *a) for _ in range(3)]
        best[name] = min(runs, key=lambda r: r[0])
    t_orig, orig = timed(original_loop, papers, seed_subs)
    t_seed, t_words = best["seed"][0], best["words"][0]
    t_rank, t_floor = best["rank"][0], best["floor"][0]
    items = sum(len(r) for r in best["rank"][1])
    same = sum(h == o for h, o in zip(best["seed"][1], orig, strict=True))
    print("best of 3 (the original loop: one run)")
    print("like for like: the original's substring rule, top-30 (score, paper) per subscription")
    print(f"  original per-subscription per-keyword loop:        {t_orig:8.3f} s")
    print(f"  herald seed mode (one Aho-Corasick pass):          {t_seed:8.3f} s")
    print(
        f"  => {t_orig / t_seed:,.0f}x faster (target >= 50x); output identical for "
        f"{same:,}/{len(subs):,} subscriptions"
    )
    if same != len(subs):
        print("  !! seed mode and the original disagree: the comparison above is not valid")
    hits = best["floor"][1]
    print("herald's whole-word rule (a different, stricter score), on its own:")
    print(f"  herald words mode, top-30 scores:                  {t_words:8.3f} s")
    print(f"  herald rank (the same + {items:,} explained items): {t_rank:8.3f} s")
    print(f"  floor: one bare pyahocorasick pass ({hits:,} hits): {t_floor:8.3f} s")
    print(
        f"  => words mode is {t_words / t_floor:.2f}x the single-pass floor (target <= 3x); "
        f"rank {t_rank / t_floor:.2f}x"
    )

    first, again, count = ingest(20_000)
    print(
        f"ingest {count:,} papers: {first:.2f} s first time, {again:.2f} s re-ingest (no changes)"
    )
    peak = herald_run_peak_mb()
    print(f"peak RSS of `herald run` (562-paper day, 4 categories, outputs written): {peak:.0f} MB")
    print(
        f"this process peak RSS: {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB"
    )


if __name__ == "__main__":
    main()
