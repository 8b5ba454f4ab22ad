"""arXiv's one-request-per-3-seconds rule across processes, as arXiv would see it.

Against the arXiv fake (which records when each request *arrives*), with the real 3 s
interval:

1. a shell loop of ``herald lookup`` commands, one after another (each a new process);
2. several ``herald lookup`` processes at once, beside a ``herald serve`` that fetches on
   start-up, all on the same database.

Prints every gap between consecutive requests and the minimum, which must be >= 3.0 s.

    .venv/bin/python benchmarks/arxiv_turns.py [--interval 3.0] [--lookups 3]

Runs on the repository's test data (no full corpus needed); takes about a minute.
"""

from __future__ import annotations

import argparse
import itertools
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import yaml  # noqa: E402

from bot.config import default_config_text, read_yaml  # noqa: E402
from storage import Store  # noqa: E402
from tests.fakes import corpus  # noqa: E402
from tests.fakes.arxiv import FakeArxiv  # noqa: E402


def write_config(tmp: Path, fake: FakeArxiv, interval: float) -> Path:
    data = read_yaml(default_config_text())
    data["database"] = str(tmp / "herald.db")
    data["arxiv"].update(
        rss_url=fake.rss_url_template,
        api_url=fake.api_url,
        pdf_url=fake.pdf_url_template,
        request_interval_s=interval,
    )
    data["summaries"]["enabled"] = False
    data["learning"]["enabled"] = False
    data["web"]["port"] = 0
    data["outputs"] = {"console": False, "markdown": None, "feed": None}
    path = tmp / "config.yaml"
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    return path


def herald(env: dict[str, str], cwd: Path, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "bot", *args],
        env=env,
        cwd=cwd,
        text=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def gaps(fake: FakeArxiv) -> list[float]:
    times = sorted(fake.request_times())
    return [b - a for a, b in itertools.pairwise(times)]


def report(name: str, fake: FakeArxiv, interval: float) -> None:
    g = gaps(fake)
    shown = ", ".join(f"{x:.2f}" for x in g)
    verdict = "ok" if g and min(g) >= interval else "TOO CLOSE"
    print(f"{name}: {len(g) + 1} requests; gaps (s): {shown}")
    print(f"  minimum gap {min(g):.3f} s (rule: >= {interval:g} s) -> {verdict}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--interval", type=float, default=3.0)
    ap.add_argument("--lookups", type=int, default=3)
    args = ap.parse_args()
    ids = [p["base_id"] for p in corpus.papers_on("2026-01-23")[: 2 * args.lookups]]
    with FakeArxiv(day="2026-01-22") as fake, tempfile.TemporaryDirectory() as tmp_dir:
        tmp = Path(tmp_dir)
        cfg = write_config(tmp, fake, args.interval)
        env = {**os.environ, "HERALD_CONFIG": str(cfg), "PYTHONPATH": str(ROOT)}

        # 1. `for id in …; do herald lookup $id; done`
        t0 = time.monotonic()
        for pid in ids[: args.lookups]:
            herald(env, tmp, "lookup", pid).wait(120)
        print(f"(1) took {time.monotonic() - t0:.1f} s")
        report("(1) a loop of herald lookup processes", fake, args.interval)

        # 2. lookups at once, beside a serving process that fetches on start-up
        fake.calls.clear()
        serve = herald(env, tmp, "serve")
        lookups = [herald(env, tmp, "lookup", pid) for pid in ids[args.lookups :]]
        for proc in lookups:
            proc.wait(180)
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:
            store = Store(tmp / "herald.db")
            try:
                if store.last_fetch() is not None:
                    break
            finally:
                store.close()
            time.sleep(0.1)
        serve.terminate()
        serve.wait(60)
        report(f"(2) {len(lookups)} lookups at once + herald serve", fake, args.interval)


if __name__ == "__main__":
    main()
