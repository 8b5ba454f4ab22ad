"""Where a Slack subscription lives: its ``chat`` address.

With one bot token (one workspace) a chat is the channel id, ``C0456``, as it always was.
An app installed into many workspaces (OAuth) qualifies it with the workspace, ``T0123/C0456``
(an org-wide install: ``E0789/C0456``), so two workspaces' channels never share a
subscription, ratings, ledger or feed.  Only this adapter reads these addresses.
"""

from __future__ import annotations

SEPARATOR = "/"


def chat_address(workspace: str | None, channel: str) -> str:
    """``T0123/C0456`` (or the bare channel id without a workspace)."""
    return f"{workspace}{SEPARATOR}{channel}" if workspace else channel


def split_address(chat: str) -> tuple[str | None, str]:
    """(workspace or None, channel id) of a chat address."""
    workspace, sep, channel = chat.rpartition(SEPARATOR)
    return (workspace or None, channel) if sep else (None, chat)


def workspace_prefix(workspace: str) -> str:
    """What every chat address in ``workspace`` starts with."""
    return f"{workspace}{SEPARATOR}"
