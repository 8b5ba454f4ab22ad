"""The small web app of ``herald serve``: health, RSS/Atom feeds, an HTML page of recent
digests, and the Slack/Telegram webhook routes when those modes are on."""

from __future__ import annotations

import asyncio
import datetime as dt
import html
import logging
import sys
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError

from bot.cards import DigestView, day_label, digest_view
from bot.categories import UnknownCategory, normalize_category
from bot.config import Config
from bot.engine import Engine
from bot.models import Card, Subscription
from bot.platform import Adapter
from bot.scheduler import Scheduler

#: Renders (announcement day, card) entries as an RSS (or, with atom=True, Atom) document.
FeedRenderer = Callable[..., bytes]

log = logging.getLogger(__name__)

PAGE_DAYS = 5
FEED_DAYS = 7
_CACHE_SIZE = 64


class _RequestErrors(logging.LoggerAdapter):  # type: ignore[type-arg]
    """aiohttp's server log: a malformed request (a bad request line, headers, encoding) is
    the client's mistake — one short line, no traceback; anything else keeps its traceback."""

    def __init__(self, logger: logging.Logger) -> None:
        super().__init__(logger, {})

    def exception(self, msg: object, *args: Any, exc_info: Any = True, **kw: Any) -> None:
        exc = exc_info if isinstance(exc_info, BaseException) else sys.exc_info()[1]
        if isinstance(exc, HttpProcessingError):
            text = str(getattr(exc, "message", "") or type(exc).__name__)
            self.logger.info("refused a malformed HTTP request: %s", text[:120])
            return
        self.logger.error(msg, *args, exc_info=exc_info, **kw)


class WebApp:
    def __init__(
        self,
        config: Config,
        engine: Engine,
        scheduler: Scheduler,
        adapters: Mapping[str, Adapter],
        *,
        render_feed: FeedRenderer,
    ) -> None:
        self.config = config
        self.engine = engine
        self.scheduler = scheduler
        self.adapters = adapters
        self.render_feed = render_feed
        self.app = web.Application(client_max_size=2 * 1024 * 1024)
        self.app.add_routes(
            [
                web.get("/", self.index),
                web.get("/healthz", self.healthz),
                web.get("/s/{token}", self.sub_page),
                web.get("/feeds/all.xml", self.feed_all),
                web.get("/feeds/all.atom", self.feed_all),
                web.get("/feeds/s/{token}.xml", self.feed_sub),
                web.get("/feeds/s/{token}.atom", self.feed_sub),
                web.get("/feeds/{category}.xml", self.feed_category),
                web.get("/feeds/{category}.atom", self.feed_category),
            ]
        )
        for adapter in adapters.values():
            routes = adapter.web_routes()
            if routes:
                self.app.add_routes(routes)
        self._runner: web.AppRunner | None = None
        self.port = self.config.web.port
        self._cache: OrderedDict[tuple[Any, ...], DigestView] = OrderedDict()
        self._lock = asyncio.Lock()

    @property
    def url(self) -> str:
        return f"http://{self.config.web.host}:{self.port}"

    @property
    def public_url(self) -> str:
        return (self.config.web.public_url or self.url).rstrip("/")

    async def start(self) -> None:
        self._runner = web.AppRunner(self.app, access_log=None, logger=_RequestErrors(log))
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.config.web.host, self.config.web.port)
        await site.start()
        addresses = self._runner.addresses
        if addresses:  # the real port when configured as 0
            self.port = addresses[0][1]
        log.info("web app listening on %s", self.url)

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    # -- data --------------------------------------------------------------------------------
    def _digest(self, sub: Subscription, day: dt.date) -> DigestView:
        """A day's digest with cached summaries (never calls the LLM from a web request)."""
        store = self.engine.store
        last = store.last_fetch()
        assert sub.id is not None
        marker = (sub.id, day, last.id if last else None, store.rating_count(sub.id), repr(sub))
        hit = self._cache.get(marker)
        if hit is not None:
            self._cache.move_to_end(marker)
            return hit
        digest = self.engine.digests([sub], day)[0]
        self.engine.attach_cached_summaries(digest.items, sub)
        view = digest_view(digest, top_n=self.config.summaries.top_n)
        self._cache[marker] = view
        while len(self._cache) > _CACHE_SIZE:
            self._cache.popitem(last=False)
        return view

    def _recent(self, sub: Subscription, days: int) -> list[DigestView]:
        return [self._digest(sub, d) for d in self.engine.store.announcement_days(days)]

    async def _recent_async(self, sub: Subscription, days: int) -> list[DigestView]:
        async with self._lock:
            return await asyncio.to_thread(self._recent, sub, days)

    def _sub_by_token(self, request: web.Request) -> Subscription:
        token = request.match_info["token"]
        sub = self.engine.store.subscription_by_feed_token(token) if len(token) >= 16 else None
        if sub is None:
            raise web.HTTPNotFound(text="No such feed.")
        return sub

    # -- health ------------------------------------------------------------------------------
    async def healthz(self, request: web.Request) -> web.Response:
        store = self.engine.store
        db_ok = await asyncio.to_thread(store.healthy)
        last = None
        if db_ok:
            row = await asyncio.to_thread(store.last_fetch)
            if row:
                last = {
                    "at": row.finished_at.isoformat(),
                    "status": row.status,
                    "day": row.day.isoformat() if row.day else None,
                }
        adapters = {name: bool(a.connected) for name, a in self.adapters.items()}
        scheduler = self.scheduler.running
        ok = db_ok and scheduler and all(adapters.values())
        body = {
            "status": "ok" if ok else "degraded",
            "database": db_ok,
            "last_fetch": last,
            "scheduler": scheduler,
            "adapters": adapters,
        }
        return web.json_response(body, status=200 if ok else 503)

    # -- feeds -------------------------------------------------------------------------------
    def _feed_response(
        self,
        request: web.Request,
        views: Sequence[DigestView],
        title: str,
        only: str | None = None,
    ) -> web.Response:
        atom = request.path.endswith(".atom")
        entries = [
            (v.day, card)
            for v in views
            for card in v.cards
            if only is None or only == card.category or only in card.also
        ]
        body = self.render_feed(
            entries,
            title=title,
            link=self.public_url + "/",
            self_url=self.public_url + request.path,
            atom=atom,
        )
        ctype = "application/atom+xml" if atom else "application/rss+xml"
        return web.Response(body=body, content_type=ctype, charset="utf-8")

    async def feed_all(self, request: web.Request) -> web.Response:
        sub = await asyncio.to_thread(self.engine.default_subscription)
        digests = await self._recent_async(sub, FEED_DAYS)
        return self._feed_response(request, digests, "arXiv Filtered Papers")

    async def feed_category(self, request: web.Request) -> web.Response:
        try:
            cat = normalize_category(request.match_info["category"])
        except UnknownCategory as exc:
            raise web.HTTPNotFound(text=str(exc)) from None
        sub = await asyncio.to_thread(self.engine.default_subscription)
        digests = await self._recent_async(sub, FEED_DAYS)
        return self._feed_response(request, digests, f"arXiv {cat} Papers", only=cat)

    async def feed_sub(self, request: web.Request) -> web.Response:
        sub = self._sub_by_token(request)
        digests = await self._recent_async(sub, FEED_DAYS)
        return self._feed_response(request, digests, f"arXiv digest · {', '.join(sub.categories)}")

    # -- pages -------------------------------------------------------------------------------
    async def index(self, request: web.Request) -> web.Response:
        sub = await asyncio.to_thread(self.engine.default_subscription)
        digests = await self._recent_async(sub, PAGE_DAYS)
        feeds = [("RSS", "/feeds/all.xml"), ("Atom", "/feeds/all.atom")]
        feeds += [(c, f"/feeds/{c}.xml") for c in sub.categories]
        return web.Response(
            text=render_page("arXiv digest", sub, digests, feeds), content_type="text/html"
        )

    async def sub_page(self, request: web.Request) -> web.Response:
        sub = self._sub_by_token(request)
        digests = await self._recent_async(sub, PAGE_DAYS)
        token = request.match_info["token"]
        feeds = [("RSS", f"/feeds/s/{token}.xml"), ("Atom", f"/feeds/s/{token}.atom")]
        return web.Response(
            text=render_page("Your arXiv digest", sub, digests, feeds), content_type="text/html"
        )


_CSS = """
:root{color-scheme:light dark;--fg:#1d1d1f;--muted:#666;--bg:#fff;--card:#f6f6f8;--acc:#b31b1b}
@media (prefers-color-scheme:dark){:root{--fg:#eee;--muted:#aaa;--bg:#111;--card:#1c1c1f;
--acc:#ff6b6b}}
*{box-sizing:border-box}body{margin:0;font:16px/1.5 system-ui,-apple-system,sans-serif;
color:var(--fg);background:var(--bg)}main{max-width:46rem;margin:0 auto;padding:1rem}
h1{font-size:1.4rem;margin:.2rem 0}h2{font-size:1.1rem;margin:1.6rem 0 .6rem;
border-bottom:2px solid var(--acc);padding-bottom:.2rem}.meta,.why,.note{color:var(--muted);
font-size:.88rem}article{background:var(--card);border-radius:.6rem;padding:.8rem 1rem;
margin:.6rem 0;overflow-wrap:anywhere}article h3{font-size:1rem;margin:0 0 .3rem}
a{color:var(--acc)}.score{display:inline-block;min-width:2.6rem;text-align:center;
background:var(--acc);color:#fff;border-radius:1rem;font-size:.8rem;padding:0 .4rem;
margin-right:.4rem}details{margin-top:.4rem}summary{cursor:pointer}
.summary{white-space:pre-wrap;font-size:.94rem}nav a{margin-right:.8rem}
.explore{font-size:.75rem;border:1px solid var(--acc);border-radius:1rem;padding:0 .4rem}
"""


def _card_html(rank: int, card: Card) -> str:
    e = html.escape
    parts = [
        "<article>",
        f'<h3><span class="score">{card.score or 0:.1f}</span>{rank}. '
        f'<a href="{e(card.url)}" rel="noopener">{e(card.title)}</a>'
        + (' <span class="explore">exploring</span>' if card.explore else "")
        + "</h3>",
        f'<div class="meta">{e(card.authors_short(6))} · {e(card.type_line)} · '
        f"{e(card.versioned_id)}</div>",
        f'<div class="why">Why: {e(card.why(8))}</div>',
    ]
    if card.summary:
        parts.append(
            f"<details open><summary>🤖 Summary ({e(card.summary_by or 'LLM')})</summary>"
            f'<div class="summary">{e(card.summary.strip())}</div></details>'
        )
    if card.marker:
        parts.append(f'<div class="note">⚠ {e(card.marker)}</div>')
    parts.append(f"<details><summary>Abstract</summary><p>{e(card.abstract)}</p></details>")
    parts.append("</article>")
    return "\n".join(parts)


def render_page(
    title: str, sub: Subscription, digests: Sequence[DigestView], feeds: list[tuple[str, str]]
) -> str:
    e = html.escape
    body = [
        f"<h1>{e(title)}</h1>",
        f'<div class="meta">{e(", ".join(sub.categories))} · '
        f"{len(sub.keywords)} keywords · generated {dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC"
        "</div>",
        "<nav>" + "".join(f'<a href="{e(u)}">{e(n)}</a>' for n, u in feeds) + "</nav>",
    ]
    if not digests:
        body.append("<p>Nothing fetched yet. The first fetch runs on schedule.</p>")
    for d in digests:
        n = len(d.cards)
        body.append(f"<h2>{e(day_label(d.day))} · {n} paper{'s' if n != 1 else ''}</h2>")
        if not d.cards:
            body.append(f'<p class="meta">No paper matched ({d.total_candidates} candidates).</p>')
        body += [_card_html(i, card) for i, card in enumerate(d.cards, 1)]
    return (
        "<!doctype html><html lang=en><head><meta charset=utf-8>"
        '<meta name=viewport content="width=device-width,initial-scale=1">'
        f"<title>{e(title)}</title><style>{_CSS}</style>"
        '<link rel="alternate" type="application/rss+xml" href="/feeds/all.xml">'
        f"</head><body><main>{''.join(body)}</main></body></html>"
    )
