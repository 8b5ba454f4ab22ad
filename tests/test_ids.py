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


# Every archive that had old-style ids (before April 2007), each with a plausible number.
OLD_STYLE = [
    "acc-phys/9411001",
    "adap-org/9303001",
    "alg-geom/9202001",
    "ao-sci/9503001",
    "astro-ph/9912001",
    "atom-ph/9503001",
    "bayes-an/9504001",
    "chao-dyn/9301001",
    "chem-ph/9403001",
    "cmp-lg/9404001",
    "comp-gas/9303001",
    "cond-mat/0102536",
    "cs/9901001",
    "dg-ga/9401001",
    "funct-an/9301001",
    "gr-qc/9201001",
    "hep-ex/9401001",
    "hep-lat/9201001",
    "hep-ph/9201001",
    "hep-th/9201001",
    "math/0211159",
    "math-ph/9801001",
    "mtrl-th/9411001",
    "nlin/0001001",
    "nucl-ex/9401001",
    "nucl-th/9201001",
    "patt-sol/9301001",
    "physics/9601001",
    "plasm-ph/9503001",
    "q-alg/9412001",
    "q-bio/0401001",
    "quant-ph/9501001",
    "solv-int/9301001",
    "supr-con/9411001",
]


@pytest.mark.parametrize("text", OLD_STYLE)
def test_every_old_style_archive(text: str) -> None:
    assert parse_arxiv_id(text) == ArxivId(text, None)
    assert parse_arxiv_id(f"https://arxiv.org/abs/{text}v3") == ArxivId(text, 3)


@pytest.mark.parametrize(
    "link",
    [
        "https://arxiv.org/abs/2601.19278",
        "https://www.arxiv.org/abs/2601.19278",
        "www.arxiv.org/abs/2601.19278",
        "http://export.arxiv.org/abs/2601.19278",
        "https://rss.arxiv.org/abs/2601.19278",
        "https://lanl.arxiv.org/abs/2601.19278",
        "https://arxiv.org/pdf/2601.19278",
        "https://arxiv.org/html/2601.19278",
        "https://arxiv.org/format/2601.19278",
        "https://arxiv.org/ps/2601.19278",
    ],
)
def test_every_arxiv_host_and_page_kind(link: str) -> None:
    assert parse_arxiv_id(link) == ArxivId("2601.19278", None)


def test_month_boundaries() -> None:
    assert parse_arxiv_id("2612.00001") == ArxivId("2612.00001")
    assert parse_arxiv_id("hep-th/9912001") == ArxivId("hep-th/9912001")
    assert parse_arxiv_id("hep-th/9901001") == ArxivId("hep-th/9901001")


USAGE = (
    "Give an arXiv id such as 2601.19278, 2601.19278v2, arXiv:2601.19278, "
    "hep-th/9901001 or a link like https://arxiv.org/abs/2601.19278."
)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", f"No arXiv id given. {USAGE}"),
        ("  <> ", f"No arXiv id given. {USAGE}"),
        ("abc", f"'abc' is not an arXiv id. {USAGE}"),
        ("XYZ", f"'XYZ' is not an arXiv id. {USAGE}"),
        (
            "2601.1927",
            f"'2601.1927' is not a valid arXiv id: ids from 2601 have five digits after the dot. "
            f"{USAGE}",
        ),
        ("0703.0001", f"'0703.0001' is not a valid arXiv id. {USAGE}"),
        ("0612.12345", f"'0612.12345' is not a valid arXiv id. {USAGE}"),
        (
            "1312.00001",
            f"'1312.00001' is not a valid arXiv id: ids before 1501 have four digits after the "
            f"dot. {USAGE}",
        ),
        ("2613.19278", f"'2613.19278' has month 13, which does not exist. {USAGE}"),
        ("2600.19278", f"'2600.19278' has month 00, which does not exist. {USAGE}"),
        ("hep-th/9913001", "'hep-th/9913001' has month 13, which does not exist."),
        ("hep-th/9900001", "'hep-th/9900001' has month 00, which does not exist."),
        ("2601.19278v0", "'2601.19278v0' has version v0; versions start at v1."),
        ("foo/9901001", f"'foo/9901001' is not an arXiv id. {USAGE}"),
        ("hep-th/99010", f"'hep-th/99010' is not an arXiv id. {USAGE}"),
        (
            "https://example.com/abs/2601.19278",
            f"'https://example.com/abs/2601.19278' is not an arxiv.org link. {USAGE}",
        ),
        (
            "https://arxiv.org/list/cs.LG/new",
            f"'https://arxiv.org/list/cs.LG/new' does not point at a paper. {USAGE}",
        ),
        ("https://arxiv.org/abs", f"'https://arxiv.org/abs' does not point at a paper. {USAGE}"),
        (
            "2601.19278; DROP TABLE papers",
            f"'2601.19278; DROP TABLE papers' is not an arXiv id. {USAGE}",
        ),
        # Overlong input is clipped to 80 characters, never echoed whole.
        ("x" * 80, f"'{'x' * 80}' is not an arXiv id. {USAGE}"),
        ("x" * 81, f"'{'x' * 79}…' is not an arXiv id. {USAGE}"),
        ("x" * 500, f"'{'x' * 79}…' is not an arXiv id. {USAGE}"),
    ],
)
def test_rejects_with_a_message(text: str, message: str) -> None:
    with pytest.raises(InvalidArxivId) as err:
        parse_arxiv_id(text)
    assert str(err.value) == message
