"""The paper's fused score, I(u,i) = wS·S + wB·B + wC·C − penalty, and the choice of the list. Pure.

:func:`fuse` is the one place the formula is written; the product, the tuner and the paper's worked
example all go through it. Callers hand in per-candidate arrays and get back the components and the
score; :func:`select` then picks a diverse top-k (MMR) and orders it best score first.

How each component is normalised to [0, 1] (see also README "Ranking"):

* S (similarity): the cosine between the user vector and each candidate, rescaled over the
  candidate pool, ``(cos - min) / (max - min)``, so the best semantic match gets 1 and the
  weakest candidate 0. When the pool's spread is tiny (< 1e-6) we fall back to ``clip(cos, 0, 1)``.
* B (behaviour): ``user_share · B_user + (1 - user_share) · B_global`` for items the user touched,
  else ``B_global``. ``B_user = 1 - exp(-events / user_scale)`` saturates the user's own weighted
  events on the item; ``B_global`` is everyone's behaviour: the catalogue's engagement prior in
  [0, 1] (:func:`engagement_prior`), blended, once there are seeds (liked items, earlier picks), with
  the collaborative score: ``B_global = (1 - collaborative) · prior + collaborative · collab``.
* C (content): ``Σ w_t over liked tags the item carries / Σ w_t over all liked tags`` (:func:`tag_share`).
* The conversation's seeds (liked items, and at their lower weight the items it has been about) may join S
  and C, each with a share in [0, 1] (all 0 by default, as the paper): ``seed_similarity`` of S is the
  item's highest cosine to a seed (min-max rescaled over the pool as S is); ``seed_genres`` of C is the
  seed-weighted share of the seeds' genres the item carries; ``seed_people`` of C is the seed weight of the
  seeds sharing a director or a listed cast member with the item, over all seed weight. Without seeds, S and
  C are as above.
* penalty: ``penalty_weight · Σ d_t over the disliked tags the item carries``, capped at 1, subtracted from
  the fused score: each dislike counts in full (d_t is 1 when said, then fades). Until 2026-12-06 it was a
  share, ``/ Σ d_t`` as C is; then one more dislike softened the others ("nothing too gory" adds gore and
  splatter to a horror dislike, and a horror film without those keywords would have lost a third).

The reported ``score`` is the fused score; MMR only chooses *which* candidates make the list
(a diverse set), and the list is then shown best score first.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

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
    """The fused-score weights and the knobs of the normalisations above (one object, built by
    ``Settings.weights``; everything that shows weights shows these)."""

    similarity: float = 0.5
    behaviour: float = 0.3
    content: float = 0.2
    penalty: float = 1.0
    mmr_lambda: float = 0.8
    collaborative: float = 0.5
    user_share: float = 0.6
    user_scale: float = 5.0
    seed_similarity: float = 0.0  # share of S that is the closest seed's cosine
    seed_genres: float = 0.0  # share of C that is the seeds' genre share
    seed_people: float = 0.0  # share of C that is the seeds' people overlap

    def __post_init__(self) -> None:
        for name in ("similarity", "behaviour", "content", "penalty", "user_scale"):
            value = getattr(self, name)
            if not math.isfinite(value) or value < 0:
                raise ValueError(f"weight {name} must be a finite number >= 0, got {value!r}")
        for name in ("mmr_lambda", "collaborative", "user_share", "seed_similarity", "seed_genres", "seed_people"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"{name} must be in [0, 1], got {value!r}")
        if self.seed_genres + self.seed_people > 1.0 + 1e-9:
            raise ValueError("seed_genres + seed_people must be at most 1 (shares of C)")

    @property
    def uses_seeds(self) -> bool:
        """Whether S or C take the conversation's seeds in (the seed signals need computing)."""
        return self.seed_similarity > 0 or self.seed_genres > 0 or self.seed_people > 0

    def formula(self) -> str:
        """The formula with these weights, as the breakdowns show it: "0.5·S + 0.3·B + 0.2·C"."""
        return f"{self.similarity:g}·S + {self.behaviour:g}·B + {self.content:g}·C"


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
class SeedSignals:
    """Per candidate, what the conversation's seeds say (see the module docstring): the closest seed's
    cosine, the seeds' genre share, the seeds' people overlap."""

    similarity: np.ndarray
    genres: np.ndarray
    people: np.ndarray


@dataclass(frozen=True)
class Scores:
    """The fused score and its components for a whole candidate pool, as aligned arrays."""

    similarity: np.ndarray
    behaviour: np.ndarray
    content: np.ndarray
    penalty: np.ndarray
    score: np.ndarray

    def breakdown(self, i: int, matched: tuple[str, ...] = (), disliked: tuple[str, ...] = ()) -> Breakdown:
        return Breakdown(float(self.similarity[i]), float(self.behaviour[i]), float(self.content[i]),
                         float(self.penalty[i]), float(self.score[i]), matched, disliked)


def fuse(
    cosines: np.ndarray,
    engagement: np.ndarray,
    content: np.ndarray,
    dislike: np.ndarray,
    event_totals: np.ndarray | None = None,
    has_events: np.ndarray | None = None,
    weights: Weights = Weights(),
    collab: np.ndarray | None = None,
    normalise: bool = True,
    seeds: "SeedSignals | None" = None,
) -> Scores:
    """I = wS·S + wB·B + wC·C − penalty over a pool (definitions in the module docstring).

    ``cosines`` become S (min-max over the pool; ``normalise=False`` takes S, B and C as given, as the
    paper's worked example does); ``engagement`` is the prior per candidate; ``content``/``dislike`` the
    liked/disliked tag shares; ``event_totals`` the user's weighted events per candidate and
    ``has_events`` whether the user touched it; ``collab`` the collaborative score (None: no seeds);
    ``seeds`` the seed signals (None: no seeds, or not computed), mixed into S and C by their weights.
    """
    n = len(cosines)
    cosines = np.asarray(cosines, dtype=np.float64)
    sims = rescale_similarity(cosines) if normalise else cosines
    totals = np.zeros(n) if event_totals is None else np.asarray(event_totals, dtype=np.float64)
    touched = np.zeros(n, dtype=bool) if has_events is None else np.asarray(has_events, dtype=bool)
    if weights.user_scale > 0:
        b_user = np.where(totals > 0, 1.0 - np.exp(-np.maximum(totals, 0.0) / weights.user_scale), 0.0)
    else:
        b_user = np.zeros(n)
    share = np.where(touched, weights.user_share, 0.0)
    b_global = np.asarray(engagement, dtype=np.float64)
    if normalise:
        b_global = np.clip(b_global, 0.0, 1.0)
    if collab is not None:
        beta = weights.collaborative
        b_global = (1.0 - beta) * b_global + beta * np.clip(np.asarray(collab, dtype=np.float64), 0.0, 1.0)
    b = share * b_user + (1.0 - share) * b_global
    c = np.asarray(content, dtype=np.float64)
    if seeds is not None:
        if weights.seed_similarity > 0:
            near = rescale_similarity(seeds.similarity) if normalise else np.asarray(seeds.similarity, np.float64)
            sims = (1.0 - weights.seed_similarity) * sims + weights.seed_similarity * near
        if weights.seed_genres > 0 or weights.seed_people > 0:
            c = ((1.0 - weights.seed_genres - weights.seed_people) * c + weights.seed_genres * seeds.genres
                 + weights.seed_people * seeds.people)
    penalty = np.minimum(weights.penalty * np.asarray(dislike, dtype=np.float64), 1.0)
    score = weights.similarity * sims + weights.behaviour * b + weights.content * c - penalty
    return Scores(sims, b, c, penalty, score)


def rescale_similarity(cosines: np.ndarray) -> np.ndarray:
    """Min-max rescale cosines over the candidate pool into [0, 1] (see module docstring)."""
    cosines = np.asarray(cosines, dtype=np.float64)
    if cosines.size == 0:
        return cosines
    lo, hi = float(cosines.min()), float(cosines.max())
    if hi - lo < 1e-6:
        return np.clip(cosines, 0.0, 1.0)
    return (cosines - lo) / (hi - lo)


def tag_share(tag_rows, columns: np.ndarray, weights: Mapping[str, float]) -> np.ndarray:
    """C (or the dislike share) for each row of a sparse items × tags incidence matrix: the weighted share
    of the weighted tags (``weights``, tag → weight) the item carries. ``columns`` holds the same weights
    aligned with the matrix's columns (tags the catalogue lacks have no column but still count in the
    total: an item cannot carry them)."""
    total = sum(w for w in weights.values() if w > 0)
    n = tag_rows.shape[0]
    if total <= 0 or n == 0:
        return np.zeros(n)
    return np.asarray(tag_rows @ np.where(columns > 0, columns, 0.0)).ravel() / total


def tag_weight_sum(tag_rows, columns: np.ndarray) -> np.ndarray:
    """The summed weight of the weighted tags each row carries (the penalty's input)."""
    if tag_rows.shape[0] == 0:
        return np.zeros(0)
    return np.asarray(tag_rows @ np.where(columns > 0, columns, 0.0)).ravel()


def matched_tags(item_tags: Iterable[str], weights: Mapping[str, float]) -> tuple[str, ...]:
    """Which of the weighted tags an item carries (what a breakdown lists), sorted."""
    tags = set(item_tags)
    return tuple(sorted(t for t, w in weights.items() if w > 0 and t in tags))


def engagement_prior(
    n_events: np.ndarray, mean_rating: np.ndarray, recent: np.ndarray, popularity: np.ndarray,
    rating_range: tuple[float, float] = (0.5, 5.0), prior_count: float = 10.0,
) -> np.ndarray:
    """Everyone's engagement per item in [0, 1], from a catalogue's rating statistics.

    ``0.5·popularity + 0.3·quality + 0.2·recency`` where popularity is ``log1p(n)/log1p(max n)``,
    quality the Bayesian-shrunk mean rating (``prior_count`` pseudo-ratings at the catalogue mean)
    mapped onto [0, 1], recency ``log1p(recent)/log1p(max recent)``; ``mean_rating`` is NaN where
    unknown. A catalogue with no rating counts but a ``popularity`` column gets
    ``log1p(pop)/log1p(max pop)``; with neither, 0.
    """
    n = np.maximum(np.asarray(n_events, dtype=np.float64), 0.0)
    recent = np.maximum(np.asarray(recent, dtype=np.float64), 0.0)
    pop = np.maximum(np.nan_to_num(np.asarray(popularity, dtype=np.float64)), 0.0)
    mean = np.asarray(mean_rating, dtype=np.float64)
    max_n, max_recent, max_pop = n.max(initial=0), recent.max(initial=0), pop.max(initial=0)
    if max_n <= 0:
        return np.log1p(pop) / math.log1p(max_pop) if max_pop > 0 else np.zeros(len(n))
    rated = ~np.isnan(mean) & (n > 0)
    prior_mean = float(mean[rated].mean()) if rated.any() else 3.5
    lo, hi = rating_range
    shrunk = (n * np.where(rated, mean, 0.0) + prior_count * prior_mean) / (n + prior_count)
    quality = np.where(rated, np.clip((shrunk - lo) / (hi - lo), 0.0, 1.0), 0.0)
    popularity_part = np.log1p(n) / math.log1p(max_n)
    recency = np.log1p(recent) / math.log1p(max_recent) if max_recent > 0 else np.zeros(len(n))
    return np.clip(0.5 * popularity_part + 0.3 * quality + 0.2 * recency, 0.0, 1.0)


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
        chosen = top_k(relevance, k)
    out = [int(idx[i]) for i in chosen]
    out.sort(key=lambda i: (-float(scores.score[i]), ids[i]))
    return out


def top_k(relevance: np.ndarray, k: int) -> list[int]:
    """The ``k`` best indices, best first; equal values keep their order (a stable sort's result,
    without sorting the whole array when it is much longer than k)."""
    n = len(relevance)
    if k >= n:
        return [int(i) for i in np.argsort(-relevance, kind="stable")]
    cut = np.partition(-relevance, k - 1)[k - 1]  # the k-th best value, negated
    candidates = np.flatnonzero(-relevance <= cut)
    order = candidates[np.argsort(-relevance[candidates], kind="stable")]
    return [int(i) for i in order[:k]]


def mmr_select(relevance: np.ndarray, vectors: np.ndarray, k: int, lam: float) -> list[int]:
    """Maximal marginal relevance: greedily pick ``k`` indices maximising
    ``lam·relevance − (1−lam)·max cosine to the already picked``. ``lam = 1`` is plain top-k.

    ``vectors`` must be L2-normalised rows. Ties break by lower index, so the result is deterministic.
    """
    n = len(relevance)
    k = min(k, n)
    if k <= 0:
        return []
    if lam >= 1.0 or n <= k:
        return top_k(relevance, k)
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
