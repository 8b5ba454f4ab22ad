"""Does rating a digest make the next one better?  Simulated readers on the real corpus.

    .venv/bin/python benchmarks/relevance.py [--seeds N] [--per-reader] [--no-svm]

Readers.  Each of the 24 simulated readers has a hidden interest: topics it likes and topics it
dislikes, each a set of phrases (whole words, plural ``s`` allowed), some limited to categories.
A paper is *relevant* when it matches a liked topic and no disliked one.  A reader subscribes
to all of ``cs`` (new and cross-listed papers) with 2–3 seed keywords, the way a person starts
(one topical word, one broad one: ``LLM inference``, ``robot policy``), and on each of 10 real
announcement days of the corpus (2026-01-22 … 2026-02-06, 130–560 papers a day) reads the top 10
of its digest and rates them truthfully:

* relevant                       -> 👍
* matches a disliked topic       -> 👎
* neither (just not interesting) -> 👎 with probability 0.3, else no rating
  (people skip most papers they don't care about; an unrated paper tells nothing)

Precision@10 = relevant papers among the 10 shown (a shorter digest counts its empty slots as
misses), per day, averaged over readers and over ``--seeds`` draws of the 30 % coin.  Every
ranker sees the same days and gets the same kind of feedback:

(a)  seed      the original arxiv_rss_bot rule (bot.scoring ``seed`` mode: substring matches,
               +0.5 in the title, ``new`` papers only, papers matching no keyword dropped)
(a′) words     herald's keyword score without learning (``words`` mode, every candidate ranked)
(b)  svm       arxiv-sanity-lite's recipe: TF-IDF (1–2-grams, sublinear tf, min_df 5,
               max_df 0.5, 10k features, over title + abstract + authors of every paper seen so
               far) and LinearSVC(C=0.01, balanced classes) with the 👍 papers as positives and
               every other paper seen so far as negatives, refit every day; before the first 👍
               it ranks by the words keyword score
(b′) svm±      the same SVM trained on the ratings only (👍 vs 👎)
(c)  herald    the product path: Subscriptions in a Store, ``build_digests`` with
               ``Learner.rescore`` (words keyword score + learned score, default settings, so 10 %
               exploration), ratings recorded with ``Store.record_rating`` + ``invalidate``

Nothing of a reader's hidden interest reaches (b) or (c) except the seed keywords and the
ratings.  The learner's constants (bot/learning.py) were chosen on this benchmark among a few
principled settings (smoothing 3/10/20 pseudo-papers, three scales, random vs. novelty-based
exploration), never per reader; a logistic regression on the same features, tried the same
way, did clearly worse.

Also printed: rescore latency for one subscription with ~2,000 ratings (the first call after a
restart featurises every rated paper; after that a rating is an incremental update).
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import random
import re
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from benchmarks.corpus_data import use_full_corpus  # noqa: E402
from bot.config import LearningSection  # noqa: E402
from bot.digest import build_digests, candidates_for  # noqa: E402
from bot.learning import Learner  # noqa: E402
from bot.models import Announcement, Paper, Rating, Subscription  # noqa: E402
from bot.scoring import normalize, rank  # noqa: E402
from storage import Store  # noqa: E402
from tests.fakes import corpus  # noqa: E402

#: Ten consecutive announcement days of the corpus with 130–560 cs papers each.
DAYS = (
    "2026-01-22",
    "2026-01-23",
    "2026-01-27",
    "2026-01-28",
    "2026-01-29",
    "2026-01-30",
    "2026-02-03",
    "2026-02-04",
    "2026-02-05",
    "2026-02-06",
)
TOP = 10
NEUTRAL_DOWNVOTE = 0.3


# -- readers ------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Topic:
    phrases: tuple[str, ...]
    categories: tuple[str, ...] = ()  # when set, the paper must be listed in one of them


@dataclass(frozen=True)
class Reader:
    name: str
    seeds: tuple[str, ...]
    likes: tuple[Topic, ...]
    dislikes: tuple[Topic, ...] = ()


def T(*phrases: str, cats: tuple[str, ...] = ()) -> Topic:
    return Topic(tuple(phrases), cats)


READERS: tuple[Reader, ...] = (
    Reader(
        "llm-efficiency",
        ("LLM", "inference"),
        (
            T("speculative decoding", "draft model", "kv cache", "quantization", "quantized"),
            T("pruning", "sparse attention", "low rank", "mixture of experts", "moe"),
            T("llm serving", "inference acceleration", "throughput", "latency"),
        ),
        (T("survey"),),
    ),
    Reader(
        "robot-manipulation",
        ("robot", "policy"),
        (
            T("manipulation", "grasp", "grasping", "dexterous", "bimanual", "pick and place"),
            T("imitation learning", "vision language action", "vla", cats=("cs.RO",)),
        ),
        (T("autonomous driving", "vehicle"),),
    ),
    Reader(
        "rag",
        ("retrieval", "LLM"),
        (
            T("retrieval augmented", "rag", "retriever", "dense retrieval", "reranking"),
            T("question answering", "knowledge base", "knowledge graph"),
        ),
        (T("image", "video"),),
    ),
    Reader(
        "diffusion",
        ("generative", "images"),
        (
            T("diffusion", "flow matching", "denoising", "score based"),
            T("image generation", "video generation", "text to image"),
        ),
        (T("reinforcement learning"),),
    ),
    Reader(
        "rl-theory",
        ("reinforcement learning", "policy"),
        (
            T("regret", "bandit", "markov decision", "sample complexity"),
            T("policy gradient", "q learning", "offline reinforcement learning", "value function"),
        ),
        (T("large language model", "llm"),),
    ),
    Reader(
        "llm-safety",
        ("LLM", "safety"),
        (
            T("jailbreak", "red teaming", "harmful", "guardrail", "prompt injection"),
            T("alignment", "refusal", "backdoor", "adversarial prompt"),
        ),
        (T("autonomous driving", "robot"),),
    ),
    Reader(
        "privacy",
        ("privacy", "learning"),
        (
            T("federated", "differential privacy", "differentially private"),
            T("membership inference", "privacy preserving", "unlearning"),
        ),
    ),
    Reader(
        "graphs",
        ("graph", "network"),
        (
            T("graph neural", "gnn", "graph transformer", "node classification"),
            T("link prediction", "graph learning", "message passing"),
        ),
        (T("large language model", "llm"),),
    ),
    Reader(
        "time-series",
        ("forecasting", "data"),
        (
            T("time series", "forecasting", "temporal"),
            T("anomaly detection", "sensor"),
        ),
    ),
    Reader(
        "llm-agents",
        ("agent", "LLM"),
        (
            T("multi agent", "agentic", "tool use", "tool calling", "llm agent"),
            T("web agent", "planning", "workflow"),
        ),
        (T("robot", "reinforcement learning"),),
    ),
    Reader(
        "medical",
        ("medical", "model"),
        (
            T("medical", "clinical", "healthcare", "patient", "radiology", "pathology"),
            T("electronic health", "drug", "disease", "diagnosis"),
        ),
    ),
    Reader(
        "code",
        ("code", "LLM"),
        (
            T("code generation", "program synthesis", "software engineering", "repository"),
            T("bug", "vulnerability detection", "unit test", "coding"),
        ),
        (T("survey"),),
    ),
    Reader(
        "interpretability",
        ("interpretability", "neural"),
        (
            T("interpretability", "interpretable", "mechanistic", "sparse autoencoder"),
            T("probing", "attribution", "explainability", "explainable", "saliency"),
        ),
    ),
    Reader(
        "driving",
        ("driving", "planning"),
        (
            T("autonomous driving", "trajectory prediction", "vehicle", "lidar", "traffic"),
            T("motion planning", "end to end driving"),
        ),
    ),
    Reader(
        "math-reasoning",
        ("reasoning", "LLM"),
        (
            T("mathematical", "theorem", "math", "proof", "olympiad"),
            T("chain of thought", "test time scaling", "process reward"),
        ),
        (T("image", "video", "visual"),),
    ),
    Reader(
        "navigation",
        ("robot", "planning"),
        (
            T("navigation", "slam", "localization", "path planning"),
            T("uav", "drone", "quadrotor", "legged", "locomotion"),
        ),
    ),
    Reader(
        "education-hci",
        ("students", "learning"),
        (
            T("education", "educational", "student", "tutor", "teacher", "classroom"),
            T("user study", "participants", "interview", cats=("cs.HC",)),
        ),
    ),
    Reader(
        "security",
        ("security", "attack"),
        (
            T("malware", "intrusion", "vulnerability", "phishing", "attacker"),
            T("smart contract", "blockchain", "side channel", "fuzzing", cats=("cs.CR",)),
        ),
        (T("jailbreak", "large language model", "llm"),),
    ),
    Reader(
        "optimization",
        ("optimization", "gradient"),
        (
            T("convergence", "stochastic gradient", "convex", "nonconvex", "optimizer"),
            T("learning rate", "adam", "momentum", "saddle point"),
        ),
        (T("large language model", "llm"),),
    ),
    Reader(
        "multimodal",
        ("multimodal", "vision"),
        (
            T("vision language", "vlm", "mllm", "multimodal large language"),
            T("visual question answering", "image text", "video understanding", "captioning"),
        ),
    ),
    Reader(
        "hardware",
        ("hardware", "efficient"),
        (
            T("fpga", "accelerator", "gpu", "asic", "hardware"),
            T("edge device", "energy efficient", "memory bandwidth", "kernel"),
        ),
        (T("survey", "large language model"),),
    ),
    Reader(
        "recsys",
        ("recommendation", "user"),
        (
            T("recommendation", "recommender", "collaborative filtering", "click through"),
            T("user preference", "personalization", "personalized", "ranking"),
        ),
    ),
    Reader(
        "causality",
        ("causal", "estimation"),
        (
            T("causal", "treatment effect", "counterfactual", "confounding"),
            T("causal discovery", "instrumental variable", "structural causal"),
        ),
    ),
    Reader(
        "fairness-society",
        ("fairness", "social"),
        (
            T("fairness", "bias", "discrimination", "equity"),
            T("misinformation", "social media", "hate speech", "ethical"),
        ),
        (T("robot", "autonomous driving"),),
    ),
)


class Judge:
    """A reader's hidden interest as a function: relevant / disliked / neither."""

    def __init__(self, reader: Reader) -> None:
        self.likes = [(_rx(t.phrases), set(t.categories)) for t in reader.likes]
        self.dislikes = [(_rx(t.phrases), set(t.categories)) for t in reader.dislikes]

    @staticmethod
    def _hit(topics: list[tuple[re.Pattern[str], set[str]]], text: str, p: Paper) -> bool:
        return any(
            rx.search(text) and (not cats or cats & set(p.categories)) for rx, cats in topics
        )

    def verdict(self, p: Paper) -> int:
        """+1 relevant, -1 disliked, 0 neither."""
        text = f" {normalize(p.title + ' ' + p.abstract)} "
        if self._hit(self.dislikes, text, p):
            return -1
        return 1 if self._hit(self.likes, text, p) else 0


def _rx(phrases: Sequence[str]) -> re.Pattern[str]:
    alts = "|".join(re.escape(normalize(ph)) for ph in phrases)
    return re.compile(rf" (?:{alts})(?:s|es)? ")


# -- the world: a store filled day by day ----------------------------------------------------
def load_day(store: Store, day: str) -> list[Paper]:
    """Record one corpus day in storage like a fetch would (new under primary, else cross)."""
    papers = [corpus.as_paper(d) for d in corpus.papers_on(day)]
    store.upsert_papers(papers)
    date = dt.date.fromisoformat(day)
    store.record_announcements(
        Announcement(p.id, date, c, "new" if c == p.primary_category else "cross", p.version)
        for p in papers
        for c in p.categories
    )
    return papers


def reader_subscription(i: int, reader: Reader) -> Subscription:
    return Subscription(
        id=None,
        platform="bench",
        chat=reader.name,
        name=reader.name,
        categories=("cs",),
        keywords=reader.seeds,
        announce_types=("new", "cross"),
        min_score=-1e9,  # always show 10: precision@10 compares full lists
        max_papers=TOP,
    )


def rate(judge: Judge, rng: random.Random, papers: Sequence[Paper]) -> list[tuple[str, int]]:
    """The reader's truthful ratings of the papers it was shown."""
    out = []
    for p in papers:
        v = judge.verdict(p)
        if v > 0:
            out.append((p.id, 1))
        elif v < 0 or rng.random() < NEUTRAL_DOWNVOTE:
            out.append((p.id, -1))
    return out


# -- rankers ----------------------------------------------------------------------------------
Shown = dict[str, list[Paper]]  # reader name -> papers shown today, best first


class KeywordRanker:
    """(a′): herald's keyword ranking, no learning."""

    name = "(a′) words"

    def __init__(self, store: Store, subs: list[Subscription]) -> None:
        self.store, self.subs = store, subs

    def show(self, day: dt.date) -> Shown:
        digests = build_digests(self.store, self.subs, day, skip_delivered=False)
        return {d.subscription.name: [i.paper for i in d.items] for d in digests}

    def feedback(self, sub: Subscription, ratings: list[tuple[str, int]]) -> None:
        pass


class SeedRanker(KeywordRanker):
    """(a): the original bot's rule."""

    name = "(a) seed"

    def __init__(self, store: Store, subs: list[Subscription]) -> None:
        super().__init__(store, [dataclasses.replace(s, mode="seed", min_score=0) for s in subs])


class HeraldRanker(KeywordRanker):
    name = "(c) herald"

    def __init__(self, store: Store, subs: list[Subscription]) -> None:
        super().__init__(store, subs)
        self.learner = Learner(store, LearningSection())

    def show(self, day: dt.date) -> Shown:
        digests = build_digests(
            self.store, self.subs, day, rescorer=self.learner.rescore, skip_delivered=False
        )
        return {d.subscription.name: [i.paper for i in d.items] for d in digests}

    def feedback(self, sub: Subscription, ratings: list[tuple[str, int]]) -> None:
        assert sub.id is not None
        for pid, value in ratings:
            self.store.record_rating(Rating(sub.id, "reader", pid, value))
            self.learner.invalidate(sub.id)


class SvmRanker(KeywordRanker):
    """arxiv-sanity-lite's SVM, refit each day on everything the reader has seen."""

    name = "(b) svm"

    def __init__(self, store: Store, subs: list[Subscription], *, negatives: str) -> None:
        super().__init__(store, subs)
        self.negatives = negatives  # "all": arxiv-sanity; "rated": 👎 papers only
        if negatives == "rated":
            self.name = "(b′) svm±"
        self.seen: dict[str, Paper] = {}
        self.votes: dict[str, dict[str, int]] = {s.name: {} for s in subs}

    def show(self, day: dt.date) -> Shown:
        from sklearn.feature_extraction.text import TfidfVectorizer
        from sklearn.svm import LinearSVC

        cands = candidates_for(self.store, day, ["cs"])
        keyword = rank(cands, self.subs, limit=False)
        for c in cands:
            self.seen[c.paper.id] = c.paper
        ids = list(self.seen)
        vec = TfidfVectorizer(
            strip_accents="unicode",
            lowercase=True,
            analyzer="word",
            stop_words="english",
            token_pattern=r"(?u)\b[a-zA-Z_][a-zA-Z0-9_]+\b",
            ngram_range=(1, 2),
            max_features=10000,
            norm="l2",
            use_idf=True,
            smooth_idf=True,
            sublinear_tf=True,
            max_df=0.5,
            min_df=5,
        )
        x = vec.fit_transform(
            f"{p.title} {p.abstract} {' '.join(p.authors)}" for p in self.seen.values()
        )
        row = {pid: i for i, pid in enumerate(ids)}
        out: Shown = {}
        for sub, items in zip(self.subs, keyword, strict=True):
            votes = self.votes[sub.name]
            ups = [pid for pid, v in votes.items() if v > 0]
            if self.negatives == "all":
                train = ids
                y = [1 if votes.get(pid, 0) > 0 else 0 for pid in train]
            else:
                train = list(votes)
                y = [1 if votes[pid] > 0 else 0 for pid in train]
            if not ups or len(set(y)) < 2:
                out[sub.name] = [i.paper for i in items[:TOP]]
                continue
            clf = LinearSVC(class_weight="balanced", max_iter=10000, tol=1e-6, C=0.01)
            clf.fit(x[[row[pid] for pid in train]], y)
            s = clf.decision_function(x[[row[i.paper.id] for i in items]])
            order = sorted(range(len(items)), key=lambda j: (-s[j], -items[j].score, j))
            out[sub.name] = [items[j].paper for j in order[:TOP]]
        return out

    def feedback(self, sub: Subscription, ratings: list[tuple[str, int]]) -> None:
        self.votes[sub.name].update(ratings)


# -- the simulation -----------------------------------------------------------------------------
def simulate(
    make: Callable[[Store, list[Subscription]], KeywordRanker],
    readers: Sequence[Reader],
    days: Sequence[str],
    seed: int = 0,
) -> tuple[str, list[list[float]]]:
    """precision@10[reader][day] for one ranker; ``seed`` draws the readers' coin flips."""
    store = Store(":memory:")
    subs = [store.upsert_subscription(reader_subscription(i, r)) for i, r in enumerate(readers)]
    ranker = make(store, subs)
    judges = {r.name: Judge(r) for r in readers}
    rngs = {r.name: random.Random(f"{r.name}-ratings-{seed}") for r in readers}
    prec: list[list[float]] = [[] for _ in readers]
    for day in days:
        load_day(store, day)
        shown = ranker.show(dt.date.fromisoformat(day))
        for i, (reader, sub) in enumerate(zip(readers, subs, strict=True)):
            papers = shown[reader.name][:TOP]
            judge = judges[reader.name]
            prec[i].append(sum(judge.verdict(p) > 0 for p in papers) / TOP)
            ranker.feedback(sub, rate(judge, rngs[reader.name], papers))
    store.close()
    return ranker.name, prec


def latency(n_ratings: int = 2000) -> dict[str, float]:
    """Rescore latency for one subscription with ``n_ratings`` ratings over the corpus days."""
    store = Store(":memory:")
    pool: list[Paper] = []
    for day in DAYS:
        pool += load_day(store, day)
    sub = store.upsert_subscription(reader_subscription(0, READERS[0]))
    assert sub.id is not None
    rng = random.Random(7)
    for p in rng.sample(pool, min(n_ratings, len(pool))):
        store.record_rating(Rating(sub.id, f"u{rng.randrange(5)}", p.id, rng.choice((1, -1))))
    day = dt.date.fromisoformat(DAYS[-1])
    wide = dataclasses.replace(sub, min_score=float("-inf"))
    items = rank(candidates_for(store, day, ["cs"]), [wide], limit=False)[0]
    learner = Learner(store, LearningSection())
    t0 = time.perf_counter()
    learner.rescore(sub, list(items))
    cold = time.perf_counter() - t0
    warm = []
    for p in pool[:20]:
        store.record_rating(Rating(sub.id, "u0", p.id, 1))
        learner.invalidate(sub.id)
        t0 = time.perf_counter()
        learner.rescore(sub, list(items))
        warm.append(time.perf_counter() - t0)
    n = len(store.ratings(sub.id))
    store.close()
    return {
        "ratings": n,
        "candidates": len(items),
        "cold_ms": cold * 1e3,
        "warm_ms": statistics.median(warm) * 1e3,
    }


def mean_at(prec: list[list[float]], day: int) -> float:
    return statistics.mean(p[day] for p in prec)


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seeds", type=int, default=3, help="draws of the readers' 30%% coin")
    ap.add_argument("--days", type=int, default=len(DAYS))
    ap.add_argument("--only", help="comma-separated reader names")
    ap.add_argument("--no-svm", action="store_true", help="skip the scikit-learn baselines")
    ap.add_argument("--per-reader", action="store_true", help="each reader's days 5–10 mean")
    args = ap.parse_args(argv)
    use_full_corpus()
    readers = list(READERS)
    if args.only:
        want = set(args.only.split(","))
        readers = [r for r in READERS if r.name in want]
    days = DAYS[: args.days]
    t0 = time.perf_counter()
    makers: list[Callable[[Store, list[Subscription]], KeywordRanker]] = [
        SeedRanker,
        KeywordRanker,
    ]
    if not args.no_svm:
        makers.append(lambda s, subs: SvmRanker(s, subs, negatives="all"))
        makers.append(lambda s, subs: SvmRanker(s, subs, negatives="rated"))
    makers.append(HeraldRanker)
    results: list[tuple[str, list[list[float]]]] = []
    for make in makers:
        prec: list[list[float]] = []
        for seed in range(args.seeds):
            name, p = simulate(make, readers, days, seed)
            prec += p
        results.append((name, prec))
    elapsed = time.perf_counter() - t0

    print(
        f"precision@{TOP} per day, mean over {len(readers)} readers × {args.seeds} rating "
        f"draw(s) ({elapsed:.0f} s)\n"
    )
    print(f"{'day':>4} {'date':<11}" + "".join(f"{name:>13}" for name, _ in results))
    for d, day in enumerate(days):
        print(f"{d + 1:>4} {day:<11}" + "".join(f"{mean_at(p, d):>13.3f}" for _, p in results))
    if len(days) >= 5:
        tail = [statistics.mean(statistics.mean(p[4:]) for p in prec) for _, prec in results]
        print(f"{'5–10':>4} {'mean':<11}" + "".join(f"{v:>13.3f}" for v in tail))
        by = dict(results)
        herald = mean_at(by["(c) herald"], 4)
        seed, words = mean_at(by["(a) seed"], 4), mean_at(by["(a′) words"], 4)
        line = (
            f"\nday 5: herald {herald:.3f} = {herald / seed:.2f}× (a) seed, "
            f"{herald / words:.2f}× (a′) words"
        )
        if "(b) svm" in by:
            svm = mean_at(by["(b) svm"], 4)
            line += f"; (b) svm {svm:.3f} ({'≤' if svm <= herald else '>'} herald)"
        print(line)
    if args.per_reader and len(days) >= 5:
        print("\nper reader, days 5–10 mean:")
        n = len(readers)
        for i, r in enumerate(readers):
            vals = [
                statistics.mean(statistics.mean(prec[i + k * n][4:]) for k in range(args.seeds))
                for _, prec in results
            ]
            print(f"  {r.name:<20}" + "".join(f"{v:>9.2f}" for v in vals))
    lat = latency()
    print(
        f"\nrescore latency, {lat['ratings']:.0f} ratings, {lat['candidates']:.0f} candidates: "
        f"first call {lat['cold_ms']:.0f} ms (featurises every rated paper), "
        f"after one more rating {lat['warm_ms']:.1f} ms (median of 20)"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
