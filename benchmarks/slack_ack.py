"""Slack ack latency under load: 50 concurrent ``/summarize`` while every LLM call takes 2 s.

Runs the real SlackAdapter (slack-bolt Socket Mode) against the fakes in tests/fakes and
reports p50/p99 ack latency (push → ack seen by the fake Slack) and how many commands were
answered.  Side by side, in the same run, a naive listener that does the work *before* acking
(the same commands, on a thread pool the size of asyncio's default) shows what the
ack-then-work split buys: Slack gives up on a command after 3 s.

    .venv/bin/python benchmarks/slack_ack.py [--n 50] [--latency 2.0] [--no-baseline]
"""

from __future__ import annotations

import argparse
import asyncio
import concurrent.futures
import logging
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from slack_bolt.adapter.socket_mode.async_handler import AsyncSocketModeHandler  # noqa: E402
from slack_bolt.app.async_app import AsyncApp  # noqa: E402
from slack_sdk.web.async_client import AsyncWebClient  # noqa: E402

from adapters.slack.blocks import SUMMARY_EVENT, parse_slash  # noqa: E402
from bot.app import App, build, parse_config  # noqa: E402
from bot.engine import Engine  # noqa: E402
from tests.conftest import DAY, config_dict  # noqa: E402
from tests.fakes.arxiv import FakeArxiv  # noqa: E402
from tests.fakes.openai_api import FakeOpenAI  # noqa: E402
from tests.fakes.slack import GENERAL_CHANNEL, PAPERS_CHANNEL, FakeSlack  # noqa: E402

ACK_DEADLINE = 3.0


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    k = max(0, min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1))))
    return ordered[k]


def answered(fake: FakeSlack, channel: str) -> int:
    return sum(
        1
        for m in fake.top_level(channel)
        if (m.get("metadata") or {}).get("event_type") == SUMMARY_EVENT
    )


async def burst(fake: FakeSlack, ids: list[str], channel: str) -> list[str]:
    """Push one /summarize per id, all at once; returns the envelope ids."""
    return list(
        await asyncio.gather(
            *(
                asyncio.to_thread(fake.push_slash_command, "/summarize", pid, channel_id=channel)
                for pid in ids
            )
        )
    )


async def ack_latencies(fake: FakeSlack, eids: list[str], timeout: float) -> list[float | None]:
    await fake.wait_until_async(lambda: all(e in fake.acks for e in eids), timeout)
    return [fake.acks[e]["ack_latency"] if e in fake.acks else None for e in eids]


def describe(label: str, lat: list[float | None]) -> float:
    """Print the ack numbers; a command never acked counts as infinitely late.  Returns p99."""
    waited = [x if x is not None else float("inf") for x in lat]
    in_time = sum(1 for x in waited if x <= ACK_DEADLINE)
    p50, p99 = percentile(waited, 50), percentile(waited, 99)

    def ms(x: float) -> str:
        return f"{x * 1000:8.1f} ms" if x != float("inf") else "   never   "

    print(
        f"{label:<22} acked {sum(x is not None for x in lat):>3}/{len(lat)}, "
        f"within 3 s {in_time:>3}/{len(lat)}   p50 {ms(p50)}   p99 {ms(p99)}"
    )
    return p99


async def run_adapter(app: App, fake: FakeSlack, ids: list[str]) -> float:
    """The product: the composition root's Slack adapter in front of the core."""
    adapter = app.adapters["slack"]
    await adapter.connect()
    await adapter.listen()
    await fake.wait_connected_async(5)
    try:
        start = time.monotonic()
        eids = await burst(fake, ids, GENERAL_CHANNEL)
        lat = await ack_latencies(fake, eids, 10)
        p99 = describe("ack first, work after", lat)
        done = await fake.wait_until_async(lambda: answered(fake, GENERAL_CHANNEL) >= len(ids), 60)
        took = time.monotonic() - start
        n = answered(fake, GENERAL_CHANNEL)
        print(
            f"{'':<22} answered {n}/{len(ids)} ({n / len(ids):.0%}) in the channel, the last "
            f"after {took:.1f} s{'' if done else ' (timed out)'}"
        )
        return p99
    finally:
        await adapter.disconnect()


async def run_baseline(app: App, fake: FakeSlack, ids: list[str]) -> float:
    """The anti-pattern: the listener finishes the work and only then acks."""
    commands = app.commands
    pool = concurrent.futures.ThreadPoolExecutor(max_workers=min(32, (os.cpu_count() or 1) + 4))
    client = AsyncWebClient(token="xoxb-test", base_url=fake.api_url)
    quiet = logging.getLogger("bench.baseline")  # Bolt warns about every ack it never got
    quiet.setLevel(logging.CRITICAL)
    app = AsyncApp(client=client, request_verification_enabled=False, logger=quiet)

    @app.command("/summarize")
    async def naive(ack: Any, body: dict[str, Any]) -> None:
        loop = asyncio.get_running_loop()
        reply = await loop.run_in_executor(pool, commands.handle, parse_slash(body))
        await ack(text=reply.text[:3000])

    handler = AsyncSocketModeHandler(app, "xapp-test", logger=quiet)
    await handler.connect_async()
    await fake.wait_connected_async(5)
    try:
        eids = await burst(fake, ids, PAPERS_CHANNEL)
        lat = await ack_latencies(fake, eids, ACK_DEADLINE + 3)
        return describe("work first, then ack", lat)
    finally:
        await handler.close_async()
        # Drop the queued work; let the running calls finish before the database closes.
        await asyncio.to_thread(pool.shutdown, wait=True, cancel_futures=True)


async def main_async(args: argparse.Namespace) -> None:
    with (
        FakeArxiv(day=DAY) as arxiv,
        FakeOpenAI(latency=args.latency) as openai,
        FakeSlack() as fake,
        tempfile.TemporaryDirectory() as tmp,
    ):
        os.environ.update(
            SLACK_BOT_TOKEN="xoxb-test",
            SLACK_APP_TOKEN="xapp-test",
            HERALD_TEST_LLM_KEY=openai.api_key or "sk-test",
        )
        data = config_dict(Path(tmp), arxiv, openai)
        data["learning"]["enabled"] = False
        data["slack"].update(enabled=True, api_base_url=fake.api_url, post_interval_s=0)
        data["summaries"]["timeout_s"] = 30
        engine = Engine(parse_config(data, "<bench>", Path(tmp)))
        # Built inside the loop, like ``herald serve`` does: the adapter's clients live on it.
        app = build(engine.config, engine)
        report = engine.fetch()
        papers = [p.id for p, _ in engine.store.announced_on(report.day)]
        need = args.n * (1 if args.no_baseline else 2)
        if len(papers) < need:
            raise SystemExit(f"only {len(papers)} papers on {DAY}; need {need}")
        print(
            f"{args.n} concurrent /summarize, LLM latency {args.latency:g} s, "
            f"{os.cpu_count()} CPUs, fake Slack over Socket Mode"
        )
        try:
            p99 = await run_adapter(app, fake, papers[: args.n])
            if not args.no_baseline:
                await run_baseline(app, fake, papers[args.n : 2 * args.n])
        finally:
            app.core.close()
        verdict = "OK" if p99 <= 0.3 else "ABOVE TARGET"
        print(f"target p99 <= 300 ms: {verdict} ({p99 * 1000:.1f} ms)")
        engine.store.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=50)
    parser.add_argument("--latency", type=float, default=2.0)
    parser.add_argument("--no-baseline", action="store_true")
    asyncio.run(main_async(parser.parse_args()))


if __name__ == "__main__":
    main()
