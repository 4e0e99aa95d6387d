"""Pure ranking: the paper's fused score I(u,i) = wS·S + wB·B + wC·C, penalties and MMR.

Nothing here imports a database, an embedder or an LLM client: callers hand in numbers,
tag sets and vectors, and get back ordered recommendations with their breakdowns.

How each component is normalised to [0, 1] (see also README "Ranking"):

* S (similarity): the cosine between the user vector and each candidate, rescaled over the
  candidate pool, ``(cos - min) / (max - min)``, so the best semantic match gets 1 and the
  weakest candidate 0. When the pool's spread is tiny (< 1e-6) we fall back to ``clip(cos, 0, 1)``.
* B (behaviour): ``share_user · B_user + (1 - share_user) · B_global`` where
  ``B_user = 1 - exp(-events / user_scale)`` saturates the user's own weighted events on the item,
  and ``B_global`` is everyone's behaviour: the catalogue-wide engagement prior in [0, 1] (see
  :func:`global_engagement`), blended, once the user has liked items or been shown earlier picks, with
  the collaborative score (items liked by the same people as those seeds, :mod:`chatrec.behaviour`):
  ``B_global = (1 - collaborative) · prior + collaborative · collab``. With no user events and no
  seeds, B is the global prior alone.
* C (content): ``sum(w_t for liked tags t the item has) / sum(w_t for all liked tags)``.
* penalty: ``penalty_weight · sum(d_t for disliked tags the item has) / sum(d_t)``, subtracted
  from the fused score; with the default weight of 1 an item carrying every disliked tag
  loses a full point, which pushes it below any item that carries none.

The reported ``score`` is the fused score; MMR only chooses *which* candidates make the list
(a diverse set), and the list is then shown best score first.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

#: Weights of the user's own events on an item, before saturation (B_user).
EVENT_WEIGHTS: dict[str, float] = {
    "view": 1.0,
    "click": 2.0,
    "like": 5.0,
    "watched": 4.0,
    "purchase": 4.0,
    "skip": -1.0,
    "dislike": -5.0,
}


@dataclass(frozen=True)
class Weights:
    """The fused-score weights and the knobs of the normalisations above."""

    similarity: float = 0.5
    behaviour: float = 0.3
    content: float = 0.2
    penalty: float = 1.0
    mmr_lambda: float = 0.8
    collaborative: float = 0.5
    user_share: float = 0.6
    user_scale: float = 5.0

    def __post_init__(self) -> None:
        for name in ("similarity", "behaviour", "content", "penalty", "user_scale"):
            value = getattr(self, name)
            if not math.isfinite(value) or value < 0:
                raise ValueError(f"weight {name} must be a finite number >= 0, got {value!r}")
        if not 0.0 <= self.mmr_lambda <= 1.0:
            raise ValueError(f"mmr_lambda must be in [0, 1], got {self.mmr_lambda!r}")
        if not 0.0 <= self.collaborative <= 1.0:
            raise ValueError(f"collaborative must be in [0, 1], got {self.collaborative!r}")
        if not 0.0 <= self.user_share <= 1.0:
            raise ValueError(f"user_share must be in [0, 1], got {self.user_share!r}")


@dataclass(frozen=True)
class Breakdown:
    """The normalised components of one item's score; ``score`` is what the list is sorted by."""

    similarity: float
    behaviour: float
    content: float
    penalty: float
    score: float
    matched_tags: tuple[str, ...] = ()
    disliked_tags: tuple[str, ...] = ()

    def as_dict(self) -> dict[str, float]:
        return {
            "similarity": round(self.similarity, 6),
            "behaviour": round(self.behaviour, 6),
            "content": round(self.content, 6),
            "penalty": round(self.penalty, 6),
        }


@dataclass(frozen=True)
class Candidate:
    """What the ranker needs to know about one item. ``tags`` holds normalised tag keys."""

    id: str
    cosine: float
    tags: frozenset[str]
    global_engagement: float = 0.0


@dataclass(frozen=True)
class Ranked:
    id: str
    breakdown: Breakdown

    @property
    def score(self) -> float:
        return self.breakdown.score


@dataclass
class RankRequest:
    """The user side of a ranking call: tag weights, event totals and hard exclusions."""

    liked_tags: Mapping[str, float] = field(default_factory=dict)
    disliked_tags: Mapping[str, float] = field(default_factory=dict)
    user_events: Mapping[str, float] = field(default_factory=dict)
    exclude_ids: frozenset[str] = frozenset()
    filter_disliked: bool = False


def fused_score(s: float, b: float, c: float, weights: Weights = Weights(), penalty: float = 0.0) -> float:
    """I = wS·S + wB·B + wC·C − penalty, exactly as the paper writes it (no normalisation here)."""
    return weights.similarity * s + weights.behaviour * b + weights.content * c - penalty


def rescale_similarity(cosines: np.ndarray) -> np.ndarray:
    """Min-max rescale cosines over the candidate pool into [0, 1] (see module docstring)."""
    cosines = np.asarray(cosines, dtype=np.float64)
    if cosines.size == 0:
        return cosines
    lo, hi = float(cosines.min()), float(cosines.max())
    if hi - lo < 1e-6:
        return np.clip(cosines, 0.0, 1.0)
    return (cosines - lo) / (hi - lo)


def user_behaviour(event_total: float, scale: float) -> float:
    """Saturate a user's weighted event total on one item into [0, 1); negative totals count as 0."""
    if event_total <= 0 or scale <= 0:
        return 0.0
    return 1.0 - math.exp(-event_total / scale)


def global_engagement(
    n_events: float,
    max_events: float,
    mean_rating: float | None = None,
    prior_mean: float = 3.5,
    prior_count: float = 10.0,
    recent: float = 0.0,
    max_recent: float = 0.0,
    rating_range: tuple[float, float] = (0.5, 5.0),
) -> float:
    """Catalogue-wide engagement in [0, 1] from an interaction log.

    ``0.5·popularity + 0.3·quality + 0.2·recency`` where popularity is ``log1p(n)/log1p(max n)``,
    quality is the Bayesian-shrunk mean rating mapped onto [0, 1] (items with few ratings are pulled
    toward ``prior_mean``), and recency is ``log1p(recent)/log1p(max recent)``. Missing parts count 0.
    """
    popularity = math.log1p(max(n_events, 0.0)) / math.log1p(max_events) if max_events > 0 else 0.0
    quality = 0.0
    if mean_rating is not None and n_events > 0:
        lo, hi = rating_range
        shrunk = (n_events * mean_rating + prior_count * prior_mean) / (n_events + prior_count)
        quality = min(max((shrunk - lo) / (hi - lo), 0.0), 1.0)
    recency = math.log1p(max(recent, 0.0)) / math.log1p(max_recent) if max_recent > 0 else 0.0
    return min(max(0.5 * popularity + 0.3 * quality + 0.2 * recency, 0.0), 1.0)


def tag_match(item_tags: frozenset[str], weights: Mapping[str, float]) -> tuple[float, tuple[str, ...]]:
    """Weighted share of the given tags that the item carries, and which ones matched."""
    total = sum(w for w in weights.values() if w > 0)
    if total <= 0:
        return 0.0, ()
    matched = tuple(sorted(t for t, w in weights.items() if w > 0 and t in item_tags))
    return sum(weights[t] for t in matched) / total, matched


@dataclass(frozen=True)
class Scores:
    """The fused score and its components for a whole candidate pool, as aligned arrays."""

    similarity: np.ndarray
    behaviour: np.ndarray
    content: np.ndarray
    penalty: np.ndarray
    score: np.ndarray


def fuse(
    cosines: np.ndarray,
    engagement: np.ndarray,
    content: np.ndarray,
    dislike: np.ndarray,
    event_totals: np.ndarray | None = None,
    has_events: np.ndarray | None = None,
    weights: Weights = Weights(),
    collab: np.ndarray | None = None,
) -> Scores:
    """Vectorised fused score over a pool (same definitions as the module docstring).

    ``content``/``dislike`` are the liked/disliked tag-match shares in [0, 1]; ``event_totals`` the
    user's weighted events per candidate and ``has_events`` whether the user touched it at all;
    ``collab`` the collaborative score in [0, 1] (None without seeds: no likes, no earlier picks).
    """
    n = len(cosines)
    sims = rescale_similarity(np.asarray(cosines, dtype=np.float64))
    totals = np.zeros(n) if event_totals is None else np.asarray(event_totals, dtype=np.float64)
    touched = np.zeros(n, dtype=bool) if has_events is None else np.asarray(has_events, dtype=bool)
    if weights.user_scale > 0:
        b_user = np.where(totals > 0, 1.0 - np.exp(-np.maximum(totals, 0.0) / weights.user_scale), 0.0)
    else:
        b_user = np.zeros(n)
    share = np.where(touched, weights.user_share, 0.0)
    b_global = np.clip(np.asarray(engagement, dtype=np.float64), 0.0, 1.0)
    if collab is not None:
        beta = weights.collaborative
        b_global = (1.0 - beta) * b_global + beta * np.clip(np.asarray(collab, dtype=np.float64), 0.0, 1.0)
    b = share * b_user + (1.0 - share) * b_global
    c = np.asarray(content, dtype=np.float64)
    penalty = np.minimum(weights.penalty * np.asarray(dislike, dtype=np.float64), 1.0)
    score = weights.similarity * sims + weights.behaviour * b + weights.content * c - penalty
    return Scores(sims, b, c, penalty, score)


def score_candidates(
    candidates: Sequence[Candidate], request: RankRequest, weights: Weights = Weights()
) -> list[Ranked]:
    """Score every candidate (no exclusions, no ordering): one Ranked per candidate, same order."""
    matches = [tag_match(c.tags, request.liked_tags) for c in candidates]
    dislikes = [tag_match(c.tags, request.disliked_tags) for c in candidates]
    scores = fuse(
        np.array([c.cosine for c in candidates], dtype=np.float64),
        np.array([c.global_engagement for c in candidates], dtype=np.float64),
        np.array([m[0] for m in matches], dtype=np.float64),
        np.array([d[0] for d in dislikes], dtype=np.float64),
        np.array([request.user_events.get(c.id, 0.0) for c in candidates], dtype=np.float64),
        np.array([c.id in request.user_events for c in candidates], dtype=bool),
        weights,
    )
    return [
        Ranked(cand.id, breakdown(scores, i, matches[i][1], dislikes[i][1]))
        for i, cand in enumerate(candidates)
    ]


def breakdown(scores: Scores, i: int, matched: tuple[str, ...] = (), disliked: tuple[str, ...] = ()) -> Breakdown:
    return Breakdown(
        float(scores.similarity[i]), float(scores.behaviour[i]), float(scores.content[i]),
        float(scores.penalty[i]), float(scores.score[i]), matched, disliked,
    )


def select(
    ids: Sequence[str],
    scores: Scores,
    k: int,
    weights: Weights = Weights(),
    vectors: np.ndarray | None = None,
    keep: np.ndarray | None = None,
) -> list[int]:
    """Indices of the list to show: drop ``~keep``, choose a diverse top-k with MMR, best score first.

    Equal scores keep their pool order at the top-k cut-off and are shown by id, so equal inputs always
    give the same list.
    """
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    idx = np.arange(len(ids)) if keep is None else np.flatnonzero(keep)
    if idx.size == 0:
        return []
    relevance = scores.score[idx]
    if vectors is not None and weights.mmr_lambda < 1.0:
        chosen = mmr_select(relevance, np.asarray(vectors)[idx], k, weights.mmr_lambda)
    else:
        chosen = [int(i) for i in np.argsort(-relevance, kind="stable")[:k]]
    out = [int(idx[i]) for i in chosen]
    out.sort(key=lambda i: (-float(scores.score[i]), ids[i]))
    return out


def mmr_select(
    relevance: np.ndarray, vectors: np.ndarray, k: int, lam: float
) -> list[int]:
    """Maximal marginal relevance: greedily pick ``k`` indices maximising
    ``lam·relevance − (1−lam)·max cosine to the already picked``. ``lam = 1`` is plain top-k.

    ``vectors`` must be L2-normalised rows. Ties break by lower index, so the result is deterministic.
    """
    n = len(relevance)
    k = min(k, n)
    if k <= 0:
        return []
    if lam >= 1.0 or n <= k:
        return [int(i) for i in np.argsort(-relevance, kind="stable")[:k]]
    picked: list[int] = []
    max_sim = np.full(n, -np.inf)
    available = np.ones(n, dtype=bool)
    for _ in range(k):
        redundancy = np.where(np.isfinite(max_sim), max_sim, 0.0)
        value = lam * relevance - (1.0 - lam) * redundancy
        value = np.where(available, value, -np.inf)
        best = int(np.argmax(value))
        picked.append(best)
        available[best] = False
        max_sim = np.maximum(max_sim, vectors @ vectors[best])
    return picked


def rank(
    candidates: Sequence[Candidate],
    request: RankRequest,
    k: int,
    weights: Weights = Weights(),
    vectors: np.ndarray | None = None,
) -> list[Ranked]:
    """Score, drop exclusions, pick a diverse top-k with MMR, and return it best score first.

    ``vectors`` (rows aligned with ``candidates``, L2-normalised) enable MMR; without them the
    list is the plain top-k by fused score.
    """
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    scored = score_candidates(candidates, request, weights)
    keep = np.array(
        [r.id not in request.exclude_ids and not (request.filter_disliked and r.breakdown.disliked_tags)
         for r in scored],
        dtype=bool,
    )
    arrays = Scores(*(np.array([getattr(r.breakdown, f) for r in scored], dtype=np.float64)
                      for f in ("similarity", "behaviour", "content", "penalty", "score")))
    chosen = select([c.id for c in candidates], arrays, k, weights, vectors, keep)
    return [scored[i] for i in chosen]
