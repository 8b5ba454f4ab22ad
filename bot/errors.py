"""Typed errors: library code raises these; the CLI and chat adapters turn them into messages."""

from __future__ import annotations


class HeraldError(Exception):
    """Base of every error arxiv-herald raises on purpose."""


class UserError(HeraldError):
    """Bad input from a person (an id, a category, an argument): shown to them as-is."""


class CommandError(UserError):
    """A chat command could not be carried out; the text is a polite reply."""


class ConfigError(HeraldError):
    """The configuration file is missing, unreadable or invalid."""


class SourceError(HeraldError):
    """arXiv could not be reached or answered with something unusable."""


class DeliveryError(HeraldError):
    """A platform refused or failed a send.

    ``permanent`` means the chat is gone for good (bot blocked or removed, channel archived):
    the subscription is deactivated instead of being retried forever.  ``retry_after``: the
    platform said when to try again (a flood limit), in seconds.
    """

    def __init__(
        self, message: str, *, permanent: bool = False, retry_after: float | None = None
    ) -> None:
        super().__init__(message)
        self.permanent = permanent
        self.retry_after = retry_after
