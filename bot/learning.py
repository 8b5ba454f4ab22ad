"""Learning from 👍/👎: a per-subscription relevance-feedback model over the papers' words.

Why this model.  It is the term weighting of pseudo-relevance feedback in information retrieval
(the "KLD" expansion weight of Carpineto et al., 2001, with Bayesian smoothing): a feature
counts as much as it contributes to the difference between the papers a chat rated 👍 and
papers in general.  It is generative, so a handful of ratings already give a usable profile —
on the relevance benchmark it beats a TF-IDF SVM trained on the same ratings, and a logistic
regression on the same features did clearly worse with a few dozen ratings.  Its state is
counts (each rating weighted by its trust, below), recounted in a fixed order when a rating
changes: no batch job, a fraction of a second with thousands of ratings, and the model is a
pure function of the current set of ratings (order does not matter, repeating a rating
changes nothing, flipping one is undone exactly).  It learns from 👍 alone because the
contrast is the background of recent announcements, never the unrated papers: an unrated paper
is not a negative.  And every number decomposes into the paper's own features, which is what
"why" shows.

Features of a paper (``features``): title and abstract words and two-word phrases (lower-case,
plural ``s`` folded, stop words dropped, a phrase never spans a stop word; title terms count
double), ``author: …`` for the first authors, ``category: …`` for every listed category.
Features are hashed (crc32, stable across processes) into ``DIM`` buckets, so memory does not
grow with the vocabulary.  A paper's vector ``v`` is presence × idf, L2-normalised.

For one side (👍 or 👎): ``R`` rated papers, ``r_t`` of them contain feature ``t``, and ``q_t``
is the share of background papers (the last ``BACKGROUND_DAYS`` announcement days) that
contain it.  With ``p_t = (r_t + MU·q_t) / (R + MU)`` (the rated papers' rate, smoothed towards
the background by ``MU`` pseudo-papers)::

    u_t = SCALE · r_t / (R + MU) · log(p_t / q_t)

``u_t`` is large for a feature most rated papers have and few papers in general have, small
for common words, 0 for features the rated papers never had, negative for features they have
less often than usual.  A paper's learned score is ``weight × (v·u👍 − v·u👎)``, each side
centred so that the average background paper scores 0.  The features with the largest
``v_t·u_t`` are the words of the explanation ("+3.1 like papers you rated 👍: speculative
decoding, draft model").

Mis-taps (issue 18).  A rating that the chat's other ratings contradict counts less until it
is confirmed (``_trust``): a 👍 whose similar rated papers are 👎 and none 👍 — typically a
mis-tap on a generic paper among the many a reader with a rare interest turns down — counts
``1 / (1 + d / CONTRADICTED_BY)`` of a rating (``d`` similar 👎, at least ``MIN_TRUST``); a
second 👍 of a similar paper, or "more like this", restores it in full.  A 👎 among similar 👍
is discounted the same way.  The counts are then summed with these weights from scratch in a
fixed order, so the model is still a pure function of the set of ratings: immediate effect,
order-free, exact undo.  ``/status`` names the ratings still unconfirmed and the profile's
strongest topics either way (``Learner.profile``), so a wrong turn is visible and fixable.

Shared channels: the channel model counts every member's ratings (it is their sum); a member's
own view (``why`` with a user) is ``(1 − user_share)·channel + user_share·own``, so one member's
ratings reach another member's view only through the channel part.  "More like this" is a 👍
that counts ``MORE_LIKE_THIS_WEIGHT`` times.

Exploration: once a subscription has ratings, ``floor(exploration × max_papers)`` slots (never
more than that share of the digest) go to exploratory picks, chosen among the next-best
candidates (those ranked just below the digest and not predicted to be disliked) by maximal
marginal relevance: half their score, half how unlike they are to everything already in the
digest.  On the benchmark they are about 40 % less similar to the digest than its regular
papers are to each other, so the digest does not collapse into one topic, yet relevant often
enough (and their ratings teach the model something new) to cost almost no precision.  A
chat whose ratings are mostly 👎 (``WIDE_AFTER_DOWNS``: the digest keeps missing) gets a share
``WIDE_SHARE`` of its exploratory slots (rounded up, so the only slot of a 10-paper digest)
from the whole day's candidates instead, chosen by the same rule to be unlike the chat's
recent 👎 papers, the digest and each other: a rare interest the keywords never reach is
otherwise never shown, so never rated.  Picks carry ``explore=True`` and an
"exploring" reason and need not reach ``min_score``; muted and excluded papers are never picked.

A subscription without ratings gets exactly the keyword ranking: nobody who never rates sees a
surprise pick, and turning learning on changes nothing until someone rates.
"""

from __future__ import annotations

import math
import re
import threading
import zlib
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, field, replace

import numpy as np

from bot.config import LearningSection
from bot.models import Paper, Rating, Reason, ScoredPaper, Subscription
from storage import Store

#: Hash buckets for features; an array of 2**18 float32 is 1 MB.
DIM = 1 << 18
_MASK = DIM - 1
#: Pseudo-papers of background that smooth each side's feature rates.
MU = 10.0
#: Learned points per unit of ``v·u`` before the configured ``weight``.
SCALE = 10.0
#: Recent announcement days whose papers are the background ("papers in general").
BACKGROUND_DAYS = 3
BACKGROUND_MAX = 6000
#: "More like this" names features at least this many recent papers share.
MIN_SHARED = 3
#: Authors of a paper that become features (a 300-author list would drown the words).
MAX_AUTHORS = 10
TITLE_WEIGHT = 2.0
#: "More like this" counts as this many 👍 of the paper.
MORE_LIKE_THIS_WEIGHT = 3.0
#: Subscriptions whose counts stay in memory (two DIM arrays each); others are rebuilt.
CACHED_MODELS = 8
FEATURE_CACHE = 8192
#: Exploration weighs a near miss's score against its novelty (maximal marginal relevance).
MMR_LAMBDA = 0.5
#: A candidate whose learned score is below this many ``weight`` units is not explored.
EXPLORE_FLOOR = -0.5
EXPLORE_TEXT = "exploring: outside your usual topics"
#: Of the exploratory slots, this share (rounded up) comes from the whole day's candidates.
WIDE_SHARE = 0.5
#: Wide picks must be unlike this many of the chat's most recent 👎 papers.
WIDE_DISLIKED = 100
#: ...for chats with at least this share of 👎 among their ratings: the digest keeps missing,
#: so look further afield (a chat that likes what it gets keeps its near misses).
WIDE_AFTER_DOWNS = 0.75
#: Two rated papers whose vectors' cosine reaches this are "similar" (confirmation).
SIMILAR = 0.1
#: An unconfirmed 👍 with this many similar 👎 papers counts half.
CONTRADICTED_BY = 5.0
#: The least an unconfirmed 👍 counts.
MIN_TRUST = 0.3
#: A 👎 with this many similar 👍 (and no similar 👎) counts half.
NEG_CONTRADICTED_BY = 1.0
#: The most recent ratings that judge each other (bounds the work to TRUST_WINDOW² pairs).
TRUST_WINDOW = 200
_META_MORE = "learning.more_like_this.{sub}"
_ATOMIC = ("author: ", "category: ")

_WORD = re.compile(r"[^\W_]+")
STOPWORDS = frozenset(
    """a an the and or of for to in on at by with from as is are was were be been being this
    that these those it its we our us they their them he she his her you your not no nor but if
    then than so such can could may might will would should shall do does did done has have had
    having which who whom whose what when where why how all any both each few more most other
    some same only own very too also just into over under again further once here there about
    above below between through during before after up down out off via while within without
    across along among upon per vs et al eg ie etc paper propose proposed proposes present
    presents presented approach method methods result results show shows shown demonstrate
    demonstrates novel new based using use used uses work study existing achieve achieves
    achieved significantly significant performance state art furthermore moreover however
    therefore thus although though well even often whether yet first second one two three
    several many much including include includes""".split()
)


# -- features ---------------------------------------------------------------------------------
_KEEP_S = ("ss", "us", "is", "as", "ys", "ics")
_NOT_PLURAL = frozenset({"series", "species", "news", "lens", "chaos", "perhaps"})


def _fold(tok: str) -> str:
    """Fold a plural cheaply: ``models`` -> ``model``, ``policies`` -> ``policy``."""
    if len(tok) <= 3 or tok[-1] != "s" or tok.endswith(_KEEP_S) or tok in _NOT_PLURAL:
        return tok
    if tok.endswith("ies") and len(tok) > 4:
        return tok[:-3] + "y"
    return tok[:-1]


def features(paper: Paper) -> dict[str, float]:
    """The paper's features, readable: ``{"speculative decoding": 2.0, "author: …": 1.0, …}``."""
    out: dict[str, float] = {}
    for text, w in ((paper.title, TITLE_WEIGHT), (paper.abstract, 1.0)):
        prev: str | None = None
        for raw in _WORD.findall(text.lower()):
            tok = _fold(raw)
            if tok in STOPWORDS or len(tok) < 2 or tok.isdigit():
                prev = None
                continue
            if out.get(tok, 0.0) < w:
                out[tok] = w
            if prev is not None:
                pair = f"{prev} {tok}"
                if out.get(pair, 0.0) < w:
                    out[pair] = w
            prev = tok
    for name in paper.authors[:MAX_AUTHORS]:
        out["author: " + " ".join(name.split())] = 1.0
    for cat in paper.categories:
        out[f"category: {cat}"] = 1.0
    return out


def bucket(term: str) -> int:
    """The hash bucket of a feature (stable across processes and machines)."""
    return zlib.crc32(term.encode("utf-8")) & _MASK


def _buckets(feats: dict[str, float]) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Unique buckets (sorted), their values and the feature that set each value."""
    acc: dict[int, tuple[float, str]] = {}
    for term, w in feats.items():
        b = bucket(term)
        if b not in acc or acc[b][0] < w:
            acc[b] = (w, term)
    keys = sorted(acc)
    idx = np.array(keys, dtype=np.int32)
    val = np.array([acc[k][0] for k in keys], dtype=np.float32)
    return idx, val, [acc[k][1] for k in keys]


@dataclass(frozen=True, slots=True)
class _Vec:
    """A paper's hashed features: sorted unique buckets and raw values (presence × title)."""

    idx: np.ndarray
    val: np.ndarray


# -- background and model state -------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class _Background:
    """Recent papers: what "papers in general" look like."""

    key: tuple[object, ...]
    n: int
    idf: np.ndarray  # float32[DIM]
    q: np.ndarray  # float32[DIM]: share of background papers holding the feature
    mean: np.ndarray  # float32[DIM]: the average background paper's vector

    def unit(self, vec: _Vec) -> np.ndarray:
        """The paper's vector ``v`` over its buckets: presence × idf, L2-normalised."""
        x = vec.val * self.idf[vec.idx]
        norm = float(np.sqrt(x @ x))
        return x / norm if norm > 0 else x


@dataclass
class _Side:
    """Counts behind one side (👍 or 👎): in how many rated papers each feature occurs.

    Sparse — only features some rated paper has — so a chat with three ratings costs a few
    kilobytes.  Counts are whole numbers in float32, so removing a rating is exact.
    """

    idx: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int32))
    r: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.float32))
    n: float = 0.0

    def apply(self, changes: Sequence[tuple[_Vec, float]]) -> None:
        """Add papers (positive weight) or take them away (negative weight)."""
        if not changes:
            return
        dense = np.zeros(DIM, dtype=np.float32)
        dense[self.idx] = self.r
        for vec, weight in changes:
            dense[vec.idx] += np.float32(weight)
            self.n += weight
        if self.n < 1e-6:
            self.n, dense[:] = 0.0, 0.0
        self.idx = np.flatnonzero(dense).astype(np.int32)
        self.r = dense[self.idx]


@dataclass
class _Model:
    pos: _Side = field(default_factory=_Side)
    neg: _Side = field(default_factory=_Side)

    def apply(self, changes: Sequence[tuple[_Vec, float, float]]) -> None:
        """Apply (vector, rating value, +1 to add | −1 to remove) changes to both sides."""
        self.pos.apply([(v, sign * value) for v, value, sign in changes if value > 0])
        self.neg.apply([(v, -sign * value) for v, value, sign in changes if value < 0])


@dataclass(frozen=True, slots=True)
class _Fit:
    """The ratings as counted against one background: each rating's trust and the model."""

    key: tuple[object, ...]
    trust: dict[tuple[str, str], float]
    model: _Model


@dataclass
class _SubState:
    """One subscription's ratings and the vectors they were counted with; the fitted model."""

    ratings: dict[tuple[str, str], tuple[float, _Vec]] = field(default_factory=dict)
    version: int = 0
    fit: _Fit | None = None

    @property
    def users(self) -> set[str]:
        return {u for u, _ in self.ratings}

    @property
    def empty(self) -> bool:
        return not self.ratings


@dataclass(frozen=True, slots=True)
class _Weights:
    """A model as weights over the current background, ready to score papers."""

    pos: np.ndarray
    neg: np.ndarray
    pos_base: float  # the average background paper's side score (subtracted: centring)
    neg_base: float
    has_pos: bool
    has_neg: bool


def _side_weights(side: _Side, bg: _Background) -> np.ndarray:
    u = np.zeros(DIM, dtype=np.float32)
    if side.n > 0:
        r, q = side.r, bg.q[side.idx]
        p = (r + MU * q) / (side.n + MU)
        u[side.idx] = SCALE * r / (side.n + MU) * np.log(p / q)
    return u


def _weights(model: _Model, bg: _Background) -> _Weights:
    pos, neg = _side_weights(model.pos, bg), _side_weights(model.neg, bg)
    return _Weights(
        pos=pos,
        neg=neg,
        pos_base=float(bg.mean @ pos),
        neg_base=float(bg.mean @ neg),
        has_pos=model.pos.n > 0,
        has_neg=model.neg.n > 0,
    )


def _model_of(
    state: _SubState, trust: dict[tuple[str, str], float], user: str | None = None
) -> _Model:
    """The ratings (``user``'s only, if given) counted with their trust, in a fixed order."""
    model = _Model()
    rows = sorted(state.ratings.items(), key=lambda kv: kv[0])
    model.apply([(v, x * trust[k], 1.0) for k, (x, v) in rows if user in (None, k[0])])
    return model


def _trust(
    state: _SubState, bg: _Background, user: str | None = None
) -> dict[tuple[str, str], float]:
    """How much each rating counts: 1, unless the chat's other ratings contradict it.

    A 👍 whose similar rated papers (cosine ≥ ``SIMILAR``) are 👎 — ``d`` of them — and none
    👍 is probably a mis-tap, or at least not yet a topic: it counts
    ``1 / (1 + d / CONTRADICTED_BY)`` (at least ``MIN_TRUST``).  A similar 👍 (``u`` of them)
    confirms it: ``(1 + 2u) / (1 + d / CONTRADICTED_BY)``, capped at 1.  A 👎 among similar
    👍 is judged the same way, mirrored (``NEG_CONTRADICTED_BY``: a 👍 is rarer, so one
    weighs more).  "More like this" always counts in full.  The ``TRUST_WINDOW`` most recent
    ratings (arXiv ids grow with time) judge each other; older ones count in full.  A pure
    function of the set of ratings: order does not matter and undoing a rating is exact.
    ``user``: judge that member's ratings by their own only.
    """
    keys = sorted(k for k in state.ratings if user in (None, k[0]))
    out = dict.fromkeys(keys, 1.0)
    recent = sorted(keys, key=lambda k: (k[1], k[0]))[-TRUST_WINDOW:]
    if len(recent) < 2:
        return out
    vecs = [state.ratings[k][1] for k in recent]
    value = np.array([state.ratings[k][0] for k in recent])
    sim = _Similarity(vecs, bg)
    # Rows of the 👍 first: by symmetry they also say which 👎 have a similar 👍 at all.
    rows = {int(j): sim.to(vecs[j]) >= SIMILAR for j in np.flatnonzero(value > 0)}
    liked_near = np.zeros(len(recent), dtype=bool)
    for row in rows.values():
        liked_near |= row
    for j, key in enumerate(recent):
        if value[j] > 1 or (value[j] < 0 and not liked_near[j]):
            continue
        near = rows[j] if value[j] > 0 else sim.to(vecs[j]) >= SIMILAR
        near[j] = False
        up = float(np.count_nonzero(near & (value > 0)))
        down = float(np.count_nonzero(near & (value < 0)))
        agree, against, scale = (
            (up, down, CONTRADICTED_BY) if value[j] > 0 else (down, up, NEG_CONTRADICTED_BY)
        )
        out[key] = max(MIN_TRUST, min(1.0, (1 + 2 * agree) / (1 + against / scale)))
    return out


@dataclass(frozen=True, slots=True)
class LearnedProfile:
    """What a chat's ratings taught: its strongest topics either way, in the rated papers'
    words, and the ratings that count less until confirmed (paper id, share counted)."""

    liked: tuple[str, ...]
    disliked: tuple[str, ...]
    unconfirmed: list[tuple[str, float]]


def _profile_terms(
    state: _SubState, papers: dict[str, Paper], w: _Weights, bg: _Background, n: int
) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """The words of the rated papers that weigh most on each side, net of the other side.

    Only words at least ``MIN_SHARED`` recent papers share: a topic, not one paper's phrase.
    """
    out: list[tuple[str, ...]] = []
    for sign, own, other in ((1, w.pos, w.neg), (-1, w.neg, w.pos)):
        weight: dict[str, float] = {}
        for (_, pid), (value, _) in sorted(state.ratings.items()):
            paper = papers.get(pid)
            if paper is None or value * sign <= 0:
                continue
            # Summed over the papers (a topic many share comes first), title words doubled.
            for term, x in features(paper).items():
                b = bucket(term)
                if bg.q[b] * (bg.n + 1) - 0.5 >= MIN_SHARED and not term.startswith(_ATOMIC):
                    weight[term] = weight.get(term, 0.0) + x * float(own[b] - other[b])
        terms = sorted(weight)
        out.append(_top_terms(np.array([weight[t] for t in terms]), terms, n))
    return out[0], out[1]


@dataclass(frozen=True, slots=True)
class _Part:
    """The learned part of one paper's score by side, each with the features behind it."""

    pos: float
    neg: float
    pos_terms: tuple[str, ...]
    neg_terms: tuple[str, ...]

    @property
    def total(self) -> float:
        return self.pos + self.neg


class Learner:
    """Ratings in, learned scores with their reasons out (see the module docstring).

    Thread-safe; keeps at most ``CACHED_MODELS`` subscriptions' counts in memory.  Every call
    first syncs the counts with the ratings in storage (a diff, so cheap), so ratings recorded
    by another process — ``herald rate`` next to ``herald serve`` — count too.
    """

    def __init__(self, store: Store, cfg: LearningSection) -> None:
        self.store = store
        self.cfg = cfg
        self._lock = threading.RLock()
        self._states: OrderedDict[int, _SubState] = OrderedDict()
        self._vecs: OrderedDict[tuple[str, int], _Vec] = OrderedDict()
        self._bg: _Background | None = None

    # -- the engine's interface ---------------------------------------------------------------
    def rescore(self, sub: Subscription, items: list[ScoredPaper]) -> list[ScoredPaper]:
        """The Rescorer (bot.digest): learned scores added, cut, exploratory picks mixed in."""
        with self._lock:
            state = self._state(sub)
            if state is None or state.empty or not items:
                return _cut(items, sub)  # cold start: the keyword ranking, untouched
            bg = self._background([i.paper for i in items])
            w = _weights(self._fit(state, bg).model, bg)
            vecs = [self._vec(i.paper) for i in items]
            pos, neg = self._parts(vecs, w, bg)
            learned = self.cfg.weight * (pos - neg)
            final = [it.score + float(x) for it, x in zip(items, learned, strict=True)]
            order = sorted(range(len(items)), key=lambda i: (-final[i], i))
            size = min(sub.max_papers, len(items))
            share = self.cfg.exploration
            k = math.floor(share * size + 1e-9)
            regular = [i for i in order if final[i] >= sub.min_score][: size - k]
            # Never more than ``share`` of the digest, even when few papers pass min_score.
            k = min(k, math.floor(share * len(regular) / (1 - share) + 1e-9))
            downs = sum(1 for x, _ in state.ratings.values() if x < 0)
            missing = downs >= WIDE_AFTER_DOWNS * len(state.ratings)
            wide = math.ceil(WIDE_SHARE * k - 1e-9) if missing else 0
            floor = EXPLORE_FLOOR * self.cfg.weight
            # A muted or excluded paper (score −inf) is never explored.
            taken = set(regular) | {i for i in order if not math.isfinite(final[i])}
            near = [i for i in order if i not in taken and learned[i] >= floor]
            explore = _novel(near[: max(3 * size, 30)], regular, vecs, bg, k - wide, final)
            # The rest from anywhere in the day: a new interest is rarely just below the cut.
            taken.update(explore)
            rest = [i for i in order if i not in taken]
            explore += _wide(rest, regular + explore, self._disliked(state), vecs, bg, wide, final)
            who = _who(state)
            out = []
            for i in regular + sorted(explore, key=order.index):
                it = _copy(items[i])
                if i in explore:
                    it.explore = True
                    it.reasons.insert(0, Reason("explore", EXPLORE_TEXT, 0.0))
                self._annotate(it, w, bg, self.cfg.weight, who, total=float(learned[i]))
                out.append(it)
            return out

    def explain_item(self, sub: Subscription, item: ScoredPaper, user: str | None = None) -> None:
        """Add the learned reason(s) and score to one item (``why``), from ``user``'s view."""
        with self._lock:
            state = self._state(sub)
            if state is None or state.empty:
                return
            bg = self._background([item.paper])
            fit = self._fit(state, bg)
            channel = _weights(fit.model, bg)
            others = state.users - {user}
            if user is None or not others:
                self._annotate(item, channel, bg, self.cfg.weight, _who(state))
                return
            # A shared channel seen by one member: the channel's taste plus their own.
            share = self.cfg.user_share
            # Judged by their own ratings only: nobody else's 👎 discounts a member's 👍.
            own = _weights(_model_of(state, _trust(state, bg, user), user), bg)
            self._annotate(item, channel, bg, self.cfg.weight * (1 - share), "this chat")
            self._annotate(item, own, bg, self.cfg.weight * share, "you")

    def more_like_this(self, sub: Subscription, user: str, paper: Paper) -> list[str]:
        """Record a strong 👍 (a rating that counts several times); return the boosted terms."""
        assert sub.id is not None
        with self._lock:
            self.store.record_rating(Rating(sub.id, user, paper.id, 1))
            more = self._more(sub.id)
            if (user, paper.id) not in more:
                more.add((user, paper.id))
                text = "\n".join(f"{u}\t{p}" for u, p in sorted(more))
                self.store.set_meta(_META_MORE.format(sub=sub.id), text)
            state = self._state(sub)
            assert state is not None
            bg = self._background([paper])
            w = _weights(self._fit(state, bg).model, bg)
            # The paper's strongest features that other papers share (a word only this paper
            # has explains its own score, but boosts nothing else).
            idx, val, terms = _buckets(features(paper))
            shared = bg.q[idx] * (bg.n + 1) - 0.5 >= MIN_SHARED
            return list(_top_terms(bg.unit(_Vec(idx, val)) * w.pos[idx] * shared, terms))

    def invalidate(self, sub_id: int | None) -> None:
        """A rating changed.  Nothing to refit: the next call diffs the ratings into the counts."""
        return None

    def profile(self, sub: Subscription, n: int = 5) -> LearnedProfile | None:
        """What the chat's ratings taught, in words of the rated papers (``/status``, ``why``);
        None before the first rating."""
        with self._lock:
            state = self._state(sub)
            if state is None or state.empty:
                return None
            # Words from the most recent rated papers (a why stays quick with thousands).
            ids = sorted({pid for _, pid in state.ratings})[-TRUST_WINDOW:]
            papers = self.store.get_papers(ids)
            bg = self._background(list(papers.values()))
            fit = self._fit(state, bg)
            w = _weights(fit.model, bg)
            liked, disliked = _profile_terms(state, papers, w, bg, n)
            unconfirmed = sorted((pid, t) for (_, pid), t in fit.trust.items() if t < 1.0 - 1e-6)
            return LearnedProfile(liked, disliked, unconfirmed)

    # -- scoring ------------------------------------------------------------------------------
    def _parts(
        self, vecs: Sequence[_Vec], w: _Weights, bg: _Background
    ) -> tuple[np.ndarray, np.ndarray]:
        """``v·u👍`` and ``v·u👎`` (each side centred) of many papers at once."""
        n = len(vecs)
        doc = np.repeat(np.arange(n), [len(v.idx) for v in vecs])
        idx = np.concatenate([v.idx for v in vecs])
        val = np.concatenate([v.val for v in vecs]) * bg.idf[idx]
        norms = np.sqrt(np.bincount(doc, weights=val * val, minlength=n))
        norms[norms == 0] = 1.0
        pos = np.bincount(doc, weights=val * w.pos[idx], minlength=n) / norms - w.pos_base
        neg = np.bincount(doc, weights=val * w.neg[idx], minlength=n) / norms - w.neg_base
        return pos, neg

    def _explain(self, paper: Paper, w: _Weights, bg: _Background, scale: float) -> _Part:
        idx, val, terms = _buckets(features(paper))
        v = bg.unit(_Vec(idx, val))
        cpos, cneg = v * w.pos[idx], v * w.neg[idx]
        return _Part(
            pos=scale * (float(cpos.sum()) - w.pos_base) if w.has_pos else 0.0,
            neg=-scale * (float(cneg.sum()) - w.neg_base) if w.has_neg else 0.0,
            pos_terms=_top_terms(cpos, terms),
            neg_terms=_top_terms(cneg, terms),
        )

    def _annotate(
        self,
        item: ScoredPaper,
        w: _Weights,
        bg: _Background,
        scale: float,
        who: str,
        total: float | None = None,
    ) -> None:
        """Add ``scale`` × the learned score to ``item``, with a reason per side of the model.

        ``total`` is the score the ranking used for this paper; the reasons are made to add up
        to it exactly (a side too small to show is folded into the one shown).
        """
        part = self._explain(item.paper, w, bg, scale)
        total = part.total if total is None else total
        sides = [
            (value, terms, thumb)
            for value, terms, thumb, has in (
                (part.pos, part.pos_terms, "👍", w.has_pos),
                (part.neg, part.neg_terms, "👎", w.has_neg),
            )
            if has
        ]
        shown = [s for s in sides if abs(s[0]) >= 0.05]
        reasons: list[Reason] = []
        if sides and not shown:
            text = f"{_signed(total)} learned: nothing like the papers {who} rated"
            reasons.append(Reason("learned", text, total))
        rest = total - sum(s[0] for s in shown)
        biggest = max(range(len(shown)), key=lambda j: abs(shown[j][0]), default=-1)
        for j, (value, terms, thumb) in enumerate(shown):
            value += rest if j == biggest else 0.0
            alike = (value > 0) == (thumb == "👍")
            named = terms if alike else ()
            text = f"{_signed(value)} {'like' if alike else 'unlike'} papers {who} rated {thumb}"
            reasons.append(
                Reason("learned", text + (": " + ", ".join(named) if named else ""), value, named)
            )
        item.score += total
        # The learned part first: it is what changes day to day, and renderers show the head.
        kinds = ("explore", "learned")
        at = next((n for n, r in enumerate(item.reasons) if r.kind not in kinds), len(item.reasons))
        item.reasons[at:at] = reasons

    # -- state ----------------------------------------------------------------------------------
    def _state(self, sub: Subscription) -> _SubState | None:
        """The subscription's counts, synced with storage: only changed ratings are touched."""
        if sub.id is None:
            return None
        rows = self.store.ratings(sub.id)
        state = self._states.get(sub.id)
        if state is None:
            if not rows:
                return None
            state = self._states[sub.id] = _SubState()
        self._states.move_to_end(sub.id)
        while len(self._states) > CACHED_MODELS:
            self._states.popitem(last=False)
        more = self._more(sub.id) if any(r.value > 0 for r in rows) else set()
        want: dict[tuple[str, str], float] = {}
        for r in rows:
            key = (r.user, r.paper_id)
            want[key] = float(r.value)
            if r.value > 0 and key in more:
                want[key] = MORE_LIKE_THIS_WEIGHT
        have = state.ratings
        changed = [
            k for k in have.keys() | want.keys() if k not in have or have[k][0] != want.get(k)
        ]
        if not changed:
            return state
        need = sorted(
            {pid for user, pid in changed if (user, pid) in want and (user, pid) not in have}
        )
        papers = self.store.get_papers(need) if need else {}
        before = state.version
        for key in changed:
            old = have.pop(key, None)
            if old is not None:
                state.version = before + 1
            if key not in want:
                continue
            # A flip keeps the vector it was counted with.
            paper = papers.get(key[1])
            vec = old[1] if old is not None else self._vec(paper) if paper is not None else None
            if vec is None:  # a rating of a paper storage does not hold: nothing to learn from
                continue
            have[key] = (want[key], vec)
            state.version = before + 1
        return state

    def _fit(self, state: _SubState, bg: _Background) -> _Fit:
        """Each rating's trust and the model they make (cached until a rating changes).

        Counted from scratch in a fixed order, so the same ratings always give the same bits:
        rating and un-rating a paper restores the exact scores.
        """
        key = (bg.key, state.version)
        if state.fit is None or state.fit.key != key:
            trust = _trust(state, bg)
            state.fit = _Fit(key, trust, _model_of(state, trust))
        return state.fit

    def _disliked(self, state: _SubState) -> list[_Vec]:
        """The most recent 👎 papers (arXiv ids grow with time)."""
        downs = sorted((pid, u) for (u, pid), (x, _) in state.ratings.items() if x < 0)
        return [state.ratings[(u, pid)][1] for pid, u in downs[-WIDE_DISLIKED:]]

    def _more(self, sub_id: int) -> set[tuple[str, str]]:
        text = self.store.get_meta(_META_MORE.format(sub=sub_id)) or ""
        pairs = (line.partition("\t") for line in text.splitlines())
        return {(u, p) for u, _, p in pairs if p}

    def _vec(self, paper: Paper) -> _Vec:
        key = (paper.id, paper.version)
        vec = self._vecs.get(key)
        if vec is None:
            idx, val, _ = _buckets(features(paper))
            vec = self._vecs[key] = _Vec(idx, val)
            if len(self._vecs) > FEATURE_CACHE:
                self._vecs.popitem(last=False)
        return vec

    def _background(self, fallback: Sequence[Paper]) -> _Background:
        """Papers of the last announcement days in storage (``fallback`` when there are none)."""
        days = self.store.announcement_days(BACKGROUND_DAYS)
        key: tuple[object, ...] = (tuple(days), self.store.announcement_count())
        if self._bg is not None and self._bg.key == key:
            return self._bg
        papers: dict[str, Paper] = {}
        for day in days:
            for p, _ in self.store.announced_on(day):
                if len(papers) < BACKGROUND_MAX:
                    papers.setdefault(p.id, p)
        if not papers:
            papers = {p.id: p for p in fallback}
            key = ("fallback", *sorted(papers))
        vecs = [self._vec(p) for p in papers.values()]
        n = len(vecs)
        df = np.zeros(DIM, dtype=np.float32)
        for v in vecs:
            df[v.idx] += 1.0
        idf = (np.log((1.0 + n) / (1.0 + df)) + 1.0).astype(np.float32)
        q = ((df + 0.5) / (n + 1.0)).astype(np.float32)
        bg = _Background(key, n, idf, q, np.zeros(DIM, dtype=np.float32))
        for v in vecs:
            bg.mean[v.idx] += bg.unit(v)
        np.divide(bg.mean, max(n, 1), out=bg.mean)
        if key[0] != "fallback":
            self._bg = bg
        return bg


class _Similarity:
    """Cosines between a fixed set of papers and any paper, one scatter per query."""

    def __init__(self, vecs: Sequence[_Vec], bg: _Background) -> None:
        self.bg = bg
        self.n = len(vecs)
        self.doc = np.repeat(np.arange(self.n), [len(v.idx) for v in vecs])
        self.idx = np.concatenate([v.idx for v in vecs])
        self.val = np.concatenate([bg.unit(v) for v in vecs])
        self.scratch = np.zeros(DIM, dtype=np.float32)

    def to(self, vec: _Vec) -> np.ndarray:
        """The cosine of every paper of the set with ``vec``."""
        self.scratch[vec.idx] = self.bg.unit(vec)
        sims = np.bincount(self.doc, weights=self.val * self.scratch[self.idx], minlength=self.n)
        self.scratch[vec.idx] = 0.0
        return sims


def _mmr(
    pool: list[int],
    chosen: Sequence[_Vec],
    vecs: Sequence[_Vec],
    bg: _Background,
    k: int,
    final: list[float],
) -> list[int]:
    """Pick ``k`` of ``pool`` by maximal marginal relevance (Carbonell & Goldstein, 1998).

    Each pick balances its score (rescaled over the pool) against its highest similarity to
    anything in ``chosen`` or picked before it (rescaled by the pool's highest), so picks are
    good papers unlike the rest rather than random ones.
    """
    if k <= 0 or not pool:
        return []
    sim = _Similarity([vecs[i] for i in pool], bg)
    best = np.zeros(len(pool))
    for v in chosen:
        best = np.maximum(best, sim.to(v))
    rel = np.array([final[i] for i in pool])
    rel = (rel - rel.min()) / (rel.max() - rel.min() + 1e-9)
    out: list[int] = []
    left = set(range(len(pool)))
    while left and len(out) < k:
        near = best / (best.max() + 1e-9)
        j = max(left, key=lambda c: ((1 - MMR_LAMBDA) * rel[c] - MMR_LAMBDA * near[c], -c))
        left.discard(j)
        out.append(pool[j])
        best = np.maximum(best, sim.to(vecs[pool[j]]))
    return out


def _novel(
    pool: list[int],
    chosen: list[int],
    vecs: Sequence[_Vec],
    bg: _Background,
    k: int,
    final: list[float],
) -> list[int]:
    """Near misses unlike the digest (``pool``: the candidates just below the cut)."""
    return _mmr(pool, [vecs[i] for i in chosen], vecs, bg, k, final)


def _wide(
    pool: list[int],
    chosen: list[int],
    disliked: Sequence[_Vec],
    vecs: Sequence[_Vec],
    bg: _Background,
    k: int,
    final: list[float],
) -> list[int]:
    """Picks from the whole day (``pool``) unlike the papers rated 👎, the digest and each
    other: a way out of the keywords' neighbourhood towards an interest nobody typed."""
    return _mmr(pool, [*disliked, *(vecs[i] for i in chosen)], vecs, bg, k, final)


def _top_terms(contrib: np.ndarray, terms: list[str], n: int = 3) -> tuple[str, ...]:
    """The paper's features that contribute most, a phrase standing in for its own words."""
    out: list[str] = []
    for j in np.argsort(-contrib, kind="stable")[: n * 4]:
        if contrib[j] <= 1e-6:
            break
        t = terms[int(j)]
        atomic = t.startswith(("author: ", "category: "))
        words = {t} if atomic else set(t.split(" "))
        if any(words <= set(s.split(" ")) for s in out if not atomic):
            continue
        out = [s for s in out if atomic or not set(s.split(" ")) <= words]
        out.append(t)
        if len(out) == n:
            break
    return tuple(out)


def _who(state: _SubState) -> str:
    return "this chat" if len(state.users) > 1 else "you"


def _signed(x: float) -> str:
    return f"+{x:.1f}" if x >= 0 else f"−{abs(x):.1f}"


def _copy(item: ScoredPaper) -> ScoredPaper:
    return replace(item, reasons=list(item.reasons))


def _cut(items: list[ScoredPaper], sub: Subscription) -> list[ScoredPaper]:
    return [i for i in items if i.score >= sub.min_score][: sub.max_papers]
