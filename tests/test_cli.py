"""The command line end to end: the README's own commands, every --help, errors as messages."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tomllib
from collections.abc import Callable
from pathlib import Path

import feedparser
import pytest
from click.testing import CliRunner

from bot.cli import main
from tests.conftest import DAY, JSON_ITEM_KEYS
from tests.fakes.arxiv import FakeArxiv

REPO = Path(__file__).resolve().parents[1]


def python(
    *args: str, env: dict[str, str] | None = None, cwd: Path | None = None
) -> subprocess.CompletedProcess[str]:
    """A fresh interpreter that imports this checkout's code, wherever it runs.

    Not the ``herald`` console script: that imports whatever copy of the project was installed
    into the environment (a non-editable install from before the last edit, or another
    worktree), so a test would pass or fail on code other than the code under test.
    """
    path = [str(REPO), *filter(None, [os.environ.get("PYTHONPATH")])]
    full_env = {**os.environ, "NO_COLOR": "1", **(env or {}), "PYTHONPATH": os.pathsep.join(path)}
    return subprocess.run(
        [sys.executable, *args], capture_output=True, text=True, env=full_env, cwd=cwd, timeout=120
    )


def herald(
    *args: str, env: dict[str, str] | None = None, cwd: Path | None = None
) -> subprocess.CompletedProcess[str]:
    """``herald ARGS`` as a user runs it: ``python -m bot`` is the same entry point."""
    return python("-m", "bot", *args, env=env, cwd=cwd)


def test_subprocesses_run_this_checkout(tmp_path: Path) -> None:
    code = "import adapters, bot, bot.cli, storage; print(bot.__file__, bot.cli.__file__, "
    code += "adapters.__file__, storage.__file__)"
    for cwd in (tmp_path, REPO):
        result = python("-c", code, cwd=cwd)
        assert result.returncode == 0, result.stderr
        files = [Path(f).resolve() for f in result.stdout.split()]
        assert len(files) == 4
        assert all(f.is_relative_to(REPO) for f in files), files
    # `python -m bot` and the `herald` script are one entry point: bot.cli's click group.
    scripts = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["scripts"]
    assert scripts == {"herald": "bot.cli:main"}
    listed = herald("--help", cwd=tmp_path)
    assert listed.returncode == 0 and "Usage:" in listed.stdout
    assert all(f"  {name} " in listed.stdout for name in main.commands)


def readme_commands() -> list[str]:
    text = (REPO / "README.md").read_text()
    block = re.search(r"```(?:sh|bash|console)\n(.*?)```", text, re.S)
    assert block, "README.md has no shell block with the set-up commands"
    return [
        ln.strip() for ln in block.group(1).splitlines() if ln.strip() and not ln.startswith("#")
    ]


def test_readme_names_the_two_setup_commands() -> None:
    cmds = readme_commands()
    assert any("herald run" in c for c in cmds)
    assert any(".ci/run" in c for c in cmds)
    ci = (REPO / ".ci" / "run").read_text()
    assert "pytest" in ci and "ruff check" in ci and "ruff format --check" in ci


def test_herald_run_writes_every_embedded_output(
    write_config: Callable[..., Path], tmp_path: Path
) -> None:
    cfg = write_config(outputs={"console": True})
    result = herald("run", env={"HERALD_CONFIG": str(cfg)}, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    assert "arXiv digest · Thu 22 Jan 2026" in result.stdout
    md = (tmp_path / "digest.md").read_text()
    assert "## 📚 Recent Papers" in md and "### 1. [" in md
    feed = feedparser.parse((tmp_path / "feed.xml").read_bytes())
    assert not feed.bozo and feed.entries
    atom = feedparser.parse((tmp_path / "feed.atom").read_bytes())
    assert atom.version == "atom10" and len(atom.entries) == len(feed.entries)
    data = json.loads((tmp_path / "digest.json").read_text())
    assert data["day"] == DAY and data["items"]
    # Summaries are off in this config: no marker noise, status says so.
    assert {i["summary_status"] for i in data["items"]} == {"disabled"}


def test_digest_json_format(write_config: Callable[..., Path]) -> None:
    cfg = str(write_config())
    assert herald("--config", cfg, "fetch").returncode == 0
    result = herald("--config", cfg, "digest", "--format", "json", "--day", DAY)
    assert result.returncode == 0, result.stderr
    obj = json.loads(result.stdout)
    assert set(obj) >= {"day", "subscription", "items"}
    item = obj["items"][0]
    assert item.keys() >= JSON_ITEM_KEYS
    assert item["score"] >= obj["items"][-1]["score"]


def test_digest_markdown_to_file(write_config: Callable[..., Path], tmp_path: Path) -> None:
    cfg = str(write_config())
    herald("--config", cfg, "fetch")
    out = tmp_path / "x.md"
    result = herald("--config", cfg, "digest", "--format", "markdown", "--out", str(out))
    assert result.returncode == 0 and out.read_text().startswith("# arXiv Papers Bot")


def test_lookup_and_bad_id(write_config: Callable[..., Path]) -> None:
    cfg = str(write_config())
    ok = herald("--config", cfg, "lookup", "https://arxiv.org/abs/2601.14053v1", "--format", "json")
    assert ok.returncode == 0, ok.stderr
    assert json.loads(ok.stdout)["title"].startswith("LLMOrbit")
    bad = herald("--config", cfg, "lookup", "not-an-id")
    assert bad.returncode == 1
    assert "is not an arXiv id" in bad.stderr and "Traceback" not in bad.stderr


def test_fetch_failure_is_a_message(
    write_config: Callable[..., Path], fake_arxiv: FakeArxiv
) -> None:
    fake_arxiv.rss_mode = "http500"
    cfg = str(write_config())
    result = herald("--config", cfg, "fetch")
    assert result.returncode == 1
    assert "HTTP 500" in result.stdout + result.stderr
    assert "Traceback" not in result.stderr
    run = herald("--config", cfg, "run")
    assert run.returncode == 1 and "nothing to show" in run.stderr


def test_bad_day_argument(write_config: Callable[..., Path]) -> None:
    result = CliRunner().invoke(
        main, ["--config", str(write_config()), "digest", "--day", "22/01/2026"]
    )
    assert result.exit_code == 2 and "YYYY-MM-DD" in result.output


def _commands(group: object, prefix: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    import click

    out = []
    assert isinstance(group, click.Group)
    for name, cmd in group.commands.items():
        out.append((*prefix, name))
        if isinstance(cmd, click.Group):
            out += _commands(cmd, (*prefix, name))
    return out


@pytest.mark.parametrize("path", _commands(main))
def test_every_command_has_help(path: tuple[str, ...]) -> None:
    result = CliRunner().invoke(main, [*path, "--help"])
    assert result.exit_code == 0
    assert "Usage:" in result.output
    # A one-line description, not an empty help page.
    assert len(result.output.strip().splitlines()) >= 3
