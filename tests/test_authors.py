"""Author names (bot/authors.py) on the real author lists of the corpus: however a person types
a name — accents or none, initials, "Last, First", any case — it finds that author's papers
and nobody else's."""

from __future__ import annotations

import unicodedata

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bot.authors import AuthorMatcher, check_name, parse_name, same_person
from bot.errors import UserError
from tests.conftest import DAY
from tests.fakes import corpus


def _papers_by(name: str, day: str = DAY) -> set[str]:
    m = AuthorMatcher.of([name])
    return {p["base_id"] for p in corpus.papers_on(day) if m.followed_in(p["authors"])}


@pytest.mark.parametrize(
    "typed",
    ["Pietro Liò", "Pietro Lio", "pietro lio", "PIETRO LIÒ", "Liò, Pietro", "Lio, P.", "P. Lio"],
)
def test_every_way_of_typing_a_name_finds_the_same_papers(typed: str) -> None:
    # 2601.11827 lists "Pietro Liò" among its 13 authors.
    assert _papers_by(typed) == {"2601.11827"}


@pytest.mark.parametrize(
    "typed",
    ["Antoni Jaume-i-Capó", "Jaume-i-Capo, Antoni", "A. Jaume-i-Capó", "antoni jaume-i-capo"],
)
def test_hyphenated_accented_surnames(typed: str) -> None:
    assert _papers_by(typed) == {"2601.12928", "2601.13021"}


def test_initials_and_full_names_meet_but_other_first_names_do_not() -> None:
    (paper,) = [p for p in corpus.load_papers() if p["base_id"] == "2601.10403"]
    assert "Yoshua Bengio" in paper["authors"]
    for typed in ("Yoshua Bengio", "Y. Bengio", "Bengio, Yoshua", "Y.Bengio", "bengio"):
        assert AuthorMatcher.of([typed]).followed_in(paper["authors"]) == [typed], typed
    for other in ("Samy Bengio", "S. Bengio", "Yoshua Bengi", "Bengio, Samy"):
        assert AuthorMatcher.of([other]).followed_in(paper["authors"]) == [], other


def test_middle_names_and_particles() -> None:
    def same(a: str, b: str) -> bool:
        x, y = parse_name(a), parse_name(b)
        assert x is not None and y is not None
        return same_person(x, y)

    assert same("Geoffrey E. Hinton", "Geoffrey Hinton")
    assert same("Michael I. Jordan", "M. Jordan")
    assert not same("Michael I. Jordan", "Michael B. Jordan")
    assert same("Laurens van der Maaten", "van der Maaten, Laurens")
    assert same("J.-P. Serre", "Jean-Pierre Serre")
    assert same("Martin Luther King Jr.", "King, Jr., Martin")
    assert same("Ivan Vuli\\'c", "Ivan Vulić")  # LaTeX as arXiv sometimes keeps it
    assert same("John Smith (MIT)", "John Smith")


def test_every_real_author_of_the_day_is_found_by_their_variants() -> None:
    """Each author of the day's 562 papers, typed as "Last, First", as "F. Last", without
    accents and in upper case, finds every paper that author wrote — and following one
    author of a paper never picks a co-author with another surname."""
    papers = corpus.papers_on(DAY)
    checked = 0
    for p in papers:
        authors = p["authors"]
        surnames = {n.surname for a in authors if (n := parse_name(a)) is not None}
        for author in authors:
            words = author.split()
            if len(words) < 2 or "," in author or "(" in author:
                continue
            first, last = words[0], words[-1]
            plain = "".join(
                c for c in unicodedata.normalize("NFKD", author) if not unicodedata.combining(c)
            )
            for typed in (f"{last}, {' '.join(words[:-1])}", f"{first[0]}. {last}", plain.upper()):
                m = AuthorMatcher.of([typed])
                assert m.followed_in(authors) == [typed], (p["base_id"], author, typed)
            name = parse_name(author)
            assert name is not None
            others = [a for a in authors if (n := parse_name(a)) and n.surname != name.surname]
            assert AuthorMatcher.of([author]).followed_in(others) == []
            checked += 1
        assert len(surnames) >= 1
    assert checked > 2000  # the whole day, not a handful


@pytest.mark.parametrize("bad", ["", "   ", "...", "x", "(MIT)", "a" * 101])
def test_what_is_no_name_is_refused(bad: str) -> None:
    with pytest.raises(UserError):
        check_name(bad)


@settings(max_examples=400, deadline=None)
@given(st.text(max_size=60))
def test_any_text_parses_or_is_no_name(text: str) -> None:
    name = parse_name(text)
    if name is not None:
        assert name.surname and name.surname == name.surname.casefold()
        assert same_person(name, name)
