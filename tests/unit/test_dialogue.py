"""The turn's decisions (core.dialogue): unclear, refinement or new request; mood turns."""

from __future__ import annotations

from chatrec.core.constraints import Constraints, Genres, People, Years
from chatrec.core.dialogue import plan_turn
from chatrec.core.preferences import MentionedItem, Preferences


def test_unclear_refine_and_request():
    assert plan_turn(None, {}, False).kind == "unclear"
    assert plan_turn(Preferences(query="hi there"), {}, False).kind == "unclear"
    refine = plan_turn(Preferences(disliked_tags=["horror"], query="please"), {"comedy": 1.0}, True)
    assert refine.kind == "refine" and refine.query is None
    years = Constraints((Years(lo=1980),))
    assert plan_turn(Preferences(constraints=years, query="from the"), {}, True).kind == "refine"
    # without a request in force there is nothing to refine: it is the request
    assert plan_turn(Preferences(constraints=years, query="from the"), {}, False).kind == "request"
    someone = Constraints((People(names=("Tom Hanks",), role="cast"),))
    new = plan_turn(Preferences(constraints=someone, query="something with"), {"horror": 1.0}, True)
    assert new.kind == "request" and new.query == "something with"  # someone new: a new subject
    liked = plan_turn(Preferences(items=[MentionedItem(title="Alien", id="1", sentiment=0.8)]), {}, True)
    assert liked.kind == "request"


def test_a_lighter_mood_turns_to_comedy_and_away_from_the_dark_genres_in_focus():
    plan = plan_turn(Preferences(mood="lighter", query="something lighter now"), {"horror": 1.0, "sci-fi": 1.0}, True)
    assert plan.kind == "request" and "comedy" in plan.liked_tags
    assert [(c.genres, c.negated) for c in plan.constraints if isinstance(c, Genres)] == [(("Horror",), True)]
    darker = plan_turn(Preferences(mood="darker"), {"comedy": 1.0}, True)
    assert any(c.negated and "Comedy" in c.genres for c in darker.constraints if isinstance(c, Genres))
