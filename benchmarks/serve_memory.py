"""Resident memory of `herald serve` (a real process) with Slack and Telegram both on:
idle, and the peak while it delivers one day's digest to 500 subscriptions.

    .venv/bin/python benchmarks/serve_memory.py [--subs 500] [--papers 3]

Targets (issue 6): idle <= 150 MB; peak during the 500-subscription digest <= 350 MB.
Slack (Socket Mode) and Telegram (long polling) talk to the local fakes; arXiv is the fake
serving a real announcement day.  Memory is read from /proc/<pid>/status (VmRSS, VmHWM).
"""

from __future__ import annotations

import argparse
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import yaml  # noqa: E402

from bot.config import default_config_text, read_yaml  # noqa: E402
from bot.models import Subscription  # noqa: E402
from storage import Store  # noqa: E402
from tests.fakes.arxiv import FakeArxiv  # noqa: E402
from tests.fakes.slack import FakeSlack  # noqa: E402
from tests.fakes.telegram import FakeTelegram  # noqa: E402

DAY = "2026-01-22"
FIRST_CHAT = 500_000


def mem(pid: int) -> tuple[float, float]:
    status = Path(f"/proc/{pid}/status").read_text()
    rss = int(re.search(r"VmRSS:\s+(\d+)", status).group(1)) / 1024  # type: ignore[union-attr]
    hwm = int(re.search(r"VmHWM:\s+(\d+)", status).group(1)) / 1024  # type: ignore[union-attr]
    return rss, hwm


def write_config(tmp: Path, arxiv: FakeArxiv, slack: FakeSlack, tg: FakeTelegram) -> Path:
    data = read_yaml(default_config_text())
    data["database"] = str(tmp / "herald.db")
    data["arxiv"].update(
        rss_url=arxiv.rss_url_template,
        api_url=arxiv.api_url,
        pdf_url=arxiv.pdf_url_template,
        request_interval_s=0.05,
    )
    data["summaries"]["enabled"] = False
    data["outputs"] = {
        "console": False,
        "markdown": str(tmp / "digest.md"),
        "feed": str(tmp / "feed.xml"),
    }
    data["slack"].update(enabled=True, api_base_url=slack.api_url, post_interval_s=1.0)
    data["telegram"].update(enabled=True, api_base_url=tg.url + "/bot")
    data["web"]["port"] = 0
    path = tmp / "config.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def make_subs(
    db: Path, n: int, papers: int, slack: FakeSlack, tg: FakeTelegram, time_: str, tz: str
) -> None:
    store = Store(db)
    for i in range(n):
        if i % 2:
            chat = f"C{i:08d}"
            slack.add_channel(chat, f"papers-{i}")
            platform = "slack"
        else:
            chat = str(FIRST_CHAT + i)
            tg.add_chat(int(chat), "private")
            platform = "telegram"
        have = store.get_subscription(platform, chat)
        if have is not None:
            store.update_subscription(have.id, time=time_, timezone=tz)
            continue
        store.upsert_subscription(
            Subscription(
                None,
                platform,
                chat,
                ("cs.LG", "cs.CL", "cs.AI"),
                keywords=("LLM", "training", "inference", "reinforcement learning"),
                max_papers=papers,
                min_score=1.0,
                time=time_,
                timezone=tz,
            )
        )
    store.close()


def run(env: dict[str, str], cwd: Path, until, limit: float) -> tuple[float, float, float]:  # type: ignore[no-untyped-def]
    proc = subprocess.Popen(
        [sys.executable, "-m", "bot", "serve"],
        env=env,
        cwd=cwd,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    peak = 0.0
    t0 = time.monotonic()
    try:
        while time.monotonic() - t0 < limit:
            if proc.poll() is not None:
                raise SystemExit(f"herald serve exited with {proc.returncode}")
            rss, hwm = mem(proc.pid)
            peak = max(peak, hwm)
            if until():
                break
            time.sleep(0.2)
        else:
            print("  (time limit reached)")
        elapsed = time.monotonic() - t0
        rss, hwm = mem(proc.pid)
        return rss, max(peak, hwm), elapsed
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(60)
        except subprocess.TimeoutExpired:
            proc.kill()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--subs", type=int, default=500)
    ap.add_argument("--papers", type=int, default=3)
    args = ap.parse_args()
    with (
        FakeArxiv(day=DAY) as arxiv,
        FakeSlack(auto_create_channels=True) as slack,
        FakeTelegram() as tg,
        tempfile.TemporaryDirectory() as tmp_str,
    ):
        tmp = Path(tmp_str)
        cfg = write_config(tmp, arxiv, slack, tg)
        env = {
            **os.environ,
            "HERALD_CONFIG": str(cfg),
            "SLACK_BOT_TOKEN": "xoxb-test",
            "SLACK_APP_TOKEN": "xapp-test",
            "TELEGRAM_BOT_TOKEN": tg.token,
            "NO_PROXY": "127.0.0.1,localhost",
            # `python -m bot` from a temporary directory: measure this checkout, not whatever
            # copy of the project is installed in the environment.
            "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
        }
        db = tmp / "herald.db"
        # 1. Idle: every subscription's digest time is still ahead, so nothing is due.
        make_subs(db, args.subs, args.papers, slack, tg, "23:59", "Etc/GMT+12")

        def fetched() -> bool:
            s = Store(db)
            try:
                return s.last_fetch("ok") is not None
            finally:
                s.close()

        settle_until = [0.0]

        def idle() -> bool:
            if not fetched():
                return False
            if not settle_until[0]:
                settle_until[0] = time.monotonic() + 10
            return time.monotonic() > settle_until[0]

        rss, hwm, _ = run(env, tmp, idle, 120)
        print(
            f"herald serve, Slack (Socket Mode) + Telegram (polling) on, {args.subs} "
            f"subscriptions, after its fetch, 10 s idle: RSS {rss:.0f} MB (peak so far "
            f"{hwm:.0f} MB; target idle <= 150 MB)"
        )

        # 2. The digest: every subscription due now.
        make_subs(db, args.subs, args.papers, slack, tg, "00:00", "UTC")
        expected = args.subs * (1 + args.papers)

        def delivered() -> bool:
            s = Store(db)
            try:
                n = s._one("SELECT count(*) AS n FROM deliveries WHERE state = 'sent'")
                return bool(n) and n["n"] >= expected
            finally:
                s.close()

        rss, hwm, took = run(env, tmp, delivered, 600)
        s = Store(db)
        sent = s._one("SELECT count(*) AS n FROM deliveries WHERE state = 'sent'")["n"]
        s.close()
        slack_posts = len(slack.all_posts())
        tg_posts = sum(len(tg.messages(FIRST_CHAT + i)) for i in range(0, args.subs, 2))
        print(
            f"digest to {args.subs} subscriptions ({sent:,} messages sent in {took:.0f} s; "
            f"Slack {slack_posts:,}, Telegram {tg_posts:,}): peak RSS {hwm:.0f} MB, "
            f"after {rss:.0f} MB (target peak <= 350 MB)"
        )


if __name__ == "__main__":
    main()
