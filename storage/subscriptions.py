"""Subscriptions: who receives a digest, of which categories, ranked by what."""

from __future__ import annotations

import dataclasses
import json
import math
import secrets
import sqlite3
from dataclasses import replace
from typing import Any

from bot.models import Subscription
from storage.base import Base, now_iso, to_json

_LISTS = ("categories", "keywords", "excludes", "announce_types", "muted")
#: Every field of a subscription but its id, one column each.
FIELDS = tuple(f.name for f in dataclasses.fields(Subscription) if f.name != "id")


def _column(name: str, value: Any) -> Any:
    if name in _LISTS:
        return to_json(value)
    return int(value) if name == "active" else value


def _to_row(s: Subscription) -> dict[str, Any]:
    return {f: _column(f, getattr(s, f)) for f in FIELDS}


_DEFAULTS = {f.name: f.default for f in dataclasses.fields(Subscription)}
_NUMBERS = ("min_score", "max_papers", "title_weight")


def _to_sub(r: sqlite3.Row) -> Subscription:
    kw: dict[str, Any] = {}
    for f in FIELDS:
        v = r[f]
        if f in _LISTS:
            v = tuple(json.loads(v or "[]"))
        elif f == "active":
            v = bool(v)
        elif f in _NUMBERS and (v is None or not math.isfinite(v)):
            v = _DEFAULTS[f]  # a damaged row (NaN is stored as NULL) reads as the default
        elif v is None and _DEFAULTS[f] is not None:
            v = _DEFAULTS[f]  # a column added by a later migration is NULL in older rows
        kw[f] = v
    return Subscription(id=r["id"], **kw)


class SubscriptionsStore(Base):
    def upsert_subscription(self, sub: Subscription) -> Subscription:
        """Create or replace the subscription for (platform, chat); returns it with its id."""
        now = now_iso()
        with self.atomic():
            old = self.db.execute(
                "SELECT id, feed_token FROM subscriptions WHERE platform = ? AND chat = ?",
                [sub.platform, sub.chat],
            ).fetchone()
            token = (
                sub.feed_token or (old["feed_token"] if old else "") or secrets.token_urlsafe(18)
            )
            sub = replace(sub, feed_token=token)
            row = _to_row(sub)
            row["updated_at"] = now
            if old:
                sid = old["id"]
                self.table("subscriptions").update(sid, row)
            else:
                row["created_at"] = now
                sid = self.table("subscriptions").insert(row).last_pk
        return replace(sub, id=int(sid))

    def get_subscription(self, platform: str, chat: str) -> Subscription | None:
        r = self._one(
            "SELECT * FROM subscriptions WHERE platform = ? AND chat = ?", [platform, chat]
        )
        return _to_sub(r) if r else None

    def subscription_by_id(self, sub_id: int) -> Subscription | None:
        r = self._one("SELECT * FROM subscriptions WHERE id = ?", [sub_id])
        return _to_sub(r) if r else None

    def subscription_by_feed_token(self, token: str) -> Subscription | None:
        r = self._one("SELECT * FROM subscriptions WHERE feed_token = ?", [token])
        return _to_sub(r) if r else None

    def list_subscriptions(
        self, *, active_only: bool = True, platform: str | None = None
    ) -> list[Subscription]:
        sql = "SELECT * FROM subscriptions WHERE 1=1"
        params: list[Any] = []
        if active_only:
            sql += " AND active = 1"
        if platform:
            sql += " AND platform = ?"
            params.append(platform)
        return [_to_sub(r) for r in self._rows(sql + " ORDER BY id", params)]

    def deactivated_subscriptions(self) -> list[Subscription]:
        return [
            _to_sub(r)
            for r in self._rows(
                "SELECT * FROM subscriptions WHERE active = 0 AND deactivated_reason IS NOT NULL "
                "ORDER BY updated_at DESC"
            )
        ]

    def update_subscription(self, sub_id: int, **fields: Any) -> Subscription:
        bad = set(fields) - set(FIELDS)
        if bad:
            raise ValueError(f"unknown subscription fields: {sorted(bad)}")
        row = {f: _column(f, v) for f, v in fields.items()}
        row["updated_at"] = now_iso()
        with self.atomic():
            self.table("subscriptions").update(sub_id, row)
        sub = self.subscription_by_id(sub_id)
        assert sub is not None
        return sub

    def deactivate_subscription(self, sub_id: int, reason: str) -> None:
        self.update_subscription(sub_id, active=False, deactivated_reason=reason)

    def subscription_created_at(self, sub_id: int) -> str | None:
        r = self._one("SELECT created_at FROM subscriptions WHERE id = ?", [sub_id])
        return r["created_at"] if r else None
