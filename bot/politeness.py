"""One request per ``interval`` seconds to arXiv, across every arXiv request of the process.

arXiv's terms ask for no more than one request every three seconds.  RSS, API (through the
``arxiv`` client) and PDF downloads all go through :class:`PoliteSession`, which shares one
process-wide :class:`Throttle` and puts a timeout on every request (``requests`` has none by
default, and neither does the ``arxiv`` client).
"""

from __future__ import annotations

import threading
import time
from typing import Any

import requests

from bot import __version__

USER_AGENT = f"arxiv-herald/{__version__} (+https://github.com/arxiv-herald/arxiv-herald)"


class Throttle:
    """Blocks callers so that two ``wait()`` returns are at least ``interval`` apart."""

    def __init__(self, interval: float = 3.0) -> None:
        self.interval = interval
        self._lock = threading.Lock()
        self._next = 0.0

    def wait(self) -> float:
        """Sleep until the next slot; returns the seconds slept."""
        with self._lock:
            now = time.monotonic()
            delay = max(0.0, self._next - now)
            self._next = max(now, self._next) + self.interval
        if delay:
            time.sleep(delay)
        return delay


#: The one throttle every arXiv request of this process shares.
ARXIV_THROTTLE = Throttle(3.0)


class PoliteSession(requests.Session):
    """A ``requests.Session`` that waits its turn and never waits forever."""

    def __init__(self, throttle: Throttle = ARXIV_THROTTLE, timeout: float = 30.0) -> None:
        super().__init__()
        self.throttle = throttle
        self.timeout = timeout
        self.headers["User-Agent"] = USER_AGENT

    def request(
        self, method: str, url: str | bytes, *args: Any, **kwargs: Any
    ) -> requests.Response:
        kwargs.setdefault("timeout", self.timeout)
        self.throttle.wait()
        return super().request(method, url, *args, **kwargs)
