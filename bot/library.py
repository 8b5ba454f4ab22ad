"""Reference libraries in: BibTeX, RIS and CSL-JSON files as Zotero, Mendeley and other
reference managers export them, read into the few things an import needs.

Each format is read by a maintained parser — bibtexparser (v2) for BibTeX, rispy for RIS, the
standard ``json`` module for CSL-JSON — never by hand.  What comes out is one
:class:`Reference` per entry: its title (LaTeX decoded, one line) and, when the entry names
one, its arXiv id, found in the places the exporters put it:

* an ``eprint`` field (with ``archivePrefix``/``eprinttype`` arXiv, as arXiv's own BibTeX and
  biblatex write it), or Mendeley's ``arxivId``;
* a DOI ``10.48550/arXiv.<id>`` (arXiv's DataCite DOIs, which Zotero exports);
* an arxiv.org ``abs``/``pdf`` link (``url``, RIS ``UR``, CSL ``URL``);
* an ``arXiv:<id>`` note, number or journal (``note = {arXiv:2601.19278 [cs]}``, Google
  Scholar's ``journal = {arXiv preprint arXiv:1706.03762}``).

Anything else about a file is refused with a message that says what to do: too large, too many
entries, not text (a PDF, an image), not UTF-8, no entries, or not a format we read.
"""

from __future__ import annotations

import codecs
import json
import logging
import unicodedata
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import PurePosixPath
from typing import Any

import rispy
from bibtexparser.entrypoint import parse_string as parse_bibtex
from bibtexparser.model import DuplicateBlockKeyBlock, Entry

from bot.cards import decode_latex, one_line
from bot.errors import UserError
from bot.ids import InvalidArxivId, parse_arxiv_id

#: A broken block in someone's file is theirs to fix, not a warning in our log.
logging.getLogger("bibtexparser").setLevel(logging.ERROR)

MAX_BYTES = 2_000_000
MAX_ENTRIES = 2_000
MAX_TITLE_CHARS = 1_000

BIBTEX, RIS, CSL_JSON = "BibTeX", "RIS", "CSL-JSON"
#: File name endings of each format.  ``.txt`` (and no ending) are sniffed.
EXTENSIONS = {
    ".bib": BIBTEX,
    ".bibtex": BIBTEX,
    ".ris": RIS,
    ".json": CSL_JSON,
    ".csljson": CSL_JSON,
}
SNIFFED = ("", ".txt")
HOW_TO_EXPORT = (
    "Export your library (or a collection) from Zotero, Mendeley or your reference manager as "
    "BibTeX (.bib), RIS (.ris) or CSL JSON (.json) and send that file."
)

#: Fields that can name a paper's arXiv id, per format (lower-case keys).  Abstracts and
#: titles are left out on purpose: they mention other papers.
_BIBTEX_FIELDS = ("doi", "url", "pdf", "link", "howpublished", "note", "journal", "number")
_RIS_FIELDS = (
    "doi",
    "urls",
    "notes",
    "note",
    "accession_number",
    "type_of_work",
    "number",
    "journal_name",
    "secondary_title",
    "alternate_title1",
    "alternate_title2",
    "alternate_title3",
    "file_attachments1",
    "file_attachments2",
    "id",
)
_CSL_FIELDS = ("doi", "url", "number", "note", "archive_location", "container-title", "source")
_ARXIV_DOI = "10.48550/arxiv."


class LibraryError(UserError):
    """The file is not a library we can read; the text says why and what to send instead."""


@dataclass(frozen=True, slots=True)
class Reference:
    """One entry of a library: what identifies it on arXiv."""

    key: str  # the citation key (BibTeX), ID (RIS) or id (CSL), else "#<n>"
    title: str  # one line, LaTeX decoded; "" when the entry has none
    arxiv_id: str | None  # base id, when the entry names one
    doi: str | None = None


@dataclass(slots=True)
class ParsedLibrary:
    format: str  # BibTeX | RIS | CSL-JSON
    references: list[Reference] = field(default_factory=list)
    #: Entries the parser could not read at all (a broken block in a .bib file).
    unreadable: int = 0


# -- the file ---------------------------------------------------------------------------------
def extension(filename: str) -> str:
    return PurePosixPath((filename or "").replace("\\", "/")).suffix.lower()


def is_library_name(filename: str) -> bool:
    """Does the name say "library export"?  (Surfaces that see every file shared in a channel
    only offer these.)"""
    return extension(filename) in EXTENSIONS


def refusal(filename: str, size: int | None) -> str | None:
    """Why a file offered for import is refused before it is even downloaded (None: go on)."""
    ext = extension(filename)
    if ext not in EXTENSIONS and ext not in SNIFFED:
        return f"I can't import '{_clip(filename)}': it is not a library file. {HOW_TO_EXPORT}"
    if size is not None and size > MAX_BYTES:
        return (
            f"'{_clip(filename)}' is {size / 1e6:.1f} MB; a library import takes at most "
            f"{MAX_BYTES / 1e6:g} MB. Export a smaller collection, or split the library."
        )
    return None


def parse_library(filename: str, data: bytes) -> ParsedLibrary:
    """Read a library file; :class:`LibraryError` (never anything else) when it can't be."""
    why = refusal(filename, len(data))
    if why is not None:
        raise LibraryError(why)
    name = _clip(filename)
    text = _decode(data, name)
    if not text.strip():
        raise LibraryError(f"'{name}' is empty. {HOW_TO_EXPORT}")
    fmt = EXTENSIONS.get(extension(filename)) or _sniff(text)
    if fmt is None:
        raise LibraryError(
            f"'{name}' is not BibTeX, RIS or CSL JSON as far as I can tell. {HOW_TO_EXPORT}"
        )
    reader = {BIBTEX: _read_bibtex, RIS: _read_ris, CSL_JSON: _read_csl}[fmt]
    try:
        lib = reader(text, name)
    except LibraryError:
        raise
    except (RecursionError, MemoryError):
        raise LibraryError(f"'{name}' is nested too deeply to be a {fmt} library.") from None
    except Exception as exc:  # a third-party parser's surprise is a malformed file, not a crash
        raise LibraryError(
            f"'{name}' could not be read as {fmt} ({type(exc).__name__}). Export it again "
            "from your reference manager."
        ) from None
    if not lib.references:
        broken = f" ({lib.unreadable} could not be read)" if lib.unreadable else ""
        raise LibraryError(f"'{name}' holds no {fmt} entries{broken}. {HOW_TO_EXPORT}")
    return lib


def _decode(data: bytes, name: str) -> str:
    for bom, codec in ((codecs.BOM_UTF16_LE, "utf-16-le"), (codecs.BOM_UTF16_BE, "utf-16-be")):
        if data.startswith(bom):
            try:
                return data[len(bom) :].decode(codec)
            except UnicodeDecodeError:
                break
    if b"\x00" in data:
        raise LibraryError(f"'{name}' is a binary file, not a text export. {HOW_TO_EXPORT}")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise LibraryError(
            f"'{name}' is not UTF-8 text. Export it again with the UTF-8 encoding (Zotero and "
            "Mendeley do by default)."
        ) from None
    controls = sum(1 for c in text if unicodedata.category(c) == "Cc" and c not in "\t\n\r\f")
    if controls > max(8, len(text) // 100):
        raise LibraryError(f"'{name}' is a binary file, not a text export. {HOW_TO_EXPORT}")
    return text


def _sniff(text: str) -> str | None:
    head = text.lstrip()
    if head[:1] in ("[", "{"):
        return CSL_JSON
    lines = (line.strip() for line in text.splitlines())
    if any(line.startswith("TY  -") for line in lines):
        return RIS
    if "@" in text:
        return BIBTEX
    return None


def _too_many(n: int, name: str) -> LibraryError:
    return LibraryError(
        f"'{name}' has {n:,} entries; an import takes at most {MAX_ENTRIES:,}. Export a "
        "collection of the papers that matter most, or split the library."
    )


# -- BibTeX -----------------------------------------------------------------------------------
def _read_bibtex(text: str, name: str) -> ParsedLibrary:
    # Every block starts with "@", and a real entry has a dozen fields or so: far more of
    # either is no library (and would cost the parser seconds), so count before parsing.
    if text.count("@") > 10 * MAX_ENTRIES or text.count("=") > 50 * MAX_ENTRIES:
        raise LibraryError(
            f"'{name}' has far more than {MAX_ENTRIES:,} entries; an import takes at most "
            f"{MAX_ENTRIES:,}. Export a collection of the papers that matter most."
        )
    lib = parse_bibtex(text)
    entries: list[Entry] = list(lib.entries)
    unreadable = 0
    for block in lib.failed_blocks:
        # A repeated citation key is still a paper (exports of merged libraries have them);
        # the parse stack skipped it, so it is read again on its own.
        dup = block.ignore_error_block if isinstance(block, DuplicateBlockKeyBlock) else None
        raw = dup.raw if isinstance(dup, Entry) else None
        again = parse_bibtex(raw).entries if raw else []
        if len(again) == 1:
            entries.append(again[0])
        else:
            unreadable += 1
    if len(entries) + unreadable > MAX_ENTRIES:
        raise _too_many(len(entries) + unreadable, name)
    out = ParsedLibrary(BIBTEX, unreadable=unreadable)
    for n, entry in enumerate(entries, 1):
        fields = {f.key.lower(): _text(f.value) for f in entry.fields}
        arxiv_id = None
        prefix = (fields.get("archiveprefix") or fields.get("eprinttype") or "arxiv").lower()
        if prefix == "arxiv":
            arxiv_id = _arxiv_id(fields.get("eprint", ""))
        arxiv_id = arxiv_id or _arxiv_id(fields.get("arxivid", ""))
        arxiv_id = arxiv_id or _first_arxiv(fields.get(k, "") for k in _BIBTEX_FIELDS)
        out.references.append(
            Reference(
                key=one_line(str(entry.key)) or f"#{n}",
                title=_title(fields.get("title", "")),
                arxiv_id=arxiv_id,
                doi=_doi(fields.get("doi", "")),
            )
        )
    return out


# -- RIS --------------------------------------------------------------------------------------
def _read_ris(text: str, name: str) -> ParsedLibrary:
    # rispy splits lines on "\n" only; Windows exports end them with "\r\n".
    records = rispy.loads(text.replace("\r\n", "\n").replace("\r", "\n"), skip_unknown_tags=True)
    if len(records) > MAX_ENTRIES:
        raise _too_many(len(records), name)
    out = ParsedLibrary(RIS)
    for n, rec in enumerate(records, 1):
        fields = {str(k).lower(): v for k, v in rec.items()}
        title = _text(fields.get("title") or fields.get("primary_title") or "")
        out.references.append(
            Reference(
                key=one_line(_text(fields.get("id", ""))) or f"#{n}",
                title=_title(title),
                arxiv_id=_first_arxiv(_values(fields.get(k)) for k in _RIS_FIELDS),
                doi=_doi(_text(fields.get("doi", ""))),
            )
        )
    return out


# -- CSL-JSON ---------------------------------------------------------------------------------
def _read_csl(text: str, name: str) -> ParsedLibrary:
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise LibraryError(
            f"'{name}' is not valid JSON ({exc.__class__.__name__} at line "
            f"{getattr(exc, 'lineno', '?')}). Export it again as CSL JSON."
        ) from None
    if isinstance(data, dict):
        # One item, or a wrapper some tools write around the list.
        data = data.get("items", [data]) if "title" not in data else [data]
    if not isinstance(data, list):
        raise LibraryError(f"'{name}' is JSON but not a CSL JSON list of items. {HOW_TO_EXPORT}")
    if len(data) > MAX_ENTRIES:
        raise _too_many(len(data), name)
    out = ParsedLibrary(CSL_JSON)
    for n, item in enumerate(data, 1):
        if not isinstance(item, dict):
            out.unreadable += 1
            continue
        fields = {str(k).lower(): v for k, v in item.items()}
        arxiv_id = None
        if _text(fields.get("archive", "")).lower() == "arxiv":
            arxiv_id = _arxiv_id(_text(fields.get("archive_location", "")))
        arxiv_id = arxiv_id or _first_arxiv(_values(fields.get(k)) for k in _CSL_FIELDS)
        out.references.append(
            Reference(
                key=one_line(_text(fields.get("id", ""))) or f"#{n}",
                title=_title(_text(fields.get("title", ""))),
                arxiv_id=arxiv_id,
                doi=_doi(_text(fields.get("doi", ""))),
            )
        )
    return out


# -- fields -----------------------------------------------------------------------------------
def _text(value: Any) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return str(value)
    return ""


def _values(value: Any) -> str:
    """A field's text, lists (RIS ``UR``, ``N1``) joined by spaces."""
    if isinstance(value, list):
        return " ".join(_text(v) for v in value)
    if isinstance(value, Mapping):
        return ""
    return _text(value)


def _title(raw: str) -> str:
    """A title as a person reads it: LaTeX decoded, protective braces gone, one line."""
    title = one_line(decode_latex(raw[:MAX_TITLE_CHARS]))
    return one_line(title.replace("{", "").replace("}", ""))


def _doi(raw: str) -> str | None:
    text = raw.strip()
    for prefix in ("https://doi.org/", "http://doi.org/", "https://dx.doi.org/", "doi:"):
        if text.lower().startswith(prefix):
            text = text[len(prefix) :]
    return text.lower() if text.startswith("10.") and len(text) < 300 else None


def _arxiv_id(text: str) -> str | None:
    """The base id of one arXiv id in any form, else None."""
    text = text.strip()
    if not text or len(text) > 300:
        return None
    if text.lower().startswith(_ARXIV_DOI):
        text = text[len(_ARXIV_DOI) :]
    try:
        return parse_arxiv_id(text).base
    except InvalidArxivId:
        return None


def _first_arxiv(texts: Iterable[str]) -> str | None:
    """The first arXiv id named in these fields: a 10.48550 DOI, an arxiv.org link, or an
    ``arXiv:<id>`` word."""
    for text in texts:
        for word in _words(text):
            low = word.lower()
            doi = low.find(_ARXIV_DOI)
            if doi >= 0:
                found = _arxiv_id(word[doi + len(_ARXIV_DOI) :])
            elif low.startswith("arxiv:") or "arxiv.org/" in low:
                found = _arxiv_id(word)
            else:
                continue
            if found:
                return found
    return None


def _words(text: str) -> Iterator[str]:
    for word in text.replace(",", " ").replace(";", " ").split():
        word = word.strip("()[]{}<>\"'.")
        if word:
            yield word


def _clip(text: str, limit: int = 60) -> str:
    text = one_line(text) or "the file"
    return text if len(text) <= limit else text[: limit - 1] + "…"
