"""Every real arXiv id form parses to one canonical id; anything else gets a clear message."""

from __future__ import annotations

import pytest

from bot.ids import ArxivId, InvalidArxivId, parse_arxiv_id


@pytest.mark.parametrize(
    ("text", "base", "version"),
    [
        ("2601.19278", "2601.19278", None),
        ("2601.19278v2", "2601.19278", 2),
        ("arXiv:2601.19278", "2601.19278", None),
        ("ARXIV:2601.19278v3", "2601.19278", 3),
        ("https://arxiv.org/abs/2601.19278v1", "2601.19278", 1),
        ("http://arxiv.org/abs/2601.19278", "2601.19278", None),
        ("https://arxiv.org/pdf/2601.19278.pdf", "2601.19278", None),
        ("https://arxiv.org/pdf/2601.19278v2", "2601.19278", 2),
        ("https://export.arxiv.org/abs/2601.19278", "2601.19278", None),
        ("arxiv.org/abs/2601.19278", "2601.19278", None),
        ("<https://arxiv.org/abs/2601.19278>", "2601.19278", None),
        ("  2601.19278  ", "2601.19278", None),
        ("hep-th/9901001", "hep-th/9901001", None),
        ("hep-th/9901001v2", "hep-th/9901001", 2),
        ("math.CA/0611800v2", "math/0611800", 2),
        ("https://arxiv.org/abs/math.CA/0611800v2", "math/0611800", 2),
        ("https://arxiv.org/abs/hep-th/9901001", "hep-th/9901001", None),
        ("0704.0001", "0704.0001", None),
        ("1412.9999v1", "1412.9999", 1),
        ("1501.00001", "1501.00001", None),
    ],
)
def test_every_real_form(text: str, base: str, version: int | None) -> None:
    assert parse_arxiv_id(text) == ArxivId(base, version)


def test_str_keeps_version() -> None:
    assert str(parse_arxiv_id("arXiv:2601.19278v2")) == "2601.19278v2"
    assert str(parse_arxiv_id("math.CA/0611800")) == "math/0611800"


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("", "No arXiv id"),
        ("abc", "is not an arXiv id"),
        ("2601.1927", "five digits"),  # 4 digits after 2015
        ("0703.0001", "not a valid"),  # before new-style ids existed
        ("1312.00001", "four digits"),
        ("2613.19278", "month 13"),
        ("2601.19278v0", "versions start at v1"),
        ("foo/9901001", "is not an arXiv id"),
        ("hep-th/99010", "is not an arXiv id"),
        ("https://example.com/abs/2601.19278", "not an arxiv.org link"),
        ("https://arxiv.org/list/cs.LG/new", "does not point at a paper"),
        ("2601.19278; DROP TABLE papers", "is not an arXiv id"),
        ("x" * 500, "…"),
    ],
)
def test_rejects_with_a_message(text: str, says: str) -> None:
    with pytest.raises(InvalidArxivId) as err:
        parse_arxiv_id(text)
    msg = str(err.value)
    assert says in msg
    assert "2601.19278" in msg or "No arXiv id" in msg or "month" in msg or "v1" in msg
    assert len(msg) < 400  # an overlong input is clipped, not echoed whole
