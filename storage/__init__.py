"""Storage: the only package that touches SQLite."""

from storage.db import Store

__all__ = ["Store"]
