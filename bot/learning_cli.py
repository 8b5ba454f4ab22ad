"""``herald rate``, ``herald ratings`` and ``herald why``: ratings and explanations without a chat.

Registered on ``bot.cli.main`` by the import at the end of ``bot/cli.py``.
"""

from __future__ import annotations

from typing import Any

import click
from rich.console import Console
from rich.table import Table

from bot.cli import State, handle_errors, main
from bot.errors import UserError
from bot.models import Rating, ScoredPaper, Subscription

_SUBSCRIPTION_HELP = (
    "Subscription id, name or platform:chat (default: the config file's own subscription)."
)
_VOTES = {"up": 1, "down": -1}


def resolve_subscription(engine: Any, ref: str | None) -> Subscription:
    """A subscription by id, name or ``platform:chat``; None gives the config's default."""
    if ref is None:
        return engine.default_subscription()
    ref = ref.strip()
    store = engine.store
    if ref.isdigit():
        sub = store.subscription_by_id(int(ref))
        if sub is not None:
            return sub
    subs = [engine.default_subscription()]
    subs += [s for s in store.list_subscriptions(active_only=False) if s.platform != "default"]
    for s in subs:
        if ref in (s.name, s.label, f"{s.platform}:{s.chat}"):
            return s
    known = ", ".join(f"{s.id} ({s.label})" for s in subs)
    raise UserError(f"No subscription '{ref}'. Known subscriptions: {known}.")


def why_lines(item: ScoredPaper, sub: Subscription) -> list[str]:
    """A paper's score and every reason behind it, one line each."""
    paper = item.paper
    lines = [f"{paper.title} ({paper.versioned_id}): score {item.score:+.1f} for {sub.label}"]
    lines += [f"• {r.text}" for r in item.reasons] or ["• no keyword matched"]
    if item.score < sub.min_score:
        lines.append(f"(below the min score {sub.min_score:g}, so not in the digest)")
    return lines


@main.command()
@click.argument("paper_id")
@click.argument("vote", type=click.Choice(sorted(_VOTES), case_sensitive=False))
@click.option("--subscription", "-s", "sub_ref", help=_SUBSCRIPTION_HELP)
@click.option("--user", "-u", default="cli", show_default=True, help="Who rates.")
@click.pass_obj
@handle_errors
def rate(state: State, paper_id: str, vote: str, sub_ref: str | None, user: str) -> None:
    """Rate a paper 👍 (up) or 👎 (down); the next ranking takes it into account."""
    engine = state.engine
    sub = resolve_subscription(engine, sub_ref)
    paper = engine.lookup(paper_id)
    assert sub.id is not None
    value = _VOTES[vote.lower()]
    prev, new = engine.store.record_rating(Rating(sub.id, user, paper.id, value))
    engine.rating_changed(sub)
    thumb = "👍" if new > 0 else "👎"
    if prev == new:
        verb = f"Already rated {thumb}"
    elif prev is None:
        verb = f"Rated {thumb}"
    else:
        verb = f"Changed the rating to {thumb}"
    click.echo(f"{verb}: {paper.title} ({paper.id}) for {sub.label}, as {user}.")
    item = engine.explain(sub, paper, user=user)
    click.echo("\n".join(why_lines(item, sub)))


@main.command()
@click.option("--subscription", "-s", "sub_ref", help="Only this subscription (id or name).")
@click.pass_obj
@handle_errors
def ratings(state: State, sub_ref: str | None) -> None:
    """Every 👍/👎 recorded: subscription, user, paper, title, value and time."""
    engine = state.engine
    sub_id = resolve_subscription(engine, sub_ref).id if sub_ref else None
    rows = engine.store.ratings(sub_id)
    if not rows:
        click.echo("No ratings yet. Rate with `herald rate ID up|down` or 👍/👎 in a chat.")
        return
    table = Table(title=f"{len(rows)} rating{'s' if len(rows) != 1 else ''}")
    table.add_column("subscription", no_wrap=True)
    table.add_column("user", no_wrap=True)
    table.add_column("paper", no_wrap=True)
    table.add_column("title", overflow="ellipsis", no_wrap=True, max_width=48)
    table.add_column("value", justify="center", no_wrap=True)
    table.add_column("time (UTC)", no_wrap=True)
    for r in rows:
        label = r["name"] or f"{r['platform']}:{r['chat']}"
        thumb = "👍" if r["value"] > 0 else "👎"
        table.add_row(label, r["user"], r["paper_id"], r["title"] or "?", thumb, r["at"])
    console = Console()
    # Piped or captured output has no terminal width to fit: don't squeeze titles into 80.
    (console if console.is_terminal else Console(width=140)).print(table)


@main.command()
@click.argument("paper_id")
@click.option("--subscription", "-s", "sub_ref", help=_SUBSCRIPTION_HELP)
@click.option("--user", "-u", help="Explain from this person's view (shared channels).")
@click.pass_obj
@handle_errors
def why(state: State, paper_id: str, sub_ref: str | None, user: str | None) -> None:
    """Why a paper gets its score: keyword matches, the learned part from ratings, mutes."""
    engine = state.engine
    sub = resolve_subscription(engine, sub_ref)
    paper = engine.lookup(paper_id)
    item = engine.explain(sub, paper, user=user)
    click.echo("\n".join(why_lines(item, sub)))
