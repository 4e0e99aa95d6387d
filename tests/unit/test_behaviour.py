"""Everyone's behaviour: item-kNN scores from an interaction log, and how B blends them in."""

from __future__ import annotations

import gzip
import math

import numpy as np
import pytest

from chatrec.core import scoring as rank
from chatrec.recommend.behaviour import Behaviour, InteractionError, InteractionLog, log_for, read_interactions


def brute_force(likes: dict[str, set[int]], n_items: int, liked: dict[int, float]) -> np.ndarray:
    users = {i: {u for u, items in likes.items() if i in items} for i in range(n_items)}
    out = np.zeros(n_items)
    for i in range(n_items):
        for j, w in liked.items():
            if users[i] and users[j]:
                out[i] += w * len(users[i] & users[j]) / math.sqrt(len(users[i]) * len(users[j]))
    for j in liked:
        out[j] = 0.0
    return out / out.max() if out.max() > 0 else out


def test_scores_are_the_co_occurrence_cosine_scaled_to_one():
    rng = np.random.default_rng(7)
    n_items = 30
    likes = {f"u{u}": set(rng.choice(n_items, size=rng.integers(1, 8), replace=False).tolist()) for u in range(40)}
    log = InteractionLog.from_pairs("t", n_items, ((u, i) for u, items in likes.items() for i in items))
    for liked in ({3: 1.0}, {3: 1.0, 11: 0.5}, {0: 0.2, 5: 1.0, 29: 0.7}):
        got = log.scores(liked)
        assert got is not None
        np.testing.assert_allclose(got, brute_force(likes, n_items, liked), atol=1e-12)
        assert got.max() == pytest.approx(1.0) and all(got[j] == 0 for j in liked)


def test_no_co_liked_item_means_no_collaborative_score():
    log = InteractionLog.from_pairs("t", 5, [("a", 0), ("a", 1), ("b", 2)])
    assert log.scores({2: 1.0}) is None  # b liked only item 2
    assert log.scores({4: 1.0}) is None  # nobody liked item 4
    assert log.scores({0: 0.0}) is None  # zero strength is no like
    assert Behaviour(((log, 1.0),)).collaborative({2: 1.0}) is None


def test_logs_blend_by_weight_and_silent_logs_step_aside():
    a = InteractionLog.from_pairs("a", 4, [("x", 0), ("x", 1)])
    b = InteractionLog.from_pairs("b", 4, [("y", 0), ("y", 2)])
    c = InteractionLog.from_pairs("c", 4, [("z", 3)])  # says nothing about item 0
    mixed = Behaviour(((a, 1.0), (b, 3.0), (c, 5.0))).collaborative({0: 1.0})
    np.testing.assert_allclose(mixed, [0, 0.25, 0.75, 0])


def test_log_for_maps_ids_and_drops_unknown_items():
    log = log_for("t", [("u", "m1"), ("u", "m2"), ("u", "gone"), ("v", "m1")], {"m1": 0, "m2": [1, 2]}, 3)
    assert log.n_likes == 4  # m2 is joined to two catalogue rows
    np.testing.assert_array_equal(log.degree, [2, 1, 1])


def test_read_interactions_formats_and_errors(tmp_path):
    ratings = tmp_path / "r.csv.gz"
    ratings.write_bytes(gzip.compress(b"userId,movieId,rating,timestamp\n1,10,4.5,0\n1,11,3.0,0\n2,10,4.0,0\n"))
    assert read_interactions(ratings) == [("1", "10"), ("2", "10")]
    weights = tmp_path / "w.csv"
    weights.write_text("user,item,weight\na,x,2\na,y,0\nb,y,1\n")
    assert read_interactions(weights) == [("a", "x"), ("b", "y")]
    plain = tmp_path / "p.csv"
    plain.write_text("session,item\ns1,x\n")
    assert read_interactions(plain) == [("s1", "x")]
    bad = tmp_path / "bad.csv"
    bad.write_text("who,what\n1,2\n")
    with pytest.raises(InteractionError, match="no user column"):
        read_interactions(bad)
    bad.write_text("user,item,rating\n1,2,lots\n")
    with pytest.raises(InteractionError, match=r"bad.csv:2: rating is not a number"):
        read_interactions(bad)
    with pytest.raises(InteractionError, match="cannot read"):
        read_interactions(tmp_path / "missing.csv")


def test_fuse_blends_the_collaborative_share_into_b_only():
    cos, prior = np.array([0.2, 0.4]), np.array([0.8, 0.2])
    zeros = np.zeros(2)
    w = rank.Weights(collaborative=0.25)
    plain = rank.fuse(cos, prior, zeros, zeros, weights=w)
    np.testing.assert_allclose(plain.behaviour, prior)  # nothing liked: the prior alone
    blended = rank.fuse(cos, prior, zeros, zeros, weights=w, collab=np.array([0.0, 1.0]))
    np.testing.assert_allclose(blended.behaviour, [0.75 * 0.8, 0.75 * 0.2 + 0.25])
    np.testing.assert_allclose(blended.similarity, plain.similarity)
    with pytest.raises(ValueError, match="collaborative"):
        rank.Weights(collaborative=1.5)


def test_tuned_weights_load_per_collection_and_explicit_settings_win(tmp_path, monkeypatch):
    import json

    from chatrec.settings import Settings

    for key in list(__import__("os").environ):
        if key.startswith("CHATREC_"):
            monkeypatch.delenv(key)
    (tmp_path / "tuned_weights.json").write_text(json.dumps({"my-shop": {"weights": {
        "w_similarity": 0.1, "w_behaviour": 0.6, "w_content": 0.3, "collaborative": 0.75, "mmr_lambda": 1.0}}}))
    s = Settings(data_dir=tmp_path)
    assert s.weights("movies") == rank.Weights()  # the paper's defaults elsewhere
    tuned = s.weights("my-shop")
    assert (tuned.similarity, tuned.behaviour, tuned.content, tuned.collaborative) == (0.1, 0.6, 0.3, 0.75)
    monkeypatch.setenv("CHATREC_W_SIMILARITY", "0.9")
    assert Settings(data_dir=tmp_path).weights("my-shop").similarity == 0.9
    assert Settings(data_dir=tmp_path, use_tuned=False).weights("my-shop") == rank.Weights(similarity=0.9)
    (tmp_path / "tuned_weights.json").write_text("{not json")  # a damaged file: the defaults, no crash
    assert Settings(data_dir=tmp_path).weights("my-shop") == rank.Weights(similarity=0.9)


def test_context_seeds_keep_the_recent_items_the_user_neither_liked_nor_disliked():
    from chatrec.core.profile import Profile
    from chatrec.recommend.query import CONTEXT_ITEMS, context_seeds

    p = Profile(liked_items={"a": 1.0}, disliked_items=frozenset({"b"}))
    items = ["a", "b", "c", "d", "c"] + [f"x{n}" for n in range(CONTEXT_ITEMS)]
    seeds = context_seeds(items, p, 0.5)
    assert list(seeds) == [f"x{n}" for n in range(CONTEXT_ITEMS)]  # the most recent ones, oldest first
    assert set(seeds.values()) == {0.5}
    assert context_seeds(["c", "d"], p, 0.5) == {"c": 0.5, "d": 0.5}
    assert list(context_seeds(["c", "d", "c"], p, 0.5)) == ["d", "c"]  # named again: counts from its latest mention
    assert list(context_seeds(["c"] + [f"x{n}" for n in range(CONTEXT_ITEMS)] + ["c"], p, 0.5))[-1] == "c"
    assert context_seeds(["c", "d"], p, 0.0) == {}  # switched off


def test_collaborative_seeds_are_likes_over_context_items():
    from types import SimpleNamespace

    from chatrec.recommend.behaviour import BehaviourModel
    from chatrec.recommend.query import Query
    from chatrec.recommend.recommender import Recommender

    seen = []
    model = SimpleNamespace(collaborative=lambda rows: seen.append(dict(rows)) or np.ones(3))
    catalogue = SimpleNamespace(index_of={"a": 0, "b": 1, "c": 2})
    fake = SimpleNamespace(behaviour=BehaviourModel(catalogue, lambda: model))
    Recommender.collaborative(fake, Query(liked_items={"a": 0.8}, context_items={"a": 0.5, "b": 0.5, "zz": 0.5}))
    assert seen == [{0: 0.8, 1: 0.5}]  # a like wins over the same item as context; unknown ids drop
    assert Recommender.collaborative(fake, Query(context_items={"c": 0.5})) is not None
    assert Recommender.collaborative(fake, Query()) is None
    assert Recommender.collaborative(fake, Query(context_items={"c": 0.0})) is None
    Recommender.collaborative(fake, Query(context_items={"c": 0.5}))
    assert len(seen) == 2  # the same seeds again: answered from the memo
