"""Chroma as the vector index: embedded (``PersistentClient`` under the data dir) or a server (``chroma run``).

Conditions become Chroma ``where`` filters (numbers compare; list metadata such as genres, directors
and cast use ``$contains``/``$not_contains``), so a hard constraint filters inside the index's search.
Chroma's own errors become :class:`chatrec.ports.StoreError` with what to do about them.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from urllib.parse import urlparse

import numpy as np

from chatrec.core.constraints import Condition
from chatrec.ports import StoreError

PAGE = 2000  # rows per Chroma get() page
#: HNSW settings of new collections (Chroma's defaults otherwise)
HNSW = {"space": "cosine"}


class ChromaIndex:
    def __init__(self, name: str, data_dir: Path | None = None, url: str | None = None):
        self.name = name
        self.data_dir = Path(data_dir) if data_dir else None
        self.url = url
        self.location = url or str((self.data_dir or Path(".")) / "chroma")
        self._client = None
        self._collection = None

    # -- connection ---------------------------------------------------------------------------
    @property
    def client(self):
        if self._client is None:
            import chromadb
            from chromadb.config import Settings as ChromaSettings

            settings = ChromaSettings(anonymized_telemetry=False, allow_reset=False)
            if self.url:
                url = urlparse(self.url if "://" in self.url else f"http://{self.url}")
                try:
                    self._client = chromadb.HttpClient(
                        host=url.hostname or "127.0.0.1", port=url.port or (443 if url.scheme == "https" else 8000),
                        ssl=url.scheme == "https", settings=settings,
                    )
                    self._client.heartbeat()
                except Exception as exc:
                    self._client = None
                    raise StoreError(f"cannot reach the Chroma server at {self.url}: {exc}") from exc
            else:
                path = Path(self.location)
                try:
                    path.mkdir(parents=True, exist_ok=True)
                except OSError as exc:
                    raise StoreError(f"cannot create the index folder {path}: {exc.strerror}") from exc
                try:
                    self._client = chromadb.PersistentClient(path=str(path), settings=settings)
                except Exception as exc:
                    # Chroma writes on open, so a read-only or full data dir failed here as
                    # "unexpected InternalError: error returned from database: (code: 8) ...".
                    raise StoreError(f"cannot open the index in {path}: {db_reason(exc)}") from exc
        return self._client

    def _get(self):
        if self._collection is None:
            names = {getattr(c, "name", c) for c in self.client.list_collections()}
            if self.name in names:
                self._collection = self.client.get_collection(self.name, embedding_function=None)
        return self._collection

    def _coll(self):
        coll = self._get()
        if coll is None:
            raise StoreError(f"no index {self.name!r} yet: run `chatrec index`")
        return coll

    # -- VectorIndex ----------------------------------------------------------------------------
    def exists(self) -> bool:
        return self._get() is not None

    def create(self, metadata: Mapping[str, object]) -> None:
        def create():
            self._collection = self.client.create_collection(
                name=self.name, configuration={"hnsw": dict(HNSW)}, metadata=dict(metadata), embedding_function=None)

        self._write(create)

    def drop(self) -> None:
        if self._get() is not None:
            self._write(lambda: self.client.delete_collection(self.name))
        self._collection = None

    def metadata(self) -> dict:
        coll = self._get()
        return dict(coll.metadata or {}) if coll is not None else {}

    def update_metadata(self, **changes: object) -> None:
        coll = self._coll()
        meta = dict(coll.metadata or {})
        meta.update({k: v for k, v in changes.items() if v is not None})
        # Chroma refuses to modify its own reserved keys; keep ours only.
        self._write(lambda: coll.modify(metadata={k: v for k, v in meta.items() if not k.startswith("hnsw:")}))

    def count(self) -> int:
        return self._coll().count()

    def upsert(self, ids, vectors, metadatas, documents=None) -> None:
        self._write(lambda: self._coll().upsert(ids=list(ids), embeddings=np.asarray(vectors, dtype=np.float32),
                                                metadatas=[_clean(m) for m in metadatas],
                                                documents=list(documents) if documents is not None else None))

    def update(self, ids, metadatas) -> None:
        self._write(lambda: self._coll().update(ids=list(ids), metadatas=[_clean(m) for m in metadatas]))

    def delete(self, ids) -> None:
        ids = list(ids)
        for start in range(0, len(ids), PAGE):
            self._write(lambda: self._coll().delete(ids=ids[start:start + PAGE]))

    def _write(self, fn) -> None:
        from chromadb.errors import ChromaError

        try:
            fn()
        except ChromaError as exc:
            # e.g. the disk filled up mid-run: say so instead of a bare InternalError. Every batch is its own
            # write, so what was written stays and the collection stays marked "building".
            raise StoreError(f"could not write the index {self.name!r} in {self.location}: {db_reason(exc)}; "
                             "the batches written so far are kept: run `chatrec index` again to resume") from exc

    def query(self, vector: np.ndarray, n: int, where: Sequence[Condition] = ()) -> list[tuple[str, float]]:
        coll = self._coll()
        # no clamp to count(): Chroma returns what it has when asked for more, and count() took 83 ms a call at
        # a million items (more than the HNSW search itself, 6 ms)
        n = max(1, n)
        kwargs = {"where": to_where(where)} if where else {}
        res = coll.query(query_embeddings=[np.asarray(vector, dtype=np.float32)], n_results=n, include=["distances"],
                         **kwargs)
        return [(ident, 1.0 - float(dist)) for ident, dist in zip(res["ids"][0], res["distances"][0])]

    def scan(self, include_vectors: bool = True) -> Iterator[tuple[list[str], np.ndarray | None, list[dict]]]:
        coll = self._coll()
        include = ["metadatas", "embeddings"] if include_vectors else ["metadatas"]
        offset = 0
        while True:
            page = coll.get(include=include, limit=PAGE, offset=offset)
            ids = list(page["ids"])
            metas = [dict(m or {}) for m in (page["metadatas"] or [{}] * len(ids))]
            vectors = np.asarray(page["embeddings"], dtype=np.float32) if include_vectors and ids else None
            if ids:
                yield ids, vectors, metas
            if len(ids) < PAGE:
                return
            offset += PAGE


def to_where(conditions: Sequence[Condition]) -> dict:
    """Conditions as one Chroma ``where`` filter (an ``$and`` of them)."""
    clauses: list[dict] = []
    for c in conditions:
        if c.op == "ge":
            clauses.append({c.field: {"$gte": c.value}})
        elif c.op == "le":
            clauses.append({c.field: {"$lte": c.value}})
        elif c.op == "in_any":
            options = [{c.field: {"$contains": v}} for v in c.value]
            clauses.append(options[0] if len(options) == 1 else {"$or": options})
        elif c.op == "in_none":
            clauses.extend({c.field: {"$not_contains": v}} for v in c.value)
        else:
            raise ValueError(f"unknown condition {c.op!r}")
    return clauses[0] if len(clauses) == 1 else {"$and": clauses}


def _clean(meta: Mapping[str, object]) -> dict:
    """Chroma takes str/int/float/bool and non-empty lists of one type; leave out what it cannot hold."""
    out = {}
    for k, v in meta.items():
        if v is None or (isinstance(v, (list, tuple)) and not v):
            continue
        out[k] = list(v) if isinstance(v, tuple) else v
    return out


def db_reason(exc: Exception) -> str:
    """Chroma's database error without its wrapping, with a hint when it is about the disk."""
    text = re.sub(r"^(Database error: )?error returned from database: \(code: \d+\) ", "", str(exc).strip())
    if any(word in text.lower() for word in ("readonly", "read-only", "disk", "full", "permission")):
        text += " (is the disk full or the data directory read-only?)"
    return text
