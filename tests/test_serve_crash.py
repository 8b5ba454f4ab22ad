"""`herald serve` as a real process: SIGKILL it in the middle of a Slack digest fan-out, start
it again, and every paper is in the thread exactly once.  SIGTERM stops it cleanly."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from bot.models import Subscription
from storage import Store
from tests.fakes.slack import PAPERS_CHANNEL, FakeSlack
from tests.fakes.telegram import FakeTelegram

MAX = 8
CHECKOUT = Path(__file__).resolve().parents[1]


def due_now(platform: str, chat: str, max_papers: int) -> Subscription:
    """A chat whose digest is due as soon as serve starts (00:00 UTC), on real keywords."""
    return Subscription(
        None,
        platform,
        chat,
        ("cs.LG", "cs.CL", "cs.AI"),
        keywords=("LLM", "reinforcement learning", "inference", "training"),
        time="00:00",
        timezone="UTC",
        max_papers=max_papers,
        min_score=1.0,
    )


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
        # `python -m bot` runs this checkout, never an installed copy.
        "PYTHONPATH": str(CHECKOUT),
    }
    store = Store(tmp_path / "herald.db")
    store.upsert_subscription(due_now("slack", PAPERS_CHANNEL, MAX))
    store.close()
    return env, tmp_path


READY = "herald serve is running"


class Serve:
    """A real ``herald serve`` process (run from this checkout) whose output is collected as
    it arrives, so a test can wait for a line."""

    def __init__(self, env: dict[str, str], cwd: Path) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "bot", "serve"],
            env=env,
            cwd=cwd,
            text=True,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )
        self.lines: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.append(line)

    @property
    def output(self) -> str:
        return "".join(self.lines)

    def wait(self, pred: Callable[[], bool], timeout: float = 60) -> None:
        """Wait for ``pred``; fail at once (with the log) if the process exits first."""
        end = time.monotonic() + timeout
        while not pred():
            if self.proc.poll() is not None:
                self._reader.join(5)
                raise AssertionError(
                    f"herald serve exited with {self.proc.returncode}:\n{self.output[-3000:]}"
                )
            if time.monotonic() > end:
                raise AssertionError(f"timed out; herald serve said:\n{self.output[-3000:]}")
            time.sleep(0.02)

    def wait_ready(self) -> None:
        self.wait(lambda: READY in self.output)

    def kill(self) -> None:
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)

    def term(self) -> int:
        """SIGTERM; returns the exit code once the process (and its output) ended."""
        self.proc.send_signal(signal.SIGTERM)
        code = self.proc.wait(30)
        self._reader.join(10)
        return code

    def cleanup(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)


def posts(fake: FakeSlack) -> list[dict[str, Any]]:
    return [m for m in fake.all_posts() if m.get("channel") == PAPERS_CHANNEL]


def ledger_settled(db: Path) -> bool:
    """The day's digest is recorded as delivered: every ledger row sent, the run marked done."""
    store = Store(db)
    try:
        sub = store.get_subscription("slack", PAPERS_CHANNEL)
        day = store.latest_day()
        if sub is None or sub.id is None or day is None:
            return False
        rows = store.deliveries(sub.id, day)
        return (
            bool(rows) and all(r.state == "sent" for r in rows) and day in store.done_days(sub.id)
        )
    finally:
        store.close()


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
    first = Serve(env, cwd)
    try:
        first.wait(lambda: len(posts(fake_slack)) >= kill_after)
        first.kill()
    finally:
        first.cleanup()
    fake_slack.release_hangs()
    assert not ledger_settled(cwd / "herald.db")  # the kill interrupted the digest

    second = Serve(env, cwd)
    try:
        second.wait_ready()
        # Wait for what the user would see settle: the ledger says the day is delivered.
        second.wait(lambda: ledger_settled(cwd / "herald.db"))
        assert second.term() == 0
    finally:
        second.cleanup()
    # The process has ended: every post it made is in the fake now, nothing more can come.
    if mode == "accepted-then-hang":
        # The message Slack took before the kill was found by its metadata, not re-posted.
        assert "already on the platform; not sending it again" in second.output
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
    proc = Serve(env, cwd)
    try:
        proc.wait(lambda: len(posts(fake_slack)) >= 3)
        assert proc.term() == 0
        assert "Traceback" not in proc.output
    finally:
        proc.cleanup()
    store = Store(cwd / "herald.db")
    try:
        sub = store.get_subscription("slack", PAPERS_CHANNEL)
        assert sub is not None
        rows = store.deliveries(sub.id, store.latest_day())
        # Nothing half-recorded: each row is sent (with its message) or still pending.
        assert {r.state for r in rows} <= {"sent", "pending"}
        sent = [r for r in rows if r.state == "sent"]
        assert all(r.message_id for r in sent)
        assert len(sent) == len(posts(fake_slack))
        assert "pending" in {r.state for r in rows}  # it stopped mid-digest, not after
    finally:
        store.close()


def test_sigterm_during_start_up_is_a_clean_stop(
    serve_env: tuple[dict[str, str], Path], fake_slack: FakeSlack
) -> None:
    env, cwd = serve_env
    proc = Serve(env, cwd)
    try:
        # As early as the process shows any sign of life: imports and start-up still running.
        proc.wait(lambda: "herald serve: web on" in proc.output)
        assert proc.term() == 0
        assert "Traceback" not in proc.output
    finally:
        proc.cleanup()


def test_herald_run_delivers_due_digests_to_chats_once(
    serve_env: tuple[dict[str, str], Path], fake_slack: FakeSlack
) -> None:
    env, cwd = serve_env
    said = []
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
        said.append(done.stderr)
    headers, papers = papers_in_thread(fake_slack)
    assert headers == 1 and len(papers) == MAX and set(papers.values()) == {1}
    assert f"{MAX + 1} messages sent" in said[0]  # the header and every paper, once
    assert "chats: no digest due" in said[1]


# -- Telegram: no history to read; unsure messages are found by their own keyboard -------------
TG_CHATS = 40
TG_MAX = 3


@pytest.fixture
def tg_env(
    write_config: Callable[..., Path], tmp_path: Path
) -> Iterator[tuple[dict[str, str], Path, FakeTelegram]]:
    with FakeTelegram() as fake:
        cfg = write_config(
            telegram={
                "enabled": True,
                "api_base_url": fake.api_url,
                "per_chat_interval_s": 0,
                "global_rate": 300,
                "layout": "thread",  # a message per paper (the compact layout: test_fanout)
            },
            schedule={"default_time": "00:00"},
            learning={"enabled": False},
            web={"port": 0},
            outputs={"console": False, "markdown": None, "feed": None, "atom": None, "json": None},
        )
        env = {
            **os.environ,
            "HERALD_CONFIG": str(cfg),
            "TELEGRAM_BOT_TOKEN": fake.token,
            "NO_PROXY": "127.0.0.1,localhost",
            "PYTHONPATH": str(CHECKOUT),
        }
        store = Store(tmp_path / "herald.db")
        for i in range(TG_CHATS):
            chat = 5000 + i
            fake.add_chat(chat, type="private")
            store.upsert_subscription(due_now("telegram", str(chat), TG_MAX))
        store.close()
        yield env, tmp_path, fake


def tg_settled(db: Path) -> bool:
    store = Store(db)
    try:
        day = store.latest_day()
        subs = store.list_subscriptions(platform="telegram")
        return (
            day is not None
            and len(subs) == TG_CHATS
            and all(day in store.done_days(s.id) for s in subs if s.id is not None)
            and store.pending_delivery_count() == 0
        )
    finally:
        store.close()


@pytest.mark.parametrize(
    ("kill_after", "mode"),
    [(5, "between"), (90, "between"), (44, "accepted-then-hang"), (121, "accepted-then-hang")],
)
def test_telegram_sigkill_mid_fanout_then_restart_sends_each_message_once(
    tg_env: tuple[dict[str, str], Path, FakeTelegram], kill_after: int, mode: str
) -> None:
    env, cwd, fake = tg_env
    sends = lambda: len(fake.sends())  # noqa: E731
    if mode == "accepted-then-hang":
        # Telegram takes message number kill_after + 1, but its answer never reaches us.
        fake.hang_next("sendMessage", after=True, skip=kill_after)
        kill_after += 1
    first = Serve(env, cwd)
    try:
        first.wait(lambda: sends() >= kill_after)
        first.kill()
    finally:
        first.cleanup()
    fake.release_hangs()
    assert not tg_settled(cwd / "herald.db")

    second = Serve(env, cwd)
    try:
        second.wait_ready()
        second.wait(lambda: tg_settled(cwd / "herald.db"), timeout=120)
        assert second.term() == 0
    finally:
        second.cleanup()
    if mode == "accepted-then-hang":
        assert "already on the platform; not sending it again" in second.output
    duplicates = missing = 0
    for i in range(TG_CHATS):
        chat = 5000 + i
        texts = [m.text for m in fake.messages(chat)]
        headers = sum(t.startswith("arXiv digest") for t in texts)
        papers = [
            m
            for m in fake.messages(chat)
            if m.reply_markup and m.reply_markup["inline_keyboard"][0][0]["text"].startswith("👍")
        ]
        duplicates += sum(n - 1 for n in fake.duplicate_texts(chat).values()) + max(0, headers - 1)
        missing += max(0, 1 - headers) + max(0, TG_MAX - len(papers))
    assert (duplicates, missing) == (0, 0)
