"""Storage: the only package that touches SQLite."""

from storage.base import StoreError
from storage.db import Store
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
    "FetchRecord",
    "FollowRecord",
    "JobRecord",
    "LedgerRow",
    "RatingRecord",
    "Store",
    "StoreError",
    "SummaryRecord",
    "Unfinished",
    "UsageRow",
    "UsageTotals",
]
