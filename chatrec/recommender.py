"""Recommendations without an LLM: retrieve candidates, rank them with the fused score.

This is the I/O edge around the pure :mod:`chatrec.rank`: it owns the item store, the
embedder and the per-item engagement prior, and turns a query plus tag preferences into
:class:`Recommendation` objects with their breakdowns.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

import numpy as np

from chatrec import rank
from chatrec.behaviour import Behaviour, InteractionError, log_for, read_interactions
from chatrec.catalog import Item, load_catalog, tag_key
from chatrec.profile import Decay
from chatrec.settings import Settings
from chatrec.store import IndexReport, ItemStore, ItemTable, StoreError

log = logging.getLogger(__name__)

ACTIVE_FILE = "active.json"
TAG_CANDIDATES = 150
POPULAR_CANDIDATES = 60
LIKED_SEEDS = 5  # the most recently liked items whose neighbours join the pool
NEIGHBOURS = 20
COLLAB_CANDIDATES = 100  # items most liked by the same people as the user's liked items


@dataclass(frozen=True)
class Recommendation:
    item: Item
    breakdown: rank.Breakdown

    @property
    def score(self) -> float:
        return self.breakdown.score

    def to_json(self) -> dict:
        return {
            "id": self.item.id,
            "title": self.item.title,
            "year": self.item.year,
            "score": round(self.score, 6),
            "tags": list(self.item.all_tags),
            "breakdown": self.breakdown.as_dict(),
            "matched_tags": list(self.breakdown.matched_tags),
            "disliked_tags": list(self.breakdown.disliked_tags),
        }


@dataclass
class Query:
    """What the user side of one ranking call holds; the engine builds this from a profile."""

    text: str = ""
    liked_tags: Mapping[str, float] = field(default_factory=dict)
    disliked_tags: Mapping[str, float] = field(default_factory=dict)
    liked_items: Mapping[str, float] = field(default_factory=dict)
    user_events: Mapping[str, float] = field(default_factory=dict)
    exclude_ids: frozenset[str] = frozenset()
    #: items the conversation has been about without a like (named by either side, picks shown on an
    #: earlier turn), id -> seed weight: they steer the collaborative part of B, weaker than a like
    context_items: Mapping[str, float] = field(default_factory=dict)

    @classmethod
    def from_preferences(cls, prefs, text: str, like_tags=None, dislike_tags=None) -> "Query":
        """Merge extracted preferences with explicit tag choices (explicit choices win)."""
        dislike_tags = dict(dislike_tags or {})
        liked = {t: 1.0 for t in prefs.liked_tags if t not in dislike_tags}
        liked.update(like_tags or {})
        disliked = {t: 1.0 for t in prefs.disliked_tags if t not in liked}
        disliked.update(dislike_tags)
        for t in dislike_tags:
            liked.pop(t, None)
        mentioned = prefs.mentioned()  # as in chat: a title named as not seen may be recommended
        return cls(
            text=prefs.query if prefs.query.strip() else text,
            liked_tags=liked,
            disliked_tags=disliked,
            liked_items={i: s for i, s in mentioned.items() if s > 0},
            exclude_ids=frozenset(mentioned),
        )

    @property
    def is_cold(self) -> bool:
        return not (self.text.strip() or self.liked_tags or self.liked_items)


#: how many of the most recent conversation items seed the collaborative part
CONTEXT_ITEMS = 10
#: liked tags at or above this weight are the focus, embedded with the request: said in this message, or
#: in the one before if this one moved nothing (profile.Decay: 0.7 after one plain message, 0.35 after a shift)
FOCUS = Decay().focus


def context_seeds(items: Iterable[str], profile, weight: float) -> dict[str, float]:
    """Seed weights for the items a conversation has been about (oldest first, repeats allowed): the
    ``CONTEXT_ITEMS`` most recently named that the user has neither liked (a like seeds at its own
    strength) nor disliked. An item named again counts from its latest mention."""
    if weight <= 0:
        return {}
    skip = set(profile.liked_items) | profile.disliked_items
    latest_first = [i for i in dict.fromkeys(reversed(list(items))) if i not in skip][:CONTEXT_ITEMS]
    return {i: weight for i in reversed(latest_first)}


@dataclass
class Result:
    items: list[Recommendation]
    cold_start: bool
    warnings: list[str] = field(default_factory=list)
    unknown_tags: dict[str, list[str]] = field(default_factory=dict)


class Catalogue:
    """The in-memory view of an indexed collection that ranking needs: vectors, tags, prior."""

    def __init__(self, table: ItemTable):
        self.table = table
        self.items = table.items
        self.matrix = table.matrix
        self.tag_keys = [item.tag_keys for item in self.items]
        self.ids = [item.id for item in self.items]
        self.engagement = self._engagement(self.items)
        self.popular_order = np.argsort(-self.engagement, kind="stable")
        self.by_tag: dict[str, list[int]] = {}
        for i in self.popular_order:  # postings sorted by engagement, best first
            for t in self.tag_keys[i]:
                self.by_tag.setdefault(t, []).append(int(i))
        self.vocabulary = sorted(self.by_tag)
        self.tag_column = {t: j for j, t in enumerate(self.vocabulary)}
        self.tag_matrix = self._incidence()

    def _incidence(self):
        """Items × tags, 1 where the item carries the tag: C and the penalty become one sparse product."""
        from scipy.sparse import csr_matrix

        rows, cols = [], []
        for i, keys in enumerate(self.tag_keys):
            for t in keys:
                rows.append(i)
                cols.append(self.tag_column[t])
        data = np.ones(len(rows), dtype=np.float64)
        return csr_matrix((data, (rows, cols)), shape=(len(self.items), len(self.vocabulary)))

    def tag_share(self, tag_rows, weights: Mapping[str, float]) -> np.ndarray:
        """For each of ``tag_rows`` (rows of :attr:`tag_matrix`): the weighted share of ``weights``' tags
        the item carries (the vectorised :func:`rank.tag_match`)."""
        n = tag_rows.shape[0]
        total = sum(w for w in weights.values() if w > 0)
        if total <= 0 or n == 0:
            return np.zeros(n)
        vec = np.zeros(len(self.vocabulary))
        for t, w in weights.items():
            j = self.tag_column.get(t)
            if j is not None and w > 0:
                vec[j] = w
        return np.asarray(tag_rows @ vec).ravel() / total

    @staticmethod
    def _engagement(items: list[Item]) -> np.ndarray:
        n = np.array([max(it.n_ratings, 0) for it in items], dtype=np.float64)
        recent = np.array([max(it.recent_ratings, 0) for it in items], dtype=np.float64)
        pop = np.array([max(it.popularity or 0.0, 0.0) for it in items], dtype=np.float64)
        max_n, max_recent, max_pop = n.max(initial=0), recent.max(initial=0), pop.max(initial=0)
        rated = [it.mean_rating for it in items if it.mean_rating is not None and it.n_ratings > 0]
        prior = float(np.mean(rated)) if rated else 3.5
        out = np.empty(len(items), dtype=np.float64)
        for i, it in enumerate(items):
            if max_n > 0:
                out[i] = rank.global_engagement(
                    it.n_ratings, max_n, it.mean_rating, prior_mean=prior,
                    recent=it.recent_ratings, max_recent=max_recent,
                )
            elif max_pop > 0:  # catalogues with only a popularity column
                out[i] = math.log1p(pop[i]) / math.log1p(max_pop)
            else:
                out[i] = 0.0
        return out

    def closest_tags(self, tag: str, limit: int = 3) -> list[str]:
        from rapidfuzz import fuzz, process

        hits = process.extract(tag_key(tag), self.vocabulary, scorer=fuzz.WRatio, limit=limit * 4)
        # Prefer well-used tags among equally close spellings.
        hits.sort(key=lambda h: (-h[1], -len(self.by_tag[h[0]])))
        return [h[0] for h in hits[:limit]]


class Recommender:
    def __init__(self, settings: Settings, store: ItemStore | None = None, collection: str | None = None):
        self.settings = settings
        self.store = store or ItemStore(
            data_dir=settings.data_dir,
            collection=collection or settings.collection or active_collection(settings.data_dir),
            chroma_url=settings.chroma_url,
            embedding_model=settings.embedding_model,
            batch_size=settings.index_batch_size,
            embed_batch_size=settings.embed_batch_size,
            embedding_backend=settings.embedding_backend,
        )
        self.weights = settings.weights(self.store.collection_name)
        self._catalogue: Catalogue | None = None
        self._behaviour: Behaviour | None | bool = False  # False: not loaded yet
        self._collab_memo: dict[tuple, np.ndarray | None] = {}  # likes -> collaborative scores
        self._prior: np.ndarray | None = None
        self._popular: np.ndarray | None = None

    # -- everyone's behaviour -----------------------------------------------------------------
    @property
    def behaviour(self) -> Behaviour | None:
        """The collaborative model over this catalogue, from ``settings.interactions`` (loaded on first
        use); None when switched off or when the log names none of this catalogue's items."""
        if self._behaviour is False:
            self._behaviour = self._load_behaviour()
        return self._behaviour or None

    def _load_behaviour(self) -> Behaviour | None:
        path = self.settings.interactions
        if path is None:
            return None
        try:
            likes = read_interactions(path, self.settings.liked_rating)
        except InteractionError as exc:
            raise StoreError(f"{exc} (set CHATREC_INTERACTIONS to a valid log, or to nothing to switch it off)") from None
        behaviour = self._behaviour_from(Path(path).name, likes)
        if behaviour is None:
            log.info("the interaction log %s names no item of this catalogue: no collaborative score", path)
        return behaviour

    def _behaviour_from(self, name: str, likes: Iterable[tuple[str, str]]) -> Behaviour | None:
        """One interaction log over this catalogue from (user, item id) likes; None if it names no item."""
        cat = self.catalogue
        interactions = log_for(name, likes, cat.table.index_of, len(cat.ids))
        return Behaviour(((interactions, 1.0),)) if interactions.n_likes else None

    def use_likes(self, name: str, likes: Iterable[tuple[str, str]]) -> None:
        """Everyone's behaviour from these (user, item id) likes instead of ``settings.interactions``
        (an evaluation passes its training part only)."""
        self.use_behaviour(self._behaviour_from(name, likes))

    def use_behaviour(self, behaviour: Behaviour | None, prior: np.ndarray | None = None) -> None:
        """Replace everyone's behaviour: the collaborative model and/or the popularity prior (evaluations
        pass logs and counts built from training data only)."""
        self._behaviour = behaviour
        self._collab_memo = {}
        self._prior = None if prior is None else np.asarray(prior, dtype=np.float64)
        self._popular = None if prior is None else np.argsort(-self._prior, kind="stable")

    @property
    def prior(self) -> np.ndarray:
        return self.catalogue.engagement if self._prior is None else self._prior

    @property
    def popular_order(self) -> np.ndarray:
        return self.catalogue.popular_order if self._popular is None else self._popular

    def collaborative(self, query: "Query") -> np.ndarray | None:
        """Collaborative scores over the whole catalogue, seeded by the query's liked items and (at their
        lower weight) the items the conversation has been about; None without seeds or behaviour."""
        behaviour = self.behaviour
        if behaviour is None:
            return None
        index_of = self.catalogue.table.index_of
        seeds = {index_of[i]: w for i, w in query.context_items.items() if i in index_of and w > 0}
        seeds.update({index_of[i]: w for i, w in query.liked_items.items() if i in index_of and w > 0})
        if not seeds:
            return None
        # Feedback re-ranks ask again with the same seeds (a skip, a click): answer from a small memo.
        key = tuple(sorted(seeds.items()))  # use_behaviour clears the memo
        if key not in self._collab_memo:
            if len(self._collab_memo) >= 64:
                self._collab_memo.clear()
            self._collab_memo[key] = behaviour.collaborative(seeds)
        return self._collab_memo[key]

    # -- index --------------------------------------------------------------------------------
    def index_file(
        self, path: Path, mapping: Mapping[str, str] | None = None, rebuild: bool = False,
        progress: Callable[[int, int], None] | None = None,
    ) -> IndexReport:
        items = load_catalog(path, mapping)  # validates everything before touching the index
        report = self.store.index(items, source=str(path), rebuild=rebuild, progress=progress)
        set_active_collection(self.settings.data_dir, self.store.collection_name)
        self._catalogue = None
        return report

    def ensure_index(self, progress: Callable[[int, int], None] | None = None) -> IndexReport | None:
        """Build the default catalogue's index when it is missing or was interrupted."""
        if self.store.is_ready():
            return None
        if self.store.collection_name != collection_for(self.settings.catalog) and self.store.exists():
            raise StoreError(
                f"the index {self.store.collection_name!r} is incomplete: run `chatrec index PATH` "
                "with its catalogue to resume"
            )
        return self.index_file(self.settings.catalog, progress=progress)

    @property
    def catalogue(self) -> Catalogue:
        if self._catalogue is None:
            self._catalogue = Catalogue(self.store.table())
        return self._catalogue

    def genres_of(self, ids: Iterable[str]) -> dict[str, tuple[str, ...]]:
        """Genre tag keys of the given items (what profile.moves_focus compares with the focus)."""
        cat = self.catalogue
        rows = ((i, cat.table.index_of.get(i)) for i in ids)
        return {i: tuple(tag_key(g) for g in cat.items[r].genres) for i, r in rows if r is not None}

    # -- ranking ------------------------------------------------------------------------------
    def resolve_tags(self, tags: Iterable[str]) -> tuple[dict[str, float], dict[str, list[str]]]:
        """Known tags → weight 1; unknown ones come back with their closest known spellings."""
        known: dict[str, float] = {}
        unknown: dict[str, list[str]] = {}
        for tag in tags:
            key = tag_key(tag)
            if not key:
                continue
            if key in self.catalogue.by_tag:
                known[key] = max(known.get(key, 0.0), 1.0)
            else:
                unknown[tag] = self.catalogue.closest_tags(tag)
        return known, unknown

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
            q = self.store.embedder.query(text)
            if q.shape[0] != cat.matrix.shape[1]:
                self.store.check_model(dimension=int(q.shape[0]))
            parts.append(q.astype(np.float64))
        liked_rows = [cat.table.index_of[i] for i in query.liked_items if i in cat.table.index_of]
        if liked_rows:
            weights = np.array([max(query.liked_items[cat.items[r].id], 0.0) for r in liked_rows]) + 1e-9
            centroid = (cat.matrix[liked_rows].astype(np.float64) * weights[:, None]).sum(0)
            parts.append(centroid / (np.linalg.norm(centroid) or 1.0) * min(float(weights.max()), 1.0))
        if not parts:
            return None
        vec = np.sum(parts, axis=0)
        return vec / (np.linalg.norm(vec) or 1.0)

    def candidates(self, query: Query, vector: np.ndarray | None, collab: np.ndarray | None = None) -> list[int]:
        cat = self.catalogue
        rows: dict[int, None] = {}
        if vector is not None:
            for ident, _ in self.store.query(vector, self.settings.candidates):
                row = cat.table.index_of.get(ident)
                if row is not None:
                    rows[row] = None
        for tag in sorted(query.liked_tags, key=lambda t: -query.liked_tags[t]):
            for row in cat.by_tag.get(tag, ())[:TAG_CANDIDATES]:
                rows[row] = None
        for ident in (*query.liked_items, *query.user_events):
            row = cat.table.index_of.get(ident)
            if row is not None:
                rows[row] = None
        for row in self.collab_rows(collab):
            rows[row] = None
        for row in self.popular_order[:POPULAR_CANDIDATES]:
            rows[int(row)] = None
        return list(rows)

    @staticmethod
    def collab_rows(collab: np.ndarray | None, n: int = COLLAB_CANDIDATES) -> list[int]:
        """The rows most liked by the same people as the user's liked items, best first."""
        if collab is None or not len(collab):
            return []
        top = np.argpartition(-collab, min(n, len(collab) - 1))[:n]
        return [int(r) for r in top[np.argsort(-collab[top], kind="stable")] if collab[r] > 0]

    def neighbours(self, item_ids: Iterable[str], n: int = 30) -> list[int]:
        """Rows of the items nearest to each given item (in-memory vectors, no store query)."""
        cat = self.catalogue
        out: dict[int, None] = {}
        for ident in item_ids:
            row = cat.table.index_of.get(ident)
            if row is None:
                continue
            sims = cat.matrix @ cat.matrix[row]
            top = np.argpartition(-sims, min(n, len(sims) - 1))[: n + 1]
            for r in top[np.argsort(-sims[top], kind="stable")]:
                if int(r) != row:
                    out[int(r)] = None
        return list(out)

    def recommend(
        self,
        query: Query,
        k: int = 10,
        filter_disliked: bool | None = None,
        unknown_like: Iterable[str] = (),
    ) -> Result:
        if k < 1:
            raise ValueError(f"k must be at least 1, got {k}")
        vector = self.user_vector(query, unknown_like)
        collab = self.collaborative(query)
        return self.rank_rows(query, self.retrieve(query, vector, collab), vector, k, filter_disliked, collab)

    def retrieve(self, query: Query, vector: np.ndarray | None, collab: np.ndarray | None = None) -> list[int]:
        """The candidate pool: near the user vector (Chroma), carrying liked tags, popular, liked by the
        same people as the user's liked items, and the embedding neighbourhood of the most recently
        liked items. Chat, CLI and evaluations all use this."""
        rows = self.candidates(query, vector, collab)
        seen = set(rows)
        rows += [r for r in self.neighbours(list(query.liked_items)[-LIKED_SEEDS:], n=NEIGHBOURS) if r not in seen]
        return rows

    def pool(self, rows: list[int]) -> "Pool":
        """The arrays ranking needs for a candidate pool, gathered once (re-ranks reuse them)."""
        cat = self.catalogue
        rows = list(dict.fromkeys(int(r) for r in rows))
        return Pool(rows, [cat.ids[r] for r in rows], cat.matrix[rows], cat.tag_matrix[rows], self.prior[rows])

    def extend_pool(self, pool: "Pool", rows: list[int]) -> "Pool":
        """``pool`` plus new rows, gathering only the new rows' arrays (likes grow the pool in place)."""
        from scipy.sparse import vstack

        known = set(pool.rows)
        extra = self.pool([r for r in rows if r not in known])
        if not len(extra):
            return pool
        return Pool(pool.rows + extra.rows, pool.ids + extra.ids, np.vstack([pool.vectors, extra.vectors]),
                    vstack([pool.tags, extra.tags], format="csr"), np.concatenate([pool.engagement, extra.engagement]))

    def rank_rows(
        self, query: Query, rows: "list[int] | Pool", vector: np.ndarray | None, k: int,
        filter_disliked: bool | None = None, collab: np.ndarray | None | bool = True,
    ) -> Result:
        """Rank a candidate pool (the engine re-ranks its current pool after feedback this way).

        Vectorised over the pool; only the k shown items get their Breakdown objects built.
        ``collab``: the catalogue-wide collaborative scores when the caller has them, True to compute them.
        """
        if collab is True:
            collab = self.collaborative(query)
        features = self.features(query, rows, vector, collab)
        filter_disliked = self.settings.filter_disliked if filter_disliked is None else filter_disliked
        chosen, scores = features.choose(self.weights, k, filter_disliked)
        return self.result(query, features, chosen, scores)

    def features(self, query: Query, rows: "list[int] | Pool", vector: np.ndarray | None,
                 collab: np.ndarray | None) -> "Features":
        """Everything the fused score needs for a pool, weight-free (tuning re-fuses these per setting)."""
        cat = self.catalogue
        pool = rows if isinstance(rows, Pool) else self.pool(rows)
        cosines = pool.vectors @ vector.astype(np.float32) if vector is not None else np.zeros(len(pool))
        totals, touched = pool.event_arrays(query.user_events)
        return Features(
            pool=pool, cosines=cosines, content=cat.tag_share(pool.tags, query.liked_tags),
            dislike=cat.tag_share(pool.tags, query.disliked_tags), event_totals=totals, has_events=touched,
            collab=None if collab is None else collab[pool.rows],
            keep=pool.mask(query.exclude_ids) if query.exclude_ids else None,
        )

    def result(self, query: Query, features: "Features", chosen: list[int], scores: rank.Scores) -> Result:
        cat, pool = self.catalogue, features.pool
        items = []
        for i in chosen:
            tags = cat.tag_keys[pool.rows[i]]
            _, matched = rank.tag_match(tags, query.liked_tags)
            _, disliked = rank.tag_match(tags, query.disliked_tags)
            items.append(Recommendation(cat.items[pool.rows[i]], rank.breakdown(scores, i, matched, disliked)))
        return Result(items=items, cold_start=query.is_cold)


@dataclass(frozen=True, eq=False)
class Features:
    """A pool's weight-free ranking inputs, aligned with ``pool``."""

    pool: "Pool"
    cosines: np.ndarray
    content: np.ndarray
    dislike: np.ndarray
    event_totals: np.ndarray | None
    has_events: np.ndarray | None
    collab: np.ndarray | None
    keep: np.ndarray | None

    def scores(self, weights: rank.Weights) -> rank.Scores:
        return rank.fuse(self.cosines, self.pool.engagement, self.content, self.dislike, self.event_totals,
                         self.has_events, weights, self.collab)

    def choose(self, weights: rank.Weights, k: int, filter_disliked: bool = False) -> tuple[list[int], rank.Scores]:
        """The pool positions to show, best first, and the scores they were chosen by."""
        scores = self.scores(weights)
        keep = self.keep
        if filter_disliked:
            keep = (self.dislike <= 0) if keep is None else keep & (self.dislike <= 0)
        return rank.select(self.pool.ids, scores, k, weights, self.pool.vectors, keep), scores


@dataclass(frozen=True, eq=False)
class Pool:
    """A candidate pool: catalogue rows with their ids, vectors, tag rows and engagement, aligned."""

    rows: list[int]
    ids: list[str]
    vectors: np.ndarray
    tags: object  # scipy CSR rows of Catalogue.tag_matrix
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


# -- which collection is active ---------------------------------------------------------------
def collection_for(path: Path | str) -> str:
    """The collection a catalogue file is indexed into: its file stem, made Chroma-safe."""
    stem = Path(path).name.split(".")[0].lower()
    safe = "".join(ch if ch.isalnum() or ch in "-_" else "-" for ch in stem).strip("-_") or "items"
    safe = safe if len(safe) >= 3 else f"{safe}-items"
    return safe[:60]


def active_collection(data_dir: Path) -> str:
    try:
        return json.loads((Path(data_dir) / ACTIVE_FILE).read_text())["collection"]
    except (OSError, ValueError, KeyError, TypeError):
        from chatrec.settings import DEFAULT_CATALOG

        return collection_for(DEFAULT_CATALOG)


def set_active_collection(data_dir: Path, name: str) -> None:
    from chatrec.store import _atomic_write_bytes

    _atomic_write_bytes(
        Path(data_dir) / ACTIVE_FILE,
        lambda tmp: tmp.write_text(json.dumps({"collection": name}) + "\n"),
    )
