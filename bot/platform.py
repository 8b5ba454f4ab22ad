"""The seam between the core and a chat platform (after opsdroid's connector).

An adapter is composed with the core, never derived from it: the composition root
(:mod:`bot.app`) builds it with a :class:`bot.core.Core`; it translates platform payloads into
``Command`` values and core calls, renders the core's replies and cards, and is the
:class:`Sender` that delivery drives.  Each adapter package declares its own configuration
section (a :class:`bot.config.PlatformSection`) next to its code.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from aiohttp import web

from bot.models import Card, Digest, Subscription


@dataclass(frozen=True, slots=True)
class Sent:
    """Where a message landed: its id, and the thread later messages should join."""

    message_id: str
    thread_id: str | None = None


@runtime_checkable
class Sender(Protocol):
    """What delivery needs from a platform."""

    platform: str

    async def send_header(self, digest: Digest) -> Sent: ...

    async def send_item(self, digest: Digest, card: Card, thread: Sent) -> Sent: ...

    async def find_sent(
        self, digest: Digest, card: Card | None, thread: Sent | None
    ) -> Sent | None:
        """Look on the platform for a message the ledger is unsure about: the digest's header
        (``card`` None) or the message of ``card``, as it would have been sent.

        None means "not there": the row is sent again.  Raise ``DeliveryError`` when the
        lookup itself failed (the row then stays unsure and is retried later).
        """
        ...

    async def send_note(self, sub: Subscription, text: str) -> None: ...


@runtime_checkable
class Adapter(Sender, Protocol):
    """A chat platform: connect / listen / disconnect, plus sending."""

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
