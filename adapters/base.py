"""The adapter seam (after opsdroid's connector): connect / listen / send / disconnect.

An adapter is composed with the engine, never derived from it: it receives the ``Engine`` and
the ``Commands`` handler, translates platform payloads into ``Command``/rating calls, and
implements :class:`bot.delivery.Sender` so the ledger can drive its sends.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

from aiohttp import web

from bot.delivery import Sender


@runtime_checkable
class Adapter(Sender, Protocol):
    platform: str

    @property
    def connected(self) -> bool:
        """True once the platform accepted our credentials and events can arrive."""
        ...

    async def connect(self) -> None:
        """Check credentials, register commands; raise ConfigError on bad credentials."""
        ...

    async def listen(self) -> None:
        """Start receiving events (Socket Mode, polling, or webhook registration); returns."""
        ...

    async def disconnect(self) -> None: ...

    def web_routes(self) -> list[web.RouteDef]:
        """Routes to mount on the web app (HTTP events, webhooks); empty when not used."""
        ...
