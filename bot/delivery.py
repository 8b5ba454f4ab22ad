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
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

from bot.errors import DeliveryError
from bot.models import Digest, ScoredPaper, Subscription
from bot.scoring import explain
from storage import Store

log = logging.getLogger(__name__)

HEADER = ""  # the ledger's paper_id for the day's header message


@dataclass(frozen=True, slots=True)
class Sent:
    """Where a message landed: its id, and the thread later messages should join."""

    message_id: str
    thread_id: str | None = None


@runtime_checkable
class Sender(Protocol):
    """What delivery needs from a platform adapter."""

    platform: str

    async def send_header(self, digest: Digest) -> Sent: ...

    async def send_item(self, digest: Digest, item: ScoredPaper, thread: Sent) -> Sent: ...

    async def find_sent(
        self, sub: Subscription, day: dt.date, paper_id: str, thread: Sent | None
    ) -> Sent | None:
        """Look on the platform for a message the ledger is unsure about.

        None means "not there" (or, for a platform that cannot read history, "can't know"):
        the row is sent again.  Raise DeliveryError when the lookup itself failed.
        """
        ...

    async def send_note(self, sub: Subscription, text: str) -> None: ...


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


async def deliver(
    store: Store,
    sender: Sender,
    digest: Digest,
    *,
    should_stop: Callable[[], bool] | None = None,
) -> DeliveryReport:
    """Send a digest's header and items through ``sender``, exactly once each.

    ``should_stop`` is checked before each message (a shutdown in progress): the remaining
    rows stay pending and the next start resumes them.
    """
    sub = digest.subscription
    assert sub.id is not None, "deliver() needs a stored subscription"
    report = DeliveryReport(sub, digest.day)
    if not digest.items and not store.deliveries(sub.id, digest.day):
        return report  # nothing to say; callers decide about a "no new papers" note
    store.plan_deliveries(sub.id, digest.day, [i.paper.id for i in digest.items])
    rows = store.deliveries(sub.id, digest.day)
    planned = [r["paper_id"] for r in rows if r["paper_id"] != HEADER]
    items = {i.paper.id: i for i in items_for_plan(store, digest, planned)}
    # What the header announces is what was planned, even when resuming.
    digest.items = [items[p] for p in planned if p in items]
    thread: Sent | None = None
    for row in rows:
        pid = row["paper_id"]
        if pid != HEADER and pid not in items:
            store.set_delivery_state(sub.id, digest.day, pid, "skipped", error="paper unknown")
            continue
        if row["state"] in ("sent", "skipped"):
            report.already += 1
            if pid == HEADER:
                thread = Sent(row["message_id"], row["thread_id"] or row["message_id"])
            continue
        if row["state"] == "sending":
            try:
                found = await sender.find_sent(sub, digest.day, pid, thread)
            except DeliveryError as exc:
                # Can't tell whether it went out: keep the row ambiguous and try again later,
                # rather than risk posting it twice.
                report.failed = f"could not check the platform for an earlier send: {exc}"
                log.warning("delivery to %s paused: %s", sub.label, report.failed)
                break
            if found is not None:
                store.set_delivery_state(
                    sub.id,
                    digest.day,
                    pid,
                    "sent",
                    message_id=found.message_id,
                    thread_id=found.thread_id,
                )
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
        store.set_delivery_state(sub.id, digest.day, pid, "sending", count_attempt=True)
        try:
            if pid == HEADER:
                sent = await sender.send_header(digest)
                thread = Sent(sent.message_id, sent.thread_id or sent.message_id)
            else:
                assert thread is not None, "the header is always the first ledger row"
                sent = await sender.send_item(digest, items[pid], thread)
        except DeliveryError as exc:
            # The platform said no: nothing was posted, so the row goes back to pending.
            store.set_delivery_state(sub.id, digest.day, pid, "pending", error=str(exc))
            report.failed = str(exc)
            if exc.permanent:
                store.deactivate_subscription(sub.id, str(exc))
                report.deactivated = True
                log.warning("deactivated %s: %s", sub.label, exc)
            else:
                log.warning("delivery to %s paused: %s", sub.label, exc)
            break
        except asyncio.CancelledError:
            # Shutting down mid-call: we cannot know whether it went out; leave it ambiguous.
            raise
        store.set_delivery_state(
            sub.id,
            digest.day,
            pid,
            "sent",
            message_id=sent.message_id,
            thread_id=(thread.thread_id if thread else None),
        )
        report.sent += 1
    report.thread = thread
    return report
