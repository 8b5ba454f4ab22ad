"""The composition root: the one module of ``bot/`` that names the adapters.

It builds config → store → engine → commands → core → adapters → web → service by
constructor injection, and hands the CLI the renderers of the embedded default (terminal,
Markdown, JSON, feeds).  Adding a chat platform is one new adapter package plus one line in
:data:`PLATFORMS`.
"""

from __future__ import annotations

import asyncio
import importlib
import os
import threading
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

from bot.commands import Commands
from bot.config import Config, PlatformSection
from bot.config import load_config as _load_config
from bot.config import parse_config as _parse_config
from bot.core import Core
from bot.delivery import Deliverer, DeliveryReport
from bot.engine import Engine
from bot.models import Digest
from bot.platform import Adapter
from bot.scheduler import Scheduler
from bot.service import Service
from bot.web import WebApp

#: The chat platforms, one adapter package each (its ``SECTION`` and ``create``).
PLATFORMS = (
    "adapters.slack",
    "adapters.telegram",
)


def _platform(module: str) -> ModuleType:
    return importlib.import_module(module)


def platform_sections() -> dict[str, type[PlatformSection]]:
    out: dict[str, type[PlatformSection]] = {}
    for name in PLATFORMS:
        mod = _platform(name)
        out[mod.PLATFORM] = mod.SECTION
    return out


def load_config(path: str | os.PathLike[str] | None = None) -> Config:
    """The configuration, with every installed platform's section validated."""
    return _load_config(path, platform_sections())


def parse_config(data: Any, source: str = "<config>", base_dir: Path | None = None) -> Config:
    return _parse_config(data, source, base_dir, platform_sections())


@dataclass
class App:
    """Everything ``herald serve`` (or ``herald run`` with chats) is made of."""

    config: Config
    engine: Engine
    commands: Commands
    core: Core
    adapters: dict[str, Adapter]
    service: Service


def build(
    config: Config,
    engine: Engine | None = None,
    *,
    adapters: dict[str, Adapter] | None = None,
) -> App:
    """Wire the service.  ``adapters`` replaces the configured platforms (tests)."""
    engine = engine or Engine(config)
    scheduler = Scheduler(engine.store, config.schedule, engine.active_subscriptions)
    commands = Commands(
        engine, on_change=scheduler.subscription_changed, next_run=scheduler.next_run
    )
    deliverer = Deliverer(
        engine.store,
        top_n=config.summaries.top_n,
        no_papers_note=config.schedule.no_papers_note,
        layout_for=config.layout_for,
    )
    core = Core(engine, commands, deliverer)
    if adapters is None:
        adapters = {}
        for module in PLATFORMS:
            mod = _platform(module)
            if config.platform(mod.PLATFORM).enabled:
                adapters[mod.PLATFORM] = mod.create(config, core)
    from adapters.feeds import render_feed

    web = WebApp(config, engine, scheduler, adapters, render_feed=render_feed)
    service = Service(
        config, engine, deliverer, scheduler, adapters, web=web, write_outputs=write_files
    )
    return App(config, engine, commands, core, adapters, service)


def serve(config: Config, stop_requested: threading.Event | None = None) -> None:
    """``herald serve``: run until SIGTERM/SIGINT."""

    async def main() -> None:
        # Built inside the loop: adapters create their clients on it.
        await build(config).service.run_forever(stop_requested)

    asyncio.run(main())


def deliver_chats(config: Config, engine: Engine) -> list[DeliveryReport]:
    """``herald run`` with chats enabled: every due digest, now."""

    async def main() -> list[DeliveryReport]:
        return await build(config, engine).service.run_once()

    return asyncio.run(main())


# -- the embedded default's outputs -------------------------------------------------------------
def write_files(engine: Engine, digest: Digest) -> list[str]:
    """Markdown, feeds and JSON files of a digest, as configured (no terminal output)."""
    from adapters.embedded import write_outputs

    return write_outputs(engine, digest, terminal=False)


def write_outputs(engine: Engine, digest: Digest) -> list[str]:
    """``herald run``: the terminal and every configured file."""
    from adapters.embedded import write_outputs as write

    return write(engine, digest)


def render(digest: Digest, fmt: str, top_n: int | None, out: str | None) -> str | None:
    """``herald digest --format``: the text to print (None when it went to ``out``)."""
    if fmt == "json":
        from adapters.jsonout import render_json

        return render_json(digest)
    if fmt == "markdown":
        from adapters.markdown import render_markdown

        return render_markdown(digest, top_n=top_n)
    from adapters.console import print_digest

    print_digest(digest, top_n, out)
    return None
