"""Pure reading of messages: negation scope, genre cues, title mentions."""

import pytest

from chatrec.reading.lexicon import read_genres, scan
from chatrec.reading.titles import TitleIndex, normalise_title


@pytest.mark.parametrize(
    "message,likes,dislikes",
    [
        ("something funny, no romance", {"Comedy"}, {"Romance"}),
        ("I'm not a fan of westerns or war films", set(), {"Western", "War"}),
        ("anything but horror", set(), {"Horror"}),
        ("I'm tired of sad dramas, I just want to laugh", {"Comedy"}, {"Drama"}),
        ("no horror, but a thriller is fine", {"Thriller"}, {"Horror"}),
        ("nothing too scary for my kids", {"Children"}, {"Horror"}),
        ("Not really into animation, I prefer live action dramas.", {"Drama"}, {"Animation"}),
        ("romance bores me; give me explosions", {"Action"}, {"Romance"}),
        ("a documentry about whales", {"Documentary"}, set()),  # typo snapped to the genre word
        ("creepy but not gory", {"Horror"}, set()),  # declining a feature of a wanted genre
        ("I wasn't a huge fan of westerns", set(), {"Western"}),
        ("I never watch horror movies", set(), {"Horror"}),  # a habit, not "not seen"
        ("I don't watch musicals", set(), {"Musical"}),
        ("I haven't seen many horror movies", set(), set()),  # not seen is not disliked
        ("I've never watched a western", set(), set()),
        ("hello there", set(), set()),
        ("What's the weather like?", set(), set()),
    ],
)
def test_read_genres(message, likes, dislikes):
    r = read_genres(message)
    assert set(r.likes) == likes and set(r.dislikes) == dislikes


def test_negation_does_not_cross_clauses():
    r = read_genres("I don't like musicals. Comedies are great.")
    assert r.dislikes == ("Musical",) and r.likes == ("Comedy",)


def test_positive_text_drops_negated_stretch():
    assert "romance" not in scan("something funny, but please no romance").positive_text
    assert "funny" in scan("something funny, but please no romance").positive_text


def test_extra_finders_share_the_negation_logic():
    finder = lambda clause: [(i, "tag:heist", "heist", False) for i in [clause.find("heist")] if i >= 0]
    assert scan("no heist movies please", [finder]).dislikes == ("tag:heist",)
    assert scan("a clever heist", [finder]).likes == ("tag:heist",)


@pytest.fixture
def titles():
    return TitleIndex(
        [
            ("1", "Alien", 1979, 0.9, ()),
            ("2", "Aliens", 1986, 0.8, ()),
            ("3", "The Thing", 1982, 0.7, ()),
            ("4", "The Thing", 2011, 0.3, ()),
            ("5", "Scary Movie", 2000, 0.5, ()),
            ("6", "Up", 2009, 0.9, ()),
            ("7", "La Cité des enfants perdus", 1995, 0.2, ("The City of Lost Children",)),
        ]
    )


def test_titles_found_by_reference(titles):
    found = titles.find("I loved Alien but The Thing (2011) was weak")
    assert [(m.item_id, m.text) for m in found] == [("1", "Alien"), ("4", "The Thing (2011)")]


def test_year_picks_the_remake_and_default_is_most_engaged(titles):
    assert titles.resolve("The Thing") == "3"
    assert titles.resolve("the thing", 2011) == "4"
    assert titles.resolve("City of Lost Children") == "7"
    assert titles.resolve("Nope") is None


def test_common_words_and_lower_case_phrases_are_not_titles(titles):
    assert titles.find("a scary movie to watch with friends") == []
    assert titles.find("give me a thumbs up") == []
    assert titles.find("Up next, something funny") == []  # sentence start says nothing
    assert titles.find("we watched Up twice") == []  # "up" is too common a word to trust
    assert [m.item_id for m in titles.find("we watched Aliens twice")] == ["2"]


def test_normalise_title():
    assert normalise_title("The Matrix") == "matrix"
    assert normalise_title("Amélie!") == "amelie"
    assert normalise_title("Fast & Furious") == "fast and furious"


def test_a_title_followed_by_its_own_year_is_a_title_even_where_a_bare_word_is_not(titles):
    # ReDial writes every mention as "Title (year)", often opening a message: "Up (2009) is my favourite"
    assert [(m.item_id, m.text) for m in titles.find("Up (2009) is my favourite")] == [("6", "Up (2009)")]
    assert [m.item_id for m in titles.find("I cried at the end of Up (2009).")] == ["6"]
    assert [m.item_id for m in titles.find("Alien (1979) still holds up")] == ["1"]
    # a year that belongs to no film of that name is no evidence: the common word stays a word
    assert titles.find("Up (1950) next, something funny") == []
    assert titles.find("that came up (2020) in the news") == []


@pytest.mark.parametrize(
    "message",
    [
        "I haven't seen heist movies",
        "I have never watched a heist film",
        "I'm not sure if I've seen a heist",
        "Didn't see the heist one yet",
        "I have seen a western but not a heist",  # "not" after a clause about seeing
    ],
)
def test_not_seen_is_neither_liked_nor_disliked(message):
    finder = lambda clause: [(i, "tag:heist", "heist", False) for i in [clause.find("heist")] if i >= 0]
    r = scan(message, [finder])
    assert r.unseen == ("tag:heist",) and not r.likes and not r.dislikes
    assert "heist" in r.positive_text  # an unseen stretch is not cut from the query
