"""The paper's fused score (core.scoring): the worked example, normalisations, penalties, MMR, invariants."""

import math

import numpy as np
import pytest

from chatrec.core import scoring
from chatrec.core.scoring import Weights

# The paper's worked example: three articles with raw S, B, C inputs.
PAPER = {"A": (1.0, 5.0, 3.0), "B": (1.0, 2.0, 0.0), "C": (1.0, 3.0, 1.0)}
PAPER_PRINTED_I = {"A": 1.8, "B": 0.8, "C": 1.2}


def _raw(names=("A", "B", "C"), weights=Weights()):
    s, b, c = (np.array([PAPER[n][i] for n in names]) for i in range(3))
    return scoring.fuse(s, b, c, np.zeros(len(names)), weights=weights, normalise=False)


def test_paper_worked_example_through_the_one_formula():
    """The same function the product ranks with (recommend, chat, tune), fed the paper's raw inputs."""
    scores = dict(zip("ABC", _raw().score))
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
    out = scoring.fuse(np.array([1.0]), np.array([0.5]), np.array([0.25]), np.array([0.0]), weights=w, normalise=False)
    assert out.score[0] == pytest.approx(0.2 + 0.1 + 0.15)
    pen = scoring.fuse(np.array([1.0]), np.array([1.0]), np.array([1.0]), np.array([0.4]), weights=w, normalise=False)
    assert pen.score[0] == pytest.approx(0.6)
    assert w.formula() == "0.2·S + 0.2·B + 0.6·C"


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
    assert scoring.rescale_similarity(np.array([0.2, 0.4, 0.6])) == pytest.approx([0.0, 0.5, 1.0])
    assert scoring.rescale_similarity(np.array([0.3, 0.3])) == pytest.approx([0.3, 0.3])
    assert scoring.rescale_similarity(np.array([-0.5])) == pytest.approx([0.0])
    assert scoring.rescale_similarity(np.array([])).size == 0


def test_user_behaviour_saturates_in_unit_interval():
    totals = np.array([0.0, -3.0, 1.0, 5.0, 50.0, 5000.0])
    out = scoring.fuse(np.zeros(6), np.zeros(6), np.zeros(6), np.zeros(6), totals, np.ones(6, dtype=bool))
    b_user = out.behaviour / Weights().user_share
    assert b_user[0] == 0 and b_user[1] == 0
    assert list(b_user[2:]) == sorted(b_user[2:]) and all(0 < v <= 1 for v in b_user[2:])


def test_engagement_prior_bounds_and_shrinkage():
    n = np.array([0.0, 100.0, 1.0, 100.0])
    mean = np.array([np.nan, 5.0, 5.0, 5.0])
    recent = np.array([0.0, 10.0, 0.0, 0.0])
    prior = scoring.engagement_prior(n, mean, recent, np.full(4, np.nan))
    assert prior[0] == 0.0 and 0.9 < prior[1] <= 1.0
    assert prior[2] < prior[3]  # one 5-star rating is shrunk toward the mean; many are not
    only_popularity = scoring.engagement_prior(np.zeros(2), np.full(2, np.nan), np.zeros(2), np.array([1.0, 9.0]))
    assert only_popularity[1] == pytest.approx(1.0) and 0 < only_popularity[0] < 1


def test_tag_share_weighted_and_counts_unknown_tags():
    from scipy.sparse import csr_matrix

    rows = csr_matrix(np.array([[1.0, 1.0, 0.0], [0.0, 0.0, 1.0]]))  # columns: comedy, drama, horror
    weights = {"comedy": 2.0, "horror": 1.0, "x": -1.0}
    columns = np.array([2.0, 0.0, 1.0])
    assert scoring.tag_share(rows, columns, weights) == pytest.approx([2 / 3, 1 / 3])
    # a liked tag the catalogue lacks still counts in the total: no item can carry it
    assert scoring.tag_share(rows, columns, {**weights, "unknown": 3.0}) == pytest.approx([2 / 6, 1 / 6])
    assert scoring.matched_tags({"comedy", "drama"}, weights) == ("comedy",)
    assert scoring.tag_share(rows, np.zeros(3), {}).tolist() == [0.0, 0.0]


def _pool():
    cos = np.array([0.9, 0.8, 0.5, 0.3])
    engagement = np.array([0.8, 0.7, 0.9, 0.2])
    content = np.array([0.5, 1.0, 0.0, 0.0])
    dislike = np.array([1.0, 0.0, 0.0, 0.0])
    return cos, engagement, content, dislike


def test_components_in_unit_interval_and_score_formula():
    out = scoring.fuse(*_pool(), event_totals=np.array([0, 0, 5.0, 0]), has_events=np.array([0, 0, 1, 0], bool))
    for arr in (out.similarity, out.behaviour, out.content, out.penalty):
        assert ((0 <= arr) & (arr <= 1)).all()
    assert out.score == pytest.approx(0.5 * out.similarity + 0.3 * out.behaviour + 0.2 * out.content - out.penalty)


def test_select_drops_excluded_sorts_and_is_deterministic():
    out = scoring.fuse(*_pool())
    ids = ["romcom", "comedy", "drama", "horror"]
    keep = np.array([True, True, False, True])
    a = scoring.select(ids, out, 3, keep=keep)
    assert a == scoring.select(ids, out, 3, keep=keep) and 2 not in a
    assert [out.score[i] for i in a] == sorted((out.score[i] for i in a), reverse=True)
    assert len(scoring.select(ids, out, 100)) == 4
    with pytest.raises(ValueError):
        scoring.select(ids, out, 0)


def test_top_k_equals_a_stable_full_sort():
    rng = np.random.default_rng(3)
    rel = rng.integers(0, 5, size=200).astype(float)  # many ties
    for k in (1, 7, 50, 199, 200, 300):
        assert scoring.top_k(rel, k) == [int(i) for i in np.argsort(-rel, kind="stable")[:k]]


def test_mmr_prefers_diverse_second_pick():
    # two near-duplicates at the top and a different item slightly below
    v = np.array([[1.0, 0.0], [0.999, 0.0447], [0.0, 1.0]])
    v = v / np.linalg.norm(v, axis=1, keepdims=True)
    rel = np.array([1.0, 0.99, 0.9])
    assert scoring.mmr_select(rel, v, 2, lam=1.0) == [0, 1]
    assert scoring.mmr_select(rel, v, 2, lam=0.7) == [0, 2]
    assert scoring.mmr_select(rel, v, 0, lam=0.7) == []


def test_select_with_vectors_uses_mmr_then_sorts():
    out = scoring.fuse(np.array([0.9, 0.89, 0.5]), np.zeros(3), np.zeros(3), np.zeros(3))
    v = np.array([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0]])
    chosen = scoring.select(["i0", "i1", "i2"], out, 2, Weights(mmr_lambda=0.5), v)
    assert set(chosen) == {0, 2}
    assert [out.score[i] for i in chosen] == sorted((out.score[i] for i in chosen), reverse=True)
