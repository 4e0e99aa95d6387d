"""Keeping a vector index in line with a catalogue, and loading the catalogue's columns from it.

* Incremental: each item carries a content hash; only new or changed items are embedded.
* Resumable: batches are upserted as they are embedded, so an interrupted run picks up where it stopped
  (the collection is marked ``building`` until a run completes).
* Honest about its model: the collection records the embedding model and dimension, and using it with
  another model is an error that says how to rebuild.
* Filterable: each item's year, runtime, genres and people are index metadata, so hard constraints can
  filter inside the index (``chatrec.core.constraints.Condition``).
* Fast to read: the columns (:class:`chatrec.catalogue.table.Catalogue`) are cached on disk under a
  fingerprint of the collection's content, so a warm process never pages through the index.
"""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from chatrec.catalogue.table import FORMAT, Catalogue
from chatrec.core.items import Item
from chatrec.ports import Embedder, ModelMismatch, StoreError, VectorIndex

log = logging.getLogger(__name__)

#: 2: year, runtime, genres and people are item metadata (for filters); an older index gets them added
SCHEMA = 2
PAGE = 2000
#: above this many items the index holds vectors and filterable fields only: the records (and the texts Chroma
#: would otherwise index for full-text search) would cost a gigabyte of SQLite at a million items; the columns
#: are written to the cache at index time instead, and a lost cache means `chatrec index SOURCE` again
RECORDS_LIMIT = 200_000


@dataclass
class IndexReport:
    collection: str
    total: int
    embedded: int
    unchanged: int
    deleted: int
    seconds: float
    embed_seconds: float = 0.0

    @property
    def items_per_second(self) -> float:
        return self.embedded / self.embed_seconds if self.embed_seconds > 0 else float("nan")

    def as_dict(self) -> dict:
        return {"collection": self.collection, "total": self.total, "embedded": self.embedded,
                "unchanged": self.unchanged, "deleted": self.deleted, "seconds": round(self.seconds, 3),
                "items_per_second": None if self.embedded == 0 else round(self.items_per_second, 1)}


def fingerprint_of(pairs: Sequence[tuple[str, str]]) -> str:
    h = hashlib.sha256()
    for ident, digest in sorted(pairs):
        h.update(f"{ident}\x00{digest}\n".encode())
    return h.hexdigest()[:24]


def item_metadata(item: Item, digest: str, record: bool = True) -> dict:
    """What the index stores beside an item's vector: its hash, its record, and the filterable fields."""
    meta: dict = {"hash": digest, "title": item.title}
    if record:
        meta["record"] = json.dumps(item.to_record(), ensure_ascii=False)
    if item.year is not None:
        meta["year"] = int(item.year)
    if item.runtime:
        meta["runtime"] = int(item.runtime)
    for name in ("genres", "directors", "cast"):
        if getattr(item, name):
            meta[name] = list(getattr(item, name))
    return meta


class CatalogueIndex:
    """One collection: its vector index, the embedder that fills it, and the cached columns."""

    def __init__(self, index: VectorIndex, embedder: Embedder, cache_dir: Path | None = None,
                 batch_size: int = 256):
        self.index = index
        self.embedder = embedder
        self.cache_dir = Path(cache_dir) if cache_dir else None
        self.batch_size = batch_size
        self._catalogue: Catalogue | None = None

    @property
    def name(self) -> str:
        return self.index.name

    # -- state ----------------------------------------------------------------------------------
    def exists(self) -> bool:
        return self.index.exists()

    def is_ready(self) -> bool:
        return self.index.exists() and self.index.metadata().get("state") == "ready"

    def info(self) -> dict:
        if not self.index.exists():
            return {"collection": self.name, "exists": False}
        return {"collection": self.name, "exists": True, "count": self.index.count(), **self.index.metadata()}

    def check_model(self, dimension: int | None = None) -> None:
        """Raise :class:`ModelMismatch` when the index was built with another embedding model."""
        if not self.index.exists():
            return
        meta = self.index.metadata()
        built_with, built_dim = meta.get("embedding_model"), meta.get("dimension")
        wrong_name = built_with and built_with != self.embedder.name
        wrong_dim = dimension is not None and built_dim is not None and int(built_dim) != int(dimension)
        if wrong_name or wrong_dim:
            raise ModelMismatch(
                f"the index {self.name!r} was built with the embedding model {built_with!r} "
                f"({built_dim}-d), but the configured model is {self.embedder.name!r}"
                + (f" ({dimension}-d)" if dimension else "")
                + ". Rebuild it with `chatrec index --rebuild` (or set CHATREC_EMBEDDING_MODEL back)."
            )

    # -- writing --------------------------------------------------------------------------------
    def build(self, items: Sequence[Item], source: str | None = None, rebuild: bool = False,
              progress: Callable[[int, int], None] | None = None,
              vectors: Callable[[Sequence[Item]], np.ndarray] | None = None) -> IndexReport:
        """Bring the index in line with ``items``: embed new/changed items, delete missing ones.

        ``vectors``: how a batch gets its vectors (default: the embedder; the million-item bench passes
        vectors it derived from real ones)."""
        started = time.perf_counter()
        if rebuild:
            self.index.drop()
        if self.index.exists():
            self.check_model()
        else:
            self.index.create({"chatrec_schema": SCHEMA, "embedding_model": self.embedder.name, "state": "building",
                               "dimension": self.embedder.dimension})
        meta = self.index.metadata()
        existing = self._hashes()
        hashes = {item.id: item.content_hash() for item in items}
        todo = [item for item in items if existing.get(item.id) != hashes[item.id]]
        # Similar lengths in a batch mean little padding: roughly 2x faster on mixed catalogues.
        todo.sort(key=lambda item: len(item.embedding_text()))
        stale = sorted(set(existing) - set(hashes))
        old_schema = int(meta.get("chatrec_schema", 1)) < SCHEMA
        slim = len(items) > RECORDS_LIMIT
        fresh_vectors: dict[str, np.ndarray] = {}
        if todo or stale or old_schema:
            self.index.update_metadata(state="building")
        if old_schema:  # unchanged items still need the filterable fields of this schema
            kept = [item for item in items if existing.get(item.id) == hashes[item.id]]
            for start in range(0, len(kept), PAGE):
                batch = kept[start:start + PAGE]
                self.index.update([it.id for it in batch],
                                  [item_metadata(it, hashes[it.id], not slim) for it in batch])
        embed_seconds, done = 0.0, 0
        if progress:
            progress(0, len(todo))
        encode = vectors or (lambda batch: self.embedder.encode([it.embedding_text() for it in batch]))
        for start in range(0, len(todo), self.batch_size):
            batch = todo[start:start + self.batch_size]
            t0 = time.perf_counter()
            batch_vectors = encode(batch)
            embed_seconds += time.perf_counter() - t0
            self.index.upsert([it.id for it in batch], batch_vectors,
                              [item_metadata(it, hashes[it.id], not slim) for it in batch],
                              None if slim else [it.embedding_text() for it in batch])
            fresh_vectors.update(zip((it.id for it in batch), np.asarray(batch_vectors, dtype=np.float32)))
            done += len(batch)
            if progress:
                progress(done, len(todo))
        if stale:
            self.index.delete(stale)
        fp = fingerprint_of(list(hashes.items()))
        if self.cache_dir is not None and not self._cache_folder(fp).is_dir():
            # the columns go to the cache now, from the items in hand (the first `recommend` after an index would
            # otherwise page through the whole index: 100 s at 100k items); a slim index has no other source
            self._save_columns(items, fresh_vectors, fp)
        elif slim:
            raise StoreError(f"{len(items):,} items need a cache folder for their columns (a data dir)")
        if todo or stale or old_schema or meta.get("state") != "ready" or meta.get("fingerprint") != fp:
            self.index.update_metadata(
                state="ready", fingerprint=fp, count=len(hashes), source=source, chatrec_schema=SCHEMA,
                dimension=meta.get("dimension") or self.embedder.dimension, embedding_model=self.embedder.name,
                records=not slim,
            )
        self._catalogue = None
        return IndexReport(self.name, len(items), len(todo), len(items) - len(todo), len(stale),
                           time.perf_counter() - started, embed_seconds)

    def _save_columns(self, items: Sequence[Item], fresh: dict[str, np.ndarray], fp: str) -> None:
        """The catalogue's columns written to the cache: the vectors just embedded, the rest read back."""
        folder = self._cache_folder(fp)
        missing = {it.id for it in items} - set(fresh)
        if missing:  # unchanged items of an incremental run: their vectors come from the index
            for ids, vectors, _ in self.index.scan(include_vectors=True):
                fresh.update((i, v) for i, v in zip(ids, vectors) if i in missing)
        order = sorted(items, key=lambda it: _id_sort_key(it.id))
        # an index whose items were all deleted is empty, not broken
        matrix = (np.vstack([fresh[it.id] for it in order]) if order
                  else np.zeros((0, self.embedder.dimension), dtype=np.float32))
        self._save_cache(folder, Catalogue.from_items(order, matrix, fp))

    def _hashes(self) -> dict[str, str]:
        out: dict[str, str] = {}
        for ids, _, metas in self.index.scan(include_vectors=False):
            for ident, meta in zip(ids, metas):
                out[ident] = meta.get("hash", "")
        return out

    # -- reading --------------------------------------------------------------------------------
    def catalogue(self) -> Catalogue:
        """The collection's columns, from the disk cache when the collection is unchanged."""
        if self._catalogue is not None:
            return self._catalogue
        if not self.index.exists():
            raise StoreError(f"no index {self.name!r} yet: run `chatrec index`")
        meta = self.index.metadata()
        if meta.get("state") != "ready":
            raise StoreError(f"the index {self.name!r} is incomplete (an earlier run was interrupted): "
                             "run `chatrec index` again to resume")
        self.check_model()
        fp = str(meta.get("fingerprint", ""))
        folder = self._cache_folder(fp)
        if folder is not None and folder.is_dir():
            try:
                self._catalogue = Catalogue.load(folder)
                return self._catalogue
            except Exception as exc:  # a damaged cache is only a cache: rebuild it
                log.warning("ignoring unreadable cache %s: %s", folder, exc)
        if meta.get("records") is False:
            raise StoreError(f"the index {self.name!r} keeps no item records (it has over {RECORDS_LIMIT:,} items) and "
                             f"its cached columns are gone: run `chatrec index {meta.get('source') or 'PATH'}` again")
        self._catalogue = self._from_index(fp)
        if folder is not None:
            self._save_cache(folder, self._catalogue)
        return self._catalogue

    def _from_index(self, fp: str) -> Catalogue:
        items: list[Item] = []
        vectors: list[np.ndarray] = []
        for ids, vecs, metas in self.index.scan(include_vectors=True):
            for ident, vec, meta in zip(ids, vecs, metas):
                record = json.loads(meta["record"]) if "record" in meta else {"id": ident, "title": ident}
                items.append(Item.from_record(record))
                vectors.append(np.asarray(vec, dtype=np.float32))
        order = sorted(range(len(items)), key=lambda i: _id_sort_key(items[i].id))
        matrix = np.vstack([vectors[i] for i in order]) if vectors else np.zeros((0, 1), dtype=np.float32)
        return Catalogue.from_items([items[i] for i in order], matrix, fp)

    def _cache_folder(self, fingerprint: str) -> Path | None:
        if self.cache_dir is None or not fingerprint:
            return None
        safe = "".join(ch if ch.isalnum() or ch in "-_" else "_" for ch in self.name)
        return self.cache_dir / "catalogue" / f"{safe}.{fingerprint}.v{FORMAT}"

    def _save_cache(self, folder: Path, catalogue: Catalogue) -> None:
        """Write the columns beside their final place and rename them in (readers see all or nothing)."""
        try:
            folder.parent.mkdir(parents=True, exist_ok=True)
            tmp = Path(tempfile.mkdtemp(prefix=folder.name + ".", suffix=".tmp", dir=folder.parent))
            tmp.rmdir()
            catalogue.save(tmp)
            try:
                tmp.rename(folder)
            except OSError:  # another process won the race: its copy is as good as ours
                shutil.rmtree(tmp, ignore_errors=True)
            for old in folder.parent.glob(folder.name.split(".")[0] + ".*"):
                if old != folder and not old.name.endswith(".tmp"):
                    shutil.rmtree(old, ignore_errors=True)
        except OSError as exc:  # a read-only data dir still serves queries, just slower next time
            log.warning("could not write the catalogue cache %s: %s", folder, exc)


def _id_sort_key(ident: str) -> tuple[int, int | str]:
    return (0, int(ident)) if ident.isdigit() else (1, ident)
