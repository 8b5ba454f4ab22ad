"""An HTTP-level fake of arXiv: rss.arxiv.org feeds, the export.arxiv.org query API and PDFs.

Everything it serves is built from the real corpus in ``tests/fakes/corpus.py`` and mirrors the
real responses recorded in ``raw/`` byte for byte where we have them: for the all-archives
feed of 2024-11-28 the fake's output equals the recorded feed except ``<lastBuildDate>``
(``tests/test_fake_arxiv.py`` checks this).

Routes
  ``GET /rss/{cats}``   RSS 2.0 as rss.arxiv.org serves it (arXiv/arxiv-feed rules).
  ``GET /api/query``    Atom 1.0 in the 2026 export.arxiv.org format.
  ``GET /pdf/{id}``     a real, small PDF generated with fpdf2 from the paper's metadata.

Knobs (plain attributes, set them from the test thread at any time)
  ``day``        'YYYY-MM-DD' announcement day the RSS feed shows (default ``DEFAULT_DAY``).
  ``rss_mode``   normal | empty | error | malformed | http500 | http503 | hang
  ``api_mode``   normal | http500 | http503 | hang
  ``pdf_mode``   normal | corrupt | http500 | hang
  ``pdf_unavailable``   base ids whose PDF route answers 404, as for a paper without a PDF.
  ``retry_after``     seconds sent in ``Retry-After`` with a 503.
  ``skip_weekends``   True: Saturdays/Sundays give an empty channel, as on arXiv.
  ``links_to_self``   True: abs/pdf links in feeds point at this fake instead of arxiv.org.
  ``last_build_date`` None or an RFC 822 string for ``<lastBuildDate>``.

"hang" modes never answer until the server stops; ``stop()`` wakes them, so shutdown is quick.
"""

from __future__ import annotations

import asyncio
import base64
import datetime as dt
import functools
import hashlib
import random
import re
import threading
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from aiohttp import web
from lxml import etree

from tests.fakes import corpus
from tests.fakes.base import FakeServer

#: The day the RSS feed shows by default: the real all-archives feed of Thu 2024-11-28
#: (1,504 items with real versions and announce types; 367 of them in cs.LG/cs.AI/cs.CL).
DEFAULT_DAY = "2024-11-28"

RSS_MODES = ("normal", "empty", "error", "malformed", "http500", "http503", "hang")
API_MODES = ("normal", "http500", "http503", "hang")
PDF_MODES = ("normal", "corrupt", "http500", "hang")

# -- taxonomy (arxiv-base taxonomy/definitions.py) -----------------------------------------------
#: Active archives, in the order rss.arxiv.org lists them in its "Bad archive" error.
ARCHIVES_ACTIVE = [
    *("astro-ph", "cond-mat", "cs", "econ", "eess", "gr-qc", "hep-ex", "hep-lat", "hep-ph"),
    *("hep-th", "math", "math-ph", "nlin", "nucl-ex", "nucl-th", "physics", "q-bio", "q-fin"),
    *("quant-ph", "stat", "test"),
]
#: Old archives arXiv folded into a category; the feed still accepts their names.
ARCHIVES_SUBSUMED = {
    "acc-phys": "physics.acc-ph",
    "adap-org": "nlin.AO",
    "alg-geom": "math.AG",
    "ao-sci": "physics.ao-ph",
    "atom-ph": "physics.atom-ph",
    "bayes-an": "physics.data-an",
    "chao-dyn": "nlin.CD",
    "chem-ph": "physics.chem-ph",
    "cmp-lg": "cs.CL",
    "comp-gas": "nlin.CG",
    "dg-ga": "math.DG",
    "funct-an": "math.FA",
    "mtrl-th": "cond-mat.mtrl-sci",
    "patt-sol": "nlin.PS",
    "plasm-ph": "physics.plasm-ph",
    "q-alg": "math.QA",
    "solv-int": "nlin.SI",
    "supr-con": "cond-mat.supr-con",
}
_SUBJECTS = {
    "astro-ph": "CO EP GA HE IM SR",
    "cond-mat": "dis-nn mes-hall mtrl-sci other quant-gas soft stat-mech str-el supr-con",
    "cs": "AI AR CC CE CG CL CR CV CY DB DC DL DM DS ET FL GL GR GT HC IR IT LG LO MA MM MS NA "
    "NE NI OH OS PF PL RO SC SD SE SI SY",
    "econ": "EM GN TH",
    "eess": "AS IV SP SY",
    "math": "AC AG AP AT CA CO CT CV DG DS FA GM GN GR GT HO IT KT LO MG MP NA NT OA OC PR QA "
    "RA RT SG SP ST",
    "nlin": "AO CD CG PS SI",
    "physics": "acc-ph ao-ph app-ph atm-clus atom-ph bio-ph chem-ph class-ph comp-ph data-an "
    "ed-ph flu-dyn gen-ph geo-ph hist-ph ins-det med-ph optics plasm-ph pop-ph soc-ph space-ph",
    "q-bio": "BM CB GN MN NC OT PE QM SC TO",
    "q-fin": "CP EC GN MF PM PR RM ST TR",
    "stat": "AP CO ME ML OT TH",
    "test": "dis-nn mes-hall mtrl-sci soft stat-mech str-el supr-con",
}
#: archive -> its categories; archives without subject classes are their own single category.
ARCHIVE_CATEGORIES: dict[str, tuple[str, ...]] = {
    a: tuple(f"{a}.{s}" for s in _SUBJECTS[a].split()) if a in _SUBJECTS else (a,)
    for a in ARCHIVES_ACTIVE
}
ARCHIVE_CATEGORIES.update({a: (c,) for a, c in ARCHIVES_SUBSUMED.items()})
CATEGORIES = frozenset(c for cats in ARCHIVE_CATEGORIES.values() for c in cats)
#: Category aliases (``alt_name``): the feed for one also lists papers filed under the other.
_ALIASES = {
    "cs.IT": "math.IT",
    "cs.NA": "math.NA",
    "cs.SY": "eess.SY",
    "math.MP": "math-ph",
    "math.ST": "stat.TH",
    "q-fin.EC": "econ.GN",
}
ALIASES = {**_ALIASES, **{v: k for k, v in _ALIASES.items()}}

# -- feed constants ------------------------------------------------------------------------------
RSS_BASE = "http://rss.arxiv.org/rss/"
RESULT_LIMIT = 2000  # arxiv-feed database.py result_limit
VERSION_THRESHOLD = 6  # replacements are only listed below this version
DEFAULT_RIGHTS = "http://arxiv.org/licenses/nonexclusive-distrib/1.0/"
ARXIV_TZ = ZoneInfo("America/New_York")
_TYPE_ORDER = {"replace-cross": 1, "replace": 2, "cross": 3, "new": 4}

NS_ARXIV = "http://arxiv.org/schemas/atom"
NS_DC = "http://purl.org/dc/elements/1.1/"
NS_ATOM = "http://www.w3.org/2005/Atom"
NS_CONTENT = "http://purl.org/rss/1.0/modules/content/"
NS_OPENSEARCH = "http://a9.com/-/spec/opensearch/1.1/"
_RSS_NSMAP = {"arxiv": NS_ARXIV, "dc": NS_DC, "atom": NS_ATOM, "content": NS_CONTENT}
_API_NSMAP = {"opensearch": NS_OPENSEARCH, "arxiv": NS_ARXIV, None: NS_ATOM}

_NEW_ID = re.compile(r"(?P<base>\d{4}\.\d{4,5})(?:v(?P<v>\d+))?")
_OLD_ID = re.compile(r"(?P<base>[a-z][a-z-]*(?:\.[A-Z]{2})?/\d{7})(?:v(?P<v>\d+))?")
_XML_BAD = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff\ud800-\udfff]")

_HTML_404 = """<!DOCTYPE html>
<html lang="en">
<head><title>Article identifier '{id}' not recognized</title></head>
<body>
<h1>Article identifier '{id}' not recognized</h1>
<p>You might instead try to <a href="/find">search for articles</a> using title or author
information.</p>
<p>For additional help on arXiv identifiers, see
<a href="https://info.arxiv.org/help/arxiv_identifier.html">understanding the arXiv
identifier</a>.</p>
</body>
</html>
"""
_HTML_ERROR = """<!DOCTYPE html>
<html><head><title>{status} {reason}</title></head>
<body><h1>{status} {reason}</h1><p>{text}</p></body></html>
"""


class FeedError(Exception):
    """An rss.arxiv.org validation error: served as the real "Feed error" channel."""


def split_id(text: str) -> tuple[str, int | None] | None:
    """``'2411.17700v2'`` -> ``('2411.17700', 2)``; None when not an arXiv id at all."""
    m = _NEW_ID.fullmatch(text) or _OLD_ID.fullmatch(text)
    if not m:
        return None
    return m["base"], int(m["v"]) if m["v"] else None


def paper_version(paper: dict) -> int:
    """The paper's current version: corpus ``version`` when known, else 1."""
    v = paper.get("version")
    if v:
        return int(str(v).lstrip("v"))
    if paper.get("id") and (parts := split_id(paper["id"])) and parts[1]:
        return parts[1]
    return 1


def _clean(text: str | None) -> str:
    """Drop characters XML 1.0 cannot carry (lxml refuses them)."""
    return _XML_BAD.sub("", text or "")


def _rfc822(when: dt.datetime) -> str:
    return when.strftime("%a, %d %b %Y %H:%M:%S %z")


def _arxiv_midnight(day: str) -> dt.datetime:
    """Start of ``day`` in arXiv's business time zone (-0500 in winter, -0400 in summer)."""
    return dt.datetime.combine(dt.date.fromisoformat(day), dt.time(), tzinfo=ARXIV_TZ)


def _id_month(base_id: str) -> dt.datetime:
    digits = base_id.split("/")[-1][:4] if "/" in base_id else base_id[:4]
    yy, mm = int(digits[:2]), max(1, min(12, int(digits[2:4])))
    year = 1900 + yy if yy >= 91 else 2000 + yy
    return dt.datetime(year, mm, 1, tzinfo=dt.UTC)


def _parse_ts(text: str) -> dt.datetime:
    if len(text) == 10:  # date-only values (4,035 papers): midnight UTC of that day
        return dt.datetime.fromisoformat(text).replace(tzinfo=dt.UTC)
    return dt.datetime.fromisoformat(text.replace("Z", "+00:00")).astimezone(dt.UTC)


def _before_announcement(day: str) -> dt.datetime:
    """18:00Z on the business day before ``day`` (Monday -> Friday)."""
    prev = dt.date.fromisoformat(day) - dt.timedelta(days=1)
    while prev.weekday() >= 5:
        prev -= dt.timedelta(days=1)
    return dt.datetime.combine(prev, dt.time(18, 0), tzinfo=dt.UTC)


def _is_replacement(paper: dict) -> bool:
    return paper_version(paper) > 1 or paper.get("announce_type") in ("replace", "replace-cross")


def published_at(paper: dict) -> dt.datetime:
    """When v1 was submitted (Atom ``<published>``).

    Only 4,140 corpus papers carry ``published``.  For the others we DERIVE it from the
    announcement day: arXiv's submission deadline is 14:00 US Eastern on the business day
    before an announcement, so a new paper gets 18:00Z of the previous weekday (Monday's
    papers -> Friday 18:00Z), never earlier than the month in its id.  A replacement (v2+)
    announced that day was first submitted earlier: it gets the first of its id's month, as
    do papers with no dates at all.
    """
    if paper.get("published"):
        return _parse_ts(paper["published"])
    month = _id_month(paper["base_id"])
    if paper.get("announced") and not _is_replacement(paper):
        return max(_before_announcement(paper["announced"]), month)
    return month


def updated_at(paper: dict) -> dt.datetime:
    """Atom ``<updated>``: the corpus value, else the announcement-derived time for v2+."""
    published = published_at(paper)
    if paper.get("updated"):
        return max(_parse_ts(paper["updated"]), published)
    if paper.get("announced") and _is_replacement(paper):
        return max(_before_announcement(paper["announced"]), published)
    return published


def _atom_ts(when: dt.datetime) -> str:
    return when.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def normalize_paper(paper: dict) -> dict:
    """Fill the corpus fields a hand-written test paper may leave out."""
    p = dict(paper)
    ident = p.get("id") or p.get("base_id")
    if not ident:
        raise ValueError("paper needs an 'id' or 'base_id'")
    parts = split_id(ident)
    if parts is None:
        raise ValueError(f"not an arXiv id: {ident!r}")
    p.setdefault("base_id", parts[0])
    if parts[1]:  # a version in the id wins over a ``version`` field
        p["version"] = f"v{parts[1]}"
    p.setdefault("title", f"Untitled paper {p['base_id']}")
    p.setdefault("authors", ["A. Author"])
    p.setdefault("categories", [p.get("primary_category") or "cs.LG"])
    p.setdefault("primary_category", p["categories"][0])
    p.setdefault("abstract", "No abstract.")
    for key in ("published", "updated", "announced", "comment", "doi", "journal_ref"):
        p.setdefault(key, None)
    return p


# -- rss.arxiv.org ---------------------------------------------------------------------------------
def parse_rss_query(query: str) -> tuple[list[str], list[str]]:
    """Validate ``cs.LG+math`` like arxiv-feed's ``validate_request``: (archives, categories)."""
    parts = query.split("+")
    if not parts or any(not p.strip() for p in parts):
        raise FeedError(
            f"Invalid archive specification '{query}'. Correct format is one or more archive "
            "names delimited by '+'. Each name can be either of the form 'archive' or "
            "'archive.category'. For example: 'math+cs.CG' (all from math and only "
            "computational geometry from computer science)."
        )
    archives: list[str] = []
    categories: list[str] = []
    for name in parts:
        bits = name.split(".")
        if len(bits) > 2:
            raise FeedError(
                f"Bad archive/subject class structure '{name}'. Valid names include an "
                "archive, possibly followed by a single period and subject class."
            )
        arch = bits[0].lower()
        if arch not in ARCHIVE_CATEGORIES:
            raise FeedError(
                f"Bad archive '{arch}'. Valid archive names are: {', '.join(ARCHIVES_ACTIVE)}."
            )
        if len(bits) == 1:
            archives.append(arch)
            continue
        upper, lower = f"{arch}.{bits[1].upper()}", f"{arch}.{bits[1].lower()}"
        if upper in CATEGORIES:
            categories.append(upper)
        elif lower in CATEGORIES:
            categories.append(lower)
        else:
            raise FeedError(
                f"Bad subject class '{bits[1]}'. Valid subject classes for the archive "
                f"'{arch}' are: {', '.join(ARCHIVE_CATEGORIES[arch])}."
            )
    return archives, categories


def wanted_categories(archives: list[str], categories: list[str]) -> set[str]:
    """Every category id a feed request covers, aliases included."""
    out: set[str] = set()
    for cat in [c for a in archives for c in ARCHIVE_CATEGORIES[a]] + categories:
        out.add(cat)
        if cat in ALIASES:
            out.add(ALIASES[cat])
    return out


def listing_type(action: str, primary_in_set: bool) -> str:
    """arxiv-feed's rule: new/cross/replace/replace-cross from the action and the primary."""
    if action == "new" and primary_in_set:
        return "new"
    if action in ("new", "cross"):
        return "cross"
    return "replace" if primary_in_set else "replace-cross"


def _sub(parent: etree._Element, tag: str, text: str | None = None, **attrib: str):
    el = etree.SubElement(parent, tag, attrib)
    if text is not None:
        el.text = _clean(text)
    return el


def _rss_channel(title: str, link: str, description: str, day: str, build: str, editor: str):
    rss = etree.Element("rss", nsmap=_RSS_NSMAP)
    rss.set("version", "2.0")
    channel = _sub(rss, "channel")
    _sub(channel, "title", title)
    _sub(channel, "link", link)
    _sub(channel, "description", description)
    _sub(channel, f"{{{NS_ATOM}}}link", href=link, rel="self", type="application/rss+xml")
    _sub(channel, "docs", "http://www.rssboard.org/rss-specification")
    _sub(channel, "language", "en-us")
    _sub(channel, "lastBuildDate", build)
    _sub(channel, "managingEditor", editor)
    _sub(channel, "pubDate", _rfc822(_arxiv_midnight(day)))
    return rss, channel


def _xml_bytes(root: etree._Element) -> bytes:
    return etree.tostring(root, pretty_print=True, xml_declaration=True, encoding="UTF-8")


def rss_error_feed(query: str, message: str, day: str, build: str) -> bytes:
    """The real "Feed error for query" channel (raw/rss2_error_bad-archive_2024-11-28.xml)."""
    link = RSS_BASE + query
    rss, _ = _rss_channel(
        f"Feed error for query: {link}", link, message, day, build, "rss-help.arxiv.org"
    )
    return _xml_bytes(rss)


# -- the fake -------------------------------------------------------------------------------------
class FakeArxiv(FakeServer):
    """rss.arxiv.org + export.arxiv.org/api/query + arxiv.org/pdf on one loopback port."""

    def __init__(self, day: str = DEFAULT_DAY, *, links_to_self: bool = False) -> None:
        super().__init__()
        self.day = day
        self.rss_mode = "normal"
        self.api_mode = "normal"
        self.pdf_mode = "normal"
        #: Base ids whose PDF arXiv does not have (withdrawn, or source-only): 404 like arXiv.
        self.pdf_unavailable: set[str] = set()
        self.retry_after = 2
        self.skip_weekends = True
        self.links_to_self = links_to_self
        self.last_build_date: str | None = None
        self._items_lock = threading.Lock()
        self._extra: dict[str, dict[str, tuple[dict, str | None]]] = {}
        self._overlay: dict[str, dict] = {}
        self._pdf_cache: dict[tuple[str, int], bytes] = {}
        self._release: asyncio.Event | None = None

    # -- convenience URLs -------------------------------------------------------------------
    @property
    def rss_url_template(self) -> str:
        return f"{self.url}/rss/{{categories}}"

    @property
    def api_url(self) -> str:
        return f"{self.url}/api/query"

    @property
    def pdf_url_template(self) -> str:
        return f"{self.url}/pdf/{{id}}"

    def request_times(self, prefix: str = "") -> list[float]:
        """Monotonic arrival times of the requests whose path starts with ``prefix``."""
        with self._lock:
            return [c.at for c in self.calls if c.path.startswith(prefix)]

    # -- test data --------------------------------------------------------------------------
    def add_item(self, day: str, paper: dict, announce_type: str | None = None) -> dict:
        """Announce ``paper`` on ``day`` (on top of the corpus) and return the stored dict.

        ``paper`` needs at least ``id`` (``2411.17700v2`` style, version optional); missing
        fields get defaults.  A paper already in the corpus is replaced for that day, and its
        newest version wins in the API and PDF routes too.  ``announce_type`` (new, cross,
        replace, replace-cross) is used verbatim; None means "work it out like arXiv" from the
        dict's own ``announce_type`` (replace/replace-cross -> a replacement, anything else ->
        a new submission), giving new/cross/replace/replace-cross per requested categories.
        """
        if announce_type is not None and announce_type not in _TYPE_ORDER:
            raise ValueError(f"unknown announce_type {announce_type!r}")
        p = normalize_paper(paper)
        p["announced"] = day
        with self._items_lock:
            self._extra.setdefault(day, {})[p["base_id"]] = (p, announce_type)
            old = self._overlay.get(p["base_id"]) or corpus.papers_by_id().get(p["base_id"])
            if old is None or paper_version(p) >= paper_version(old):
                self._overlay[p["base_id"]] = p
            for key in [k for k in list(self._pdf_cache) if k[0] == p["base_id"]]:
                self._pdf_cache.pop(key, None)
        return p

    def clear_items(self) -> None:
        with self._items_lock:
            self._extra.clear()
            self._overlay.clear()
            self._pdf_cache.clear()

    def lookup(self, base_id: str) -> dict | None:
        """The paper as the fake currently knows it (injected version first)."""
        with self._items_lock:
            if base_id in self._overlay:
                return self._overlay[base_id]
        return corpus.papers_by_id().get(base_id)

    def _all_papers(self) -> list[dict]:
        with self._items_lock:
            overlay = dict(self._overlay)
        out = [overlay.pop(p["base_id"], p) for p in corpus.load_papers()]
        return out + list(overlay.values())

    # -- server plumbing --------------------------------------------------------------------
    def setup_routes(self, app: web.Application) -> None:
        self._release = asyncio.Event()  # created on the fake's own loop
        app.router.add_get("/rss/{cats:.*}", self._rss)
        app.router.add_get("/api/query", self._api)
        app.router.add_get("/pdf/{ident:.+}", self._pdf)

    async def on_shutdown(self) -> None:
        if self._release is not None:
            self._release.set()

    async def _hang(self) -> web.Response:
        assert self._release is not None
        await self._release.wait()
        return web.Response(status=503, text="shutting down")

    def _status(self, status: int, text: str = "") -> web.Response:
        reason = {500: "Internal Server Error", 503: "Service Unavailable"}.get(status, "Error")
        headers = {"Retry-After": str(self.retry_after)} if status == 503 else None
        body = _HTML_ERROR.format(status=status, reason=reason, text=text or reason)
        return web.Response(status=status, text=body, content_type="text/html", headers=headers)

    # -- RSS --------------------------------------------------------------------------------
    def _build_date(self) -> str:
        if self.last_build_date:
            return self.last_build_date
        # Deterministic: an hour after the announcement went out (arXiv midnight + 1 h).
        return _rfc822((_arxiv_midnight(self.day) + dt.timedelta(hours=1)).astimezone(dt.UTC))

    def _day_papers(self, day: str) -> list[tuple[dict, str | None]]:
        with self._items_lock:
            extra = dict(self._extra.get(day, {}))
        rows = [(p, None) for p in corpus.papers_on(day) if p["base_id"] not in extra]
        return rows + list(extra.values())

    def listings(self, query: str, day: str | None = None) -> list[tuple[str, dict]]:
        """``(announce_type, paper)`` in feed order for a valid ``cs.LG+cs.AI``-style query."""
        day = day or self.day
        archives, categories = parse_rss_query(query)
        if self.skip_weekends and not corpus.is_weekday(day):
            return []
        wanted = wanted_categories(archives, categories)
        rows: list[tuple[str, dict]] = []
        for paper, forced in self._day_papers(day):
            if not wanted.intersection(paper["categories"]):
                continue
            if forced is not None:
                rows.append((forced, paper))
                continue
            known = paper.get("announce_type")
            if known in ("replace", "replace-cross"):
                action = "replace"
            elif known == "cross" and paper.get("announce_type_source") == "rss.arxiv.org feed":
                action = "cross"  # a cross-list *action* on an older paper (all-archives feed)
            else:
                action = "new"
            if action == "replace" and paper_version(paper) >= VERSION_THRESHOLD:
                continue
            primary_in = paper["primary_category"] in wanted
            rows.append((listing_type(action, primary_in), paper))
        # arxiv-feed queries ORDER BY type (replace-cross, replace, cross, new), id DESC,
        # LIMIT 2000; feedgen then *prepends* each entry, so the document reads new, cross,
        # replace, replace-cross with ids ascending (exactly what the recorded feed shows).
        rows.sort(key=lambda r: (_TYPE_ORDER[r[0]], r[1]["base_id"]), reverse=True)
        rows.sort(key=lambda r: _TYPE_ORDER[r[0]])
        return list(reversed(rows[:RESULT_LIMIT]))

    def build_rss(self, query: str, day: str | None = None, *, empty: bool = False) -> bytes:
        """The RSS document ``/rss/{query}`` serves for ``day`` (ignores ``rss_mode``)."""
        day = day or self.day
        try:
            archives, categories = parse_rss_query(query)
        except FeedError as exc:
            return rss_error_feed(query, str(exc), day, self._build_date())
        listed = [] if empty else self.listings(query, day)
        topics = archives + categories
        rss, channel = _rss_channel(
            f"{', '.join(topics)} updates on arXiv.org",
            RSS_BASE + "+".join(topics),
            f"{', '.join(topics)} updates on the arXiv.org e-print archive.",
            day,
            self._build_date(),
            "rss-help@arxiv.org",
        )
        skip = _sub(channel, "skipDays")
        _sub(skip, "day", "Saturday")
        _sub(skip, "day", "Sunday")
        pub = _rfc822(_arxiv_midnight(day))
        extras = corpus.rss_item_extras() if day == "2024-11-28" else {}
        known = corpus.papers_by_id()
        for kind, paper in listed:
            # licence/DOI/exact creator string of the recorded feed, for corpus papers only
            extra = extras.get(paper["base_id"], {}) if known.get(paper["base_id"]) is paper else {}
            self._rss_item(channel, kind, paper, pub, extra)
        return _xml_bytes(rss)

    def _abs_base(self) -> str:
        return f"{self.url}/abs/" if self.links_to_self else "https://arxiv.org/abs/"

    def _rss_item(self, channel, kind: str, paper: dict, pub: str, extra: dict) -> None:
        version = paper_version(paper)
        if kind.startswith("replace") and version < 2 and not paper.get("version"):
            version = 2  # a replacement is at least v2 (only hand-made papers lack a version)
        full_id = f"{paper['base_id']}v{version}"
        item = _sub(channel, "item")
        _sub(item, "title", paper["title"])
        _sub(item, "link", self._abs_base() + paper["base_id"])
        _sub(item, "description", f"arXiv:{full_id} Announce Type: {kind} \nAbstract: ")
        item[-1].text += _clean(paper["abstract"])
        _sub(item, "guid", f"oai:arXiv.org:{full_id}", isPermaLink="false")
        for cat in paper["categories"]:
            if cat in CATEGORIES:  # ACM/MSC codes some API records carry are not feed categories
                _sub(item, "category", cat)
        _sub(item, "pubDate", pub)
        _sub(item, f"{{{NS_ARXIV}}}announce_type", kind)
        rights = paper.get("rights") or paper.get("license") or extra.get("rights")
        _sub(item, f"{{{NS_DC}}}rights", rights or DEFAULT_RIGHTS)
        doi = paper.get("doi") or extra.get("doi")
        journal_ref = paper.get("journal_ref") or extra.get("journal_ref")
        if doi:
            _sub(item, f"{{{NS_ARXIV}}}DOI", doi)
        if journal_ref:
            _sub(item, f"{{{NS_ARXIV}}}journal_reference", journal_ref.strip())
        _sub(item, f"{{{NS_DC}}}creator", extra.get("creator") or ", ".join(paper["authors"]))

    async def _rss(self, request: web.Request) -> web.StreamResponse:
        query = request.match_info["cats"]
        mode = self.rss_mode
        if mode == "hang":
            return await self._hang()
        if mode == "http500":
            return self._status(500)
        if mode == "http503":
            return self._status(503, "Service temporarily unavailable, please retry later.")
        day, build = self.day, self._build_date()
        if mode == "error":
            msg = f"Bad archive '{query}'. Valid archive names are: {', '.join(ARCHIVES_ACTIVE)}."
            body = rss_error_feed(query, msg, day, build)
        elif mode == "empty":
            body = self.build_rss(query, day, empty=True)
        else:
            body = await asyncio.get_running_loop().run_in_executor(
                None, self.build_rss, query, day
            )
            if mode == "malformed":
                cut = max(len(body) * 3 // 5, min(len(body), 900))
                body = body[:cut] + b"<item><title>Broken & <b>unclosed</title>\n\x00\xff\xfe"
        headers = {"ETag": hashlib.sha256(body).hexdigest()}
        return web.Response(body=body, content_type="application/rss+xml", headers=headers)

    # -- API --------------------------------------------------------------------------------
    async def _api(self, request: web.Request) -> web.StreamResponse:
        mode = self.api_mode
        if mode == "hang":
            return await self._hang()
        if mode in ("http500", "http503"):
            return self._status(int(mode[4:]))
        status, body = await asyncio.get_running_loop().run_in_executor(
            None, self.build_api, dict(request.query)
        )
        return web.Response(
            status=status,
            body=body,
            headers={"Content-Type": "application/atom+xml; charset=UTF-8"},
        )

    def build_api(self, params: dict[str, str]) -> tuple[int, bytes]:
        """(status, Atom bytes) for an ``/api/query`` call with these query parameters."""
        search_query = params.get("search_query", "")
        raw_ids = params.get("id_list", "")
        try:
            start = int(params.get("start", "0") or 0)
            max_results = int(params.get("max_results", "10") or 10)
        except ValueError:
            msg = "start and max_results must be integers"
            return 400, self._api_error("start_or_max_results_not_an_integer", msg)
        if start < 0 or max_results < 0:
            return 400, self._api_error("start_must_be_non_negative", "start must be >= 0")
        ids = [i.strip() for i in raw_ids.split(",") if i.strip()]
        wanted: list[tuple[str, int | None]] = []
        for ident in ids:
            parts = split_id(ident)
            if parts is None:
                return 400, self._api_error(
                    f"incorrect_id_format_for_{ident}", f"incorrect id format for {ident}"
                )
            wanted.append(parts)
        try:
            matcher = parse_search_query(search_query) if search_query.strip() else None
        except ValueError as exc:
            return 400, self._api_error("malformed_query", str(exc))

        results: list[tuple[dict, int]] = []
        if wanted:
            for base, version in wanted:
                paper = self.lookup(base)
                if paper is None:
                    continue
                latest = paper_version(paper)
                if version is not None and paper.get("version") and version > latest:
                    continue  # no such version
                if matcher is None or matcher(paper):
                    results.append((paper, version or latest))
        elif matcher is not None:
            hits = [p for p in self._all_papers() if matcher(p)]
            sort_by = params.get("sortBy", "relevance")
            descending = params.get("sortOrder", "descending") != "ascending"
            # "relevance" has no meaning for these queries; like a date sort it is newest first.
            key = updated_at if sort_by == "lastUpdatedDate" else published_at
            hits.sort(key=lambda p: (key(p), p["base_id"]), reverse=descending)
            results = [(p, paper_version(p)) for p in hits]
        page = results[start : start + min(max_results, 2000)]
        return 200, self._api_feed(search_query, raw_ids, start, max_results, len(results), page)

    def _api_header(self, feed_id: str, title: str, updated: str) -> etree._Element:
        feed = etree.Element(f"{{{NS_ATOM}}}feed", nsmap=_API_NSMAP)
        _sub(feed, f"{{{NS_ATOM}}}id", feed_id)
        _sub(feed, f"{{{NS_ATOM}}}title", title)
        _sub(feed, f"{{{NS_ATOM}}}updated", updated)
        return feed

    def _api_error(self, slug: str, message: str) -> bytes:
        """The real 400 body (raw/api_atom_2026-04-12_error400_idlist_abc.xml)."""
        now = _atom_ts(dt.datetime.now(dt.UTC))
        href = f"https://arxiv.org/api/errors#{slug}"
        feed = self._api_header("https://arxiv.org/", "arXiv Search Results", now)
        _sub(feed, f"{{{NS_OPENSEARCH}}}itemsPerPage", "1")
        _sub(feed, f"{{{NS_OPENSEARCH}}}totalResults", "1")
        _sub(feed, f"{{{NS_OPENSEARCH}}}startIndex", "0")
        entry = _sub(feed, f"{{{NS_ATOM}}}entry")
        _sub(entry, f"{{{NS_ATOM}}}id", href)
        _sub(entry, f"{{{NS_ATOM}}}title", "Error")
        _sub(entry, f"{{{NS_ATOM}}}updated", now)
        _sub(entry, f"{{{NS_ATOM}}}link", href=href, rel="alternate", type="text/html")
        _sub(entry, f"{{{NS_ATOM}}}summary", message)
        author = _sub(entry, f"{{{NS_ATOM}}}author")
        _sub(author, f"{{{NS_ATOM}}}name", "arXiv api core")
        return _xml_bytes(feed)

    def _api_feed(
        self, sq: str, ids: str, start: int, max_results: int, total: int, page: list
    ) -> bytes:
        title = (
            f"arXiv Query: search_query={sq}&id_list={ids}&start={start}&max_results={max_results}"
        )
        digest = hashlib.sha1(title.encode()).digest()
        token = base64.b64encode(digest).decode().rstrip("=").replace("+", "x").replace("/", "y")
        feed_id = f"https://arxiv.org/api/{token}"
        feed = self._api_header(feed_id, title, _atom_ts(dt.datetime.now(dt.UTC)))
        api = f"{self.url}/api/query" if self.links_to_self else "https://arxiv.org/api/query"
        href = f"{api}?search_query={sq}&start={start}&max_results={max_results}&id_list={ids}"
        _sub(feed, f"{{{NS_ATOM}}}link", href=href, type="application/atom+xml")
        _sub(feed, f"{{{NS_OPENSEARCH}}}itemsPerPage", str(max_results))
        _sub(feed, f"{{{NS_OPENSEARCH}}}totalResults", str(total))
        _sub(feed, f"{{{NS_OPENSEARCH}}}startIndex", str(start))
        for paper, version in page:
            self._api_entry(feed, paper, version)
        return _xml_bytes(feed)

    def _api_entry(self, feed: etree._Element, paper: dict, version: int) -> None:
        a = f"{{{NS_ATOM}}}"
        x = f"{{{NS_ARXIV}}}"
        full_id = f"{paper['base_id']}v{version}"
        site = self.url if self.links_to_self else "https://arxiv.org"
        entry = _sub(feed, a + "entry")
        _sub(entry, a + "id", f"http://arxiv.org/abs/{full_id}")
        _sub(entry, a + "title", paper["title"])
        _sub(entry, a + "updated", _atom_ts(updated_at(paper)))
        _sub(entry, a + "link", href=f"{site}/abs/{full_id}", rel="alternate", type="text/html")
        _sub(
            entry,
            a + "link",
            href=f"{site}/pdf/{full_id}",
            rel="related",
            type="application/pdf",
            title="pdf",
        )
        _sub(entry, a + "summary", paper["abstract"])
        for cat in paper["categories"]:
            _sub(entry, a + "category", term=_clean(cat), scheme="http://arxiv.org/schemas/atom")
        _sub(entry, a + "published", _atom_ts(published_at(paper)))
        if paper.get("comment"):
            _sub(entry, x + "comment", paper["comment"])
        _sub(entry, x + "primary_category", term=paper["primary_category"])
        if paper.get("journal_ref"):
            _sub(entry, x + "journal_ref", paper["journal_ref"])
        for name in paper["authors"]:
            author = _sub(entry, a + "author")
            _sub(author, a + "name", name)
        if paper.get("doi"):
            _sub(entry, x + "doi", paper["doi"])
            _sub(
                entry,
                a + "link",
                rel="related",
                href=f"https://doi.org/{paper['doi']}",
                title="doi",
            )

    # -- PDF --------------------------------------------------------------------------------
    async def _pdf(self, request: web.Request) -> web.StreamResponse:
        mode = self.pdf_mode
        if mode == "hang":
            return await self._hang()
        if mode == "http500":
            return self._status(500)
        ident = request.match_info["ident"]
        if ident.endswith(".pdf"):
            ident = ident[:-4]
        parts = split_id(ident)
        paper = self.lookup(parts[0]) if parts else None
        too_new = paper is not None and parts and parts[1] and paper.get("version")
        if too_new and parts[1] > paper_version(paper):
            paper = None  # that version does not exist
        if paper is None or parts is None or paper["base_id"] in self.pdf_unavailable:
            return web.Response(
                status=404, text=_HTML_404.format(id=ident), content_type="text/html"
            )
        if mode == "corrupt":
            junk = b"<!DOCTYPE html><html><body>Not a PDF\x00\x01\x02" + bytes(range(256)) * 8
            return web.Response(body=junk, content_type="application/pdf")
        version = parts[1] or paper_version(paper)
        key = (paper["base_id"], version)
        data = self._pdf_cache.get(key)
        if data is None:
            data = await asyncio.get_running_loop().run_in_executor(None, build_pdf, paper, version)
            self._pdf_cache[key] = data
        return web.Response(body=data, content_type="application/pdf")


# -- search_query ---------------------------------------------------------------------------------
_TOKEN = re.compile(
    r"""\s*(?:
        (?P<lp>\() | (?P<rp>\)) |
        (?P<op>ANDNOT|AND|OR)(?=[\s(]) |
        (?P<field>[a-zA-Z_]+):(?:
            \[(?P<lo>\d{8,14})\s+TO\s+(?P<hi>\d{8,14})\] |
            "(?P<phrase>[^"]*)" |
            (?P<word>[^\s()"]+)
        ) |
        "(?P<bphrase>[^"]*)" |
        (?P<bare>[^\s()"]+)
    )""",
    re.X,
)
_FIELDS = {"cat", "ti", "abs", "au", "all", "id", "co", "jr", "submittedDate", "lastUpdatedDate"}


def _range_ts(digits: str, end: bool) -> dt.datetime:
    digits = digits.ljust(14, "9" if end else "0")[:14] if len(digits) < 14 else digits
    y, mo, d = int(digits[:4]), int(digits[4:6]), int(digits[6:8])
    h, mi, s = min(int(digits[8:10]), 23), min(int(digits[10:12]), 59), min(int(digits[12:14]), 59)
    return dt.datetime(y, mo, d, h, mi, s, tzinfo=dt.UTC)


def _term(field: str, value: str | None, rng: tuple[str, str] | None):
    if field not in _FIELDS:
        raise ValueError(f"unknown search field {field!r}")
    if rng is not None:
        lo, hi = _range_ts(rng[0], False), _range_ts(rng[1], True)
        when = published_at if field == "submittedDate" else updated_at
        return lambda p: lo <= when(p) <= hi
    value = (value or "").lower()
    if field == "cat":
        if value.endswith("*"):
            return lambda p: any(c.lower().startswith(value[:-1]) for c in p["categories"])
        return lambda p: value in (c.lower() for c in p["categories"])
    if field == "id":
        base = (split_id(value) or (value, None))[0]
        return lambda p: p["base_id"].lower() == base
    words = value.split()

    def text(p: dict) -> str:
        parts = {
            "ti": [p["title"]],
            "abs": [p["abstract"]],
            "au": p["authors"],
            "co": [p.get("comment") or ""],
            "jr": [p.get("journal_ref") or ""],
        }.get(field) or [p["title"], p["abstract"], *p["authors"], p.get("comment") or ""]
        return " ".join(parts).lower()

    return lambda p: all(w.replace("_", " ") in text(p) for w in words)


def parse_search_query(query: str):
    """Compile an arXiv ``search_query`` into a predicate over corpus papers.

    Supports ``field:value`` terms (cat, ti, abs, au, all, id, co, jr; ``cat:cs.*`` prefix),
    quoted phrases, ``submittedDate:[YYYYMMDDHHMM TO YYYYMMDDHHMM]`` (and
    ``lastUpdatedDate``), parentheses and left-associative AND / OR / ANDNOT.
    """
    tokens: list[tuple[str, Any]] = []
    pos = 0
    query = query.strip()
    while pos < len(query):
        m = _TOKEN.match(query, pos)
        if not m or m.end() == pos:
            raise ValueError(f"malformed query near {query[pos : pos + 20]!r}")
        pos = m.end()
        if m["lp"]:
            tokens.append(("(", None))
        elif m["rp"]:
            tokens.append((")", None))
        elif m["op"]:
            tokens.append(("op", m["op"]))
        elif m["field"]:
            rng = (m["lo"], m["hi"]) if m["lo"] else None
            tokens.append(("term", _term(m["field"], m["phrase"] or m["word"], rng)))
        elif m["bphrase"] is not None or m["bare"]:
            tokens.append(("term", _term("all", m["bphrase"] or m["bare"], None)))
        while pos < len(query) and query[pos].isspace():
            pos += 1

    idx = 0

    def expr():
        nonlocal idx
        left = atom()
        while idx < len(tokens) and tokens[idx][0] == "op":
            op = tokens[idx][1]
            idx += 1
            right = atom()
            left = _combine(op, left, right)
        return left

    def atom():
        nonlocal idx
        if idx >= len(tokens):
            raise ValueError("query ends unexpectedly")
        kind, val = tokens[idx]
        idx += 1
        if kind == "term":
            return val
        if kind == "(":
            inner = expr()
            if idx >= len(tokens) or tokens[idx][0] != ")":
                raise ValueError("unbalanced parentheses")
            idx += 1
            return inner
        raise ValueError(f"unexpected {kind!r} in query")

    result = expr()
    if idx != len(tokens):
        raise ValueError("unexpected trailing input in query")
    return result


def _combine(op: str, left, right):
    if op == "AND":
        return lambda p: left(p) and right(p)
    if op == "OR":
        return lambda p: left(p) or right(p)
    return lambda p: left(p) and not right(p)


# -- PDF ------------------------------------------------------------------------------------------
_FONT_DIR = Path("/usr/share/fonts/truetype/dejavu")
_SECTIONS = (
    ("Introduction", "Related Work", "Method", "Experiments", "Conclusion"),
    ("Introduction", "Background", "Approach", "Evaluation", "Discussion"),
    ("Introduction", "Preliminaries", "Main Results", "Conclusions"),
)
_FILLERS = (
    "We now describe {topic} in more detail.",
    "This section makes the setting of {topic} precise and fixes notation.",
    "Prior work on {topic} has mostly relied on hand-tuned heuristics.",
    "We report results averaged over five random seeds unless stated otherwise.",
    "The remaining details are deferred to the appendix.",
    "Table 1 summarises the main quantitative findings for {topic}.",
    "These observations motivate the design choices discussed below.",
    "Limitations of {topic} and directions for future work are discussed at the end.",
)
_SENTENCE = re.compile(r"(?<=[.!?])\s+(?=[A-Z(\[])")


def _is_latin1(text: str) -> bool:
    try:
        text.encode("latin-1")
    except UnicodeEncodeError:
        return False
    return True


def _latin1(text: str) -> str:
    return text.encode("latin-1", "replace").decode("latin-1")


@functools.lru_cache(maxsize=1)
def _by_primary() -> dict[str, list[dict]]:
    out: dict[str, list[dict]] = {}
    for p in corpus.load_papers():
        out.setdefault(p["primary_category"], []).append(p)
    return out


def _references(paper: dict, rng: random.Random, n: int = 10) -> list[str]:
    """``n`` reference strings: real titles of other corpus papers in the same field."""
    pool = [p for p in _by_primary().get(paper["primary_category"], []) if p is not paper]
    if len(pool) < n:
        pool = [p for p in corpus.load_papers() if p["base_id"] != paper["base_id"]]
    refs = []
    for ref in rng.sample(pool, n):
        names = ref["authors"]
        who = names[0] if len(names) == 1 else f"{names[0]} et al."
        if len(names) == 2:
            who = f"{names[0]} and {names[1]}"
        year = _id_month(ref["base_id"]).year
        title = " ".join(ref["title"].split())
        sep = " " if who.endswith(".") else ". "
        refs.append(f"{who}{sep}{title}. arXiv preprint arXiv:{ref['base_id']}, {year}.")
    return refs


def build_pdf(paper: dict, version: int) -> bytes:
    """A small but real paper-shaped PDF: title, authors, abstract, sections, references."""
    from fpdf import FPDF
    from fpdf.enums import XPos, YPos

    rng = random.Random(f"{paper['base_id']}v{version}")
    refs = _references(paper, rng)
    pdf = FPDF(format="letter")
    pdf.set_margins(25, 25, 25)
    pdf.set_auto_page_break(True, margin=22)
    text = " ".join([paper["title"], paper["abstract"], *paper["authors"][:12], *refs])
    regular = _FONT_DIR / "DejaVuSerif.ttf"
    if _is_latin1(text) or not regular.is_file():
        # Core fonts are 2-3x faster to lay out but only speak latin-1 (anything else is "?").
        family, fix = "Times", _latin1
    else:  # DejaVu covers Greek, Cyrillic, maths symbols, most accents
        pdf.add_font("Body", "", str(regular))
        pdf.add_font("Body", "B", str(_FONT_DIR / "DejaVuSerif-Bold.ttf"))
        pdf.add_font("Body", "I", str(_FONT_DIR / "DejaVuSerif-Italic.ttf"))
        family, fix = "Body", str

    def norm(text: str) -> str:
        return fix(" ".join((text or "").split()))

    title = norm(paper["title"])
    authors = paper["authors"]
    shown = authors if len(authors) <= 12 else [*authors[:10], f"and {len(authors) - 10} others"]
    full_id = f"{paper['base_id']}v{version}"
    when = published_at(paper)
    pdf.set_title(title)
    pdf.set_author(norm(", ".join(authors[:50])))
    pdf.set_subject(f"arXiv:{full_id} [{paper['primary_category']}]")
    pdf.set_creator("arxiv-herald FakeArxiv (fpdf2)")
    pdf.set_creation_date(when)
    pdf.add_page()

    def para(text: str, size: float = 10.5, style: str = "", align: str = "J", h: float = 5.2):
        pdf.set_font(family, style, size)
        pdf.multi_cell(0, h, text, align=align, new_x=XPos.LMARGIN, new_y=YPos.NEXT)

    pdf.set_text_color(120, 120, 120)
    stamp = f"arXiv:{full_id} [{paper['primary_category']}] {when:%d %b %Y}"
    para(stamp, size=8, align="L", h=4)
    pdf.set_text_color(0, 0, 0)
    pdf.ln(6)
    para(title, size=16, style="B", align="C", h=8)
    pdf.ln(3)
    para(norm(", ".join(shown)), size=11, align="C", h=6)
    pdf.ln(6)
    para("Abstract", size=11, style="B", align="C", h=6)
    pdf.set_x(pdf.l_margin + 10)
    pdf.set_font(family, "", 10)
    abstract = norm(paper["abstract"])
    pdf.multi_cell(pdf.epw - 20, 5, abstract, align="J", new_x=XPos.LMARGIN, new_y=YPos.NEXT)
    pdf.ln(5)

    sentences = [s for s in _SENTENCE.split(abstract) if s.strip()] or [abstract]
    words = [w for w in re.findall(r"[A-Za-z][A-Za-z-]{3,}", title)][:4]
    topic = " ".join(words).lower() or "this problem"
    headings = rng.choice(_SECTIONS)[: rng.choice((3, 4))]
    for number, heading in enumerate(headings, 1):
        para(f"{number} {heading}", size=12, style="B", align="L", h=7)
        for _ in range(2):
            picked = rng.sample(sentences, min(len(sentences), rng.randint(2, 4)))
            fillers = [f.format(topic=topic) for f in rng.sample(_FILLERS, 2)]
            para(" ".join(picked[:1] + fillers[:1] + picked[1:] + fillers[1:]))
            pdf.ln(2)
        pdf.ln(2)

    para("References", size=12, style="B", align="L", h=7)
    for number, ref in enumerate(refs, 1):
        para(f"[{number}] {fix(ref)}", size=9, align="L", h=4.5)
        pdf.ln(1)
    return bytes(pdf.output())
