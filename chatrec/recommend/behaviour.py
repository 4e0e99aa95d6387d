"""Everyone's behaviour, the collaborative half of B: items liked by the same people.

An interaction log (who liked what: MovieLens ratings, the movies named together in ReDial
conversations, a shop's purchases) becomes a users × items incidence matrix. For a user who liked
items L with strengths w, the collaborative score of item i is the item-kNN sum

    collab(i) = Σ_{j∈L} w_j · |U_i ∩ U_j| / sqrt(|U_i| · |U_j|)

(the co-occurrence cosine of i and j), computed as two sparse products over the whole catalogue.
Each log's scores are divided by their maximum, and several logs are averaged by their weights,
so ``collab`` is in [0, 1], aligned with the catalogue, and 0 for items nobody liked with L.

Pure: numpy/scipy only. Reading a log file is :func:`read_interactions`, a thin CSV reader;
:class:`BehaviourModel` holds one catalogue's prior and collaborative model for the recommender.
"""

from __future__ import annotations

import csv
import gzip
import io
import logging
import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import numpy as np
from scipy.sparse import csr_matrix

USER_COLUMNS = ("user", "userId", "user_id", "session", "conversationId")
ITEM_COLUMNS = ("item", "item_id", "itemId", "movieId", "id")
VALUE_COLUMNS = ("rating", "weight", "value")


class InteractionError(ValueError):
    pass


@dataclass(frozen=True, eq=False)
class InteractionLog:
    """Items × users, 1 where the user liked the item; rows aligned with the catalogue."""

    name: str
    by_item: csr_matrix  # catalogue rows × users
    degree: np.ndarray  # how many users liked each item

    @classmethod
    def from_pairs(cls, name: str, n_items: int, pairs: Iterable[tuple[str, int]]) -> "InteractionLog":
        """``pairs``: (user key, catalogue row) for each like; repeats count once."""
        users: dict[str, int] = {}
        cells = {(row, users.setdefault(user, len(users))) for user, row in pairs if 0 <= row < n_items}
        rows = np.fromiter((r for r, _ in cells), dtype=np.int64, count=len(cells))
        cols = np.fromiter((u for _, u in cells), dtype=np.int64, count=len(cells))
        matrix = csr_matrix((np.ones(len(cells)), (rows, cols)), shape=(n_items, max(len(users), 1)))
        return cls(name, matrix, np.asarray(matrix.sum(axis=1)).ravel())

    @property
    def n_likes(self) -> int:
        return int(self.by_item.nnz)

    @cached_property
    def _active(self) -> tuple[np.ndarray, csr_matrix, np.ndarray]:
        """The rows anyone liked, their part of the matrix and 1/√degree: a catalogue of a million items with
        likes on ten thousand of them is scored over those ten thousand only."""
        rows = np.flatnonzero(self.degree > 0)
        return rows, self.by_item[rows], 1.0 / np.sqrt(self.degree[rows])

    def scores(self, liked: Mapping[int, float]) -> np.ndarray | None:
        """Item-kNN scores for every catalogue row, scaled to a maximum of 1; None when no liked item
        has any co-liked item in this log."""
        part = self.active_scores(liked)
        if part is None:
            return None
        out = np.zeros(self.by_item.shape[0])
        out[part[0]] = part[1]
        return out

    def active_scores(self, liked: Mapping[int, float]) -> tuple[np.ndarray, np.ndarray] | None:
        """The scores of :meth:`scores` on the rows anyone liked (the others are 0): (rows, scores)."""
        seeds = [(row, w) for row, w in liked.items() if w > 0 and self.degree[row] > 0]
        if not seeds:
            return None
        rows = [row for row, _ in seeds]
        coef = np.array([w / math.sqrt(self.degree[row]) for row, w in seeds])
        users = self.by_item[rows].T @ coef  # how strongly each user shares the liked items
        active, matrix, scale = self._active
        values = (matrix @ users) * scale
        values[np.isin(active, rows)] = 0.0  # an item is not its own neighbour (a liked row outside active is 0)
        top = float(values.max()) if len(values) else 0.0
        return (active, values / top) if top > 0 else None


@dataclass(frozen=True, eq=False)
class Behaviour:
    """Several interaction logs, each with a weight; ``collaborative`` blends their scores."""

    logs: tuple[tuple[InteractionLog, float], ...]

    def collaborative(self, liked: Mapping[int, float]) -> np.ndarray | None:
        """The weighted mean of the logs' scores (logs with nothing to say leave the mean), or None."""
        # blended on the rows anyone liked: whole-catalogue arrays cost 40 ms a like at a million items
        parts = [(part, w) for log, w in self.logs if w > 0
                 for part in [log.active_scores(liked)] if part is not None]
        if not parts:
            return None
        weight = sum(w for _, w in parts)
        total = np.zeros(self.logs[0][0].by_item.shape[0])  # untouched pages of it are never written
        for (rows, values), w in parts:
            total[rows] += values * (w / weight)
        return total

    def describe(self) -> dict:
        return {log.name: {"likes": log.n_likes, "weight": w} for log, w in self.logs}


def read_interactions(
    path: Path, liked_at: float = 4.0
) -> list[tuple[str, str]]:
    """(user, item id) likes from a CSV (optionally .gz) with a header naming a user column
    (``user``/``userId``/...), an item column (``item``/``movieId``/...) and optionally a ``rating``
    or ``weight``: a row is a like when that value is ≥ ``liked_at`` (ratings) or > 0 (weights);
    without a value column every row is a like."""
    path = Path(path)
    try:
        raw = path.read_bytes()
        text = gzip.decompress(raw).decode("utf-8") if raw[:2] == b"\x1f\x8b" else raw.decode("utf-8")
    except (OSError, EOFError, UnicodeDecodeError, gzip.BadGzipFile) as exc:
        raise InteractionError(f"{path}: cannot read the interaction log ({exc})") from None
    reader = csv.DictReader(io.StringIO(text))
    header = reader.fieldnames or []
    user_col = _column(header, USER_COLUMNS, path, "user")
    item_col = _column(header, ITEM_COLUMNS, path, "item")
    value_col = next((c for c in VALUE_COLUMNS if c in header), None)
    threshold = liked_at if value_col == "rating" else 0.0
    out = []
    for n, row in enumerate(reader, 2):
        user, item = (row.get(user_col) or "").strip(), (row.get(item_col) or "").strip()
        if not user or not item:
            raise InteractionError(f"{path}:{n}: empty {user_col} or {item_col}")
        if value_col is not None:
            try:
                value = float(row[value_col])
            except (TypeError, ValueError):
                raise InteractionError(f"{path}:{n}: {value_col} is not a number: {row.get(value_col)!r}") from None
            if not value >= threshold or (value_col != "rating" and value <= 0):
                continue
        out.append((user, item))
    return out


def _column(header: Sequence[str], names: Sequence[str], path: Path, what: str) -> str:
    for name in names:
        if name in header:
            return name
    raise InteractionError(f"{path}: no {what} column (expected one of {', '.join(names)}; found {', '.join(header)})")


def log_for(name: str, likes: Iterable[tuple[str, str]], index_of: Mapping[str, int] | Mapping[str, Sequence[int]],
            n_items: int) -> InteractionLog:
    """An :class:`InteractionLog` over the catalogue from (user, item id) likes. ``index_of`` maps an
    item id to its catalogue row, or to several rows (one log item joined to several catalogue items)."""
    def pairs():
        for user, item in likes:
            rows = index_of.get(item)
            if rows is None:
                continue
            for row in (rows,) if isinstance(rows, int) else rows:
                yield user, row

    return InteractionLog.from_pairs(name, n_items, pairs())


class BehaviourModel:
    """Everyone's behaviour over one catalogue: B's engagement prior and its collaborative part.

    The prior is the catalogue's (rating statistics) unless an evaluation hands in its own (counts from
    training data only); the collaborative model comes from an interaction log, loaded on first use.
    Collaborative scores are memoised per seed set: feedback re-ranks ask again with the same seeds."""

    MEMO = 64

    def __init__(self, catalogue, load: Callable[[], "Behaviour | None"] | None = None):
        self.catalogue = catalogue
        self._load = load
        self._behaviour: Behaviour | None | bool = False if load is not None else None  # False: not loaded yet
        self._memo: dict[tuple, np.ndarray | None] = {}
        self._prior: np.ndarray | None = None
        self._popular: np.ndarray | None = None

    @property
    def model(self) -> Behaviour | None:
        if self._behaviour is False:
            self._behaviour = self._load()
        return self._behaviour or None

    @property
    def prior(self) -> np.ndarray:
        return self.catalogue.engagement if self._prior is None else self._prior

    @property
    def popular_order(self) -> np.ndarray:
        return self.catalogue.popular_order if self._popular is None else self._popular

    def use(self, behaviour: Behaviour | None, prior: np.ndarray | None = None) -> None:
        """Replace everyone's behaviour: the collaborative model and/or the prior (evaluations pass logs and
        counts built from training data only)."""
        self._behaviour = behaviour
        self._memo = {}
        self._prior = None if prior is None else np.asarray(prior, dtype=np.float64)
        self._popular = None if prior is None else np.argsort(-self._prior, kind="stable")

    def use_likes(self, name: str, likes: Iterable[tuple[str, str]]) -> None:
        """The collaborative model from these (user, item id) likes instead of the configured log."""
        log = log_for(name, likes, self.catalogue.index_of, self.catalogue.n)
        self.use(Behaviour(((log, 1.0),)) if log.n_likes else None)

    def collaborative(self, seeds: Mapping[str, float]) -> np.ndarray | None:
        """Collaborative scores over the whole catalogue from seed items (id → weight); None without seeds
        or behaviour."""
        model = self.model
        if model is None:
            return None
        index_of = self.catalogue.index_of
        rows = {index_of[i]: w for i, w in seeds.items() if i in index_of and w > 0}
        if not rows:
            return None
        key = tuple(sorted(rows.items()))
        if key not in self._memo:
            if len(self._memo) >= self.MEMO:
                self._memo.clear()
            self._memo[key] = model.collaborative(rows)
        return self._memo[key]


def behaviour_from_log(catalogue, path: Path | None, liked_at: float) -> Behaviour | None:
    """The collaborative model from an interaction log file; None when there is none or it names no item
    of this catalogue. A broken log is an :class:`InteractionError` that says which setting to fix."""
    if path is None:
        return None
    try:
        likes = read_interactions(path, liked_at)
    except InteractionError as exc:
        raise InteractionError(f"{exc} (set CHATREC_INTERACTIONS to a valid log, or to nothing to switch it off)") \
            from None
    log = log_for(Path(path).name, likes, catalogue.index_of, catalogue.n)
    if not log.n_likes:
        logging.getLogger(__name__).info("the interaction log %s names no item of this catalogue", path)
        return None
    return Behaviour(((log, 1.0),))
