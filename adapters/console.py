"""The digest in a terminal (rich): colour on a TTY, plain text when piped."""

from __future__ import annotations

from rich.console import Console, Group
from rich.panel import Panel
from rich.text import Text

from bot.models import Digest, ScoredPaper
from bot.render import header_text, reasons_text, short_authors, summary_marker, type_label


def render_item(rank: int, item: ScoredPaper, top_n: int | None = None) -> Group:
    p = item.paper
    # Text objects, never markup strings: a title like "[bold]" must print as written.
    title = Text(f"{rank:>2}. ", style="bold")
    title.append(f"[{item.score:.1f}] ", style="bold cyan")
    title.append(p.title, style=f"bold link {p.url}")
    if item.explore:
        title.append("  (exploring)", style="magenta")
    meta = Text(f"    {short_authors(p.authors, 6)}", style="dim")
    kind = Text(f"    {type_label(item)} · {p.versioned_id} · {p.url}", style="green")
    why = Text(f"    why: {reasons_text(item)}", style="yellow")
    parts: list[Text] = [title, meta, kind, why]
    if item.summary:
        parts.append(Text("    " + item.summary.strip().replace("\n", "\n    ")))
    marker = summary_marker(item, top_n)
    if marker:
        parts.append(Text(f"    ⚠ {marker}", style="italic red"))
    return Group(*parts, Text(""))


def render_console(
    digest: Digest, console: Console | None = None, top_n: int | None = None
) -> None:
    console = console or Console()
    console.print(Panel(Text(header_text(digest), style="bold")))
    if not digest.items:
        console.print(
            Text(
                f"No papers matched on {digest.day.isoformat()} "
                f"({digest.total_candidates} candidates).",
                style="dim",
            )
        )
        return
    for i, item in enumerate(digest.items, 1):
        console.print(render_item(i, item, top_n))
