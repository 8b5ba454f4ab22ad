"""Keyword scoring with reasons, for every subscription in one pass per paper.

``words`` mode (default): case-insensitive whole words and phrases.  Text and keywords are
normalised to lower-case word tokens joined by single spaces (``Speculative-Decoding`` ->
``speculative decoding``), and a keyword matches when its token sequence appears with word
boundaries on both sides, so ``RL`` does not match "world".  A trailing plural ``s``/``es`` is
accepted (``LLM`` matches "LLMs").  Each keyword found scores +1, and ``title_weight`` more when
it is in the title.

``seed`` mode reproduces the original arxiv_rss_bot exactly: +1 for each keyword that is a
case-insensitive *substring* of ``title + " " + abstract``, +0.5 more for each in the title,
only ``new`` announcements, and any exclude keyword drops the paper.  Like the original, the
abstract is the first line of the RSS description's abstract (its regex stopped at a newline).

All distinct keywords of all subscriptions go into one Aho-Corasick automaton; a paper is
scanned once and the hits are fanned out to the subscriptions that hold each keyword.
"""

from __future__ import annotations

import gc
import re
from collections import defaultdict
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field

import ahocorasick
import numpy as np

from bot.categories import in_category_set
from bot.errors import UserError
from bot.models import Paper, Reason, ScoredPaper, Subscription


class _WordChars(dict[int, str]):
    r"""``str.translate`` table: letters and digits stay, anything else becomes a space.

    Filled lazily (only characters actually seen), so it stays small; equivalent to the
    regex ``[^\W_]+`` tokenisation and about 2.5x faster.
    """

    def __missing__(self, cp: int) -> str:
        ch = chr(cp)
        out = ch if ch.isalnum() else " "
        self[cp] = out
        return out


_TABLE = _WordChars()


def normalize(text: str) -> str:
    """Lower-case word tokens joined by single spaces."""
    return " ".join(text.lower().translate(_TABLE).split())


def parse_keywords(text: str) -> list[str]:
    """Split chat input into keywords: words, or "quoted phrases" kept whole."""
    out: list[str] = []
    for m in re.finditer(r'"([^"]*)"|“([^”]*)”|\'([^\']*)\'|(\S+)', text):
        kw = next(g for g in m.groups() if g is not None)
        kw = " ".join(kw.split()).strip(",;")
        if kw:
            out.append(kw)
    return out


def check_keyword(kw: str) -> str:
    """Validate one keyword from a person; return it cleaned."""
    kw = " ".join(kw.split())
    if not kw:
        raise UserError("A keyword cannot be empty.")
    if len(kw) > 100:
        raise UserError(f"Keyword '{kw[:40]}…' is {len(kw)} characters long; keep it under 100.")
    if not normalize(kw):
        raise UserError(f"Keyword '{kw}' has no letters or digits to match.")
    return kw


def _variants(norm: str) -> list[str]:
    last = norm.rsplit(" ", 1)[-1]
    out = [norm, norm + "s"]
    if last.endswith(("s", "x", "z", "ch", "sh")):
        out.append(norm + "es")
    return out


class _ReasonTable(dict[int, Reason]):
    """Reasons are immutable, so one object per keyword (and title weight) is shared by all
    the items it explains; built on first use."""

    def __init__(self, display: list[str], title_extra: float | None) -> None:
        super().__init__()
        self.display = display
        self.extra = title_extra

    def __missing__(self, k: int) -> Reason:
        name = self.display[k]
        if self.extra is None:
            r = Reason("keyword", f"“{name}” in abstract (+1)", 1.0, (name,))
        else:
            w = 1.0 + self.extra
            r = Reason("title", f"“{name}” in title (+{w:g})", w, (name,))
        self[k] = r
        return r


@dataclass(slots=True)
class _Sub:
    sub: Subscription
    keywords: list[int]  # keyword ids (index into KeywordIndex.keywords)
    excludes: set[int]
    seed: bool
    kwset: frozenset[int] = frozenset()

    def __post_init__(self) -> None:
        self.kwset = frozenset(self.keywords)


@dataclass
class KeywordIndex:
    """All distinct keywords of a set of subscriptions, compiled once."""

    subs: list[_Sub] = field(default_factory=list)
    keywords: list[tuple[str, str]] = field(default_factory=list)  # (mode, key)
    display: list[str] = field(default_factory=list)
    by_keyword: list[list[int]] = field(default_factory=list)  # kw id -> sub indexes
    words: ahocorasick.Automaton | None = None
    seed: ahocorasick.Automaton | None = None
    _title_tables: dict[float, _ReasonTable] = field(default_factory=dict)
    abstract_reasons: _ReasonTable = field(init=False)

    def __post_init__(self) -> None:
        self.abstract_reasons = _ReasonTable(self.display, None)

    @classmethod
    def build(cls, subscriptions: Sequence[Subscription]) -> KeywordIndex:
        idx = cls()
        ids: dict[tuple[str, str], int] = {}
        # Every distinct (mode, spelling) once, in order of first appearance.
        raw_ids: dict[tuple[str, str], int | None] = {}
        modes = ["seed" if s.mode == "seed" else "words" for s in subscriptions]
        for s, mode in zip(subscriptions, modes, strict=True):
            for w in (*s.keywords, *s.excludes, *s.muted):
                if (mode, w) in raw_ids:
                    continue
                key = normalize(w) if mode == "words" else w.lower()
                if not key:
                    raw_ids[(mode, w)] = None
                    continue
                # The original counted "Multi-agent" and "multi-agent" as two keywords: in seed
                # mode each spelling is its own keyword; in words mode they are one.
                ident = key if mode == "words" else w
                kid = ids.get((mode, ident))
                if kid is None:
                    kid = ids[(mode, ident)] = len(idx.keywords)
                    idx.keywords.append((mode, key))
                    idx.display.append(w)
                    idx.by_keyword.append([])
                raw_ids[(mode, w)] = kid

        for i, (s, mode) in enumerate(zip(subscriptions, modes, strict=True)):
            kws = [
                k for k in dict.fromkeys(raw_ids[(mode, w)] for w in s.keywords) if k is not None
            ]
            exc = {
                k for k in (raw_ids[(mode, w)] for w in (*s.excludes, *s.muted)) if k is not None
            }
            for k in kws:
                idx.by_keyword[k].append(i)
            idx.subs.append(_Sub(s, kws, exc, mode == "seed"))

        words = ahocorasick.Automaton()
        seed = ahocorasick.Automaton()
        word_patterns: dict[str, set[int]] = defaultdict(set)
        seed_patterns: dict[str, set[int]] = defaultdict(set)
        for k, (mode, key) in enumerate(idx.keywords):
            if mode == "words":
                for v in _variants(key):
                    word_patterns[f" {v} "].add(k)
            else:
                seed_patterns[key].add(k)
        for pattern, kset in word_patterns.items():
            words.add_word(pattern, tuple(sorted(kset)))
        for pattern, kset in seed_patterns.items():
            seed.add_word(pattern, tuple(sorted(kset)))
        if len(words):
            words.make_automaton()
            idx.words = words
        if len(seed):
            seed.make_automaton()
            idx.seed = seed
        return idx

    def reason(self, k: int, title_extra: float | None) -> Reason:
        """The (shared, immutable) reason for keyword ``k`` in the title or the abstract."""
        if title_extra is None:
            return self.abstract_reasons[k]
        return self.title_reasons(title_extra)[k]

    def title_reasons(self, extra: float) -> dict[int, Reason]:
        table = self._title_tables.get(extra)
        if table is None:
            table = self._title_tables[extra] = _ReasonTable(self.display, extra)
        return table

        # -- matching ------------------------------------------------------------------------

    def match_words(self, title: str, abstract: str) -> tuple[set[int], set[int]]:
        """Keyword ids found in the title, and anywhere (title or abstract)."""
        if self.words is None:
            return set(), set()
        nt = normalize(title)
        # One scan of " title | abstract ": no pattern contains "|", so none spans the two.
        split = len(nt) + 2
        t: set[int] = set()
        anywhere: set[int] = set()
        for end, ks in self.words.iter(f" {nt} | {normalize(abstract)} "):
            anywhere.update(ks)
            if end < split:
                t.update(ks)
        return t, anywhere

    def match_seed(self, title: str, abstract: str) -> tuple[set[int], set[int]]:
        if self.seed is None:
            return set(), set()
        abstract = seed_abstract(abstract)
        t = {k for _, ks in self.seed.iter(title.lower()) for k in ks}
        anywhere = {k for _, ks in self.seed.iter(f"{title} {abstract}".lower()) for k in ks}
        return t, anywhere


def seed_abstract(abstract: str) -> str:
    """The abstract as the original script saw it: the first line only."""
    return abstract.lstrip().split("\n", 1)[0]


@dataclass(frozen=True, slots=True)
class Listing:
    """A candidate paper for a day with the (category, announce_type) it was listed under."""

    paper: Paper
    listings: tuple[tuple[str, str], ...]


def eligible(sub: Subscription, listings: Iterable[tuple[str, str]]) -> tuple[str, str] | None:
    """The (category, type) that lets ``sub`` see this paper, or None.

    Follows the announce-type policy: a paper counts when it is listed in one of the
    subscription's categories with an allowed type.  ``seed`` mode mimics the original: the
    first of the subscription's categories that lists the paper decides, and only ``new``
    passes (a cs.LG paper cross-listed to cs.AI was seen first as ``cross`` and dropped).
    """
    return _eligible(sub, frozenset(sub.categories), listings)


def _eligible(
    sub: Subscription, wanted: frozenset[str], listings: Iterable[tuple[str, str]]
) -> tuple[str, str] | None:
    if sub.mode == "seed":
        for cat in sub.categories:
            for lc, lt in listings:
                if in_category_set(lc, {cat}):
                    return (lc, lt) if lt == "new" else None
        return None
    best: tuple[str, str] | None = None
    for lc, lt in listings:
        # Prefer the strongest listing: new > cross > replace > replace-cross.
        stronger = best is None or _TYPE_RANK[lt] < _TYPE_RANK[best[1]]
        if stronger and lt in sub.announce_types and in_category_set(lc, wanted):
            best = (lc, lt)
    return best


_TYPE_RANK = {"new": 0, "cross": 1, "replace": 2, "replace-cross": 3}


def _reasons(
    idx: KeywordIndex, s: _Sub, in_title: set[int], anywhere: set[int]
) -> tuple[float, list[Reason]]:
    reasons = _reason_list(idx, s, in_title, anywhere)
    return sum(r.weight for r in reasons), reasons


def _reason_list(
    idx: KeywordIndex, s: _Sub, in_title: set[int], anywhere: set[int]
) -> list[Reason]:
    """Reasons in keyword-id order: title hits (the strongest) first, then the abstract's."""
    hits = sorted(s.kwset & anywhere)
    titles = idx.title_reasons(0.5 if s.seed else s.sub.title_weight)
    reasons = [titles[k] for k in hits if k in in_title]
    if len(reasons) < len(hits):
        plain = idx.abstract_reasons
        reasons += [plain[k] for k in hits if k not in in_title]
    return reasons


@dataclass
class Ranking:
    """Every subscription's candidates, scored and sorted (best first, feed order on ties).

    Kept as flat arrays; :meth:`items` turns one subscription's share into explained
    :class:`ScoredPaper` values only when asked.
    """

    idx: KeywordIndex
    candidates: Sequence[Listing]
    subscriptions: Sequence[Subscription]
    scores: np.ndarray
    cands: np.ndarray
    bounds: np.ndarray
    matches: list[tuple[set[int], set[int], set[int], set[int]] | None]
    eligibility: _Eligibility
    group_of: list[int]

    def count(self, si: int) -> int:
        """How many candidates subscription ``si`` kept (score at least its floor)."""
        return int(self.bounds[si + 1] - self.bounds[si])

    def top(self, si: int, limit: bool = True) -> list[tuple[float, int]]:
        """(score, candidate index) pairs of subscription ``si``, best first."""
        lo, hi = int(self.bounds[si]), int(self.bounds[si + 1])
        if limit:
            hi = min(hi, lo + self.subscriptions[si].max_papers)
        return list(zip(self.scores[lo:hi].tolist(), self.cands[lo:hi].tolist(), strict=True))

    def items(self, si: int, limit: bool = True) -> list[ScoredPaper]:
        x = self.idx.subs[si]
        gi = self.group_of[si]
        out = []
        for score, ci in self.top(si, limit):
            m = self.matches[ci]
            assert m is not None
            t, a = (m[2], m[3]) if x.seed else (m[0], m[1])
            reasons = _reason_list(self.idx, x, t, a)
            # The listing that let the subscription's group see the paper (as in score_all).
            listing = self.eligibility.listing(gi, self.candidates[ci].listings)
            assert listing is not None
            out.append(
                ScoredPaper(
                    paper=self.candidates[ci].paper,
                    score=score,
                    reasons=reasons,
                    announce_type=listing[1],
                    category=listing[0],
                )
            )
        return out


class _Eligibility:
    """Which groups of subscriptions (same categories, policy and mode) may see a paper.

    Asking :func:`eligible` of every group for every paper costs papers × groups; with
    100,000 chats that is tens of millions of calls.  Instead the ``words`` groups are
    indexed by (category or archive, announce type), and a paper looks up its own few
    listings: the groups found are exactly those :func:`eligible` accepts.  ``seed`` groups
    (the original's first-category rule) are looked up by category and then asked.
    """

    def __init__(self, reps: Sequence[Subscription]) -> None:
        self.words: dict[tuple[str, str], list[int]] = defaultdict(list)
        self.seed: dict[str, list[int]] = defaultdict(list)
        self.reps = reps
        self.wanted = [frozenset(rep.categories) for rep in reps]
        for gi, rep in enumerate(reps):
            for c in dict.fromkeys(rep.categories):
                if rep.mode == "seed":
                    self.seed[c].append(gi)
                else:
                    for t in dict.fromkeys(rep.announce_types):
                        self.words[(c, t)].append(gi)

    def groups(self, listings: tuple[tuple[str, str], ...]) -> list[int]:
        """The indexes of the groups that may see a paper with these listings."""
        found: set[int] = set()
        seed: set[int] = set()
        for lc, lt in listings:
            archive = lc.split(".", 1)[0]
            keys = (lc, archive) if archive != lc else (lc,)
            for key in keys:
                found.update(self.words.get((key, lt), ()))
                if self.seed:
                    seed.update(self.seed.get(key, ()))
        found.update(gi for gi in seed if self.listing(gi, listings) is not None)
        return sorted(found)

    def listing(self, gi: int, listings: Iterable[tuple[str, str]]) -> tuple[str, str] | None:
        """:func:`eligible` for group ``gi``."""
        return _eligible(self.reps[gi], self.wanted[gi], listings)


@contextmanager
def _gc_paused() -> Iterator[None]:
    """Scoring allocates many short-lived objects and creates no cycles; collecting the big,
    long-lived heap (papers, config) over and over during it costs more than the scoring."""
    was = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was:
            gc.enable()


def rank(
    candidates: Sequence[Listing],
    subscriptions: Sequence[Subscription],
    *,
    exclude_ids: dict[int | None, set[str]] | None = None,
    limit: bool = True,
) -> list[list[ScoredPaper]]:
    """Score every candidate for every subscription; one scan per paper.

    Returns, per subscription (same order), its items with score >= min_score, best first,
    cut to max_papers unless ``limit`` is false.  ``exclude_ids`` maps a subscription id to
    paper ids it must not get again (already delivered).
    """
    with _gc_paused():
        ranking = score_all(candidates, subscriptions, exclude_ids=exclude_ids)
        return [ranking.items(si, limit) for si in range(len(subscriptions))]


def score_all(
    candidates: Sequence[Listing],
    subscriptions: Sequence[Subscription],
    *,
    exclude_ids: dict[int | None, set[str]] | None = None,
) -> Ranking:
    """The scoring pass behind :func:`rank`: match each paper once, fan hits out, sort."""
    idx = KeywordIndex.build(subscriptions)
    n = len(subscriptions)
    title_hit = np.array([1.0 + (0.5 if s.seed else s.sub.title_weight) for s in idx.subs])
    # Seed mode drops papers that match no keyword, whatever min_score says.
    floor = np.array(
        [
            max(s.min_score, 1e-9) if x.seed else s.min_score
            for s, x in zip(subscriptions, idx.subs, strict=True)
        ]
    )
    # keyword -> subscriptions, as one CSR structure (ptr into a flat array of sub indexes).
    lens = np.array([len(v) for v in idx.by_keyword], dtype=np.int64)
    ptr = np.zeros(len(lens) + 1, dtype=np.int64)
    np.cumsum(lens, out=ptr[1:])
    flat_subs = np.fromiter(
        (si for v in idx.by_keyword for si in v), dtype=np.int64, count=int(ptr[-1])
    )
    excl_subs: dict[int, list[int]] = defaultdict(list)
    for si, x in enumerate(idx.subs):
        for k in x.excludes:
            excl_subs[k].append(si)
    groups: dict[tuple[tuple[str, ...], tuple[str, ...], str], list[int]] = defaultdict(list)
    for i, s in enumerate(subscriptions):
        groups[(s.categories, s.announce_types, s.mode)].append(i)
    group_reps = [subscriptions[m[0]] for m in groups.values()]
    group_of = np.zeros(n, dtype=np.int64)
    for gi, members in enumerate(groups.values()):
        group_of[members] = gi
    eligibility = _Eligibility(group_reps)
    delivered: dict[str, list[int]] = defaultdict(list)
    if exclude_ids:
        for si, s in enumerate(subscriptions):
            for pid in exclude_ids.get(s.id, ()):
                delivered[pid].append(si)

    # 1. Match every eligible paper once (the only per-paper Python work).
    matches: list[tuple[set[int], set[int], set[int], set[int]] | None] = []
    rows: list[int] = []  # candidate index of each eligible paper
    row_groups: list[np.ndarray] = []  # which groups (hence subscriptions) may see it
    hit_row: list[int] = []  # (paper row, keyword, in title) for every keyword hit
    hit_kw: list[int] = []
    hit_title: list[bool] = []
    drop_row: list[int] = []  # (paper row, subscription) pairs an exclude or the ledger drops
    drop_sub: list[int] = []
    for cand in candidates:
        which = eligibility.groups(cand.listings)
        if not which:
            matches.append(None)
            continue
        p = cand.paper
        w_title, w_any = idx.match_words(p.title, p.abstract)
        s_title, s_any = idx.match_seed(p.title, p.abstract)
        matches.append((w_title, w_any, s_title, s_any))
        row = len(rows)
        rows.append(len(matches) - 1)
        row_groups.append(np.asarray(which, dtype=np.int64))
        for kws, in_title in ((w_any, w_title), (s_any, s_title)):
            if not kws:
                continue
            hit_row += [row] * len(kws)
            hit_kw += kws
            hit_title += [k in in_title for k in kws]
            for k in kws & excl_subs.keys():
                drop_sub += excl_subs[k]
                drop_row += [row] * len(excl_subs[k])
        for si in delivered.get(p.id, ()):
            drop_row.append(row)
            drop_sub.append(si)

    # 2. Fan hits out to subscriptions and sum, vectorised, a block of papers at a time.
    hr = np.asarray(hit_row, dtype=np.int64)
    hk = np.asarray(hit_kw, dtype=np.int64)
    ht = np.asarray(hit_title, dtype=bool)
    dr = np.asarray(drop_row, dtype=np.int64)
    ds = np.asarray(drop_sub, dtype=np.int64)
    block = max(1, 2_000_000 // max(n, 1))  # keep each block's score matrix around 16 MB
    out_subs: list[np.ndarray] = []
    out_scores: list[np.ndarray] = []
    out_cands: list[np.ndarray] = []
    cand_of_row = np.asarray(rows, dtype=np.int64)
    for lo in range(0, len(rows), block):
        hi = min(len(rows), lo + block)
        a, b = np.searchsorted(hr, [lo, hi])
        kw_ids, in_t, prow = hk[a:b], ht[a:b], hr[a:b] - lo
        starts, counts = ptr[kw_ids], lens[kw_ids]
        total = int(counts.sum())
        # CSR gather: for each hit, the slice flat_subs[starts : starts + counts].
        offsets = np.repeat(starts - np.cumsum(counts) + counts, counts) + np.arange(total)
        subs_hit = flat_subs[offsets]
        weight = np.where(np.repeat(in_t, counts), title_hit[subs_hit], 1.0)
        cell = np.repeat(prow, counts) * n + subs_hit
        scores = np.bincount(cell, weight, minlength=(hi - lo) * n).reshape(hi - lo, n)
        # With no keyword hit at all the counts come back as integers, which cannot hold -inf.
        scores = scores.astype(np.float64, copy=False)
        da, db = np.searchsorted(dr, [lo, hi]) if dr.size else (0, 0)
        if db > da:
            scores[dr[da:db] - lo, ds[da:db]] = -np.inf
        seen = np.zeros((hi - lo, len(group_reps)), dtype=bool)
        for r in range(lo, hi):
            seen[r - lo, row_groups[r]] = True
        keep = seen[:, group_of] & (scores >= floor)
        r_idx, s_idx = np.nonzero(keep)
        out_subs.append(s_idx)
        out_scores.append(scores[r_idx, s_idx])
        out_cands.append(cand_of_row[r_idx + lo])

    if out_subs:
        all_subs = np.concatenate(out_subs)
        all_scores = np.concatenate(out_scores)
        all_cands = np.concatenate(out_cands)
        # By subscription, best score first; ties keep feed order (stable, like the original).
        order = np.lexsort((all_cands, -all_scores, all_subs))
        all_subs, all_scores, all_cands = all_subs[order], all_scores[order], all_cands[order]
    else:
        all_subs = all_cands = np.zeros(0, dtype=np.int64)
        all_scores = np.zeros(0)
    bounds = np.searchsorted(all_subs, np.arange(n + 1))
    return Ranking(
        idx,
        candidates,
        subscriptions,
        all_scores,
        all_cands,
        bounds,
        matches,
        eligibility,
        group_of.tolist(),
    )


def explain(paper: Paper, sub: Subscription) -> tuple[float, list[Reason]]:
    """Keyword score and reasons for one paper, including excludes (for ``why``)."""
    idx = KeywordIndex.build([sub])
    s = idx.subs[0]
    t, a = (
        idx.match_seed(paper.title, paper.abstract)
        if s.seed
        else idx.match_words(paper.title, paper.abstract)
    )
    score, reasons = _reasons(idx, s, t, a)
    hits = sorted(s.excludes & a)
    if hits:
        names = ", ".join(f"“{idx.display[k]}”" for k in hits)
        muted = {normalize(m) for m in sub.muted}
        kind = "muted" if any(normalize(idx.display[k]) in muted for k in hits) else "exclude"
        verb = "muted topic" if kind == "muted" else "excluded keyword"
        reasons.append(Reason(kind, f"dropped: {verb} {names}", 0.0))
    return score, reasons
