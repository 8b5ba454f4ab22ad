"""`herald serve` as a real process: SIGKILL it in the middle of a Slack digest fan-out, start
it again, and every paper is in the thread exactly once.  SIGTERM stops it cleanly."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from bot.models import Subscription
from storage import Store
from tests.fakes.slack import PAPERS_CHANNEL, FakeSlack

MAX = 8


@pytest.fixture
def fake_slack() -> Iterator[FakeSlack]:
    with FakeSlack() as fake:
        yield fake


@pytest.fixture
def serve_env(
    write_config: Callable[..., Path], fake_slack: FakeSlack, tmp_path: Path
) -> tuple[dict[str, str], Path]:
    cfg = write_config(
        slack={
            "enabled": True,
            "mode": "socket",
            "api_base_url": fake_slack.api_url,
            "post_interval_s": 0.25,
        },
        schedule={"default_time": "00:00"},
        learning={"enabled": False},
        web={"port": 0},
        outputs={"console": False, "markdown": None, "feed": None, "atom": None, "json": None},
    )
    env = {
        **os.environ,
        "HERALD_CONFIG": str(cfg),
        "SLACK_BOT_TOKEN": "xoxb-test",
        "SLACK_APP_TOKEN": "xapp-test",
        "NO_PROXY": "127.0.0.1,localhost",
    }
    store = Store(tmp_path / "herald.db")
    store.upsert_subscription(
        Subscription(
            None,
            "slack",
            PAPERS_CHANNEL,
            ("cs.LG", "cs.CL", "cs.AI"),
            keywords=("LLM", "reinforcement learning", "inference", "training"),
            time="00:00",
            timezone="UTC",
            max_papers=MAX,
            min_score=1.0,
        )
    )
    store.close()
    return env, tmp_path


def start(env: dict[str, str], cwd: Path) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "bot", "serve"],
        env=env,
        cwd=cwd,
        text=True,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )


def posts(fake: FakeSlack) -> list[dict[str, Any]]:
    return [m for m in fake.all_posts() if m.get("channel") == PAPERS_CHANNEL]


def wait(
    pred: Callable[[], bool], timeout: float, proc: subprocess.Popen[str] | None = None
) -> None:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if pred():
            return
        if proc is not None and proc.poll() is not None:
            out = proc.stdout.read() if proc.stdout else ""
            raise AssertionError(f"herald serve exited with {proc.returncode}:\n{out[-3000:]}")
        time.sleep(0.02)
    raise AssertionError("timed out")


def papers_in_thread(fake: FakeSlack) -> tuple[int, Counter[str]]:
    headers = 0
    papers: Counter[str] = Counter()
    for m in posts(fake):
        meta = (m.get("metadata") or {}).get("event_payload") or {}
        if meta.get("part", 1) not in (1, None):
            continue
        if meta.get("paper") == "":
            headers += 1
        elif meta.get("paper"):
            papers[meta["paper"]] += 1
    return headers, papers


@pytest.mark.parametrize(
    ("kill_after", "mode"),
    [(1, "between"), (4, "between"), (3, "accepted-then-hang"), (MAX, "accepted-then-hang")],
)
def test_sigkill_mid_fanout_then_restart_sends_each_paper_once(
    serve_env: tuple[dict[str, str], Path], fake_slack: FakeSlack, kill_after: int, mode: str
) -> None:
    env, cwd = serve_env
    if mode == "accepted-then-hang":
        # Slack takes message number kill_after + 1, but its answer never reaches us.
        fake_slack.hang_next("chat.postMessage", after=True, skip=kill_after)
        kill_after += 1
    proc = start(env, cwd)
    try:
        wait(lambda: len(posts(fake_slack)) >= kill_after, 60, proc)
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
    finally:
        if proc.poll() is None:
            proc.kill()
    fake_slack.release_hangs()
    before = len(posts(fake_slack))
    assert before < MAX + 1 or mode == "accepted-then-hang"

    proc = start(env, cwd)
    try:
        wait(lambda: sum(papers_in_thread(fake_slack)[1].values()) >= MAX, 60, proc)
        time.sleep(1.0)  # anything extra would show up now
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 0
        log = proc.stdout.read() if proc.stdout else ""
    finally:
        if proc.poll() is None:
            proc.kill()
    if mode == "accepted-then-hang":
        # The message Slack took before the kill was found by its metadata, not re-posted.
        assert "already on the platform; not sending it again" in log
    headers, papers = papers_in_thread(fake_slack)
    assert headers == 1
    assert len(papers) == MAX
    assert set(papers.values()) == {1}, papers
    store = Store(cwd / "herald.db")
    try:
        assert store.pending_delivery_count() == 0
        sub = store.get_subscription("slack", PAPERS_CHANNEL)
        assert sub is not None
        assert store.delivered_paper_ids(sub.id) == set(papers)
    finally:
        store.close()


def test_sigterm_during_fanout_finishes_the_message_in_flight(
    serve_env: tuple[dict[str, str], Path], fake_slack: FakeSlack
) -> None:
    env, cwd = serve_env
    proc = start(env, cwd)
    try:
        wait(lambda: len(posts(fake_slack)) >= 3, 60, proc)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 0
        out = proc.stdout.read() if proc.stdout else ""
        assert "Traceback" not in out
    finally:
        if proc.poll() is None:
            proc.kill()
    store = Store(cwd / "herald.db")
    try:
        sub = store.get_subscription("slack", PAPERS_CHANNEL)
        assert sub is not None
        rows = store.deliveries(sub.id, store.latest_day())
        # Nothing half-recorded: each row is sent (with its message) or still pending.
        assert {r["state"] for r in rows} <= {"sent", "pending"}
        sent = [r for r in rows if r["state"] == "sent"]
        assert all(r["message_id"] for r in sent)
        assert len(sent) == len(posts(fake_slack))
    finally:
        store.close()


def test_herald_run_delivers_due_digests_to_chats_once(
    serve_env: tuple[dict[str, str], Path], fake_slack: FakeSlack
) -> None:
    env, cwd = serve_env
    for _ in range(2):
        done = subprocess.run(
            [sys.executable, "-m", "bot", "run", "--no-summaries"],
            env=env,
            cwd=cwd,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert done.returncode == 0, done.stderr[-2000:]
    headers, papers = papers_in_thread(fake_slack)
    assert headers == 1 and len(papers) == MAX and set(papers.values()) == {1}
    assert "messages sent" in done.stderr or "no digest due" in done.stderr
