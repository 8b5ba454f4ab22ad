"""Per-key locks and per-key pacing for asyncio code: one implementation for every surface.

* :class:`KeyedLocks` — one ``asyncio.Lock`` per key (a subscription, a chat, a message),
  forgotten as soon as nobody holds or awaits it, so a million chats cost nothing at rest.
* :class:`Pacer` — at most one call per ``interval`` seconds per key (a Slack channel, a
  Telegram chat).  The interval runs from the *end* of the previous call, i.e. from the
  platform's answer, so however two requests travel the platform sees them far enough apart.
"""

from __future__ import annotations

import asyncio
import contextlib
import weakref
from collections.abc import AsyncIterator, Hashable


class KeyedLocks:
    """``async with locks(key):`` serialises the holders of one key."""

    def __init__(self) -> None:
        self._locks: weakref.WeakValueDictionary[Hashable, asyncio.Lock] = (
            weakref.WeakValueDictionary()
        )

    def __call__(self, key: Hashable) -> asyncio.Lock:
        lock = self._locks.get(key)
        if lock is None:
            lock = asyncio.Lock()
            self._locks[key] = lock
        return lock

    def __len__(self) -> int:
        return len(self._locks)


class _Turn:
    """A key's lock and the loop time its last call ended (kept while it matters)."""

    __slots__ = ("__weakref__", "last", "lock")

    def __init__(self) -> None:
        self.lock = asyncio.Lock()
        self.last = float("-inf")


class Pacer:
    """``async with pacer.turn(key):`` — calls for one key at least ``interval`` s apart."""

    def __init__(self, interval: float) -> None:
        self.interval = interval
        self._turns: dict[Hashable, _Turn] = {}

    @contextlib.asynccontextmanager
    async def turn(self, key: Hashable) -> AsyncIterator[None]:
        if self.interval <= 0:
            yield
            return
        loop = asyncio.get_running_loop()
        turn = self._turns.get(key)
        if turn is None:
            turn = self._turns[key] = _Turn()
        async with turn.lock:
            wait = turn.last + self.interval - loop.time()
            if wait > 0:
                await asyncio.sleep(wait)
            try:
                yield
            finally:
                turn.last = loop.time()
                self._forget_idle(turn.last)

    def _forget_idle(self, now: float) -> None:
        """Drop keys whose interval has long passed (their next call needs no wait)."""
        if len(self._turns) < 4096:
            return
        for key, turn in list(self._turns.items()):
            if not turn.lock.locked() and turn.last < now - self.interval:
                del self._turns[key]

    def __len__(self) -> int:
        return len(self._turns)
