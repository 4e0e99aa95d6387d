"""Scoring a candidate pool and choosing the list: weight-free features → ``core.scoring.fuse`` → ``select``.

Vectorised over the pool; only the shown items get their :class:`Recommendation` built. With hard
constraints, the list is chosen among the items that meet them all; when fewer than k do, the rest of the
list is the closest ones (most constraints met, then best score), marked as such.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from functools import cached_property

import numpy as np
from scipy.sparse import vstack

from chatrec.catalogue.table import Catalogue
from chatrec.core import scoring
from chatrec.core.constraints import fits
from chatrec.recommend.behaviour import BehaviourModel
from chatrec.recommend.query import Query
from chatrec.recommend.results import Recommendation, Result


@dataclass(frozen=True, eq=False)
class Pool:
    """A candidate pool: catalogue rows with their ids, vectors, tag rows and engagement, aligned."""

    rows: list[int]
    ids: list[str]
    vectors: np.ndarray
    tags: object  # scipy CSR rows of Catalogue.tags
    engagement: np.ndarray

    def __len__(self) -> int:
        return len(self.rows)

    @cached_property
    def position(self) -> dict[str, int]:
        return {i: n for n, i in enumerate(self.ids)}

    def event_arrays(self, events: Mapping[str, float]) -> tuple[np.ndarray | None, np.ndarray | None]:
        """(event totals, touched) aligned with the pool; work in the number of events, not the pool size."""
        if not events:
            return None, None
        totals, touched = np.zeros(len(self.ids)), np.zeros(len(self.ids), dtype=bool)
        for item_id, total in events.items():
            n = self.position.get(item_id)
            if n is not None:
                totals[n], touched[n] = total, True
        return totals, touched

    def mask(self, exclude: Iterable[str]) -> np.ndarray:
        """True for pool members not in ``exclude``."""
        keep = np.ones(len(self.ids), dtype=bool)
        for item_id in exclude:
            n = self.position.get(item_id)
            if n is not None:
                keep[n] = False
        return keep


@dataclass(frozen=True, eq=False)
class Features:
    """A pool's weight-free ranking inputs, aligned with ``pool`` (tuning re-fuses these per setting)."""

    pool: Pool
    cosines: np.ndarray
    content: np.ndarray
    dislike: np.ndarray
    event_totals: np.ndarray | None
    has_events: np.ndarray | None
    collab: np.ndarray | None
    keep: np.ndarray | None
    met: np.ndarray | None = None  # how many hard constraints each member meets (None: there are none)
    n_constraints: int = 0
    seeds: scoring.SeedSignals | None = None  # the seed signals, when asked for and there are seeds

    def scores(self, weights: scoring.Weights) -> scoring.Scores:
        return scoring.fuse(self.cosines, self.pool.engagement, self.content, self.dislike, self.event_totals,
                            self.has_events, weights, self.collab, seeds=self.seeds)

    def choose(self, weights: scoring.Weights, k: int, filter_disliked: bool = False
               ) -> tuple[list[int], scoring.Scores, set[int]]:
        """The pool positions to show (meeting every constraint first, best score first; then the closest
        ones), the scores they were chosen by, and which positions are only the closest."""
        scores = self.scores(weights)
        keep = self.keep
        if filter_disliked:
            keep = (self.dislike <= 0) if keep is None else keep & (self.dislike <= 0)
        if self.met is None:
            return scoring.select(self.pool.ids, scores, k, weights, self.pool.vectors, keep), scores, set()
        keep = np.ones(len(self.pool), dtype=bool) if keep is None else keep
        full = keep & (self.met == self.n_constraints)
        chosen = scoring.select(self.pool.ids, scores, k, weights, self.pool.vectors, full) if full.any() else []
        if len(chosen) >= k:
            return chosen, scores, set()
        rest = np.flatnonzero(keep & ~full)
        # the closest: most constraints met, then the best score (no MMR: these are a fallback)
        order = sorted(rest, key=lambda i: (-int(self.met[i]), -float(scores.score[i]), self.pool.ids[i]))
        closest = [int(i) for i in order[: k - len(chosen)]]
        return chosen + closest, scores, set(closest)

    @property
    def meeting(self) -> int | None:
        """How many pool members meet every constraint and may be shown."""
        if self.met is None:
            return None
        keep = np.ones(len(self.pool), dtype=bool) if self.keep is None else self.keep
        return int((keep & (self.met == self.n_constraints)).sum())


class Ranker:
    def __init__(self, catalogue: Catalogue, behaviour: BehaviourModel, weights: scoring.Weights):
        self.catalogue = catalogue
        self.behaviour = behaviour
        self.weights = weights
        #: compute the seed signals even when the weights give them no share (tuning re-fuses with shares)
        self.seed_signals = False

    def seed_features(self, query: Query, pool: Pool) -> scoring.SeedSignals | None:
        """What the query's seeds (liked items, then the items the conversation has been about, as the
        collaborative part takes them) say about each pool member; None without seeds in the catalogue."""
        cat = self.catalogue
        weights = {i: w for i, w in query.context_items.items() if w > 0}
        weights.update({i: w for i, w in query.liked_items.items() if w > 0})
        seeds = [(cat.index_of[i], w) for i, w in weights.items() if i in cat.index_of]
        if not seeds or not len(pool):
            return None
        rows, w = [r for r, _ in seeds], np.array([w for _, w in seeds], dtype=np.float64)
        similarity = (pool.vectors @ np.asarray(cat.vectors[rows], dtype=np.float32).T).max(axis=1)
        mass = np.asarray(cat.genres[rows].T @ w).ravel()
        genres = (np.asarray(cat.genres[pool.rows] @ (mass / mass.sum())).ravel() if mass.sum() > 0
                  else np.zeros(len(pool)))
        seed_people = (cat.directed[rows] + cat.acted[rows]).T.tocsr()
        shared = (cat.directed[pool.rows] + cat.acted[pool.rows]) @ seed_people  # pool × seeds
        people = np.asarray((shared > 0).astype(np.float64) @ w).ravel() / w.sum()
        return scoring.SeedSignals(similarity.astype(np.float64), genres, people)

    def pool(self, rows: Sequence[int]) -> Pool:
        """The arrays ranking needs for a candidate pool, gathered once (re-ranks reuse them)."""
        cat = self.catalogue
        rows = list(dict.fromkeys(int(r) for r in rows))
        return Pool(rows, [cat.ids[r] for r in rows], np.asarray(cat.vectors[rows]), cat.tags[rows],
                    self.behaviour.prior[rows])

    def extend_pool(self, pool: Pool, rows: Sequence[int]) -> Pool:
        """``pool`` plus new rows, gathering only the new rows' arrays (likes grow the pool in place)."""
        known = set(pool.rows)
        extra = self.pool([r for r in rows if r not in known])
        if not len(extra):
            return pool
        return Pool(pool.rows + extra.rows, pool.ids + extra.ids, np.vstack([pool.vectors, extra.vectors]),
                    vstack([pool.tags, extra.tags], format="csr"), np.concatenate([pool.engagement, extra.engagement]))

    def features(self, query: Query, pool: Pool | Sequence[int], vector: np.ndarray | None,
                 collab: np.ndarray | None, masks: Sequence[np.ndarray] = ()) -> Features:
        """Everything the fused score needs for a pool, weight-free. ``masks``: one per hard constraint,
        over the catalogue's rows (``Constraints.masks``)."""
        cat = self.catalogue
        pool = pool if isinstance(pool, Pool) else self.pool(pool)
        cosines = pool.vectors @ vector.astype(np.float32) if vector is not None else np.zeros(len(pool))
        totals, touched = pool.event_arrays(query.user_events)
        met = None
        if masks:
            rows = np.asarray(pool.rows, dtype=np.int64)
            met = np.sum([m[rows] for m in masks], axis=0).astype(np.int64) if len(rows) else np.zeros(0, np.int64)
        return Features(
            pool=pool, cosines=cosines,
            content=scoring.tag_share(pool.tags, cat.tag_weights(query.liked_tags), query.liked_tags),
            dislike=scoring.tag_weight_sum(pool.tags, cat.tag_weights(query.disliked_tags)),
            event_totals=totals, has_events=touched, collab=None if collab is None else collab[pool.rows],
            keep=pool.mask(query.exclude_ids) if query.exclude_ids else None, met=met, n_constraints=len(masks),
            seeds=self.seed_features(query, pool) if self.seed_signals or self.weights.uses_seeds else None,
        )

    def rank(self, query: Query, features: Features, k: int, filter_disliked: bool = False,
             masks: Sequence[np.ndarray] = ()) -> Result:
        chosen, scores, closest = features.choose(self.weights, k, filter_disliked)
        cat, pool = self.catalogue, features.pool
        rows = [pool.rows[i] for i in chosen]
        fit = fits(query.constraints, masks, rows, {pool.rows[i] for i in closest}) if masks else None
        items = []
        for n, i in enumerate(chosen):
            tags = cat.tag_keys_of(pool.rows[i])
            breakdown = scores.breakdown(i, scoring.matched_tags(tags, query.liked_tags),
                                         scoring.matched_tags(tags, query.disliked_tags))
            items.append(Recommendation(cat.item(pool.rows[i]), breakdown, fit[n]) if fit else
                         Recommendation(cat.item(pool.rows[i]), breakdown))
        return Result(items=items, cold_start=query.is_cold, constraints=query.constraints,
                      meeting=features.meeting)
