"""The catalogue in memory, as columns: what retrieval, scoring and the constraints read per item.

One row per item, aligned everywhere: ids, L2-normalised vectors, a sparse items × tags incidence
(genres, user tags, keywords), genre and people postings, years, runtimes, rating statistics and the
engagement prior (B's catalogue-wide part). Items themselves are decoded only when shown
(:meth:`Catalogue.item`), so a million-item catalogue costs its arrays, not a million objects.

Saved as a folder of ``.npy`` files plus the JSON records (:meth:`Catalogue.save`); :meth:`Catalogue.load`
memory-maps the vectors, so a new process is ready without paging through the vector index.
"""

from __future__ import annotations

import json
from collections import OrderedDict
from collections.abc import Iterable, Sequence
from functools import cached_property
from pathlib import Path
from typing import Protocol

import numpy as np
from scipy.sparse import csc_matrix, csr_matrix

from chatrec.core.items import Item, tag_key
from chatrec.core.scoring import engagement_prior
from chatrec.reading.people import normalise_name

FORMAT = 2  # bump when the saved layout changes: an older cache is rebuilt, never misread
ITEM_CACHE = 4096


class Catalogue:
    """Columns over the rows of one indexed collection (implements ``core.constraints.Columns``)."""

    def __init__(self, ids: list[str], vectors: np.ndarray, records: "RecordSource", columns: dict[str, np.ndarray],
                 tag_names: list[str], tags: csr_matrix, genre_names: list[str], genres: csr_matrix,
                 people_names: list[str], directed: csr_matrix, acted: csr_matrix, fingerprint: str = "",
                 people_display: list[str] | None = None, titles: list[str] | None = None,
                 akas: list[list[str]] | None = None, title_keys: list[list[str]] | None = None):
        self.ids = ids
        self.n = len(ids)
        self.vectors = vectors
        self.records = records
        self.fingerprint = fingerprint
        self.years = columns["years"]
        self.runtimes = columns["runtimes"]
        self.n_ratings = columns["n_ratings"]
        self.mean_ratings = columns["mean_ratings"]
        self.recent = columns["recent"]
        self.popularity = columns["popularity"]
        self.tag_names = tag_names
        self.tags = tags  # rows × tags, 1 where the item carries the tag
        self.genre_names = genre_names
        self.genres = genres  # rows × genres
        self.people_names = people_names  # normalised names
        self.people_display = people_display or people_names  # as the items spell them (the first one seen)
        self.directed = directed  # people × rows
        self.acted = acted
        self.titles = titles if titles is not None else [records.item(r).title for r in range(self.n)]
        self.akas = akas if akas is not None else [list(records.item(r).aka) for r in range(self.n)]
        if title_keys is not None:
            self.__dict__["title_keys"] = title_keys
        self._items: OrderedDict[int, Item] = OrderedDict()
        self._tag_rows: dict[tuple[str, int | None], np.ndarray] = {}

    # -- building -------------------------------------------------------------------------------
    @classmethod
    def from_items(cls, items: Sequence[Item], vectors: np.ndarray, fingerprint: str = "") -> "Catalogue":
        """Columns for ``items`` (rows aligned with ``vectors``; rows are L2-normalised here)."""
        vectors = np.asarray(vectors, dtype=np.float32).reshape(len(items), -1) if len(items) else \
            np.zeros((0, np.asarray(vectors).shape[-1] if np.asarray(vectors).ndim == 2 else 1), dtype=np.float32)
        norms = np.linalg.norm(vectors, axis=1, keepdims=True)
        vectors = (vectors / np.where(norms > 0, norms, 1.0)).astype(np.float32)

        def nan(values):
            return np.array([np.nan if v is None else float(v) for v in values], dtype=np.float64)

        columns = {
            "years": nan(it.year for it in items),
            "runtimes": nan(it.runtime if it.runtime and it.runtime > 0 else None for it in items),
            "n_ratings": np.array([max(it.n_ratings, 0) for it in items], dtype=np.float64),
            "mean_ratings": nan(it.mean_rating if it.n_ratings > 0 else None for it in items),
            "recent": np.array([max(it.recent_ratings, 0) for it in items], dtype=np.float64),
            "popularity": nan(it.popularity for it in items),
        }
        tag_names, tags = _incidence([it.tag_keys for it in items])
        genre_names, genres = _incidence([set(it.genres) for it in items])
        spelled: dict[str, str] = {}
        for it in items:
            for p in (*it.directors, *it.cast):
                spelled.setdefault(normalise_name(p), p)
        spelled.pop("", None)
        people = [{normalise_name(p) for p in it.directors} for it in items]
        casts = [{normalise_name(p) for p in it.cast} for it in items]
        people_names = sorted(spelled)
        position = {p: j for j, p in enumerate(people_names)}
        directed = _postings(people, position, len(items))
        acted = _postings(casts, position, len(items))
        return cls([it.id for it in items], vectors, ItemRecords(list(items)), columns, tag_names, tags, genre_names,
                   genres, people_names, directed, acted, fingerprint, [spelled[p] for p in people_names],
                   [it.title for it in items], [list(it.aka) for it in items])

    def save(self, folder: Path) -> None:
        """Write the columns to ``folder`` (a new, empty folder; the caller renames it into place)."""
        folder.mkdir(parents=True, exist_ok=False)
        np.save(folder / "vectors.npy", self.vectors)
        arrays = {"years": self.years, "runtimes": self.runtimes, "n_ratings": self.n_ratings,
                  "mean_ratings": self.mean_ratings, "recent": self.recent, "popularity": self.popularity}
        for name, matrix in (("tags", self.tags), ("genres", self.genres), ("directed", self.directed),
                             ("acted", self.acted)):
            arrays.update({f"{name}_data": matrix.data, f"{name}_indices": matrix.indices,
                           f"{name}_indptr": matrix.indptr, f"{name}_shape": np.array(matrix.shape)})
        np.savez(folder / "columns.npz", **arrays)
        blob, offsets = self.records.encode(self.n)
        (folder / "records.jsonl").write_bytes(blob)
        np.save(folder / "offsets.npy", offsets)
        meta = {"format": FORMAT, "fingerprint": self.fingerprint, "ids": self.ids, "tags": self.tag_names,
                "genres": self.genre_names, "people": self.people_names, "people_display": self.people_display,
                "titles": self.titles, "akas": self.akas, "title_keys": self.title_keys}
        (folder / "meta.json").write_text(json.dumps(meta, ensure_ascii=False), encoding="utf-8")

    @classmethod
    def load(cls, folder: Path) -> "Catalogue":
        """The columns saved in ``folder``; the vectors are memory-mapped (read-only)."""
        meta = json.loads((folder / "meta.json").read_text(encoding="utf-8"))
        if meta.get("format") != FORMAT:
            raise ValueError(f"catalogue cache format {meta.get('format')} is not {FORMAT}")
        vectors = np.load(folder / "vectors.npy", mmap_mode="r")
        with np.load(folder / "columns.npz", allow_pickle=False) as npz:
            arrays = {k: npz[k] for k in npz.files}

        def matrix(name: str) -> csr_matrix:
            return csr_matrix((arrays[f"{name}_data"], arrays[f"{name}_indices"], arrays[f"{name}_indptr"]),
                              shape=tuple(arrays[f"{name}_shape"]))

        columns = {k: arrays[k] for k in ("years", "runtimes", "n_ratings", "mean_ratings", "recent", "popularity")}
        records = RecordFile(folder / "records.jsonl", np.load(folder / "offsets.npy"))
        return cls(list(meta["ids"]), vectors, records, columns, list(meta["tags"]), matrix("tags"),
                   list(meta["genres"]), matrix("genres"), list(meta["people"]), matrix("directed"),
                   matrix("acted"), str(meta.get("fingerprint", "")), list(meta.get("people_display") or []) or None,
                   meta["titles"], meta["akas"], meta.get("title_keys"))

    # -- rows and items -------------------------------------------------------------------------
    def __len__(self) -> int:
        return self.n

    @cached_property
    def index_of(self) -> dict[str, int]:
        return dict(zip(self.ids, range(self.n)))

    @cached_property
    def title_keys(self) -> list[list[str]]:
        """Each row's title and alternative titles as ``reading.titles.normalise_title`` keys (saved with the
        columns, so a new process does not normalise every title again)."""
        from chatrec.reading.titles import normalise_title

        return [[normalise_title(t) for t in (title, *akas)] for title, akas in zip(self.titles, self.akas)]

    def item(self, row: int) -> Item:
        """The item at ``row`` (decoded on first use, a few thousand kept)."""
        row = int(row)
        hit = self._items.get(row)
        if hit is not None:
            self._items.move_to_end(row)
            return hit
        item = self.records.item(row)
        self._items[row] = item
        if len(self._items) > ITEM_CACHE:
            self._items.popitem(last=False)
        return item

    def items(self, rows: Iterable[int]) -> list[Item]:
        return [self.item(r) for r in rows]

    def rows_of(self, ids: Iterable[str]) -> list[int]:
        """Rows of the ids this catalogue has, in order (unknown ids are skipped)."""
        index = self.index_of
        return [index[i] for i in ids if i in index]

    # -- behaviour prior ------------------------------------------------------------------------
    @cached_property
    def engagement(self) -> np.ndarray:
        """Everyone's engagement per row in [0, 1] (``core.scoring.engagement_prior``)."""
        return engagement_prior(self.n_ratings, self.mean_ratings, self.recent, self.popularity)

    @cached_property
    def popular_order(self) -> np.ndarray:
        return np.argsort(-self.engagement, kind="stable")

    @cached_property
    def quality(self) -> np.ndarray:
        """The Bayesian-shrunk mean rating on [0, 1] (10 pseudo-ratings at the mean); NaN without ratings."""
        rated = ~np.isnan(self.mean_ratings) & (self.n_ratings > 0)
        if not rated.any():
            return np.full(self.n, np.nan)
        prior = float(self.mean_ratings[rated].mean())
        shrunk = (self.n_ratings * np.nan_to_num(self.mean_ratings) + 10 * prior) / (self.n_ratings + 10)
        return np.where(rated, np.clip((shrunk - 0.5) / 4.5, 0.0, 1.0), np.nan)

    # -- tags -----------------------------------------------------------------------------------
    @cached_property
    def tag_column(self) -> dict[str, int]:
        return {t: j for j, t in enumerate(self.tag_names)}

    @cached_property
    def tag_counts(self) -> dict[str, int]:
        counts = np.asarray(self.tags.getnnz(axis=0)).ravel()
        return {t: int(c) for t, c in zip(self.tag_names, counts)}

    @cached_property
    def _tags_by_column(self) -> csc_matrix:
        return self.tags.tocsc()

    def tag_weights(self, weights: dict[str, float]) -> np.ndarray:
        """A weight per tag column (for ``core.scoring.tag_share``); unknown tags are ignored."""
        vec = np.zeros(len(self.tag_names))
        for t, w in weights.items():
            j = self.tag_column.get(t)
            if j is not None:
                vec[j] = w
        return vec

    def rows_with_tag(self, tag: str, limit: int | None = None) -> np.ndarray:
        """Rows carrying ``tag``, the most engaging first (``limit`` of them; remembered per tag, since a
        genre of a million-item catalogue has hundreds of thousands of rows to sort)."""
        key = (tag, limit)
        hit = self._tag_rows.get(key)
        if hit is not None:
            return hit
        j = self.tag_column.get(tag)
        if j is None:
            return np.zeros(0, dtype=np.int64)
        col = self._tags_by_column
        rows = col.indices[col.indptr[j]:col.indptr[j + 1]]
        if limit and len(rows) > limit:  # the best `limit` without sorting them all; ties keep row order
            engagement = self.engagement[rows]
            cut = np.partition(-engagement, limit - 1)[limit - 1]
            rows = rows[-engagement <= cut]
        order = np.argsort(-self.engagement[rows], kind="stable")
        out = rows[order[:limit] if limit else order]
        if len(self._tag_rows) > 4096:
            self._tag_rows.clear()
        self._tag_rows[key] = out
        return out

    def tag_keys_of(self, row: int) -> frozenset[str]:
        start, end = self.tags.indptr[row], self.tags.indptr[row + 1]
        return frozenset(self.tag_names[j] for j in self.tags.indices[start:end])

    def closest_tags(self, tag: str, limit: int = 3) -> list[str]:
        from rapidfuzz import fuzz, process

        hits = process.extract(tag_key(tag), self.tag_names, scorer=fuzz.WRatio, limit=limit * 4)
        counts = self.tag_counts
        hits.sort(key=lambda h: (-h[1], -counts[h[0]]))  # well-used tags first among equally close spellings
        return [h[0] for h in hits[:limit]]

    # -- constraint columns (core.constraints.Columns) --------------------------------------------
    @cached_property
    def _genre_column(self) -> dict[str, int]:
        return {g: j for j, g in enumerate(self.genre_names)}

    @cached_property
    def _genres_by_column(self) -> csc_matrix:
        return self.genres.tocsc()

    def rows_with_genre(self, genre: str) -> np.ndarray:
        j = self._genre_column.get(genre)
        if j is None:
            return np.zeros(0, dtype=np.int64)
        col = self._genres_by_column
        return col.indices[col.indptr[j]:col.indptr[j + 1]]

    def genres_of(self, row: int) -> tuple[str, ...]:
        start, end = self.genres.indptr[row], self.genres.indptr[row + 1]
        return tuple(self.genre_names[j] for j in self.genres.indices[start:end])

    @cached_property
    def _person_row(self) -> dict[str, int]:
        return {p: j for j, p in enumerate(self.people_names)}

    def rows_with_person(self, name: str, role: str = "any") -> np.ndarray:
        j = self._person_row.get(normalise_name(name))
        if j is None:
            return np.zeros(0, dtype=np.int64)
        parts = []
        if role in ("director", "any"):
            parts.append(self.directed.indices[self.directed.indptr[j]:self.directed.indptr[j + 1]])
        if role in ("cast", "any"):
            parts.append(self.acted.indices[self.acted.indptr[j]:self.acted.indptr[j + 1]])
        return np.unique(np.concatenate(parts)) if parts else np.zeros(0, dtype=np.int64)

    def credit_counts(self) -> list[tuple[str, int, int]]:
        """(name as the items spell it, films directed, films acted) per person, for the people reader."""
        directed, acted = np.diff(self.directed.indptr), np.diff(self.acted.indptr)
        return [(name, int(d), int(a)) for name, d, a in zip(self.people_display, directed, acted)]

    @cached_property
    def latest_year(self) -> int | None:
        years = self.years[~np.isnan(self.years)]
        return int(years.max()) if years.size else None


def _incidence(keys: Sequence[Iterable[str]]) -> tuple[list[str], csr_matrix]:
    """Rows × sorted distinct keys, 1 where the row has the key."""
    names = sorted(set().union(*keys) - {""}) if keys else []
    column = {k: j for j, k in enumerate(names)}
    rows, cols = [], []
    for i, ks in enumerate(keys):
        for k in ks:
            if k in column:
                rows.append(i)
                cols.append(column[k])
    data = np.ones(len(rows), dtype=np.float64)
    return names, csr_matrix((data, (rows, cols)), shape=(len(keys), len(names)))


def _postings(per_row: Sequence[set[str]], position: dict[str, int], n_rows: int) -> csr_matrix:
    """People × rows, 1 where the person has the credit."""
    rows, cols = [], []
    for i, names in enumerate(per_row):
        for name in names:
            if name in position:
                rows.append(position[name])
                cols.append(i)
    data = np.ones(len(rows), dtype=np.float64)
    matrix = csr_matrix((data, (rows, cols)), shape=(len(position), n_rows))
    matrix.sort_indices()
    return matrix


class RecordSource(Protocol):
    """Where the full item records live (in memory, or in the saved records file)."""

    def item(self, row: int) -> Item: ...

    def encode(self, n: int) -> tuple[bytes, np.ndarray]: ...


class ItemRecords:
    def __init__(self, items: list[Item]):
        self._items = items

    def item(self, row: int) -> Item:
        return self._items[row]

    def encode(self, n: int) -> tuple[bytes, np.ndarray]:
        lines = [json.dumps(it.to_record(), ensure_ascii=False).encode("utf-8") + b"\n" for it in self._items]
        offsets = np.zeros(len(lines) + 1, dtype=np.int64)
        np.cumsum([len(line) for line in lines], out=offsets[1:])
        return b"".join(lines), offsets


class RecordFile:
    """Item records as JSON lines, read by byte offset (no need to parse the whole file)."""

    def __init__(self, path: Path, offsets: np.ndarray):
        self.path = path
        self.offsets = offsets
        self._data = np.memmap(path, dtype=np.uint8, mode="r") if offsets[-1] > 0 else np.zeros(0, dtype=np.uint8)

    def item(self, row: int) -> Item:
        raw = bytes(self._data[self.offsets[row]:self.offsets[row + 1]])
        return Item.from_record(json.loads(raw))

    def encode(self, n: int) -> tuple[bytes, np.ndarray]:
        return bytes(self._data), self.offsets
