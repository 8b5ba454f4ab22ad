"""Delivery with a ledger: every (subscription, day, paper) is recorded before and after the
platform call, so a crash and restart never loses a paper and never posts it twice.

States: ``pending`` (planned) → ``sending`` (the call is about to go out) → ``sent`` (with the
platform message id).  A row found in ``sending`` after a restart is *ambiguous*: the sender is
asked to find the message on the platform (Slack: thread metadata); if it cannot tell, the row
is sent again — the only window where a duplicate is possible is a crash between the platform
accepting a message and the ledger write that follows it.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

from bot.cards import card_for
from bot.errors import DeliveryError
from bot.models import Card, Digest, ScoredPaper, Subscription
from bot.pacing import KeyedLocks
from bot.platform import Sender, Sent
from bot.scoring import explain
from storage import Store

T = TypeVar("T")

log = logging.getLogger(__name__)

HEADER = ""  # the ledger's paper_id for the day's header message


@dataclass
class DeliveryReport:
    subscription: Subscription
    day: dt.date
    sent: int = 0
    already: int = 0
    reconciled: int = 0
    failed: str | None = None
    deactivated: bool = False
    thread: Sent | None = None
    errors: list[str] = field(default_factory=list)

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


def _mark_sent(store: Store, sub_id: int, day: dt.date, paper_id: str, sent: Sent) -> None:
    store.set_delivery_state(
        sub_id, day, paper_id, "sent", message_id=sent.message_id, thread_id=sent.thread_id
    )


async def _db(fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """Storage off the event loop: a busy database never stalls other chats' sends."""
    return await asyncio.to_thread(fn, *args, **kwargs)


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


async def deliver(
    store: Store,
    sender: Sender,
    digest: Digest,
    *,
    top_n: int | None = None,
    should_stop: Callable[[], bool] | None = None,
) -> DeliveryReport:
    """Send a digest's header and items through ``sender``, exactly once each.

    ``should_stop`` is checked before each message (a shutdown in progress): the remaining
    rows stay pending and the next start resumes them.
    """
    sub = digest.subscription
    assert sub.id is not None, "deliver() needs a stored subscription"
    report = DeliveryReport(sub, digest.day)
    if not digest.items and not await _db(store.deliveries, sub.id, digest.day):
        return report  # nothing to say; callers decide about a "no new papers" note
    await _db(store.plan_deliveries, sub.id, digest.day, [i.paper.id for i in digest.items])
    rows = await _db(store.deliveries, sub.id, digest.day)
    planned = [r.paper_id for r in rows if r.paper_id != HEADER]
    # What the header announces is what was planned, even when resuming.
    digest.items, cards = await _db(plan_cards, store, digest, planned, top_n)
    thread: Sent | None = None
    for row in rows:
        pid = row.paper_id
        if pid != HEADER and pid not in cards:
            await _db(
                store.set_delivery_state, sub.id, digest.day, pid, "skipped", error="paper unknown"
            )
            continue
        if row.state in ("sent", "skipped"):
            report.already += 1
            if pid == HEADER:
                thread = Sent(row.message_id or "", row.thread_id or row.message_id)
            continue
        if row.state == "sending":
            try:
                found = await sender.find_sent(digest, cards.get(pid) if pid else None, thread)
            except DeliveryError as exc:
                # Can't tell whether it went out: keep the row ambiguous and try again later,
                # rather than risk posting it twice.
                report.failed = f"could not check the platform for an earlier send: {exc}"
                log.warning("delivery to %s paused: %s", sub.label, report.failed)
                break
            if found is not None:
                await _db(_mark_sent, store, sub.id, digest.day, pid, found)
                report.reconciled += 1
                log.info(
                    "ledger row %s/%s/%s was in flight at a crash and is already on the "
                    "platform; not sending it again",
                    sub.label,
                    digest.day,
                    pid or "header",
                )
                if pid == HEADER:
                    thread = Sent(found.message_id, found.thread_id or found.message_id)
                continue
            log.info(
                "ledger row %s/%s/%s was in flight at a crash and is not on the platform; "
                "sending it again",
                sub.label,
                digest.day,
                pid or "header",
            )
        if should_stop is not None and should_stop():
            report.failed = "stopped before finishing; resumes on the next start"
            break
        await _db(store.set_delivery_state, sub.id, digest.day, pid, "sending", count_attempt=True)
        try:
            if pid == HEADER:
                sent = await sender.send_header(digest)
                thread = Sent(sent.message_id, sent.thread_id or sent.message_id)
            else:
                assert thread is not None, "the header is always the first ledger row"
                sent = await sender.send_item(digest, cards[pid], thread)
        except DeliveryError as exc:
            # The platform said no: nothing was posted, so the row goes back to pending.
            await _db(store.set_delivery_state, sub.id, digest.day, pid, "pending", error=str(exc))
            report.failed = str(exc)
            if exc.permanent:
                await _db(store.deactivate_subscription, sub.id, str(exc))
                report.deactivated = True
                log.warning("deactivated %s: %s", sub.label, exc)
            else:
                log.warning("delivery to %s paused: %s", sub.label, exc)
            break
        except asyncio.CancelledError:
            # Shutting down mid-call: we cannot know whether it went out; leave it ambiguous.
            raise
        await _db(
            _mark_sent, store, sub.id, digest.day, pid, Sent(sent.message_id, thread.thread_id)
        )
        report.sent += 1
    report.thread = thread
    return report


class Deliverer:
    """Delivers digests, one delivery at a time per subscription, whoever asked for it (the
    schedule, a catch-up, or a person's /digest), and says how it went in words."""

    def __init__(
        self,
        store: Store,
        *,
        top_n: int | None = None,
        no_papers_note: bool = False,
    ) -> None:
        self.store = store
        self.top_n = top_n
        self.no_papers_note = no_papers_note
        self._locks = KeyedLocks()
        self._stopping = False

    def stop(self) -> None:
        """Shutting down: deliveries finish the message in flight, then stop."""
        self._stopping = True

    def stopping(self) -> bool:
        return self._stopping

    async def deliver_digest(self, digest: Digest, sender: Sender | None) -> DeliveryReport:
        sub = digest.subscription
        assert sub.id is not None
        async with self._locks(sub.id):
            if sender is None:
                return DeliveryReport(sub, digest.day, failed=f"no {sub.platform} adapter")
            store = self.store
            if not digest.items and not await _db(store.deliveries, sub.id, digest.day):
                if self.no_papers_note:
                    await sender.send_note(
                        sub,
                        f"No new papers matched on {digest.day:%a %d %b} "
                        f"({digest.total_candidates} candidates).",
                    )
                await _db(store.mark_done, sub.id, digest.day, "empty", 0)
                return DeliveryReport(sub, digest.day)
            report = await deliver(
                store, sender, digest, top_n=self.top_n, should_stop=self.stopping
            )
            if report.complete:
                done = report.sent + report.already + report.reconciled
                await _db(store.mark_done, sub.id, digest.day, "delivered", done)
            elif report.deactivated:
                await _db(store.mark_done, sub.id, digest.day, "deactivated", report.sent)
            return report


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
    return f"Posted today's digest: {n} papers, one per reply in the thread."
