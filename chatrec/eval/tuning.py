"""Learned weights: fit wS, wB, wC, the collaborative share and the MMR λ on ReDial by cross-validation.

The conversations are split into K folds by conversation. Every case of fold g is prepared once
through the product path (extractor → profile → user vector → candidate pool → weight-free features,
:meth:`chatrec.recommend.recommender.Recommender.features`), with everyone's behaviour built *without* fold g:
the popularity prior less fold g's own mentions, co-mentions from the other folds only. A weight
setting is then scored by re-fusing the cached features, which is cheap, so a grid search is possible.

For held-out fold f, the weights are chosen on the cases of the other folds (each of those still
scored with behaviour that excludes its own fold) and then measured once on fold f. The reported
figures are the held-out ones: mean and spread over folds, and pooled over all pairs.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace

import numpy as np

from chatrec.core import scoring as rank
from chatrec.eval.movielens import rank_of
from chatrec.recommend.behaviour import Behaviour
from chatrec.eval.redial import (
    KS, ProductRanker, behaviour_logs, cases, co_mention_pairs, mention_counts,
    mention_prior, metrics,
)

#: the fused-score simplex searched (wS + wB + wC = 1: the dislike penalty and MMR keep their meaning)
GRID_STEP = 0.1
COLLAB_GRID = (0.0, 0.25, 0.5, 0.75, 1.0)
MMR_GRID = (1.0, 0.95, 0.9, 0.8)
#: the seed signals' shares searched when a variant asks for them (``scoring.Weights``: share of S or of C)
SEED_GRID = (0.0, 0.25, 0.5, 0.75)
SEED_GRID_JOINT = (0.0, 0.25, 0.5)  # when more than one knob is searched (the grid multiplies)
SEED_KNOBS = ("seed_similarity", "seed_genres", "seed_people")


@dataclass
class Prepared:
    features: object  # recommender.Features
    targets: list[str]


@dataclass
class Fold:
    prepared: list[Prepared]
    n_cases: int
    ranking_seconds: float  # retrieve + features + one fused ranking, summed over the cases
    seed_seconds: float = 0.0  # computing the seed signals (when prepared with them), summed over the cases


@dataclass
class Variant:
    """What everyone's behaviour holds in one configuration (an ablation row)."""

    name: str
    mention_prior: bool = True
    movielens: bool = True
    co_mentions: bool = True
    co_mention_weight: float = 1.0
    context_seed: float | None = None  # the recommender's earlier picks as seeds (None: the setting)
    constraints: bool = True  # the seeker's hard wishes filter the candidates, as in the chat
    seed_signals: bool = False  # compute the seed signals (closest seed, seeds' genres and people) too
    knobs: tuple[str, ...] = ()  # seed-signal shares searched by the fit (SEED_KNOBS), each over SEED_GRID


@dataclass
class CVResult:
    variant: str
    per_fold: list[dict] = field(default_factory=list)
    pooled: dict = field(default_factory=dict)
    ms_per_case: float = 0.0
    seed_ms_per_case: float = 0.0

    def summary(self) -> dict:
        out = {"variant": self.variant, **{k: self.pooled[k] for k in ("n_pairs", "recall@1", "recall@10", "recall@50",
                                                                          "ndcg@10", "mrr")}}
        for k in ("recall@1", "recall@10", "recall@50"):
            out[f"{k}_sd"] = round(float(np.std([f["held_out"][k] for f in self.per_fold])), 4)
        out["ms_per_case"] = round(self.ms_per_case, 2)
        if self.seed_ms_per_case:
            out["seed_ms_per_case"] = round(self.seed_ms_per_case, 2)
        out["per_fold"] = self.per_fold
        return out


def folds_of(conversations: Sequence[dict], k: int) -> list[int]:
    """Fold of each conversation: round-robin over the given order (deterministic, balanced)."""
    return [n % k for n in range(len(conversations))]


def simplex(step: float = GRID_STEP) -> list[tuple[float, float, float]]:
    n = round(1 / step)
    return [(a / n, b / n, (n - a - b) / n) for a in range(n + 1) for b in range(n + 1 - a)]


def weights_of(point: dict, base: rank.Weights) -> rank.Weights:
    return replace(base, similarity=point["w_similarity"], behaviour=point["w_behaviour"],
                   content=point["w_content"], collaborative=point["collaborative"], mmr_lambda=point["mmr_lambda"],
                   **{k: point.get(k, 0.0) for k in SEED_KNOBS})


def grid(knobs: Sequence[str] = ()) -> list[dict]:
    """The points the fit searches at λ = 1: the simplex × the collaborative share × each knob's shares
    (seed_genres + seed_people at most 1: both are shares of C)."""
    points = []
    shares_grid = SEED_GRID if len(knobs) <= 1 else SEED_GRID_JOINT
    for (ws, wb, wc), beta, *shares in itertools.product(simplex(), COLLAB_GRID, *[shares_grid] * len(knobs)):
        point = {"w_similarity": ws, "w_behaviour": wb, "w_content": wc, "collaborative": beta, "mmr_lambda": 1.0,
                 **dict(zip(knobs, shares))}
        if point.get("seed_genres", 0.0) + point.get("seed_people", 0.0) <= 1.0:
            points.append(point)
    return points


def score(prepared: Sequence[Prepared], weights: rank.Weights) -> list[int | None]:
    ranks: list[int | None] = []
    top = max(KS)
    for p in prepared:
        chosen, _, _ = p.features.choose(weights, top)
        ids = [p.features.pool.ids[i] for i in chosen]
        ranks.extend(rank_of(ids, t, k=top) for t in p.targets)
    return ranks


def ranks_without_mmr(prepared: Sequence[Prepared], points: Sequence[dict], base: rank.Weights) -> np.ndarray:
    """Ranks (pairs × points, inf past 50) of every target under many weight settings at once, λ = 1.

    The fused score is linear in its components, so one matrix product scores a pool under all the
    settings; a target's rank is 1 + the number of kept items scoring higher. Same numbers as
    :func:`score` with ``mmr_lambda=1`` (checked in the tests), except the order of equal scores inside
    the shown list, which the product sorts by id."""
    top = max(KS)
    coef = np.array([[p["w_similarity"] * (1 - p.get("seed_similarity", 0.0)),
                      p["w_similarity"] * p.get("seed_similarity", 0.0),
                      p["w_behaviour"] * (1 - p["collaborative"]), p["w_behaviour"] * p["collaborative"],
                      p["w_content"] * (1 - p.get("seed_genres", 0.0) - p.get("seed_people", 0.0)),
                      p["w_content"] * p.get("seed_genres", 0.0), p["w_content"] * p.get("seed_people", 0.0)]
                     for p in points]).T
    rows = []
    for p in prepared:
        f = p.features
        if f.event_totals is not None:
            raise ValueError("the fast path assumes no user events (ReDial cases have none)")
        parts = f.scores(replace(base, similarity=1.0, behaviour=1.0, content=1.0, collaborative=0.0,
                                 **{k: 0.0 for k in SEED_KNOBS}))
        prior = np.clip(f.pool.engagement, 0.0, 1.0)
        collab = prior if f.collab is None else np.clip(f.collab, 0.0, 1.0)
        sd = f.seeds  # without seeds (or not computed), S and C stay as they are, as in scoring.fuse
        near = parts.similarity if sd is None else rank.rescale_similarity(sd.similarity)
        genres = parts.content if sd is None else sd.genres
        people = parts.content if sd is None else sd.people
        comp = np.column_stack([parts.similarity, near, prior, collab, parts.content, genres, people])
        scores = comp @ coef - parts.penalty[:, None]
        if f.met is not None:  # the product shows items meeting every hard constraint first
            scores = scores + 1000.0 * f.met[:, None]
        keep = np.ones(len(f.pool), dtype=bool) if f.keep is None else f.keep
        kept = scores[keep]
        for t in p.targets:
            n = f.pool.position.get(t)
            if n is None or not keep[n]:
                rows.append(np.full(len(points), np.inf))
                continue
            # ties go to the earlier pool position, as rank.select's stable sort does
            ahead = (kept > scores[n]).sum(axis=0) + (scores[:n][keep[:n]] == scores[n]).sum(axis=0)
            rows.append(1.0 + ahead)
    ranks = np.array(rows).reshape(-1, len(points))
    return np.where(ranks <= top, ranks, np.inf)


def objective(ranks) -> float:
    ranks = [None if r is None or not np.isfinite(r) else int(r) for r in ranks]
    m = metrics(ranks)
    return m["recall@1"] + m["recall@10"] + m["recall@50"]


class Tuner:
    """Prepares the folds for one :class:`Variant` and searches the weights."""

    def __init__(self, rec, extractor, conversations: list[dict], movies, items, rating_likes,
                 k: int = 5, progress: Callable[[str], None] = lambda _: None, context_seed: float = 0.5):
        self.rec = rec
        self.extractor = extractor
        self.context_seed = context_seed
        self.conversations = conversations
        self.movies = movies
        self.items = items
        self.rating_likes = rating_likes
        self.k = k
        self.fold = folds_of(conversations, k)
        self.progress = progress
        self._queries: dict[tuple, object] = {}
        self.cases = [(self.fold[n], c) for n, conv in enumerate(conversations) for c in cases(conv, True)]

    @classmethod
    def for_setup(cls, setup, settings, conversations: list[dict], k: int = 5,
                  progress: Callable[[str], None] = lambda _: None) -> "Tuner":
        """A tuner over a ReDial setup (``chatrec.eval.redial.setup``) with the settings' interaction log."""
        from chatrec.eval.redial import rating_likes

        return cls(setup.recommender, setup.extractor, conversations, setup.movies, setup.items,
                   rating_likes(settings), k=k, progress=progress, context_seed=settings.context_seed)

    # -- behaviour without one fold ---------------------------------------------------------------
    def use_fold_behaviour(self, g: int | None, variant: Variant) -> None:
        """Everyone's behaviour as the product would have it had it never seen fold ``g`` (None: all
        conversations are training data, as when saving weights for unseen conversations)."""
        rec = self.rec
        cat = rec.catalogue
        held = [c for n, c in enumerate(self.conversations) if g is not None and self.fold[n] == g]
        train = [c for n, c in enumerate(self.conversations) if g is None or self.fold[n] != g]
        prior = (mention_prior(self.movies, cat.ids, mention_counts(held)) if variant.mention_prior
                 else cat.engagement)
        logs = behaviour_logs(self.items, cat.index_of,
                              self.rating_likes if variant.movielens else (),
                              co_mention_pairs(train) if variant.co_mentions else ())
        weighted = [(log, 1.0 if log.name == "movielens-likes" else variant.co_mention_weight)
                    for log in logs if log.n_likes]
        rec.behaviour.use(Behaviour(tuple(weighted)) if weighted else None, prior)

    # -- per-case features ----------------------------------------------------------------------
    def prepare(self, variant: Variant) -> list[Fold]:
        out = []
        seed = self.context_seed if variant.context_seed is None else variant.context_seed
        ranker = ProductRanker(self.rec, self.extractor, fresh_only=True, context_seed=seed,
                               constraints=variant.constraints)
        for g in range(self.k):
            self.use_fold_behaviour(g, variant)
            prepared, ranking, seeding = [], 0.0, 0.0
            for fold, case in self.cases:
                if fold != g:
                    continue
                key = (case.conversation, len(case.context), seed, variant.constraints)
                if key not in self._queries:  # extraction and profile do not depend on the fold
                    self._queries[key] = ranker.query(case)
                query = self._queries[key]
                self.rec.user_vector(query)  # the embedding is cached: the timing below is the ranking path
                t1 = time.perf_counter()
                cands = self.rec.candidates(query, max(KS))
                features = self.rec.features(query, cands)
                features.choose(self.rec.weights, 10)
                ranking += time.perf_counter() - t1
                if variant.seed_signals:  # timed apart: the cost a product using them would add
                    t2 = time.perf_counter()
                    features = replace(features, seeds=self.rec.ranker.seed_features(query, features.pool))
                    seeding += time.perf_counter() - t2
                prepared.append(Prepared(features, case.targets))
            out.append(Fold(prepared, len(prepared), ranking, seeding))
            self.progress(f"{variant.name}: fold {g + 1}/{self.k} prepared ({len(prepared)} cases)")
        return out

    # -- search ---------------------------------------------------------------------------------
    def fit(self, folds: Sequence[Fold], base: rank.Weights, fixed: dict | None = None,
            knobs: Sequence[str] = ()) -> dict:
        """The grid point (weights, collaborative share and the ``knobs``' shares, then λ) with the best
        objective on ``folds``."""
        if fixed is not None:
            return dict(fixed)
        prepared = [p for f in folds for p in f.prepared]
        points = grid(knobs)
        values = [objective(list(r)) for r in ranks_without_mmr(prepared, points, base).T]
        best_point, best = points[int(np.argmax(values))], max(values)
        for lam in MMR_GRID[1:]:  # MMR needs the greedy pick: scored the slow way, around the chosen weights
            point = {**best_point, "mmr_lambda": lam}
            value = objective(score(prepared, weights_of(point, base)))
            if value > best + 1e-9:
                best, best_point = value, point
        return best_point

    def cross_validate(self, variant: Variant, base: rank.Weights, fixed: dict | None = None,
                       folds: list[Fold] | None = None, knobs: Sequence[str] | None = None) -> CVResult:
        """Held-out figures per fold: weights fitted on the other folds (or ``fixed``), scored on this one."""
        folds = folds if folds is not None else self.prepare(variant)
        result = CVResult(variant.name)
        pooled: list[int | None] = []
        n_cases = sum(f.n_cases for f in folds)
        result.ms_per_case = 1000 * sum(f.ranking_seconds for f in folds) / max(n_cases, 1)
        knobs = variant.knobs if knobs is None else knobs
        if knobs:
            result.seed_ms_per_case = 1000 * sum(f.seed_seconds for f in folds) / max(n_cases, 1)
        for f in range(self.k):
            point = self.fit([folds[g] for g in range(self.k) if g != f], base, fixed, knobs)
            ranks = score(folds[f].prepared, weights_of(point, base))
            pooled += ranks
            result.per_fold.append({"fold": f, "weights": point, "held_out": metrics(ranks)})
            self.progress(f"{variant.name}: fold {f + 1}/{self.k} held out: {metrics(ranks)}")
        result.pooled = metrics(pooled)
        return result


def paper_point(base: rank.Weights) -> dict:
    return {"w_similarity": base.similarity, "w_behaviour": base.behaviour, "w_content": base.content,
            "collaborative": base.collaborative, "mmr_lambda": base.mmr_lambda}


SIGNAL_ROWS = (("+ the closest seed's similarity in S", ("seed_similarity",)),
               ("+ the seeds' genres in C", ("seed_genres",)),
               ("+ the seeds' people (director, listed cast) in C", ("seed_people",)),
               ("+ all three seed signals", SEED_KNOBS))


def run_tuning(setup, settings, conversations: list[dict], folds: int, ablation: bool, save_to=None,
               command: str = "chatrec tune", progress: Callable[[str], None] = lambda _: None,
               signals: Sequence[str] = ()) -> dict:
    """`chatrec tune`: cross-validated figures for the product (tuned and paper weights), the ablation rows
    with ``ablation`` (the behaviour changes, then each seed signal on top of the product), and with
    ``save_to`` the weights fitted on all folds, saved for the ReDial collection. ``signals``: seed-signal
    shares (``SEED_KNOBS``) the product's own fit searches too."""
    from datetime import datetime, timezone

    from chatrec.settings import save_tuned

    t0 = time.perf_counter()
    base = settings.weights()
    tuner = Tuner.for_setup(setup, settings, conversations, folds, progress)
    unknown = set(signals) - set(SEED_KNOBS)
    if unknown:
        raise ValueError(f"unknown seed signal(s) {sorted(unknown)}; known: {', '.join(SEED_KNOBS)}")
    signals = tuple(k for k in SEED_KNOBS if k in signals)
    full = Variant("tuned: mention prior + MovieLens + co-mentions + earlier picks as context"
                   + "".join(f" + {k.replace('_', ' ')}" for k in signals), seed_signals=bool(ablation or signals),
                   knobs=signals)
    prepared = tuner.prepare(full)
    rows = []
    if ablation:
        steps = [
            Variant("before: rating prior, no collaborative", mention_prior=False, movielens=False,
                    co_mentions=False, context_seed=0.0),
            Variant("+ mention-count prior", movielens=False, co_mentions=False, context_seed=0.0),
            Variant("+ MovieLens co-likes in B", co_mentions=False, context_seed=0.0),
            Variant("+ co-mentions in training conversations", context_seed=0.0),
            Variant("all of it, without the hard constraints", constraints=False),
            full,
        ]
        for variant in steps:
            folds_v = prepared if variant is full else tuner.prepare(variant)
            rows.append(tuner.cross_validate(variant, base, fixed=paper_point(base), folds=folds_v).summary()
                        | {"variant": variant.name.replace("tuned: ", "") + " (paper weights)"})
            if variant is not full:
                rows.append(tuner.cross_validate(variant, base, folds=folds_v, knobs=()).summary()
                            | {"variant": variant.name + " (tuned weights)"})
    tuned = tuner.cross_validate(full, base, folds=prepared).summary()
    paper = tuner.cross_validate(full, base, fixed=paper_point(base), folds=prepared).summary()
    payload = {"conversations": len(conversations), "cases": sum(f.n_cases for f in prepared), "folds": folds,
               "catalogue_match": setup.match, "tuned": tuned, "paper_defaults": paper}
    if rows:
        signal_rows = [tuner.cross_validate(replace(full, name=name, knobs=knobs), base, folds=prepared).summary()
                       for name, knobs in SIGNAL_ROWS if knobs != signals]
        payload["ablation"] = rows + [tuned] + signal_rows
    if save_to is not None:
        point = tuner.fit(prepared, base, knobs=full.knobs)
        collection = setup.app.collection
        save_tuned(save_to, collection, {
            "weights": point, "saved": datetime.now(timezone.utc).isoformat(timespec="seconds"), "command": command,
            "cross_validated": {k: tuned[k] for k in ("n_pairs", "recall@1", "recall@10", "recall@50",
                                                        "recall@1_sd", "recall@10_sd", "recall@50_sd")},
        })
        payload["saved"] = {"path": str(save_to), "collection": collection, "weights": point}
    payload["seconds"] = round(time.perf_counter() - t0, 1)
    return payload
