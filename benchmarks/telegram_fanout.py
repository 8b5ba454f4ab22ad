"""One day's digest to thousands of Telegram chats: throughput against the flood limits, loss
and duplication.

    .venv/bin/python benchmarks/telegram_fanout.py [--chats 2000] [--papers 3]
                                                    [--compare-chats 300]

The real adapter (python-telegram-bot + AIORateLimiter + per-chat pacing), built as the
product builds it (``bot.app.build`` → core → ``TelegramAdapter``), and the real delivery ledger
(the core's ``Deliverer``, every subscription concurrently) post a real
announcement day's digest from the arXiv fake to a fake Bot API that enforces Telegram's limits
(30 messages/s overall, 1 message/s per chat: 429 with ``retry_after`` past either).

Reported: accepted messages per second as a fraction of the 30/s cap (target >= 0.9), 429s
received, and lost / duplicated messages found by comparing every ledger row with what the fake
accepted (target 0 and 0).  ``--compare-chats`` repeats a smaller run side by side with PTB's
stock bucket (``AIORateLimiter(overall_max_rate=28)``) to show why the adapter sizes its bucket
at 1¼ messages and gives back slots it could not use on time.

2,000 chats × (1 header + 3 papers) = 8,000 messages; at 28/s that is about 4.8 minutes.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import os
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("PTB_TIMEDELTA", "true")

from telegram.ext import AIORateLimiter  # noqa: E402

from adapters.telegram import TelegramSection  # noqa: E402
from adapters.telegram.adapter import TelegramAdapter, build_rate_limiter  # noqa: E402
from bot.app import build, parse_config  # noqa: E402
from bot.config import Config, default_config_text, read_yaml  # noqa: E402
from bot.engine import Engine  # noqa: E402
from bot.models import Subscription  # noqa: E402
from tests.fakes.arxiv import FakeArxiv  # noqa: E402
from tests.fakes.telegram import FakeTelegram  # noqa: E402

DAY = "2026-01-22"  # a real announcement day of the corpus
CAP = 30.0  # Telegram's overall limit, which the fake enforces
FIRST_CHAT = 100_000


@dataclass
class Result:
    label: str
    chats: int
    messages: int
    seconds: float
    rate: float
    rejected_429: int
    lost: int
    duplicated: int
    failed_chats: int

    def show(self) -> None:
        print(
            f"{self.label}: {self.chats} chats, {self.messages} messages in "
            f"{self.seconds:.1f} s\n"
            f"  achieved {self.rate:.2f} msg/s = {self.rate / CAP:.3f} of the {CAP:g}/s cap "
            f"(target >= 0.9)\n"
            f"  429 answers {self.rejected_429} · lost {self.lost} · duplicated "
            f"{self.duplicated} (targets 0 and 0) · chats not completed {self.failed_chats}"
        )


def make_config(tmp: Path, arxiv: FakeArxiv, telegram: FakeTelegram, papers: int) -> Config:
    data = read_yaml(default_config_text())
    data["database"] = str(tmp / "herald.db")
    data["arxiv"].update(
        rss_url=arxiv.rss_url_template,
        api_url=arxiv.api_url,
        pdf_url=arxiv.pdf_url_template,
        request_interval_s=0.05,
    )
    data["outputs"] = {"console": False, "markdown": None, "feed": None}
    data["summaries"]["enabled"] = False  # summaries are shared per paper: not what we measure
    data["scoring"]["max_papers"] = papers
    data["learning"]["enabled"] = False
    data["telegram"].update(enabled=True, api_base_url=telegram.api_url)
    return parse_config(data, "<benchmark>", tmp)


async def fan_out(
    label: str, cfg: Config, engine: Engine, telegram: FakeTelegram, chats: int, limiter: Any
) -> Result:
    store = engine.store
    subs: list[Subscription] = []
    offset = FIRST_CHAT + len(store.list_subscriptions(platform="telegram"))  # fresh chats
    for i in range(chats):
        chat = offset + i
        telegram.add_chat(chat, "private")
        base = cfg.default_subscription()
        subs.append(
            store.upsert_subscription(
                Subscription(
                    id=None,
                    platform="telegram",
                    chat=str(chat),
                    categories=base.categories,
                    keywords=base.keywords,
                    max_papers=base.max_papers,
                    min_score=base.min_score,
                )
            )
        )
    day = engine.latest_day()
    assert day is not None
    digests = engine.digests(subs, day)
    app = build(cfg, engine, adapters={})
    adapter = TelegramAdapter(cfg, app.core, rate_limiter=limiter)
    deliverer = app.core.deliverer
    await adapter.connect()
    telegram.reset_rate_windows()
    first_send = len(telegram.sends())
    rejected_before = telegram.rejected_429
    t0 = time.monotonic()
    try:
        reports = await asyncio.gather(*(deliverer.deliver_digest(d, adapter) for d in digests))
    finally:
        await adapter.disconnect()
        app.core.close()
    seconds = time.monotonic() - t0

    sends = telegram.sends()[first_send:]
    by_chat: dict[int, list[Any]] = collections.defaultdict(list)
    for s in sends:
        by_chat[s.chat_id].append(s)
    lost = duplicated = 0
    for sub, digest in zip(subs, digests, strict=True):
        assert sub.id is not None
        accepted = by_chat.get(int(sub.chat), [])
        ids = {s.message_id for s in accepted}
        rows = store.deliveries(sub.id, digest.day)
        # lost: a planned row Telegram never accepted (or the ledger points nowhere)
        lost += sum(1 for r in rows if r.state != "sent" or int(r.message_id or 0) not in ids)
        # duplicated: Telegram accepted more messages (or the same text twice) than planned
        texts = collections.Counter(s.text for s in accepted)
        duplicated += max(0, len(accepted) - len(rows)) + sum(n - 1 for n in texts.values())
    rate = (len(sends) - 1) / (sends[-1].at - sends[0].at) if len(sends) > 1 else 0.0
    return Result(
        label=label,
        chats=chats,
        messages=len(sends),
        seconds=seconds,
        rate=rate,
        rejected_429=telegram.rejected_429 - rejected_before,
        lost=lost,
        duplicated=duplicated,
        failed_chats=sum(1 for r in reports if not r.complete),
    )


async def main(chats: int, papers: int, compare_chats: int) -> None:
    with (
        tempfile.TemporaryDirectory() as tmpdir,
        FakeArxiv(day=DAY) as arxiv,
        FakeTelegram(enforce_rate_limits=True) as telegram,
    ):
        os.environ["TELEGRAM_BOT_TOKEN"] = telegram.token
        cfg = make_config(Path(tmpdir), arxiv, telegram, papers)
        engine = Engine(cfg)
        fetched = engine.fetch()
        print(f"arXiv {fetched.summary()}")
        section = TelegramSection.of(cfg, "telegram")
        print(
            f"Telegram fake: {telegram.global_rate:g} msg/s overall, {telegram.per_chat_rate:g} "
            f"msg/s per chat enforced; adapter: global_rate {section.rate:g}, "
            f"per_chat_interval_s {section.per_chat_interval_s:g}; {papers} papers per digest"
        )
        results = [
            await fan_out(
                "adapter: build_rate_limiter(global_rate) + per-chat pacing",
                cfg,
                engine,
                telegram,
                chats,
                build_rate_limiter(section.rate),
            )
        ]
        results[0].show()
        if compare_chats:
            stock = AIORateLimiter(overall_max_rate=section.rate, max_retries=3)
            await asyncio.sleep(1.5)  # let the fake's windows drain between runs
            ours = await fan_out(
                "  side by side: adapter",
                cfg,
                engine,
                telegram,
                compare_chats,
                build_rate_limiter(section.rate),
            )
            await asyncio.sleep(1.5)
            theirs = await fan_out(
                "  side by side: PTB stock AIORateLimiter(overall_max_rate=28)",
                cfg,
                engine,
                telegram,
                compare_chats,
                stock,
            )
            ours.show()
            theirs.show()
            if theirs.rate:
                print(f"  ratio adapter / stock: {ours.rate / theirs.rate:.2f}")
        engine.store.close()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--chats", type=int, default=2000)
    parser.add_argument("--papers", type=int, default=3, help="papers per digest")
    parser.add_argument(
        "--compare-chats", type=int, default=300, help="side-by-side run size (0: skip)"
    )
    args = parser.parse_args()
    asyncio.run(main(args.chats, args.papers, args.compare_chats))
