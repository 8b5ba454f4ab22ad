"""One Slack app, many workspaces: OAuth through Bolt's own flow, installations in herald's
database, every message with the token of its workspace.

Real slack-bolt / slack_sdk against tests/fakes/slack.py (which answers ``oauth.v2.access``,
mints one token per workspace and sends signed events), herald's own web app serving the
install page, the OAuth redirect and the events.
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import html
import json
import re
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import DummyCookieJar
from aiohttp.test_utils import TestClient, TestServer
from click.testing import CliRunner
from hypothesis import given
from hypothesis import strategies as st
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient
from yarl import URL

from adapters.slack.adapter import EVENTS_PATH, INSTALL_PATH, REDIRECT_PATH, SlackAdapter
from adapters.slack.address import chat_address, split_address
from adapters.slack.blocks import ITEM_EVENT
from bot.app import App, build
from bot.cli import main
from bot.config import Config
from bot.engine import Engine
from bot.errors import ConfigError
from bot.models import Subscription
from storage import AppInstallation, Store
from tests.conftest import DAY
from tests.fakes.openai_api import FakeOpenAI
from tests.fakes.slack import (
    CLIENT_ID,
    CLIENT_SECRET,
    GENERAL_CHANNEL,
    SIGNING_SECRET,
    TEAM_ID,
    FakeSlack,
    block_action_body,
    event_callback_body,
    sign_request,
    slash_command_body,
)

THE_DAY = dt.date.fromisoformat(DAY)
LAB2 = "T0LAB2"
STATE_COOKIE = "slack-app-oauth-state"
_INTERNAL = ("channel", "metadata", "unfurl_links", "unfurl_media")
# slack_sdk 3.48 hands the client id and secret to aiohttp's BasicAuth, which warns.
pytestmark = pytest.mark.filterwarnings("ignore:BasicAuth is deprecated:DeprecationWarning")


@pytest.fixture
def fake() -> Iterator[FakeSlack]:
    # No token works anywhere until a workspace installs the app.
    with FakeSlack(bot_tokens=set()) as server:
        server.add_workspace(LAB2, "Lab Two")
        yield server


@pytest.fixture
def oauth_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SLACK_BOT_TOKEN", raising=False)
    monkeypatch.setenv("SLACK_CLIENT_ID", CLIENT_ID)
    monkeypatch.setenv("SLACK_CLIENT_SECRET", CLIENT_SECRET)
    monkeypatch.setenv("SLACK_SIGNING_SECRET", SIGNING_SECRET)


@dataclasses.dataclass
class Herald:
    """``herald serve`` in OAuth mode: its app, and a client of its web app."""

    app: App
    client: TestClient

    @property
    def adapter(self) -> SlackAdapter:
        adapter = self.app.adapters["slack"]
        assert isinstance(adapter, SlackAdapter)
        return adapter

    @property
    def engine(self) -> Engine:
        return self.app.engine

    @property
    def store(self) -> Store:
        return self.app.engine.store

    def sub(self, team: str) -> Subscription:
        sub = self.store.get_subscription("slack", chat_address(team, GENERAL_CHANNEL))
        assert sub is not None
        return sub


Start = Callable[..., Awaitable[Herald]]


@pytest.fixture
async def herald(
    make_config: Callable[..., Config], fake: FakeSlack, oauth_env: None
) -> AsyncIterator[Start]:
    """``await herald(**config overrides)`` -> a running Herald; a second call after
    ``stop(h)`` is a restart on the same database file."""
    running: list[Herald] = []

    async def start(openai: FakeOpenAI | None = None, **over: Any) -> Herald:
        cfg = make_config(
            openai,
            **{
                "learning.enabled": False,
                "slack.enabled": True,
                "slack.mode": "http",
                "slack.oauth": True,
                "slack.api_base_url": fake.api_url,
                "slack.authorize_url": fake.authorize_url,
                "slack.post_interval_s": 0.0,
                **over,
            },
        )
        engine = Engine(cfg)
        if engine.store.latest_day() is None:
            assert engine.fetch().status == "ok"
        app = build(cfg, engine)
        assert app.service.web is not None
        client = TestClient(TestServer(app.service.web.app), cookie_jar=DummyCookieJar())
        await client.start_server()
        # The app's settings at api.slack.com: Redirect URL and Request URL.
        fake.redirect_urls = [str(client.make_url(REDIRECT_PATH))]
        fake.events_url = str(client.make_url(EVENTS_PATH))
        h = Herald(app, client)
        await h.adapter.connect()
        running.append(h)
        return h

    yield start
    for h in running:
        await stop(h)


async def stop(h: Herald) -> None:
    if h.client.server.runner is None:
        return
    await h.client.close()
    await h.adapter.disconnect()
    h.app.core.close()
    h.store.close()


# -- the browser's side of "Add to Slack" ---------------------------------------------------------
@dataclasses.dataclass
class Begun:
    authorize_url: str
    state: str


async def begin_install(h: Herald, team: str | None = None) -> Begun:
    """Open herald's install page: the "Add to Slack" link and the state cookie it sets."""
    page = await h.client.get(INSTALL_PATH, params={"team": team} if team else None)
    assert page.status == 200
    text = await page.text()
    assert "Add to Slack" in text
    match = re.search(r'<a href="([^"]+)"', text)
    assert match is not None
    cookie = page.headers["Set-Cookie"]
    state = re.search(STATE_COOKIE + r"=([^;]+)", cookie)
    assert state is not None and "HttpOnly" in cookie and "Secure" in cookie
    return Begun(html.unescape(match.group(1)), state.group(1))


async def at_slack(authorize_url: str) -> URL:
    """The person clicks Allow on slack.com: where Slack sends the browser back."""
    async with (
        aiohttp.ClientSession() as browser,
        browser.get(authorize_url, allow_redirects=False) as resp,
    ):
        assert resp.status == 302, await resp.text()
        return URL(resp.headers["Location"])


async def back_at_herald(h: Herald, redirect: URL, cookie_state: str | None) -> tuple[int, str]:
    headers = {"Cookie": f"{STATE_COOKIE}={cookie_state}"} if cookie_state else {}
    resp = await h.client.get(redirect.path_qs, headers=headers, allow_redirects=False)
    return resp.status, await resp.text()


async def install(h: Herald, team: str) -> None:
    begun = await begin_install(h, team)
    status, text = await back_at_herald(h, await at_slack(begun.authorize_url), begun.state)
    assert status == 200, text
    assert "Thank you!" in text


# -- Slack's side: signed requests to /slack/events ------------------------------------------
async def post_signed(h: Herald, body: bytes) -> int:
    headers = {
        "Content-Type": "application/x-www-form-urlencoded",
        **sign_request(body, SIGNING_SECRET),
    }
    resp = await h.client.post(EVENTS_PATH, data=body, headers=headers)
    return resp.status


async def command(h: Herald, ws: FakeSlack, text: str, name: str = "/arxiv") -> dict[str, Any]:
    """A slash command typed in ``ws``'s #general; the answer posted to its response_url."""
    url = ws.new_response_url(channel_id=GENERAL_CHANNEL, user_id=ws.human_user_id)
    body = slash_command_body(
        name,
        text,
        team_id=ws.team_id,
        team_domain=ws.team_domain,
        user_id=ws.human_user_id,
        channel_id=GENERAL_CHANNEL,
        response_url=url,
    )
    assert await post_signed(h, body) == 200
    (answer,) = await ws.wait_for_response_async(url, 10)
    return answer


def digest_posts(ws: FakeSlack) -> list[dict[str, Any]]:
    """Every digest message (header and papers) in ``ws``."""
    return [m for m in ws.all_posts() if (m.get("metadata") or {}).get("event_type") == ITEM_EVENT]


def items(ws: FakeSlack) -> list[dict[str, Any]]:
    return [m for m in digest_posts(ws) if m["metadata"]["event_payload"]["paper"]]


async def deliver_today(h: Herald, *subs: Subscription) -> None:
    """What a scheduled digest job does once the day is due: each subscription's digest,
    through the service's delivery."""
    digests = h.engine.digests(list(subs), THE_DAY)
    for d in digests:
        d.items = d.items[:3]
    reports = await h.app.service.deliver_all(digests)
    assert len(reports) == len(subs)


# ==============================================================================================
async def test_two_workspaces_install_and_each_is_served_with_its_own_token(herald, fake):
    h = await herald()
    home, lab2 = fake, fake.workspace(LAB2)
    await install(h, TEAM_ID)
    await install(h, LAB2)

    rows = {i.workspace: i for i in h.store.installations("slack")}
    assert set(rows) == {TEAM_ID, LAB2}
    assert rows[LAB2].team_name == "Lab Two" and rows[LAB2].bot_user_id == lab2.bot_user_id
    assert rows[LAB2].bot_id == lab2.bot_id and rows[LAB2].installer_id == lab2.human_user_id
    assert rows[TEAM_ID].bot_token != rows[LAB2].bot_token
    assert set(rows[LAB2].bot_scopes) == set(h.adapter.section.scopes)
    assert rows[LAB2].bot_token in lab2.bot_tokens and rows[LAB2].bot_token not in home.bot_tokens

    # The same channel id in both workspaces: two subscriptions, never mixed.
    for ws in (home, lab2):
        answer = await command(h, ws, "subscribe")
        assert answer["text"].startswith("Subscribed to cs.AI")
    assert h.sub(TEAM_ID).id != h.sub(LAB2).id
    assert h.store.get_subscription("slack", GENERAL_CHANNEL) is None
    # Settings need a member of the channel: the membership check ran with each workspace's
    # own token (lab2's person is not in the first workspace's #general).
    answer = await command(h, lab2, 'keywords add "graph neural"')
    assert "graph neural" in answer["text"]
    assert "graph neural" in h.sub(LAB2).keywords
    assert "graph neural" not in h.sub(TEAM_ID).keywords
    assert lab2.requests_for("conversations.members")

    # Scheduled digests: one thread per workspace, posted with that workspace's token.
    await deliver_today(h, h.sub(TEAM_ID), h.sub(LAB2))
    for ws, team in ((home, TEAM_ID), (lab2, LAB2)):
        (header,) = [m for m in digest_posts(ws) if not m["metadata"]["event_payload"]["paper"]]
        assert header["text"].startswith("arXiv digest · Thu 22 Jan 2026")
        assert header["bot_id"] == ws.bot_id and header["team"] == ws.team_id
        posted = items(ws)
        assert len(posted) == 3 and {m["thread_ts"] for m in posted} == {header["ts"]}
        assert {m["metadata"]["event_payload"]["subscription"] for m in posted} == {h.sub(team).id}
    assert len(digest_posts(home)) == len(digest_posts(lab2)) == 4

    # A 👍 in lab2 rates lab2's paper and redraws lab2's message (chat.update, lab2's token).
    first = items(lab2)[0]
    url = lab2.new_response_url(
        channel_id=GENERAL_CHANNEL, user_id=lab2.human_user_id, message_ts=first["ts"]
    )
    body = block_action_body(
        "rate_up",
        first["metadata"]["event_payload"]["paper"],
        team_id=LAB2,
        user_id=lab2.human_user_id,
        channel_id=GENERAL_CHANNEL,
        message_ts=first["ts"],
        message={k: v for k, v in first.items() if k not in _INTERNAL},
        response_url=url,
    )
    assert await post_signed(h, body) == 200
    (rated,) = await lab2.wait_for_response_async(url, 5)
    assert rated["text"].startswith("Thanks — rated 👍")
    assert [r.user for r in h.store.ratings(h.sub(LAB2).id)] == [lab2.human_user_id]
    assert h.store.ratings(h.sub(TEAM_ID).id) == []
    assert [u["ts"] for u in lab2.updates] == [first["ts"]] and home.updates == []

    # /arxiv digest in the first workspace: already delivered there, nothing lands in lab2.
    await command(h, home, "digest")
    assert len(digest_posts(lab2)) == 4


async def test_uninstall_stops_that_workspace_and_the_other_goes_on(herald, fake):
    h = await herald()
    home, lab2 = fake, fake.workspace(LAB2)
    await install(h, TEAM_ID)
    await install(h, LAB2)
    for ws in (home, lab2):
        await command(h, ws, "subscribe")

    # Slack sends tokens_revoked and app_uninstalled, signed, to the Request URL.
    assert await lab2.uninstall_async() == [200, 200]

    def uninstalled() -> bool:  # both events handled (Bolt runs listeners after the ack)
        reason = h.sub(LAB2).deactivated_reason or ""
        return reason.startswith("Slack app uninstalled")

    assert await fake.wait_until_async(uninstalled, 5)
    gone = h.store.installation("slack", LAB2)
    assert gone is not None and not gone.live and gone.bot_token is None
    assert (gone.removed_reason or "").startswith("Slack app uninstalled from Lab Two (T0LAB2) on ")
    assert h.sub(LAB2).deactivated_reason == gone.removed_reason
    assert h.sub(TEAM_ID).active and h.store.installation("slack", TEAM_ID).live

    # The next scheduled run: the first workspace gets its digest, lab2 nothing (and the
    # old token is never tried).
    active = [s for s in h.engine.active_subscriptions() if s.platform == "slack"]
    assert [s.chat for s in active] == [chat_address(TEAM_ID, GENERAL_CHANNEL)]
    await deliver_today(h, *active)
    assert len(items(home)) == 3 and digest_posts(lab2) == []
    # Even a digest for lab2 that was already under way finds no token to post with.
    (late,) = h.engine.digests([h.sub(LAB2)], THE_DAY)
    report = await h.app.service.deliver_digest(late)
    assert report.sent == 0 and report.failed == gone.removed_reason
    refused = [e["method"] for e in fake.api_log if e.get("error") == "token_revoked"]
    assert refused == [], "herald called Slack with the revoked token"

    # A reinstall brings lab2's digests back where the uninstall stopped them: the digest
    # the ledger had planned goes out whole, once.
    await install(h, LAB2)
    assert h.sub(LAB2).active and h.sub(LAB2).deactivated_reason is None
    await deliver_today(h, h.sub(LAB2))
    planned = [r.paper_id for r in h.store.deliveries(h.sub(LAB2).id, THE_DAY) if r.paper_id]
    assert [m["metadata"]["event_payload"]["paper"] for m in items(lab2)] == planned
    assert {r.state for r in h.store.deliveries(h.sub(LAB2).id, THE_DAY)} == {"sent"}


async def test_revoked_bot_token_stops_the_digests_too(herald, fake):
    h = await herald()
    await install(h, TEAM_ID)
    await command(h, fake, "subscribe")
    assert await fake.workspace(TEAM_ID).deliver_event_async({"type": "tokens_revoked"}) == 200
    assert h.sub(TEAM_ID).active  # no tokens named: nothing to do
    assert await asyncio.to_thread(fake.revoke_tokens) == 200
    assert await fake.wait_until_async(lambda: not h.sub(TEAM_ID).active, 5)
    assert (h.sub(TEAM_ID).deactivated_reason or "").startswith(
        f"Slack bot token revoked in arXiv Herald ({TEAM_ID}) on "
    )
    assert h.store.installation("slack", TEAM_ID).bot_token is None
    # The uninstall that follows names the real reason, on the stopped subscription too.
    assert await fake.deliver_event_async({"type": "app_uninstalled"}) == 200
    assert await fake.wait_until_async(
        lambda: (h.sub(TEAM_ID).deactivated_reason or "").startswith("Slack app uninstalled"), 5
    )
    gone = h.store.installation("slack", TEAM_ID)
    assert gone is not None and gone.removed_reason == h.sub(TEAM_ID).deactivated_reason


async def test_an_uninstall_missed_while_down_is_noticed_on_the_next_post(herald, fake):
    h = await herald()
    lab2 = fake.workspace(LAB2)
    await install(h, LAB2)
    await command(h, lab2, "subscribe")
    # The app was removed while herald was not listening: no event ever came.
    lab2.revoked_tokens |= lab2.bot_tokens
    lab2.bot_tokens.clear()
    await deliver_today(h, h.sub(LAB2))
    reason = h.sub(LAB2).deactivated_reason or ""
    assert reason.startswith("Slack app's token stopped working in Lab Two (T0LAB2) (token_")
    gone = h.store.installation("slack", LAB2)
    assert gone is not None and not gone.live and gone.removed_reason == reason
    await install(h, LAB2)
    assert h.sub(LAB2).active


async def test_a_restart_keeps_both_installations(herald, fake):
    h = await herald()
    lab2 = fake.workspace(LAB2)
    await install(h, TEAM_ID)
    await install(h, LAB2)
    for ws in (fake, lab2):
        await command(h, ws, "subscribe")
    await stop(h)

    # A new process: a new Store on the same file, a new adapter, no token in the environment.
    h2 = await herald()
    assert {i.workspace for i in h2.store.installations("slack")} == {TEAM_ID, LAB2}
    await deliver_today(h2, h2.sub(TEAM_ID), h2.sub(LAB2))
    assert len(items(fake)) == len(items(lab2)) == 3
    # Bolt authorizes lab2's command from the database and the answer uses lab2's token.
    answer = await command(h2, lab2, "keywords add transformers")
    assert "transformers" in answer["text"] and "transformers" in h2.sub(LAB2).keywords


async def test_forged_stale_and_replayed_states_are_refused(herald, fake):
    h = await herald()

    def exchanges() -> int:  # codes herald tried to exchange (not its start-up check)
        calls = fake.requests_for("oauth.v2.access")
        return sum(1 for c in calls if c.get("code") != "herald-start-check")

    # Forged: a state herald never issued (with a cookie to match) is refused.
    begun = await begin_install(h, LAB2)
    redirect = await at_slack(begun.authorize_url)
    forged = redirect.update_query(state="forged-state")
    status, text = await back_at_herald(h, forged, "forged-state")
    assert status == 401 and "invalid_state" in text
    # A state not from this browser (no cookie, or another one) is refused.
    assert (await back_at_herald(h, redirect, None))[0] == 400
    assert (await back_at_herald(h, redirect, "someone-else"))[0] == 400
    assert exchanges() == 0

    # The genuine one still works, once; replaying it is refused and the code is not reused.
    status, _text = await back_at_herald(h, redirect, begun.state)
    assert status == 200 and exchanges() == 1
    status, text = await back_at_herald(h, redirect, begun.state)
    assert status == 401 and "invalid_state" in text and exchanges() == 1

    # Stale: issued, then the browser comes back after the state expired.
    begun = await begin_install(h, TEAM_ID)
    redirect = await at_slack(begun.authorize_url)
    states = h.adapter.oauth_states
    assert states is not None
    states.clock = lambda: time.time() + h.adapter.section.state_expiration_s + 1
    status, text = await back_at_herald(h, redirect, begun.state)
    assert status == 401 and "invalid_state" in text and exchanges() == 1
    assert h.store.installation("slack", TEAM_ID) is None


async def test_cancelled_or_rejected_installs_store_nothing(herald, fake):
    h = await herald()
    fake.deny_next_install = True
    begun = await begin_install(h)
    redirect = await at_slack(begun.authorize_url)
    assert redirect.query["error"] == "access_denied"
    status, _text = await back_at_herald(h, redirect, begun.state)
    assert status == 200  # Bolt's "something went wrong" page
    # A code Slack does not know (oauth.v2.access: invalid_code) installs nothing either.
    begun = await begin_install(h)
    redirect = (await at_slack(begun.authorize_url)).update_query(
        code="1.2.bogus", state=begun.state
    )
    status, text = await back_at_herald(h, redirect, begun.state)
    assert status == 401 and "invalid_code" in text
    assert h.store.installations("slack") == []


async def test_install_page_passes_only_a_workspace_id_to_slack(herald, fake):
    h = await herald()
    begun = await begin_install(h, "T0LAB2&redirect_uri=https://evil.example/")
    assert "evil" not in begun.authorize_url
    query = URL(begun.authorize_url).query
    assert query["client_id"] == CLIENT_ID and query["state"] == begun.state
    assert set(query["scope"].split(",")) >= {"commands", "chat:write"}
    assert URL(begun.authorize_url).with_query(None) == URL(fake.authorize_url)


async def test_redirect_uri_from_public_url_must_be_a_registered_one(herald, fake):
    h = await herald(**{"web.public_url": "https://herald.example.org/"})
    assert h.adapter.redirect_uri == "https://herald.example.org/slack/oauth_redirect"
    begun = await begin_install(h)
    assert URL(begun.authorize_url).query["redirect_uri"] == h.adapter.redirect_uri
    async with (
        aiohttp.ClientSession() as browser,
        browser.get(begun.authorize_url, allow_redirects=False) as resp,
    ):
        # Not among the app's Redirect URLs: Slack stops right there.
        assert resp.status == 400 and await resp.text() == "bad_redirect_uri"


async def test_single_token_workspace_is_adopted_when_oauth_is_turned_on(herald, fake, monkeypatch):
    fake.bot_tokens.add("xoxb-test")
    monkeypatch.setenv("SLACK_BOT_TOKEN", "xoxb-test")
    h = await herald(**{"slack.oauth": False})
    old = h.store.upsert_subscription(
        dataclasses.replace(
            h.engine.config.default_subscription(),
            id=None,
            platform="slack",
            chat=GENERAL_CHANNEL,
            name="",
            feed_token="",
        )
    )
    await stop(h)

    h = await herald()  # slack.oauth: true, the old token still in the environment
    adopted = h.sub(TEAM_ID)
    assert adopted.id == old.id and adopted.feed_token == old.feed_token
    inst = h.store.installation("slack", TEAM_ID)
    assert inst is not None and inst.bot_token == "xoxb-test" and inst.bot_id == fake.bot_id
    assert "chat:write" in inst.bot_scopes
    answer = await command(h, fake, "status")
    assert "not subscribed" not in answer["text"]
    await deliver_today(h, adopted)
    assert len(items(fake)) == 3


async def test_status_lists_workspaces(herald, fake, write_config):
    h = await herald()
    await install(h, TEAM_ID)
    await install(h, LAB2)
    await command(h, fake.workspace(LAB2), "subscribe")
    assert await fake.workspace(LAB2).uninstall_async(tokens_revoked_event=False) == [200]
    assert await fake.wait_until_async(lambda: not h.sub(LAB2).active, 5)
    path = write_config(slack={"enabled": False})
    result = CliRunner().invoke(main, ["--config", str(path), "status"])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    start = lines.index("installed workspaces (slack):")
    shown = lines[start + 1 : start + 3]
    assert shown[0].startswith(f"  arXiv Herald ({TEAM_ID}): installed ")
    assert shown[1].startswith(f"  Lab Two ({LAB2}): removed ")
    assert "uninstalled" in shown[1]


# -- configuration ----------------------------------------------------------------------------
def test_oauth_needs_http_mode_and_its_credentials(make_config, engine, monkeypatch, oauth_env):
    with pytest.raises(ConfigError, match=r"slack.*oauth: true needs mode: http"):
        make_config(**{"slack.enabled": True, "slack.oauth": True})
    cfg = make_config(**{"slack.enabled": True, "slack.mode": "http", "slack.oauth": True})
    monkeypatch.delenv("SLACK_CLIENT_SECRET")
    with pytest.raises(ConfigError, match="SLACK_CLIENT_SECRET"):
        build(cfg, engine)
    monkeypatch.setenv("SLACK_CLIENT_SECRET", CLIENT_SECRET)
    routes = {r.path for r in build(cfg, engine).adapters["slack"].web_routes()}  # type: ignore[attr-defined]
    assert routes == {EVENTS_PATH, INSTALL_PATH, REDIRECT_PATH}


async def test_wrong_client_credentials_are_a_config_error_at_start(herald, fake, monkeypatch):
    monkeypatch.setenv("SLACK_CLIENT_SECRET", "not-the-secret")
    with pytest.raises(ConfigError, match=r"Client Secret in SLACK_CLIENT_SECRET"):
        await herald()
    monkeypatch.setenv("SLACK_CLIENT_SECRET", CLIENT_SECRET)
    monkeypatch.setenv("SLACK_CLIENT_ID", "0000.0000")
    with pytest.raises(ConfigError, match=r"Client ID in SLACK_CLIENT_ID"):
        await herald()
    monkeypatch.setenv("SLACK_CLIENT_ID", CLIENT_ID)
    h = await herald()
    assert h.adapter.connected


def test_default_scopes_are_the_manifests() -> None:
    import yaml

    from adapters.slack import BOT_SCOPES

    manifest = Path(__file__).resolve().parents[1] / "slack-manifest.yaml"
    data = yaml.safe_load(manifest.read_text(encoding="utf-8"))
    assert list(BOT_SCOPES) == data["oauth_config"]["scopes"]["bot"]
    assert "user" not in data["oauth_config"]["scopes"]


# -- the fake answers like Slack ----------------------------------------------------------------
async def test_fake_oauth_v2_access_and_per_workspace_tokens(fake):
    lab2 = fake.workspace(LAB2)
    fake.redirect_urls = ["https://herald.example.org/slack/oauth_redirect"]
    api = AsyncWebClient(base_url=fake.api_url)

    async def code_for(team: str, redirect_uri: str | None = None) -> str:
        query = {"client_id": CLIENT_ID, "scope": "chat:write,commands", "state": "s", "team": team}
        if redirect_uri:
            query["redirect_uri"] = redirect_uri
        url = URL(fake.authorize_url).with_query(query)
        return (await at_slack(str(url))).query["code"]

    async def error_of(**kw: Any) -> str:
        with pytest.raises(SlackApiError) as err:
            await api.oauth_v2_access(
                **{"client_id": CLIENT_ID, "client_secret": CLIENT_SECRET, **kw}
            )
        return str(err.value.response["error"])

    code = await code_for(LAB2)
    assert await error_of(client_id="nope", code=code) == "invalid_client_id"
    assert await error_of(client_secret="nope", code=code) == "bad_client_secret"
    assert await error_of(code="1.2.3") == "invalid_code"
    assert await error_of(code=code, redirect_uri="https://elsewhere/") == "bad_redirect_uri"
    answer = await api.oauth_v2_access(client_id=CLIENT_ID, client_secret=CLIENT_SECRET, code=code)
    assert answer["team"] == {"id": LAB2, "name": "Lab Two"} and answer["enterprise"] is None
    assert answer["token_type"] == "bot" and answer["bot_user_id"] == lab2.bot_user_id
    assert answer["authed_user"] == {"id": lab2.human_user_id}
    assert answer["scope"] == "chat:write,commands" and answer["app_id"] == fake.app_id
    assert await error_of(code=code) == "code_already_used"

    # The token works in its own workspace only.
    token = answer["access_token"]
    assert (await api.auth_test(token=token))["team_id"] == LAB2
    await api.chat_postMessage(token=token, channel=GENERAL_CHANNEL, text="hello lab2")
    assert [m["text"] for m in lab2.all_posts()] == ["hello lab2"] and fake.all_posts() == []
    # An explicit redirect_uri must come back unchanged.
    code = await code_for(TEAM_ID, "https://herald.example.org/slack/oauth_redirect")
    assert await error_of(code=code) == "bad_redirect_uri"
    home = await api.oauth_v2_access(
        client_id=CLIENT_ID,
        client_secret=CLIENT_SECRET,
        code=code,
        redirect_uri="https://herald.example.org/slack/oauth_redirect",
    )
    assert home["access_token"] != token and home["team"]["id"] == TEAM_ID
    # Revoked tokens stop working.
    lab2.revoked_tokens.add(token)
    lab2.bot_tokens.discard(token)
    with pytest.raises(SlackApiError, match="token_revoked"):
        await api.auth_test(token=token)


# -- addresses and storage ----------------------------------------------------------------------
_IDS = st.from_regex(r"[A-Z0-9]{1,12}", fullmatch=True)


@given(workspace=st.none() | _IDS.map(lambda s: "T" + s), channel=_IDS.map(lambda s: "C" + s))
def test_chat_addresses_round_trip(workspace: str | None, channel: str) -> None:
    address = chat_address(workspace, channel)
    assert split_address(address) == (workspace, channel)
    assert (address == channel) == (workspace is None)


def test_installations_storage(tmp_path):
    store = Store(tmp_path / "h.db")
    inst = AppInstallation(
        platform="slack",
        workspace=LAB2,
        team_id=LAB2,
        team_name="Lab Two",
        bot_token="xoxb-1",
        bot_id="B1",
        bot_user_id="U1",
        bot_scopes=("chat:write", "commands"),
        installer_id="U2",
        installed_at=1700000000.5,
    )
    store.save_installation(inst)
    assert store.installation("slack", LAB2) == inst
    assert store.installation("telegram", LAB2) is None
    sub = store.upsert_subscription(
        Subscription(id=None, platform="slack", chat=f"{LAB2}/C1", name="", categories=("cs.LG",))
    )
    other = store.upsert_subscription(
        dataclasses.replace(sub, id=None, chat="T0OTHER/C1", feed_token="")
    )
    assert store.remove_installation("slack", LAB2, reason="gone", chat_prefix=f"{LAB2}/") == 1
    removed = store.installation("slack", LAB2)
    assert removed is not None and not removed.live and removed.removed_reason == "gone"
    # Removed again (tokens_revoked and app_uninstalled, either first): the first reason
    # stays, unless the second is final; then it is the reason everywhere.
    assert store.remove_installation("slack", LAB2, reason="again", chat_prefix=f"{LAB2}/") == 0
    assert store.installation("slack", LAB2).removed_reason == "gone"
    n = store.remove_installation(
        "slack", LAB2, reason="uninstalled", chat_prefix=f"{LAB2}/", final=True
    )
    again = store.installation("slack", LAB2)
    assert n == 0 and again is not None and again.removed_reason == "uninstalled"
    assert again.removed_at == removed.removed_at
    assert store.get_subscription("slack", sub.chat).deactivated_reason == "uninstalled"
    assert store.get_subscription("slack", other.chat).active
    # Coming back restarts what the removal stopped.
    assert store.save_installation(inst, chat_prefix=f"{LAB2}/") == 1
    assert store.installation("slack", LAB2) == inst
    assert store.get_subscription("slack", sub.chat).active

    store.issue_oauth_state("slack", "s1", expires_at=100.0, now=50.0)
    assert not store.consume_oauth_state("telegram", "s1", now=60.0)
    assert not store.consume_oauth_state("slack", "s1", now=100.0)  # expired
    store.issue_oauth_state("slack", "s2", expires_at=200.0, now=150.0)  # drops s1
    assert store.consume_oauth_state("slack", "s2", now=160.0)
    assert not store.consume_oauth_state("slack", "s2", now=160.0)  # once only
    store.close()


async def test_a_thread_question_is_answered_in_its_own_workspace(
    herald, fake, fake_openai, monkeypatch
):
    """Thread replies (questions about a paper) arrive with the workspace they come from: the
    answer is read and posted with that workspace's token, into that workspace only."""
    monkeypatch.setenv("HERALD_TEST_LLM_KEY", fake_openai.api_key or "sk-test")
    h = await herald(openai=fake_openai)
    home, lab2 = fake, fake.workspace(LAB2)
    await install(h, TEAM_ID)
    await install(h, LAB2)
    for ws in (home, lab2):
        assert (await command(h, ws, "subscribe"))["text"].startswith("Subscribed")
    await deliver_today(h, h.sub(LAB2))
    first = items(lab2)[0]
    paper, thread = first["metadata"]["event_payload"]["paper"], first["thread_ts"]
    record = h.store.get_paper(paper)
    assert record is not None
    words = sorted(record.title.replace(":", " ").split(), key=len, reverse=True)[:3]
    event = lab2.post_as_user(
        GENERAL_CHANNEL,
        lab2.human_user_id,
        f"{paper} what does it say about {' '.join(words)}?",
        thread_ts=thread,
    )
    body = event_callback_body(event, team_id=LAB2, authorized_user_id=lab2.bot_user_id)
    headers = {"Content-Type": "application/json", **sign_request(body, SIGNING_SECRET)}
    assert (await h.client.post(EVENTS_PATH, data=body, headers=headers)).status == 200

    def answers(ws: FakeSlack) -> list[dict[str, Any]]:
        return [
            m
            for m in ws.all_posts()
            if m.get("thread_ts") == thread
            and m.get("bot_id")
            and (m.get("metadata") or {}).get("event_type") != ITEM_EVENT
        ]

    assert await lab2.wait_until_async(lambda: answers(lab2), 15)
    (answer,) = answers(lab2)
    assert answer["bot_id"] == lab2.bot_id and answer["team"] == LAB2
    assert "(p. " in json.dumps(answer["blocks"], ensure_ascii=False)  # cited from the PDF
    assert answers(home) == []
