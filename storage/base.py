"""The one connection every storage area shares, and the helpers they use."""

from __future__ import annotations

import datetime as dt
import json
import sqlite3
import threading
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from sqlite_utils import Database
from sqlite_utils.db import Table


class StoreError(Exception):
    """The database cannot be used (not SQLite, not writable, locked for too long); the text
    says which file and what to do."""


def now_iso() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds")


def to_json(value: Iterable[str]) -> str:
    return json.dumps(list(value), ensure_ascii=False)


def chunks(items: Sequence[Any], size: int = 500) -> Iterator[Sequence[Any]]:
    """SQLite caps the number of ``?`` in a statement: query long id lists in slices."""
    for i in range(0, len(items), size):
        yield items[i : i + size]


def marks(items: Sequence[Any]) -> str:
    return ",".join("?" * len(items))


class Base:
    """A sqlite-utils Database behind a lock (one connection, shared by a process's threads)."""

    db: Database
    _lock: threading.RLock

    def table(self, name: str) -> Table:
        return self.db.table(name)

    @contextmanager
    def atomic(self) -> Iterator[None]:
        """A write transaction, taken with BEGIN IMMEDIATE (nested: a savepoint).

        A deferred transaction that reads and then writes fails at once with "database is
        locked" when another process wrote in between; IMMEDIATE takes the write lock first
        (waiting up to the busy timeout), so concurrent writers queue instead of failing.
        """
        with self._lock:
            conn = self.db.conn
            if conn.in_transaction:
                with self.db.atomic():
                    yield
                return
            try:
                conn.execute("BEGIN IMMEDIATE")
            except sqlite3.OperationalError as exc:
                raise busy(exc) from None
            try:
                yield
            except BaseException:
                conn.rollback()
                raise
            conn.execute("COMMIT")

    def _rows(self, sql: str, params: Sequence[Any] | dict[str, Any] = ()) -> list[sqlite3.Row]:
        with self._lock:
            return list(self.db.execute(sql, params).fetchall())

    def _one(self, sql: str, params: Sequence[Any] | dict[str, Any] = ()) -> sqlite3.Row | None:
        with self._lock:
            row: sqlite3.Row | None = self.db.execute(sql, params).fetchone()
            return row

    def _count(self, sql: str, params: Sequence[Any] = ()) -> int:
        row = self._one(sql, params)
        return int(row[0] or 0) if row is not None else 0


def busy(exc: sqlite3.Error) -> StoreError | sqlite3.Error:
    """ "database is locked" after the busy timeout, as a message a person can act on."""
    if "locked" in str(exc) or "busy" in str(exc):
        return StoreError(
            "the database stayed locked by another herald process for 30 s; try again, and "
            "check that no process is stuck holding it"
        )
    return exc
