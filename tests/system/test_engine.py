"""The chat engine over the real index (full default catalogue), real embedder and real SQLite."""

from __future__ import annotations

import sqlite3

import numpy as np
import pytest

from conftest import fact_lines

from fakes import ScriptedModel as ScriptedBackend

from chatrec.adapters.sqlite_state import SqliteState
from chatrec.core.profile import Decay
from chatrec.engine import EngineError
from chatrec.llm.backends import LLMError

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def recommender(default_app):
    return default_app.recommender


def engine_for(default_app, state_path, model=None):
    """The default app's engine parts with their own state file (and chat model)."""
    from chatrec.engine import ChatEngine
    from chatrec.llm.explain import Explainer

    explainer = Explainer(model, default_app.vocabulary.titles)
    return ChatEngine(default_app.recommender, default_app.extractor, explainer, SqliteState(state_path))


@pytest.fixture
def engine(default_app, tmp_path):
    return engine_for(default_app, tmp_path / "state.sqlite3")


def test_unclear_message_gets_a_question_and_popular_picks(engine):
    s = engine.session("u-clarify")
    reply = engine.turn(s, "hi")
    assert reply.kind == "clarify" and reply.header.startswith("What are you in the mood for?")
    assert len(reply.recommendations) == engine.k
    assert all(r.breakdown.behaviour > 0.6 for r in reply.recommendations)  # popular, well rated


def test_turn_reads_preferences_and_ranks(engine):
    s = engine.session("u-turn")
    reply = engine.turn(s, "something funny, no romance")
    assert reply.kind == "picks" and reply.text()
    assert s.profile.liked_tags.get("comedy") == 1.0 and "romance" in s.profile.disliked_tags
    assert all("Comedy" in r.item.genres and "Romance" not in r.item.genres for r in reply.recommendations)


@pytest.mark.parametrize("first,second,genres", [
    ("something funny, no romance", "a western", {"Western"}),
    ("something funny, no romance", "more like Alien", {"Sci-Fi", "Horror"}),
    ("a dark crime thriller", "a documentary about music", {"Documentary"}),
    ("a romantic comedy for date night", "a scary movie", {"Horror"}),
])
def test_a_new_request_leads_the_next_picks(engine, first, second, genres):
    """After a request and a like, the next request is what the list is about; the profile only tilts it
    (before the focus shift, these lists had 2, 2, 0 and 1 of 5 with the asked genre)."""
    s = engine.session(f"u-switch-{first}-{second}")
    engine.turn(s, first).text()
    engine.feedback(s, 1, "like")
    engine.turn(s, second).text()
    hits = sum(bool(genres & set(r.item.genres)) for r in s.shown[:5])
    assert hits >= 4, [(r.item.display_title, r.item.genres) for r in s.shown[:5]]
    if "no romance" in first:  # what the user avoids does not move with the focus
        assert all("Romance" not in r.item.genres for r in s.shown)


@pytest.mark.parametrize("request_,avoid,genre,banned", [
    ("a space adventure", "no horror please", "Sci-Fi", "Horror"),
    ("more like Alien", "I hated Prometheus, nothing too gory", "Sci-Fi", "Horror"),
])
def test_a_message_that_only_says_what_to_avoid_keeps_the_request(engine, request_, avoid, genre, banned):
    """Embedding "no horror please" as the request asked for horror; it only refines the last request."""
    s = engine.session(f"u-refine-{avoid}")
    engine.turn(s, request_).text()
    engine.turn(s, avoid).text()
    assert s.request == request_ and s.profile.last_query == request_
    picks = [(r.item.display_title, r.item.genres) for r in s.shown[:5]]
    assert sum(genre in g for _, g in picks) >= 4 and not any(banned in g for _, g in picks), picks


def test_disliked_item_never_returns_in_the_session(engine):
    s = engine.session("u-dislike")
    engine.turn(s, "a space adventure").text()
    gone = s.shown[0].item.id
    reply = engine.feedback(s, 1, "dislike")
    assert gone not in {r.item.id for r in reply.recommendations}
    for text in ("a space adventure", "more space adventures please", "sci-fi"):
        engine.turn(s, text).text()
        assert gone not in {r.item.id for r in s.shown}
        for _ in range(3):
            assert gone not in {r.item.id for r in engine.more(s).recommendations}


def _like_third_pick(engine, user):
    s = engine.session(user)
    engine.turn(s, "an animated movie").text()
    liked = s.shown[2]
    before = list(s.shown)
    after = engine.feedback(s, 3, "like").recommendations
    assert s.profile.liked_items == {liked.item.id: 1.0}
    return liked, [r for r in before if r.item.id != liked.item.id], [r for r in after if r.item.id != liked.item.id]


def test_liked_item_pulls_similar_items_up(engine, recommender):
    """Without the interaction log, a like pulls up items whose embeddings are near the liked one."""
    model = recommender.behaviour.model
    recommender.behaviour.use(None)
    try:
        liked, before, after = _like_third_pick(engine, "u-like")
    finally:
        recommender.behaviour.use(model)
    cat = recommender.catalogue
    vec = cat.vectors[cat.index_of[liked.item.id]]

    def closeness(recs):
        return np.mean([float(cat.vectors[cat.index_of[r.item.id]] @ vec) for r in recs])

    assert closeness(after) > closeness(before)


def test_liked_item_pulls_co_liked_items_up(engine, recommender):
    """With everyone's behaviour (MovieLens likes), a like pulls up what the same people liked."""
    from chatrec.recommend.query import Query

    assert recommender.behaviour.model is not None
    liked, before, after = _like_third_pick(engine, "u-like-collab")
    collab = recommender.collaborative(Query(liked_items={liked.item.id: 1.0}))
    index_of = recommender.catalogue.index_of

    def co_liked(recs):
        return np.mean([collab[index_of[r.item.id]] for r in recs])

    assert co_liked(after) > co_liked(before)
    assert any(r.breakdown.behaviour > 0 for r in after)


def test_feedback_needs_no_llm_and_no_store_query(default_app, tmp_path, monkeypatch):
    backend = ScriptedBackend("1. fine picks for you")  # one answer: the turn's explanation only
    engine = engine_for(default_app, tmp_path / "s.sqlite3", backend)
    s = engine.session("u-fast")
    engine.turn(s, "a heist movie").text()
    calls = len(backend.calls)
    monkeypatch.setattr(default_app.vector_index, "query", lambda *a, **k: pytest.fail("feedback queried the store"))
    for n, event in enumerate(["like", "dislike", "watched", "skip", "click"], 1):
        engine.feedback(s, n, event)
    assert len(backend.calls) == calls


def test_llm_failure_never_breaks_a_turn(default_app, tmp_path):
    backend = ScriptedBackend(LLMError("server down"))
    engine = engine_for(default_app, tmp_path / "s.sqlite3", backend)
    s = engine.session("u-fail")
    reply = engine.turn(s, "a scary movie")
    text = reply.text()
    assert fact_lines(text, [r.item.display_title for r in reply.recommendations])  # the picks' facts
    assert reply.outcome.fallback_reason.startswith("LLM failed")
    assert s.history[-1][1].endswith(text.splitlines()[-1])  # the stored turn holds the fallback


def test_profile_and_history_survive_a_restart(default_app, tmp_path):
    path = tmp_path / "state.sqlite3"
    first = engine_for(default_app, path)
    s = first.session("alice")
    first.turn(s, "something funny, no romance").text()
    first.feedback(s, 1, "dislike")
    disliked = next(iter(s.profile.disliked_items))
    first.state.close()
    again = engine_for(default_app, path)
    t = again.session("alice")
    assert t.profile == s.profile and disliked in t.profile.excluded
    assert [m for m in t.history if m[0] == "user"] == [("user", "something funny, no romance")]
    assert t.shown and disliked not in {r.item.id for r in t.shown}  # where the user left off
    assert again.session("bob").profile.is_empty  # users are isolated


def test_forget_deletes_every_trace_at_the_storage_level(default_app, tmp_path):
    path = tmp_path / "state.sqlite3"
    engine = engine_for(default_app, path)
    secret = "zanzibar-heist-marker"
    for user in ("victim-user", "other-user"):
        s = engine.session(user)
        engine.turn(s, f"a {secret} movie with time travel").text()
        engine.feedback(s, 1, "like")
    engine.forget(engine.session("victim-user"))
    with sqlite3.connect(path) as db:
        for table in ("users", "profiles", "events", "messages"):
            assert db.execute(f"SELECT COUNT(*) FROM {table} WHERE user_id = 'victim-user'").fetchone()[0] == 0
            assert db.execute(f"SELECT COUNT(*) FROM {table} WHERE user_id = 'other-user'").fetchone()[0] > 0
    engine.forget(engine.session("other-user"))
    engine.state.close()
    raw = b"".join(p.read_bytes() for p in tmp_path.glob("state.sqlite3*"))
    assert b"victim-user" not in raw and b"other-user" not in raw and secret.encode() not in raw


def test_bad_feedback_is_a_clear_error(engine):
    s = engine.session("u-bad")
    with pytest.raises(EngineError, match="no list yet"):
        engine.feedback(s, 1, "like")
    engine.turn(s, "a western").text()
    with pytest.raises(EngineError, match="no pick number 9"):
        engine.feedback(s, 9, "like")
    with pytest.raises(EngineError, match="unknown event"):
        engine.feedback(s, 1, "teleport")


def test_earlier_picks_seed_the_next_turn_and_a_dislike_takes_its_pick_out(engine, recommender):
    """A new request carries the picks shown before it as conversation context (ReDial: a recommender's
    own suggestions steer its next ones); a clarifying question's cold picks do not count, nor a disliked pick."""
    s = engine.session("u-context")
    engine.turn(s, "hi")  # clarify: popular cold picks
    engine.turn(s, "a space adventure").text()
    assert s.context == [] and engine._query(s).context_items == {}
    first = [r.item.id for r in s.shown]
    engine.feedback(s, 1, "dislike")
    second = [r.item.id for r in s.shown]
    engine.turn(s, "something with robots").text()
    query = engine._query(s)
    assert first[0] not in query.context_items  # disliked
    assert set(query.context_items) == set(second) - {first[0]}
    assert set(query.context_items.values()) == {engine.context_seed}
    # the seeds move the collaborative part: without them there is none (nothing liked)
    from dataclasses import replace

    assert recommender.collaborative(replace(query, context_items={})) is None
    assert recommender.collaborative(query) is not None
    engine.reset(s)
    assert s.context == []


def test_a_liked_pick_stays_in_its_list_but_a_new_request_brings_new_picks(engine):
    """A like re-ranks the current list with the liked pick still in it; a later request does not offer it
    again (its own like events would otherwise put it at #1 of every later list), nor does /more."""
    s = engine.session("u-liked-once")
    engine.turn(s, "a space adventure with aliens").text()
    liked = s.shown[0].item.id
    reply = engine.feedback(s, 1, "like")
    assert liked in {r.item.id for r in reply.recommendations}
    engine.turn(s, "something with robots").text()
    assert s.shown and liked not in {r.item.id for r in s.shown}
    assert liked not in {r.item.id for r in engine.more(s).recommendations}
    # still liked: it steers the picks (less, now that a new request leads), it is just not re-offered
    assert s.profile.liked_items.get(liked) == pytest.approx(Decay().shift)


def test_a_movie_named_as_not_seen_is_not_a_dislike(engine, recommender):
    """ "I haven't seen X" says nothing against X; "I hated X" does (real title index of the catalogue)."""
    cat = recommender.catalogue
    alien = next(cat.ids[r] for r in range(cat.n) if cat.titles[r] == "Alien" and cat.years[r] == 1979)
    s = engine.session("u-unseen")
    engine.turn(s, "I haven't seen Alien (1979) yet, I want a scary sci-fi movie").text()
    assert alien not in s.profile.disliked_items and alien not in s.profile.liked_items
    assert alien not in s.profile.seen_items  # not "watched" either: it may be recommended
    assert "Alien (1979)" not in engine.profile_view(s)["watched_items"]
    assert not s.profile.disliked_tags and {"horror", "sci-fi"} <= set(s.profile.liked_tags)
    engine.turn(s, "I hated Alien (1979)").text()
    assert alien in s.profile.disliked_items
