"""arXiv in: the daily RSS announcement feed, API lookups and backfill, PDF downloads.

Every request goes through :class:`bot.politeness.PoliteSession` (a 3 s throttle shared by
every herald process on the same database, and a timeout).  Failures never crash a run: they
raise :class:`SourceError` with a message that says what happened, and the caller logs it and
goes on.
"""

from __future__ import annotations

import datetime as dt
import email.utils
import logging
import re
import zoneinfo
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import arxiv
import requests
from lxml import etree

from bot.cards import decode_latex
from bot.categories import in_category_set
from bot.config import ArxivSection
from bot.errors import SourceError
from bot.ids import InvalidArxivId, parse_arxiv_id
from bot.models import Announcement, Paper
from bot.politeness import PoliteSession, Throttle
from bot.scoring import normalize

log = logging.getLogger(__name__)

FEED_CAP = 2000  # arXiv caps a feed at 2000 items
#: Ids asked for in one API request (``id_list``): a library import of 500 arXiv papers is ten
#: requests, not 500.
MAX_IDS_PER_REQUEST = 50
#: A title search quotes at most this many of the title's words.
MAX_TITLE_WORDS = 30
ET = zoneinfo.ZoneInfo("America/New_York")
_DESC = re.compile(
    r"^\s*arXiv:(?P<id>\S+)\s+Announce Type:\s*(?P<type>[\w-]+)\s*(?:Abstract:\s*)?(?P<abs>.*)$",
    re.S,
)


@dataclass
class FeedItem:
    paper: Paper
    announce_type: str


@dataclass
class FeedResult:
    day: dt.date | None
    items: list[FeedItem] = field(default_factory=list)
    url: str = ""
    truncated: bool = False


def derive_announcements(
    item: FeedItem, day: dt.date, fetched: Iterable[str]
) -> list[Announcement]:
    """Per-category announce types from one item of a combined feed.

    In a feed for several categories, ``new`` means primary-in-set.  A category that lists the
    paper but is not its primary sees it as ``cross`` (or ``replace-cross``), exactly as that
    category's own feed would show it.
    """
    wanted = set(fetched)
    p = item.paper
    replaced = item.announce_type.startswith("replace")
    out = []
    for cat in p.categories:
        if not in_category_set(cat, wanted):
            continue
        primary = cat == p.primary_category
        if replaced:
            atype = "replace" if primary else "replace-cross"
        else:
            atype = "new" if primary else "cross"
        out.append(Announcement(p.id, day, cat, atype, p.version))
    return out


def _clean(text: str) -> str:
    return " ".join((text or "").split())


_NS = {"arxiv": "http://arxiv.org/schemas/atom", "dc": "http://purl.org/dc/elements/1.1/"}
# No entities resolved, no network, no huge trees: the feed is data, not a document to expand.
_XML = etree.XMLParser(resolve_entities=False, no_network=True, huge_tree=False)


def parse_feed(content: bytes, url: str = "") -> FeedResult:
    """Parse an rss.arxiv.org RSS 2.0 document; raise SourceError for error/garbled feeds.

    arXiv's titles and descriptions are plain text (``k<n``, ``A & B`` arrive XML-escaped), so
    they are read with an XML parser exactly as published; an RSS library would treat them as
    HTML and sanitize real text away.
    """
    try:
        root = etree.fromstring(content, _XML)
    except etree.XMLSyntaxError as exc:
        # A truncated or garbled feed parses partially at best; storing half a day is worse
        # than retrying the whole day on the next run.
        raise SourceError(
            f"the arXiv feed {url} is not valid XML ({exc}); nothing stored, the next run retries"
        ) from None
    channel = root.find("channel")
    if root.tag != "rss" or channel is None:
        raise SourceError(f"the arXiv feed {url} has no RSS channel; is the rss_url right?")
    title = channel.findtext("title") or ""
    if title.startswith("Feed error"):
        reason = _clean(channel.findtext("description") or "") or title
        raise SourceError(f"arXiv refused the feed {url}: {reason}")
    entries = channel.findall("item")
    items = [it for it in (_parse_item(e) for e in entries) if it is not None]
    day = _feed_day(channel)
    if items and day is None:
        day = dt.datetime.now(ET).date()
    return FeedResult(day=day, items=items, url=url, truncated=len(entries) >= FEED_CAP)


def _feed_day(channel: etree._Element) -> dt.date | None:
    raw = channel.findtext("pubDate") or channel.findtext("lastBuildDate")
    if not raw:
        return None
    try:
        # pubDate is 00:00 US Eastern on the announcement day: keep its own date.
        return email.utils.parsedate_to_datetime(raw).date()
    except (TypeError, ValueError):
        return None


def _parse_item(item: etree._Element) -> FeedItem | None:
    desc = item.findtext("description") or ""
    m = _DESC.match(desc)
    raw_id = m["id"] if m else ""
    if not raw_id:
        guid = item.findtext("guid") or ""
        raw_id = guid.rsplit(":", 1)[-1] if guid.startswith("oai:") else item.findtext("link") or ""
    try:
        aid = parse_arxiv_id(raw_id)
    except InvalidArxivId:
        log.warning("skipping a feed item without a usable arXiv id: %r", raw_id[:80])
        return None
    atype = _clean(item.findtext("arxiv:announce_type", namespaces=_NS) or "")
    atype = atype or (m["type"] if m else "new")
    abstract = (m["abs"] if m else desc).strip()
    cats = tuple(t for t in (_clean(c.text or "") for c in item.findall("category")) if t)
    creators = item.findtext("dc:creator", namespaces=_NS) or ""
    paper = Paper(
        id=aid.base,
        version=aid.version or 1,
        title=_clean(item.findtext("title") or ""),
        authors=tuple(a for a in (_clean(n) for n in creators.split(",")) if a),
        categories=cats,
        abstract=abstract,
        published=None,
        updated=None,
    )
    return FeedItem(paper, atype)


def normalize_title(title: str) -> str:
    """A title reduced to what identifies it: LaTeX decoded, lower-case word tokens (``{BERT}:
    Pre-training`` and ``BERT: pre-training`` are the same title)."""
    return normalize(decode_latex(title).replace("{", "").replace("}", ""))


def result_to_paper(r: arxiv.Result) -> Paper:
    aid = parse_arxiv_id(r.entry_id)
    cats = list(r.categories)
    if r.primary_category:
        cats = [r.primary_category] + [c for c in cats if c != r.primary_category]
    return Paper(
        id=aid.base,
        version=aid.version or 1,
        title=_clean(r.title),
        authors=tuple(a.name for a in r.authors),
        categories=tuple(cats),
        abstract=r.summary.strip(),
        published=r.published.isoformat() if r.published else None,
        updated=r.updated.isoformat() if r.updated else None,
        comment=r.comment,
        doi=r.doi,
        journal_ref=r.journal_ref,
    )


def business_days_before(day: dt.date, n: int) -> dt.date:
    d = day
    while n:
        d -= dt.timedelta(days=1)
        if d.weekday() < 5:
            n -= 1
    return d


def submission_window(day: dt.date) -> tuple[dt.datetime, dt.datetime]:
    """The submissions (UTC) an announcement day's feed is built from, approximately.

    The feed dated D is announced at 20:00 ET the evening before and holds what was
    submitted between the two previous 14:00 ET deadlines.  Holidays are not modelled.
    """
    end_day = business_days_before(day, 1)
    start_day = business_days_before(end_day, 1)
    end = dt.datetime.combine(end_day, dt.time(14), ET).astimezone(dt.UTC)
    start = dt.datetime.combine(start_day, dt.time(14), ET).astimezone(dt.UTC)
    return start, end


def submitted_on(day: dt.date, clause: str, max_results: int) -> arxiv.Search:
    """An API search for ``clause`` among the papers submitted in ``day``'s window, newest
    first."""
    start, end = submission_window(day)
    return arxiv.Search(
        query=f"{clause} AND submittedDate:[{start:%Y%m%d%H%M} TO {end:%Y%m%d%H%M}]",
        max_results=max_results,
        sort_by=arxiv.SortCriterion.SubmittedDate,
        sort_order=arxiv.SortOrder.Descending,
    )


class ArxivSource:
    """Talks to arXiv's RSS, API and PDF endpoints as configured."""

    def __init__(self, cfg: ArxivSection, throttle: Throttle | None = None) -> None:
        self.cfg = cfg
        self.throttle = throttle or Throttle(cfg.request_interval_s)
        self.session = PoliteSession(self.throttle, timeout=cfg.timeout_s)
        self.client = arxiv.Client(page_size=100, delay_seconds=0.0, num_retries=cfg.retries)
        # The throttle lives in the session; the client's own delay would double it.
        self.client._session = self.session
        self.client.query_url_format = cfg.api_url + "?{}"

    # -- RSS ---------------------------------------------------------------------------------
    def rss_url(self, categories: Sequence[str]) -> str:
        return self.cfg.rss_url.format(categories="+".join(categories))

    def fetch_feed(self, categories: Sequence[str]) -> FeedResult:
        """Today's announcements for ``categories`` (one request; split if arXiv truncates)."""
        result = self._fetch_one(categories)
        if result.truncated and len(categories) > 1:
            log.warning(
                "the feed for %s hit arXiv's %d-item cap; fetching each category on its own",
                "+".join(categories),
                FEED_CAP,
            )
            merged: dict[str, FeedItem] = {}
            for cat in categories:
                part = self._fetch_one([cat])
                result.day = result.day or part.day
                for it in part.items:
                    merged.setdefault(it.paper.id, it)
            result.items = list(merged.values())
        return result

    def _fetch_one(self, categories: Sequence[str]) -> FeedResult:
        url = self.rss_url(categories)
        content = self._get(url, "RSS feed")
        return parse_feed(content, url)

    def _get(self, url: str, what: str, max_bytes: int | None = None) -> bytes:
        last: Exception | None = None
        for attempt in range(self.cfg.retries + 1):
            try:
                resp = self.session.get(url, stream=max_bytes is not None)
                if resp.status_code == 200:
                    return resp.content if max_bytes is None else _read_capped(resp, max_bytes)
            except requests.Timeout:
                last = SourceError(
                    f"arXiv {what} {url} did not answer within {self.cfg.timeout_s:g} s"
                )
            except requests.RequestException as exc:
                last = SourceError(f"cannot reach arXiv {what} {url}: {exc.__class__.__name__}")
            else:
                error = NotFound if resp.status_code == 404 else SourceError
                last = error(f"arXiv {what} {url} answered HTTP {resp.status_code}")
                if resp.status_code < 500 and resp.status_code != 429:
                    break
            log.info("%s (attempt %d of %d)", last, attempt + 1, self.cfg.retries + 1)
        assert last is not None
        raise last

    # -- API ---------------------------------------------------------------------------------
    def lookup(self, ids: Sequence[str]) -> list[Paper]:
        """Metadata for ids (any form) through the arXiv API; unknown ids are left out.

        One request per :data:`MAX_IDS_PER_REQUEST` ids (each waits its 3 s turn)."""
        wanted = list(dict.fromkeys(str(parse_arxiv_id(i)) for i in ids))
        out: list[Paper] = []
        for i in range(0, len(wanted), MAX_IDS_PER_REQUEST):
            out += self.lookup_batch(wanted[i : i + MAX_IDS_PER_REQUEST])
        return out

    def lookup_batch(self, ids: Sequence[str]) -> list[Paper]:
        """Up to :data:`MAX_IDS_PER_REQUEST` ids in ONE API request (``id_list``); ids arXiv
        does not know are left out."""
        wanted = list(dict.fromkeys(str(parse_arxiv_id(i)) for i in ids))
        if not wanted:
            return []
        if len(wanted) > MAX_IDS_PER_REQUEST:
            raise ValueError(f"at most {MAX_IDS_PER_REQUEST} ids per request, not {len(wanted)}")
        search = arxiv.Search(id_list=wanted, max_results=len(wanted))
        return [result_to_paper(r) for r in self._one_page(search, len(wanted), "lookup")]

    def search_title(self, title: str, max_results: int = 5) -> list[Paper]:
        """Papers whose title holds ``title``'s words as a phrase (one API request); the caller
        decides which, if any, is the same title."""
        words = " ".join(normalize_title(title).split()[:MAX_TITLE_WORDS])
        if not words:
            return []
        search = arxiv.Search(query=f'ti:"{words}"', max_results=max_results)
        return [result_to_paper(r) for r in self._one_page(search, max_results, "title search")]

    def search_author(self, surname: str, day: dt.date, max_results: int = 200) -> list[Paper]:
        """Papers of ``day``'s submission window with an author of this surname, in any
        category (one request; the caller picks the right person among them)."""
        words = "_".join(w for w in normalize(surname.replace("-", " ")).split() if w.isalnum())
        if not words:
            return []
        search = submitted_on(day, f"au:{words}", max_results)
        return [result_to_paper(r) for r in self._one_page(search, max_results, "author search")]

    def _one_page(self, search: arxiv.Search, size: int, what: str) -> list[arxiv.Result]:
        """The first page of ``search`` only.  ``Client.results`` asks for a further page
        whenever arXiv's total exceeds what came back (an unknown id in an ``id_list`` does
        that), each a request of its own; one page is all a lookup needs."""
        url = self.client._format_url(search, 0, size)
        try:
            feed = self.client._parse_feed(url, first_page=True)
        except arxiv.HTTPError as exc:
            raise SourceError(f"the arXiv API refused the {what} ({exc.status})") from None
        except (requests.RequestException, arxiv.ArxivError) as exc:
            raise SourceError(f"the arXiv API could not be reached: {exc}") from None
        return list(feed.results)

    def backfill(
        self, categories: Sequence[str], day: dt.date, max_results: int = 2000
    ) -> list[tuple[Paper, list[Announcement]]]:
        """Papers submitted in ``day``'s window, as announcements estimated from the API."""
        cats = " OR ".join(f"cat:{c}" if "." in c else f"cat:{c}.*" for c in categories)
        search = submitted_on(day, f"({cats})", max_results)
        try:
            results = list(self.client.results(search))
        except (requests.RequestException, arxiv.ArxivError) as exc:
            raise SourceError(f"arXiv API backfill for {day} failed: {exc}") from None
        out = []
        for r in results:
            paper = result_to_paper(r)
            item = FeedItem(paper, "new")
            anns = derive_announcements(item, day, categories)
            if anns:
                out.append((paper, anns))
        return out

    # -- PDF ---------------------------------------------------------------------------------
    def pdf_url(self, paper_id: str, version: int | None = None) -> str:
        pid = f"{paper_id}v{version}" if version else paper_id
        return self.cfg.pdf_url.format(id=pid)

    def download_pdf(
        self, paper_id: str, version: int | None = None, *, max_bytes: int | None = None
    ) -> bytes:
        """The PDF; :class:`NotFound` when arXiv has none, :class:`PdfTooLarge` past
        ``max_bytes`` (checked while it downloads, so a huge file is never read whole)."""
        url = self.pdf_url(paper_id, version)
        data = self._get(url, "PDF", max_bytes)
        if not data.startswith(b"%PDF"):
            raise NotAPdf(f"arXiv PDF {url} is not a PDF ({len(data)} bytes)")
        return data


class NotFound(SourceError):
    """arXiv answered 404: there is no such document (e.g. a paper without a PDF)."""


class NotAPdf(SourceError):
    """What arXiv sent for a PDF is not one (an error page, a broken file)."""


class PdfTooLarge(SourceError):
    """A PDF is larger than the caller is willing to read."""

    def __init__(self, size: int, limit: int) -> None:
        super().__init__(f"the PDF is {_mb(size)}, more than the {_mb(limit)} limit")
        self.size = size
        self.limit = limit


def _mb(n: int) -> str:
    return f"{n / 1_000_000:.1f} MB" if n >= 100_000 else f"{n / 1000:.0f} kB"


def _read_capped(resp: requests.Response, max_bytes: int) -> bytes:
    """A streamed body, refused as soon as it is (or says it will be) over ``max_bytes``."""
    with resp:
        declared = resp.headers.get("Content-Length", "")
        if declared.isdigit() and int(declared) > max_bytes:
            raise PdfTooLarge(int(declared), max_bytes)
        data = bytearray()
        for chunk in resp.iter_content(64 * 1024):
            data += chunk
            if len(data) > max_bytes:
                raise PdfTooLarge(len(data), max_bytes)
        return bytes(data)
