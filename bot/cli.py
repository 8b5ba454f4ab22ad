"""``herald``: the command line.  Library code raises typed errors; only this turns them into
exit codes and messages (never a traceback for a user's mistake)."""

from __future__ import annotations

import datetime as dt
import functools
import json
import logging
import signal
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import click
from rich.console import Console

from bot.config import Config, default_config_text
from bot.errors import ConfigError, HeraldError, SourceError, UserError
from bot.logs import setup_logging
from storage import StoreError

if TYPE_CHECKING:
    from bot.commands import Commands
    from bot.engine import Engine
    from bot.models import Digest
    from storage import Store

F = TypeVar("F", bound=Callable[..., Any])
log = logging.getLogger("herald")


class State:
    def __init__(self, config_path: str | None, verbose: int) -> None:
        self.config_path = config_path
        self.verbose = verbose
        self._config: Config | None = None
        self._engine: Engine | None = None

    @property
    def config(self) -> Config:
        if self._config is None:
            from bot.app import load_config

            self._config = load_config(self.config_path)
            level = "DEBUG" if self.verbose > 1 else "INFO" if self.verbose else None
            c = self._config
            setup_logging(level or c.logging.level, c.logging.format, secret_env=c.secret_envs())
        return self._config

    @property
    def engine(self) -> Engine:
        if self._engine is None:
            from bot.engine import Engine

            self._engine = Engine(self.config)
        return self._engine

    @property
    def commands(self) -> Commands:
        """The chat commands' verbs (rate, why, …), for the CLI's own versions of them."""
        from bot.commands import Commands

        return Commands(self.engine)


def handle_errors(fn: F) -> F:
    """Turn typed errors into messages and exit codes: 2 for config, 1 for the rest."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except ConfigError as exc:
            click.echo(f"Error: {exc}", err=True)
            sys.exit(2)
        except (UserError, SourceError) as exc:
            raise click.ClickException(str(exc)) from None
        except (HeraldError, StoreError) as exc:
            raise click.ClickException(str(exc)) from None

    return wrapper  # type: ignore[return-value]


def parse_day(value: str | None) -> dt.date | None:
    if value is None:
        return None
    try:
        return dt.date.fromisoformat(value)
    except ValueError:
        raise click.BadParameter(f"'{value}' is not a date; write it as YYYY-MM-DD") from None


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--config",
    "config_path",
    type=click.Path(dir_okay=False),
    envvar="HERALD_CONFIG",
    help="Configuration file (default: $HERALD_CONFIG, ./config.yaml, else the embedded default).",
)
@click.option("-v", "--verbose", count=True, help="More logging (-vv for debug).")
@click.version_option(package_name="arxiv-herald")
@click.pass_context
def main(ctx: click.Context, config_path: str | None, verbose: int) -> None:
    """arxiv-herald: each day's relevant new arXiv papers, scored, summarized and delivered."""
    ctx.obj = State(config_path, verbose)


@main.command()
@click.argument("path", type=click.Path(dir_okay=False), default="config.yaml")
@click.option("--force", is_flag=True, help="Overwrite an existing file.")
def init(path: str, force: bool) -> None:
    """Write a commented configuration file to PATH (default ./config.yaml)."""
    p = Path(path)
    if p.exists() and not force:
        raise click.ClickException(f"{p} already exists; use --force to overwrite it")
    p.write_text(default_config_text(), encoding="utf-8")
    click.echo(f"Wrote {p}. Edit it, then run `herald run --config {p}`.")


@main.command()
@click.pass_obj
@handle_errors
def check(state: State) -> None:
    """Validate the configuration and say what it would do."""
    c = state.config
    click.echo(f"{c.source}: OK")
    click.echo(f"  database:   {c.database_path}")
    click.echo(
        f"  categories: {', '.join(c.arxiv.categories)} ({', '.join(c.arxiv.announce_types)})"
    )
    click.echo(f"  keywords:   {len(c.scoring.keywords)} ({c.scoring.mode} mode)")
    for name, section in c.platforms().items():
        click.echo(f"  {name}:{' ' * (10 - len(name))}{'on' if section.enabled else 'off'}")


@main.command()
@click.pass_obj
@handle_errors
def fetch(state: State) -> None:
    """Fetch today's arXiv announcements for every followed category."""
    console = Console(stderr=True)
    with console.status("Fetching arXiv announcements…"):
        report = state.engine.fetch()
    click.echo(report.summary())
    if report.status == "error":
        sys.exit(1)


@main.command()
@click.option("--day", help="Announcement day, YYYY-MM-DD (default: the latest fetched).")
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["text", "markdown", "json"]),
    default="text",
    show_default=True,
)
@click.option("--out", type=click.Path(dir_okay=False), help="Write to a file instead of stdout.")
@click.option("--no-summaries", is_flag=True, help="Don't call the LLM for summaries.")
@click.pass_obj
@handle_errors
def digest(state: State, day: str | None, fmt: str, out: str | None, no_summaries: bool) -> None:
    """Show the ranked digest of an announcement day."""
    engine = state.engine
    d = engine.digest(parse_day(day))
    if not no_summaries:
        summarize_with_progress(engine, [d])
    _emit(state, d, fmt, out)


def summarize_with_progress(engine: Engine, digests: list[Digest]) -> None:
    """Fill summaries with a progress bar on stderr (hidden when nothing needs the LLM)."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeElapsedColumn

    with Progress(
        "[progress.description]{task.description}",
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=Console(stderr=True),
        transient=True,
    ) as bar:
        task = bar.add_task("Summarizing", total=None)

        def tick(done: int, total: int) -> None:
            bar.update(task, completed=done, total=total)

        engine.summarize_digests(digests, progress=tick)


def _emit(state: State, d: Digest, fmt: str, out: str | None) -> None:
    from bot.app import render

    text = render(d, fmt, state.config.summaries.top_n, out)
    if text is not None and out:
        Path(out).write_text(text, encoding="utf-8")
    if out:
        click.echo(f"Wrote {out}", err=True)
    elif text is not None:
        click.echo(text)


@main.command()
@click.option("--no-summaries", is_flag=True, help="Don't call the LLM for summaries.")
@click.pass_obj
@handle_errors
def run(state: State, no_summaries: bool) -> None:
    """Fetch, rank, summarize, then write every configured output and deliver to chats."""
    engine = state.engine
    console = Console(stderr=True)
    with console.status("Fetching arXiv announcements…"):
        report = engine.fetch()
    click.echo(report.summary(), err=True)
    if engine.latest_day() is None:
        raise click.ClickException(
            "nothing to show: no announcements have been fetched yet "
            f"({report.summary()}). Check arxiv.rss_url and your network, then run again."
        )
    from bot.app import deliver_chats, write_outputs

    d = engine.digest()
    if not no_summaries:
        summarize_with_progress(engine, [d])
    for line in write_outputs(engine, d):
        click.echo(line, err=True)
    cfg = state.config
    if cfg.enabled_platforms():
        reports = deliver_chats(cfg, engine)
        for r in reports:
            outcome = f"failed: {r.failed}" if r.failed else f"{r.sent} messages sent"
            click.echo(f"{r.subscription.label} {r.day}: {outcome}", err=True)
        if not reports:
            click.echo("chats: no digest due", err=True)


@main.command()
@click.argument("paper_id")
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text")
@click.pass_obj
@handle_errors
def lookup(state: State, paper_id: str, fmt: str) -> None:
    """Show a paper by any id form (2601.19278, arXiv:…, an abs/pdf URL, hep-th/9901001)."""
    paper = state.engine.lookup(paper_id)
    if fmt == "json":
        import dataclasses

        row = dataclasses.asdict(paper)
        click.echo(json.dumps(row, ensure_ascii=False, indent=2))
        return
    click.echo(f"{paper.title}\n{', '.join(paper.authors)}")
    click.echo(f"{paper.versioned_id} · {' '.join(paper.categories)} · {paper.url}")
    click.echo("")
    click.echo(paper.abstract)


@main.command()
@click.option("--host", help="Web app address (overrides web.host), e.g. 0.0.0.0 in a container.")
@click.option("--port", type=int, help="Web app port (overrides web.port).")
@click.pass_obj
@handle_errors
def serve(state: State, host: str | None, port: int | None) -> None:
    """Run the service: scheduler, Slack/Telegram (as configured) and the web app."""
    # First thing, before the slow imports and start-up: a SIGTERM from now on is a clean stop.
    stop_requested = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop_requested.set())
    from bot.app import serve as run_service

    cfg = state.config
    if host:
        cfg.web.host = host
    if port is not None:
        cfg.web.port = port
    chats = ", ".join(
        f"{name} {'on' if section.enabled else 'off'}" for name, section in cfg.platforms().items()
    )
    click.echo(f"herald serve: web on http://{cfg.web.host}:{cfg.web.port}, {chats}", err=True)
    run_service(cfg, stop_requested)


@main.command()
@click.pass_obj
@handle_errors
def status(state: State) -> None:
    """Last fetch, next scheduled runs, pending deliveries and deactivated chats."""
    from bot.scheduler import stored_next_runs

    store = state.engine.store
    last = store.last_fetch()
    ok = store.last_fetch("ok")
    if last:
        click.echo(
            f"last fetch:    {last.finished_at:%Y-%m-%d %H:%M:%S} UTC — {last.status}"
            + (f" (day {last.day}, {last.items} listings)" if last.day else "")
            + (f": {last.message}" if last.status == "error" else "")
        )
    else:
        click.echo("last fetch:    never (run `herald fetch`)")
    if ok and last and ok.id != last.id:
        click.echo(f"last good:     {ok.finished_at:%Y-%m-%d %H:%M:%S} UTC (day {ok.day})")
    click.echo(f"papers:        {store.count_papers():,}; latest day {store.latest_day() or '-'}")
    runs = stored_next_runs(store)
    if runs:
        click.echo("next runs:")
        for name, when in runs:
            click.echo(f"  {name:<32} {when:%Y-%m-%d %H:%M %Z}" if when else f"  {name:<32} paused")
    else:
        click.echo("next runs:     none scheduled yet (start `herald serve`)")
    subs = store.list_subscriptions(active_only=False)
    active = [s for s in subs if s.active]
    click.echo(f"subscriptions: {len(active)} active of {len(subs)}")
    click.echo(f"pending deliveries: {store.pending_delivery_count()}")
    for row in store.unfinished_deliveries():
        sub = store.subscription_by_id(row.subscription_id)
        label = sub.label if sub else row.subscription_id
        click.echo(f"  {label} {row.day}: {row.remaining} left ({row.ambiguous} in flight)")
    _print_profiles(state)
    dead = store.deactivated_subscriptions()
    if dead:
        click.echo("deactivated chats:")
        for s in dead:
            click.echo(f"  {s.label}: {s.deactivated_reason}")
    _installed_workspaces(store)


def _installed_workspaces(store: Store) -> None:
    """The workspaces apps were installed in through OAuth, and what became of each."""
    from bot.installations import Installations

    by_platform: dict[str, list[str]] = {}
    for inst in Installations(store).workspaces():
        name = inst.team_name or inst.enterprise_name
        label = f"{name} ({inst.workspace})" if name else inst.workspace
        if inst.live:
            installed = dt.datetime.fromtimestamp(inst.installed_at, dt.UTC)
            state = f"installed {installed:%Y-%m-%d %H:%M} UTC"
        else:
            when = inst.removed_at.replace("T", " ")[:16] + " UTC" if inst.removed_at else "?"
            state = f"removed {when}: {inst.removed_reason or 'its tokens were revoked'}"
        by_platform.setdefault(inst.platform, []).append(f"  {label}: {state}")
    for platform, lines in by_platform.items():
        click.echo(f"installed workspaces ({platform}):")
        for line in lines:
            click.echo(line)


@main.command()
@click.argument("paper_id")
@click.option("--lang", help="Summary language (default: summaries.language), e.g. en, zh.")
@click.option("--source", type=click.Choice(["abstract", "fulltext"]), help="What to summarize.")
@click.option("--fresh", is_flag=True, help="Ignore the cache and ask the LLM again.")
@click.pass_obj
@handle_errors
def summarize(
    state: State, paper_id: str, lang: str | None, source: str | None, fresh: bool
) -> None:
    """Summarize one paper (any id form) with the configured LLM; cached after the first time."""
    from bot.cards import summary_marker
    from bot.models import SUMMARY_PRESENT

    engine = state.engine
    with Console(stderr=True).status("Summarizing…"):
        paper, outcome = engine.summarize(paper_id, language=lang, source=source, fresh=fresh)
    click.echo(f"{paper.title}\n{paper.versioned_id} · {paper.url}\n")
    if outcome.status in SUMMARY_PRESENT and outcome.text:
        click.echo(outcome.text)
        tag = "from cache" if outcome.status == "cached" else "fresh"
        click.echo(f"\n({outcome.model}, {tag})", err=True)
    from bot.models import ScoredPaper

    item = ScoredPaper(paper, 0.0, summary=outcome.text, summary_status=outcome.status)
    item.summary_note = outcome.note
    marker = summary_marker(item)
    if marker:
        click.echo(f"⚠ {marker}", err=True)
    if outcome.status not in SUMMARY_PRESENT:
        sys.exit(1)


@main.command()
@click.argument("paper_id")
@click.argument("question", nargs=-1, required=True)
@click.pass_obj
@handle_errors
def ask(state: State, paper_id: str, question: tuple[str, ...]) -> None:
    """Ask a paper (any id form) a QUESTION, answered from its full text with page numbers."""
    from bot.ask import Question, answer_text

    q = Question("cli", None, "cli", paper_id, " ".join(question))
    with Console(stderr=True).status("Reading the paper…"):
        answer = state.engine.asker.ask(q)
    click.echo(answer_text(answer))
    tag = "from cache" if answer.cached else "fresh"
    click.echo(f"\n({answer.model}, {tag})", err=True)


@main.command()
@click.option("--days", default=7, show_default=True, help="How many days back.")
@click.pass_obj
@handle_errors
def usage(state: State, days: int) -> None:
    """LLM calls, tokens and cost per day (and the daily budget)."""
    from rich.table import Table

    engine = state.engine
    since = dt.datetime.now(dt.UTC).date() - dt.timedelta(days=days - 1)
    rows = engine.store.usage_by_day(since)
    table = Table(title=f"LLM usage since {since}")
    for col in ("day", "model", "calls", "failed", "tokens in", "tokens out", "cost"):
        table.add_column(col, justify="right" if col not in ("day", "model") else "left")
    tot = [0, 0, 0, 0, 0.0]
    for r in rows:
        failed = r.calls - r.ok_calls
        table.add_row(
            r.day,
            r.model,
            str(r.calls),
            str(failed),
            f"{r.tokens_in:,}",
            f"{r.tokens_out:,}",
            f"{r.cost:.4f}",
        )
        for i, v in enumerate((r.calls, failed, r.tokens_in, r.tokens_out, r.cost)):
            tot[i] += v
    table.add_row(
        "total",
        "",
        str(tot[0]),
        str(tot[1]),
        f"{tot[2]:,}",
        f"{tot[3]:,}",
        f"{tot[4]:.4f}",
        style="bold",
    )
    Console().print(table)
    budget = state.config.summaries.daily_budget
    if budget:
        spent = engine.summarizer.budget.spent()
        click.echo(
            f"daily budget: {budget.tokens or '∞'} tokens, {budget.money or '∞'} money"
            + (f" — spent today ({spent})" if spent else "")
        )


# -- ratings and explanations without a chat (the same verbs as the chat buttons) --------------
_SUBSCRIPTION_HELP = (
    "Subscription id, name or platform:chat (default: the config file's own subscription)."
)
_VOTES = {"up": 1, "down": -1}


@main.command()
@click.argument("paper_id")
@click.argument("vote", type=click.Choice(sorted(_VOTES), case_sensitive=False))
@click.option("--subscription", "-s", "sub_ref", help=_SUBSCRIPTION_HELP)
@click.option("--user", "-u", default="cli", show_default=True, help="Who rates.")
@click.pass_obj
@handle_errors
def rate(state: State, paper_id: str, vote: str, sub_ref: str | None, user: str) -> None:
    """Rate a paper 👍 (up) or 👎 (down); the next ranking takes it into account."""
    commands = state.commands
    sub = commands.resolve_subscription(sub_ref)
    paper = state.engine.lookup(paper_id)
    outcome = commands.rate(sub, user, paper, _VOTES[vote.lower()])
    verbs = {"new": "Rated", "same": "Already rated", "flipped": "Changed the rating to"}
    verb = f"{verbs[outcome.kind]} {outcome.thumb}"
    click.echo(f"{verb}: {paper.title} ({paper.id}) for {sub.label}, as {user}.")
    click.echo("\n".join(commands.why(sub, paper, user, label=True)[1]))


@main.command()
@click.option("--subscription", "-s", "sub_ref", help="Only this subscription (id or name).")
@click.pass_obj
@handle_errors
def ratings(state: State, sub_ref: str | None) -> None:
    """Every 👍/👎 recorded: subscription, user, paper, title, value and time."""
    from rich.table import Table

    sub_id = state.commands.resolve_subscription(sub_ref).id if sub_ref else None
    rows = state.engine.store.ratings(sub_id)
    if not rows:
        click.echo("No ratings yet. Rate with `herald rate ID up|down` or 👍/👎 in a chat.")
        return
    table = Table(title=f"{len(rows)} rating{'s' if len(rows) != 1 else ''}")
    table.add_column("subscription", no_wrap=True)
    table.add_column("user", no_wrap=True)
    table.add_column("paper", no_wrap=True)
    table.add_column("title", overflow="ellipsis", no_wrap=True, max_width=48)
    table.add_column("value", justify="center", no_wrap=True)
    table.add_column("how", no_wrap=True)
    table.add_column("time (UTC)", no_wrap=True)
    for r in rows:
        thumb = "👍" if r.value > 0 else "👎"
        table.add_row(r.subscription, r.user, r.paper_id, r.title or "?", thumb, r.source, r.at)
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
    commands = state.commands
    sub = commands.resolve_subscription(sub_ref)
    paper = state.engine.lookup(paper_id)
    click.echo("\n".join(commands.why(sub, paper, user, label=True)[1]))


PROFILES_SHOWN = 20


def _print_profiles(state: State) -> None:
    """``herald status``: the profile of the default subscription and of every chat that has
    one (likes, imports, followed authors, the learned share of the latest digest)."""
    engine = state.engine
    store = engine.store
    profile = state.commands.profile
    subs = engine.active_subscriptions()
    shown = [
        s
        for s in subs
        if s.id is not None
        and (s.platform == "default" or store.rating_sources(s.id) or store.follows(s.id))
    ]
    # Each profile ranks the latest day once (its learned share): a few, not thousands.
    for sub in shown[:PROFILES_SHOWN]:
        click.echo(f"profile of {sub.label}:")
        for line in profile.status_lines(sub):
            click.echo(f"  {line}")
    if len(shown) > PROFILES_SHOWN:
        click.echo(f"  … and {len(shown) - PROFILES_SHOWN} more chats with a profile")


# -- seeding a profile: likes, library imports, followed authors --------------------------------
@main.command()
@click.argument("paper_ids", nargs=-1, required=True)
@click.option("--subscription", "-s", "sub_ref", help=_SUBSCRIPTION_HELP)
@click.option("--user", "-u", default="cli", show_default=True, help="Who likes them.")
@click.pass_obj
@handle_errors
def like(state: State, paper_ids: tuple[str, ...], sub_ref: str | None, user: str) -> None:
    """Like papers (any id form, up to 50): they count as 👍 and are never sent as new."""
    commands = state.commands
    sub = commands.resolve_subscription(sub_ref)
    report = commands.profile.like(sub, user, paper_ids)
    click.echo(report.text())
    if not (report.liked or report.already):
        sys.exit(1)


@main.command("import")
@click.argument("path", type=click.Path(dir_okay=False))
@click.option("--subscription", "-s", "sub_ref", help=_SUBSCRIPTION_HELP)
@click.option("--user", "-u", default="cli", show_default=True, help="Whose 👍 they become.")
@click.pass_obj
@handle_errors
def import_(state: State, path: str, sub_ref: str | None, user: str) -> None:
    """Import a library (BibTeX .bib, RIS .ris or CSL .json from Zotero, Mendeley, …) as 👍."""
    commands = state.commands
    p = Path(path)
    try:
        refused = commands.library_refusal(p.name, p.stat().st_size)
        if refused is not None:  # by its name and size, before reading it
            raise click.ClickException(refused.text)
        data = p.read_bytes()
    except OSError as exc:
        raise click.ClickException(f"cannot read {path}: {exc.strerror or exc}") from None
    sub = commands.resolve_subscription(sub_ref)
    with Console(stderr=True).status("Importing (one arXiv request every 3 s)…"):
        report = commands.profile.import_library(sub, user, p.name, data)
    click.echo(report.text())


@main.command()
@click.argument("names", nargs=-1)
@click.option("--subscription", "-s", "sub_ref", help=_SUBSCRIPTION_HELP)
@click.pass_obj
@handle_errors
def follow(state: State, names: tuple[str, ...], sub_ref: str | None) -> None:
    """Follow authors ("Yoshua Bengio", "Bengio, Yoshua", "Y. Bengio"): their new papers
    always make the digest.  No names: list the followed authors."""
    commands = state.commands
    sub = commands.resolve_subscription(sub_ref)
    if not names:
        followed = commands.profile.following(sub)
        click.echo("\n".join(followed) if followed else f"{sub.label} follows no authors.")
        return
    click.echo(commands.profile.follow(sub, "cli", names))


@main.command()
@click.argument("names", nargs=-1, required=True)
@click.option("--subscription", "-s", "sub_ref", help=_SUBSCRIPTION_HELP)
@click.pass_obj
@handle_errors
def unfollow(state: State, names: tuple[str, ...], sub_ref: str | None) -> None:
    """Stop following authors (or: all)."""
    commands = state.commands
    sub = commands.resolve_subscription(sub_ref)
    click.echo(commands.profile.unfollow(sub, names))
