"""Reading people, eras, runtime, quality, mood and soft dislikes (chatrec.reading), with their negations."""

from __future__ import annotations

import pytest

from chatrec.core.constraints import Genres, People, Quality, Runtime, Years
from chatrec.reading.people import PeopleIndex
from chatrec.reading.rules import RuleExtractor, Vocabulary
from chatrec.reading.titles import TitleIndex
from chatrec.reading.wishes import find_wishes

CREDITS = (
    [("Tom Hanks", "cast")] * 30 + [("Tom Cruise", "cast")] * 25 + [("Christopher Nolan", "director")] * 9
    + [("Quentin Tarantino", "director")] * 8 + [("Quentin Tarantino", "cast")] * 2
    + [("Leonardo DiCaprio", "cast")] * 20 + [("Joel Coen", "director")] * 16 + [("Ethan Coen", "director")] * 6
    + [("Will Smith", "cast")] * 18 + [("Jim Carrey", "cast")] * 20 + [("Jimmy Carr", "cast")] * 1
    + [("Guillermo del Toro", "director")] * 7 + [("Denzel Washington", "cast")] * 25
    + [("Woody Allen", "director")] * 40 + [("Woody Allen", "cast")] * 25 + [("Clint Eastwood", "director")] * 30
    + [("Clint Eastwood", "cast")] * 33 + [("Emma Stone", "cast")] * 12 + [("Sharon Stone", "cast")] * 10
    + [("Andy García", "cast")] * 6 + [("Andy Garcia", "cast")] * 3 + [("Stanley Kubrick", "director")] * 11
)
TITLES = TitleIndex([("1", "Good Will Hunting", 1997, 0.9, ()), ("2", "Alien", 1979, 0.9, ()),
                     ("3", "Ray", 2004, 0.5, ()), ("4", "Big", 1988, 0.6, ())])
VOCAB = Vocabulary({"comedy": 100, "gore": 40, "splatter": 12, "violence": 60, "depressing": 30}, TITLES,
                   PeopleIndex(CREDITS), latest_year=2018)


def read(text):
    return RuleExtractor(VOCAB).extract(text)


def people(text):
    return [(c.names, c.role, c.negated) for c in read(text).constraints if isinstance(c, People)]


def of(text, kind):
    return [c for c in read(text).constraints if isinstance(c, kind)]


@pytest.mark.parametrize("text,expected", [
    ("a funny movie with Tom Hanks", [(("Tom Hanks",), "cast", False)]),
    ("a Nolan film", [(("Christopher Nolan",), "director", False)]),
    ("Tarantino's movies", [(("Quentin Tarantino",), "director", False)]),
    ("something with DiCaprio", [(("Leonardo DiCaprio",), "cast", False)]),
    ("something starring leonardo di caprio", [(("Leonardo DiCaprio",), "cast", False)]),
    ("the Coen brothers", [(("Joel Coen", "Ethan Coen"), "director", False)]),
    ("directed by Guillermo del Toro", [(("Guillermo del Toro",), "director", False)]),
    ("Denzel's thrillers", [(("Denzel Washington",), "cast", False)]),
    ("a movie with jim carry", [(("Jim Carrey",), "cast", False)]),  # misspelt
    ("not with Tom Cruise", [(("Tom Cruise",), "cast", True)]),
    ("no Tom Cruise please, but something with Tom Hanks", [(("Tom Cruise",), "cast", True),
                                                           (("Tom Hanks",), "cast", False)]),
    ("Woody Allen comedies", [(("Woody Allen",), "director", False)]),
    ("a Kubrick film", [(("Stanley Kubrick",), "director", False)]),
])
def test_people_by_full_name_surname_possessive_and_negation(text, expected):
    assert people(text) == expected


@pytest.mark.parametrize("text", [
    "I loved Good Will Hunting",  # a title, not Will Smith
    "something big and loud", "made of stone", "a movie that will make me laugh", "a tom and jerry cartoon",
    "a young stone age hero",
])
def test_no_person_where_there_is_none(text):
    assert people(text) == []


def test_near_names_are_not_confused():
    assert people("a movie with Jimmy Carr") == [(("Jimmy Carr",), "cast", False)]  # not Jim Carrey
    assert people("a movie with Jim Carrey") == [(("Jim Carrey",), "cast", False)]
    assert people("with jimmy car") == []  # close to Jimmy Carr, but he has too few credits to guess


def test_ambiguous_surnames_are_not_guessed():
    assert people("a Stone film") == []  # Emma or Sharon: neither dominates


def test_accents_do_not_split_a_person():
    index = PeopleIndex(CREDITS)
    assert index.person("Andy Garcia").credits == 9 and index.person("Andy García").name == "Andy García"


@pytest.mark.parametrize("text,lo,hi,negated", [
    ("a comedy from the 80s", 1980, 1989, False),
    ("films from the 1940s", 1940, 1949, False),
    ("seventies sci-fi", 1970, 1979, False),
    ("the late 90s", 1996, 1999, False),
    ("something before 1970", None, 1969, False),
    ("a thriller made after 2012", 2013, None, False),
    ("2015 or later please", 2015, None, False),
    ("since the 80s", 1980, None, False),
    ("made in 2005 or earlier", None, 2005, False),
    ("between 1995 and 2005", 1995, 2005, False),
    ("pre-2000 action", None, 1999, False),
    ("recent horror", 2014, None, False),
    ("an old western", None, 1979, False),
    ("nothing before 1980", 1980, None, False),  # a negated bound turns around
    ("not from the 80s", 1980, 1989, True),  # a negated span stays a span, negated
    ("a war film, no 90s movies please", 1990, 1999, True),
])
def test_years(text, lo, hi, negated):
    assert [(c.lo, c.hi, c.negated) for c in of(text, Years)] == [(lo, hi, negated)]


@pytest.mark.parametrize("text,lo,hi", [
    ("something under 90 minutes", None, 89), ("less than two hours", None, 119), ("a short movie", None, 95),
    ("nothing too long", None, 120), ("over 2 hours", 121, None), ("at most 100 min", None, 100),
])
def test_runtime(text, lo, hi):
    assert [(c.lo, c.hi) for c in of(text, Runtime)] == [(lo, hi)]


def test_quality_mood_and_soft_dislikes():
    assert [c.level for c in of("a highly rated drama", Quality)] == ["high"]
    assert [c.level for c in of("any hidden gems?", Quality)] == ["gem"]
    assert read("something lighter now").mood == "lighter"
    p = read("I want a scary sci-fi movie, nothing too gory, something like Alien")
    assert {"gore", "splatter"} <= set(p.disliked_tags) and "horror" in p.liked_tags
    assert "violence" in read("not too violent please").disliked_tags
    assert "depressing" in read("nothing depressing").disliked_tags
    assert "gore" in read("I love gore").liked_tags


def test_requested_and_refused_genres_are_hard_but_cue_words_stay_soft():
    p = read("a Brad Pitt movie, but no war films")
    assert [(c.genres, c.negated) for c in of("a Brad Pitt movie, but no war films", Genres)] == [(("War",), True)]
    assert "war" in p.disliked_tags
    assert [(c.genres, c.negated) for c in of("a comedy, not a thriller", Genres)] == [
        (("Comedy",), False), (("Thriller",), True)]
    # "no blood" turns horror down (soft), but does not rule every horror film out
    assert not [c for c in of("a comedy, no blood", Genres) if c.negated]


def test_the_query_keeps_the_request_not_the_people_or_years():
    p = read("a funny movie with Tom Hanks from the 90s")
    assert "Hanks" not in p.query and "90s" not in p.query and "funny" in p.query
    assert p.constraints.describe() == "comedy · with Tom Hanks · 1990–1999"


def test_a_title_beats_a_name_inside_it_and_a_name_beats_a_one_word_title():
    p = read("I loved Good Will Hunting")
    assert [m.id for m in p.items] == ["1"] and not people("I loved Good Will Hunting")
    assert people("a movie with Will Smith") == [(("Will Smith",), "cast", False)]
    assert "1" not in [m.id for m in read("a movie with Will Smith").items]


def test_find_wishes_longest_reading_wins():
    ws = find_wishes("a western from the 1990s or later", 2018)
    assert [(w.kind, w.value) for w in ws] == [("years", (1990, None))]
