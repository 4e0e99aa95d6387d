"""Learned weights: `chatrec tune` cross-validates on real ReDial conversations, saves, and is used."""

from __future__ import annotations

import json

import numpy as np
import pytest

from chatrec.eval import tuning
from conftest import REDIAL_CONVERSATIONS, REDIAL_MOVIES, private_data_dir, run_cli



def test_simplex_grid_sums_to_one():
    grid = tuning.simplex(0.1)
    assert len(grid) == 66 and all(abs(sum(p) - 1) < 1e-9 for p in grid)
    assert tuning.folds_of(list(range(7)), 3) == [0, 1, 2, 0, 1, 2, 0]
    assert len(tuning.grid()) == 66 * len(tuning.COLLAB_GRID)
    assert len(tuning.grid(("seed_genres",))) == 66 * len(tuning.COLLAB_GRID) * len(tuning.SEED_GRID)
    joint = tuning.grid(tuning.SEED_KNOBS)  # seed_genres + seed_people are shares of C: at most 1
    assert joint and all(p["seed_genres"] + p["seed_people"] <= 1 for p in joint)


@pytest.mark.slow
def test_tune_cross_validates_saves_and_eval_uses_the_weights(default_data_dir, tmp_path):
    data_dir = private_data_dir(default_data_dir, tmp_path / "data")
    env = {"CHATREC_DATA_DIR": str(data_dir)}
    movies = str(REDIAL_MOVIES)
    proc = run_cli("tune", "--conversations", str(REDIAL_CONVERSATIONS), "--movies", movies, "--limit", "24",
                   "--folds", "2", "--save", "--json", env=env, timeout=1500)
    assert proc.returncode == 0, proc.stderr
    data = json.loads(proc.stdout)
    tuned, paper = data["tuned"], data["paper_defaults"]
    assert tuned["n_pairs"] == paper["n_pairs"] > 10
    assert [f["fold"] for f in tuned["per_fold"]] == [0, 1]
    for row in (tuned, paper):
        assert 0 <= row["recall@1"] <= row["recall@10"] <= row["recall@50"] <= 1
    assert {f["weights"]["w_similarity"] for f in paper["per_fold"]} == {0.5}  # the paper's defaults, fixed
    saved = json.loads((data_dir / "tuned_weights.json").read_text())["redial-movies"]
    assert saved["weights"] == data["saved"]["weights"]
    assert abs(sum(saved["weights"][k] for k in ("w_similarity", "w_behaviour", "w_content")) - 1) < 1e-9
    # the evaluation ranks with the saved weights; the default catalogue keeps the paper's
    proc = run_cli("eval", "redial", "--conversations", str(REDIAL_CONVERSATIONS), "--movies", movies,
                   "--fresh-only", "--limit", "5", "--json", env=env, timeout=900)
    assert proc.returncode == 0, proc.stderr
    used = json.loads(proc.stdout)["weights"]
    assert used["similarity"] == saved["weights"]["w_similarity"]
    assert used["collaborative"] == saved["weights"]["collaborative"]
    assert run_cli("tune", "--conversations", str(tmp_path / "nope.jsonl"), "--movies", movies,
                   env=env, timeout=120).returncode == 2


@pytest.mark.slow
def test_fast_grid_scoring_matches_the_product_ranking(default_data_dir, tmp_path):
    """The tuner scores many weight settings by one matrix product; it must agree with the product's
    own choose() (top-50 membership exactly, rank up to the order of equal scores)."""
    from chatrec.eval import redial
    from conftest import make_app

    base_app = make_app(private_data_dir(default_data_dir, tmp_path / "d"), use_tuned=False)
    setup = redial.setup(base_app, REDIAL_MOVIES)
    convs = redial.load_conversations(REDIAL_CONVERSATIONS, 16)
    settings = base_app.settings
    tuner = tuning.Tuner(setup.recommender, setup.extractor, convs, setup.movies, setup.items,
                         redial.rating_likes(settings), k=2)
    prepared = [p for f in tuner.prepare(tuning.Variant("all", seed_signals=True)) for p in f.prepared]
    assert any(p.features.seeds is not None for p in prepared)
    base = settings.weights()
    points = [{"w_similarity": a, "w_behaviour": b, "w_content": c, "collaborative": beta, "mmr_lambda": 1.0}
              for a, b, c in ((0.5, 0.3, 0.2), (0.1, 0.6, 0.3), (0.0, 1.0, 0.0)) for beta in (0.0, 0.5, 1.0)]
    points += [{"w_similarity": 0.4, "w_behaviour": 0.4, "w_content": 0.2, "collaborative": 0.5, "mmr_lambda": 1.0,
                "seed_similarity": s, "seed_genres": g, "seed_people": pp}
               for s, g, pp in ((0.5, 0.0, 0.0), (0.0, 0.75, 0.0), (0.0, 0.0, 0.5), (0.25, 0.25, 0.5))]
    fast = tuning.ranks_without_mmr(prepared, points, base)
    for j, point in enumerate(points):
        slow = np.array([np.inf if r is None else r for r in tuning.score(prepared, tuning.weights_of(point, base))])
        np.testing.assert_array_equal(np.isfinite(fast[:, j]), np.isfinite(slow))
        assert np.mean(fast[:, j] == slow) > 0.9  # same rank unless tied scores are ordered by id


def test_seed_signals_mix_into_s_and_c_only_with_a_share():
    from chatrec.core import scoring

    cos, prior, content, dislike = np.array([0.2, 0.6, 0.4]), np.array([0.5, 0.5, 0.5]), np.array([1.0, 0.0, 0.5]), np.zeros(3)
    seeds = scoring.SeedSignals(similarity=np.array([0.9, 0.1, 0.5]), genres=np.array([0.0, 1.0, 0.5]),
                                people=np.array([0.0, 0.0, 1.0]))
    plain = scoring.fuse(cos, prior, content, dislike, weights=scoring.Weights(), seeds=seeds)
    np.testing.assert_allclose(plain.content, content)  # shares 0: the paper's score, seeds or not
    np.testing.assert_allclose(plain.similarity, [0.0, 1.0, 0.5])
    w = scoring.Weights(seed_similarity=0.5, seed_genres=0.25, seed_people=0.25)
    mixed = scoring.fuse(cos, prior, content, dislike, weights=w, seeds=seeds)
    np.testing.assert_allclose(mixed.similarity, 0.5 * np.array([0.0, 1.0, 0.5]) + 0.5 * np.array([1.0, 0.0, 0.5]))
    np.testing.assert_allclose(mixed.content, 0.5 * content + 0.25 * seeds.genres + 0.25 * seeds.people)
    assert w.uses_seeds and not scoring.Weights().uses_seeds
    with pytest.raises(ValueError):
        scoring.Weights(seed_genres=0.75, seed_people=0.5)
