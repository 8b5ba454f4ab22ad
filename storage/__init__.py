"""Storage: the only package that touches SQLite."""

from storage.ask import AskTurn, CachedAnswer, PaperRef, PaperText
from storage.base import StoreError
from storage.db import Store
from storage.installations import AppInstallation
from storage.records import (
    FetchRecord,
    FollowRecord,
    JobRecord,
    LedgerRow,
    RatingRecord,
    SummaryRecord,
    Unfinished,
    UsageRow,
    UsageTotals,
)

__all__ = [
    "AppInstallation",
    "AskTurn",
    "CachedAnswer",
    "FetchRecord",
    "FollowRecord",
    "JobRecord",
    "LedgerRow",
    "PaperRef",
    "PaperText",
    "RatingRecord",
    "Store",
    "StoreError",
    "SummaryRecord",
    "Unfinished",
    "UsageRow",
    "UsageTotals",
]
