"""A recording chat adapter (after errbot's test backend): what was sent, in order, with
failures and crashes injectable, so ledger and scheduler tests read like a chat transcript."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

from bot.cards import CompactDigest
from bot.errors import DeliveryError
from bot.models import Card, Digest, Subscription
from bot.platform import Sent


@dataclass
class Post:
    chat: str
    kind: str  # header | item | note | compact
    text: str
    paper: str = ""
    day: str = ""
    thread: str | None = None
    message_id: str = ""
    papers: tuple[str, ...] = ()  # a compact message's papers


class Crash(BaseException):
    """Simulates the process dying at a chosen point (BaseException: nothing catches it)."""


@dataclass
class RecordingAdapter:
    platform: str = "test"
    posts: list[Post] = field(default_factory=list)
    connected: bool = True
    fail_at: dict[int, DeliveryError] = field(default_factory=dict)  # send number -> error
    crash_before: int | None = None  # die before the platform accepts send number N
    crash_after: int | None = None  # die after the platform accepted send number N
    can_find: bool = True  # whether find_sent can see posted messages (Slack yes, Telegram no)
    delay: float = 0.0
    sends: int = 0
    cards: list[Card] = field(default_factory=list)  # every card sent, in order
    compact_max: int = 100  # papers per compact message (the platform's limit)

    async def connect(self) -> None: ...

    async def listen(self) -> None: ...

    async def disconnect(self) -> None:
        self.connected = False

    def web_routes(self) -> list[Any]:
        return []

    async def _send(self, post: Post) -> Sent:
        self.sends += 1
        n = self.sends
        if self.delay:
            await asyncio.sleep(self.delay)
        if self.crash_before == n:
            raise Crash(f"crash before send {n}")
        if n in self.fail_at:
            raise self.fail_at.pop(n)
        post.message_id = f"m{len(self.posts) + 1}"
        self.posts.append(post)
        if self.crash_after == n:
            raise Crash(f"crash after send {n}")
        return Sent(post.message_id, post.thread or post.message_id)

    async def send_header(self, digest: Digest) -> Sent:
        sub = digest.subscription
        return await self._send(
            Post(sub.chat, "header", f"{len(digest.items)} papers", "", digest.day.isoformat())
        )

    async def send_item(self, digest: Digest, card: Card, thread: Sent) -> Sent:
        sub = digest.subscription
        sent = await self._send(
            Post(
                sub.chat,
                "item",
                card.title,
                card.paper_id,
                digest.day.isoformat(),
                thread.thread_id,
            )
        )
        self.cards.append(card)
        return sent

    async def find_sent(
        self, digest: Digest, card: Card | None, thread: Sent | None
    ) -> Sent | None:
        if not self.can_find:
            return None
        sub, day, paper_id = digest.subscription, digest.day, card.paper_id if card else ""
        for p in self.posts:
            if p.chat == sub.chat and p.day == day.isoformat() and p.paper == paper_id:
                return Sent(p.message_id, p.thread or p.message_id)
        return None

    async def send_note(self, sub: Subscription, text: str) -> None:
        await self._send(Post(sub.chat, "note", text))

    def compact_sizes(self, view: CompactDigest) -> list[int]:
        n = len(view.entries)
        sizes = [min(self.compact_max, n - i) for i in range(0, n, self.compact_max)]
        return sizes or [0]

    async def send_compact(self, digest: Digest, part: CompactDigest, thread: Sent | None) -> Sent:
        sub = digest.subscription
        first = "" if part.header is not None else part.paper_ids[0]
        return await self._send(
            Post(
                sub.chat,
                "compact",
                part.header or "continued",
                first,
                digest.day.isoformat(),
                thread.thread_id if thread else None,
                papers=part.paper_ids,
            )
        )

    async def find_compact(
        self, digest: Digest, part: CompactDigest, thread: Sent | None
    ) -> Sent | None:
        if not self.can_find:
            return None
        sub, day = digest.subscription, digest.day
        first = "" if part.header is not None else part.paper_ids[0]
        for p in self.posts:
            same = p.chat == sub.chat and p.day == day.isoformat() and p.paper == first
            if same and p.kind == "compact":
                return Sent(p.message_id, p.thread or p.message_id)
        return None

    def compact_papers(self, chat: str | None = None) -> list[str]:
        """Every paper posted in compact messages, in order (repeats included)."""
        return [
            pid
            for p in self.posts
            if p.kind == "compact" and (chat is None or p.chat == chat)
            for pid in p.papers
        ]

    def items(self, chat: str | None = None) -> list[str]:
        return [
            p.paper for p in self.posts if p.kind == "item" and (chat is None or p.chat == chat)
        ]
