"""The web app: /healthz, RSS/Atom feeds (parsed with feedparser), the HTML digest page."""

from __future__ import annotations

import asyncio
import html
import sqlite3
from collections.abc import AsyncIterator, Callable
from dataclasses import replace

import aiohttp
import feedparser
import pytest

from bot.app import App, build
from bot.config import Config
from bot.engine import Engine
from bot.models import Paper, Subscription
from bot.service import Service
from tests.conftest import DAY
from tests.fakes.arxiv import FakeArxiv
from tests.fakes.recorder import RecordingAdapter


@pytest.fixture
async def app(make_config: Callable[..., Config], fake_arxiv: FakeArxiv) -> AsyncIterator[App]:
    cfg = make_config(**{"learning.enabled": False, "web.port": 0})
    eng = Engine(cfg)
    assert eng.fetch().status == "ok"
    built = build(cfg, eng, adapters={"test": RecordingAdapter()})
    await built.service.start()
    try:
        yield built
    finally:
        await built.service.stop()


@pytest.fixture
def running(app: App) -> Service:
    return app.service


async def get(svc: Service, path: str) -> tuple[int, str, str]:
    async with aiohttp.ClientSession() as s, s.get(svc.web.url + path) as r:
        return r.status, r.headers.get("Content-Type", ""), await r.text()


async def test_healthz_reports_every_part(running: Service) -> None:
    status, ctype, body = await get(running, "/healthz")
    assert status == 200 and ctype.startswith("application/json")
    import json

    data = json.loads(body)
    assert data["status"] == "ok" and data["database"] is True and data["scheduler"] is True
    assert data["last_fetch"]["day"] == DAY and data["adapters"] == {"test": True}


async def test_healthz_reflects_a_broken_database(running: Service) -> None:
    with running.store._lock:  # not under a query of the start-up catch-up (a segfault)
        running.store.db.conn.close()  # the file vanished / the disk failed
    try:
        status, _, body = await get(running, "/healthz")
        assert status == 503
        assert '"database": false' in body and '"status": "degraded"' in body
    finally:
        running.store.db.conn = sqlite3.connect(running.store.path, check_same_thread=False)
        running.store.db.conn.row_factory = sqlite3.Row


async def test_healthz_reflects_a_disconnected_adapter(running: Service) -> None:
    running.adapters["test"].connected = False
    status, _, body = await get(running, "/healthz")
    assert status == 503 and '"test": false' in body


async def test_feeds_all_and_category(running: Service) -> None:
    digest = running.engine.digest()
    for path, version in (("/feeds/all.xml", "rss20"), ("/feeds/all.atom", "atom10")):
        status, ctype, body = await get(running, path)
        assert status == 200 and "xml" in ctype
        feed = feedparser.parse(body)
        assert not feed.bozo and feed.version == version
        assert [e.link for e in feed.entries] == [i.paper.url for i in digest.items]
        assert "Score:" in (feed.entries[0].get("summary") or feed.entries[0].content[0].value)
    status, _, body = await get(running, "/feeds/cs.CL.xml")
    feed = feedparser.parse(body)
    assert status == 200 and feed.entries
    want = {i.paper.url for i in digest.items if "cs.CL" in i.paper.categories}
    assert {e.link for e in feed.entries} == want
    status, _, body = await get(running, "/feeds/cs.NOPE.xml")
    assert status == 404 and "not an arXiv category" in body


async def test_per_subscription_feed_is_unguessable(app: App, running: Service) -> None:
    base = running.engine.default_subscription()
    sub = running.store.upsert_subscription(
        replace(
            base, id=None, platform="test", chat="c9", name="", feed_token="", keywords=("robot",)
        )
    )
    assert len(sub.feed_token) >= 20
    status, _, body = await get(running, f"/feeds/s/{sub.feed_token}.xml")
    feed = feedparser.parse(body)
    assert status == 200 and feed.entries
    assert all("robot" in (e.title + e.summary).lower() for e in feed.entries)
    assert (await get(running, "/feeds/s/guess.xml"))[0] == 404
    assert (await get(running, "/feeds/s/" + "x" * 24 + ".xml"))[0] == 404
    # The chat's /status shows that URL.
    from bot.commands import make_command

    reply = app.commands.handle(make_command("test", "c9", "u", "/status"))
    assert f"/feeds/s/{sub.feed_token}.xml" in reply.text


async def test_html_page_shows_recent_digests(running: Service) -> None:
    digest = running.engine.digest()
    status, ctype, body = await get(running, "/")
    assert status == 200 and ctype.startswith("text/html")
    assert 'name=viewport content="width=device-width' in body
    assert "Thu 22 Jan 2026" in body
    first = digest.items[0]
    assert html.escape(first.paper.title) in body
    assert first.paper.url in body
    assert "Why:" in body and html.escape(first.reasons[0].text) in body
    assert body.count("<article>") == len(digest.items)


async def test_html_escapes_hostile_titles(running: Service, fake_arxiv: FakeArxiv) -> None:
    from bot.models import Announcement

    hostile = Paper(
        "2601.99999",
        1,
        '<script>alert(1)</script> Efficient Sparse LLM Inference & Training "quoted"',
        ("<b>x</b>",),
        ("cs.LG",),
        "An LLM <img src=x onerror=alert(1)> paper about distributed parallel pipeline kernels.",
    )
    running.store.upsert_papers([hostile])
    running.store.record_announcements(
        [Announcement(hostile.id, running.engine.latest_day(), "cs.LG", "new")]
    )
    running.web._cache.clear()
    status, _, body = await get(running, "/")
    assert status == 200
    assert "<script>alert" not in body and "<img src=x" not in body
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in body


def test_subscription_label_for_page() -> None:
    s = Subscription(1, "slack", "C1", ("cs.LG",))
    assert s.label == "slack:C1"


@pytest.mark.parametrize(
    "raw",
    [
        b"GARBAGE\r\n\r\n",
        b"GET /\xff\xfe HTTP/1.1\r\nHost: x\r\n\r\n",
        b"GET / HTTP/9.9\r\n\r\n",
        b"GET / HTTP/1.1\r\nContent-Length: -5\r\n\r\n",
        b"GET /" + b"a" * 20000 + b" HTTP/1.1\r\n\r\n",
    ],
)
async def test_malformed_requests_get_a_4xx_and_no_traceback(
    running: Service, raw: bytes, caplog: pytest.LogCaptureFixture
) -> None:
    assert running.web is not None
    reader, writer = await asyncio.open_connection("127.0.0.1", running.web.port)
    writer.write(raw)
    await writer.drain()
    status = await asyncio.wait_for(reader.readline(), 5)
    writer.close()
    assert status.startswith(b"HTTP/1.") and status.split()[1].startswith(b"4"), status
    # the service is still there, and nothing was logged with a traceback
    assert (await get(running, "/healthz"))[0] == 200
    assert not [r for r in caplog.records if r.exc_info], [r.getMessage() for r in caplog.records]
