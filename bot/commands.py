"""Chat commands: a plain :class:`Command` in, a :class:`Reply` out.  Adapters send it.

Two error tiers (like errbot): a :class:`UserError` becomes a polite reply that says what was
wrong and how to fix it; anything else is logged with its traceback and the person gets a
short generic message.
"""

from __future__ import annotations

import datetime as dt
import logging
import re
import shlex
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any, TypeVar

from bot import __version__
from bot.ask import Question, answer_text
from bot.cards import card_for
from bot.categories import EXAMPLES, normalize_categories
from bot.config import check_time, check_timezone
from bot.errors import CommandError, HeraldError, UserError
from bot.ids import USAGE as ID_USAGE
from bot.library import LibraryError, refusal
from bot.models import (
    LAYOUTS,
    Command,
    Paper,
    Rating,
    Reply,
    ScoredPaper,
    Subscription,
    SummaryStatus,
    short_authors,
)
from bot.profile import MAX_LIKES, Profile
from bot.scoring import check_keyword, normalize, parse_keywords

if TYPE_CHECKING:
    from bot.engine import Engine

log = logging.getLogger(__name__)

MAX_KEYWORDS = 200
MAX_ARG_CHARS = 2000
_LANG = re.compile(r"^[a-z]{2,3}(-[A-Za-z]{2,4})?$", re.ASCII)
SETTINGS_USAGE = (
    "[time HH:MM] [tz Area/City] [max N] [min S] [lang L] [cross on|off] [layout thread|compact]"
)
F = TypeVar("F", bound=Callable[..., Any])

ASK_EXAMPLE = "2601.19278 which datasets do they evaluate on?"
GENERIC_ERROR = "Sorry, something went wrong on my side. It has been logged; please try again."


@dataclass(frozen=True, slots=True)
class CommandSpec:
    """Everything a surface needs to know about one command, declared once on its handler.

    Help, the Telegram menu, Slack's acknowledgement text and the permission check all derive
    from these; an adapter never lists commands itself.
    """

    name: str
    method: str
    help: str  # one line: what it does
    usage: str = ""  # its arguments, e.g. "cs.LG cs.CL"
    menu: str = ""  # the short description of a platform's command menu (default: help)
    aliases: tuple[str, ...] = ()
    #: Network or LLM work: acknowledged at once with ``working``, answered when done, and
    #: never holding up the chat's other commands.
    slow: bool = False
    #: May change the chat's subscription: in shared chats only admins (or members, on Slack)
    #: may, so adapters find out who is asking before running it.
    changes: bool = False
    working: str | None = None  # "⏳ Summarizing {arg} …"; {arg}: the first argument
    listed: bool = True  # shown in help and menus

    @property
    def menu_text(self) -> str:
        return self.menu or self.help


class Registry:
    """The commands, by name and alias, in declaration order."""

    def __init__(self) -> None:
        self._specs: list[CommandSpec] = []
        self._by_name: dict[str, CommandSpec] = {}

    def command(self, name: str, help: str, **meta: Any) -> Callable[[F], F]:
        """Declare the decorated ``Commands`` method as the handler of ``/name``."""

        def register(fn: F) -> F:
            spec = CommandSpec(name=name, method=fn.__name__, help=help, **meta)
            for key in (spec.name, *spec.aliases):
                if key in self._by_name:
                    raise ValueError(f"command name {key!r} is declared twice")
                self._by_name[key] = spec
            self._specs.append(spec)
            return fn

        return register

    def get(self, name: str) -> CommandSpec | None:
        return self._by_name.get(name.lower())

    def listed(self) -> list[CommandSpec]:
        return [s for s in self._specs if s.listed]

    def names(self) -> list[str]:
        """Every name and alias (what a platform's command handler should answer to)."""
        return list(self._by_name)

    def menu(self) -> list[tuple[str, str]]:
        """(name, description) for a platform's command menu."""
        return [(s.name, s.menu_text) for s in self.listed()]

    def working_text(self, cmd: Command) -> str | None:
        """The acknowledgement a slow command shows while it runs (None: quick command)."""
        spec = self.get(cmd.name)
        if spec is None or not spec.slow:
            return None
        template = spec.working or "⏳ Working on it …"
        if "{arg}" not in template:
            return template
        # "{arg}" promises one paper: anything else is a usage error, answered at once.
        return template.format(arg=cmd.args[0][:100]) if len(cmd.args) == 1 else None

    def needs_admin_check(self, cmd: Command) -> bool:
        spec = self.get(cmd.name)
        return spec is not None and spec.changes and cmd.is_group


COMMANDS = Registry()


_NUMBER = re.compile(r"^[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)$")


def number(value: str, name: str, low: float, high: float, *, whole: bool = False) -> float:
    """A setting's number: plain ASCII digits, finite, within [low, high]; ValueError else."""
    text = value.strip()
    shown = text if len(text) <= 20 else text[:19] + "…"
    if not _NUMBER.match(text) or (whole and "." in text):
        kind = "a whole number" if whole else "a number"
        raise ValueError(f"'{shown}' is not {kind}")
    n = float(text)
    if not low <= n <= high:
        raise ValueError(f"{name} must be between {low:g} and {high:g}")
    return n


def prefix(platform: str, name: str) -> str:
    """How a person types a subcommand on this platform."""
    if platform == "slack" and name != "summarize":
        return f"/arxiv {name}"
    return f"/{name}"


def split_command(text: str) -> tuple[str, str]:
    """``'/keywords add "speculative decoding"'`` -> ``('keywords', 'add "speculative decoding"')``.

    Accepts a leading slash or none, and Telegram's ``/cmd@botname`` form.
    """
    text = (text or "").strip()
    if not text:
        return "", ""
    head, _, rest = text.partition(" ")
    name = head.lstrip("/").split("@", 1)[0].lower()
    return name, rest.strip()


def tokenize(rest: str) -> tuple[str, ...]:
    try:
        return tuple(shlex.split(rest))
    except ValueError:
        return tuple(rest.split())


def make_command(
    platform: str,
    chat: str,
    user: str,
    text: str,
    *,
    is_admin: bool = False,
    is_group: bool = False,
) -> Command:
    name, rest = split_command(text)
    return Command(
        platform=platform,
        chat=chat,
        user=user,
        name=name,
        args=tokenize(rest),
        is_admin=is_admin,
        is_group=is_group,
        raw=rest,
    )


def help_text(platform: str) -> str:
    lines = [
        "arxiv-herald posts each announcement day's relevant new arXiv papers here, ranked "
        "by your keywords and your 👍/👎.",
        "",
    ]
    for spec in COMMANDS.listed():
        usage = f" {spec.usage}" if spec.usage else ""
        lines.append(f"{prefix(platform, spec.name)}{usage} — {spec.help}")
    return "\n".join(lines)


class Commands:
    """Handles commands and ratings for every platform (and the CLI's rating verbs)."""

    def __init__(
        self,
        engine: Engine,
        *,
        on_change: Callable[[Subscription], None] | None = None,
        next_run: Callable[[Subscription], dt.datetime | None] | None = None,
        base_url: str | None = None,
    ) -> None:
        self.engine = engine
        self.on_change = on_change
        self.next_run = next_run
        self.base_url = base_url
        self.profile = Profile(engine)

    # -- entry points ------------------------------------------------------------------------
    def handle(self, cmd: Command) -> Reply:
        try:
            if len(cmd.raw) > MAX_ARG_CHARS:
                raise CommandError(
                    f"That is {len(cmd.raw):,} characters; commands take at most "
                    f"{MAX_ARG_CHARS:,}. Split it into several commands."
                )
            spec = COMMANDS.get(cmd.name) if cmd.name else None
            if spec is None:
                shown = cmd.name if len(cmd.name) <= 30 else cmd.name[:29] + "…"
                raise CommandError(
                    f"I don't know the command '{shown}'.\n\n{help_text(cmd.platform)}"
                )
            reply: Reply = getattr(self, spec.method)(cmd)
            return reply
        except UserError as exc:
            return Reply(text=str(exc), ephemeral=True, error=True)
        except HeraldError as exc:
            log.warning("command %s failed: %s", cmd.name, exc)
            return Reply(text=f"Sorry, that did not work: {exc}", ephemeral=True, error=True)
        except Exception:
            log.exception("command %r from %s:%s failed", cmd.name, cmd.platform, cmd.chat)
            return Reply(text=GENERIC_ERROR, ephemeral=True, error=True)

    def handle_rating(
        self, platform: str, chat: str, user: str, paper_id: str, value: int
    ) -> Reply:
        """A 👍/👎 press in a chat: record it (same again is a no-op, the other flips it)."""
        try:
            sub = self._sub(platform, chat)
            paper = self.engine.store.get_paper(paper_id)
            if paper is None:
                raise CommandError(f"I don't know the paper {paper_id}.")
            outcome = self.rate(sub, user, paper, value)
            text = {
                "new": f"Thanks — rated {outcome.thumb}. Tomorrow's ranking takes it into account.",
                "same": f"You already rated this {outcome.thumb}.",
                "flipped": f"Changed your rating to {outcome.thumb}.",
            }[outcome.kind]
            return Reply(
                text=text,
                ephemeral=True,
                data={
                    "up": outcome.up,
                    "down": outcome.down,
                    "vote": outcome.value,
                    "changed": outcome.changed,
                },
            )
        except UserError as exc:
            return Reply(text=str(exc), ephemeral=True, error=True)
        except Exception:
            log.exception("rating from %s:%s failed", platform, chat)
            return Reply(text=GENERIC_ERROR, ephemeral=True, error=True)

    def library_refusal(self, filename: str, size: int | None) -> Reply | None:
        """A file offered for import that is refused before download (wrong type, too big)."""
        why = refusal(filename, size)
        return Reply(text=why, ephemeral=True, error=True) if why else None

    def import_library(
        self, platform: str, chat: str, user: str, filename: str, data: bytes
    ) -> Reply:
        """A library file (BibTeX, RIS, CSL JSON) sent to a chat: its papers become ``user``'s
        👍, and the reply says what was imported and what was skipped, and why."""
        try:
            sub = self._sub(platform, chat)
            report = self.profile.import_library(sub, user, filename, data)
            return Reply(text=report.text(), data={"imported": len(report.imported)})
        except LibraryError as exc:
            return Reply(text=str(exc), ephemeral=True, error=True)
        except UserError as exc:
            return Reply(text=str(exc), ephemeral=True, error=True)
        except HeraldError as exc:
            log.warning("library import in %s:%s failed: %s", platform, chat, exc)
            return Reply(text=f"Sorry, that did not work: {exc}", ephemeral=True, error=True)
        except Exception:
            log.exception("library import from %s:%s failed", platform, chat)
            return Reply(text=GENERIC_ERROR, ephemeral=True, error=True)

    # -- verbs shared with the CLI ------------------------------------------------------------
    def rate(self, sub: Subscription, user: str, paper: Paper, value: int) -> RatingOutcome:
        """Record ``user``'s 👍 (+1) or 👎 (-1) of ``paper`` for ``sub``; the next ranking
        takes it into account at once."""
        if value not in (1, -1):
            raise CommandError("A rating is 👍 or 👎.")
        assert sub.id is not None
        prev, new = self.engine.store.record_rating(Rating(sub.id, user, paper.id, value))
        self.engine.rating_changed(sub)
        up, down = self.engine.store.tally(sub.id, paper.id)
        return RatingOutcome(prev, new, up, down)

    def why(
        self, sub: Subscription, paper: Paper, user: str | None = None, *, label: bool = False
    ) -> tuple[ScoredPaper, list[str]]:
        """A paper's score for ``sub`` and every reason behind it, one line each (``label``:
        name the subscription, for the CLI)."""
        item = self.engine.explain(sub, paper, user=user)
        whose = f" for {sub.label}" if label else ""
        lines = [f"{paper.title} ({paper.versioned_id}): score {item.score:+.1f}{whose}"]
        lines += [f"• {r.text}" for r in item.reasons] or ["• no keyword matched"]
        followed = any(r.kind == "follow" for r in item.reasons)
        if item.score < sub.min_score and not followed:
            lines.append(f"(below the min score {sub.min_score:g}, so not in the digest)")
        lines += self.profile.learned_lines(sub)
        return item, lines

    def resolve_subscription(self, ref: str | None) -> Subscription:
        """A subscription by id, name or ``platform:chat``; None gives the config's own."""
        engine = self.engine
        if ref is None:
            return engine.default_subscription()
        ref = ref.strip()
        if ref.isdigit():
            sub = engine.store.subscription_by_id(int(ref))
            if sub is not None:
                return sub
        subs = [engine.default_subscription()]
        subs += [
            s for s in engine.store.list_subscriptions(active_only=False) if s.platform != "default"
        ]
        for s in subs:
            if ref in (s.name, s.label, f"{s.platform}:{s.chat}"):
                return s
        known = ", ".join(f"{s.id} ({s.label})" for s in subs)
        raise UserError(f"No subscription '{ref[:60]}'. Known subscriptions: {known}.")

    # -- helpers -----------------------------------------------------------------------------
    def _sub(self, platform: str, chat: str) -> Subscription:
        sub = self.engine.store.get_subscription(platform, chat)
        if sub is None or not sub.active:
            raise CommandError(
                "This chat is not subscribed yet. Start with "
                f"{prefix(platform, 'subscribe')} cs.LG (any arXiv categories)."
            )
        return sub

    def _allowed(self, cmd: Command) -> None:
        """Every change to a chat's subscription passes here: in a shared chat only its admins
        may (the adapter found out, because the command is declared ``changes``)."""
        if cmd.is_group and not cmd.is_admin:
            spec = COMMANDS.get(cmd.name)
            what = spec.help if spec is not None else "change this chat's settings"
            raise CommandError(
                f"Only this chat's admins can {what.split(' (')[0]}. Ask one of them, or use me "
                "in a private chat for your own digest."
            )

    def _save(self, cmd: Command, sub: Subscription, **fields: object) -> Subscription:
        self._allowed(cmd)
        assert sub.id is not None
        new = self.engine.store.update_subscription(sub.id, **fields)
        if self.on_change:
            self.on_change(new)
        return new

    def _usage(self, cmd: Command, text: str) -> CommandError:
        return CommandError(f"Usage: {prefix(cmd.platform, cmd.name)} {text}")

    def describe(self, sub: Subscription) -> str:
        kws = ", ".join(sub.keywords[:15]) + (" …" if len(sub.keywords) > 15 else "")
        lines = [
            f"Categories: {', '.join(sub.categories)} ({', '.join(sub.announce_types)})",
            f"Keywords ({len(sub.keywords)}): {kws or '(none: everything ranks equal)'}",
        ]
        if sub.excludes:
            lines.append(f"Excluded: {', '.join(sub.excludes)}")
        if sub.muted:
            lines.append(f"Muted topics: {', '.join(sub.muted)}")
        lines.append(
            f"Digest at {sub.time} {sub.timezone} · up to {sub.max_papers} papers · "
            f"min score {sub.min_score:g} · summaries in "
            f"{sub.language or self.engine.config.summaries.language} · "
            f"{sub.layout or self.engine.config.layout_for(sub.platform)} layout"
        )
        return "\n".join(lines)

    def feed_url(self, sub: Subscription) -> str:
        web = self.engine.config.web
        base = self.base_url or web.public_url or f"http://{web.host}:{web.port}"
        return f"{base.rstrip('/')}/feeds/s/{sub.feed_token}.xml"

    # -- commands ----------------------------------------------------------------------------
    @COMMANDS.command("start", "what this bot does and how to begin")
    def cmd_start(self, cmd: Command) -> Reply:
        sub = self.engine.store.get_subscription(cmd.platform, cmd.chat)
        intro = (
            "Hi! I bring each arXiv announcement day's relevant new papers to this chat, "
            "ranked by your keywords and your 👍/👎, with short LLM summaries.\n\n"
        )
        if sub is None or not sub.active:
            intro += (
                f"To begin: {prefix(cmd.platform, 'subscribe')} cs.LG cs.CL (any arXiv "
                f"categories, e.g. {EXAMPLES}), then "
                f'{prefix(cmd.platform, "keywords")} add "speculative decoding".\n\n'
            )
        else:
            intro += "You are subscribed:\n" + self.describe(sub) + "\n\n"
        return Reply(text=intro + help_text(cmd.platform))

    @COMMANDS.command(
        "subscribe",
        "follow categories (no argument: the defaults)",
        usage="cs.LG cs.CL",
        menu="Follow arXiv categories, e.g. /subscribe cs.LG cs.CL",
        changes=True,
    )
    def cmd_subscribe(self, cmd: Command) -> Reply:
        cfg = self.engine.config
        cats = normalize_categories(list(cmd.args)) if cmd.args else tuple(cfg.arxiv.categories)
        if len(cats) > 20:
            raise CommandError("Follow at most 20 categories per chat.")
        store = self.engine.store
        old = store.get_subscription(cmd.platform, cmd.chat)
        if old is not None:
            sub = self._save(cmd, old, categories=cats, active=True, deactivated_reason=None)
            verb = "Updated" if old.active else "Welcome back! Resumed"
            return Reply(text=f"{verb} this chat's subscription.\n{self.describe(sub)}")
        self._allowed(cmd)
        base = cfg.default_subscription()
        sub = store.upsert_subscription(
            replace(
                base,
                id=None,
                platform=cmd.platform,
                chat=cmd.chat,
                name="",
                categories=cats,
                feed_token="",
                muted=(),
            )
        )
        if self.on_change:
            self.on_change(sub)
        kw = (
            f"Starting with the default keywords ({len(sub.keywords)}); change them with "
            f"{prefix(cmd.platform, 'keywords')} add|remove."
        )
        return Reply(
            text=f"Subscribed to {', '.join(cats)}.\n{self.describe(sub)}\n{kw}\n"
            f"Your first digest arrives at {sub.time} {sub.timezone} on the next announcement "
            f"day; {prefix(cmd.platform, 'digest')} shows today's now."
        )

    @COMMANDS.command(
        "unsubscribe", "stop the daily digest", menu="Stop the daily digest here", changes=True
    )
    def cmd_unsubscribe(self, cmd: Command) -> Reply:
        sub = self._sub(cmd.platform, cmd.chat)
        self._save(cmd, sub, active=False, deactivated_reason="unsubscribed")
        return Reply(
            text="Unsubscribed: no more daily digests here. Your settings and ratings are "
            f"kept; {prefix(cmd.platform, 'subscribe')} resumes."
        )

    def _word_list(self, cmd: Command, field: str, label: str) -> Reply:
        sub = self._sub(cmd.platform, cmd.chat)
        current: tuple[str, ...] = getattr(sub, field)
        action, _, rest = cmd.raw.strip().partition(" ")
        action = action.lower()
        usage = 'add|remove|list <words or "a phrase">'
        if action in ("", "list", "show"):
            shown = "\n".join(f"• {k}" for k in current) or "(none)"
            return Reply(text=f"{label} ({len(current)}):\n{shown}", ephemeral=True)
        if action not in ("add", "remove", "rm", "del", "delete", "clear"):
            raise self._usage(cmd, usage)
        self._allowed(cmd)
        if action == "clear":
            self._save(cmd, sub, **{field: ()})
            return Reply(text=f"Cleared all {label.lower()}.")
        words = [check_keyword(w) for w in parse_keywords(rest)]
        if not words:
            raise self._usage(cmd, usage)
        norm = {normalize(k): k for k in current}
        if action == "add":
            added = [w for w in words if normalize(w) not in norm]
            new = current + tuple(dict.fromkeys(added))
            if len(new) > MAX_KEYWORDS:
                raise CommandError(f"At most {MAX_KEYWORDS} {label.lower()} per chat.")
            self._save(cmd, sub, **{field: new})
            dup = [w for w in words if w not in added]
            text = f"Added: {', '.join(added)}." if added else "Nothing new to add."
            if dup:
                text += f" Already there: {', '.join(dup)}."
            return Reply(text=text + f" Now {len(new)} {label.lower()}.")
        gone = {normalize(w) for w in words}
        kept = tuple(k for k in current if normalize(k) not in gone)
        missing = [w for w in words if normalize(w) not in norm]
        self._save(cmd, sub, **{field: kept})
        text = f"Removed {len(current) - len(kept)}."
        if missing:
            text += f" Not in the list: {', '.join(missing)}."
        return Reply(text=text + f" Now {len(kept)} {label.lower()}.")

    @COMMANDS.command(
        "keywords",
        "change the keywords that rank papers",
        usage='add|remove|list <words or "a phrase">',
        menu="add | remove | list the keywords that rank papers",
        aliases=("keyword",),
        changes=True,
    )
    def cmd_keywords(self, cmd: Command) -> Reply:
        return self._word_list(cmd, "keywords", "Keywords")

    @COMMANDS.command(
        "exclude",
        "change the words that drop papers mentioning them",
        usage="add|remove|list <words>",
        menu="add | remove | list words that drop papers",
        aliases=("excludes",),
        changes=True,
    )
    def cmd_exclude(self, cmd: Command) -> Reply:
        return self._word_list(cmd, "excludes", "Excluded keywords")

    @COMMANDS.command(
        "settings",
        "change settings (no argument: show them)",
        usage=SETTINGS_USAGE,
        menu="time HH:MM · tz Area/City · max N · lang L · cross on|off · layout",
        changes=True,
    )
    def cmd_settings(self, cmd: Command) -> Reply:
        sub = self._sub(cmd.platform, cmd.chat)
        args = list(cmd.args)
        if not args:
            return Reply(text=self.describe(sub), ephemeral=True)
        self._allowed(cmd)
        if len(args) % 2:
            raise self._usage(cmd, SETTINGS_USAGE + f"\n'{args[-1][:30]}' needs a value.")
        changes: dict[str, object] = {}
        types = list(sub.announce_types)
        for key, value in zip(args[::2], args[1::2], strict=True):
            key = key.lower()
            try:
                if key == "time":
                    changes["time"] = check_time(value)
                elif key in ("tz", "timezone"):
                    changes["timezone"] = check_timezone(value)
                elif key == "max":
                    changes["max_papers"] = int(number(value, "max", 1, 100, whole=True))
                elif key == "min":
                    changes["min_score"] = number(value, "min", -100, 100)
                elif key in ("lang", "language"):
                    if not _LANG.match(value):
                        raise ValueError(
                            f"'{value[:20]}' is not a language code; use e.g. en, zh, de"
                        )
                    changes["language"] = value.lower()
                elif key == "layout":
                    if value.lower() not in LAYOUTS:
                        raise ValueError(
                            "layout takes thread (a message per paper) or compact (one message)"
                        )
                    changes["layout"] = value.lower()
                elif key == "cross":
                    if value.lower() not in ("on", "off"):
                        raise ValueError("cross takes on or off")
                    on = value.lower() == "on"
                    types = [t for t in types if t != "cross"] + (["cross"] if on else [])
                    changes["announce_types"] = tuple(types)
                else:
                    raise CommandError(
                        f"Unknown setting '{key[:30]}'. Usage: "
                        f"{prefix(cmd.platform, 'settings')} {SETTINGS_USAGE}"
                    )
            except ValueError as exc:
                raise CommandError(f"{key}: {exc}.") from None
        sub = self._save(cmd, sub, **changes)
        return Reply(text="Saved.\n" + self.describe(sub))

    @COMMANDS.command(
        "digest",
        "today's digest now",
        menu="Today's digest, now",
        slow=True,
        working="⏳ Putting today's digest together …",
    )
    def cmd_digest(self, cmd: Command) -> Reply:
        sub = self._sub(cmd.platform, cmd.chat)
        engine = self.engine
        if engine.latest_day() is None:
            engine.fetch()
        day = engine.latest_day()
        if day is None:
            raise CommandError("arXiv has not been fetched yet and could not be reached now.")
        digest = engine.digests([sub], day)[0]
        if not digest.items:
            return Reply(
                text=f"No new papers matched on {day:%a %d %b} "
                f"({digest.total_candidates} candidates). Try adding keywords."
            )
        engine.summarize_digests([digest])
        return Reply(text=f"Today's digest: {len(digest.items)} papers.", digest=digest)

    @COMMANDS.command(
        "summarize",
        "an LLM summary of any paper",
        usage="<arXiv id or URL>",
        menu="Summarize any paper: /summarize 2601.19278",
        aliases=("summary",),
        slow=True,
        working="⏳ Summarizing {arg} …",
    )
    def cmd_summarize(self, cmd: Command) -> Reply:
        if not cmd.args:
            raise self._usage(cmd, f"<arXiv id or URL>\n{ID_USAGE}")
        if len(cmd.args) > 1:
            raise CommandError(f"One paper at a time, please. {ID_USAGE}")
        sub = self.engine.store.get_subscription(cmd.platform, cmd.chat)
        paper, outcome = self.engine.summarize(cmd.args[0], sub=sub)
        rated = sub is not None and sub.active and sub.id is not None
        if rated:
            assert sub is not None and sub.id is not None
            item = self.engine.explain(sub, paper)
            tally = self.engine.store.tally(sub.id, paper.id)
        else:
            item = ScoredPaper(paper=paper, score=0.0, category=paper.primary_category)
            tally = (0, 0)
        item.summary, item.summary_status = outcome.text, outcome.status
        item.summary_note, item.summary_model = outcome.note, outcome.model
        head = f"{paper.title} ({paper.versioned_id})"
        if outcome.status == SummaryStatus.DISABLED:
            abstract = " ".join(paper.abstract.split())
            text = (
                f"{head}\n{paper.url}\n\nSummaries are turned off for this bot "
                f"(summaries.enabled in its config). The abstract:\n{abstract}"
            )
        else:
            text = f"{head}\n{short_authors(paper.authors)}\n{paper.url}"
            if outcome.text:
                text += "\n\n" + outcome.text
        card = card_for(
            item,
            top_n=self.engine.config.summaries.top_n,
            show_score=rated,
            buttons=rated,
            tally=tally,
        )
        return Reply(text=text, item=item, card=card)

    @COMMANDS.command(
        "why",
        "why a paper got its score",
        usage="<id>",
        menu="Why a paper got its score",
        slow=True,
        working="⏳ Looking at {arg} …",
    )
    def cmd_why(self, cmd: Command) -> Reply:
        if len(cmd.args) != 1:
            raise self._usage(cmd, "<arXiv id>")
        sub = self._sub(cmd.platform, cmd.chat)
        paper = self.engine.lookup(cmd.args[0])
        item, lines = self.why(sub, paper, cmd.user)
        return Reply(text="\n".join(lines), ephemeral=True, item=item)

    @COMMANDS.command(
        "more",
        "more papers like this one",
        usage="<id>",
        menu="More papers like this one",
        slow=True,
        working="⏳ Looking at {arg} …",
    )
    def cmd_more(self, cmd: Command) -> Reply:
        if len(cmd.args) != 1:
            raise self._usage(cmd, "<arXiv id>")
        sub = self._sub(cmd.platform, cmd.chat)
        paper = self.engine.lookup(cmd.args[0])
        terms = self.engine.more_like_this(sub, cmd.user, paper)
        about = f" (about {', '.join(terms)})" if terms else ""
        return Reply(
            text=f"Noted: more papers like “{paper.title}”{about} from the next digest on.",
            ephemeral=True,
        )

    @COMMANDS.command(
        "mute",
        "hide a topic from this chat's digest (no argument: list them)",
        usage="<topic>",
        menu="Hide a topic from this chat's digest",
        changes=True,
    )
    def cmd_mute(self, cmd: Command) -> Reply:
        sub = self._sub(cmd.platform, cmd.chat)
        topics = [check_keyword(w) for w in parse_keywords(cmd.raw)]
        if not topics:
            shown = ", ".join(sub.muted) or "(none)"
            return Reply(text=f"Muted topics: {shown}", ephemeral=True)
        have = {normalize(m) for m in sub.muted}
        new = sub.muted + tuple(t for t in topics if normalize(t) not in have)
        self._save(cmd, sub, muted=new)
        return Reply(
            text=f"Muted: {', '.join(topics)}. Papers about it stay out of this chat's digest "
            f"until {prefix(cmd.platform, 'unmute')}."
        )

    @COMMANDS.command(
        "unmute",
        "show a muted topic again",
        usage="<topic> | all",
        menu="Show a muted topic again",
        changes=True,
    )
    def cmd_unmute(self, cmd: Command) -> Reply:
        sub = self._sub(cmd.platform, cmd.chat)
        topics = [check_keyword(w) for w in parse_keywords(cmd.raw)]
        if not topics:
            raise self._usage(cmd, "<topic>  (or 'all')")
        self._allowed(cmd)
        if [normalize(t) for t in topics] == ["all"]:
            self._save(cmd, sub, muted=())
            return Reply(text="Unmuted every topic.")
        gone = {normalize(t) for t in topics}
        kept = tuple(m for m in sub.muted if normalize(m) not in gone)
        if len(kept) == len(sub.muted):
            raise CommandError(
                f"'{', '.join(topics)}' is not muted. Muted: {', '.join(sub.muted) or '(none)'}"
            )
        self._save(cmd, sub, muted=kept)
        return Reply(text=f"Unmuted: {', '.join(topics)}.")

    @COMMANDS.command(
        "like",
        f"seed this chat's ranking with papers you like (up to {MAX_LIKES} ids)",
        usage="<arXiv ids …>",
        menu="Like papers: /like 2601.19278 2512.01234",
        slow=True,
        working="⏳ Looking the papers up …",
    )
    def cmd_like(self, cmd: Command) -> Reply:
        if not cmd.args:
            raise self._usage(
                cmd,
                f"<arXiv id> [more ids …] (up to {MAX_LIKES}), or send a library file: a .bib, "
                ".ris or CSL .json export from Zotero or Mendeley",
            )
        sub = self._sub(cmd.platform, cmd.chat)
        report = self.profile.like(sub, cmd.user, cmd.args)
        return Reply(text=report.text(), ephemeral=True, error=not (report.liked or report.already))

    @COMMANDS.command(
        "follow",
        "always get an author's new papers (no argument: list them)",
        usage='"First Last"',
        menu='Follow an author: /follow "Yoshua Bengio"',
        changes=True,
    )
    def cmd_follow(self, cmd: Command) -> Reply:
        sub = self._sub(cmd.platform, cmd.chat)
        names = self.profile.names(cmd.raw)
        if not names:
            return self._following(cmd, sub)
        self._allowed(cmd)
        return Reply(text=self.profile.follow(sub, cmd.user, names))

    @COMMANDS.command(
        "unfollow",
        "stop following an author",
        usage='"First Last" | all',
        menu="Stop following an author",
        changes=True,
    )
    def cmd_unfollow(self, cmd: Command) -> Reply:
        sub = self._sub(cmd.platform, cmd.chat)
        names = self.profile.names(cmd.raw)
        if not names:
            raise self._usage(cmd, '"First Last"  (or all)')
        self._allowed(cmd)
        return Reply(text=self.profile.unfollow(sub, names))

    @COMMANDS.command("following", "the authors this chat follows", menu="Followed authors")
    def cmd_following(self, cmd: Command) -> Reply:
        return self._following(cmd, self._sub(cmd.platform, cmd.chat))

    def _following(self, cmd: Command, sub: Subscription) -> Reply:
        names = self.profile.following(sub)
        if not names:
            return Reply(
                text="This chat follows no authors yet. "
                f'{prefix(cmd.platform, "follow")} "Yoshua Bengio" puts their new papers in '
                "every digest.",
                ephemeral=True,
            )
        shown = "\n".join(f"• {n}" for n in names)
        return Reply(text=f"Following ({len(names)}):\n{shown}", ephemeral=True)

    @COMMANDS.command(
        "status",
        "settings, last fetch, next digest, your feed",
        menu="Settings, last fetch, next digest, your feed",
    )
    def cmd_status(self, cmd: Command) -> Reply:
        sub = self._sub(cmd.platform, cmd.chat)
        store = self.engine.store
        last = store.last_fetch()
        lines = [self.describe(sub)]
        if last:
            lines.append(
                f"Last fetch: {last.finished_at:%Y-%m-%d %H:%M} UTC ({last.status}"
                + (f", day {last.day}" if last.day else "")
                + ")"
            )
        else:
            lines.append("Last fetch: never")
        nxt = self.next_run(sub) if self.next_run else None
        if nxt:
            lines.append(f"Next digest: {nxt:%a %d %b %H:%M %Z}")
        assert sub.id is not None
        lines += self.profile.status_lines(sub)
        lines.append(f"Your private feed: {self.feed_url(sub)}")
        return Reply(text="\n".join(lines), ephemeral=True)

    @COMMANDS.command("about", "this bot's version, its sources and its LLM", menu="About this bot")
    def cmd_about(self, cmd: Command) -> Reply:
        cfg = self.engine.config
        llm = (
            f"{cfg.summaries.model} at {cfg.summaries.base_url}" if cfg.summaries.enabled else "off"
        )
        return Reply(
            text=f"arxiv-herald {__version__}: new papers from arXiv's daily announcements "
            f"(rss.arxiv.org, export.arxiv.org), thanks to arXiv for use of its open access "
            f"interoperability. Summaries: {llm}. Papers stored: {self.engine.paper_count():,}.",
            ephemeral=True,
        )

    @COMMANDS.command(
        "ask",
        "ask a paper a question, answered from its full text with page numbers",
        usage="<arXiv id> <question>",
        menu="Ask a paper: /ask 2601.19278 which datasets do they use?",
        slow=True,
        working="⏳ Reading the paper for your question …",
    )
    def cmd_ask(self, cmd: Command) -> Reply:
        ref, _, question = cmd.raw.strip().partition(" ")
        if not ref or not question.strip():
            raise self._usage(cmd, f"<arXiv id> <question>, e.g. {ASK_EXAMPLE}")
        return self.ask(Question(cmd.platform, cmd.chat, cmd.user, ref, question))

    def ask(self, question: Question) -> Reply:
        """Answer a question about a paper (``/ask``, a reply in a paper's thread): the reply's
        ``data["ask"]`` says which paper and conversation, for :meth:`Core.answered`."""
        hint = f"Or ask with {prefix(question.platform, 'ask')} <arXiv id> <question>."
        answer = self.engine.asker.ask(question, usage_hint=hint)
        return Reply(
            text=answer_text(answer),
            data={
                "ask": {
                    "paper": answer.paper.id,
                    "thread": question.thread,
                    "turn": answer.turn_id,
                    "found": answer.found,
                    "cached": answer.cached,
                }
            },
        )

    def handle_question(self, question: Question) -> Reply:
        """:meth:`ask` with the two error tiers of :meth:`handle`."""
        try:
            return self.ask(question)
        except UserError as exc:
            return Reply(text=str(exc), ephemeral=True, error=True)
        except HeraldError as exc:
            log.warning("question about %s failed: %s", question.paper, exc)
            return Reply(text=f"Sorry, that did not work: {exc}", ephemeral=True, error=True)
        except Exception:
            log.exception("question from %s:%s failed", question.platform, question.chat)
            return Reply(text=GENERIC_ERROR, ephemeral=True, error=True)

    @COMMANDS.command("help", "this message", menu="Every command")
    def cmd_help(self, cmd: Command) -> Reply:
        return Reply(text=help_text(cmd.platform), ephemeral=True)


@dataclass(frozen=True, slots=True)
class RatingOutcome:
    previous: int | None
    value: int
    up: int
    down: int

    @property
    def changed(self) -> bool:
        return self.previous != self.value

    @property
    def kind(self) -> str:
        """new (first rating), same (pressed again: no change) or flipped."""
        if not self.changed:
            return "same"
        return "new" if self.previous is None else "flipped"

    @property
    def thumb(self) -> str:
        return "👍" if self.value > 0 else "👎"
