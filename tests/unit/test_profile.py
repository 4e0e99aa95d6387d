"""The pure profile: decay, overrides, events, serialisation."""

import pytest
from hypothesis import given
from hypothesis import strategies as st

from chatrec.core import profile as prof
from chatrec.core.profile import Decay, Profile


def test_tags_decay_and_drop_below_the_floor():
    p = prof.apply_preferences(Profile(), ["comedy"], ["romance"], query="funny, no romance")
    assert p.liked_tags == {"comedy": 1.0} and p.disliked_tags == {"romance": 1.0} and p.turns == 1
    p = prof.apply_preferences(p, disliked_tags=["gore"])  # nothing new wanted: the focus stays
    assert p.liked_tags == pytest.approx({"comedy": 0.7})
    assert p.disliked_tags == pytest.approx({"romance": 0.9, "gore": 1.0})  # dislikes fade slower
    for _ in range(6):
        p = prof.apply_preferences(p)
    assert "comedy" not in p.liked_tags  # 0.7**7 < 0.1
    assert "romance" in p.disliked_tags  # 0.9**7 = 0.48
    assert p.last_query == "funny, no romance"  # an empty message keeps the last request


def test_a_message_with_its_own_likes_moves_the_focus():
    d = Decay()
    p = prof.apply_preferences(Profile(), ["comedy"], ["romance"], {"1": 0.8})
    p = prof.apply_event(p, "2", "like")
    p = prof.apply_preferences(p, ["western"])
    assert p.liked_tags == pytest.approx({"comedy": d.shift, "western": 1.0})  # not 0.7: the request moved
    assert p.disliked_tags == pytest.approx({"romance": d.dislike_decay})  # what to avoid does not move
    assert p.liked_items == pytest.approx({"1": 0.8 * d.shift, "2": 1.0 * d.shift})  # still liked, pull less
    p = prof.apply_preferences(p, mentioned_items={"3": 0.8})  # "more like Alien" moves it too
    assert p.liked_items == pytest.approx({"1": d.item_floor, "2": d.item_floor, "3": 0.8})
    for _ in range(5):
        p = prof.apply_preferences(p, ["horror"])
    assert set(p.liked_items) == {"1", "2", "3"} and min(p.liked_items.values()) == d.item_floor  # never lost
    assert {"1", "3"} <= p.excluded  # named titles are known to the user


GENRES = {"superbad": ("comedy",), "toy-story": ("adventure", "animation", "children", "comedy", "fantasy"),
          "civil-war": ("action", "adventure", "sci-fi", "thriller"), "alien": ("horror", "sci-fi"),
          "step-brothers": ("comedy",)}


@pytest.mark.parametrize("said, liked_tags, liked_items, moves", [
    # a like in the same vein keeps the focus: the earlier likes decay as after any message
    (["comedy"], [], ["superbad"], False),
    (["action", "thriller", "superhero"], [], ["civil-war"], False),  # half its genres are in focus
    (["comedy"], ["comedy"], [], False),
    # something new moves it
    (["comedy"], [], ["toy-story"], True),  # a comedy, but mostly animation for children
    (["comedy"], ["western"], [], True),
    (["crime", "thriller"], [], ["alien"], True),
    ([], [], ["step-brothers"], False),  # liked titles only: their genres are the focus (see the profile below)
])
def test_a_like_in_the_same_vein_does_not_move_the_focus(said, liked_tags, liked_items, moves):
    p = prof.apply_preferences(Profile(), said, mentioned_items={"superbad": 0.8} if not said else None)
    assert prof.moves_focus(p, liked_tags, liked_items, GENRES) is moves
    after = prof.apply_preferences(p, liked_tags, mentioned_items={i: 0.8 for i in liked_items}, item_genres=GENRES)
    d = Decay()
    for t in said:
        if t not in liked_tags:
            assert after.liked_tags[t] == pytest.approx(d.shift if moves else d.like_decay)
    if not said:  # the earlier liked title keeps its full pull
        assert after.liked_items["superbad"] == pytest.approx(0.8)


def test_without_genres_every_like_moves_the_focus():
    p = prof.apply_preferences(Profile(), ["comedy"])
    assert prof.moves_focus(p, [], ["superbad"]) and not prof.moves_focus(p, [], [])


def test_saying_the_opposite_overrides():
    p = prof.apply_preferences(Profile(), disliked_tags=["horror"])
    p = prof.apply_preferences(p, liked_tags=["horror"])
    assert p.liked_tags == {"horror": 1.0} and "horror" not in p.disliked_tags


def test_mentioned_items_become_liked_or_disliked_and_are_not_recommended_back():
    p = prof.apply_preferences(Profile(), mentioned_items={"1": 0.8, "2": -0.9})
    assert p.liked_items == {"1": 0.8} and p.disliked_items == {"2"}
    assert {"1", "2"} <= p.excluded


def test_events():
    p = prof.apply_event(Profile(), "7", "like", ["comedy", "drama"])
    assert p.liked_items == {"7": 1.0} and p.events == {"7": 5.0}
    assert p.liked_tags == {"comedy": 0.3, "drama": 0.3}  # lent, weaker than a stated tag
    p = prof.apply_event(p, "7", "dislike")
    assert "7" not in p.liked_items and "7" in p.excluded and p.events["7"] == 0.0
    p = prof.apply_event(p, "8", "watched", ["comedy"])
    assert "8" in p.seen_items and p.liked_items["8"] == 0.7
    p = prof.apply_event(p, "9", "skip")
    assert p.events["9"] == -1.0 and "9" not in p.excluded
    with pytest.raises(ValueError, match="unknown event"):
        prof.apply_event(p, "9", "teleport")


def test_an_item_does_not_lend_a_tag_the_user_dislikes():
    p = prof.apply_preferences(Profile(), disliked_tags=["romance"])
    p = prof.apply_event(p, "1", "like", ["romance", "comedy"])
    assert "romance" not in p.liked_tags and p.liked_tags["comedy"] == Decay().item_tag_weight


def test_remove_a_tag_or_a_constraint():
    from chatrec.core.constraints import Constraints, People, Years

    wishes = Constraints((People(names=("Tom Hanks",), role="cast"), Years(lo=1990, hi=1999)))
    p = prof.apply_preferences(Profile(), ["comedy"], ["romance"], constraints=wishes)
    assert prof.remove(p, "romance")[0].disliked_tags == {}
    assert prof.remove(p, "comedy")[0].liked_tags == {}
    without, label = prof.remove(p, "tom hanks")
    assert label == "with Tom Hanks" and without.constraints.labels == ["1990–1999"]
    assert prof.remove(p, "1990-1999")[0].constraints.labels == ["with Tom Hanks"]
    assert prof.remove(p, "westerns") == (p, None)


def test_constraints_survive_a_round_trip_and_a_new_request_replaces_them():
    from chatrec.core.constraints import Constraints, Genres, People, Runtime, Years

    wishes = Constraints((People(names=("Joel Coen", "Ethan Coen"), role="director"), Years(lo=None, hi=1979),
                          Genres(genres=("War",), negated=True), Runtime(hi=89)))
    p = prof.apply_preferences(Profile(), ["comedy"], constraints=wishes, query="a Coen film")
    assert Profile.from_json(p.to_json()) == p
    refined = prof.apply_preferences(p, constraints=Constraints((Years(lo=1960, hi=None),)), new_request=False)
    assert refined.constraints.labels == ["by Joel Coen or Ethan Coen", "not war", "under 90 min", "1960 or later"]
    assert refined.last_query == "a Coen film"  # a refinement keeps the request
    fresh = prof.apply_preferences(refined, ["horror"], constraints=Constraints(), query="a scary movie")
    assert not fresh.constraints and fresh.last_query == "a scary movie"


@pytest.mark.parametrize("text,unclear", [
    ("hi", True), ("hello there!", True), ("what should I watch tonight?", True), ("recommend me a movie", True),
    ("", True), ("a heist", False), ("something with dragons", False), ("Alien", False),
])
def test_is_unclear(text, unclear):
    from chatrec.core.dialogue import is_unclear

    assert is_unclear([], [], [], text) is unclear


def test_tags_make_any_message_clear():
    from chatrec.core.dialogue import is_unclear

    assert not is_unclear(["comedy"], [], [], "hi")


@given(
    liked=st.lists(st.sampled_from(["comedy", "horror", "drama", "sci-fi"]), max_size=3),
    disliked=st.lists(st.sampled_from(["romance", "horror", "war"]), max_size=2),
    events=st.lists(st.tuples(st.sampled_from(["1", "2", "3"]), st.sampled_from(prof.EVENTS)), max_size=8),
)
def test_round_trip_and_invariants(liked, disliked, events):
    p = prof.apply_preferences(Profile(), liked, disliked, query="q")
    for item, event in events:
        p = prof.apply_event(p, item, event, ["comedy"])
    assert Profile.from_json(p.to_json()) == p
    assert not set(p.liked_tags) & set(p.disliked_tags) or set(liked) & set(disliked)
    assert all(0 < w <= 1 for w in [*p.liked_tags.values(), *p.disliked_tags.values()])
    assert not set(p.liked_items) & p.disliked_items
