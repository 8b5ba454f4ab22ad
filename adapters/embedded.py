"""The embedded default outputs of ``herald run``: terminal, Markdown file, RSS/Atom, JSON."""

from __future__ import annotations

import datetime as dt
import os
from pathlib import Path

from rich.console import Console

from adapters.console import render_view as render_console
from adapters.feeds import render_feed
from adapters.jsonout import render_json
from adapters.markdown import render_view as render_markdown
from bot.cards import digest_view
from bot.engine import Engine
from bot.models import Card, Digest

FEED_DAYS = 7


def _write(path: Path, data: str | bytes) -> None:
    """Write atomically, so a reader (a web server, a feed reader) never sees half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    if isinstance(data, bytes):
        tmp.write_bytes(data)
    else:
        tmp.write_text(data, encoding="utf-8")
    os.replace(tmp, path)


def feed_entries(
    engine: Engine, digest: Digest, days: int = FEED_DAYS
) -> list[tuple[dt.date, Card]]:
    """This digest plus the previous few days', so a reader that polls weekly misses nothing."""
    top_n = engine.config.summaries.top_n
    entries = [(digest.day, c) for c in digest_view(digest, top_n=top_n).cards]
    for day in engine.announcement_days(days + 1):
        if day >= digest.day:
            continue
        old = engine.digests([digest.subscription], day, skip_delivered=False)[0]
        engine.attach_cached_summaries(old.items, digest.subscription)
        entries += [(day, c) for c in digest_view(old, top_n=top_n).cards]
        if len({d for d, _ in entries}) >= days:
            break
    return entries


def write_outputs(
    engine: Engine, digest: Digest, console: Console | None = None, *, terminal: bool = True
) -> list[str]:
    """Write every output the config turns on; returns one line per output for the log.

    ``terminal=False`` skips the console output (``herald serve`` keeps only the files fresh).
    """
    cfg = engine.config
    out = cfg.outputs
    view = digest_view(digest, top_n=cfg.summaries.top_n)
    done: list[str] = []
    if out.console and terminal:
        render_console(view, console or Console())
    if out.markdown:
        path = cfg.path(out.markdown)
        _write(path, render_markdown(view))
        done.append(f"wrote {path} ({len(digest.items)} papers)")
    if out.json_:
        path = cfg.path(out.json_)
        _write(path, render_json(digest))
        done.append(f"wrote {path}")
    if out.feed or out.atom:
        entries = feed_entries(engine, digest)
        cats = ", ".join(digest.categories)
        base = cfg.web.public_url or "https://arxiv.org"
        for path_str, atom in ((out.feed, False), (out.atom, True)):
            if not path_str:
                continue
            path = cfg.path(path_str)
            _write(
                path,
                render_feed(
                    entries,
                    title=f"arXiv digest · {cats}",
                    link=base,
                    self_url=f"{base.rstrip('/')}/{path.name}",
                    description=f"New arXiv papers in {cats}, ranked by arxiv-herald",
                    atom=atom,
                ),
            )
            done.append(f"wrote {path} ({len(entries)} entries)")
    return done
