"""MovieLens leave-last-out evaluation: HR@10 and NDCG@10 of the recommender against two baselines.

Per user, the most recent rating (ties broken by movieId) is the test item and the earlier ones
are the history. The system sees the history as liked items and events (:func:`system_query`);
the baselines, popularity and item-kNN, are fitted on the histories of all users only, so no test
rating is ever training data.

Caveat (also in the ``notes`` of :func:`evaluate`): the catalogue's global engagement prior
(``n_ratings``, ``mean_rating``, ``recent_ratings`` in ``data/movies.jsonl``) was computed from all
ratings, held-out ones included, so the system's figures carry a small leak of the test items'
popularity. The popularity baseline here is fitted on histories only and does not.

Only numpy is imported at module level: the split, metrics and baselines need no store, model or
LLM; the recommender (Chroma, embedder) and scipy are imported where they are used.
"""

from __future__ import annotations

import csv
import gzip
import math
import time
from collections import Counter
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import NamedTuple

import numpy as np

K = 10
LIKE_THRESHOLD = 4.0
VIEW_THRESHOLD = 3.0
MAX_LIKED = 20
# The same numbers as core.scoring.EVENT_WEIGHTS["like"/"view"/"dislike"]; repeated so this module stays
# free of the ranking imports (a test checks they agree).
EVENT_LIKE, EVENT_VIEW, EVENT_DISLIKE = 5.0, 1.0, -5.0

#: Reported for context only: Yue et al. 2023 (LlamaRec), leave-one-out on ML-100k, not this data.
PUBLISHED = {
    "SASRec": {"hr@10": 0.0993, "ndcg@10": 0.0522},
    "LRURec": {"hr@10": 0.1426, "ndcg@10": 0.0705},
    "LlamaRec": {"hr@10": 0.1524, "ndcg@10": 0.0759},
}

LEAK_NOTE = (
    "the catalogue's global engagement prior (n_ratings, mean_rating, recent_ratings in "
    "data/movies.jsonl) was computed on all ratings including the held-out ones, so the system's "
    "figures carry a small popularity leak; the popularity baseline here is fitted on histories only"
)


class Rating(NamedTuple):
    user: int
    item: str
    rating: float
    ts: int


class Case(NamedTuple):
    user: int
    history: tuple[Rating, ...]  # oldest first
    test: str

    @property
    def seen(self) -> frozenset[str]:
        return frozenset(r.item for r in self.history)


# -- data -------------------------------------------------------------------------------------
def load_ratings(path: Path | str) -> list[Rating]:
    """Read the gzip CSV written by :mod:`chatrec.builders.ratings` (plain CSV also accepted)."""
    path = Path(path)
    opener = gzip.open if path.suffix == ".gz" else open
    out: list[Rating] = []
    with opener(path, "rt", encoding="utf-8", newline="") as fh:
        reader = csv.reader(fh)
        header = next(reader, None)
        if header is None or [h.strip() for h in header] != ["userId", "movieId", "rating", "timestamp"]:
            raise ValueError(f"{path}:1: expected header userId,movieId,rating,timestamp, got {header}")
        for line, row in enumerate(reader, 2):
            if not row:
                continue
            try:
                user, item, rating, ts = row
                out.append(Rating(int(user), item.strip(), float(rating), int(ts)))
            except ValueError:
                raise ValueError(f"{path}:{line}: malformed rating row {row!r}") from None
            if not out[-1].item or not math.isfinite(out[-1].rating):
                raise ValueError(f"{path}:{line}: malformed rating row {row!r}")
    return out


def _item_key(item: str) -> tuple:
    # MovieLens ids are numbers: order them as numbers (as the builder does), other ids as text.
    return (0, int(item), "") if item.isdigit() else (1, 0, item)


def leave_last_out(ratings: Iterable[Sequence]) -> list[Case]:
    """One case per user with at least 2 ratings, in user order: last by (timestamp, movieId) is the test."""
    by_user: dict = {}
    for r in ratings:
        r = Rating(*r)
        by_user.setdefault(r.user, []).append(r)
    cases = []
    for user in sorted(by_user):
        rs = sorted(by_user[user], key=lambda r: (r.ts, _item_key(r.item)))
        if len(rs) >= 2:
            cases.append(Case(user, tuple(rs[:-1]), rs[-1].item))
    return cases


# -- metrics ----------------------------------------------------------------------------------
def rank_of(ranked: Sequence[str], target: str, k: int = K) -> int | None:
    """1-based position of ``target`` in the first ``k`` of ``ranked``, or None."""
    for pos, item in enumerate(ranked[:k], 1):
        if item == target:
            return pos
    return None


def hit(rank: int | None, k: int = K) -> float:
    return 1.0 if rank is not None and rank <= k else 0.0


def ndcg(rank: int | None, k: int = K) -> float:
    # One relevant item, so the ideal DCG is 1 and NDCG = 1 / log2(rank + 1).
    return 1.0 / math.log2(rank + 1) if rank is not None and rank <= k else 0.0


def summarize(ranks: Sequence[int | None], k: int = K) -> dict[str, float]:
    n = max(len(ranks), 1)
    return {
        f"hr@{k}": round(sum(hit(r, k) for r in ranks) / n, 4),
        f"ndcg@{k}": round(sum(ndcg(r, k) for r in ranks) / n, 4),
    }


# -- baselines (fitted on histories only) -----------------------------------------------------
def popularity_order(train: Sequence[Case]) -> list[str]:
    """Items by number of training ratings, most first (ties by id)."""
    counts = Counter(r.item for case in train for r in case.history)
    return sorted(counts, key=lambda i: (-counts[i], _item_key(i)))


def popularity_topk(train: Sequence[Case], cases: Sequence[Case], k: int = K) -> list[list[str]]:
    order = popularity_order(train)
    out = []
    for case in cases:
        seen = case.seen
        top: list[str] = []
        for item in order:
            if item not in seen:
                top.append(item)
                if len(top) == k:
                    break
        out.append(top)
    return out


def item_knn_topk(train: Sequence[Case], cases: Sequence[Case], k: int = K, chunk: int = 256) -> list[list[str]]:
    """Item-kNN on the binary user×item training matrix X.

    sim(i, j) = cosine of columns i and j; a candidate's score is the sum of its similarity to the
    user's history items. With Xn = X scaled by 1/sqrt(column count), sim = Xnᵀ·Xn, so the scores
    of a batch of users with history rows H are (H·Xnᵀ)·Xn: the item×item matrix is never built.
    Columns are in popularity order so a stable sort breaks score ties by popularity.
    """
    from scipy.sparse import csr_matrix, diags

    items = popularity_order(train)
    col = {item: j for j, item in enumerate(items)}

    def binary(rows: Sequence[Case]):
        pairs = {(u, col[r.item]) for u, case in enumerate(rows) for r in case.history if r.item in col}
        u, j = zip(*pairs) if pairs else ((), ())
        return csr_matrix((np.ones(len(u)), (u, j)), shape=(len(rows), len(items)))

    x = binary(train)
    counts = np.asarray(x.sum(axis=0)).ravel()
    xn = (x @ diags(1.0 / np.sqrt(np.maximum(counts, 1.0)))).tocsr()
    out: list[list[str]] = []
    for start in range(0, len(cases), chunk):
        batch = cases[start : start + chunk]
        h = binary(batch)
        scores = np.asarray(xn.T @ (xn @ h.T).toarray()).T.copy()  # sparse·dense: fast
        scores[h.nonzero()] = -np.inf  # never recommend what the user already rated
        for row in scores:
            top = np.argsort(-row, kind="stable")[:k]
            out.append([items[j] for j in top if np.isfinite(row[j])])
    return out


# -- the product's own path -------------------------------------------------------------------
def event_weight(rating: float) -> float:
    if rating >= LIKE_THRESHOLD:
        return EVENT_LIKE
    return EVENT_VIEW if rating >= VIEW_THRESHOLD else EVENT_DISLIKE


def system_query(case: Case):
    """The Query the recommender gets for a user: recent likes (at most 20, most recent last),
    every rating as an event, every rated item excluded. No liked item → the cold path."""
    from chatrec.recommend.query import Query

    liked = [r.item for r in case.history if r.rating >= LIKE_THRESHOLD][-MAX_LIKED:]
    return Query(
        text="",
        liked_items={item: 1.0 for item in liked},
        user_events={r.item: event_weight(r.rating) for r in case.history},
        exclude_ids=case.seen,
    )


def use_training_behaviour(recommender, cases: Sequence[Case]) -> None:
    """The collaborative half of B from the histories only: the product's default log (all of
    MovieLens) holds every held-out rating, which would hand each user their own test item."""
    likes = [(str(n), r.item) for n, case in enumerate(cases) for r in case.history if r.rating >= LIKE_THRESHOLD]
    recommender.use_likes("movielens-history-likes", likes)


def evaluate_system(recommender, cases: Sequence[Case], k: int = K) -> list[int | None]:
    """Rank of each case's test item in ``recommender.recommend(system_query(case), k)``.

    ``recommender`` is a :class:`chatrec.recommend.recommender.Recommender` (anything with the same
    ``recommend`` works here; :func:`evaluate` also calls its ``use_likes``). Note: the catalogue's engagement prior saw the held-out ratings too
    (see the module docstring), so these figures carry a small leak.
    """
    ranks = []
    for case in cases:
        result = recommender.recommend(system_query(case), k=k)
        ranks.append(rank_of([rec.item.id for rec in result.items], case.test, k))
    return ranks


def evaluate(recommender, ratings_path: Path | str, limit: int | None = None, baselines: bool = True) -> dict:
    """HR@10 / NDCG@10 of the system (and baselines) over the first ``limit`` users by id.

    The baselines are fitted on every user's history whatever ``limit`` is; it only chooses
    which users are scored.
    """
    t0 = time.perf_counter()
    cases = leave_last_out(load_ratings(ratings_path))
    scored = cases[:limit] if limit is not None else cases
    use_training_behaviour(recommender, cases)
    system = summarize(evaluate_system(recommender, scored, K))
    out: dict = {"n_users": len(scored), **system}
    if baselines:
        out["baselines"] = {
            name: summarize([rank_of(top, c.test, K) for top, c in zip(fn(cases, scored, K), scored)])
            for name, fn in (("popularity", popularity_topk), ("item_knn", item_knn_topk))
        }
    out["published"] = PUBLISHED
    out["seconds"] = round(time.perf_counter() - t0, 2)
    cold = sum(1 for c in scored if not any(r.rating >= LIKE_THRESHOLD for r in c.history))
    out["notes"] = [
        LEAK_NOTE,
        "baselines are fitted on the histories of all users (never a test rating); limit only picks the scored users",
        f"{cold} of {len(scored)} scored users have no history rating >= 4 and get the cold (popular) path",
        "published: LlamaRec paper (Yue et al. 2023) on ML-100k with its own split; context, not a like-for-like comparison",
    ]
    return out
