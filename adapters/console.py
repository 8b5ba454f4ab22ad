"""The digest in a terminal (rich): colour on a TTY, plain text when piped."""

from __future__ import annotations

from rich.console import Console, Group
from rich.panel import Panel
from rich.text import Text

from bot.cards import DigestView, digest_view
from bot.models import Card, Digest


def render_card(rank: int, card: Card) -> Group:
    # Text objects, never markup strings: a title like "[bold]" must print as written.
    title = Text(f"{rank:>2}. ", style="bold")
    title.append(f"[{card.score or 0:.1f}] ", style="bold cyan")
    title.append(card.title, style=f"bold link {card.url}")
    if card.explore:
        title.append("  (exploring)", style="magenta")
    meta = Text(f"    {card.authors_short(6)}", style="dim")
    kind = Text(f"    {card.type_line} · {card.versioned_id} · {card.url}", style="green")
    why = Text(f"    why: {card.why()}", style="yellow")
    parts: list[Text] = [title, meta, kind, why]
    if card.summary:
        parts.append(Text("    " + card.summary.strip().replace("\n", "\n    ")))
    if card.marker:
        parts.append(Text(f"    ⚠ {card.marker}", style="italic red"))
    return Group(*parts, Text(""))


def render_console(
    digest: Digest, console: Console | None = None, top_n: int | None = None
) -> None:
    render_view(digest_view(digest, top_n=top_n), console or Console())


def render_view(view: DigestView, console: Console) -> None:
    console.print(Panel(Text(view.header, style="bold")))
    if not view.cards:
        console.print(
            Text(
                f"No papers matched on {view.day.isoformat()} "
                f"({view.total_candidates} candidates).",
                style="dim",
            )
        )
        return
    for i, card in enumerate(view.cards, 1):
        console.print(render_card(i, card))


def print_digest(digest: Digest, top_n: int | None, out: str | None = None) -> None:
    """``herald digest``: to the terminal, or plain text into ``out``."""
    if out:
        with open(out, "w", encoding="utf-8") as fh:
            render_console(digest, Console(file=fh, width=100, color_system=None), top_n)
    else:
        render_console(digest, Console(), top_n)
