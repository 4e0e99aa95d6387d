"""The item index in Chroma: embedded (PersistentClient) by default, a server when a URL is set.

* Incremental: each item carries a content hash; only new or changed items are embedded.
* Resumable: batches are upserted as they are embedded, so an interrupted run picks up
  where it stopped (the collection is marked ``building`` until a run completes).
* Honest about its model: the collection records the embedding model and dimension, and
  querying with another model is an error that says how to rebuild.
* Fast to read: the full item table (records + embedding matrix) is cached on disk, keyed by a
  fingerprint of the collection's content, so a warm process never pages through Chroma.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlparse

import numpy as np

from chatrec.catalog import Item
from chatrec.embed import Embedder, model_identity

log = logging.getLogger(__name__)

SCHEMA = 1
PAGE = 2000  # rows per Chroma get() page


class StoreError(RuntimeError):
    """An index problem the user can act on; the message says what to do."""


class ModelMismatch(StoreError):
    pass


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


@dataclass
class ItemTable:
    """Every indexed item with its normalised embedding, row-aligned."""

    items: list[Item]
    matrix: np.ndarray  # (n, d) float32, L2-normalised rows
    fingerprint: str
    index_of: dict[str, int] = field(init=False)

    def __post_init__(self) -> None:
        self.index_of = {item.id: i for i, item in enumerate(self.items)}

    def __len__(self) -> int:
        return len(self.items)


def fingerprint_of(pairs: Sequence[tuple[str, str]]) -> str:
    h = hashlib.sha256()
    for ident, digest in sorted(pairs):
        h.update(f"{ident}\x00{digest}\n".encode())
    return h.hexdigest()[:24]


def _atomic_write_bytes(path: Path, writer: Callable[[Path], None]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=path.name + ".", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        writer(Path(tmp))
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


class ItemStore:
    def __init__(
        self,
        data_dir: Path,
        collection: str,
        chroma_url: str | None = None,
        embedding_model: str | None = None,
        embedder: Embedder | None = None,
        batch_size: int = 256,
        embed_batch_size: int = 16,
        embedding_backend: str = "auto",
    ):
        self.data_dir = Path(data_dir)
        self.collection_name = collection
        self.chroma_url = chroma_url
        self.model_path, self.model_name = (
            (embedder.path, embedder.name) if embedder else model_identity(embedding_model)
        )
        if embedder is None and embedding_backend == "onnx-int8":
            self.model_name += "+int8"  # same naming as Embedder: int8 vectors get their own index
        self._embedder = embedder
        self.batch_size = batch_size
        self.embed_batch_size = embed_batch_size
        self.embedding_backend = embedding_backend
        self._client = None
        self._collection = None
        self._table: ItemTable | None = None

    # -- connection ---------------------------------------------------------------------------
    @property
    def embedder(self) -> Embedder:
        if self._embedder is None:
            self._embedder = Embedder(
                self.model_path, batch_size=self.embed_batch_size, backend=self.embedding_backend,
                cache_dir=self.data_dir / "cache",
            )
        return self._embedder

    @property
    def client(self):
        if self._client is None:
            import chromadb
            from chromadb.config import Settings as ChromaSettings

            chroma_settings = ChromaSettings(anonymized_telemetry=False, allow_reset=False)
            if self.chroma_url:
                url = urlparse(self.chroma_url if "://" in self.chroma_url else f"http://{self.chroma_url}")
                try:
                    self._client = chromadb.HttpClient(
                        host=url.hostname or "127.0.0.1",
                        port=url.port or (443 if url.scheme == "https" else 8000),
                        ssl=url.scheme == "https",
                        settings=chroma_settings,
                    )
                    self._client.heartbeat()
                except Exception as exc:
                    self._client = None
                    raise StoreError(f"cannot reach the Chroma server at {self.chroma_url}: {exc}") from exc
            else:
                path = self.data_dir / "chroma"
                try:
                    path.mkdir(parents=True, exist_ok=True)
                except OSError as exc:
                    raise StoreError(f"cannot create the index folder {path}: {exc.strerror}") from exc
                try:
                    self._client = chromadb.PersistentClient(path=str(path), settings=chroma_settings)
                except Exception as exc:
                    # Chroma writes on open, so a read-only or full data dir failed here as
                    # "unexpected InternalError: error returned from database: (code: 8) ...".
                    raise StoreError(f"cannot open the index in {path}: {_db_reason(exc)}") from exc
        return self._client

    def _get_collection(self, create: bool = False):
        if self._collection is not None:
            return self._collection
        names = {getattr(c, "name", c) for c in self.client.list_collections()}
        if self.collection_name not in names:
            if not create:
                return None
            self._collection = self.client.create_collection(
                name=self.collection_name,
                configuration={"hnsw": {"space": "cosine"}},
                metadata=self._base_metadata(state="building", dimension=self.embedder.dimension),
                embedding_function=None,
            )
        else:
            self._collection = self.client.get_collection(self.collection_name, embedding_function=None)
        return self._collection

    def _base_metadata(self, **extra) -> dict:
        meta = {"chatrec_schema": SCHEMA, "embedding_model": self.model_name}
        meta.update({k: v for k, v in extra.items() if v is not None})
        return meta

    def _update_metadata(self, **changes) -> None:
        coll = self._get_collection()
        meta = dict(coll.metadata or {})
        meta.update({k: v for k, v in changes.items() if v is not None})
        # Chroma refuses to modify its own reserved keys; keep ours only.
        meta = {k: v for k, v in meta.items() if not k.startswith("hnsw:")}
        coll.modify(metadata=meta)

    # -- introspection ------------------------------------------------------------------------
    def exists(self) -> bool:
        return self._get_collection() is not None

    def info(self) -> dict:
        coll = self._get_collection()
        if coll is None:
            return {"collection": self.collection_name, "exists": False}
        meta = dict(coll.metadata or {})
        return {"collection": self.collection_name, "exists": True, "count": coll.count(), **meta}

    def is_ready(self) -> bool:
        coll = self._get_collection()
        return coll is not None and (coll.metadata or {}).get("state") == "ready"

    def check_model(self, dimension: int | None = None) -> None:
        """Raise :class:`ModelMismatch` when the index was built with another embedding model."""
        coll = self._get_collection()
        if coll is None:
            return
        meta = coll.metadata or {}
        built_with, built_dim = meta.get("embedding_model"), meta.get("dimension")
        wrong_name = built_with and built_with != self.model_name
        wrong_dim = dimension is not None and built_dim is not None and int(built_dim) != int(dimension)
        if wrong_name or wrong_dim:
            raise ModelMismatch(
                f"the index {self.collection_name!r} was built with the embedding model {built_with!r} "
                f"({built_dim}-d), but the configured model is {self.model_name!r}"
                + (f" ({dimension}-d)" if dimension else "")
                + ". Rebuild it with `chatrec index --rebuild` (or set CHATREC_EMBEDDING_MODEL back)."
            )

    # -- writing ------------------------------------------------------------------------------
    def _existing_hashes(self) -> dict[str, str]:
        coll = self._get_collection()
        out: dict[str, str] = {}
        offset = 0
        while True:
            page = coll.get(include=["metadatas"], limit=PAGE, offset=offset)
            ids = page["ids"]
            for ident, meta in zip(ids, page["metadatas"] or [{}] * len(ids)):
                out[ident] = (meta or {}).get("hash", "")
            if len(ids) < PAGE:
                return out
            offset += PAGE

    def delete_collection(self) -> None:
        if self._get_collection() is not None:
            self.client.delete_collection(self.collection_name)
        self._collection = None
        self._table = None

    def index(
        self,
        items: Sequence[Item],
        source: str | None = None,
        rebuild: bool = False,
        progress: Callable[[int, int], None] | None = None,
    ) -> IndexReport:
        """Bring the collection in line with ``items``: embed new/changed, delete missing."""
        from chromadb.errors import ChromaError

        try:
            return self._index(items, source, rebuild, progress)
        except ChromaError as exc:
            # e.g. the disk filled up mid-run. Every batch is its own upsert, so what was written
            # stays and the collection stays marked "building": say so instead of a bare InternalError.
            raise StoreError(
                f"could not write the index {self.collection_name!r} in {self.chroma_url or self.data_dir / 'chroma'}: "
                f"{_db_reason(exc)}; the batches written so far are kept: run `chatrec index` again to resume"
            ) from exc

    def _index(self, items, source, rebuild, progress) -> IndexReport:
        started = time.perf_counter()
        if rebuild:
            self.delete_collection()
        coll = self._get_collection()
        if coll is not None:
            self.check_model()
        else:
            coll = self._get_collection(create=True)
        existing = self._existing_hashes()
        hashes = {item.id: item.content_hash() for item in items}
        todo = [item for item in items if existing.get(item.id) != hashes[item.id]]
        # Similar lengths in a batch mean little padding: roughly 2x faster on mixed catalogues.
        todo.sort(key=lambda item: len(item.embedding_text()))
        stale = sorted(set(existing) - set(hashes))
        if todo or stale:
            self._update_metadata(state="building")
        embed_seconds = 0.0
        done = 0
        if progress:
            progress(0, len(todo))
        for start in range(0, len(todo), self.batch_size):
            batch = todo[start : start + self.batch_size]
            t0 = time.perf_counter()
            vectors = self.embedder.encode([item.embedding_text() for item in batch])
            embed_seconds += time.perf_counter() - t0
            coll.upsert(
                ids=[item.id for item in batch],
                embeddings=vectors,
                documents=[item.embedding_text() for item in batch],
                metadatas=[self._item_metadata(item, hashes[item.id]) for item in batch],
            )
            done += len(batch)
            if progress:
                progress(done, len(todo))
        for start in range(0, len(stale), PAGE):
            coll.delete(ids=stale[start : start + PAGE])
        fp = fingerprint_of(list(hashes.items()))
        meta = coll.metadata or {}
        if todo or stale or meta.get("state") != "ready" or meta.get("fingerprint") != fp:
            dimension = meta.get("dimension") or self.embedder.dimension
            self._update_metadata(
                state="ready", fingerprint=fp, count=len(hashes), source=source, dimension=dimension,
                embedding_model=self.model_name,
            )
        self._table = None
        return IndexReport(
            collection=self.collection_name, total=len(items), embedded=len(todo),
            unchanged=len(items) - len(todo), deleted=len(stale),
            seconds=time.perf_counter() - started, embed_seconds=embed_seconds,
        )

    @staticmethod
    def _item_metadata(item: Item, digest: str) -> dict:
        meta = {"hash": digest, "title": item.title, "record": json.dumps(item.to_record(), ensure_ascii=False)}
        if item.year is not None:
            meta["year"] = int(item.year)
        return meta

    # -- reading ------------------------------------------------------------------------------
    def _cache_path(self, fingerprint: str) -> Path:
        safe = "".join(ch if ch.isalnum() or ch in "-_" else "_" for ch in self.collection_name)
        return self.data_dir / "cache" / f"{safe}.{fingerprint}.npz"

    def table(self) -> ItemTable:
        """All items and their vectors, from the disk cache when the collection is unchanged."""
        if self._table is not None:
            return self._table
        coll = self._get_collection()
        if coll is None:
            raise StoreError(f"no index {self.collection_name!r} yet: run `chatrec index`")
        meta = coll.metadata or {}
        if meta.get("state") != "ready":
            raise StoreError(
                f"the index {self.collection_name!r} is incomplete (an earlier run was interrupted): "
                "run `chatrec index` again to resume"
            )
        self.check_model()
        fp = str(meta.get("fingerprint", ""))
        cache = self._cache_path(fp)
        if fp and cache.exists():
            try:
                with np.load(cache, allow_pickle=False) as npz:
                    records = json.loads(bytes(npz["records"]).decode("utf-8"))
                    matrix = np.ascontiguousarray(npz["matrix"], dtype=np.float32)
                self._table = ItemTable([Item.from_record(r) for r in records], matrix, fp)
                return self._table
            except Exception as exc:  # a damaged cache is only a cache: rebuild it
                log.warning("ignoring unreadable cache %s: %s", cache, exc)
        self._table = self._load_from_chroma(fp)
        self._save_cache(cache, self._table)
        return self._table

    def _load_from_chroma(self, fp: str) -> ItemTable:
        coll = self._get_collection()
        items: list[Item] = []
        vectors: list[np.ndarray] = []
        offset = 0
        while True:
            page = coll.get(include=["metadatas", "embeddings"], limit=PAGE, offset=offset)
            ids = page["ids"]
            for ident, meta, vec in zip(ids, page["metadatas"], page["embeddings"]):
                record = json.loads(meta["record"]) if meta and "record" in meta else {"id": ident, "title": ident}
                items.append(Item.from_record(record))
                vectors.append(np.asarray(vec, dtype=np.float32))
            if len(ids) < PAGE:
                break
            offset += PAGE
        order = sorted(range(len(items)), key=lambda i: _id_sort_key(items[i].id))
        items = [items[i] for i in order]
        matrix = np.vstack([vectors[i] for i in order]) if vectors else np.zeros((0, 1), dtype=np.float32)
        norms = np.linalg.norm(matrix, axis=1, keepdims=True)
        matrix = (matrix / np.where(norms > 0, norms, 1.0)).astype(np.float32)
        return ItemTable(items, matrix, fp)

    def _save_cache(self, path: Path, table: ItemTable) -> None:
        if not table.fingerprint:
            return
        records = json.dumps([item.to_record() for item in table.items], ensure_ascii=False).encode("utf-8")

        def write(tmp: Path) -> None:
            with tmp.open("wb") as fh:
                np.savez(fh, matrix=table.matrix, records=np.frombuffer(records, dtype=np.uint8))

        try:
            _atomic_write_bytes(path, write)
            for old in path.parent.glob(path.name.split(".")[0] + ".*.npz"):
                if old != path:
                    old.unlink(missing_ok=True)
        except OSError as exc:  # a read-only data dir still serves queries, just slower next time
            log.warning("could not write the item cache %s: %s", path, exc)

    def query(self, vector: np.ndarray, n: int) -> list[tuple[str, float]]:
        """The ``n`` nearest items by cosine, through Chroma's HNSW index: ``[(id, cosine)]``."""
        coll = self._get_collection()
        if coll is None:
            raise StoreError(f"no index {self.collection_name!r} yet: run `chatrec index`")
        n = max(1, min(n, coll.count() if self._table is None else len(self._table)))
        res = coll.query(query_embeddings=[np.asarray(vector, dtype=np.float32)], n_results=n, include=["distances"])
        return [(ident, 1.0 - float(dist)) for ident, dist in zip(res["ids"][0], res["distances"][0])]


def _db_reason(exc: Exception) -> str:
    """Chroma's database error without its wrapping, with a hint when it is about the disk."""
    text = re.sub(r"^(Database error: )?error returned from database: \(code: \d+\) ", "", str(exc).strip())
    if any(word in text.lower() for word in ("readonly", "read-only", "disk", "full", "permission")):
        text += " (is the disk full or the data directory read-only?)"
    return text


def _id_sort_key(ident: str) -> tuple[int, int | str]:
    return (0, int(ident)) if ident.isdigit() else (1, ident)
