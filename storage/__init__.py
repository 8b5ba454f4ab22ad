"""Storage: the only package that touches SQLite."""

from storage.base import StoreError
from storage.db import Store
from storage.installations import AppInstallation
from storage.records import (
    FetchRecord,
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
    "FetchRecord",
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
