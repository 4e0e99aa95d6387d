"""The one recommendation path over a catalogue: query → candidates → features → fused score → list.

`recommend`, the chat engine (turns, feedback re-ranks, /more), the evaluations and the benchmark all
rank through :class:`Recommender`, so what is measured is what users get.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np

from chatrec.catalogue.table import Catalogue
from chatrec.core import scoring
from chatrec.core.items import tag_key
from chatrec.ports import Embedder, VectorIndex
from chatrec.recommend.behaviour import BehaviourModel
from chatrec.recommend.query import Query
from chatrec.recommend.ranking import Features, Pool, Ranker
from chatrec.recommend.results import Result
from chatrec.recommend.retrieval import Retriever


@dataclass
class Candidates:
    """One query's candidate side, computed once and reused by re-ranks: the user vector, the
    collaborative scores, the constraint masks and the pool."""

    vector: np.ndarray | None
    collab: np.ndarray | None
    masks: list[np.ndarray]
    rows: list[int]


class Recommender:
    def __init__(self, catalogue: Catalogue, index: VectorIndex, embedder: Embedder, weights: scoring.Weights,
                 behaviour: BehaviourModel | None = None, candidates: int = 200, filter_disliked: bool = False):
        self.catalogue = catalogue
        self.filter_disliked = filter_disliked
        self.behaviour = behaviour or BehaviourModel(catalogue)
        self.retriever = Retriever(catalogue, index, embedder, self.behaviour, candidates)
        self.ranker = Ranker(catalogue, self.behaviour, weights)

    @property
    def weights(self) -> scoring.Weights:
        """The weights the fused score is computed with (one object: the ranker's)."""
        return self.ranker.weights

    @weights.setter
    def weights(self, weights: scoring.Weights) -> None:
        self.ranker.weights = weights

    # -- the path ---------------------------------------------------------------------------------
    def recommend(self, query: Query, k: int = 10, filter_disliked: bool | None = None,
                  unknown_like: Iterable[str] = ()) -> Result:
        if k < 1:
            raise ValueError(f"k must be at least 1, got {k}")
        cands = self.candidates(query, k, unknown_like)
        return self.rank(query, cands.rows, cands, k, filter_disliked)

    def candidates(self, query: Query, k: int = 10, unknown_like: Iterable[str] = ()) -> Candidates:
        """The user vector, collaborative scores, constraint masks and candidate rows for ``query``. When fewer
        than ``k`` items meet the hard constraints, the unconstrained pool joins, for the closest ones."""
        vector = self.retriever.user_vector(query, unknown_like)
        collab = self.collaborative(query)
        masks = query.constraints.masks(self.catalogue) if query.constraints else []
        allowed = None
        if masks:
            allowed = np.logical_and.reduce(masks)
        rows = self.retriever.pool_rows(query, vector, collab, allowed)
        if allowed is not None and len([r for r in rows if self.catalogue.ids[r] not in query.exclude_ids]) < k:
            known = set(rows)
            rows += [r for r in self.retriever.pool_rows(query, vector, collab) if r not in known]
        return Candidates(vector, collab, masks, rows)

    def rank(self, query: Query, pool: Pool | Sequence[int], cands: Candidates, k: int,
             filter_disliked: bool | None = None) -> Result:
        """Rank a pool (the engine re-ranks its current pool after feedback this way)."""
        features = self.ranker.features(query, pool, cands.vector, cands.collab, cands.masks)
        filter_disliked = self.filter_disliked if filter_disliked is None else filter_disliked
        return self.ranker.rank(query, features, k, filter_disliked, cands.masks)

    def features(self, query: Query, cands: Candidates, pool: Pool | Sequence[int] | None = None) -> Features:
        """The weight-free features of a query's pool (tuning re-fuses these per weight setting)."""
        return self.ranker.features(query, cands.rows if pool is None else pool, cands.vector, cands.collab,
                                    cands.masks)

    def meeting(self, constraints) -> int:
        """How many items of the catalogue meet every one of ``constraints``."""
        if not constraints:
            return self.catalogue.n
        return int(np.logical_and.reduce(constraints.masks(self.catalogue)).sum())

    # -- pieces the engine and the evaluations ask for ------------------------------------------
    def user_vector(self, query: Query, unknown_like: Iterable[str] = ()) -> np.ndarray | None:
        return self.retriever.user_vector(query, unknown_like)

    def nearest(self, text: str, n: int) -> list[tuple[str, float]]:
        """The ``n`` items nearest to ``text`` alone, by the vector index (the embedding-only baseline)."""
        return self.retriever.nearest(text, n)

    def collaborative(self, query: Query) -> np.ndarray | None:
        """Collaborative scores seeded by the query's liked items and (at their lower weight) the items the
        conversation has been about."""
        seeds = {i: w for i, w in query.context_items.items() if w > 0}
        seeds.update({i: w for i, w in query.liked_items.items() if w > 0})
        return self.behaviour.collaborative(seeds)

    def use_likes(self, name: str, likes: Iterable[tuple[str, str]]) -> None:
        """Everyone's behaviour from these (user, item id) likes (an evaluation passes its training part)."""
        self.behaviour.use_likes(name, likes)

    def pool(self, rows: Sequence[int]) -> Pool:
        return self.ranker.pool(rows)

    def extend_pool(self, pool: Pool, rows: Sequence[int]) -> Pool:
        return self.ranker.extend_pool(pool, rows)

    def neighbours(self, item_ids: Iterable[str], n: int = 30) -> list[int]:
        return self.retriever.neighbours(item_ids, n)

    def collab_rows(self, collab: np.ndarray | None, n: int) -> list[int]:
        return self.retriever.collab_rows(collab, n)

    def genres_of(self, ids: Iterable[str]) -> dict[str, tuple[str, ...]]:
        """Genre tag keys of the given items (what profile.moves_focus compares with the focus)."""
        cat = self.catalogue
        return {cat.ids[r]: tuple(tag_key(g) for g in cat.genres_of(r)) for r in cat.rows_of(ids)}

    def resolve_tags(self, tags: Iterable[str]) -> tuple[dict[str, float], dict[str, list[str]]]:
        """Known tags → weight 1; unknown ones come back with their closest known spellings."""
        known: dict[str, float] = {}
        unknown: dict[str, list[str]] = {}
        columns = self.catalogue.tag_column
        for tag in tags:
            key = tag_key(tag)
            if not key:
                continue
            if key in columns:
                known[key] = max(known.get(key, 0.0), 1.0)
            else:
                unknown[tag] = self.catalogue.closest_tags(tag)
        return known, unknown
