"""Hard wishes (core.constraints): labels, masks over catalogue columns, index conditions, refinement."""

from __future__ import annotations

import numpy as np
import pytest

from chatrec.adapters.memory import MemoryIndex
from chatrec.catalogue.table import Catalogue
from chatrec.core.constraints import Constraints, Fit, Genres, People, Quality, Runtime, Years, fits
from chatrec.core.items import Item

ITEMS = [
    Item("1", "Big", year=1988, genres=("Comedy", "Fantasy"), cast=("Tom Hanks",), directors=("Penny Marshall",),
         runtime=104, n_ratings=90, mean_rating=3.6),
    Item("2", "Forrest Gump", year=1994, genres=("Comedy", "Drama", "Romance"), cast=("Tom Hanks", "Robin Wright"),
         directors=("Robert Zemeckis",), runtime=142, n_ratings=300, mean_rating=4.2),
    Item("3", "Top Gun", year=1986, genres=("Action",), cast=("Tom Cruise",), directors=("Tony Scott",), runtime=110,
         n_ratings=80, mean_rating=3.4),
    Item("4", "Fargo", year=1996, genres=("Comedy", "Crime"), directors=("Joel Coen", "Ethan Coen"), runtime=98,
         n_ratings=40, mean_rating=4.1),
    Item("5", "Nameless", genres=("Drama",), n_ratings=1, mean_rating=5.0),
]
CAT = Catalogue.from_items(ITEMS, np.eye(5))


def ids(constraint) -> list[str]:
    return [CAT.ids[r] for r in np.flatnonzero(constraint.mask(CAT))]


@pytest.mark.parametrize("constraint,expected,label", [
    (People(names=("Tom Hanks",), role="cast"), ["1", "2"], "with Tom Hanks"),
    (People(names=("Tom Hanks",), role="director"), [], "by Tom Hanks"),
    (People(names=("Joel Coen", "Ethan Coen"), role="director"), ["4"], "by Joel Coen or Ethan Coen"),
    (People(names=("tom  hanks",), role="any", negated=True), ["3", "4", "5"], "not with tom  hanks"),
    (Years(lo=1990, hi=1999), ["2", "4"], "1990–1999"),
    (Years(lo=1990), ["2", "4"], "1990 or later"),
    (Years(hi=1987), ["3"], "1987 or earlier"),
    (Years(lo=1990, hi=1999, negated=True), ["1", "3"], "not 1990–1999"),  # no year: neither in nor out
    (Runtime(hi=105), ["1", "4"], "under 106 min"),
    (Genres(genres=("Action", "Crime")), ["3", "4"], "action or crime"),
    (Genres(genres=("Comedy",), negated=True), ["3", "5"], "not comedy"),
    (Quality(level="high"), ["2", "4"], "highly rated"),
])
def test_each_constraint_masks_the_right_rows(constraint, expected, label):
    assert ids(constraint) == expected
    assert constraint.label == label


def test_the_index_applies_the_same_conditions_as_the_mask():
    from chatrec.catalogue.index import item_metadata

    index = MemoryIndex("c")
    index.create({})
    index.upsert([it.id for it in ITEMS], np.eye(5), [item_metadata(it, "h") for it in ITEMS])
    for c in (People(names=("Tom Hanks",), role="cast"), People(names=("Tom Cruise",), role="cast", negated=True),
              Years(lo=1990, hi=1999), Years(hi=1987), Runtime(hi=105), Genres(genres=("Action", "Crime")),
              Genres(genres=("Comedy",), negated=True), Years(lo=1990, hi=1999, negated=True)):
        conditions = c.conditions()
        if conditions is None:  # an index cannot say it exactly: the catalogue mask does
            continue
        got = sorted(i for i, _ in index.query(np.ones(5), 10, conditions))
        assert got == sorted(ids(c)), c


def test_describe_refine_find_and_round_trip():
    cs = Constraints((Genres(genres=("Comedy",)), People(names=("Tom Hanks",), role="cast"), Years(lo=1990, hi=1999)))
    assert cs.describe() == "comedy · with Tom Hanks · 1990–1999"
    later = cs.refined(Constraints((Years(lo=1980),)))
    assert later.labels == ["comedy", "with Tom Hanks", "1980 or later"]  # same kind: the newer replaces it
    assert cs.find("hanks").label == "with Tom Hanks" and cs.find("1990-1999").label == "1990–1999"
    assert cs.find("") is None and cs.without("comedy").labels == ["with Tom Hanks", "1990–1999"]
    assert Constraints.from_json(cs.to_json()) == cs
    assert Constraints.from_json([{"kind": "telepathy", "level": 3}, *cs.to_json()]) == cs  # unknown kinds drop


def test_fits_say_which_constraint_each_row_meets():
    cs = Constraints((People(names=("Tom Hanks",), role="cast"), Years(lo=1990, hi=1999)))
    masks = cs.masks(CAT)
    out = fits(cs, masks, [0, 1], closest=[0])
    assert out[0] == Fit((("with Tom Hanks", True), ("1990–1999", False)), closest=True)
    assert out[1].all_met and out[0].missed() == ["1990–1999"]
