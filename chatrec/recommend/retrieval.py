"""Which items may be candidates: the user vector, and the pool it and the profile reach.

The pool is the union of: the ``candidates`` items nearest to the user vector (the vector index, with the
hard constraints as index filters where it can apply them), the most engaging items carrying a liked tag,
the items the user touched, the items most liked by the same people (collaborative), the most engaging
items overall, and the embedding neighbourhood of the most recently liked items. Under hard constraints
only rows that meet them join; when the constraints leave few enough rows (``EXACT_LIMIT``), all of them
are the pool, scored exactly, and no index query is needed.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

from chatrec.catalogue.table import Catalogue
from chatrec.ports import Embedder, ModelMismatch, VectorIndex
from chatrec.recommend.behaviour import BehaviourModel
from chatrec.recommend.query import FOCUS, Query

TAG_CANDIDATES = 150
POPULAR_CANDIDATES = 60
LIKED_SEEDS = 5  # the most recently liked items whose neighbours join the pool
NEIGHBOURS = 20
COLLAB_CANDIDATES = 100  # items most liked by the same people as the user's liked items
#: constraints that leave at most this many rows make all of them the pool (exact, no index query)
EXACT_LIMIT = 1000
#: up to this many items a liked item's neighbours come from one matrix product over the catalogue's own
#: vectors (~1 ms at 10k); above it from the vector index (a million-item scan took ~100 ms here). The same
#: bound holds for the rows meeting the hard constraints: up to it, their nearest are found by a matrix product
#: over those rows (Chroma's `where` search took 110 ms at 100k items here, the product under 5 ms)
SCAN_LIMIT = 50_000
#: above SCAN_LIMIT allowed rows, the index is asked for this many times the candidates and the answer filtered
OVERSAMPLE = 4


class Retriever:
    def __init__(self, catalogue: Catalogue, index: VectorIndex, embedder: Embedder, behaviour: BehaviourModel,
                 candidates: int = 200):
        self.catalogue = catalogue
        self.index = index
        self.embedder = embedder
        self.behaviour = behaviour
        self.candidates = candidates

    def user_vector(self, query: Query, unknown_like: Iterable[str] = ()) -> np.ndarray | None:
        """The user side of S: the query text plus the liked tags in focus, blended with liked items at
        the pull of the strongest (a like made now counts as much as the words, older ones less)."""
        cat = self.catalogue
        parts: list[np.ndarray] = []
        text = query.text.strip()
        top = sorted(query.liked_tags, key=lambda t: -query.liked_tags[t])[:6]
        # faded tags stay in C, but do not speak for the request (unless there is nothing else)
        focus = [t for t in top if query.liked_tags[t] >= FOCUS] or ([] if text else top)
        liked_words = [*focus, *unknown_like]
        if liked_words:
            text = f"{text}. {', '.join(liked_words)}" if text else ", ".join(liked_words)
        if text:
            q = self.embedder.query(text)
            if q.shape[0] != cat.vectors.shape[1]:
                raise ModelMismatch(
                    f"the index {self.index.name!r} holds {cat.vectors.shape[1]}-d vectors but the embedding model "
                    f"{self.embedder.name!r} gives {q.shape[0]}-d ones: rebuild it with `chatrec index --rebuild`")
            parts.append(q.astype(np.float64))
        liked_rows = cat.rows_of(query.liked_items)
        if liked_rows:
            weights = np.array([max(query.liked_items[cat.ids[r]], 0.0) for r in liked_rows]) + 1e-9
            centroid = (np.asarray(cat.vectors[liked_rows], dtype=np.float64) * weights[:, None]).sum(0)
            parts.append(centroid / (np.linalg.norm(centroid) or 1.0) * min(float(weights.max()), 1.0))
        if not parts:
            return None
        vec = np.sum(parts, axis=0)
        return vec / (np.linalg.norm(vec) or 1.0)

    def pool_rows(self, query: Query, vector: np.ndarray | None, collab: np.ndarray | None = None,
                  allowed: np.ndarray | None = None) -> list[int]:
        """The candidate rows (see the module docstring); ``allowed``: the rows meeting the hard constraints."""
        if allowed is not None and int(allowed.sum()) <= EXACT_LIMIT:  # few enough: all of them, scored exactly
            return [int(r) for r in np.flatnonzero(allowed)]
        cat = self.catalogue
        rows: dict[int, None] = {}
        if vector is not None:
            for row in self.nearest_rows(query, vector, allowed):
                rows[row] = None
        for tag in sorted(query.liked_tags, key=lambda t: -query.liked_tags[t]):
            for row in cat.rows_with_tag(tag, TAG_CANDIDATES):
                rows[int(row)] = None
        for row in cat.rows_of((*query.liked_items, *query.user_events)):
            rows[row] = None
        for row in self.collab_rows(collab):
            rows[row] = None
        for row in self.behaviour.popular_order[:POPULAR_CANDIDATES]:
            rows[int(row)] = None
        seen = set(rows)
        out = list(rows) + [r for r in self.neighbours(list(query.liked_items)[-LIKED_SEEDS:], NEIGHBOURS)
                            if r not in seen]
        if allowed is not None:
            out = [r for r in out if allowed[r]]
        return out

    def nearest_rows(self, query: Query, vector: np.ndarray, allowed: np.ndarray | None) -> list[int]:
        """The ``candidates`` rows nearest to ``vector`` among the allowed ones: the vector index when nothing
        is ruled out; a matrix product over the allowed rows when they are few enough; else the index asked
        for more and filtered, and its own metadata filter (Chroma ``where``) when that leaves too few."""
        cat, n = self.catalogue, self.candidates
        if allowed is not None:
            count = int(allowed.sum())
            if count <= SCAN_LIMIT:
                rows = np.flatnonzero(allowed)
                sims = np.asarray(cat.vectors[rows]) @ vector.astype(np.float32)
                top = np.argpartition(-sims, min(n, len(rows) - 1))[:n] if len(rows) > n else np.arange(len(rows))
                return [int(rows[i]) for i in top[np.argsort(-sims[top], kind="stable")]]
        index_of = cat.index_of
        hits = [index_of[i] for i, _ in self.index.query(vector, n if allowed is None else n * OVERSAMPLE)
                if i in index_of]
        if allowed is None:
            return hits
        kept = [r for r in hits if allowed[r]]
        if len(kept) >= n // 2:
            return kept[:n]
        return [index_of[i] for i, _ in self.index.query(vector, n, query.constraints.conditions()) if i in index_of]

    def nearest(self, text: str, n: int) -> list[tuple[str, float]]:
        return self.index.query(self.embedder.query(text), n)

    @staticmethod
    def collab_rows(collab: np.ndarray | None, n: int = COLLAB_CANDIDATES) -> list[int]:
        """The rows most liked by the same people as the user's liked items, best first (only rows with a
        score are sorted: a million-row catalogue has a few thousand)."""
        if collab is None or not len(collab):
            return []
        support = np.flatnonzero(collab > 0)
        if not support.size:
            return []
        values = collab[support]
        top = np.argpartition(-values, min(n, len(values) - 1))[:n] if len(values) > n else np.arange(len(values))
        order = top[np.argsort(-values[top], kind="stable")]
        return [int(support[i]) for i in order]

    def neighbours(self, item_ids: Iterable[str], n: int = 30) -> list[int]:
        """Rows of the items nearest to each given item: the catalogue's own vectors for a small catalogue,
        the vector index for a large one (no index query either way for catalogues up to SCAN_LIMIT)."""
        cat = self.catalogue
        out: dict[int, None] = {}
        for row in cat.rows_of(item_ids):
            if cat.n > SCAN_LIMIT:
                index_of = cat.index_of
                near = [index_of[i] for i, _ in self.index.query(np.asarray(cat.vectors[row]), n + 1) if i in index_of]
            else:
                sims = cat.vectors @ cat.vectors[row]
                top = np.argpartition(-sims, min(n, len(sims) - 1))[: n + 1]
                near = top[np.argsort(-sims[top], kind="stable")]
            for r in near:
                if int(r) != row:
                    out[int(r)] = None
        return list(out)
