"""Author names as arXiv lists them, matched the way people type them.

arXiv gives authors as their papers name them: ``Yoshua Bengio``, ``Y. Bengio``, ``Pietro Liò``,
``Antoni Jaume-i-Capó``, ``Laurens van der Maaten``, ``Geoffrey E. Hinton``.  A person following
someone types any of ``"Yoshua Bengio"``, ``"Bengio, Yoshua"``, ``"Y. Bengio"`` or
``"pietro lio"``.  :func:`parse_name` reduces every form to a surname key and the given names:
accents stripped (``Liò`` → ``lio``), case folded, ``Last, First`` turned round, initials
split (``J.-P.`` → ``j p``), particles (``van der``) and suffixes (``Jr.``) dropped, anything in
parentheses (an affiliation) ignored.  Two names are the same person (:func:`same_person`) when
their surnames are equal and their given names agree as far as both go: ``Y.`` agrees with
``Yoshua``, ``Yoshua`` does not with ``Samy``; a middle name only one of them gives is no
contradiction.
"""

from __future__ import annotations

import functools
import unicodedata
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from bot.cards import decode_latex
from bot.errors import UserError

#: Lower-case particles that belong to a surname (``van der Maaten``) and never identify anyone.
PARTICLES = frozenset(
    "van von der den de del della dei di da das dos du la le ter ten zu bin al el".split()
)
SUFFIXES = frozenset("jr jr. sr sr. ii iii iv".split())
MAX_NAME_CHARS = 100


@dataclass(frozen=True, slots=True)
class Name:
    """A name reduced for matching: ``surname`` key and ``given`` names (words or initials)."""

    surname: str
    given: tuple[str, ...]

    @property
    def key(self) -> str:
        """One spelling per person as typed in full: ``bengio, yoshua``."""
        return f"{self.surname}, {' '.join(self.given)}".rstrip(", ").strip()


#: Letters that are no accented form of another (Unicode has nothing to strip from them), as
#: people write them on a keyboard without them: Altıntaş → altintas, Łukasz → lukasz.
_PLAIN = str.maketrans(
    {"ı": "i", "ł": "l", "ø": "o", "đ": "d", "ð": "d", "þ": "th", "æ": "ae", "œ": "oe"}
)


def _fold(text: str) -> str:
    """Accents and case away: ``Liò`` → ``lio``, ``Žmolíková`` → ``zmolikova``; ``ß`` → ``ss``."""
    if text.isascii():
        return text.lower()
    decomposed = unicodedata.normalize("NFKD", text)
    stripped = "".join(c for c in decomposed if not unicodedata.combining(c))
    return stripped.casefold().translate(_PLAIN)


@functools.lru_cache(maxsize=65536)
def _plain(name: str) -> str:
    """The name folded as :func:`parse_name` sees it, for a quick "could it be?" test."""
    return _fold(decode_latex(name))


class _Separators(dict[int, str]):
    """``str.translate`` table: letters, digits and apostrophes stay, anything else (dots,
    hyphens, commas) becomes a space.  Filled lazily, only with characters actually seen."""

    def __missing__(self, cp: int) -> str:
        ch = chr(cp)
        out = ch if ch.isalnum() or ch == "'" else " "
        self[cp] = out
        return out


_SEPARATORS = _Separators()


def _words(text: str) -> list[str]:
    """Letters-and-digits words; dots and hyphens split initials (``J.-P.`` → ``j p``)."""
    return [w for w in (t.strip("'") for t in text.translate(_SEPARATORS).split()) if w]


def _without_parentheses(text: str) -> str:
    if "(" not in text and "[" not in text:
        return text
    depth = 0
    out = []
    for ch in text:
        if ch in "([":
            depth += 1
        elif ch in ")]":
            depth = max(0, depth - 1)
        elif depth == 0:
            out.append(ch)
    return "".join(out)


@functools.lru_cache(maxsize=65536)
def parse_name(name: str) -> Name | None:
    """``"Bengio, Yoshua"``, ``"Y. Bengio"``, ``"Yoshua Bengio"`` → ``Name("bengio", …)``;
    None when there is no name in it."""
    text = _fold(decode_latex(_without_parentheses(name or "")))
    last, comma, first = text.partition(",")
    if comma:
        # "Bengio, Yoshua", "Bengio, Jr., Yoshua", "Bengio, Yoshua, Jr."
        given_text = " ".join(p for p in first.split(",") if "".join(_words(p)) not in SUFFIXES)
        surname_text = last
    else:
        # "Y.Bengio" is "Y. Bengio"; the last word that is no suffix is the surname.
        tokens = [t for t in text.replace(".", ". ").split() if _words(t)]
        while tokens and "".join(_words(tokens[-1])) in SUFFIXES:
            tokens.pop()
        surname_text = tokens[-1] if tokens else ""
        given_text = " ".join(tokens[:-1])
    # A surname keeps its hyphens (Jaume-i-Capó, Aspuru-Guzik); a particle before it does not
    # count ("van der Maaten" and "Maaten" are the same key).
    tail = [t for t in surname_text.split() if _words(t)]
    surname = "-".join(_words(tail[-1])) if tail else ""
    if not surname:
        return None
    words = [w for w in _words(given_text) if w not in SUFFIXES]
    # "Laurens van der Maaten": the particles are the surname's; "El Mehdi Amhoud": a first
    # name that looks like one is still the first name.
    given = words[:1] + [w for w in words[1:] if w not in PARTICLES]
    return Name(surname, tuple(given))


def _agree(a: str, b: str) -> bool:
    """Two given names agree when equal, or when one is the other's initial."""
    if a == b:
        return True
    if len(a) == 1 or len(b) == 1:
        return a[0] == b[0]
    return False


def same_person(a: Name, b: Name) -> bool:
    """Same surname, and given names that agree as far as both go (see the module docstring)."""
    if a.surname != b.surname:
        return False
    if not a.given or not b.given:
        return True  # "Bengio" alone follows every Bengio
    if not _agree(a.given[0], b.given[0]):
        return False
    # A middle name both give must agree too: "Michael I. Jordan" is not "Michael B. Jordan".
    return all(_agree(x, y) for x, y in zip(a.given[1:2], b.given[1:2], strict=False))


def check_name(text: str) -> Name:
    """A name a person asked to follow, validated; UserError with the fix otherwise."""
    text = " ".join(text.split())
    if not text:
        raise UserError('Give a name, e.g. "Yoshua Bengio".')
    if len(text) > MAX_NAME_CHARS:
        raise UserError(f"'{text[:40]}…' is too long for a name ({len(text)} characters).")
    name = parse_name(text)
    if name is None or sum(c.isalpha() for c in name.surname) < 2:
        raise UserError(f"'{text[:40]}' is no name I can match; write it as arXiv lists it.")
    return name


@dataclass
class AuthorMatcher:
    """Which of a subscription's followed authors wrote a paper: built once, asked per paper."""

    by_surname: dict[str, list[tuple[Name, str]]] = field(default_factory=dict)

    @classmethod
    def of(cls, names: Iterable[str]) -> AuthorMatcher:
        """A matcher for these followed names (as typed; shown back in reasons)."""
        m = cls()
        for shown in names:
            parsed = parse_name(shown)
            if parsed is not None:
                m.by_surname.setdefault(parsed.surname, []).append((parsed, shown))
        return m

    def __bool__(self) -> bool:
        return bool(self.by_surname)

    def followed_in(self, authors: Sequence[str]) -> list[str]:
        """The followed names (as typed) among ``authors``, in the order they were followed."""
        hits: dict[str, None] = {}
        for author in authors:
            # Most authors share no surname with anyone followed: skip parsing them.
            plain = _plain(author)
            if not any(surname in plain for surname in self.by_surname):
                continue
            parsed = parse_name(author)
            if parsed is None:
                continue
            for name, shown in self.by_surname.get(parsed.surname, ()):
                if same_person(name, parsed):
                    hits[shown] = None
        return list(hits)
