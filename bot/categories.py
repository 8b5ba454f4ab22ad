"""The arXiv category taxonomy, for validating what people subscribe to."""

from __future__ import annotations

import difflib

from bot.errors import UserError

_TAXONOMY = {
    "cs": "AI AR CC CE CG CL CR CV CY DB DC DL DM DS ET FL GL GR GT HC IR IT LG LO MA MM MS NA "
    "NE NI OH OS PF PL RO SC SD SE SI SY",
    "econ": "EM GN TH",
    "eess": "AS IV SP SY",
    "math": "AC AG AP AT CA CO CT CV DG DS FA GM GN GR GT HO IT KT LO MG MP NA NT OA OC PR QA "
    "RA RT SG SP ST",
    "astro-ph": "CO EP GA HE IM SR",
    "cond-mat": "dis-nn mes-hall mtrl-sci other quant-gas soft stat-mech str-el supr-con",
    "nlin": "AO CD CG PS SI",
    "physics": "acc-ph ao-ph app-ph atm-clus atom-ph bio-ph chem-ph class-ph comp-ph data-an "
    "ed-ph flu-dyn gen-ph geo-ph hist-ph ins-det med-ph optics plasm-ph pop-ph soc-ph space-ph",
    "q-bio": "BM CB GN MN NC OT PE QM SC TO",
    "q-fin": "CP EC GN MF PM PR RM ST TR",
    "stat": "AP CO ME ML OT TH",
}
_STANDALONE = [
    "gr-qc",
    "hep-ex",
    "hep-lat",
    "hep-ph",
    "hep-th",
    "math-ph",
    "nucl-ex",
    "nucl-th",
    "quant-ph",
    "astro-ph",
]

#: Archives the RSS service accepts as a whole (``rss.arxiv.org/rss/cs``).
ARCHIVES = frozenset(_TAXONOMY) | frozenset(_STANDALONE)
CATEGORIES = frozenset(
    [f"{a}.{s}" for a, subs in _TAXONOMY.items() for s in subs.split()] + _STANDALONE
)
_BY_LOWER = {c.lower(): c for c in CATEGORIES | ARCHIVES}

EXAMPLES = "cs.LG, cs.CL, stat.ML, hep-th, math.CO"


class UnknownCategory(UserError):
    """Raised for a string that is not an arXiv category or archive."""


def normalize_category(text: str) -> str:
    """Return the canonical spelling of a category or archive (``cs.lg`` -> ``cs.LG``)."""
    raw = text.strip().strip(",")
    canon = _BY_LOWER.get(raw.lower())
    if canon:
        return canon
    close = difflib.get_close_matches(raw, sorted(CATEGORIES | ARCHIVES), n=3, cutoff=0.6)
    hint = f" Did you mean {', '.join(close)}?" if close else ""
    shown = raw if len(raw) <= 40 else raw[:39] + "…"
    raise UnknownCategory(
        f"'{shown}' is not an arXiv category.{hint} Examples: {EXAMPLES} "
        "(full list: https://arxiv.org/category_taxonomy)."
    )


def normalize_categories(items: list[str] | tuple[str, ...]) -> tuple[str, ...]:
    """Validate and de-duplicate, keeping order; accepts comma- or space-separated input."""
    out: list[str] = []
    for item in items:
        for part in item.replace(",", " ").split():
            canon = normalize_category(part)
            if canon not in out:
                out.append(canon)
    return tuple(out)


def in_category_set(category: str, wanted: frozenset[str] | set[str]) -> bool:
    """True when ``category`` is one of ``wanted`` or belongs to a wanted archive."""
    if category in wanted:
        return True
    archive = category.split(".", 1)[0]
    return archive != category and archive in wanted
