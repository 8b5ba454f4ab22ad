"""Library files (bot/library.py): real-world export shapes, refusals with a clear message, and
properties — arbitrary bytes never crash the reader, entries written by each format's own
writer come back as they went in."""

from __future__ import annotations

import contextlib
import json
from pathlib import Path

import bibtexparser
import pytest
import rispy
from bibtexparser.model import Entry, Field
from hypothesis import given, settings
from hypothesis import strategies as st

from bot.library import (
    MAX_BYTES,
    MAX_ENTRIES,
    LibraryError,
    parse_library,
    refusal,
)

LIBRARY = Path(__file__).parent / "data" / "library"
FIXTURES = ["zotero_export.bib", "zotero_export.ris", "zotero_export.json"]
#: The fixture's entries with an arXiv id, in file order (each written the way one exporter
#: writes it: Zotero url+doi+note, arXiv eprint, Google Scholar journal, Mendeley arxivId, a
#: pdf link, a bare DataCite DOI, ...).
WITH_IDS = [
    "2601.10823",
    "2601.11061",
    "2601.11113",
    "2601.11311",
    "2601.11342",
    "2601.11864",
    "2601.19278",
]


@pytest.mark.parametrize("name", FIXTURES)
def test_a_zotero_export_reads_the_same_in_every_format(name: str) -> None:
    lib = parse_library(name, (LIBRARY / name).read_bytes())
    assert len(lib.references) == 15 and lib.unreadable == 0
    assert [r.arxiv_id for r in lib.references if r.arxiv_id] == WITH_IDS
    titles = [r.title for r in lib.references]
    # Protective braces and LaTeX are gone; the title reads as on arXiv.
    assert titles[0] == "Mugi: Value Level Parallelism For Efficient LLMs"
    assert "Long Short-Term Memory" in titles and "Deep learning" in titles
    assert titles[-1] == ""  # the entry without a title
    dois = {r.doi for r in lib.references}
    assert "10.1038/nature14539" in dois and "10.48550/arxiv.2601.10823" in dois


@pytest.mark.parametrize(
    ("entry", "arxiv_id"),
    [
        ("eprint = {2601.19278v2}, archivePrefix = {arXiv}", "2601.19278"),
        ("eprint = {hep-th/9901001}, eprinttype = {arxiv}", "hep-th/9901001"),
        ("eprint = {2601.19278}, eprinttype = {hal}", None),  # another archive's eprint
        ("arxivId = {2601.19278}", "2601.19278"),
        ("doi = {10.48550/arXiv.2601.19278}", "2601.19278"),
        ("doi = {https://doi.org/10.48550/ARXIV.2601.19278}", "2601.19278"),
        ("url = {https://arxiv.org/pdf/2601.19278v1.pdf}", "2601.19278"),
        ("url = {http://export.arxiv.org/abs/2601.19278}", "2601.19278"),
        ("journal = {arXiv preprint arXiv:2601.19278}", "2601.19278"),
        ("note = {arXiv:2601.19278 [cs]}", "2601.19278"),
        ("url = {https://example.org/abs/2601.19278}", None),
        ("note = {see 2601.19278}", None),  # a bare number is no claim
        ("abstract = {We improve on arXiv:2601.19278.}", None),  # abstracts cite others
    ],
)
def test_every_place_exporters_put_an_arxiv_id(entry: str, arxiv_id: str | None) -> None:
    text = f"@misc{{k, title = {{A title}}, {entry}}}"
    (ref,) = parse_library("x.bib", text.encode()).references
    assert ref.arxiv_id == arxiv_id


@pytest.mark.parametrize(
    ("name", "data", "says"),
    [
        ("paper.pdf", b"%PDF-1.7\n", "it is not a library file"),
        ("photo.png", b"\x89PNG\r\n\x1a\n", "not a library file"),
        ("library.bib", b"%PDF-1.7\n\x00\x01\x02\x03", "is a binary file"),
        ("library.bib", b"\xff\xfe\xfa junk \xc3\x28", "is not UTF-8 text"),
        ("library.bib", b"   \n\n", "is empty"),
        ("library.bib", b"just some notes, no entries at all\n", "holds no BibTeX entries"),
        ("library.json", b'[{"title": "x"', "is not valid JSON"),
        ("library.json", b'"a string"', "not a CSL JSON list"),
        ("library.json", b"[" * 100_000 + b"]" * 100_000, "nested too deeply"),
        ("library.ris", b"TY  - JOUR\nTI  - no end tag\n", "holds no RIS entries"),
        ("notes.txt", b"nothing that looks like a library", "is not BibTeX, RIS or CSL JSON"),
    ],
)
def test_anything_else_is_refused_with_a_clear_message(name: str, data: bytes, says: str) -> None:
    with pytest.raises(LibraryError, match=None) as caught:
        parse_library(name, data)
    assert says in str(caught.value)
    assert "Traceback" not in str(caught.value)


def test_size_and_entry_limits() -> None:
    assert refusal("big.bib", MAX_BYTES + 1) is not None
    assert "at most 2 MB" in (refusal("big.bib", 3_000_000) or "")
    assert refusal("ok.bib", MAX_BYTES) is None and refusal("ok.bib", None) is None
    with pytest.raises(LibraryError, match="at most 2 MB"):
        parse_library("big.bib", b"@misc{a, title={x}}\n" * (MAX_BYTES // 10))
    many = [{"id": f"i{n}", "title": f"Paper {n}"} for n in range(MAX_ENTRIES + 1)]
    with pytest.raises(LibraryError, match="2,001 entries; an import takes at most 2,000"):
        parse_library("many.json", json.dumps(many).encode())
    assert len(parse_library("ok.json", json.dumps(many[:-1]).encode()).references) == 2000


def test_txt_and_extensionless_files_are_sniffed() -> None:
    bib = (LIBRARY / "zotero_export.bib").read_bytes()
    ris = (LIBRARY / "zotero_export.ris").read_bytes()
    csl = (LIBRARY / "zotero_export.json").read_bytes()
    assert parse_library("export.txt", bib).format == "BibTeX"
    assert parse_library("export", ris).format == "RIS"
    assert parse_library("export.txt", csl).format == "CSL-JSON"
    # UTF-16 with a BOM (Windows tools) and a UTF-8 BOM read the same.
    assert len(parse_library("w.bib", bib.decode().encode("utf-16")).references) == 15
    assert len(parse_library("w.bib", b"\xef\xbb\xbf" + bib).references) == 15


def test_a_broken_entry_is_counted_not_fatal() -> None:
    text = (
        "@misc{good, title = {Good one}, eprint = {2601.19278}}\n"
        "@misc{broken, title = {unclosed\n"
        "@misc{dup, title = {First}}\n@misc{dup, title = {Second}, eprint = {2601.11864}}\n"
    )
    lib = parse_library("lib.bib", text.encode())
    ids = [r.arxiv_id for r in lib.references]
    assert "2601.19278" in ids and "2601.11864" in ids  # a repeated key is still a paper


# -- properties ---------------------------------------------------------------------------------
_NAMES = st.sampled_from(["lib.bib", "lib.ris", "lib.json", "lib.txt", "lib", "lib.BIB"])


@settings(max_examples=300, deadline=None)
@given(name=_NAMES, data=st.binary(max_size=4000))
def test_arbitrary_bytes_never_crash_the_reader(name: str, data: bytes) -> None:
    try:
        lib = parse_library(name, data)
    except LibraryError as exc:
        assert str(exc)
    else:
        assert lib.references


_FORMAT_BITS = st.sampled_from(
    ["@misc{", "@article{k,", "title = {", "}", "{", "eprint", "TY  - ", "ER  - ", "\n", "[", "]",
     '{"title": ', '"', ",", "\\", "$", "arXiv:2601.19278", "@string{a = ", "#", "%"]
)  # fmt: skip


@settings(max_examples=300, deadline=None)
@given(name=_NAMES, parts=st.lists(st.one_of(_FORMAT_BITS, st.text(max_size=12)), max_size=40))
def test_almost_valid_text_never_crashes_the_reader(name: str, parts: list[str]) -> None:
    with contextlib.suppress(LibraryError):
        parse_library(name, "".join(parts).encode("utf-8", "surrogatepass"))


_TITLE = (
    st.text(
        alphabet=st.one_of(
            st.characters(categories=["Lu", "Ll", "Nd"], max_codepoint=0x2FFF),
            st.sampled_from(" :-,.?!()'"),
        ),
        min_size=1,
        max_size=80,
    )
    .map(lambda t: " ".join(t.split()))
    .filter(lambda t: any(c.isalnum() for c in t))
)
_NEW_ID = st.builds(
    lambda y, m, n: f"{y:02d}{m:02d}.{n:05d}",
    st.integers(15, 29),
    st.integers(1, 12),
    st.integers(0, 99999),
)
_ENTRIES = st.lists(st.tuples(_TITLE, st.one_of(st.none(), _NEW_ID)), min_size=1, max_size=12)


@settings(max_examples=150, deadline=None)
@given(entries=_ENTRIES)
def test_entries_round_trip_through_each_format(entries: list[tuple[str, str | None]]) -> None:
    want = [(title, aid) for title, aid in entries]
    # BibTeX, written by bibtexparser itself (arXiv's own eprint/archivePrefix style).
    lib = bibtexparser.Library()
    for n, (title, aid) in enumerate(entries):
        fields = [Field("title", title)]
        if aid:
            fields += [Field("eprint", aid), Field("archivePrefix", "arXiv")]
        lib.add(Entry("misc", f"ref{n}", fields))
    bib = bibtexparser.write_string(lib).encode()
    got = parse_library("lib.bib", bib).references
    assert [(r.title, r.arxiv_id) for r in got] == want
    # RIS, written by rispy (Zotero's style: the arXiv URL).
    ris = rispy.dumps(
        [
            {
                "type_of_reference": "GEN",
                "title": t,
                **({"urls": [f"https://arxiv.org/abs/{a}"]} if a else {}),
            }
            for t, a in entries
        ]
    ).encode()
    got = parse_library("lib.ris", ris).references
    assert [(r.title, r.arxiv_id) for r in got] == want
    # CSL JSON (Zotero's style: the DataCite DOI).
    items = []
    for n, (title, aid) in enumerate(entries):
        item = {"id": f"i{n}", "type": "article", "title": title}
        if aid:
            item["DOI"] = f"10.48550/arXiv.{aid}"
        items.append(item)
    csl = json.dumps(items).encode()
    got = parse_library("lib.json", csl).references
    assert [(r.title, r.arxiv_id) for r in got] == want
