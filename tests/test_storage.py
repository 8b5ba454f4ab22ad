"""Storage under concurrency: several processes on one database file queue, never fail."""

from __future__ import annotations

import multiprocessing
from pathlib import Path

from bot.models import Paper
from storage import Store


def _open_and_write(path: str, n: int, barrier: multiprocessing.synchronize.Barrier) -> None:
    barrier.wait()  # every process opens the fresh file at the same moment
    store = Store(path)
    try:
        for i in range(20):
            # read-then-write transactions, the kind that used to fail with "database is locked"
            store.upsert_papers([Paper(f"2601.{n:02d}{i:03d}", 1, "T", ("A",), ("cs.LG",), "x")])
            store.set_meta(f"writer {n}", str(i))
    finally:
        store.close()


def test_processes_opening_and_writing_one_fresh_file_all_succeed(tmp_path: Path) -> None:
    path = str(tmp_path / "herald.db")
    ctx = multiprocessing.get_context("spawn")
    barrier = ctx.Barrier(4)
    procs = [ctx.Process(target=_open_and_write, args=(path, n, barrier)) for n in range(4)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
    assert [p.exitcode for p in procs] == [0, 0, 0, 0]
    store = Store(path)
    try:
        assert store.count_papers() == 80
        assert {store.get_meta(f"writer {n}") for n in range(4)} == {"19"}
    finally:
        store.close()
