"""Ask the paper: full texts (compressed, once per paper version), cached answers, the turns of
each conversation, and which paper a chat message is about."""

from __future__ import annotations

import datetime as dt
import json
import sqlite3
import zlib
from collections.abc import Sequence
from dataclasses import dataclass

from storage.base import Base, now_iso


@dataclass(frozen=True, slots=True)
class PaperText:
    """A paper version's full text, one string per page (references dropped)."""

    paper_id: str
    version: int
    pages: tuple[str, ...]
    pdf_bytes: int


@dataclass(frozen=True, slots=True)
class CachedAnswer:
    """An answer under its key: paper version, model, prompt, normalised question (and the
    earlier turns of a follow-up)."""

    key: str
    paper_id: str
    version: int
    model: str
    question: str  # normalised
    text: str
    found: bool  # False: the paper does not say
    sources: tuple[tuple[int, str], ...]  # (page, short quote)
    tokens_in: int = 0
    tokens_out: int = 0


@dataclass(frozen=True, slots=True)
class AskTurn:
    """One question and its answer in a conversation (platform, chat, thread)."""

    id: int | None
    platform: str
    chat: str
    thread: str | None  # None until the answer's message is known (a fresh /ask)
    user: str
    paper_id: str
    question: str
    answer: str
    at: str = ""


@dataclass(frozen=True, slots=True)
class PaperRef:
    """What a chat message is about: a paper, or ``""`` for a digest's header (a thread of
    several papers); ``thread`` is the conversation it belongs to, when it is an answer."""

    paper_id: str
    thread: str | None = None


def _turn(r: sqlite3.Row) -> AskTurn:
    return AskTurn(
        id=r["id"],
        platform=r["platform"],
        chat=r["chat"],
        thread=r["thread"],
        user=r["user"],
        paper_id=r["paper_id"],
        question=r["question"],
        answer=r["answer"],
        at=r["at"],
    )


class AskStore(Base):
    # -- full texts ---------------------------------------------------------------------------
    def paper_text(self, paper_id: str, version: int) -> PaperText | None:
        r = self._one(
            "SELECT pages, pdf_bytes FROM paper_texts WHERE paper_id = ? AND version = ?",
            [paper_id, version],
        )
        if r is None:
            return None
        pages = json.loads(zlib.decompress(r["pages"]).decode("utf-8"))
        return PaperText(paper_id, version, tuple(pages), r["pdf_bytes"] or 0)

    def save_paper_text(
        self, paper_id: str, version: int, pages: Sequence[str], pdf_bytes: int
    ) -> None:
        """Keep a version's text, compressed; the first one stored stays (it is the same)."""
        blob = zlib.compress(json.dumps(list(pages), ensure_ascii=False).encode("utf-8"), 9)
        with self.atomic():
            self.db.execute(
                "INSERT OR IGNORE INTO paper_texts "
                "(paper_id, version, pages, page_count, chars, pdf_bytes, created_at) "
                "VALUES (?, ?, ?, ?, ?, ?, ?)",
                [
                    paper_id,
                    version,
                    blob,
                    len(pages),
                    sum(len(p) for p in pages),
                    pdf_bytes,
                    now_iso(),
                ],
            )

    # -- the answer cache ---------------------------------------------------------------------
    def cached_answer(self, key: str) -> CachedAnswer | None:
        r = self._one("SELECT * FROM ask_answers WHERE key = ?", [key])
        if r is None:
            return None
        return CachedAnswer(
            key=r["key"],
            paper_id=r["paper_id"],
            version=r["version"],
            model=r["model"],
            question=r["question"],
            text=r["text"],
            found=bool(r["found"]),
            sources=tuple((int(p), str(q)) for p, q in json.loads(r["sources"] or "[]")),
            tokens_in=r["tokens_in"] or 0,
            tokens_out=r["tokens_out"] or 0,
        )

    def save_answer(self, answer: CachedAnswer) -> None:
        with self.atomic():
            self.table("ask_answers").upsert(
                {
                    "key": answer.key,
                    "paper_id": answer.paper_id,
                    "version": answer.version,
                    "model": answer.model,
                    "question": answer.question,
                    "text": answer.text,
                    "found": int(answer.found),
                    "sources": json.dumps([list(s) for s in answer.sources], ensure_ascii=False),
                    "tokens_in": answer.tokens_in,
                    "tokens_out": answer.tokens_out,
                    "created_at": now_iso(),
                },
                pk="key",
            )

    # -- conversations ------------------------------------------------------------------------
    def add_turn(self, turn: AskTurn, day: dt.date | None = None) -> int:
        """Store a question and its answer; returns the turn's id."""
        day = day or dt.datetime.now(dt.UTC).date()
        with self.atomic():
            cur = self.db.execute(
                "INSERT INTO ask_turns "
                "(platform, chat, thread, user, paper_id, question, answer, day, at) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [
                    turn.platform,
                    turn.chat,
                    turn.thread,
                    turn.user,
                    turn.paper_id,
                    turn.question,
                    turn.answer,
                    day.isoformat(),
                    now_iso(),
                ],
            )
            return int(cur.lastrowid or 0)

    def conversation(
        self,
        platform: str,
        chat: str,
        thread: str,
        paper_id: str | None = None,
        limit: int = 10,
    ) -> list[AskTurn]:
        """The last ``limit`` turns of a conversation (about one paper, if given), oldest
        first."""
        sql = "SELECT * FROM ask_turns WHERE platform = ? AND chat = ? AND thread = ?"
        params: list[object] = [platform, chat, thread]
        if paper_id is not None:
            sql += " AND paper_id = ?"
            params.append(paper_id)
        rows = self._rows(sql + " ORDER BY id DESC LIMIT ?", [*params, limit])
        return [_turn(r) for r in reversed(rows)]

    def questions_asked(self, platform: str, chat: str, day: dt.date) -> int:
        return self._count(
            "SELECT count(*) FROM ask_turns WHERE platform = ? AND chat = ? AND day = ?",
            [platform, chat, day.isoformat()],
        )

    # -- which paper a message is about --------------------------------------------------------
    def link_answer(
        self,
        platform: str,
        chat: str,
        message_id: str,
        paper_id: str,
        thread: str,
        turn_id: int | None = None,
    ) -> None:
        """An answer landed as ``message_id``: replies to it continue ``thread`` about
        ``paper_id``.  A turn asked without a thread (a fresh /ask) joins ``thread``."""
        with self.atomic():
            self.table("paper_messages").upsert(
                {
                    "platform": platform,
                    "chat": chat,
                    "message_id": message_id,
                    "paper_id": paper_id,
                    "thread": thread,
                },
                pk=("platform", "chat", "message_id"),
            )
            if turn_id is not None:
                self.db.execute(
                    "UPDATE ask_turns SET thread = ? WHERE id = ? AND thread IS NULL",
                    [thread, turn_id],
                )

    def paper_for_message(self, platform: str, chat: str, message_id: str) -> PaperRef | None:
        """The paper a message of ours is about: an answer, or a digest message (the
        delivery ledger; a digest's header gives ``""``).  None: not a message we know."""
        r = self._one(
            "SELECT paper_id, thread FROM paper_messages "
            "WHERE platform = ? AND chat = ? AND message_id = ?",
            [platform, chat, message_id],
        )
        if r is not None:
            return PaperRef(r["paper_id"], r["thread"])
        rows = self._rows(
            "SELECT DISTINCT d.paper_id FROM deliveries d "
            "JOIN subscriptions s ON s.id = d.subscription_id "
            "WHERE s.platform = ? AND s.chat = ? AND d.message_id = ? LIMIT 3",
            [platform, chat, message_id],
        )
        papers = {r["paper_id"] for r in rows} - {""}
        if not rows:
            return None
        # One paper: its own message.  None (a header) or several (a compact digest lists
        # them all): no one paper, the question has to name it.
        return PaperRef(papers.pop() if len(papers) == 1 else "")
