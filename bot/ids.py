"""arXiv identifiers: every real form in, one canonical (base id, version) out."""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import urlsplit

from bot.errors import UserError

# Archives that used old-style ids (``hep-th/9901001``) before April 2007.
OLD_ARCHIVES = frozenset(
    [
        "acc-phys",
        "adap-org",
        "alg-geom",
        "ao-sci",
        "astro-ph",
        "atom-ph",
        "bayes-an",
        "chao-dyn",
        "chem-ph",
        "cmp-lg",
        "comp-gas",
        "cond-mat",
        "cs",
        "dg-ga",
        "funct-an",
        "gr-qc",
        "hep-ex",
        "hep-lat",
        "hep-ph",
        "hep-th",
        "math",
        "math-ph",
        "mtrl-th",
        "nlin",
        "nucl-ex",
        "nucl-th",
        "patt-sol",
        "physics",
        "plasm-ph",
        "q-alg",
        "q-bio",
        "quant-ph",
        "solv-int",
        "supr-con",
    ]
)

_NEW = re.compile(r"(?P<yymm>\d{4})\.(?P<num>\d{4,5})(?:v(?P<v>\d+))?")
_OLD = re.compile(r"(?P<archive>[a-z][a-z-]*)(?:\.[A-Za-z]{2})?/(?P<num>\d{7})(?:v(?P<v>\d+))?")
_HOSTS = {"arxiv.org", "www.arxiv.org", "export.arxiv.org", "rss.arxiv.org", "lanl.arxiv.org"}
_PATH_KINDS = ("abs", "pdf", "html", "format", "ps")

USAGE = (
    "Give an arXiv id such as 2601.19278, 2601.19278v2, arXiv:2601.19278, "
    "hep-th/9901001 or a link like https://arxiv.org/abs/2601.19278."
)


class InvalidArxivId(UserError):
    """Raised when a string is not any form of arXiv identifier."""


@dataclass(frozen=True, slots=True)
class ArxivId:
    base: str
    version: int | None = None

    def __str__(self) -> str:
        return f"{self.base}v{self.version}" if self.version else self.base


def parse_arxiv_id(text: str) -> ArxivId:
    """Parse any real arXiv id form; raise InvalidArxivId with a helpful message otherwise."""
    raw = (text or "").strip().strip("<>").strip()
    if not raw:
        raise InvalidArxivId(f"No arXiv id given. {USAGE}")
    candidate = raw
    if "://" in candidate or candidate.lower().startswith(("arxiv.org/", "www.arxiv.org/")):
        candidate = _from_url(candidate, raw)
    if candidate[:6].lower() == "arxiv:":
        candidate = candidate[6:].strip()
    if candidate.lower().endswith(".pdf"):
        candidate = candidate[:-4]
    m = _NEW.fullmatch(candidate)
    if m:
        yymm, num = m["yymm"], m["num"]
        month = int(yymm[2:])
        if not 1 <= month <= 12:
            raise InvalidArxivId(f"'{raw}' has month {yymm[2:]}, which does not exist. {USAGE}")
        # Checked first: for an id from before April 2007 the digit counts below say nothing.
        if yymm < "0704":
            raise InvalidArxivId(f"'{raw}' is not a valid arXiv id. {USAGE}")
        # Four-digit numbers were used from 0704 to 1412, five digits from 1501 on.
        if len(num) == 4 and not ("0704" <= yymm <= "1412"):
            raise InvalidArxivId(
                f"'{raw}' is not a valid arXiv id: ids from {yymm} have five digits after "
                f"the dot. {USAGE}"
            )
        if len(num) == 5 and yymm < "1501":
            raise InvalidArxivId(
                f"'{raw}' is not a valid arXiv id: ids before 1501 have four digits after "
                f"the dot. {USAGE}"
            )
        return ArxivId(f"{yymm}.{num}", _version(m["v"], raw))
    m = _OLD.fullmatch(candidate)
    if m and m["archive"] in OLD_ARCHIVES:
        month = int(m["num"][2:4])
        if not 1 <= month <= 12:
            raise InvalidArxivId(f"'{raw}' has month {m['num'][2:4]}, which does not exist.")
        return ArxivId(f"{m['archive']}/{m['num']}", _version(m["v"], raw))
    raise InvalidArxivId(f"'{_clip(raw)}' is not an arXiv id. {USAGE}")


def _version(v: str | None, raw: str) -> int | None:
    if v is None:
        return None
    n = int(v)
    if n < 1:
        raise InvalidArxivId(f"'{raw}' has version v{v}; versions start at v1.")
    return n


def _from_url(url: str, raw: str) -> str:
    if "://" not in url:
        url = "https://" + url
    parts = urlsplit(url)
    host = (parts.hostname or "").lower()
    if host not in _HOSTS:
        raise InvalidArxivId(f"'{_clip(raw)}' is not an arxiv.org link. {USAGE}")
    segments = [s for s in parts.path.split("/") if s]
    if len(segments) < 2 or segments[0] not in _PATH_KINDS:
        raise InvalidArxivId(f"'{_clip(raw)}' does not point at a paper. {USAGE}")
    return "/".join(segments[1:])


def _clip(text: str, limit: int = 80) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"
