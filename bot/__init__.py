"""arxiv-herald: the platform-neutral engine (config, source, scoring, summaries, digests)."""

__version__ = "0.1.0"
