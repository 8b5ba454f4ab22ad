"""Configuration: the shipped default loads; every mistake is one clear message, exit code 2."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from bot.app import load_config, parse_config
from bot.cli import main
from bot.config import ConfigError, default_config_text, read_yaml


def test_shipped_default_is_valid_and_documents_the_required_keys() -> None:
    text = default_config_text()
    cfg = parse_config(yaml.safe_load(text))
    assert cfg.arxiv.categories == ["cs.AI", "cs.CL", "cs.DC", "cs.LG"]
    assert cfg.arxiv.announce_types == ["new"]
    assert cfg.arxiv.rss_url == "https://rss.arxiv.org/rss/{categories}"
    assert cfg.arxiv.api_url == "https://export.arxiv.org/api/query"
    assert cfg.arxiv.pdf_url == "https://arxiv.org/pdf/{id}"
    for key in (
        "database:",
        "days_back:",
        "keywords:",
        "exclude_keywords:",
        "min_score:",
        "max_papers:",
        "title_weight:",
        "mode:",
        "outputs:",
        "api_key_env:",
        "top_n:",
        "daily_budget",
    ):
        assert key in text
    # Comments explain the keys (a line of comment per few keys at least).
    assert text.count("#") > 40


def test_repo_config_yaml_is_the_shipped_default() -> None:
    repo = Path(__file__).resolve().parents[1]
    assert (repo / "config.yaml").read_text() == default_config_text()


def test_embedded_default_when_no_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    cfg = load_config()
    assert cfg.source == "<embedded default>"
    assert cfg.database_path == tmp_path / "herald.db"


def test_env_var_selects_the_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "c.yaml"
    path.write_text("database: x.db\narxiv: {categories: [hep-th]}\n")
    monkeypatch.setenv("HERALD_CONFIG", str(path))
    cfg = load_config()
    assert cfg.arxiv.categories == ["hep-th"]
    assert cfg.database_path == tmp_path / "x.db"  # relative to the file, not the CWD


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (
            {"scoring": {"keywrods": ["x"]}},
            "scoring.keywrods: unknown key; did you mean 'keywords'?",
        ),
        ({"bogus": 1}, "bogus: unknown key"),
        ({"scoring": {"min_score": "lots"}}, "scoring.min_score: "),
        ({"scoring": {"max_papers": 0}}, "scoring.max_papers"),
        ({"arxiv": {"categories": ["cs.XX"]}}, "'cs.XX' is not an arXiv category"),
        ({"arxiv": {"categories": "cs.LG"}}, "arxiv.categories"),
        ({"arxiv": {"announce_types": ["old"]}}, "arxiv.announce_types[0]"),
        ({"arxiv": {"rss_url": "https://x/rss"}}, "{categories}"),
        (
            {"schedule": {"fetch": "61 5 * * *"}},
            "schedule.fetch: '61 5 * * *' is not a valid crontab",
        ),
        ({"schedule": {"default_timezone": "Mars/Olympus"}}, "unknown timezone 'Mars/Olympus'"),
        ({"schedule": {"default_time": "9am"}}, "write it as HH:MM"),
        ({"slack": {"mode": "carrier-pigeon"}}, "slack.mode"),
        ({"telegram": {"enabled": True, "mode": "webhook"}}, "webhook_url"),
        ({"scoring": {"keywords": [""]}}, "must not be empty"),
    ],
)
def test_each_mistake_names_the_key(data: dict, expected: str) -> None:
    with pytest.raises(ConfigError) as err:
        parse_config(data, "my.yaml")
    assert str(err.value).startswith("my.yaml: invalid configuration")
    assert expected in str(err.value)


def test_categories_are_canonicalised() -> None:
    cfg = parse_config({"arxiv": {"categories": ["cs.lg", "CS.CL", "cs.LG", "hep-th"]}})
    assert cfg.arxiv.categories == ["cs.LG", "cs.CL", "hep-th"]


def _run(args: list[str]) -> tuple[int, str]:
    result = CliRunner().invoke(main, args)
    return result.exit_code, result.output + (result.stderr if result.stderr_bytes else "")


def test_cli_broken_yaml_exits_2_without_traceback(tmp_path: Path) -> None:
    path = tmp_path / "config.yaml"
    path.write_text("arxiv:\n  categories: [cs.LG\n  days_back: 1\n")
    code, out = _run(["--config", str(path), "check"])
    assert code == 2
    assert "not valid YAML at line" in out
    assert "Traceback" not in out


def test_a_key_given_twice_is_an_error_not_a_silent_override(tmp_path: Path) -> None:
    """YAML keeps the last of two equal keys; a second ``slack:`` would undo the first
    without a word.  Nested sections too; the embedded default has no such slip."""
    path = tmp_path / "config.yaml"
    path.write_text("slack:\n  enabled: true\narxiv:\n  days_back: 1\nslack:\n  enabled: false\n")
    code, out = _run(["--config", str(path), "check"])
    assert code == 2 and "Traceback" not in out
    assert "line 5" in out and "'slack' appears twice (first on line 1)" in out
    path.write_text("arxiv:\n  days_back: 1\n  days_back: 2\n")
    code, out = _run(["--config", str(path), "check"])
    assert code == 2 and "'days_back' appears twice" in out
    # The same key under different parents is fine.
    path.write_text("slack: {enabled: false}\ntelegram: {enabled: false}\n")
    assert _run(["--config", str(path), "check"])[0] == 0
    assert read_yaml(default_config_text())["database"]


def test_cli_invalid_values_exit_2(tmp_path: Path) -> None:
    path = tmp_path / "config.yaml"
    path.write_text("arxiv:\n  categories: [cs.LG, cs.NOPE]\nscoring:\n  max_papers: lots\n")
    code, out = _run(["--config", str(path), "check"])
    assert code == 2
    assert "arxiv.categories" in out and "scoring.max_papers" in out
    assert "Traceback" not in out


def test_cli_missing_file_says_how_to_fix(tmp_path: Path) -> None:
    code, out = _run(["--config", str(tmp_path / "nope.yaml"), "check"])
    assert code == 2
    assert "herald init" in out


def test_init_writes_the_commented_default(tmp_path: Path) -> None:
    path = tmp_path / "config.yaml"
    code, _ = _run(["init", str(path)])
    assert code == 0
    assert path.read_text() == default_config_text()
    code, out = _run(["init", str(path)])
    assert code == 1 and "--force" in out
    code, out = _run(["--config", str(path), "check"])
    assert code == 0 and "OK" in out


def test_relative_paths_resolve_from_where_the_config_link_is(tmp_path: Path) -> None:
    """The checkout's config.yaml links into the package: files must land beside the link
    (where the user runs herald), not inside the package folder."""
    package = tmp_path / "site-packages" / "bot"
    package.mkdir(parents=True)
    (package / "default_config.yaml").write_text("database: herald.db\noutputs: {markdown: d.md}\n")
    checkout = tmp_path / "checkout"
    checkout.mkdir()
    (checkout / "config.yaml").symlink_to(package / "default_config.yaml")
    cfg = load_config(checkout / "config.yaml")
    assert cfg.database_path == checkout / "herald.db"
    assert cfg.path("d.md") == checkout / "d.md"
