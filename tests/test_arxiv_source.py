"""arXiv in: the real feed parser and the real `arxiv` client against the fake on 127.0.0.1."""

from __future__ import annotations

import datetime as dt
import itertools
import logging
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bot.arxiv_source import parse_feed, submission_window
from bot.config import Config
from bot.delivery import deliver
from bot.engine import Engine
from bot.errors import SourceError, UserError
from bot.models import Subscription
from bot.politeness import PoliteSession, Throttle, retry_after_seconds
from tests.conftest import DAY
from tests.fakes import corpus
from tests.fakes.arxiv import FakeArxiv
from tests.fakes.recorder import RecordingAdapter


def test_fetch_stores_papers_and_announcements(engine: Engine) -> None:
    store = engine.store
    day = dt.date.fromisoformat(DAY)
    rows = store.announced_on(day, ["cs.LG", "cs.CL"])
    assert len(rows) > 150
    # Every stored paper is the real one from the corpus.
    by_id = corpus.papers_by_id()
    for p, listings in rows[:50]:
        real = by_id[p.id]
        assert p.title == " ".join(real["title"].split())
        assert next(iter(p.categories)) == real["categories"][0]
        assert all(t in ("new", "cross") for _, t in listings)
    assert store.last_fetch().status == "ok"


def test_refetch_writes_no_duplicates(engine: Engine) -> None:
    papers, anns = engine.store.count_papers(), engine.store.announcement_count()
    report = engine.fetch()
    assert report.status == "ok"
    assert (report.new_papers, report.updated_papers, report.announcements) == (0, 0, 0)
    assert (engine.store.count_papers(), engine.store.announcement_count()) == (papers, anns)


async def test_v2_updates_the_paper_and_is_never_sent_again(
    engine: Engine, fake_arxiv: FakeArxiv
) -> None:
    day, day2 = dt.date.fromisoformat(DAY), dt.date(2026, 1, 23)
    pid = next(
        p.id for p, _ in engine.store.announced_on(day, ["cs.LG"]) if p.primary_category == "cs.LG"
    )
    real = dict(corpus.papers_by_id()[pid])
    # Two chats that take replacements too, so the announce-type policy lets v2 through and
    # only dedup by base id can keep it from the chat that already has v1.
    base = Subscription(
        None,
        "test",
        "had-v1",
        ("cs.LG",),
        keywords=(real["title"],),
        announce_types=("new", "cross", "replace", "replace-cross"),
        min_score=1.0,
    )
    had_v1 = engine.store.upsert_subscription(base)
    fresh = engine.store.upsert_subscription(replace(base, chat="fresh"))
    first = engine.digests([had_v1], day)[0]
    assert [i.paper.id for i in first.items] == [pid]
    report = await deliver(engine.store, RecordingAdapter(), first)
    assert report.complete and report.sent == 2

    real.update(id=f"{pid}v2", version="v2", title=real["title"] + " (revised)")
    fake_arxiv.add_item("2026-01-23", real, announce_type="replace")
    fake_arxiv.day = "2026-01-23"
    before = engine.store.count_papers()
    fetched = engine.fetch()
    assert fetched.status == "ok" and fetched.updated_papers >= 1
    stored = engine.store.get_paper(pid)
    assert stored is not None and stored.version == 2 and stored.title.endswith("(revised)")
    assert engine.store.get_paper(f"{pid}v2") is None
    assert engine.store.count_papers() == before + fetched.new_papers
    rows = engine.store.announced_on(day2, [stored.primary_category])
    assert [dict(ls)[stored.primary_category] for p, ls in rows if p.id == pid] == ["replace"]

    again, other = engine.digests([had_v1, fresh], day2)
    assert again.items == []  # the chat that has v1 does not get v2 as another paper
    assert [(i.paper.id, i.paper.version, i.announce_type) for i in other.items] == [
        (pid, 2, "replace")
    ]


def test_announce_types_are_per_category(engine: Engine) -> None:
    day = dt.date.fromisoformat(DAY)
    rows = engine.store.announced_on(day, ["cs.AI", "cs.LG"])
    mixed = [(p, dict(ls)) for p, ls in rows if len(ls) > 1]
    assert mixed
    for p, ls in mixed:
        for cat, atype in ls.items():
            assert atype == ("new" if cat == p.primary_category else "cross")


def _bare_engine(make_config: Callable[..., Config]) -> Engine:
    return Engine(make_config(**{"learning.enabled": False}))


@pytest.mark.parametrize(
    ("mode", "status", "says"),
    [
        ("empty", "empty", "weekend or holiday"),
        ("error", "error", "refused the feed"),
        ("malformed", "error", "not valid XML"),
        ("http500", "error", "HTTP 500"),
    ],
)
def test_bad_feeds_end_in_a_clear_log_line(
    make_config: Callable[..., Config],
    fake_arxiv: FakeArxiv,
    caplog: pytest.LogCaptureFixture,
    mode: str,
    status: str,
    says: str,
) -> None:
    fake_arxiv.rss_mode = mode
    eng = _bare_engine(make_config)
    with caplog.at_level(logging.INFO):
        report = eng.fetch()
    assert report.status == status
    assert says in report.summary()
    assert eng.store.last_fetch().status == status
    assert any(says.split()[0] in r.getMessage() for r in caplog.records)


def test_weekend_feed_is_empty(make_config: Callable[..., Config], fake_arxiv: FakeArxiv) -> None:
    fake_arxiv.day = "2026-01-24"  # a Saturday
    report = _bare_engine(make_config).fetch()
    assert report.status == "empty"


def test_unknown_category_feed_uses_arxivs_error_text(fake_arxiv: FakeArxiv) -> None:
    import requests

    body = requests.get(fake_arxiv.url + "/rss/astroph", timeout=5).content
    with pytest.raises(SourceError, match="Bad archive 'astroph'"):
        parse_feed(body, "x")


def test_real_recorded_feeds_parse() -> None:
    big = parse_feed(corpus.raw_bytes("rss2_multi-archive_2024-11-28.xml"))
    assert big.day == dt.date(2024, 11, 28)
    assert len(big.items) == 1504
    kinds = {it.announce_type for it in big.items}
    assert kinds == {"new", "cross", "replace"}
    first = big.items[0].paper
    assert first.id == "2411.17700" and first.version == 1 and first.categories == ("cs.CY",)
    assert first.abstract.startswith("This study investigates")
    empty = parse_feed(corpus.raw_bytes("rss2_empty_test-archive_2024-11-28.xml"))
    assert empty.items == [] and empty.day == dt.date(2024, 11, 28)


def test_hung_socket_times_out(make_config: Callable[..., Config], fake_arxiv: FakeArxiv) -> None:
    fake_arxiv.rss_mode = "hang"
    eng = Engine(
        make_config(**{"arxiv.timeout_s": 0.5, "arxiv.retries": 0, "learning.enabled": False})
    )
    report = eng.fetch()  # returns at all only because the socket timeout fires
    assert report.status == "error"
    assert "did not answer within 0.5 s" in report.message
    assert len(fake_arxiv.request_times("/rss")) == 1  # retries 0: one request, abandoned
    assert eng.store.last_fetch().status == "error"


@pytest.mark.parametrize("shared", [False, True])
def test_politeness_rule_itself(tmp_path: Path, shared: bool) -> None:
    """Turns taken from many threads (and Throttle objects on one file) are spaced."""
    path = tmp_path / "turn" if shared else None
    throttles = [Throttle(0.2, path) for _ in range(3 if shared else 1)]
    spans: list[tuple[float, float]] = []
    lock = threading.Lock()

    def call(i: int) -> None:
        with throttles[i % len(throttles)].turn():
            start = time.monotonic()
            time.sleep(0.01)  # the request itself
            with lock:
                spans.append((start, time.monotonic()))

    threads = [threading.Thread(target=call, args=(i,)) for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    spans.sort()
    # Each turn starts at least the interval after the previous one *ended*.
    gaps = [b[0] - a[1] for a, b in itertools.pairwise(spans)]
    assert len(gaps) == 5 and min(gaps) >= 0.19, gaps


def test_a_process_killed_during_its_turn_passes_the_turn_on(tmp_path: Path) -> None:
    """SIGKILL of the process holding the turn (mid-request): the lock dies with it, and the
    next process waits a full interval from the killed one's request, then goes."""
    path = tmp_path / "turn"
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, time\n"
            "from bot.politeness import Throttle\n"
            f"with Throttle(1.0, {str(path)!r}).turn():\n"
            "    print(time.time(), flush=True)\n"
            "    time.sleep(600)\n",
        ],
        cwd=Path(__file__).resolve().parents[1],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None
        started = float(holder.stdout.readline())  # it holds the turn: its request is out
    finally:
        holder.kill()
        holder.wait(timeout=30)
    with Throttle(1.0, path).turn():
        went = time.time()
    assert went - started >= 1.0


def test_retry_after_pushes_every_process_back(tmp_path: Path) -> None:
    first, second = Throttle(0.05, tmp_path / "turn"), Throttle(0.05, tmp_path / "turn")
    with first.turn():
        first.hold_off(0.5)  # arXiv answered 503 with Retry-After: 0.5
    t0 = time.monotonic()
    with second.turn():
        waited = time.monotonic() - t0
    assert waited >= 0.45
    assert retry_after_seconds("7") == 7
    assert retry_after_seconds("nan") is None and retry_after_seconds("soon") is None
    assert retry_after_seconds("Wed, 21 Oct 2015 07:28:00 GMT") == 0  # in the past


def test_rss_api_and_pdf_share_one_throttle(
    make_config: Callable[..., Config], fake_arxiv: FakeArxiv
) -> None:
    eng = Engine(make_config(**{"arxiv.request_interval_s": 0.3, "learning.enabled": False}))
    src = eng.source
    assert src.client._session is src.session
    src.fetch_feed(["cs.LG"])
    src.lookup(["2601.14053"])
    src.download_pdf("2601.14053")
    src.fetch_feed(["cs.CL"])
    times = sorted(fake_arxiv.request_times())
    gaps = [b - a for a, b in itertools.pairwise(times)]
    assert len(times) == 4
    # Measured where arXiv would measure it: at the server, on arrival.
    assert min(gaps) >= 0.3, gaps


def test_session_always_has_a_timeout(monkeypatch: pytest.MonkeyPatch) -> None:
    import requests

    seen: dict[str, Any] = {}

    def fake_request(self: Any, method: str, url: str, **kw: Any) -> requests.Response:
        seen.update(kw)
        resp = requests.Response()
        resp.status_code = 200
        return resp

    monkeypatch.setattr(requests.Session, "request", fake_request)
    PoliteSession(Throttle(0), timeout=7).get("http://127.0.0.1:9/")
    assert seen["timeout"] == 7


def test_lookup_by_any_id_form(make_config: Callable[..., Config]) -> None:
    eng = _bare_engine(make_config)
    p = eng.lookup("https://arxiv.org/abs/2601.14053v1")
    assert p.title.startswith("LLMOrbit")
    assert eng.store.get_paper("2601.14053") is not None  # stored for next time
    with pytest.raises(Exception, match=r"arXiv has no paper 2601\.99999"):
        eng.lookup("2601.99999")
    with pytest.raises(UserError, match="is not an arXiv id"):
        eng.lookup("hep-th/99")


def test_missed_days_are_caught_up_through_the_api(
    make_config: Callable[..., Config], fake_arxiv: FakeArxiv
) -> None:
    eng = _bare_engine(make_config)
    assert eng.fetch().status == "ok"  # Thu 2026-01-22
    fake_arxiv.day = "2026-01-28"  # the next Wednesday: Fri, Mon, Tue were missed
    report = eng.fetch()
    assert report.status == "ok"
    assert report.backfilled == [dt.date(2026, 1, 23), dt.date(2026, 1, 26), dt.date(2026, 1, 27)]
    friday = eng.store.announced_on(dt.date(2026, 1, 23), eng.all_categories())
    real = {p["base_id"] for p in corpus.papers_on("2026-01-23")}
    assert friday and {p.id for p, _ in friday} <= real
    assert len({p.id for p, _ in friday} & real) > 50
    calls = [c for c in fake_arxiv.calls if c.path.endswith("/api/query")]
    assert any("submittedDate" in c.query.get("search_query", "") for c in calls)


def test_submission_window_is_the_previous_business_day() -> None:
    start, end = submission_window(dt.date(2026, 1, 26))  # a Monday: Thu 14:00 → Fri 14:00 ET
    assert (start.date(), end.date()) == (dt.date(2026, 1, 22), dt.date(2026, 1, 23))
    assert end.hour == 19  # 14:00 EST in UTC


def test_days_back_backfills_on_first_fetch(make_config: Callable[..., Config]) -> None:
    eng = Engine(make_config(**{"arxiv.days_back": 3, "learning.enabled": False}))
    report = eng.fetch()
    assert report.backfilled == [dt.date(2026, 1, 19), dt.date(2026, 1, 20), dt.date(2026, 1, 21)]


def test_default_throttle_is_three_seconds(make_config: Callable[..., Config]) -> None:
    from bot.config import ArxivSection

    assert ArxivSection().request_interval_s == 3.0
    eng = Engine(make_config(**{"learning.enabled": False}))
    # Shared through a file beside the database, so other herald processes wait their turn.
    assert eng.source.throttle.path == Path(str(eng.config.database_path) + ".arxiv-turn")


def test_retry_after_from_arxiv_is_honoured(
    make_config: Callable[..., Config], fake_arxiv: FakeArxiv
) -> None:
    fake_arxiv.rss_mode = "http503"
    fake_arxiv.retry_after = 1
    eng = Engine(make_config(**{"learning.enabled": False, "arxiv.retries": 1}))
    report = eng.fetch()
    assert report.status == "error" and "HTTP 503" in report.message
    first, second = fake_arxiv.request_times("/rss/")
    # The interval is 0.05 s here, but arXiv asked for a second: the retry waited for it.
    assert second - first >= 1.0


_XML_TEXT = st.text(
    alphabet=st.characters(
        blacklist_categories=("Cs", "Cc"), blacklist_characters="\ufffe\uffff"
    ).filter(lambda c: c not in "\x85\u2028\u2029")
    | st.sampled_from(list("<>&\"' \n\t")),
    min_size=1,
    max_size=300,
).filter(lambda t: t.strip())


def _feed(title: str, abstract: str) -> bytes:
    from lxml import etree

    rss = etree.Element("rss", version="2.0", nsmap={"arxiv": "http://arxiv.org/schemas/atom"})
    channel = etree.SubElement(rss, "channel")
    etree.SubElement(channel, "title").text = "cs.LG updates on arXiv.org"
    etree.SubElement(channel, "pubDate").text = "Thu, 22 Jan 2026 00:00:00 -0500"
    item = etree.SubElement(channel, "item")
    etree.SubElement(item, "title").text = title
    etree.SubElement(item, "link").text = "https://arxiv.org/abs/2601.19278"
    desc = "arXiv:2601.19278v1 Announce Type: new \nAbstract: " + abstract
    etree.SubElement(item, "description").text = desc
    etree.SubElement(item, "guid").text = "oai:arXiv.org:2601.19278v1"
    etree.SubElement(item, "category").text = "cs.LG"
    return etree.tostring(rss, xml_declaration=True, encoding="UTF-8")


@settings(max_examples=300, deadline=None)
@given(title=_XML_TEXT, abstract=_XML_TEXT)
def test_rss_text_is_stored_exactly_as_arxiv_published_it(title: str, abstract: str) -> None:
    """arXiv's titles and descriptions are plain text: k<n, m>2 and A & B survive ingestion
    unchanged (an HTML sanitizer would drop or re-escape them)."""
    (item,) = parse_feed(_feed(title, abstract)).items
    assert item.paper.abstract == abstract.strip()
    assert item.paper.title == " ".join(title.split())


def test_inequalities_survive_from_the_fake_arxiv_into_storage(
    make_config: Callable[..., Config], fake_arxiv: FakeArxiv
) -> None:
    text = "We show k<n and m>2 hold; A & B < C >= D &amp; not an entity."
    fake_arxiv.add_item(DAY, {"id": "2601.99990", "categories": ["cs.LG"], "abstract": text})
    eng = _bare_engine(make_config)
    assert eng.fetch().status == "ok"
    assert eng.store.get_paper("2601.99990").abstract == text
