"""Fan-out: many digests due at once, delivered fairly, at each platform's pace, in flat memory.

At 09:00 thousands of chats may be due together, and Telegram takes about 30 messages a
second across all of them.  Sending each chat's digest to the end before the next one's
would leave the last chats waiting for hours while the first got their fifth paper; one
task per chat would hold 100,000 coroutines (and their cards) for the whole fan-out.  So:

* the day is planned for every chat first, in one ledger write;
* a fixed pool of workers takes *(chat, next message)* turns from one round-robin queue:
  a chat whose message went out goes to the back of the queue, so every chat's first
  message goes out before any chat's second;
* each turn is paced here, in the core: at most the platform's overall rate (one
  :class:`RateGate` per platform, shared by every fan-out of the process), and a chat's next
  message not before its platform's per-chat interval — one message at a time per chat,
  however many subscriptions (forum topics) it holds.  The adapter's own limiter stays as a
  safety net, and still paces what the core does not schedule: command answers, edits;
* a flood limit that outlasts the platform client's own retries holds that chat, and the
  platform's pace, back for as long as the platform asked; then the chat's turn comes again
  (a few times, see :data:`bot.delivery.MAX_WAITS`) instead of pausing until a restart;
* between turns a chat costs a small queue entry: its :class:`bot.delivery.DigestRun` reads
  its ledger rows and builds its cards only for the message it is sending.
"""

from __future__ import annotations

import asyncio
import collections
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from bot.delivery import Deliverer, DeliveryReport, DigestRun
from bot.models import Digest
from bot.platform import Pace, Sender, pace_of

log = logging.getLogger(__name__)

WORKERS = 64
MIN_IDLE_S = 0.005  # how long a worker waits after meeting a chat that must wait
MAX_IDLE_S = 0.05


class RateGate:
    """At most ``per_second`` passes a second, in the order they were asked for."""

    def __init__(self, per_second: float) -> None:
        self.interval = 1.0 / per_second
        self._next = float("-inf")

    async def wait(self) -> None:
        loop = asyncio.get_running_loop()
        now = loop.time()
        slot = max(now, self._next)
        self._next = slot + self.interval
        if slot > now:
            await asyncio.sleep(slot - now)

    def hold(self, seconds: float) -> None:
        """The platform asked every send to wait (a flood limit): no slot before then."""
        self._next = max(self._next, asyncio.get_running_loop().time() + seconds)


@dataclass(slots=True)
class _Turn:
    index: int  # the digest's place in the fan-out (its report's)
    run: DigestRun
    pace: Pace
    gate: RateGate | None
    chat: str  # the platform chat it goes to (a forum topic's group)


class FanOut:
    """Delivers many digests at once (see the module docstring); one per process, so that
    concurrent fan-outs (two delivery times firing together) share each platform's rate."""

    def __init__(self, deliverer: Deliverer, *, workers: int = WORKERS) -> None:
        self.deliverer = deliverer
        self.workers = workers
        self._gates: dict[str, RateGate | None] = {}
        self._busy: set[tuple[str, str]] = set()  # chats with a message in flight
        self._ready: dict[tuple[str, str], float] = {}  # chat → loop time of its next turn

    def gate(self, platform: str, pace: Pace) -> RateGate | None:
        if platform not in self._gates:
            self._gates[platform] = RateGate(pace.per_second) if pace.per_second else None
        return self._gates[platform]

    async def deliver(
        self, digests: Sequence[Digest], senders: Mapping[str, Sender]
    ) -> list[DeliveryReport]:
        """Deliver every digest through its platform's sender; one report each, in order
        (a chat whose delivery broke on a bug is logged and left out)."""
        deliverer = self.deliverer
        reports: list[DeliveryReport | None] = [None] * len(digests)
        queue: collections.deque[_Turn] = collections.deque()
        plans = []
        for i, digest in enumerate(digests):
            sub = digest.subscription
            assert sub.id is not None
            sender = senders.get(sub.platform)
            if sender is None:
                reports[i] = DeliveryReport(sub, digest.day, failed=f"no {sub.platform} adapter")
                continue
            run = deliverer.run(digest, sender, planned=True)
            pace = pace_of(sender)
            gate = self.gate(sub.platform, pace)
            queue.append(_Turn(i, run, pace, gate, pace.chat_of(sub.chat)))
            if digest.items:
                plans.append((sub.id, digest.day, [it.paper.id for it in digest.items], run.layout))
        if plans:
            written = await asyncio.to_thread(deliverer.store.plan_deliveries_many, plans)
            log.info("planned %d digests (%d ledger rows)", len(plans), written)
        await asyncio.gather(
            *(self._work(queue, reports) for _ in range(min(self.workers, len(queue))))
        )
        return [r for r in reports if r is not None]

    async def _work(
        self, queue: collections.deque[_Turn], reports: list[DeliveryReport | None]
    ) -> None:
        deliverer = self.deliverer
        loop = asyncio.get_running_loop()
        while queue:
            turn = queue.popleft()
            run = turn.run
            if deliverer.stopping():
                run.report.failed = "stopped before finishing; resumes on the next start"
                reports[turn.index] = run.report
                continue
            key = (run.subscription.platform, turn.chat)
            wait = self._ready.get(key, 0.0) - loop.time()
            if key in self._busy or wait > 0:
                # Its chat is busy or needs a pause: the others go first.
                queue.append(turn)
                await asyncio.sleep(min(max(wait, 0.0), MAX_IDLE_S) or MIN_IDLE_S)
                continue
            self._busy.add(key)
            try:
                async with deliverer.locks(run.sub_id):
                    more = await run.step(turn.gate)
            except Exception:
                log.exception("delivery to %s failed", run.subscription.label)
                more = False
            finally:
                self._busy.discard(key)
                self._pause(key, turn, loop.time())
            if run.wait_s:  # a flood limit: this chat, and the platform's pace, hold back
                self._ready[key] = max(self._ready.get(key, 0.0), loop.time() + run.wait_s)
                if turn.gate is not None:
                    turn.gate.hold(run.wait_s)
                run.wait_s = 0.0
            if more:
                queue.append(turn)
            else:
                reports[turn.index] = run.report

    def _pause(self, key: tuple[str, str], turn: _Turn, now: float) -> None:
        pace = turn.pace
        interval = pace.group_interval if pace.is_group(turn.chat) else pace.chat_interval
        if interval <= 0:
            return
        self._ready[key] = now + interval
        if len(self._ready) > 4096:  # forget chats whose pause is over
            for k, t in list(self._ready.items()):
                if t <= now:
                    del self._ready[k]
