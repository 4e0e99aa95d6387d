"""The chat engine and the one recommendation path on in-memory fakes (no Chroma, no model, no SQLite):
the turn pipeline, hard constraints, refinements, feedback, locking and per-turn results, in milliseconds."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from fakes import ScriptedModel, small_app

from chatrec.core.items import Item
from chatrec.core.scoring import fuse
from chatrec.engine import EngineError
from chatrec.recommend.query import Query


def people_catalogue() -> list[Item]:
    films = [
        ("1", "Big", 1988, ("Comedy", "Fantasy"), ("Tom Hanks",), ("Penny Marshall",)),
        ("2", "Sleepless in Seattle", 1993, ("Comedy", "Romance"), ("Tom Hanks", "Meg Ryan"), ("Nora Ephron",)),
        ("3", "Forrest Gump", 1994, ("Comedy", "Drama"), ("Tom Hanks",), ("Robert Zemeckis",)),
        ("4", "Toy Story", 1995, ("Animation", "Comedy"), ("Tom Hanks", "Tim Allen"), ("John Lasseter",)),
        ("5", "That Thing You Do!", 1996, ("Comedy", "Drama"), ("Tom Hanks",), ("Tom Hanks",)),
        ("6", "You've Got Mail", 1998, ("Comedy", "Romance"), ("Tom Hanks", "Meg Ryan"), ("Nora Ephron",)),
        ("7", "Saving Private Ryan", 1998, ("Action", "Drama", "War"), ("Tom Hanks",), ("Steven Spielberg",)),
        ("8", "Cast Away", 2000, ("Drama",), ("Tom Hanks",), ("Robert Zemeckis",)),
        ("9", "Top Gun", 1986, ("Action",), ("Tom Cruise",), ("Tony Scott",)),
        ("10", "Jerry Maguire", 1996, ("Comedy", "Drama", "Romance"), ("Tom Cruise",), ("Cameron Crowe",)),
        ("11", "Alien", 1979, ("Horror", "Sci-Fi"), ("Sigourney Weaver",), ("Ridley Scott",)),
        ("12", "Aliens", 1986, ("Action", "Horror", "Sci-Fi"), ("Sigourney Weaver",), ("James Cameron",)),
        ("13", "The Thing", 1982, ("Horror", "Sci-Fi"), ("Kurt Russell",), ("John Carpenter",)),
        ("14", "Groundhog Day", 1993, ("Comedy", "Fantasy", "Romance"), ("Bill Murray",), ("Harold Ramis",)),
        ("15", "Ghostbusters", 1984, ("Action", "Comedy", "Sci-Fi"), ("Bill Murray",), ("Ivan Reitman",)),
    ]
    return [Item(i, t, text=f"{t} ({y}). A {' '.join(g).lower()} film.", year=y, genres=g, cast=c, directors=d,
                 n_ratings=50 + 3 * int(i), mean_rating=3.5 + int(i) % 3 * 0.3, runtime=90 + int(i) * 3)
            for i, t, y, g, c, d in films]


@pytest.fixture
def app():
    return small_app(people_catalogue())


def test_the_papers_worked_example_through_the_recommend_path():
    """Articles A, B, C: equal S, B from their engagement, C from the liked tags they carry; the product's own
    path ranks them A, C, B, and each score is the one formula over the components it shows."""
    def article(ident, n_tags, ratings):
        return Item(ident, f"Article {ident}", text="the same text", tags=tuple(f"t{i}" for i in range(n_tags)),
                    n_ratings=ratings, mean_rating=4.0)

    app = small_app([article("A", 3, 500), article("B", 0, 20), article("C", 1, 60)])
    result = app.recommender.recommend(Query(liked_tags={"t0": 1.0, "t1": 1.0, "t2": 1.0}), k=3)
    assert [r.item.id for r in result.items] == ["A", "C", "B"]
    for r in result.items:
        b = r.breakdown
        again = fuse(np.array([b.similarity]), np.array([b.behaviour]), np.array([b.content]), np.array([0.0]),
                     normalise=False)
        assert b.score == pytest.approx(float(again.score[0]))


def test_a_person_an_era_and_both_are_honoured(app):
    engine = app.one_shot
    hanks = engine.recommend("something with Tom Hanks", k=5)
    assert all("Tom Hanks" in r.item.cast for r in hanks.recommendations)
    nineties = engine.recommend("a comedy from the 90s", k=5)
    assert all(1990 <= r.item.year <= 1999 and "Comedy" in r.item.genres for r in nineties.recommendations)
    both = engine.recommend("a funny movie with Tom Hanks from the 90s", k=4)
    assert both.understood == "comedy · with Tom Hanks · 1990–1999"
    assert {r.item.title for r in both.recommendations} < {"Sleepless in Seattle", "Forrest Gump", "Toy Story",
                                                           "That Thing You Do!", "You've Got Mail"}
    assert not both.constraint_note
    for r in both.recommendations:
        assert r.fit.all_met and not r.fit.closest


def test_a_negation_keeps_someone_out(app):
    reply = app.one_shot.recommend("a comedy, not with Tom Hanks", k=3)
    assert reply.recommendations and all("Tom Hanks" not in r.item.cast for r in reply.recommendations)
    assert not reply.constraint_note  # three comedies without him: enough for three picks


def test_too_few_matches_are_said_and_the_closest_are_marked(app):
    reply = app.one_shot.recommend("a Tom Cruise comedy from the 90s", k=3)
    assert reply.constraint_note and reply.constraint_note.startswith("Only 1 item meets")
    first, *rest = reply.recommendations
    assert first.item.title == "Jerry Maguire" and first.fit.all_met and not first.fit.closest
    assert rest and all(r.fit.closest and not r.fit.all_met for r in rest)
    none = app.one_shot.recommend("a horror film with Tom Cruise", k=3)
    assert none.constraint_note.startswith("Nothing in the catalogue meets all of")


def test_the_chat_keeps_constraints_until_the_subject_changes(app):
    engine = app.engine
    s = engine.session("u")
    engine.turn(s, "something with Tom Hanks").text()
    reply = engine.turn(s, "from the 90s")  # a refinement: the person stays, the years join
    assert reply.understood.startswith("with Tom Hanks · 1990–1999")
    assert all("Tom Hanks" in r.item.cast and 1990 <= r.item.year <= 1999 for r in reply.recommendations)
    again = engine.turn(s, "a scary sci-fi movie")  # a new request: the old hard wishes go
    assert "Tom Hanks" not in again.understood
    assert engine.profile_view(s)["constraints"] == ["sci-fi or horror"] or \
        set(engine.profile_view(s)["constraints"][0].split(" or ")) == {"sci-fi", "horror"}


def test_remove_takes_a_constraint_back(app):
    engine = app.engine
    s = engine.session("u2")
    engine.turn(s, "a comedy with Tom Hanks from the 90s").text()
    reply = engine.remove(s, "1990-1999")
    assert "1990" not in reply.understood and "with Tom Hanks" in reply.understood
    assert any(r.item.year < 1990 or r.item.year > 1999 for r in engine.more(s).recommendations + reply.recommendations)
    with pytest.raises(EngineError, match="nothing called"):
        engine.remove(s, "westerns")


def test_feedback_reranks_without_an_index_query_or_a_model_call(app, monkeypatch):
    model = ScriptedModel("1. fine picks for you")
    engine = small_app(people_catalogue(), model=model).engine
    s = engine.session("u3")
    engine.turn(s, "a comedy").text()
    calls = len(model.calls)
    monkeypatch.setattr(type(engine.recommender.retriever.index), "query",
                        lambda *a, **k: pytest.fail("feedback queried the index"))
    for n, event in enumerate(["like", "dislike", "watched", "skip", "click"], 1):
        reply = engine.feedback(s, n, event)
        assert reply.rerank_seconds is not None and reply.kind == "rerank"
    assert len(model.calls) == calls


def test_each_explanation_carries_its_own_outcome():
    """Two sessions explaining at once: each reply's outcome is its own (no shared last_* state)."""
    model = ScriptedModel("1. A fine comedy pick.", "garbage about The Godfather (1972)")
    engine = small_app(people_catalogue(), model=model).engine
    a, b = engine.session("a"), engine.session("b")
    ra = engine.turn(a, "a comedy")
    rb = engine.turn(b, "a scary movie")
    list(ra.lines())  # the model is called while the lines are read
    list(rb.lines())
    assert ra.outcome is not rb.outcome
    assert rb.outcome.withdrawn and not ra.outcome.withdrawn


def test_a_turn_finished_inside_the_sessions_lock_does_not_deadlock(app):
    engine = app.engine
    s = engine.session("u4")
    reply = engine.turn(s, "a comedy")
    done = threading.Event()

    def finish():
        with engine.locked(s):  # a front end that reads the session while it consumes the lines
            reply.text()
        done.set()

    t = threading.Thread(target=finish)
    t.start()
    t.join(10)
    assert done.is_set() and s.history[-1][0] == "assistant"


def test_a_like_while_the_explanation_streams_is_kept(app):
    model = ScriptedModel("1. a fine pick. 2. another one.")
    engine = small_app(people_catalogue(), model=model).engine
    s = engine.session("u5")
    reply = engine.turn(s, "a comedy")
    lines = reply.lines()
    engine.feedback(s, 2, "dislike")  # while the model "talks"
    disliked = next(iter(s.profile.disliked_items))
    list(lines)
    assert disliked in s.profile.disliked_items and disliked not in {r.item.id for r in s.shown}
    assert engine.state.load_profile("u5").disliked_items == s.profile.disliked_items


def test_feedback_by_item_id_even_when_ids_are_digits(app):
    engine = app.engine
    s = engine.session("ids")
    engine.turn(s, "a comedy").text()
    third = s.shown[2].item.id  # the catalogue's ids are digits: "5" is an id here, not pick 5
    reply = engine.feedback(s, third, "dislike")
    assert third not in {r.item.id for r in reply.recommendations} and third in s.profile.disliked_items
    with pytest.raises(EngineError, match="not in the current list"):
        engine.feedback(s, "no-such-id", "like")


def test_one_shot_calls_with_different_k_at_once_keep_their_own_length(app):
    results: dict[int, int] = {}

    def ask(k):
        for _ in range(20):
            results[k] = len(app.one_shot.recommend("a comedy", k=k).recommendations)
            assert results[k] == k

    threads = [threading.Thread(target=ask, args=(k,)) for k in (2, 7)]
    [t.start() for t in threads]
    [t.join(30) for t in threads]
    assert results == {2: 2, 7: 7}


def test_a_refinement_nothing_meets_changes_the_subject(app):
    engine = app.engine
    s = engine.session("subject")
    engine.turn(s, "something with Tom Cruise").text()
    reply = engine.turn(s, "something from the 1970s")  # no Tom Cruise film then: a new subject
    assert "Tom Cruise" not in reply.understood and "1970–1979" in reply.understood
