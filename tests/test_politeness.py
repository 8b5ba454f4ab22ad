"""arXiv's one-request-per-3-seconds rule holds across processes: several `herald` CLI commands
and a running `herald serve` on the same database take turns, as arXiv sees it.  The real
default interval, not a shortened one: the test takes about 15 s."""

from __future__ import annotations

import itertools
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from bot.config import ArxivSection
from storage import Store
from tests.fakes import corpus
from tests.fakes.arxiv import FakeArxiv

CHECKOUT = Path(__file__).resolve().parents[1]
INTERVAL = ArxivSection().request_interval_s  # the default: arXiv's 3 s


def test_cli_processes_and_serve_share_one_arxiv_turn(
    write_config: Callable[..., Path], fake_arxiv: FakeArxiv, tmp_path: Path
) -> None:
    cfg = write_config(
        arxiv={"request_interval_s": INTERVAL},
        web={"port": 0},
        learning={"enabled": False},
        outputs={"console": False, "markdown": None, "feed": None, "atom": None, "json": None},
    )
    env = {**os.environ, "HERALD_CONFIG": str(cfg), "PYTHONPATH": str(CHECKOUT)}
    # Papers of another day: not stored yet, so each lookup asks the arXiv API.
    ids = [p["base_id"] for p in corpus.papers_on("2026-01-23")[:4]]

    def herald(*args: str) -> subprocess.Popen[str]:
        return subprocess.Popen(
            [sys.executable, "-m", "bot", *args],
            env=env,
            cwd=tmp_path,
            text=True,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )

    serve = herald("serve")  # fetches on start: nothing was ever fetched
    lookups = [herald("lookup", i) for i in ids]
    try:
        for proc in lookups:
            out, _ = proc.communicate(timeout=180)
            assert proc.returncode == 0, out
        deadline = time.monotonic() + 180
        while True:  # the service's start-up fetch is recorded
            store = Store(tmp_path / "herald.db")
            try:
                if store.last_fetch() is not None:
                    break
            finally:
                store.close()
            assert serve.poll() is None, serve.communicate()[0]
            assert time.monotonic() < deadline, "serve never fetched"
            time.sleep(0.05)
    finally:
        serve.terminate()
        serve.communicate(timeout=30)
        for proc in lookups:
            if proc.poll() is None:
                proc.kill()
    times = sorted(fake_arxiv.request_times())
    assert len(times) >= 1 + len(ids)  # the feed and every lookup reached arXiv
    gaps = [b - a for a, b in itertools.pairwise(times)]
    assert INTERVAL == 3.0
    assert min(gaps) >= INTERVAL, gaps
