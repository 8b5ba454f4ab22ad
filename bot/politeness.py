"""One request per ``interval`` seconds to arXiv, across every herald process that shares a
database.

arXiv's terms ask for no more than one request every three seconds from a client.  RSS, API
(through the ``arxiv`` client) and PDF downloads all go through :class:`PoliteSession`, which
takes a turn from a :class:`Throttle` and puts a timeout on every request (``requests`` has
none by default, and neither does the ``arxiv`` client).

The turn is kept in a small file beside the database (``herald.db.arxiv-turn``): an exclusive
``flock`` on it serialises the processes (a waiter sleeps in the kernel, no polling, and the
lock dies with a crashed holder), and the file holds the wall-clock time before which nobody
may send.  That time is written when a response *arrives*, so however long a request takes,
arXiv sees two requests at least ``interval`` apart.  A ``Retry-After`` from arXiv pushes it
further, for every process.  No database lock is held while anyone waits.
"""

from __future__ import annotations

import contextlib
import email.utils
import fcntl
import logging
import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import requests

from bot import __version__

log = logging.getLogger(__name__)

USER_AGENT = f"arxiv-herald/{__version__} (+https://github.com/arxiv-herald/arxiv-herald)"
#: The longest Retry-After we honour; a larger (or hostile) value is capped to this.
MAX_RETRY_AFTER_S = 300.0


class Throttle:
    """Hands out turns so that requests made in turns are ``interval`` seconds apart.

    ``path`` None keeps the turn in this object only (one process); with a path, every
    Throttle on the same file, in any process, shares it.
    """

    def __init__(self, interval: float = 3.0, path: str | os.PathLike[str] | None = None) -> None:
        self.interval = interval
        self.path = Path(path) if path is not None else None
        self._lock = threading.Lock()
        self._next = 0.0  # the in-process "not before", when there is no file
        self._hold = 0.0  # Retry-After of the request in the current turn

    @contextlib.contextmanager
    def turn(self) -> Iterator[None]:
        """Wait for the turn, hold it while the caller's request runs, then pass it on."""
        with self._lock, self._shared() as shared:
            not_before = shared.read() if shared is not None else self._next
            delay = not_before - time.time()
            if delay > 0:
                # A clock set back, or a corrupt file, must not stall us for long.
                time.sleep(min(delay, self.interval + MAX_RETRY_AFTER_S))
            self._hold = 0.0
            if shared is not None:
                # Should this process die during its request, the next one still waits a
                # full interval from the request's start.
                shared.write(time.time() + self.interval)
            try:
                yield
            finally:
                not_before = time.time() + max(self.interval, self._hold)
                if shared is not None:
                    shared.write(not_before)
                else:
                    self._next = not_before

    def hold_off(self, seconds: float) -> None:
        """Inside a turn: the server asked us to wait ``seconds`` before the next request."""
        self._hold = min(max(seconds, 0.0), MAX_RETRY_AFTER_S)

    def wait(self) -> float:
        """Take a turn and release it at once (for callers that time their own request)."""
        t0 = time.monotonic()
        with self.turn():
            pass
        return time.monotonic() - t0

    @contextlib.contextmanager
    def _shared(self) -> Iterator[_TurnFile | None]:
        with contextlib.ExitStack() as stack:
            shared = None
            if self.path is not None:
                try:
                    shared = stack.enter_context(_TurnFile.locked(self.path))
                except OSError as exc:
                    log.warning(
                        "cannot share the arXiv turn through %s (%s); pacing this process only",
                        self.path,
                        exc.strerror or exc,
                    )
                    self.path = None
            yield shared


def turn_file(database: str | os.PathLike[str]) -> Path:
    """Where the processes using ``database`` keep their shared arXiv turn."""
    return Path(f"{os.fspath(database)}.arxiv-turn")


class _TurnFile:
    """The shared "not before" time, under an exclusive flock for as long as it is held."""

    def __init__(self, fd: int) -> None:
        self.fd = fd

    @classmethod
    @contextlib.contextmanager
    def locked(cls, path: Path) -> Iterator[_TurnFile]:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)  # blocks until the holder is done (or died)
            yield cls(fd)
        finally:
            os.close(fd)  # closing releases the lock

    def read(self) -> float:
        raw = os.pread(self.fd, 64, 0)
        try:
            return float(raw.decode("ascii").strip() or 0)
        except ValueError:
            return 0.0

    def write(self, value: float) -> None:
        data = f"{value:.6f}\n".encode("ascii")
        os.ftruncate(self.fd, 0)
        os.pwrite(self.fd, data, 0)


def retry_after_seconds(value: str | None) -> float | None:
    """A ``Retry-After`` header (seconds or an HTTP date) as seconds from now, else None."""
    if not value:
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return None
        if when.tzinfo is None:
            return None
        seconds = when.timestamp() - time.time()
    if seconds != seconds or seconds in (float("inf"), float("-inf")):
        return None
    return max(0.0, seconds)


class PoliteSession(requests.Session):
    """A ``requests.Session`` that waits its turn and never waits forever."""

    def __init__(self, throttle: Throttle, timeout: float = 30.0) -> None:
        super().__init__()
        self.throttle = throttle
        self.timeout = timeout
        self.headers["User-Agent"] = USER_AGENT

    def request(
        self, method: str, url: str | bytes, *args: Any, **kwargs: Any
    ) -> requests.Response:
        kwargs.setdefault("timeout", self.timeout)
        with self.throttle.turn():
            resp = super().request(method, url, *args, **kwargs)
            if resp.status_code in (429, 503):
                wait = retry_after_seconds(resp.headers.get("Retry-After"))
                if wait is not None:
                    self.throttle.hold_off(wait)
            return resp
