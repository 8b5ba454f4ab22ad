"""Slack with OAuth: ack latency of signed HTTP slash commands from two installed workspaces.

Runs the real SlackAdapter (slack-bolt HTTP mode, OAuth, installations in herald's
database) behind herald's web app, against tests/fakes/slack.py, whose ``auth.test`` is made
to take ``--auth-latency`` seconds (real Slack: ~0.1–0.3 s).  Side by side, in one run: Bolt's
installation-store authorize with its cache on (what the adapter uses) and off (Bolt's
default: one ``auth.test`` per request).  Reports p50/p99 of the HTTP answer (= the ack) and
how many ``auth.test`` calls each burst cost.

    .venv/bin/python benchmarks/slack_oauth.py [--n 50] [--auth-latency 0.2]
"""

from __future__ import annotations

import argparse
import asyncio
import html
import os
import re
import sys
import tempfile
import time
from pathlib import Path

import aiohttp
from aiohttp import DummyCookieJar
from aiohttp.test_utils import TestClient, TestServer

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from adapters.slack.adapter import (  # noqa: E402
    EVENTS_PATH,
    INSTALL_PATH,
    REDIRECT_PATH,
    SlackAdapter,
)
from bot.app import build, parse_config  # noqa: E402
from bot.engine import Engine  # noqa: E402
from tests.conftest import DAY, config_dict  # noqa: E402
from tests.fakes.arxiv import FakeArxiv  # noqa: E402
from tests.fakes.slack import (  # noqa: E402
    CLIENT_ID,
    CLIENT_SECRET,
    GENERAL_CHANNEL,
    SIGNING_SECRET,
    TEAM_ID,
    FakeSlack,
    sign_request,
    slash_command_body,
)

LAB2 = "T0LAB2"


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[max(0, min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1))))]


async def install(client: TestClient, team: str) -> None:
    """Herald's install page → slack.com (Allow) → herald's redirect, like a browser."""
    page = await client.get(INSTALL_PATH, params={"team": team})
    link = re.search(r'<a href="([^"]+)"', await page.text())
    state = re.search(r"slack-app-oauth-state=([^;]+)", page.headers["Set-Cookie"])
    assert link is not None and state is not None
    async with (
        aiohttp.ClientSession() as browser,
        browser.get(html.unescape(link.group(1)), allow_redirects=False) as at_slack,
    ):
        back = aiohttp.client.URL(at_slack.headers["Location"])
    done = await client.get(
        back.path_qs, headers={"Cookie": f"slack-app-oauth-state={state.group(1)}"}
    )
    assert done.status == 200, await done.text()


async def burst(client: TestClient, fake: FakeSlack, n: int) -> list[float]:
    """n signed /arxiv help commands at once, alternating workspaces; seconds to each answer."""

    async def one(i: int) -> float:
        ws = fake.workspace(TEAM_ID if i % 2 else LAB2)
        body = slash_command_body(
            "/arxiv",
            "help",
            team_id=ws.team_id,
            user_id=ws.human_user_id,
            channel_id=GENERAL_CHANNEL,
            response_url=ws.new_response_url(channel_id=GENERAL_CHANNEL),
        )
        headers = {
            "Content-Type": "application/x-www-form-urlencoded",
            **sign_request(body, SIGNING_SECRET),
        }
        start = time.monotonic()
        resp = await client.post(EVENTS_PATH, data=body, headers=headers)
        took = time.monotonic() - start
        assert resp.status == 200, await resp.text()
        return took

    return list(await asyncio.gather(*(one(i) for i in range(n))))


async def main_async(args: argparse.Namespace) -> None:
    with (
        FakeArxiv(day=DAY) as arxiv,
        FakeSlack(bot_tokens=set()) as fake,
        tempfile.TemporaryDirectory() as tmp,
    ):
        fake.add_workspace(LAB2, "Lab Two")
        os.environ.pop("SLACK_BOT_TOKEN", None)
        os.environ.update(
            SLACK_CLIENT_ID=CLIENT_ID,
            SLACK_CLIENT_SECRET=CLIENT_SECRET,
            SLACK_SIGNING_SECRET=SIGNING_SECRET,
        )
        data = config_dict(Path(tmp), arxiv, None)
        data["learning"]["enabled"] = False
        data["slack"].update(
            enabled=True,
            mode="http",
            oauth=True,
            api_base_url=fake.api_url,
            authorize_url=fake.authorize_url,
            post_interval_s=0,
        )
        engine = Engine(parse_config(data, "<bench>", Path(tmp)))
        app = build(engine.config, engine)
        adapter = app.adapters["slack"]
        assert isinstance(adapter, SlackAdapter) and app.service.web is not None
        client = TestClient(TestServer(app.service.web.app), cookie_jar=DummyCookieJar())
        await client.start_server()
        fake.redirect_urls = [str(client.make_url(REDIRECT_PATH))]
        try:
            await adapter.connect()
            for team in (TEAM_ID, LAB2):
                await install(client, team)
            fake.hang_next("auth.test", seconds=args.auth_latency, n=10**9)
            flow = adapter.app.oauth_flow
            assert flow is not None
            authorize = flow.settings.authorize
            print(
                f"{args.n} concurrent signed /arxiv commands from 2 workspaces, auth.test "
                f"{args.auth_latency * 1000:.0f} ms, {os.cpu_count()} CPUs"
            )
            await burst(client, fake, 4)  # warm up aiohttp, Bolt, the database
            p99s = {}
            for label, cached in (("authorize cache on", True), ("authorize cache off", False)):
                authorize.cache_enabled = cached  # type: ignore[attr-defined]
                authorize.authorize_result_cache.clear()  # type: ignore[attr-defined]
                # First burst: nothing cached yet (every request races to the first
                # auth.test); second burst: what every later one looks like.
                for burst_no in ("1st", "2nd"):
                    before = len(fake.requests_for("auth.test"))
                    lat = await burst(client, fake, args.n)
                    calls = len(fake.requests_for("auth.test")) - before
                    p50, p99 = percentile(lat, 50), percentile(lat, 99)
                    p99s[(cached, burst_no)] = p99
                    print(
                        f"{label:<20} {burst_no} burst   p50 {p50 * 1000:7.1f} ms   "
                        f"p99 {p99 * 1000:7.1f} ms   auth.test calls {calls:>3}"
                    )
            ratio = p99s[(False, "2nd")] / p99s[(True, "2nd")]
            print(f"p99 of later bursts, cache off / cache on: {ratio:.1f}x")
        finally:
            fake.release_hangs()
            await client.close()
            await adapter.disconnect()
            app.core.close()
            engine.store.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=50)
    parser.add_argument("--auth-latency", type=float, default=0.2)
    asyncio.run(main_async(parser.parse_args()))


if __name__ == "__main__":
    main()
