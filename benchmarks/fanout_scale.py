"""Big chats and many chats, on one machine: 100,000 subscriptions ranked and planned, the
day delivered at Telegram's cap per layout, and the machine's own ceiling.

    .venv/bin/python benchmarks/fanout_scale.py [--subs 100000] [--chats 5000]
        [--thread-chats 5000] [--burst 20000] [--rated 0.01] [--seed 7]

Everything runs as the product runs it: ``Engine.digests`` ranks every due chat in one pass;
the core's fan-out (``bot.fanout.FanOut``, what ``herald serve`` uses) plans the day in one
ledger write and delivers through the real ``TelegramAdapter`` (python-telegram-bot) to the
Telegram fake, which runs in its own process (its HTML parser must not eat this process's
CPU) and, for the paced runs, enforces Telegram's limits: 30 messages a second overall,
one a second per chat, 20 a minute per group (429 with retry_after past them).

1. **Rank and plan** 100,000 subscriptions on the real all-archives announcement day of
   2024-11-28 (1,504 papers), in a fresh process: wall time and peak memory (VmHWM) of
   ranking plus planning (targets <= 60 s, <= 1 GB), ledger rows written.  Keyword mixes
   come from the corpus: each chat follows a paper's categories (sometimes its whole
   archive, sometimes cross-lists too); a third keep the default keyword list (edited a
   little), the rest pick phrases from titles in their own categories; some exclude words;
   ``--rated`` of them have rated papers (the learner re-ranks those).
2. **Deliver at the cap**, per layout, to ``--chats`` chats with the same mix of digests
   (85% private chats, 10% groups, 5% forum topics, two to a forum): messages per chat, the
   rate achieved, hours for 100,000 chats at that rate (target with compact <= 1.1 h), the
   time until every chat had its first message, 429s, and every ledger row checked against
   what the fake accepted: lost and duplicated (targets 0 and 0).
3. **The machine's ceiling**: the fake's limits off, the pace lifted, the ledger on (a WAL
   file on disk, every row written before and after its message): messages a second
   (target >= 1,000, the paid-broadcast ceiling), per layout.

Needs the full corpus (see benchmarks/corpus_data.py).  Not a test: it prints numbers.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import json
import multiprocessing as mp
import os
import random
import re
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, replace
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("PTB_TIMEDELTA", "true")

DAY = "2024-11-28"  # the recorded all-archives day: 1,504 papers in every archive
CAP = 30.0  # Telegram's overall limit, which the fake enforces in phase 2
TOKEN_ENV = "TELEGRAM_BOT_TOKEN"
ARCHIVES = [
    *("cs", "math", "physics", "astro-ph", "cond-mat", "stat", "q-bio", "q-fin", "eess"),
    *("econ", "nlin", "hep-th", "hep-ph", "hep-ex", "hep-lat", "gr-qc", "quant-ph"),
    *("math-ph", "nucl-th", "nucl-ex"),
]
STOP = set("a an the of for and in on with to via from by at as is are we our using based".split())


def hwm_mb() -> float:
    return int(re.search(r"VmHWM:\s+(\d+)", Path("/proc/self/status").read_text())[1]) / 1024


def rss_mb() -> float:
    return int(re.search(r"VmRSS:\s+(\d+)", Path("/proc/self/status").read_text())[1]) / 1024


# -- the Telegram fake in its own process ----------------------------------------------------
def _serve_fake(conn: Connection) -> None:
    from tests.fakes.telegram import FakeTelegram

    fake = FakeTelegram().start()
    fake.record_calls = False
    conn.send((fake.url, fake.token, fake.bot_id))
    while True:
        op, args, kwargs = conn.recv()
        if op == "stop":
            fake.stop()
            conn.send(None)
            return
        if op == "set":
            setattr(fake, args[0], args[1])
            conn.send(None)
        elif op == "sends":  # accepted sendMessage calls from number args[0] on
            conn.send(
                [
                    (s.chat_id, s.message_id, s.text, s.message_thread_id, s.at)
                    for s in fake.sends(None, "sendMessage")[args[0] :]
                ]
            )
        elif op == "count":
            conn.send(len(fake.sends(None, "sendMessage")))
        elif op == "rejected":
            conn.send(fake.rejected_429)
        elif op == "many":  # [(method, args, kwargs)] in one round trip
            conn.send([getattr(fake, m)(*a, **k) for m, a, k in args[0]])
        else:
            conn.send(getattr(fake, op)(*args, **kwargs))


def _serve_stub(conn: Connection) -> None:
    """A minimal Bot API in a child process: sendMessage answers at once with a message id
    (no HTML parsing, no checks), so what is measured against it is this machine's side."""
    from aiohttp import web

    from tests.fakes.telegram import DEFAULT_TOKEN

    sends: list[tuple[int, int, str, int | None, float]] = []
    next_id: dict[int, int] = collections.defaultdict(int)

    async def handle(request: web.Request) -> web.Response:
        method = request.path.rsplit("/", 1)[-1].lower()
        body = await request.read()
        params = json.loads(body) if body else {}
        if method == "getme":
            result: Any = {"id": 123456789, "is_bot": True, "first_name": "Stub", "username": "s"}
        elif method == "sendmessage":
            chat = int(params["chat_id"])
            next_id[chat] += 1
            sends.append(
                (
                    chat,
                    next_id[chat],
                    params["text"],
                    params.get("message_thread_id"),
                    time.monotonic(),
                )
            )
            result = {
                "message_id": next_id[chat],
                "date": 0,
                "chat": {"id": chat, "type": "private"},
            }
        else:
            result = True
        return web.json_response({"ok": True, "result": result})

    async def serve() -> None:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", handle)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        conn.send((f"http://127.0.0.1:{port}", DEFAULT_TOKEN, 123456789))
        loop = asyncio.get_running_loop()
        while True:
            op, args, _ = await loop.run_in_executor(None, conn.recv)
            if op == "stop":
                conn.send(None)
                return
            if op == "count":
                conn.send(len(sends))
            elif op == "sends":
                conn.send(sends[args[0] :])
            elif op in ("rejected",):
                conn.send(0)
            elif op == "many":
                conn.send([None for _ in args[0]])
            else:
                conn.send(None)

    asyncio.run(serve())


class FakeProcess:
    """FakeTelegram in a child process, driven through a pipe (``stub``: the minimal Bot API
    of :func:`_serve_stub` instead)."""

    def __init__(self, *, stub: bool = False) -> None:
        ctx = mp.get_context("spawn")
        self.conn, child = ctx.Pipe()
        target = _serve_stub if stub else _serve_fake
        self.proc = ctx.Process(target=target, args=(child,), daemon=True)
        self.proc.start()
        self.url, self.token, self.bot_id = self.conn.recv()

    def call(self, op: str, *args: Any, **kwargs: Any) -> Any:
        self.conn.send((op, args, kwargs))
        return self.conn.recv()

    def many(self, calls: list[tuple[str, tuple[Any, ...], dict[str, Any]]]) -> list[Any]:
        return self.call("many", calls)  # type: ignore[no-any-return]

    def close(self) -> None:
        self.call("stop")
        self.proc.join(10)


# -- realistic subscriptions -----------------------------------------------------------------
def make_subscriptions(n: int, rng: random.Random, default_keywords: tuple[str, ...]) -> list[Any]:
    """``n`` subscriptions as people set them up: categories of a real paper of the day,
    keywords from real titles in those categories, or the defaults a little edited."""
    from bot.models import Subscription
    from tests.fakes import corpus

    papers = [p for p in corpus.papers_on(DAY) if p["categories"]]
    phrases_by_archive: dict[str, list[str]] = collections.defaultdict(list)
    for p in papers:
        words = re.findall(r"[A-Za-z][A-Za-z0-9-]+", p["title"])
        archive = p["categories"][0].split(".")[0]
        for k in (1, 2, 2, 3):
            for i in range(len(words) - k + 1):
                gram = words[i : i + k]
                if gram[0].lower() in STOP or gram[-1].lower() in STOP or len(gram[0]) < 3:
                    continue
                phrases_by_archive[archive].append(" ".join(gram))
    subs = []
    for i in range(n):
        p = rng.choice(papers)
        cats = [p["categories"][0]]
        r = rng.random()
        if r < 0.1:
            cats = [cats[0].split(".")[0]]  # the whole archive (cs, math, hep-th)
        elif r < 0.5:
            cats += p["categories"][1 : 1 + rng.randint(1, 2)]
        archive = cats[0].split(".")[0]
        if rng.random() < 0.33:
            kws = list(default_keywords)
            for _ in range(rng.randint(0, 4)):
                kws[rng.randrange(len(kws))] = rng.choice(phrases_by_archive[archive])
        else:
            pool = phrases_by_archive[archive]
            kws = [rng.choice(pool) for _ in range(rng.randint(3, 20))]
        excludes = (
            tuple(rng.choice(phrases_by_archive[archive]) for _ in range(rng.randint(1, 3)))
            if rng.random() < 0.15
            else ()
        )
        subs.append(
            Subscription(
                id=None,
                platform="telegram",
                chat=str(10**9 + i),
                categories=tuple(dict.fromkeys(cats)),
                keywords=tuple(dict.fromkeys(kws)),
                excludes=excludes,
                announce_types=("new", "cross") if rng.random() < 0.3 else ("new",),
                max_papers=rng.choices([5, 10, 15, 30], weights=[4, 3, 2, 1])[0],
                min_score=rng.choice([1.0, 1.0, 2.0]),
            )
        )
    return subs


def config_data(tmp: Path, arxiv: Any, fake_url: str) -> dict[str, Any]:
    import yaml

    from bot.config import default_config_text

    data = yaml.safe_load(default_config_text())
    data["database"] = str(tmp / "herald.db")
    data["arxiv"].update(
        rss_url=arxiv.rss_url_template,
        api_url=arxiv.api_url,
        pdf_url=arxiv.pdf_url_template,
        request_interval_s=0.05,
        categories=ARCHIVES,
    )
    data["outputs"] = {"console": False, "markdown": None, "feed": None}
    # Summaries are made once per paper, whoever gets it (benchmarks/summaries.py): not what
    # is measured here; cards show the abstract and the compact layout cuts it to fit.
    data["summaries"]["enabled"] = False
    data["telegram"].update(enabled=True, api_base_url=fake_url + "/bot")
    data["web"]["port"] = 0
    return data


# -- phase 1: rank and plan, in a fresh process ------------------------------------------------
def rank_and_plan(config_path: str) -> dict[str, Any]:
    """(child process) What ``herald serve`` does at 09:00 for every due chat: rank them all
    in one pass, then plan the day in the ledger (one write).  Subscriptions are loaded as
    the service loads them."""
    import bot.learning
    from bot.app import load_config
    from bot.delivery import Deliverer
    from bot.engine import Engine

    cfg = load_config(config_path)
    engine = Engine(cfg)
    subs = [s for s in engine.active_subscriptions() if s.platform == "telegram"]
    day = engine.latest_day()
    assert day is not None
    learner_s = 0.0
    rescore = bot.learning.Learner.rescore

    def timed(self: Any, *a: Any) -> Any:
        nonlocal learner_s
        t = time.perf_counter()
        try:
            return rescore(self, *a)
        finally:
            learner_s += time.perf_counter() - t

    bot.learning.Learner.rescore = timed  # type: ignore[method-assign]
    base = rss_mb()
    t0 = time.perf_counter()
    digests = engine.digests(subs, day)
    t_rank = time.perf_counter() - t0
    deliverer = Deliverer(engine.store, layout_for=cfg.layout_for)
    plans = [
        (d.subscription.id, d.day, [i.paper.id for i in d.items], deliverer.layout(d.subscription))
        for d in digests
        if d.items
    ]
    t1 = time.perf_counter()
    rows = engine.store.plan_deliveries_many(plans)
    t_plan = time.perf_counter() - t1
    items = [len(d.items) for d in digests]
    return {
        "subs": len(subs),
        "rank_s": t_rank,
        "learner_s": learner_s,
        "rated": len(engine.store.rated_subscription_ids()),
        "plan_s": t_plan,
        "rows": rows,
        "with_papers": len(plans),
        "papers_mean": sum(items) / max(len(plans), 1),
        "base_mb": base,
        "hwm_mb": hwm_mb(),
    }


# -- phases 2 and 3: delivery -------------------------------------------------------------------
@dataclass
class Run:
    label: str
    chats: int
    messages: int
    seconds: float
    first_all_s: float
    rejected: int
    lost: int
    duplicated: int
    incomplete: int
    max_tasks: int
    rss_growth_mb: float

    @property
    def rate(self) -> float:
        return self.messages / self.seconds if self.seconds else 0.0

    @property
    def per_chat(self) -> float:
        return self.messages / self.chats

    def hours_for(self, chats: int) -> float:
        return chats * self.per_chat / self.rate / 3600 if self.rate else float("inf")


def chat_mix(fake: FakeProcess, n: int, first: int, rng: random.Random) -> list[str]:
    """``n`` chat addresses: 85% private chats, 10% groups, 5% forum topics (two a forum)."""
    calls: list[tuple[str, tuple[Any, ...], dict[str, Any]]] = []
    out: list[str] = []
    i = 0
    while len(out) < n:
        r = rng.random()
        if r < 0.85:
            chat = first + i
            calls.append(("add_chat", (chat, "private"), {}))
            out.append(str(chat))
        elif r < 0.95:
            chat = -(10**12) - first - i
            calls.append(("add_chat", (chat, "supergroup", f"Group {i}", [7]), {}))
            out.append(str(chat))
        else:
            chat = -(10**12) - first - i
            calls.append(("add_chat", (chat, "supergroup", f"Forum {i}", [7]), {"is_forum": True}))
            fake.many(calls)
            calls = []
            for t in range(2):
                topic = fake.call("create_forum_topic", chat, f"Topic {t}", by=7)
                out.append(f"{chat}/{topic}")
        i += 1
    fake.many(calls)
    return out[:n]


async def deliver_run(
    label: str,
    data: dict[str, Any],
    tmp: Path,
    fake: FakeProcess,
    template: list[Any],
    chats: list[str],
    layout: str,
    *,
    paced: bool,
) -> Run:
    from adapters.telegram.adapter import TelegramAdapter, build_rate_limiter
    from bot.app import build, parse_config
    from bot.engine import Engine
    from bot.fanout import FanOut

    data = json.loads(json.dumps(data))
    data["telegram"]["api_base_url"] = fake.url + "/bot"
    if paced:
        data["telegram"].update(per_chat_interval_s=1.0, global_rate=None)
    else:  # the machine's ceiling: no pace, the adapter's limiter out of the way
        data["telegram"].update(per_chat_interval_s=0, global_rate=1_000_000)
    cfg = parse_config(data, "<benchmark>", tmp)
    engine = Engine(cfg)
    store = engine.store
    subs = [
        store.upsert_subscription(replace(t, id=None, chat=chat, layout=layout, feed_token=""))
        for t, chat in zip(template, chats, strict=False)
    ]
    day = engine.latest_day()
    assert day is not None
    digests = engine.digests(subs, day)
    app = build(cfg, engine, adapters={})
    limiter = build_rate_limiter(cfg.telegram.rate, group_per_minute=20 if paced else 0)  # type: ignore[attr-defined]
    adapter = TelegramAdapter(cfg, app.core, rate_limiter=limiter)
    await adapter.connect()
    fan = FanOut(app.core.deliverer)
    fake.call("reset_rate_windows")
    before = fake.call("count")
    rejected = fake.call("rejected")
    tasks = 0
    rss0 = rss_mb()
    rss_peak = rss0

    async def watch() -> None:
        nonlocal tasks, rss_peak
        while True:
            tasks = max(tasks, len(asyncio.all_tasks()))
            rss_peak = max(rss_peak, rss_mb())
            await asyncio.sleep(0.5)

    watcher = asyncio.create_task(watch())
    t0 = time.monotonic()
    try:
        reports = await fan.deliver(digests, {"telegram": adapter})
    finally:
        seconds = time.monotonic() - t0
        watcher.cancel()
        await adapter.disconnect()
        app.core.close()
    sends = fake.call("sends", before)
    accepted: dict[tuple[int, int | None], list[tuple[int, str]]] = collections.defaultdict(list)
    first_at: dict[str, float] = {}
    for chat_id, message_id, text, thread, at in sends:
        accepted[(chat_id, thread)].append((message_id, text))
        key = f"{chat_id}/{thread}" if thread else str(chat_id)
        first_at.setdefault(key, at)
    lost = duplicated = 0
    for sub in subs:
        assert sub.id is not None
        head, _, topic = sub.chat.partition("/")
        got = accepted.get((int(head), int(topic) if topic else None), [])
        ids = {m for m, _ in got}
        rows = store.deliveries(sub.id, day)
        lost += sum(1 for r in rows if r.state != "sent" or int(r.message_id or 0) not in ids)
        texts = collections.Counter(t for _, t in got)
        duplicated += sum(n - 1 for n in texts.values())
        duplicated += len(ids - {int(r.message_id or 0) for r in rows})
    with_papers = [s for s, d in zip(subs, digests, strict=True) if d.items]
    missing_first = [s.chat for s in with_papers if s.chat not in first_at]
    first_all = max((first_at[s.chat] for s in with_papers if s.chat in first_at), default=t0) - t0
    store.close()
    return Run(
        label=label,
        chats=len(with_papers),
        messages=len(sends),
        seconds=seconds,
        first_all_s=first_all if not missing_first else float("inf"),
        rejected=fake.call("rejected") - rejected,
        lost=lost,
        duplicated=duplicated,
        incomplete=sum(1 for r in reports if not r.complete),
        max_tasks=tasks,
        rss_growth_mb=rss_peak - rss0,
    )


async def raw_ceiling(fake: FakeProcess, messages: list[dict[str, Any]], conc: int = 64) -> float:
    """The fake alone: these sendMessage calls from a bare aiohttp client, messages a second."""
    import aiohttp

    url = f"{fake.url}/bot{fake.token}/sendMessage"
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=conc)) as session:
        sem = asyncio.Semaphore(conc)

        async def one(body: dict[str, Any]) -> None:
            async with sem, session.post(url, json=body) as r:
                await r.read()

        t = time.perf_counter()
        await asyncio.gather(*(one(m) for m in messages))
        return len(messages) / (time.perf_counter() - t)


def sample_messages(
    data: dict[str, Any], tmp: Path, template: list[Any], chats: list[str], layout: str
) -> list[dict[str, Any]]:
    """The sendMessage bodies the adapter sends for these digests (for raw_ceiling)."""
    from adapters.telegram.render import (
        compact_keyboard,
        compact_sizes,
        keyboard,
        render_card,
        render_compact,
        render_header,
    )
    from bot.app import parse_config
    from bot.cards import card_for, compact_parts, compact_view, header_text
    from bot.engine import Engine

    cfg = parse_config(data, "<benchmark>", tmp)
    engine = Engine(cfg)
    day = engine.latest_day()
    assert day is not None
    out: list[dict[str, Any]] = []
    digests = engine.digests([replace(t, id=1) for t in template], day, skip_delivered=False)
    for chat, digest in zip(chats, digests, strict=False):
        if not digest.items:
            continue
        cards = [card_for(i) for i in digest.items]
        base = {"chat_id": int(chat), "parse_mode": "HTML"}
        if layout == "compact":
            view = compact_view(day, header_text(digest), list(enumerate(cards, 1)))
            for part in compact_parts(view, compact_sizes(view)):
                markup = compact_keyboard(part)
                out.append({**base, "text": render_compact(part), "reply_markup": markup})
        else:
            out.append({**base, "text": render_header(digest)})
            for card in cards:
                markup = keyboard(card.buttons, day)
                for chunk in render_card(card):
                    out.append({**base, "text": chunk, "reply_markup": markup})
    engine.store.close()
    return out


# -- main ---------------------------------------------------------------------------------------
def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--subs", type=int, default=100_000)
    ap.add_argument("--chats", type=int, default=5000, help="chats per paced compact run")
    ap.add_argument("--thread-chats", type=int, default=5000, help="chats per paced thread run")
    ap.add_argument("--burst", type=int, default=20_000, help="messages for the ceiling runs")
    ap.add_argument("--rated", type=float, default=0.01, help="share of chats with ratings")
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--skip-paced", action="store_true", help="phases 1 and 3 only")
    ap.add_argument("--rank-child", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.rank_child:
        print(json.dumps(rank_and_plan(args.rank_child)))
        return

    import yaml

    from benchmarks.corpus_data import use_full_corpus
    from bot.app import parse_config
    from bot.engine import Engine
    from bot.models import Rating
    from tests.fakes.arxiv import FakeArxiv

    use_full_corpus()
    rng = random.Random(args.seed)
    fake = FakeProcess()
    os.environ[TOKEN_ENV] = fake.token
    tmp = Path(tempfile.mkdtemp(prefix="herald-fanout-"))
    try:
        with FakeArxiv(day=DAY) as arxiv:
            data = config_data(tmp, arxiv, fake.url)
            cfg = parse_config(data, "<benchmark>", tmp)
            engine = Engine(cfg)
            print(f"arXiv {engine.fetch().summary()}")
        # ---- setup (not measured): the subscriptions, some with ratings
        t = time.perf_counter()
        default_kws = tuple(cfg.scoring.keywords)
        subs = make_subscriptions(args.subs, rng, default_kws)
        store = engine.store
        with store.atomic():
            stored = [store.upsert_subscription(s) for s in subs]
        day = engine.latest_day()
        assert day is not None
        announced = store.announced_on(day, ARCHIVES)
        papers = [p.id for p, _ in announced]
        with store.atomic():
            for s in rng.sample(stored, int(len(stored) * args.rated)):
                assert s.id is not None
                for pid in rng.sample(papers, 8):
                    store.record_rating(Rating(s.id, "u", pid, rng.choice([1, 1, -1])))
        cfg_path = tmp / "config.yaml"
        cfg_path.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
        store.close()
        shutil.copyfile(tmp / "herald.db", tmp / "pristine.db")
        print(
            f"{len(stored):,} subscriptions on {day} ({len(papers):,} papers, "
            f"{len({c for s in subs for c in s.categories}):,} distinct categories, "
            f"{len({k for s in subs for k in s.keywords}):,} distinct keywords), "
            f"{args.rated:.0%} with ratings; set up in {time.perf_counter() - t:.0f} s"
        )

        # ---- phase 1: rank and plan in a fresh process
        out = subprocess.run(
            [sys.executable, __file__, "--rank-child", str(cfg_path)],
            capture_output=True,
            text=True,
            check=True,
        )
        r1 = json.loads(out.stdout.strip().splitlines()[-1])
        shutil.copyfile(tmp / "pristine.db", tmp / "herald.db")  # the plan was phase 1's
        for suffix in ("-wal", "-shm"):
            (tmp / f"herald.db{suffix}").unlink(missing_ok=True)

        # ---- phases 2 and 3
        template = subs[: max(args.chats, args.thread_chats, args.burst)]
        runs: list[Run] = []
        first = 2 * 10**9
        if not args.skip_paced:
            fake.call("set", "enforce_rate_limits", True)
            for layout, n in (("compact", args.chats), ("thread", args.thread_chats)):
                chats = chat_mix(fake, n, first, rng)
                first += 2 * n
                print(f"delivering {n:,} digests ({layout}) at the cap …", flush=True)
                runs.append(
                    asyncio.run(
                        deliver_run(
                            f"{layout}, paced", data, tmp, fake, template, chats, layout, paced=True
                        )
                    )
                )
        fake.call("set", "enforce_rate_limits", False)
        stub = FakeProcess(stub=True)
        ceilings: list[tuple[Run, float, Run]] = []
        try:
            for layout, n in (("compact", args.burst), ("thread", max(args.burst // 8, 1))):
                chats = [str(first + i) for i in range(n)]
                fake.many([("add_chat", (int(c), "private"), {}) for c in chats])
                first += n
                print(f"delivering {n:,} digests ({layout}) with no limits …", flush=True)
                label = f"{layout}, no limits"
                against_fake = asyncio.run(
                    deliver_run(label, data, tmp, fake, template, chats, layout, paced=False)
                )
                bodies = sample_messages(data, tmp, template[:2000], chats[:2000], layout)
                fake_alone = asyncio.run(raw_ceiling(fake, bodies))
                fresh = [str(first + i) for i in range(n)]  # a bare Bot API knows any chat
                first += n
                against_stub = asyncio.run(
                    deliver_run(label, data, tmp, stub, template, fresh, layout, paced=False)
                )
                ceilings.append((against_fake, fake_alone, against_stub))
        finally:
            stub.close()
    finally:
        fake.close()
        shutil.rmtree(tmp, ignore_errors=True)

    # ---- the table
    print()
    print(f"1. rank + plan one day for {r1['subs']:,} subscriptions (fresh process)")
    print(f"   {'rank (Engine.digests)':42} {r1['rank_s']:8.1f} s")
    print(
        f"   {'  of which the learner (' + str(r1['rated']) + ' rated chats)':42} "
        f"{r1['learner_s']:8.1f} s"
    )
    print(f"   {'plan (one ledger write)':42} {r1['plan_s']:8.1f} s")
    total = r1["rank_s"] + r1["plan_s"]
    print(f"   {'rank + plan':42} {total:8.1f} s   (target <= 60 s)")
    print(f"   {'peak memory (VmHWM)':42} {r1['hwm_mb']:8.0f} MB  (target <= 1024 MB)")
    print(f"   {'  before ranking (subscriptions loaded)':42} {r1['base_mb']:8.0f} MB")
    print(
        f"   ledger rows written: {r1['rows']:,} for {r1['with_papers']:,} chats with papers "
        f"(mean {r1['papers_mean']:.1f} papers)"
    )
    if runs:
        print()
        print(f"2. delivery at Telegram's cap ({CAP:g} msg/s enforced by the fake)")
        head = (
            f"   {'layout':8} {'chats':>6} {'msgs':>7} {'msg/chat':>8} {'msg/s':>6} "
            f"{'100k chats':>10} {'all 1st msg':>11} {'429':>4} {'lost':>4} {'dup':>4} "
            f"{'tasks':>5} {'RSS+':>6}"
        )
        print(head)
        for r in runs:
            print(
                f"   {r.label.split(',')[0]:8} {r.chats:6,} {r.messages:7,} {r.per_chat:8.2f} "
                f"{r.rate:6.1f} {r.hours_for(100_000):8.2f} h {r.first_all_s:9.0f} s "
                f"{r.rejected:4} {r.lost:4} {r.duplicated:4} {r.max_tasks:5} "
                f"{r.rss_growth_mb:4.0f}MB"
            )
        if len(runs) == 2:
            c, th = runs
            print(
                f"   compact / thread: {c.per_chat / th.per_chat:.2f}x the messages, "
                f"{c.hours_for(100_000) / th.hours_for(100_000):.2f}x the hours; "
                f"every chat's first message after {c.first_all_s / c.seconds:.0%} / "
                f"{th.first_all_s / th.seconds:.0%} of the run "
                f"(target with compact <= 1.1 h: {c.hours_for(100_000):.2f} h)"
            )
    print()
    print("3. the machine's ceiling: limits off, pace lifted, ledger on (msg/s)")
    print(
        f"   {'layout':8} {'vs the fake':>12} {'the fake alone':>15} {'vs a bare Bot API':>18} "
        f"{'lost':>5} {'dup':>4} {'tasks':>6}"
    )
    for fk, alone, st in ceilings:
        print(
            f"   {fk.label.split(',')[0]:8} {fk.rate:12.0f} {alone:15.0f} {st.rate:18.0f} "
            f"{fk.lost + st.lost:5} {fk.duplicated + st.duplicated:4} "
            f"{max(fk.max_tasks, st.max_tasks):6}"
        )
    print(
        "   (target >= 1,000. The fake parses and checks every message's HTML in Python, so it "
        "caps the first\n   column; against a bare Bot API the second process does nothing, "
        "which shows this process's own ceiling)"
    )
    print(
        f"this process: peak RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB"
    )


if __name__ == "__main__":
    main()
