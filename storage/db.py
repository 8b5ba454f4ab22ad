"""The only code that touches SQLite: narrow, typed verbs over one sqlite-utils Database.

The verbs are grouped by data area, one module each — papers (with announcements and the
fetch log), subscriptions, the delivery ledger, summaries (with LLM usage), ratings, and jobs
(with meta) — and :class:`Store` puts them together over one connection.  Every write is
idempotent (upserts keyed by natural keys) and takes the write lock up front; user text only
ever travels as query parameters.  The connection is shared by the threads of a process
behind a lock; WAL lets a CLI command read and write while ``herald serve`` runs.
"""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path

from sqlite_utils import Database

from storage.ask import AskStore
from storage.base import StoreError
from storage.installations import InstallationsStore
from storage.jobs import JobsStore
from storage.ledger import LedgerStore
from storage.migrations import migrations
from storage.papers import PapersStore
from storage.profile import ProfileStore
from storage.ratings import RatingsStore
from storage.subscriptions import SubscriptionsStore
from storage.summaries import SummariesStore


class Store(
    PapersStore,
    SubscriptionsStore,
    LedgerStore,
    SummariesStore,
    RatingsStore,
    JobsStore,
    ProfileStore,
    AskStore,
    InstallationsStore,
):
    """SQLite-backed storage for everything arxiv-herald remembers."""

    def __init__(self, path: str | Path = ":memory:") -> None:
        self.path = str(path)
        self._lock = threading.RLock()
        try:
            self._open()
        except (OSError, sqlite3.Error) as exc:
            raise _unusable(self.path, exc) from None

    def _open(self) -> None:
        if self.path != ":memory:":
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(self.path, check_same_thread=False, timeout=30)
        conn.row_factory = sqlite3.Row
        self.db = Database(conn)
        with self._lock:
            if self.path != ":memory:":
                self.db.enable_wal()
                # In WAL mode NORMAL still survives a process crash (SIGKILL) with every
                # committed ledger write; only an OS crash could lose the last few.  FULL
                # costs an fsync per write.
                self.db.execute("PRAGMA synchronous = NORMAL")
            self.db.execute("PRAGMA busy_timeout = 30000")
            self.db.execute("PRAGMA foreign_keys = ON")
            # One write transaction around the whole check-and-apply: two processes starting
            # on a fresh file must not both see a migration as pending.
            with self.atomic():
                migrations.apply(self.db)

    def close(self) -> None:
        if not hasattr(self, "db"):
            return
        with self._lock:
            self.db.close()

    def healthy(self) -> bool:
        try:
            self._count("SELECT count(*) FROM papers")
            return True
        except sqlite3.Error:
            return False


def _unusable(path: str, exc: OSError | sqlite3.Error) -> StoreError:
    text = str(exc)
    p = Path(path)
    if p.is_dir():
        why = "is a directory"
    elif isinstance(exc, (NotADirectoryError, FileExistsError)):
        why = "cannot be created: a file stands where its folder should be"
    elif isinstance(exc, sqlite3.DatabaseError) and "not a database" in text:
        why = "is not an SQLite database (another file is in the way?)"
    elif isinstance(exc, PermissionError) or "readonly" in text or "unable to open" in text:
        why = "cannot be opened for writing (check the folder exists and is writable)"
    elif "locked" in text:
        why = "is locked by another process for more than 30 s"
    else:
        why = f"cannot be used ({exc.__class__.__name__}: {text})"
    return StoreError(
        f"the database {path} {why}; point `database` in the config at a new or valid file"
    )
