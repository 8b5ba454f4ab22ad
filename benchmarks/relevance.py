"""Does rating a digest make the next one better?  Simulated readers on the real corpus.

    .venv/bin/python benchmarks/relevance.py [--part main,noise,cold,latency] [--seeds N]
        [--half report|tune|all] [--before REV] [--no-svm] [--per-reader]

Run time on one core: about 9 minutes for everything with the default 3 seeds (main table
~3 min, noise table ~4 min, cold start ~1.5 min, latency a few seconds); ``--seeds 1`` about
a third of that.  ``--before REV`` adds the learner of git revision REV as one more column
(its ``bot/learning.py`` loaded beside the current one), so old and new are measured side by
side in one run.

Readers.  Four groups of simulated readers, each with a hidden interest that decides whether a
paper is *relevant*:

* common (24): topics it likes and dislikes as phrases (whole words, plural ``s`` allowed),
  some limited to categories; relevant = a liked topic and no disliked one.  It starts with
  2–3 seed keywords the way a person does (one topical word, one broad one: ``LLM
  inference``, ``robot policy``).
* near (8): the interest is not a bag of phrases but the neighbourhood of three papers from
  before day 1 (a niche: a paper and its two nearest neighbours, or two niches), measured in a
  128-dimensional LSA space of the whole corpus (scikit-learn TF-IDF + truncated SVD, nothing
  herald uses); relevant = cosine to the nearest of them above the threshold that makes 8 % of
  the days' papers relevant.  Seeds: the two heaviest words of its three papers.
* rare (10): a small field outside its keywords (biochemistry and materials, audio, finance,
  law and policy, neuroscience, …: 1–4 % of a day's papers); seed keyword ``learning`` only.
* rare-near (8): neighbourhoods as above holding 3 % of the papers; seed ``learning`` only.

On each of 10 real announcement days of the corpus (2026-01-22 … 2026-02-06, 130–560 cs papers a
day) a reader reads the top 10 of its digest and rates them:

* relevant -> 👍;  matches a disliked topic -> 👎
* neither  -> common and near readers: 👎 with probability 0.3, else no rating (people skip
  most papers they don't care about; an unrated paper tells nothing); rare readers: 👎 (they
  rate everything they are shown, so most of their early ratings are 👎)
* mis-taps: with rating noise n, each rating is flipped with probability n (seeded).

Precision@10 = relevant papers among the 10 shown (a shorter digest counts its empty slots as
misses), per day, averaged over readers and over ``--seeds`` draws of the coins.

Tuned on one half, reported on the other.  Every group is split in two by position (even:
*tune*, odd: *report*).  The learner's constants (bot/learning.py) are chosen by looking at the
tune half only; every table prints the report half unless ``--half`` says otherwise, and says
which half it shows.  (The constants before issue #18 were chosen on all 24 common readers.)

Rankers.  Nothing of a reader's hidden interest reaches (b) or (c) except the seed keywords,
the ratings and, for cold start, the papers it likes:

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

Tables.

1. main: common + near readers, truthful ratings, all rankers, days 1–10.
2. noise: rare + rare-near readers at rating noise 0 %, 5 %, 10 %, 15 %: herald and (b) svm per
   day, and the days 6–8 mean against the targets of issue #18.
3. cold start (issue #13): each reader hands over 5 papers it likes from before day 1 (drawn
   from its hidden interest) and rates nothing else.  Days 1–3 for (a′) words, (b) the SVM
   trained on the 5 papers against the day's papers, (c) herald with the 5 papers recorded as
   👍 ratings (a "like" is an ordinary 👍 of a paper that is never delivered).  Then, on days
   9–10: 5 likes + 3 rated days (the reader starts on day 6) against 8 rated days without likes
   (starts on day 1) and 3 rated days without likes.

Also printed: rescore latency for one subscription with ~2,000 ratings (the first call after a
restart featurises every rated paper; after that a rating is an incremental update).
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import functools
import importlib.util
import math
import random
import re
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

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
NOISE_LEVELS = (0.0, 0.05, 0.10, 0.15)
#: Papers a cold-start reader likes up front.
LIKES = 5
#: Days (1-based, inclusive) the noise targets of issue #18 are about.
NOISE_DAYS = (6, 8)
RARE_SEEDS = ("learning",)


# -- readers ------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Topic:
    phrases: tuple[str, ...]
    categories: tuple[str, ...] = ()  # when set, the paper must be listed in one of them


@dataclass(frozen=True)
class Reader:
    name: str
    seeds: tuple[str, ...]
    likes: tuple[Topic, ...] = ()
    dislikes: tuple[Topic, ...] = ()
    #: A neighbourhood reader: the papers whose LSA neighbourhood is its interest...
    anchors: tuple[str, ...] = ()
    #: ...and the cosine a paper needs with the nearest of them.
    radius: float = 0.0
    #: Rates every paper it is shown (👎 when not relevant), not only the ones it cares about.
    rates_all: bool = False


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

#: Small fields outside the seed keyword: 1–4 % of a day's cs papers each.
RARE_READERS: tuple[Reader, ...] = tuple(
    Reader(name, RARE_SEEDS, (T(*phrases),), rates_all=True)
    for name, phrases in (
        (
            "biochem-materials",
            (
                "molecule",
                "molecular",
                "protein",
                "drug discovery",
                "chemistry",
                "chemical",
                "materials science",
                "crystal",
                "enzyme",
                "ligand",
                "biomedical",
                "genomic",
                "single cell",
                "gene expression",
                "dna",
                "rna",
                "peptide",
            ),
        ),
        ("audio", ("speech", "audio", "music", "speaker", "acoustic", "sound")),
        (
            "finance",
            ("financial", "finance", "stock", "trading", "market", "portfolio", "economic"),
        ),
        ("law-policy", ("legal", "law", "court", "judicial", "regulation", "governance")),
        ("neuro", ("eeg", "fmri", "brain", "neuroscience", "neuron", "cortex", "spiking")),
        (
            "scientific-ml",
            (
                "partial differential",
                "pde",
                "neural operator",
                "fluid",
                "navier stokes",
                "physics informed",
                "turbulence",
            ),
        ),
        (
            "signals",
            (
                "wireless",
                "mimo",
                "channel estimation",
                "6g",
                "beamforming",
                "semantic communication",
                "radar",
            ),
        ),
        ("theory", ("theorem", "lemma", "conjecture", "combinatorial", "polynomial time")),
        ("3d-vision", ("point cloud", "3d reconstruction", "gaussian splatting", "nerf", "mesh")),
        (
            "earth",
            (
                "remote sensing",
                "satellite",
                "climate",
                "weather",
                "ocean",
                "wildfire",
                "flood",
                "precipitation",
            ),
        ),
    )
)


class Space:
    """The judge's own view of similarity: LSA (TF-IDF + truncated SVD) of the whole corpus."""

    def __init__(self) -> None:
        from sklearn.decomposition import TruncatedSVD
        from sklearn.feature_extraction.text import TfidfVectorizer

        docs = corpus.load_papers()
        self.ids = [d["base_id"] for d in docs]
        self.row = {pid: i for i, pid in enumerate(self.ids)}
        self.tfidf = TfidfVectorizer(
            stop_words="english",
            sublinear_tf=True,
            min_df=3,
            max_df=0.5,
            token_pattern=r"(?u)\b[a-zA-Z][a-zA-Z]+\b",
        )
        self.x = self.tfidf.fit_transform(f"{d['title']} {d['abstract']}" for d in docs)
        z = TruncatedSVD(n_components=128, random_state=0).fit_transform(self.x)
        self.z = z / np.maximum(np.linalg.norm(z, axis=1, keepdims=True), 1e-12)
        cs = [any(c.startswith("cs.") for c in d["categories"]) for d in docs]
        self.before = [
            i
            for i, d in enumerate(docs)
            if cs[i] and (d.get("announced") or "") < DAYS[0] and d.get("announced")
        ]
        days = set(DAYS)
        self.during = [i for i, d in enumerate(docs) if cs[i] and d.get("announced") in days]

    def nearest(self, anchors: Sequence[int], rows: Sequence[int]) -> np.ndarray:
        """Cosine of each row with the nearest anchor."""
        return np.max(self.z[list(rows)] @ self.z[list(anchors)].T, axis=1)

    def top_words(self, rows: Sequence[int], n: int) -> tuple[str, ...]:
        """The heaviest words the papers share (a person naming the interest in two words)."""
        x = self.x[list(rows)]
        shared = np.asarray((x > 0).sum(axis=0)).ravel() >= 2
        weights = np.asarray(x.sum(axis=0)).ravel() * np.where(shared, 1.0, 1e-3)
        names = self.tfidf.get_feature_names_out()
        return tuple(str(names[j]) for j in np.argsort(-weights, kind="stable")[:n])


@functools.lru_cache(maxsize=1)
def space() -> Space:
    return Space()


def near_readers(kind: str, n: int, share: float) -> tuple[Reader, ...]:
    """``n`` readers whose interest is the neighbourhood of three papers from before day 1."""
    sp = space()
    rng = random.Random(f"near-{kind}")
    out: list[Reader] = []
    for i in range(n):
        a = rng.choice(sp.before)
        sims = sp.nearest([a], sp.before)
        order = [sp.before[j] for j in np.argsort(-sims, kind="stable") if sp.before[j] != a]
        # Even: one niche (a paper and its two nearest neighbours); odd: two niches.
        anchors = [a, order[0], order[1]] if i % 2 == 0 else [a, order[0], rng.choice(sp.before)]
        radius = float(np.quantile(sp.nearest(anchors, sp.during), 1 - share))
        rare = kind == "rare"
        words = sp.top_words(anchors, 2)
        out.append(
            Reader(
                f"{'rare-' if rare else ''}near-{words[0]}",
                RARE_SEEDS if rare else words,
                anchors=tuple(sp.ids[j] for j in anchors),
                radius=radius,
                rates_all=rare,
            )
        )
    return tuple(out)


@functools.lru_cache(maxsize=1)
def groups() -> dict[str, tuple[Reader, ...]]:
    """Every group of readers, in a fixed order (see the module docstring)."""
    return {
        "common": READERS,
        "near": near_readers("common", 8, 0.08),
        "rare": RARE_READERS,
        "rare-near": near_readers("rare", 12, 0.03),
    }


def half(readers: Sequence[Reader], which: str) -> list[Reader]:
    """The tune half (even positions), the report half (odd) or all of a group."""
    if which == "all":
        return list(readers)
    return [r for i, r in enumerate(readers) if i % 2 == (0 if which == "tune" else 1)]


class Judge:
    """A reader's hidden interest as a function: relevant / disliked / neither."""

    def __init__(self, reader: Reader) -> None:
        self.reader = reader
        self.likes = [(_rx(t.phrases), set(t.categories)) for t in reader.likes]
        self.dislikes = [(_rx(t.phrases), set(t.categories)) for t in reader.dislikes]
        self._near: dict[str, bool] = {}
        if reader.anchors:
            sp = space()
            sims = sp.nearest([sp.row[a] for a in reader.anchors], range(len(sp.ids)))
            self._near = {
                pid: bool(s >= reader.radius) for pid, s in zip(sp.ids, sims, strict=True)
            }

    @staticmethod
    def _hit(topics: list[tuple[re.Pattern[str], set[str]]], text: str, p: Paper) -> bool:
        return any(
            rx.search(text) and (not cats or cats & set(p.categories)) for rx, cats in topics
        )

    def verdict(self, p: Paper) -> int:
        """+1 relevant, -1 disliked, 0 neither."""
        if self.reader.anchors:
            return 1 if self._near.get(p.id, False) else 0
        text = f" {normalize(p.title + ' ' + p.abstract)} "
        if self._hit(self.dislikes, text, p):
            return -1
        return 1 if self._hit(self.likes, text, p) else 0


def _rx(phrases: Sequence[str]) -> re.Pattern[str]:
    alts = "|".join(re.escape(normalize(ph)) for ph in phrases)
    return re.compile(rf" (?:{alts})(?:s|es)? ")


def liked_papers(reader: Reader, judge: Judge, n: int, seed: int) -> list[Paper]:
    """``n`` papers from before day 1 the reader likes (from its hidden interest, seeded)."""
    sp = space()
    docs = corpus.load_papers()
    pool = [corpus.as_paper(docs[i]) for i in sp.before]
    pool = [p for p in pool if judge.verdict(p) > 0 and p.id not in reader.anchors]
    return random.Random(f"{reader.name}-likes-{seed}").sample(pool, min(n, len(pool)))


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


def rate(
    reader: Reader,
    judge: Judge,
    coin: random.Random,
    flips: random.Random,
    noise: float,
    papers: Sequence[Paper],
) -> list[tuple[str, int]]:
    """The reader's ratings of the papers it was shown, each flipped with probability ``noise``."""
    out = []
    for p in papers:
        v = judge.verdict(p)
        if v > 0:
            value = 1
        elif v < 0 or reader.rates_all or coin.random() < NEUTRAL_DOWNVOTE:
            value = -1
        else:
            continue
        out.append((p.id, -value if flips.random() < noise else value))
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

    def skip(self, day: dt.date) -> None:
        """A day nobody reads (the readers start later); it still happened."""

    def like(self, sub: Subscription, papers: Sequence[Paper]) -> None:
        """The reader hands over papers it likes (issue #13's likes and library import)."""

    def feedback(self, sub: Subscription, ratings: list[tuple[str, int]]) -> None:
        pass


class SeedRanker(KeywordRanker):
    """(a): the original bot's rule."""

    name = "(a) seed"

    def __init__(self, store: Store, subs: list[Subscription]) -> None:
        super().__init__(store, [dataclasses.replace(s, mode="seed", min_score=0) for s in subs])


class HeraldRanker(KeywordRanker):
    name = "(c) herald"
    #: The learner class (``--before`` swaps in an earlier revision's).
    learner_class: Any = Learner

    def __init__(self, store: Store, subs: list[Subscription]) -> None:
        super().__init__(store, subs)
        self.learner = self.learner_class(store, LearningSection())

    def show(self, day: dt.date) -> Shown:
        digests = build_digests(
            self.store, self.subs, day, rescorer=self.learner.rescore, skip_delivered=False
        )
        return {d.subscription.name: [i.paper for i in d.items] for d in digests}

    def like(self, sub: Subscription, papers: Sequence[Paper]) -> None:
        # A like is an ordinary 👍 by the person who liked, of a paper never delivered.
        self.store.upsert_papers(list(papers))
        self.feedback(sub, [(p.id, 1) for p in papers])

    def feedback(self, sub: Subscription, ratings: list[tuple[str, int]]) -> None:
        assert sub.id is not None
        for pid, value in ratings:
            self.store.record_rating(Rating(sub.id, "reader", pid, value))
            self.learner.invalidate(sub.id)


def learner_at(rev: str) -> type[KeywordRanker]:
    """HeraldRanker with the learner of git revision ``rev`` (for before/after columns)."""
    source = subprocess.run(
        ["git", "-C", str(ROOT), "show", f"{rev}:bot/learning.py"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    path = Path(tempfile.mkdtemp()) / f"learning_{rev}.py"
    path.write_text(source, encoding="utf-8")
    spec = importlib.util.spec_from_file_location(f"learning_{rev}", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while it executes
    spec.loader.exec_module(module)

    class Before(HeraldRanker):
        name = f"(c₀) {rev[:7]}"
        learner_class = module.Learner

    return Before


class SvmRanker(KeywordRanker):
    """arxiv-sanity-lite's SVM, refit each day on everything the reader has seen."""

    name = "(b) svm"

    def __init__(self, store: Store, subs: list[Subscription], *, negatives: str) -> None:
        super().__init__(store, subs)
        # all: every paper seen (arxiv-sanity); rated: 👎 papers only; day: today's papers
        self.negatives = negatives
        if negatives == "rated":
            self.name = "(b′) svm±"
        self.seen: dict[str, Paper] = {}
        self.votes: dict[str, dict[str, int]] = {s.name: {} for s in subs}

    def skip(self, day: dt.date) -> None:
        for c in candidates_for(self.store, day, ["cs"]):
            self.seen[c.paper.id] = c.paper

    def like(self, sub: Subscription, papers: Sequence[Paper]) -> None:
        for p in papers:
            self.seen[p.id] = p
        self.feedback(sub, [(p.id, 1) for p in papers])

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
        today = [c.paper.id for c in cands]
        out: Shown = {}
        for sub, items in zip(self.subs, keyword, strict=True):
            votes = self.votes[sub.name]
            ups = [pid for pid, v in votes.items() if v > 0]
            if self.negatives == "all":
                train = ids
            elif self.negatives == "day":
                train = list(dict.fromkeys([*ups, *today]))
            else:
                train = list(votes)
            y = [1 if votes.get(pid, 0) > 0 else 0 for pid in train]
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


Maker = Callable[[Store, list[Subscription]], KeywordRanker]


def svm(negatives: str) -> Maker:
    return lambda store, subs: SvmRanker(store, subs, negatives=negatives)


# -- the simulation -----------------------------------------------------------------------------
@dataclass(frozen=True)
class Setup:
    """How the readers behave in one simulation."""

    noise: float = 0.0  # share of ratings flipped (mis-taps)
    likes: int = 0  # papers from before day 1 handed over at the start
    rates: bool = True  # False: the reader rates nothing (cold start)
    start: int = 0  # index of the first day the readers read; earlier days only happen


#: precision@10 by reader, then by day (None: a day the reader did not read)
Precision = list[list[float | None]]


def simulate(
    make: Maker,
    readers: Sequence[Reader],
    days: Sequence[str],
    seed: int = 0,
    setup: Setup = Setup(),
) -> tuple[str, Precision]:
    """precision@10[reader][day] for one ranker; ``seed`` draws the readers' coins."""
    store = Store(":memory:")
    subs = [store.upsert_subscription(reader_subscription(i, r)) for i, r in enumerate(readers)]
    ranker = make(store, subs)
    judges = {r.name: Judge(r) for r in readers}
    coins = {r.name: random.Random(f"{r.name}-ratings-{seed}") for r in readers}
    flips = {r.name: random.Random(f"{r.name}-flips-{seed}") for r in readers}
    if setup.likes:
        for reader, sub in zip(readers, subs, strict=True):
            ranker.like(sub, liked_papers(reader, judges[reader.name], setup.likes, seed))
    prec: Precision = [[] for _ in readers]
    for d, day in enumerate(days):
        load_day(store, day)
        date = dt.date.fromisoformat(day)
        if d < setup.start:
            ranker.skip(date)
            for p in prec:
                p.append(None)
            continue
        shown = ranker.show(date)
        for i, (reader, sub) in enumerate(zip(readers, subs, strict=True)):
            papers = shown[reader.name][:TOP]
            judge = judges[reader.name]
            prec[i].append(sum(judge.verdict(p) > 0 for p in papers) / TOP)
            if setup.rates:
                name = reader.name
                ratings = rate(reader, judge, coins[name], flips[name], setup.noise, papers)
                ranker.feedback(sub, ratings)
    store.close()
    return ranker.name, prec


def run(
    make: Maker,
    readers: Sequence[Reader],
    days: Sequence[str],
    seeds: int,
    setup: Setup = Setup(),
) -> tuple[str, Precision]:
    """``simulate`` over ``seeds`` draws, rows of every draw concatenated."""
    name, prec = "", []
    for seed in range(seeds):
        name, p = simulate(make, readers, days, seed, setup)
        prec += p
    return name, prec


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
    last = dt.date.fromisoformat(DAYS[-1])
    wide = dataclasses.replace(sub, min_score=float("-inf"))
    items = rank(candidates_for(store, last, ["cs"]), [wide], limit=False)[0]
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


# -- tables -------------------------------------------------------------------------------------
def mean_at(prec: Precision, day: int) -> float:
    vals = [v for p in prec if (v := p[day]) is not None]
    return statistics.mean(vals) if vals else math.nan


def mean_over(prec: Precision, first: int, last: int) -> float:
    """Mean over readers of each reader's mean over days ``first``..``last`` (1-based)."""
    rows = [[v for v in p[first - 1 : last] if v is not None] for p in prec]
    return statistics.mean(statistics.mean(r) for r in rows if r)


def table(
    results: Sequence[tuple[str, Precision]],
    days: Sequence[str],
    spans: Sequence[tuple[int, int]] = (),
    width: int = 13,
) -> None:
    print(f"{'day':>5} {'date':<11}" + "".join(f"{name:>{width}}" for name, _ in results))
    for d, day in enumerate(days):
        cells = [mean_at(p, d) for _, p in results]
        if all(math.isnan(c) for c in cells):
            continue
        print(f"{d + 1:>5} {day:<11}" + "".join(f"{c:>{width}.3f}" for c in cells))
    for first, last in spans:
        if last > len(days):
            continue
        label = f"{first}–{last}"
        cells = [mean_over(p, first, last) for _, p in results]
        print(f"{label:>5} {'mean':<11}" + "".join(f"{c:>{width}.3f}" for c in cells))


def _pick(readers_of: dict[str, list[Reader]], names: Sequence[str]) -> list[Reader]:
    return [r for g in names for r in readers_of[g]]


def _sizes(readers_of: dict[str, list[Reader]], names: Sequence[str]) -> str:
    return " + ".join(f"{len(readers_of[g])} {g}" for g in names)


def part_main(
    args: argparse.Namespace, readers_of: dict[str, list[Reader]], days: list[str]
) -> None:
    names = ("common", "near")
    readers = _pick(readers_of, names)
    makers: list[Maker] = [SeedRanker, KeywordRanker]
    if not args.no_svm:
        makers += [svm("all"), svm("rated")]
    makers += [*args.before_makers, HeraldRanker]
    t0 = time.perf_counter()
    results = [run(make, readers, days, args.seeds) for make in makers]
    elapsed = time.perf_counter() - t0
    print(
        f"\n== 1. main: truthful ratings, precision@{TOP} per day — {args.half} half: "
        f"{_sizes(readers_of, names)} readers × {args.seeds} rating draw(s) ({elapsed:.0f} s)\n"
    )
    table(results, days, [(5, 10)])
    by = dict(results)
    if len(days) >= 5:
        herald = mean_at(by["(c) herald"], 4)
        seed, words = mean_at(by["(a) seed"], 4), mean_at(by["(a′) words"], 4)
        line = (
            f"\nday 5: herald {herald:.3f} = {herald / seed:.2f}× (a) seed, "
            f"{herald / words:.2f}× (a′) words"
        )
        if "(b) svm" in by:
            svm_ = mean_at(by["(b) svm"], 4)
            line += f"; (b) svm {svm_:.3f} ({'≤' if svm_ <= herald else '>'} herald)"
        print(line)
    for g in names:
        group = readers_of[g]
        if not group:
            continue
        lo = sum(len(readers_of[h]) for h in names[: names.index(g)])
        part = [(n, _rows_of(p, lo, len(group), len(readers))) for n, p in results]
        print(f"  {g + ' only, days 5–10:':<28}" + _cells(part, 5, 10))
    if args.per_reader:
        _per_reader(results, readers, 5, 10)


def _rows_of(prec: Precision, lo: int, n: int, per_seed: int) -> Precision:
    """The rows of readers ``lo..lo+n`` of every seed's block."""
    return [row for k in range(0, len(prec), per_seed) for row in prec[k + lo : k + lo + n]]


def _cells(results: Sequence[tuple[str, Precision]], first: int, last: int) -> str:
    return "".join(f"{mean_over(p, first, last):>13.3f}" for _, p in results)


def _per_reader(
    results: Sequence[tuple[str, Precision]], readers: Sequence[Reader], first: int, last: int
) -> None:
    print(f"\nper reader, days {first}–{last} mean:")
    n = len(readers)
    for i, r in enumerate(readers):
        vals = [mean_over(_rows_of(p, i, 1, n), first, last) for _, p in results]
        print(f"  {r.name:<24}" + "".join(f"{v:>9.2f}" for v in vals))


def part_noise(
    args: argparse.Namespace, readers_of: dict[str, list[Reader]], days: list[str]
) -> None:
    names = ("rare", "rare-near")
    readers = _pick(readers_of, names)
    makers: list[Maker] = [*args.before_makers, HeraldRanker]
    if not args.no_svm:
        makers.append(svm("all"))
    t0 = time.perf_counter()
    results: list[tuple[str, Precision]] = [run(KeywordRanker, readers, days, 1)]
    for noise in NOISE_LEVELS:
        for make in makers:
            name, prec = run(make, readers, days, args.seeds, Setup(noise=noise))
            results.append((f"{name.split()[-1]} {noise:.0%}", prec))
    elapsed = time.perf_counter() - t0
    print(
        f"\n== 2. noise: rare interests, seed keyword 'learning', each rating flipped with "
        f"probability n — {args.half} half: {_sizes(readers_of, names)} readers × "
        f"{args.seeds} flip draw(s) ({elapsed:.0f} s)\n"
    )
    table([("words", results[0][1]), *results[1:]], days, [NOISE_DAYS, (5, 10)], width=12)
    first, last = NOISE_DAYS
    by = {n: mean_over(p, first, last) for n, p in results}
    print(f"\ndays {first}–{last}:")
    herald0 = by["herald 0%"]
    for noise in NOISE_LEVELS:
        h = by[f"herald {noise:.0%}"]
        line = f"  noise {noise:>4.0%}: herald {h:.3f} = {h / herald0:.2f}× noise-free"
        for name, _ in results:
            if name.endswith(f" {noise:.0%}") and not name.startswith("herald"):
                other = by[name]
                line += f"; {name.split()[0]} {other:.3f} ({'≤' if other <= h else '>'} herald)"
        print(line)
    h10 = by["herald 10%"]
    print(
        f"  target at 10 %: ≥ 0.3 and ≥ 0.7 × noise-free ({0.7 * herald0:.3f}): "
        f"{'met' if h10 >= 0.3 and h10 >= 0.7 * herald0 else 'NOT met'}"
    )
    if args.per_reader:
        _per_reader(results, readers, first, last)


def part_cold(
    args: argparse.Namespace, readers_of: dict[str, list[Reader]], days: list[str]
) -> None:
    names = tuple(readers_of)
    readers = _pick(readers_of, names)
    t0 = time.perf_counter()
    cold = Setup(likes=LIKES, rates=False)
    head = days[:3]
    results = [
        ("(a′) words", run(KeywordRanker, readers, head, 1)[1]),
        (f"(b) svm {LIKES}", run(svm("day"), readers, head, args.seeds, cold)[1]),
        *[
            (f"{name.split()[0]} +{LIKES}", p)
            for name, p in (
                run(make, readers, head, args.seeds, cold)
                for make in [*args.before_makers, HeraldRanker]
            )
        ],
    ]
    print(
        f"\n== 3. cold start: {LIKES} liked papers from before day 1, no other rating — "
        f"{args.half} half: {_sizes(readers_of, names)} readers × {args.seeds} draw(s) of "
        f"the likes\n"
    )
    table(results, head, [(1, 3)])
    by = {n: mean_at(p, 0) for n, p in results}
    words, svm1, herald1 = by["(a′) words"], by[f"(b) svm {LIKES}"], by[f"(c) +{LIKES}"]
    print(
        f"\nday 1: herald +{LIKES} likes {herald1:.3f} = {herald1 / words:.2f}× keywords only "
        f"(target ≥ 2×), svm {svm1:.3f} ({'≤' if svm1 <= herald1 else '>'} herald)"
    )
    print("by group, day 1:")
    lo = 0
    for g in names:
        n = len(readers_of[g])
        cells = "".join(
            f"{mean_at(_rows_of(p, lo, n, len(readers)), 0):>13.3f}" for _, p in results
        )
        print(f"  {g:<12}{cells}")
        lo += n
    if len(days) < 10:
        elapsed = time.perf_counter() - t0
        print(f"({elapsed:.0f} s)")
        return
    # Likes + 3 rated days against 8 rated days: every variant is measured on days 9–10.
    variants = [
        (f"{LIKES} likes + 3 days", Setup(likes=LIKES, start=5)),
        ("8 days", Setup()),
        ("3 days", Setup(start=5)),
    ]
    rows = []
    for label, setup in variants:
        _, p = run(HeraldRanker, readers, days, args.seeds, setup)
        rows.append((label, p))
    elapsed = time.perf_counter() - t0
    print(
        f"\nherald on days 9–10 after {LIKES} likes + rating days 6–8, after rating days 1–8, "
        f"after rating days 6–8 ({elapsed:.0f} s for section 3):"
    )
    print(f"  {'':<12}" + "".join(f"{label:>20}" for label, _ in rows))
    lo = 0
    for g in (*names, "all"):
        n = len(readers) if g == "all" else len(readers_of[g])
        start = 0 if g == "all" else lo
        cells = "".join(
            f"{mean_over(_rows_of(p, start, n, len(readers)), 9, 10):>20.3f}" for _, p in rows
        )
        print(f"  {g:<12}{cells}")
        lo += 0 if g == "all" else n


PARTS = ("main", "noise", "cold", "latency")


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seeds", type=int, default=3, help="draws of the readers' coins")
    ap.add_argument("--days", type=int, default=len(DAYS))
    ap.add_argument("--part", default=",".join(PARTS), help=f"comma-separated: {PARTS}")
    ap.add_argument(
        "--half",
        choices=("report", "tune", "all"),
        default="report",
        help="which half of each group of readers (constants are tuned on 'tune' only)",
    )
    ap.add_argument("--only", help="comma-separated reader names")
    ap.add_argument("--before", help="also run the learner of this git revision")
    ap.add_argument("--no-svm", action="store_true", help="skip the scikit-learn baselines")
    ap.add_argument("--per-reader", action="store_true", help="each reader's own means")
    args = ap.parse_args(argv)
    use_full_corpus()
    parts = args.part.split(",")
    if unknown := set(parts) - set(PARTS):
        ap.error(f"unknown part(s) {sorted(unknown)}; choose from {PARTS}")
    args.before_makers = [learner_at(args.before)] if args.before else []
    readers_of = {g: half(rs, args.half) for g, rs in groups().items()}
    if args.only:
        want = set(args.only.split(","))
        readers_of = {g: [r for r in rs if r.name in want] for g, rs in readers_of.items()}
    days = list(DAYS[: args.days])
    print(
        f"Readers: the {args.half} half of each group"
        + (
            " (the learner's constants were tuned on the other half)"
            if args.half == "report"
            else ""
        )
        + ": "
        + ", ".join(f"{g} {', '.join(r.name for r in rs)}" for g, rs in readers_of.items())
    )
    t0 = time.perf_counter()
    if "main" in parts:
        part_main(args, readers_of, days)
    if "noise" in parts:
        part_noise(args, readers_of, days)
    if "cold" in parts:
        part_cold(args, readers_of, days)
    if "latency" in parts:
        lat = latency()
        print(
            f"\nrescore latency, {lat['ratings']:.0f} ratings, {lat['candidates']:.0f} "
            f"candidates: first call {lat['cold_ms']:.0f} ms (featurises every rated paper), "
            f"after one more rating {lat['warm_ms']:.1f} ms (median of 20)"
        )
    print(f"\ntotal {time.perf_counter() - t0:.0f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
