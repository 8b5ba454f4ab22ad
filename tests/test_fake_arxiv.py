"""The arXiv fake is only useful if real clients see it as they see arXiv: prove it.

Everything here talks to the fake over loopback with the real libraries (requests, feedparser,
arxiv 4.x, pypdf) and compares against the real responses recorded in ``raw/``.
"""

from __future__ import annotations

import io
import json
import re
import socket
import time

import arxiv
import feedparser
import pypdf
import pytest
import requests
from lxml import etree

from tests.fakes import corpus
from tests.fakes.arxiv import DEFAULT_DAY, FakeArxiv, listing_type

ALL_ARCHIVES = (
    "astro-ph+cond-mat+physics+quant-ph+math+cs+econ+eess+gr-qc+hep-ex+hep-lat+hep-ph+hep-th"
    "+math-ph+nlin+nucl-ex+nucl-th+q-bio+q-fin+stat"
)
_BUILD = re.compile(rb"<lastBuildDate>[^<]*</lastBuildDate>")


def _no_build_date(body: bytes) -> bytes:
    return _BUILD.sub(b"", body).rstrip()


@pytest.fixture(autouse=True)
def _loopback_only(monkeypatch):
    """Fail loudly instead of ever reaching the real arXiv."""
    real_connect = socket.socket.connect

    def connect(sock, address):
        inet = sock.family in (socket.AF_INET, socket.AF_INET6)
        if inet and address[0] not in ("127.0.0.1", "::1", "localhost"):
            raise AssertionError(f"test tried to reach non-loopback address {address!r}")
        return real_connect(sock, address)

    monkeypatch.setattr(socket.socket, "connect", connect)


@pytest.fixture(scope="module")
def fake():
    with FakeArxiv() as server:
        yield server


@pytest.fixture(autouse=True)
def _reset(request):
    yield
    if "fake" in request.fixturenames:
        server = request.getfixturevalue("fake")
        server.day = DEFAULT_DAY
        server.rss_mode = server.api_mode = server.pdf_mode = "normal"
        server.clear_items()


def _get(url: str, **kw) -> requests.Response:
    return requests.get(url, timeout=kw.pop("timeout", 10), **kw)


def _client(fake: FakeArxiv, page_size: int = 100) -> arxiv.Client:
    client = arxiv.Client(page_size=page_size, delay_seconds=0, num_retries=0)
    client.query_url_format = fake.api_url + "?{}"  # never the real export.arxiv.org
    return client


# -- corpus --------------------------------------------------------------------------------------
def test_corpus_loader():
    papers = corpus.load_papers()
    assert corpus.data_dir() == corpus.TEST_DATA  # the repository's own data, nothing else
    assert len(papers) == len({p["base_id"] for p in papers}) > 6_000
    assert corpus.load_papers() is papers  # cached
    by_id = corpus.papers_by_id()
    assert by_id["2411.17697"]["version"] == "v2"
    days = dict(corpus.announced_days(min_papers=100))
    assert days[DEFAULT_DAY] == 1504 == len(corpus.papers_on(DEFAULT_DAY))
    assert all(n >= 100 for n in days.values())
    assert all(corpus.is_weekday(d) for d, _ in corpus.announced_days(weekdays_only=True))
    assert corpus.raw_path("SOURCES.md").is_file()


# -- RSS -----------------------------------------------------------------------------------------
def test_rss_reproduces_the_recorded_all_archives_feed(fake):
    resp = _get(fake.rss_url_template.format(categories=ALL_ARCHIVES))
    assert resp.status_code == 200
    assert resp.headers["Content-Type"] == "application/rss+xml"
    raw = corpus.raw_bytes("rss2_multi-archive_2024-11-28.xml")
    assert _no_build_date(resp.content) == _no_build_date(raw)  # 2.8 MB, byte for byte


def _raw_items(*base_ids: str) -> bytes:
    """A real feed document holding only the recorded items for these papers."""
    raw = corpus.raw_bytes("rss2_multi-archive_2024-11-28.xml")
    head = raw[: raw.index(b"    <item>")]
    blocks = re.findall(rb"    <item>.*?</item>\n", raw, re.S)
    keep = [b for b in blocks for i in base_ids if f"abs/{i}<".encode() in b]
    return head + b"".join(keep) + b"  </channel>\n</rss>\n"


def test_feedparser_sees_the_same_fields_as_in_the_real_feed(fake):
    real = feedparser.parse(_raw_items("2411.17767", "2411.17697"))
    got = feedparser.parse(_get(fake.rss_url_template.format(categories="cs.LG+cs.AI")).content)
    assert not got.bozo and got.feed.title == "cs.LG, cs.AI updates on arXiv.org"
    assert got.feed.keys() == real.feed.keys()
    fake_by_link = {e.link: e for e in got.entries}
    for want in real.entries:
        mine = fake_by_link[want.link]
        assert mine.keys() == want.keys()
        for key in ("title", "id", "authors", "author", "tags", "published", "rights"):
            assert mine[key] == want[key], key
    # 2411.17767 is a new cs.CV paper cross-listed to cs.LG: "new" in the all-archives feed,
    # "cross" in a cs.LG+cs.AI feed.  2411.17697v2 (cs.CV, cs.AI) is a replace-cross here.
    cross = fake_by_link["https://arxiv.org/abs/2411.17767"]
    assert real.entries[0].arxiv_announce_type == "new"
    assert cross.arxiv_announce_type == "cross"
    assert cross.summary.startswith("arXiv:2411.17767v1 Announce Type: cross \nAbstract: ")
    assert (
        cross.summary.split("\nAbstract: ", 1)[1]
        == real.entries[0].summary.split("\nAbstract: ", 1)[1]
    )
    assert [t.term for t in cross.tags] == ["cs.CV", "cs.LG"]  # primary first
    replaced = fake_by_link["https://arxiv.org/abs/2411.17697"]
    assert replaced.arxiv_announce_type == "replace-cross"
    assert replaced.id == "oai:arXiv.org:2411.17697v2"
    kinds = [e.arxiv_announce_type for e in got.entries]
    assert kinds == sorted(kinds, key=["new", "cross", "replace", "replace-cross"].index)


@pytest.mark.parametrize("category", ["cs.LG", "cs.AI", "cs.CL", "cs.CV", "cs.DC", "stat.ML"])
def test_rss_counts_match_the_real_days_statistics(fake, category):
    stats = json.loads((corpus.data_dir() / corpus.COUNTS_FILE).read_text())
    cat = stats["per_category"][category]
    anyc, prim = cat["listed_in_any_category"], cat["primary_category"]
    kinds = [kind for kind, _ in fake.listings(category)]
    assert kinds.count("new") == prim.get("new", 0)
    assert kinds.count("cross") == anyc.get("new", 0) - prim.get("new", 0) + anyc.get("cross", 0)
    assert kinds.count("replace") == prim.get("replace", 0)
    assert kinds.count("replace-cross") == anyc.get("replace", 0) - prim.get("replace", 0)
    order = ["new", "cross", "replace", "replace-cross"]
    assert kinds == sorted(kinds, key=order.index)
    for kind in order:  # ids ascend within a group, as in the recorded feed
        ids = [p["base_id"] for k, p in fake.listings(category) if k == kind]
        assert ids == sorted(ids)


def test_listing_type_rules():
    assert listing_type("new", True) == "new"
    assert listing_type("new", False) == "cross"
    assert listing_type("cross", True) == "cross"
    assert listing_type("replace", True) == "replace"
    assert listing_type("replace", False) == "replace-cross"


def test_rss_archive_expansion_and_case(fake):
    got = feedparser.parse(_get(f"{fake.url}/rss/CS.lg+math").content)
    assert got.feed.title == "math, cs.LG updates on arXiv.org"  # archives first, like arXiv
    assert got.feed.link == "http://rss.arxiv.org/rss/math+cs.LG"
    cats = {t.term for e in got.entries for t in e.tags}
    assert any(c.startswith("math.") for c in cats) and "cs.LG" in cats


def test_rss_error_and_empty_feeds_are_the_real_ones(fake):
    bad = _get(fake.rss_url_template.format(categories="astroph"))
    assert bad.status_code == 200
    raw = corpus.raw_bytes("rss2_error_bad-archive_2024-11-28.xml")
    assert _no_build_date(bad.content) == _no_build_date(raw)
    parsed = feedparser.parse(bad.content)
    assert not parsed.bozo and not parsed.entries
    assert parsed.feed.title.startswith("Feed error for query")

    subject = feedparser.parse(_get(fake.rss_url_template.format(categories="cs.XX")).content)
    assert subject.feed.description.startswith("Bad subject class 'XX'. Valid subject classes")

    empty = _get(fake.rss_url_template.format(categories="test"))
    raw = corpus.raw_bytes("rss2_empty_test-archive_2024-11-28.xml")
    assert _no_build_date(empty.content) == _no_build_date(raw)

    fake.day = "2026-01-31"  # a Saturday: the corpus has scrape-dated papers, arXiv has none
    weekend = feedparser.parse(_get(fake.rss_url_template.format(categories="cs.LG")).content)
    assert not weekend.bozo and weekend.entries == []
    fake.day = "2026-02-05"
    thursday = feedparser.parse(_get(fake.rss_url_template.format(categories="cs.LG")).content)
    assert len(thursday.entries) > 200
    assert thursday.feed.published == "Thu, 05 Feb 2026 00:00:00 -0500"


def test_rss_failure_modes(fake):
    url = fake.rss_url_template.format(categories="cs.LG")
    fake.rss_mode = "empty"
    parsed = feedparser.parse(_get(url).content)
    assert not parsed.bozo and parsed.entries == [] and parsed.feed.title.startswith("cs.LG")
    fake.rss_mode = "error"
    assert feedparser.parse(_get(url).content).feed.title.startswith("Feed error")
    fake.rss_mode = "malformed"
    assert feedparser.parse(_get(url).content).bozo
    fake.rss_mode = "http500"
    assert _get(url).status_code == 500
    fake.rss_mode = "http503"
    resp = _get(url)
    assert resp.status_code == 503 and resp.headers["Retry-After"] == str(fake.retry_after)


def test_add_item_hostile_title_and_new_version(fake):
    hostile = 'Attention <script>alert("x")</script> & "Friends" \x07 <![CDATA[ ]]>'
    fake.add_item(
        DEFAULT_DAY,
        {
            "id": "2411.99999v1",
            "title": hostile,
            "authors": ["Ada <Lovelace>", "B. & Co"],
            "categories": ["cs.LG", "cs.AI"],
            "abstract": "We show that a < b && c > d. </description><item>",
        },
    )
    base = corpus.papers_by_id()["2411.17697"]
    fake.add_item(DEFAULT_DAY, {**base, "id": "2411.17697v3", "version": "v3"}, "replace")
    body = _get(fake.rss_url_template.format(categories="cs.LG+cs.AI")).content
    got = feedparser.parse(body)
    assert not got.bozo
    by_link = {e.link: e for e in got.entries}
    evil = by_link["https://arxiv.org/abs/2411.99999"]
    assert evil.title == hostile.replace("\x07", "")  # XML 1.0 cannot carry \x07
    assert evil.arxiv_announce_type == "new"
    assert evil.author == "Ada <Lovelace>, B. & Co"
    # feedparser sanitises the description as HTML; the XML itself carries it verbatim
    [item] = [i for i in etree.fromstring(body).iter("item") if "99999" in i.findtext("link")]
    assert item.findtext("description").endswith("a < b && c > d. </description><item>")
    bumped = by_link["https://arxiv.org/abs/2411.17697"]
    assert bumped.id == "oai:arXiv.org:2411.17697v3" and bumped.arxiv_announce_type == "replace"
    [result] = list(_client(fake).results(arxiv.Search(id_list=["2411.17697"])))
    assert result.get_short_id() == "2411.17697v3"


def test_rss_is_capped_at_2000_items_like_arxiv(fake):
    for n in range(600):  # 1,504 real items + 600 new ones in an all-archives feed
        fake.add_item(DEFAULT_DAY, {"id": f"2411.{90000 + n}v1", "categories": ["math.CO"]})
    listed = fake.listings(ALL_ARCHIVES)
    assert len(listed) == 2000
    new_ids = [p["base_id"] for kind, p in listed if kind == "new"]
    # arXiv keeps the highest ids of the lowest-priority group: 104 of the oldest new go
    assert len(new_ids) == 926 + 600 - 104 and new_ids[0] == "2411.17804"
    assert sum(kind == "replace" for kind, _ in listed) == 569


# -- API -----------------------------------------------------------------------------------------
def test_arxiv_client_looks_up_ids(fake):
    client = _client(fake)
    results = list(client.results(arxiv.Search(id_list=["2202.12139", "hep-ph/0301050v1"])))
    assert [r.get_short_id() for r in results] == ["2202.12139v1", "hep-ph/0301050v1"]
    by_id = corpus.papers_by_id()
    first, second = results
    assert first.title == by_id["2202.12139"]["title"]
    assert first.categories == ["cs.SE", "cs.LG"] and first.primary_category == "cs.SE"
    assert first.doi == "10.1109/ICSTW55395.2022.00035" and first.journal_ref
    assert first.pdf_url == "https://arxiv.org/pdf/2202.12139v1"
    assert first.published.isoformat() == "2022-02-24T15:05:19+00:00"
    assert second.title == "Statistical Test of Anarchy" and second.categories == ["hep-ph"]
    assert [a.name for a in second.authors] == by_id["hep-ph/0301050"]["authors"]
    call = fake.calls_to("/api/query")[-1]
    assert call.query["id_list"] == "2202.12139,hep-ph/0301050v1"
    assert list(client.results(arxiv.Search(id_list=["0808.05394"]))) == []  # unknown id


def test_api_entries_match_the_recorded_response(fake):
    raw = corpus.raw_bytes("api_atom_2026-04-12_idlist_0808.05394_1707.08567.xml")
    query = {"search_query": "", "id_list": "0808.05394,1707.08567", "max_results": "100"}
    got = _get(fake.api_url, params=query)
    assert got.status_code == 200
    strip = re.compile(rb"<(id|updated)>[^<]*</\1>\n")
    assert strip.sub(b"", got.content) == strip.sub(b"", raw)


def test_api_invalid_id_is_http_400(fake):
    client = _client(fake)
    with pytest.raises(arxiv.HTTPError) as err:
        list(client.results(arxiv.Search(id_list=["abc"])))
    assert err.value.status == 400
    body = _get(fake.api_url, params={"id_list": "abc"}).content
    raw = corpus.raw_bytes("api_atom_2026-04-12_error400_idlist_abc.xml")
    strip = re.compile(rb"<updated>[^<]*</updated>")
    assert strip.sub(b"", body) == strip.sub(b"", raw)


def test_api_category_search_with_date_range_and_paging(fake):
    client = _client(fake, page_size=40)
    search = arxiv.Search(
        query="(cat:cs.LG OR cat:cs.AI) AND submittedDate:[202602030000 TO 202602042359]",
        max_results=100,
        sort_by=arxiv.SortCriterion.SubmittedDate,
    )
    before = len(fake.calls_to("/api/query"))
    results = list(client.results(search))
    assert len(results) == 100
    assert len(fake.calls_to("/api/query")) - before == 3  # 40 + 40 + 20
    stamps = [r.published for r in results]
    assert stamps == sorted(stamps, reverse=True)
    for r in results:
        assert {"cs.LG", "cs.AI"} & set(r.categories)
        assert "2026-02-03" <= r.published.date().isoformat() <= "2026-02-04"
    # papers without API dates are "published" 18:00Z on the business day before announcement
    by_id = corpus.papers_by_id()
    derived = [r for r in results if not by_id[r.get_short_id().split("v")[0]]["published"]]
    assert derived
    for r in derived:
        announced = by_id[r.get_short_id().split("v")[0]]["announced"]
        assert r.published.hour == 18 and announced in ("2026-02-04", "2026-02-05")


def test_api_failure_modes(fake):
    fake.api_mode = "http500"
    client = _client(fake)
    with pytest.raises(arxiv.HTTPError) as err:
        list(client.results(arxiv.Search(id_list=["2202.12139"])))
    assert err.value.status == 500


# -- PDF -----------------------------------------------------------------------------------------
def _pdf_text(data: bytes) -> str:
    reader = pypdf.PdfReader(io.BytesIO(data))
    return " ".join(" ".join(page.extract_text().split()) for page in reader.pages)


def test_pdf_is_a_real_paper(fake):
    paper = corpus.papers_by_id()["2411.17697"]
    resp = _get(fake.pdf_url_template.format(id="2411.17697v2"))
    assert resp.status_code == 200 and resp.headers["Content-Type"] == "application/pdf"
    assert resp.content.startswith(b"%PDF-")
    text = _pdf_text(resp.content)
    first_sentence = " ".join(paper["abstract"].split()).split(". ")[0]
    assert first_sentence in text
    assert "References" in text and "[10]" in text
    assert " ".join(paper["title"].split())[:40] in text
    again = _get(fake.pdf_url_template.format(id="2411.17697.pdf"))
    assert again.content == resp.content  # cached per id, same for the .pdf spelling
    old = _get(fake.pdf_url_template.format(id="hep-ph/0301050v2"))
    assert old.status_code == 200 and "Statistical Test of Anarchy" in _pdf_text(old.content)


def test_pdf_errors(fake):
    missing = _get(fake.pdf_url_template.format(id="2411.00001"))
    assert missing.status_code == 404 and "text/html" in missing.headers["Content-Type"]
    assert _get(fake.pdf_url_template.format(id="2411.17697v9")).status_code == 404
    fake.pdf_mode = "corrupt"
    junk = _get(fake.pdf_url_template.format(id="2411.17697")).content
    assert not junk.startswith(b"%PDF")
    with pytest.raises(pypdf.errors.PdfReadError):
        pypdf.PdfReader(io.BytesIO(junk))
    fake.pdf_mode = "http500"
    assert _get(fake.pdf_url_template.format(id="2411.17697")).status_code == 500


# -- timing and shutdown -------------------------------------------------------------------------
def test_request_times(fake):
    start = time.monotonic()
    for _ in range(3):
        _get(fake.rss_url_template.format(categories="test"))
    times = fake.request_times("/rss/test")[-3:]
    assert len(times) == 3 and times == sorted(times) and times[0] >= start
    assert fake.request_times("/nothing") == []


@pytest.mark.parametrize(
    "route", ["/rss/cs.LG", "/api/query?id_list=2202.12139", "/pdf/2202.12139"]
)
def test_hang_mode_times_out_and_stops_cleanly(route):
    server = FakeArxiv().start()
    server.rss_mode = server.api_mode = server.pdf_mode = "hang"
    with pytest.raises(requests.exceptions.ReadTimeout):
        requests.get(server.url + route, timeout=0.3)
    server.stop()  # wakes the parked request instead of waiting for it
    assert server._thread is not None and not server._thread.is_alive()
