"""Pure ranking: the paper's worked example, normalisations, penalties, MMR and invariants."""

import math

import numpy as np
import pytest

from chatrec import rank
from chatrec.rank import Candidate, RankRequest, Weights

# The paper's worked example: three articles with raw S, B, C inputs.
PAPER = {"A": (1.0, 5.0, 3.0), "B": (1.0, 2.0, 0.0), "C": (1.0, 3.0, 1.0)}
PAPER_PRINTED_I = {"A": 1.8, "B": 0.8, "C": 1.2}


def test_paper_worked_example_through_the_real_fused_score():
    scores = {name: rank.fused_score(*raw) for name, raw in PAPER.items()}
    # I = 0.5·S + 0.3·B + 0.2·C on the raw inputs.
    assert scores == pytest.approx({"A": 2.6, "B": 1.1, "C": 1.6})
    assert sorted(scores, key=scores.get, reverse=True) == ["A", "C", "B"]


def test_paper_printed_scores_are_not_a_weighted_sum_of_its_inputs():
    """The paper prints I = 1.8, 0.8, 1.2 for these inputs. No weights (w0 + wS·S + wB·B + wC·C) can
    produce that: the three rows are linearly dependent while the printed values are not, so the
    least-squares fit leaves a residual. We keep the formula as written and note the discrepancy."""
    X = np.array([[1.0, *PAPER[n]] for n in "ABC"])
    y = np.array([PAPER_PRINTED_I[n] for n in "ABC"])
    # Rouché–Capelli: augmenting with y raises the rank, so X·w = y has no solution.
    assert np.linalg.matrix_rank(np.column_stack([X, y])) > np.linalg.matrix_rank(X)
    w, *_ = np.linalg.lstsq(X, y, rcond=None)
    assert np.abs(X @ w - y).max() > 0.01
    # ... but the order the paper derives from them, A > C > B, is what the formula gives.
    printed_order = sorted(PAPER_PRINTED_I, key=PAPER_PRINTED_I.get, reverse=True)
    assert printed_order == ["A", "C", "B"]


def test_fused_score_uses_configured_weights():
    w = Weights(similarity=0.2, behaviour=0.2, content=0.6)
    assert rank.fused_score(1.0, 0.5, 0.25, w) == pytest.approx(0.2 + 0.1 + 0.15)
    assert rank.fused_score(1.0, 1.0, 1.0, w, penalty=0.4) == pytest.approx(0.6)


@pytest.mark.parametrize("field", ["similarity", "behaviour", "content", "penalty"])
def test_weights_reject_negative_and_nan(field):
    with pytest.raises(ValueError):
        Weights(**{field: -0.1})
    with pytest.raises(ValueError):
        Weights(**{field: math.nan})


def test_weights_reject_bad_lambda():
    with pytest.raises(ValueError):
        Weights(mmr_lambda=1.5)


def test_rescale_similarity_minmax_and_degenerate():
    assert rank.rescale_similarity(np.array([0.2, 0.4, 0.6])) == pytest.approx([0.0, 0.5, 1.0])
    assert rank.rescale_similarity(np.array([0.3, 0.3])) == pytest.approx([0.3, 0.3])
    assert rank.rescale_similarity(np.array([-0.5])) == pytest.approx([0.0])
    assert rank.rescale_similarity(np.array([])).size == 0


def test_user_behaviour_saturates_in_unit_interval():
    assert rank.user_behaviour(0, 5) == 0.0
    assert rank.user_behaviour(-3, 5) == 0.0
    values = [rank.user_behaviour(x, 5) for x in (1, 5, 50, 5000)]
    assert values == sorted(values) and all(0 < v < 1 or v == pytest.approx(1.0) for v in values)


def test_global_engagement_bounds_and_shrinkage():
    assert rank.global_engagement(0, 100) == 0.0
    top = rank.global_engagement(100, 100, mean_rating=5.0, recent=10, max_recent=10)
    assert 0.9 < top <= 1.0
    # one 5-star rating is shrunk toward the prior; many 5-star ratings are not
    few = rank.global_engagement(1, 100, mean_rating=5.0)
    many = rank.global_engagement(100, 100, mean_rating=5.0)
    assert few < many


def test_tag_match_weighted_share():
    share, matched = rank.tag_match(frozenset({"comedy", "drama"}), {"comedy": 2.0, "horror": 1.0, "x": -1.0})
    assert share == pytest.approx(2 / 3)
    assert matched == ("comedy",)
    assert rank.tag_match(frozenset({"comedy"}), {}) == (0.0, ())


def _cands():
    return [
        Candidate("romcom", 0.9, frozenset({"comedy", "romance"}), 0.8),
        Candidate("comedy", 0.8, frozenset({"comedy"}), 0.7),
        Candidate("drama", 0.5, frozenset({"drama"}), 0.9),
        Candidate("horror", 0.3, frozenset({"horror"}), 0.2),
    ]


def test_breakdown_components_in_unit_interval_and_score_formula():
    req = RankRequest(liked_tags={"comedy": 1.0}, disliked_tags={"romance": 1.0}, user_events={"drama": 5.0})
    for r in rank.score_candidates(_cands(), req):
        b = r.breakdown
        for v in (b.similarity, b.behaviour, b.content, b.penalty):
            assert 0.0 <= v <= 1.0
        assert b.score == pytest.approx(0.5 * b.similarity + 0.3 * b.behaviour + 0.2 * b.content - b.penalty)


def test_disliked_tag_pushes_item_down_and_filter_removes_it():
    plain = [r.id for r in rank.rank(_cands(), RankRequest(), k=4)]
    assert plain[0] == "romcom"
    penalised = [r.id for r in rank.rank(_cands(), RankRequest(disliked_tags={"romance": 1.0}), k=4)]
    assert penalised[-1] == "romcom"
    filtered = rank.rank(_cands(), RankRequest(disliked_tags={"romance": 1.0}, filter_disliked=True), k=4)
    assert "romcom" not in [r.id for r in filtered]


def test_user_events_raise_behaviour():
    base = {r.id: r.breakdown.behaviour for r in rank.score_candidates(_cands(), RankRequest())}
    liked = {r.id: r.breakdown.behaviour for r in rank.score_candidates(_cands(), RankRequest(user_events={"horror": 10}))}
    assert liked["horror"] > base["horror"]
    assert liked["comedy"] == base["comedy"]


def test_exclusions_never_returned():
    out = rank.rank(_cands(), RankRequest(exclude_ids=frozenset({"romcom", "drama"})), k=4)
    assert {r.id for r in out} == {"comedy", "horror"}


def test_rank_sorted_deterministic_and_k_bounds():
    req = RankRequest(liked_tags={"comedy": 1.0})
    a = rank.rank(_cands(), req, k=3)
    b = rank.rank(_cands(), req, k=3)
    assert [r.id for r in a] == [r.id for r in b]
    scores = [r.score for r in a]
    assert scores == sorted(scores, reverse=True)
    assert len(rank.rank(_cands(), req, k=100)) == 4
    with pytest.raises(ValueError):
        rank.rank(_cands(), req, k=0)


def test_mmr_prefers_diverse_second_pick():
    # two near-duplicates at the top and a different item slightly below
    v = np.array([[1.0, 0.0], [0.999, 0.0447], [0.0, 1.0]])
    v = v / np.linalg.norm(v, axis=1, keepdims=True)
    rel = np.array([1.0, 0.99, 0.9])
    assert rank.mmr_select(rel, v, 2, lam=1.0) == [0, 1]
    assert rank.mmr_select(rel, v, 2, lam=0.7) == [0, 2]
    assert rank.mmr_select(rel, v, 0, lam=0.7) == []


def test_rank_with_vectors_uses_mmr_then_sorts():
    cands = [Candidate(f"i{i}", c, frozenset(), 0.0) for i, c in enumerate([0.9, 0.89, 0.5])]
    v = np.array([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0]])
    diverse = rank.rank(cands, RankRequest(), k=2, weights=Weights(mmr_lambda=0.5), vectors=v)
    assert {r.id for r in diverse} == {"i0", "i2"}
    assert [r.score for r in diverse] == sorted([r.score for r in diverse], reverse=True)
