"""A small base for the fakes: an aiohttp app served on 127.0.0.1 from a background thread.

Each fake records every request it receives (``calls``) so tests can assert on what the real
client library actually sent, and exposes knobs to inject failures.  The server runs its own
event loop in a daemon thread, so it works the same from synchronous code (``requests``,
``openai.OpenAI``) and from async code under test (PTB, slack-bolt's async app).
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web


@dataclass
class Call:
    """One request as the fake saw it."""

    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: bytes
    at: float = field(default_factory=time.monotonic)

    def json(self) -> Any:
        import json

        return json.loads(self.body or b"null")

    def form(self) -> dict[str, str]:
        from urllib.parse import parse_qsl

        return dict(parse_qsl(self.body.decode()))


class FakeServer:
    """Base class: subclasses add routes in ``setup_routes``."""

    def __init__(self) -> None:
        self.calls: list[Call] = []
        self.host = "127.0.0.1"
        self.port = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._runner: web.AppRunner | None = None
        self._started = threading.Event()
        self._lock = threading.Lock()

    # -- to override ---------------------------------------------------------------------
    def setup_routes(self, app: web.Application) -> None:  # pragma: no cover - abstract
        raise NotImplementedError

    # -- lifecycle -----------------------------------------------------------------------
    @property
    def url(self) -> str:
        """Base URL, e.g. ``http://127.0.0.1:43121``, with no trailing slash."""
        return f"http://{self.host}:{self.port}"

    def start(self) -> FakeServer:
        self._started.clear()
        self._thread = threading.Thread(target=self._run, name=type(self).__name__, daemon=True)
        self._thread.start()
        if not self._started.wait(10):
            raise RuntimeError(f"{type(self).__name__} did not start")
        return self

    def stop(self) -> None:
        if self._loop is None:
            return
        fut = asyncio.run_coroutine_threadsafe(self._shutdown(), self._loop)
        with contextlib.suppress(Exception):
            fut.result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        if self._thread:
            self._thread.join(10)
        self._loop = None

    def __enter__(self) -> FakeServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def call_in_loop(self, fn: Callable[[], Any]) -> Any:
        """Run ``fn`` on the fake's loop thread and return its result (for thread-unsafe state)."""
        assert self._loop is not None
        fut: asyncio.Future[Any] = asyncio.run_coroutine_threadsafe(_as_coro(fn), self._loop)
        return fut.result(10)

    def _run(self) -> None:
        loop = asyncio.new_event_loop()
        self._loop = loop
        asyncio.set_event_loop(loop)
        loop.run_until_complete(self._startup())
        self._started.set()
        loop.run_forever()
        loop.close()

    async def _startup(self) -> None:
        app = web.Application(middlewares=[self._record], client_max_size=64 * 1024 * 1024)
        self.setup_routes(app)
        self._runner = web.AppRunner(app, handle_signals=False, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port or 0)
        await site.start()
        sockets = site._server.sockets  # type: ignore[union-attr]
        self.port = sockets[0].getsockname()[1]

    async def _shutdown(self) -> None:
        await self.on_shutdown()
        if self._runner is not None:
            await self._runner.cleanup()

    async def on_shutdown(self) -> None:
        """Hook for subclasses (close websockets, wake long polls)."""

    @web.middleware
    async def _record(
        self, request: web.Request, handler: Callable[..., Any]
    ) -> web.StreamResponse:
        body = await request.read()
        call = Call(
            method=request.method,
            path=request.path,
            query=dict(request.query),
            headers=dict(request.headers),
            body=body,
        )
        with self._lock:
            self.calls.append(call)
        return await handler(request)

    def calls_to(self, path_suffix: str) -> list[Call]:
        with self._lock:
            return [c for c in self.calls if c.path.endswith(path_suffix)]


async def _as_coro(fn: Callable[[], Any]) -> Any:
    return fn()
