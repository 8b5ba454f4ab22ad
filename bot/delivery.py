"""Delivery with a ledger: every (subscription, day, paper) is recorded before and after the
platform call, so a crash and restart never loses a paper and never posts it twice.

States: ``pending`` (planned) → ``sending`` (the call is about to go out) → ``sent`` (with the
platform message id).  A row found in ``sending`` after a restart is *ambiguous*: the sender is
asked to find the message on the platform (Slack: thread metadata); if it cannot tell, the row
is sent again — the only window where a duplicate is possible is a crash between the platform
accepting a message and the ledger write that follows it.

Two layouts share the ledger.  ``thread``: the header row, then one message per paper row.
``compact``: one message carries the header row and the papers that fit it; its rows move
from pending to sending to sent *together*, in one write each, and all record the one message
id — so the rows left ``sending`` by a crash are exactly the message that was in flight, which
is looked for as a whole, and a split message's later parts are simply the next rows.  The
layout is fixed in the plan, so a resumed delivery looks for what was really sent.

A :class:`DigestRun` delivers one digest a message at a time; :class:`Deliverer` runs one
to the end for whoever asked, and :mod:`bot.fanout` interleaves thousands of them.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeVar

from bot.cards import CompactDigest, card_for, compact_parts, compact_view, header_text
from bot.errors import DeliveryError
from bot.models import Card, Digest, ScoredPaper, Subscription
from bot.pacing import KeyedLocks
from bot.platform import CompactSender, Sender, Sent
from bot.scoring import explain
from storage import LedgerRow, Store

T = TypeVar("T")

log = logging.getLogger(__name__)

HEADER = ""  # the ledger's paper_id for the day's header message
THREAD, COMPACT = "thread", "compact"
#: A digest the platform's flood limit holds up waits for it this many times (each at most
#: MAX_WAIT_S) before it pauses until the next start.
MAX_WAITS = 5
MAX_WAIT_S = 60.0


@dataclass
class DeliveryReport:
    subscription: Subscription
    day: dt.date
    sent: int = 0  # ledger rows (header, papers) posted by this delivery
    already: int = 0
    reconciled: int = 0
    failed: str | None = None
    deactivated: bool = False
    thread: Sent | None = None
    errors: list[str] = field(default_factory=list)
    layout: str = THREAD
    messages: int = 0  # platform messages posted by this delivery

    @property
    def complete(self) -> bool:
        return self.failed is None


def items_for_plan(store: Store, digest: Digest, planned: list[str]) -> list[ScoredPaper]:
    """The planned papers as items: from the digest when present, else rebuilt from storage.

    After a restart the ranking may have moved (new ratings), but what was planned is what
    gets sent, in the planned order.
    """
    by_id = {i.paper.id: i for i in digest.items}
    missing = [pid for pid in planned if pid not in by_id]
    if missing:
        papers = store.get_papers(missing)
        for pid in missing:
            paper = papers.get(pid)
            if paper is None:
                continue
            score, reasons = explain(paper, digest.subscription)
            by_id[pid] = ScoredPaper(
                paper=paper, score=score, reasons=reasons, category=paper.primary_category
            )
    return [by_id[pid] for pid in planned if pid in by_id]


def plan_cards(
    store: Store, digest: Digest, planned: Sequence[str], top_n: int | None
) -> tuple[list[ScoredPaper], dict[str, Card]]:
    """The planned papers as items (in planned order) and as cards with the current 👍/👎
    tally, by paper id."""
    sub = digest.subscription
    assert sub.id is not None
    items = items_for_plan(store, digest, list(planned))
    tallies = store.tallies(sub.id, [i.paper.id for i in items])
    cards = {
        i.paper.id: card_for(i, top_n=top_n, tally=tallies.get(i.paper.id, (0, 0))) for i in items
    }
    return items, cards


async def _db(fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """Storage off the event loop: a busy database never stalls other chats' sends."""
    return await asyncio.to_thread(fn, *args, **kwargs)


class Gate(Protocol):
    """What a step passes right before calling the platform (:class:`bot.fanout.RateGate`)."""

    async def wait(self) -> None: ...


@dataclass
class _Unit:
    """The next message of a run: which rows it carries, and what it shows."""

    rows: list[LedgerRow]
    card: Card | None = None  # thread layout: the paper (None: the header)
    part: CompactDigest | None = None  # compact layout

    @property
    def unsure(self) -> bool:
        """Left "sending" by a crash: it may or may not be on the platform."""
        return self.rows[0].state == "sending"


class DigestRun:
    """One digest's delivery as steps of one platform message each.

    Between steps it holds no cards (a fan-out to 100,000 chats keeps 100,000 runs): each
    step reads the chat's ledger rows afresh, builds the cards of the one message it sends,
    and records it.  Reading the ledger each time also makes steps safe to interleave with
    another delivery of the same digest, as long as each step holds the subscription's lock.
    """

    def __init__(
        self,
        store: Store,
        sender: Sender,
        digest: Digest,
        *,
        top_n: int | None = None,
        layout: str = THREAD,
        should_stop: Callable[[], bool] | None = None,
        no_papers_note: bool = False,
        planned: bool = False,
    ) -> None:
        sub = digest.subscription
        assert sub.id is not None, "delivery needs a stored subscription"
        self.store = store
        self.sender = sender
        self.digest = digest
        self.sub_id: int = sub.id
        self.top_n = top_n
        self.compact = sender if isinstance(sender, CompactSender) else None
        self.layout = layout if self.compact is not None else THREAD
        self.should_stop = should_stop
        self.no_papers_note = no_papers_note
        self.report = DeliveryReport(sub, digest.day, layout=self.layout)
        self.done = False
        #: Set by a step the platform asked to retry later (a flood limit): wait this long
        #: before the next step.  Whoever runs the steps reads and clears it.
        self.wait_s = 0.0
        self._waits = 0
        self._planned = planned
        self._begun = False
        self._empty = False
        self._remaining = 0  # rows still to deliver after the unit in hand

    @property
    def subscription(self) -> Subscription:
        return self.digest.subscription

    # -- steps -------------------------------------------------------------------------------
    async def step(self, gate: Gate | None = None) -> bool:
        """Send (or find, after a crash) the next message; False once nothing is left to do
        (finished, refused, or stopping: see :attr:`report`).  ``gate`` is passed right
        before the platform is called (a fan-out's pace)."""
        if self.done:
            return False
        if self.should_stop is not None and self.should_stop():
            self.report.failed = "stopped before finishing; resumes on the next start"
            return await self._finish()
        # The next message, from the ledger as it is now; a new one is marked "sending" in
        # the same go (an unsure one left by a crash stays as it is, to be looked for).  One
        # trip to the database thread per step: at 1,000 messages a second they add up.
        unit = await _db(self._first if not self._begun else self._next)
        if self._empty:
            return await self._note_empty(gate)
        if unit is None:
            return await self._finish()
        if unit.unsure:
            try:
                if gate is not None:
                    await gate.wait()
                found = await self._find(unit)
            except DeliveryError as exc:
                # Can't tell whether it went out: keep the rows ambiguous and try again
                # later, rather than risk posting them twice.
                if self._should_wait(exc):
                    log.info(
                        "looking up %s waits %g s: %s", self.subscription.label, self.wait_s, exc
                    )
                    return True
                self.report.failed = f"could not check the platform for an earlier send: {exc}"
                log.warning("delivery to %s paused: %s", self.subscription.label, exc)
                return await self._finish()
            ids = [r.paper_id for r in unit.rows]
            what = ", ".join(p or "header" for p in ids)
            row, it = ("row", "it") if len(ids) == 1 else ("rows", "them")
            is_, was = ("is", "was") if len(ids) == 1 else ("are", "were")
            label, day = self.subscription.label, self.digest.day
            if found is not None:
                self.report.reconciled += len(unit.rows)
                await _db(self._record_sent, unit, found)
                log.info(
                    f"ledger {row} %s/%s/%s {was} in flight at a crash and {is_} already on the "
                    f"platform; not sending {it} again",
                    label,
                    day,
                    what,
                )
                return self._remaining > 0 or self._settled()
            log.info(
                f"ledger {row} %s/%s/%s {was} in flight at a crash and {is_} not on the "
                f"platform; sending {it} again",
                label,
                day,
                what,
            )
            await _db(self._set, [r.paper_id for r in unit.rows], "pending")
            return True
        try:
            if gate is not None:
                await gate.wait()
            sent = await self._send(unit)
        except DeliveryError as exc:
            # The platform said no: nothing was posted, so the rows go back to pending.
            ids = [r.paper_id for r in unit.rows]
            await _db(self._set, ids, "pending", error=str(exc))
            if exc.permanent:
                self.report.failed = str(exc)
                await _db(self.store.deactivate_subscription, self.sub_id, str(exc))
                self.report.deactivated = True
                log.warning("deactivated %s: %s", self.subscription.label, exc)
            elif self._should_wait(exc):
                log.info("delivery to %s waits %g s: %s", self.subscription.label, self.wait_s, exc)
                return True
            else:
                self.report.failed = str(exc)
                log.warning("delivery to %s paused: %s", self.subscription.label, exc)
            return await self._finish()
        # (asyncio.CancelledError — shutting down mid-call — leaves the rows "sending": we
        # cannot know whether the message went out.)
        self.report.sent += len(unit.rows)
        self.report.messages += 1
        await _db(self._record_sent, unit, sent)
        # Settled at once when that was the last message (in the same trip to the database):
        # no empty turn in a fan-out.
        return self._remaining > 0 or self._settled()

    def _should_wait(self, exc: DeliveryError) -> bool:
        """A flood limit that held past the platform client's own retries: the rows are
        pending again; wait what the platform asked and carry on (a few times, each wait at
        most :data:`MAX_WAIT_S`), rather than leave the day unfinished until a restart."""
        after = exc.retry_after
        if after is None or self._waits >= MAX_WAITS or not 0 <= after <= MAX_WAIT_S:
            return False
        self._waits += 1
        self.wait_s = max(after, 0.1)
        return True

    async def run(self) -> DeliveryReport:
        """Every step, to the end."""
        while await self.step():
            if self.wait_s:
                await asyncio.sleep(self.wait_s)
                self.wait_s = 0.0
        return self.report

    # -- storage (in a worker thread) --------------------------------------------------------
    def _first(self) -> _Unit | None:
        self._begun = True
        rows = self._begin()
        return None if self._empty else self._next(rows)

    def _begin(self) -> list[LedgerRow]:
        """Plan the day unless it is planned, and settle what was planned; the rows."""
        store, digest = self.store, self.digest
        if not self._planned and digest.items:
            store.plan_deliveries(
                self.sub_id, digest.day, [i.paper.id for i in digest.items], self.layout
            )
        rows = store.deliveries(self.sub_id, digest.day)
        if not rows:
            self._empty = True
            return rows
        self.layout = rows[0].layout if self.compact is not None else THREAD
        self.report.layout = self.layout
        planned = [r.paper_id for r in rows if r.paper_id != HEADER]
        # What the header announces is what was planned, even when resuming.
        digest.items = items_for_plan(store, digest, planned)
        known = {i.paper.id for i in digest.items}
        unknown = [pid for pid in planned if pid not in known]
        if unknown:
            store.set_delivery_states(
                self.sub_id, digest.day, unknown, "skipped", error="paper unknown"
            )
            rows = store.deliveries(self.sub_id, digest.day)
        done = [r for r in rows if r.state in ("sent", "skipped") and r.paper_id not in unknown]
        self.report.already = len(done)
        return rows

    def _next(self, rows: list[LedgerRow] | None = None) -> _Unit | None:
        """The next message to send or look for, from the chat's rows as they are now."""
        if rows is None:
            rows = self.store.deliveries(self.sub_id, self.digest.day)
        head = rows[0] if rows and rows[0].paper_id == HEADER else None
        if head is not None and head.state == "sent":
            self.report.thread = Sent(head.message_id or "", head.thread_id or head.message_id)
        todo = [r for r in rows if r.state in ("pending", "sending")]
        unit = self._unit(todo)
        self._remaining = len(todo) - (len(unit.rows) if unit is not None else 0)
        if unit is not None and not unit.unsure:
            self._set([r.paper_id for r in unit.rows], "sending", count_attempt=True)
        return unit

    def _unit(self, todo: list[LedgerRow]) -> _Unit | None:
        if not todo:
            return None
        unsure = [r for r in todo if r.state == "sending"]
        if self.layout == THREAD:
            row = unsure[0] if unsure else todo[0]
            card = self._cards([row])[0] if row.paper_id != HEADER else None
            return _Unit([row], card=card)
        if unsure:
            # One compact message is in flight at a time: the rows left "sending" are it.
            return _Unit(unsure, part=self._view(unsure))
        assert self.compact is not None
        view = self._view(todo)
        sizes = self.compact.compact_sizes(view)
        # A part holds at least one paper, unless it is the header's alone.
        size = max(sizes[0] if sizes else 0, 0 if view.header is not None else 1)
        first = compact_parts(view, [size])[0]
        take = set(first.paper_ids)
        if first.header is not None:
            take.add(HEADER)
        return _Unit([r for r in todo if r.paper_id in take], part=first)

    def _cards(self, rows: Sequence[LedgerRow]) -> list[Card]:
        ids = [r.paper_id for r in rows if r.paper_id != HEADER]
        items = items_for_plan(self.store, self.digest, ids)
        tallies = self.store.tallies(self.sub_id, ids)
        return [card_for(i, top_n=self.top_n, tally=tallies.get(i.paper.id, (0, 0))) for i in items]

    def _view(self, rows: Sequence[LedgerRow]) -> CompactDigest:
        cards = self._cards(rows)
        numbers = {r.paper_id: r.position for r in rows}
        with_header = any(r.paper_id == HEADER for r in rows)
        return compact_view(
            self.digest.day,
            header_text(self.digest) if with_header else None,
            [(numbers[c.paper_id], c) for c in cards],
        )

    def _set(self, ids: Sequence[str], state: str, **kw: Any) -> None:
        self.store.set_delivery_states(self.sub_id, self.digest.day, ids, state, **kw)

    def _record_sent(self, unit: _Unit, sent: Sent) -> None:
        ids = [r.paper_id for r in unit.rows]
        thread = self.report.thread
        if HEADER in ids:
            thread = Sent(sent.message_id, sent.thread_id or sent.message_id)
            self.report.thread = thread
        where = thread.thread_id if thread is not None else sent.thread_id
        self._set(ids, "sent", message_id=sent.message_id, thread_id=where)
        if self._remaining == 0:
            self._mark_done()

    # -- the platform ------------------------------------------------------------------------
    async def _send(self, unit: _Unit) -> Sent:
        digest, thread = self.digest, self.report.thread
        if unit.part is not None:
            assert self.compact is not None
            return await self.compact.send_compact(digest, unit.part, thread)
        if unit.card is None:
            return await self.sender.send_header(digest)
        assert thread is not None, "the header is always the first ledger row"
        return await self.sender.send_item(digest, unit.card, thread)

    async def _find(self, unit: _Unit) -> Sent | None:
        digest, thread = self.digest, self.report.thread
        if unit.part is not None:
            assert self.compact is not None
            return await self.compact.find_compact(digest, unit.part, thread)
        return await self.sender.find_sent(digest, unit.card, thread)

    async def _note_empty(self, gate: Gate | None) -> bool:
        """Nothing matched today: say so when configured, and settle the day."""
        digest = self.digest
        if self.no_papers_note:
            if gate is not None:
                await gate.wait()
            await self.sender.send_note(
                digest.subscription,
                f"No new papers matched on {digest.day:%a %d %b} "
                f"({digest.total_candidates} candidates).",
            )
        await _db(self.store.mark_done, self.sub_id, digest.day, "empty", 0)
        self.done = True
        return False

    async def _finish(self) -> bool:
        await _db(self._mark_done)
        return self._settled()

    def _settled(self) -> bool:
        self.done = True
        return False

    def _mark_done(self) -> None:
        """The day is settled for the scheduler: delivered (or deactivated)."""
        report = self.report
        if report.complete and not self._empty:
            done = report.sent + report.already + report.reconciled
            self.store.mark_done(self.sub_id, self.digest.day, "delivered", done)
        elif report.deactivated:
            self.store.mark_done(self.sub_id, self.digest.day, "deactivated", report.sent)


async def deliver(
    store: Store,
    sender: Sender,
    digest: Digest,
    *,
    top_n: int | None = None,
    should_stop: Callable[[], bool] | None = None,
    layout: str = THREAD,
) -> DeliveryReport:
    """Send a digest's header and items through ``sender``, exactly once each.

    ``should_stop`` is checked before each message (a shutdown in progress): the remaining
    rows stay pending and the next start resumes them.
    """
    sub = digest.subscription
    assert sub.id is not None, "deliver() needs a stored subscription"
    if not digest.items and not await _db(store.deliveries, sub.id, digest.day):
        return DeliveryReport(sub, digest.day)  # nothing to say; callers decide about a note
    run = DigestRun(store, sender, digest, top_n=top_n, layout=layout, should_stop=should_stop)
    return await run.run()


class Deliverer:
    """Delivers digests, one delivery at a time per subscription, whoever asked for it (the
    schedule, a catch-up, or a person's /digest), and says how it went in words."""

    def __init__(
        self,
        store: Store,
        *,
        top_n: int | None = None,
        no_papers_note: bool = False,
        layout_for: Callable[[str], str] | None = None,
    ) -> None:
        self.store = store
        self.top_n = top_n
        self.no_papers_note = no_papers_note
        self.layout_for = layout_for
        self.locks = KeyedLocks()
        self._stopping = False

    def stop(self) -> None:
        """Shutting down: deliveries finish the message in flight, then stop."""
        self._stopping = True

    def stopping(self) -> bool:
        return self._stopping

    def layout(self, sub: Subscription) -> str:
        """The chat's layout: its own choice, else its platform's default."""
        if sub.layout:
            return sub.layout
        return self.layout_for(sub.platform) if self.layout_for is not None else THREAD

    def run(self, digest: Digest, sender: Sender, *, planned: bool = False) -> DigestRun:
        """A delivery of ``digest`` to step through (hold :attr:`locks` of its subscription
        around each step)."""
        return DigestRun(
            self.store,
            sender,
            digest,
            top_n=self.top_n,
            layout=self.layout(digest.subscription),
            should_stop=self.stopping,
            no_papers_note=self.no_papers_note,
            planned=planned,
        )

    async def deliver_digest(self, digest: Digest, sender: Sender | None) -> DeliveryReport:
        sub = digest.subscription
        assert sub.id is not None
        async with self.locks(sub.id):
            if sender is None:
                return DeliveryReport(sub, digest.day, failed=f"no {sub.platform} adapter")
            return await self.run(digest, sender).run()


def report_text(report: DeliveryReport, digest: Digest) -> str:
    """What a person who asked for today's digest is told once it went out (or didn't)."""
    n = len(digest.items)
    if report.deactivated:
        return (
            f"I can't post in this chat ({report.failed}), so its daily digest is paused. "
            "Add me back, then subscribe again to resume it."
        )
    if report.failed:
        done = report.sent + report.already + report.reconciled
        return (
            f"Posted {max(done - 1, 0)} of {n} papers, then the platform refused: "
            f"{report.failed}. The rest is retried with the next scheduled digest."
        )
    if report.sent == 0:
        return f"Today's digest ({n} papers) is already in this chat."
    if report.layout == COMPACT:
        noun = "one message" if report.messages <= 1 else f"{report.messages} messages"
        return f"Posted today's digest: {n} papers in {noun}."
    return f"Posted today's digest: {n} papers, one per reply in the thread."
