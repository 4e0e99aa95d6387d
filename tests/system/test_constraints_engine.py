"""Hard wishes through the engine on the real catalogue (real index, embedder, people from TMDB): a person, an
era, both, a negation, the fuzzy-name pitfalls, the "closest ones" message, refinements, /remove, mood turns,
and soft dislikes that reach the ranking."""

from __future__ import annotations

import pytest

from conftest import make_app

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def app(default_data_dir, tmp_path_factory):
    return make_app(default_data_dir, state_path=tmp_path_factory.mktemp("state") / "state.sqlite3")


def picks(app, text, k=5):
    reply = app.one_shot.recommend(text, k=k)
    assert len(reply.recommendations) == k, reply
    return reply, [r.item for r in reply.recommendations]


def test_a_person(app):
    reply, items = picks(app, "a funny movie with Tom Hanks")
    assert all("Tom Hanks" in it.cast for it in items), [(it.title, it.cast) for it in items]
    _, items = picks(app, "a Nolan film")
    assert all("Christopher Nolan" in it.directors for it in items)
    _, items = picks(app, "the Coen brothers")
    assert all({"Joel Coen", "Ethan Coen"} & set(it.directors) for it in items)


def test_an_era(app):
    _, items = picks(app, "a western from the 1960s")
    assert all(1960 <= it.year <= 1969 and "Western" in it.genres for it in items)
    _, items = picks(app, "a sci-fi film, nothing before 2010")
    assert all(it.year >= 2010 and "Sci-Fi" in it.genres for it in items)


def test_a_person_and_an_era(app):
    reply, items = picks(app, "a funny movie with Tom Hanks from the 90s")
    assert reply.understood == "comedy · with Tom Hanks · 1990–1999"
    assert all("Tom Hanks" in it.cast and 1990 <= it.year <= 1999 and "Comedy" in it.genres for it in items)
    _, items = picks(app, "Spielberg's films from the 80s")
    assert all("Steven Spielberg" in it.directors and 1980 <= it.year <= 1989 for it in items)


def test_a_negation(app):
    _, items = picks(app, "an action movie, not with Tom Cruise")
    assert all("Tom Cruise" not in it.cast and "Action" in it.genres for it in items)
    _, items = picks(app, "a Brad Pitt movie, but no war films")
    assert all("Brad Pitt" in it.cast and "War" not in it.genres for it in items)


def test_fuzzy_names_do_not_misfire(app):
    extract = app.extractor.extract
    assert not extract("I loved Good Will Hunting").constraints  # a title, not Will Smith
    assert extract("a movie with Will Smith").constraints.labels == ["with Will Smith"]
    assert "Jim Carrey" not in extract("a show with Jimmy Carr").constraints.describe()
    assert extract("a movie with jim carey").constraints.labels == ["with Jim Carrey"]  # misspelt, still him


def test_a_constraint_nobody_can_meet_says_so(app):
    reply, items = picks(app, "a Tom Cruise western from the 80s")
    assert reply.constraint_note.startswith("Nothing in the catalogue meets all of")
    assert all(r.fit.closest and not r.fit.all_met for r in reply.recommendations)


def test_the_chat_refines_replaces_and_removes(app):
    engine = app.engine
    s = engine.session("constraints")
    engine.turn(s, "a scary movie with zombies").text()
    reply = engine.turn(s, "from the 2000s")
    assert "2000–2009" in reply.understood
    assert all(2000 <= r.item.year <= 2009 for r in reply.recommendations)
    lighter = engine.turn(s, "something lighter now, a funny movie with Tom Hanks from the 90s")
    assert lighter.understood.startswith("comedy · with Tom Hanks · 1990–1999")
    assert all("Horror" not in r.item.genres and "Tom Hanks" in r.item.cast for r in lighter.recommendations)
    view = engine.profile_view(s)
    assert "with Tom Hanks" in view["constraints"] and "2000–2009" not in view["constraints"]
    after = engine.remove(s, "tom hanks")
    assert "with Tom Hanks" not in after.understood
    assert any("Tom Hanks" not in r.item.cast for r in after.recommendations)


def test_nothing_too_gory_lowers_gory_picks(app):
    gory = {"gore", "splatter", "gruesome", "bloody", "blood", "body horror"}
    for request in ("a scary sci-fi movie about a parasite", "a zombie movie"):
        before = app.one_shot.recommend(request, k=10).recommendations
        after = app.one_shot.recommend(f"{request}, nothing too gory", k=10)
        assert gory & set(after.preferences["disliked_tags"])
        n_before = sum(bool(gory & r.item.tag_keys) for r in before)
        n_after = sum(bool(gory & r.item.tag_keys) for r in after.recommendations)
        assert n_before > n_after, ([r.item.title for r in before], [r.item.title for r in after.recommendations])
        assert all(r.breakdown.penalty > 0 for r in after.recommendations if gory & r.item.tag_keys)
