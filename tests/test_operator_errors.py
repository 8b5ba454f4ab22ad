"""An operator's mistakes get one clear line and the right exit code, never a traceback."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from click.testing import CliRunner

from bot.cli import main


def _write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def herald(cfg: Path, *args: str) -> tuple[int, str]:
    result = CliRunner().invoke(main, ["--config", str(cfg), *args])
    out = result.output + (result.stderr if result.stderr_bytes else "")
    assert "Traceback" not in out
    assert result.exception is None or isinstance(result.exception, SystemExit), out
    return result.exit_code, out


@pytest.mark.parametrize(
    ("make", "says"),
    [
        (lambda d: (d / "db").mkdir() or d / "db", "is a directory"),
        (lambda d: _write(d / "x.db", "not sqlite " * 200), "not an SQLite"),
        (lambda d: _write(d / "file", "x") / "herald.db", "cannot be created"),
    ],
    ids=["directory", "not-sqlite", "under-a-file"],
)
def test_bad_database_paths_are_a_clear_config_error(
    write_config: Callable[..., Path], tmp_path: Path, make: Callable[[Path], Path], says: str
) -> None:
    path = make(tmp_path)
    cfg = write_config(database=str(path))
    code, out = herald(cfg, "status")
    assert code == 2, out
    assert says in out and str(path) in out and "point `database`" in out
