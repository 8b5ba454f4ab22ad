"""Configuration: one typed loader, validated at load, errors that name the key and the fix.

Secrets never live in the file: a section names the *environment variable* that holds each
token (``slack.bot_token_env: SLACK_BOT_TOKEN``), and :func:`secret` reads it.
"""

from __future__ import annotations

import difflib
import functools
import os
import re
import zoneinfo
from collections.abc import Mapping
from importlib import resources
from pathlib import Path
from typing import Annotated, Any, ClassVar, Literal, TypeVar

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    create_model,
    field_validator,
)
from pydantic_core import ErrorDetails

from bot.categories import UnknownCategory, normalize_categories
from bot.errors import ConfigError
from bot.models import Subscription

ENV_CONFIG = "HERALD_CONFIG"
S = TypeVar("S", bound="PlatformSection")
# ASCII digits only: "٠٩:٣٠" or full-width "０９:３０" are not what people mean by a time.
_TIME_RE = re.compile(r"^([01]?[0-9]|2[0-3]):([0-5][0-9])$")
AnnounceType = Literal["new", "cross", "replace", "replace-cross"]


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


@functools.cache
def _zones() -> dict[str, str]:
    """Every IANA zone name (from tzdata), by its lower-case spelling."""
    return {z.lower(): z for z in zoneinfo.available_timezones()}


def check_timezone(value: str) -> str:
    """An IANA zone name (``Europe/Berlin``), spelled as the zone database does; ValueError
    with a suggestion otherwise.  Only names of the zone database pass: a folder name
    (``America``) or a path is no zone, whatever the file system says."""
    text = str(value).strip()
    zone = _zones().get(text.lower()) if len(text) <= 64 else None
    if zone is None:
        shown = text if len(text) <= 40 else text[:39] + "…"
        close = difflib.get_close_matches(text.lower(), list(_zones()), 1, 0.8)
        hint = f"did you mean {_zones()[close[0]]}? " if close else ""
        raise ValueError(
            f"unknown timezone '{shown}'; {hint}use an IANA name such as UTC, Europe/Berlin or "
            "America/New_York"
        )
    return zone


def check_time(value: str) -> str:
    """Validate ``HH:MM`` and return it zero-padded."""
    m = _TIME_RE.match(str(value).strip())
    if not m:
        shown = str(value) if len(str(value)) <= 20 else str(value)[:19] + "…"
        raise ValueError(f"'{shown}' is not a time of day; write it as HH:MM, e.g. 09:00")
    return f"{int(m.group(1)):02d}:{m.group(2)}"


def _check_cron(value: str) -> str:
    from apscheduler.triggers.cron import CronTrigger

    try:
        CronTrigger.from_crontab(value, timezone="UTC")
    except ValueError as exc:
        raise ValueError(
            f"'{value}' is not a valid crontab expression ({exc}); use five fields "
            "'minute hour day month day_of_week', e.g. '0 5 * * mon-fri'"
        ) from exc
    return value


class ArxivSection(_Section):
    categories: list[str] = Field(default_factory=lambda: ["cs.LG"], min_length=1)
    announce_types: list[AnnounceType] = Field(
        default_factory=lambda: list[AnnounceType](["new"]), min_length=1
    )
    rss_url: str = "https://rss.arxiv.org/rss/{categories}"
    api_url: str = "https://export.arxiv.org/api/query"
    pdf_url: str = "https://arxiv.org/pdf/{id}"
    days_back: Annotated[int, Field(ge=0, le=30)] = 0
    request_interval_s: Annotated[float, Field(ge=0)] = 3.0
    timeout_s: Annotated[float, Field(gt=0)] = 30.0
    retries: Annotated[int, Field(ge=0, le=10)] = 2

    @field_validator("categories")
    @classmethod
    def _cats(cls, value: list[str]) -> list[str]:
        try:
            return list(normalize_categories(value))
        except UnknownCategory as exc:
            raise ValueError(str(exc)) from exc

    @field_validator("rss_url")
    @classmethod
    def _rss(cls, value: str) -> str:
        if "{categories}" not in value:
            raise ValueError("must contain the placeholder {categories}")
        return value

    @field_validator("pdf_url")
    @classmethod
    def _pdf(cls, value: str) -> str:
        if "{id}" not in value:
            raise ValueError("must contain the placeholder {id}")
        return value


class ScoringSection(_Section):
    keywords: list[str] = Field(default_factory=list)
    exclude_keywords: list[str] = Field(default_factory=list)
    min_score: float = 1.0
    max_papers: Annotated[int, Field(ge=1, le=500)] = 30
    title_weight: Annotated[float, Field(ge=0)] = 0.5
    mode: Literal["words", "seed"] = "words"

    @field_validator("keywords", "exclude_keywords")
    @classmethod
    def _kw(cls, value: list[str]) -> list[str]:
        out = []
        for kw in value:
            kw = " ".join(str(kw).split())
            if not kw:
                raise ValueError("keywords must not be empty strings")
            if len(kw) > 100:
                raise ValueError(f"keyword '{kw[:40]}…' is longer than 100 characters")
            out.append(kw)
        return out


class OutputsSection(_Section):
    console: bool = True
    markdown: str | None = "digest.md"
    feed: str | None = "feed.xml"
    atom: str | None = None
    json_: str | None = Field(default=None, alias="json")

    model_config = ConfigDict(extra="forbid", populate_by_name=True)


class PricesSection(_Section):
    input: Annotated[float, Field(ge=0)] = 0.0
    output: Annotated[float, Field(ge=0)] = 0.0


class BudgetSection(_Section):
    tokens: Annotated[int, Field(ge=0)] | None = None
    money: Annotated[float, Field(ge=0)] | None = None


class SummariesSection(_Section):
    enabled: bool = True
    base_url: str = "https://api.openai.com/v1"
    api_key_env: str = "OPENAI_API_KEY"
    model: str = "gpt-4o-mini"
    prompt_file: str | None = None
    language: str = "en"
    source: Literal["abstract", "fulltext"] = "abstract"
    top_n: Annotated[int, Field(ge=0, le=500)] = 15
    max_workers: Annotated[int, Field(ge=1, le=64)] = 4
    timeout_s: Annotated[float, Field(gt=0)] = 120.0
    max_retries: Annotated[int, Field(ge=0, le=10)] = 3
    max_input_tokens: Annotated[int, Field(ge=200)] = 12000
    max_output_tokens: Annotated[int, Field(ge=50)] = 1200
    prices: PricesSection | None = None
    daily_budget: BudgetSection | None = None


class AskSection(_Section):
    """``ask:`` — questions about a paper, answered from its full text (the LLM is the one
    ``summaries`` configures, and its daily budget applies)."""

    enabled: bool = True
    daily_questions_per_chat: Annotated[int, Field(ge=0)] = 20
    max_question_chars: Annotated[int, Field(ge=20, le=2000)] = 500
    max_pdf_mb: Annotated[float, Field(gt=0)] = 20.0
    passages: Annotated[int, Field(ge=1, le=20)] = 4
    passage_words: Annotated[int, Field(ge=30, le=1000)] = 120
    max_turns: Annotated[int, Field(ge=0, le=20)] = 4
    max_output_tokens: Annotated[int, Field(ge=50)] = 600


class PlatformSection(_Section):
    """The config section of a chat platform.  Each adapter package declares its own subclass
    next to its code; the composition root hands them to the loader.

    Every field whose name ends in ``_env`` names an environment variable holding a secret
    (the secret itself never appears in the file, nor in logs).
    """

    enabled: bool = False
    admins: list[str] = Field(default_factory=list)
    #: How digests look in this platform's chats unless a chat chose (``/settings layout``):
    #: thread (a header, then one message per paper) or compact (one message).  A platform
    #: whose chats show every message in the main flow defaults to compact.
    layout: Literal["thread", "compact"] = "thread"

    def secret_envs(self) -> list[str]:
        return [
            str(value)
            for name, value in self
            if name.endswith("_env") and isinstance(value, str) and value
        ]

    @classmethod
    def of(cls: type[S], config: Config, name: str) -> S:
        """This platform's section of ``config`` (validated at load time)."""
        section = config.platform(name)
        if not isinstance(section, cls):
            raise ConfigError(f"the configuration was loaded without the {name} section")
        return section


class ScheduleSection(_Section):
    fetch: str = "0 5 * * mon-fri"
    default_time: str = "09:00"
    default_timezone: str = "UTC"
    misfire_grace_s: Annotated[int, Field(ge=1)] = 6 * 3600
    no_papers_note: bool = False

    _fetch = field_validator("fetch")(_check_cron)
    _time = field_validator("default_time")(check_time)
    _tz = field_validator("default_timezone")(check_timezone)


class WebSection(_Section):
    enabled: bool = True
    host: str = "127.0.0.1"
    port: Annotated[int, Field(ge=0, le=65535)] = 8080
    public_url: str | None = None


class LearningSection(_Section):
    enabled: bool = True
    weight: Annotated[float, Field(ge=0)] = 2.0
    exploration: Annotated[float, Field(ge=0, le=0.5)] = 0.1
    user_share: Annotated[float, Field(ge=0, le=1)] = 0.3


class FollowsSection(_Section):
    """Followed authors' papers outside a chat's categories: after each fetch, one arXiv API
    query per followed author (3 s apart) finds their new papers in any category."""

    search_all_categories: bool = False
    max_authors: Annotated[int, Field(ge=0, le=500)] = 100


class LoggingSection(_Section):
    level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    format: Literal["text", "json"] = "text"


class Config(_Section):
    database: str = "herald.db"
    arxiv: ArxivSection = Field(default_factory=ArxivSection)
    scoring: ScoringSection = Field(default_factory=ScoringSection)
    outputs: OutputsSection = Field(default_factory=OutputsSection)
    summaries: SummariesSection = Field(default_factory=SummariesSection)
    schedule: ScheduleSection = Field(default_factory=ScheduleSection)
    web: WebSection = Field(default_factory=WebSection)
    learning: LearningSection = Field(default_factory=LearningSection)
    follows: FollowsSection = Field(default_factory=FollowsSection)
    logging: LoggingSection = Field(default_factory=LoggingSection)
    ask: AskSection = Field(default_factory=AskSection)

    #: Where relative paths are resolved from (the config file's folder, or the CWD).
    base_dir: Path = Field(default_factory=Path.cwd, exclude=True)
    source: str = Field(default="<embedded default>", exclude=True)

    #: The chat platforms' section names, in the order the composition root lists them.
    platform_names: ClassVar[tuple[str, ...]] = ()

    def platform(self, name: str) -> PlatformSection:
        if name not in self.platform_names:
            raise ConfigError(f"no chat platform called {name!r} is installed")
        section: PlatformSection = getattr(self, name)
        return section

    def platforms(self) -> dict[str, PlatformSection]:
        return {name: self.platform(name) for name in self.platform_names}

    def layout_for(self, platform: str) -> str:
        """The digest layout of a chat on ``platform`` that did not choose one."""
        if platform in self.platform_names:
            return self.platform(platform).layout
        return "thread"

    def enabled_platforms(self) -> list[str]:
        return [name for name, section in self.platforms().items() if section.enabled]

    def secret_envs(self) -> list[str]:
        """The names of every environment variable that holds a secret (for log redaction)."""
        names = [self.summaries.api_key_env]
        for section in self.platforms().values():
            names += section.secret_envs()
        return names

    def path(self, value: str) -> Path:
        p = Path(os.path.expanduser(value))
        return p if p.is_absolute() else self.base_dir / p

    @property
    def database_path(self) -> Path:
        return self.path(self.database)

    def default_subscription(self) -> Subscription:
        """The subscription the config file itself describes (``herald run`` delivers it)."""
        s = self.scoring
        return Subscription(
            id=None,
            platform="default",
            chat="default",
            name="default",
            categories=tuple(self.arxiv.categories),
            keywords=tuple(s.keywords),
            excludes=tuple(s.exclude_keywords),
            announce_types=tuple(self.arxiv.announce_types),
            min_score=s.min_score,
            max_papers=s.max_papers,
            title_weight=s.title_weight,
            mode=s.mode,
            time=self.schedule.default_time,
            timezone=self.schedule.default_timezone,
            language=None,
        )


_HINTS = {
    "extra_forbidden": "remove it or check its spelling (see config.yaml for every key)",
    "missing": "add it",
    "bool_parsing": "use true or false",
    "bool_type": "use true or false",
    "int_parsing": "use a whole number",
    "int_type": "use a whole number",
    "float_parsing": "use a number",
    "float_type": "use a number",
    "string_type": "use a text value (quote it if YAML reads it as something else)",
    "list_type": "use a YAML list, e.g. [cs.LG, cs.CL]",
    "literal_error": "",
    "too_short": "give at least one value",
}


def _format_error(model: type[BaseModel], err: ErrorDetails) -> str:
    loc = ".".join(str(p) for p in err["loc"] if not isinstance(p, int)) or "(top level)"
    idx = [p for p in err["loc"] if isinstance(p, int)]
    if idx:
        loc += f"[{idx[0]}]"
    msg = str(err["msg"])
    if msg.startswith("Value error, "):
        msg = msg[len("Value error, ") :]
    hint = _HINTS.get(err["type"], "")
    got = err.get("input")
    shown = ""
    if err["type"] not in ("extra_forbidden", "missing", "value_error") and not isinstance(
        got, dict
    ):
        shown = f" (got {got!r})"
    if err["type"] == "extra_forbidden":
        close = difflib.get_close_matches(
            str(err["loc"][-1]), _known_keys(model, err["loc"][:-1]), 1
        )
        if close:
            hint = f"did you mean '{close[0]}'?"
        return f"{loc}: unknown key; {hint}"
    return f"{loc}: {msg}{shown}" + (f"; {hint}" if hint else "")


def _known_keys(model: type[BaseModel], loc: tuple[Any, ...]) -> list[str]:
    for part in loc:
        field = model.model_fields.get(str(part))
        sub = getattr(field, "annotation", None) if field else None
        if isinstance(sub, type) and issubclass(sub, BaseModel):
            model = sub
        else:
            return []
    return [f.alias or name for name, f in model.model_fields.items() if not f.exclude]


@functools.cache
def config_model(platforms: tuple[tuple[str, type[PlatformSection]], ...] = ()) -> type[Config]:
    """The Config model with a section per chat platform (``slack:``, ``telegram:``…)."""
    if not platforms:
        return Config
    fields: dict[str, Any] = {
        name: (section, Field(default_factory=section)) for name, section in platforms
    }
    model = create_model("Config", __base__=Config, **fields)
    model.platform_names = tuple(name for name, _ in platforms)
    return model


def parse_config(
    data: Any,
    source: str = "<config>",
    base_dir: Path | None = None,
    platforms: Mapping[str, type[PlatformSection]] | None = None,
) -> Config:
    """Validate a mapping into a Config; raise ConfigError naming every bad key."""
    model = config_model(tuple((platforms or {}).items()))
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: the top level must be a mapping of keys (got {data!r:.60})")
    try:
        cfg = model.model_validate(data)
    except ValidationError as exc:
        lines = [_format_error(model, e) for e in exc.errors()]
        raise ConfigError(f"{source}: invalid configuration:\n  " + "\n  ".join(lines)) from None
    cfg.base_dir = base_dir or Path.cwd()
    cfg.source = source
    return cfg


def default_config_text() -> str:
    """The commented default configuration shipped inside the package."""
    return resources.files("bot").joinpath("default_config.yaml").read_text(encoding="utf-8")


class _StrictLoader(yaml.SafeLoader):
    """``yaml.SafeLoader`` that refuses a key given twice in one mapping: YAML would keep the
    last silently, and a second ``slack:`` section would undo the first without a word."""


def _no_duplicate_keys(loader: _StrictLoader, node: yaml.MappingNode) -> dict[Any, Any]:
    seen: dict[Any, yaml.Node] = {}
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=True)
        if isinstance(key, str | int | float | bool) and key in seen:
            first = seen[key].start_mark.line + 1
            raise yaml.constructor.ConstructorError(
                None,
                None,
                f"key {key!r} appears twice (first on line {first}); keep one",
                key_node.start_mark,
            )
        seen[key] = key_node
    return loader.construct_mapping(node, deep=True)


_StrictLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _no_duplicate_keys)


def read_yaml(text: str) -> Any:
    """Parse configuration YAML (safe, and a duplicated key is an error)."""
    return yaml.load(text, Loader=_StrictLoader)


def load_config(
    path: str | os.PathLike[str] | None = None,
    platforms: Mapping[str, type[PlatformSection]] | None = None,
) -> Config:
    """Load ``path``, else $HERALD_CONFIG, else ./config.yaml, else the embedded default.

    Relative paths in the file resolve from the folder the file is *in*, as the user sees it
    (a symlinked ``config.yaml`` resolves from the link's folder, not the target's)."""
    explicit = path or os.environ.get(ENV_CONFIG)
    if explicit:
        p = Path(explicit)
        if not p.exists():
            raise ConfigError(
                f"config file {p} does not exist; create one with `herald init {p}` or "
                "point --config / HERALD_CONFIG at an existing file"
            )
    else:
        p = Path("config.yaml")
        if not p.exists():
            return parse_config(
                read_yaml(default_config_text()), "<embedded default>", None, platforms
            )
    try:
        text = p.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read config file {p}: {exc}") from None
    try:
        data = read_yaml(text)
    except yaml.YAMLError as exc:
        where = ""
        mark = getattr(exc, "problem_mark", None)
        if mark is not None:
            where = f" at line {mark.line + 1}, column {mark.column + 1}"
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise ConfigError(
            f"{p}: not valid YAML{where}: {problem}; check indentation and quoting"
        ) from None
    return parse_config(data, str(p), p.absolute().parent, platforms)


def secret(env_name: str) -> str | None:
    """Read a secret from the environment (never from the config file)."""
    value = os.environ.get(env_name, "").strip()
    return value or None
