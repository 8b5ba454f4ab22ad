"""The seam between the core and a chat platform (after opsdroid's connector).

An adapter is composed with the core, never derived from it: the composition root
(:mod:`bot.app`) builds it with a :class:`bot.core.Core`; it translates platform payloads into
``Command`` values and core calls, renders the core's replies and cards, and is the
:class:`Sender` that delivery drives.  Each adapter package declares its own configuration
section (a :class:`bot.config.PlatformSection`) next to its code.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from aiohttp import web

from bot.cards import CompactDigest
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
class CompactSender(Protocol):
    """A platform that can show a digest in the compact layout (one message listing the
    papers).  Delivery falls back to the thread layout on a platform that cannot."""

    def compact_sizes(self, view: CompactDigest) -> list[int]:
        """How many of the view's entries each message holds, in order (one number unless
        the platform's limits force a split).  Pure: the same view, the same answer."""
        ...

    async def send_compact(self, digest: Digest, part: CompactDigest, thread: Sent | None) -> Sent:
        """Post one compact message; a part after the first joins ``thread``."""
        ...

    async def find_compact(
        self, digest: Digest, part: CompactDigest, thread: Sent | None
    ) -> Sent | None:
        """Like :meth:`Sender.find_sent`, for a compact message the ledger is unsure of."""
        ...


@dataclass(frozen=True, slots=True)
class Pace:
    """How fast a platform takes a fan-out's messages: overall, and per chat.

    The core paces a fan-out by it (the adapter's own limiter stays as a safety net for
    messages the core does not schedule: command answers, button edits)."""

    per_second: float | None = None  # messages per second overall (None: no limit)
    chat_interval: float = 0.0  # seconds between two messages to one chat
    group_interval: float = 0.0  # … to one chat the platform counts as a group
    is_group: Callable[[str], bool] = lambda chat: False
    #: The chat a subscription's address belongs to (a Telegram forum topic's group): its
    #: subscriptions share the chat's limits, and get one message at a time between them.
    chat_of: Callable[[str], str] = lambda chat: chat


def pace_of(sender: object) -> Pace:
    """The :class:`Pace` a sender declares (``pace`` attribute), or no limit."""
    pace = getattr(sender, "pace", None)
    return pace if isinstance(pace, Pace) else Pace()


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
