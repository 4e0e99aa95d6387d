"""In-memory adapters: a vector index, an embedder and a state store with no files, models or servers.

They make engine and dialogue tests run in milliseconds, and they pass the same contract tests as the
real adapters (``tests/system/test_vector_index_contract.py``), so what holds for them holds for Chroma.
``MemoryIndex`` searches exactly (a matrix product); ``HashEmbedder`` maps words to fixed random
directions (texts sharing words are close), deterministic across runs.
"""

from __future__ import annotations

import hashlib
import re
import threading
from collections.abc import Iterator, Mapping, Sequence

import numpy as np

from chatrec.core.constraints import Condition
from chatrec.core.profile import Profile
from chatrec.ports import StoreError


class MemoryIndex:
    def __init__(self, name: str = "memory"):
        self.name = name
        self.location = "memory"
        self._meta: dict | None = None
        self._ids: list[str] = []
        self._pos: dict[str, int] = {}
        self._vectors: list[np.ndarray] = []
        self._metadatas: list[dict] = []
        self._lock = threading.Lock()

    def exists(self) -> bool:
        return self._meta is not None

    def create(self, metadata: Mapping[str, object]) -> None:
        self._meta = dict(metadata)

    def drop(self) -> None:
        self._meta = None
        self._ids, self._pos, self._vectors, self._metadatas = [], {}, [], []

    def metadata(self) -> dict:
        return dict(self._meta or {})

    def update_metadata(self, **changes: object) -> None:
        self._require()
        self._meta.update({k: v for k, v in changes.items() if v is not None})

    def count(self) -> int:
        self._require()
        return len(self._ids)

    def upsert(self, ids, vectors, metadatas, documents=None) -> None:
        self._require()
        vectors = np.asarray(vectors, dtype=np.float32)
        with self._lock:
            for ident, vec, meta in zip(ids, vectors, metadatas):
                norm = float(np.linalg.norm(vec)) or 1.0
                if ident in self._pos:
                    n = self._pos[ident]
                    self._vectors[n], self._metadatas[n] = vec / norm, dict(meta)
                else:
                    self._pos[ident] = len(self._ids)
                    self._ids.append(ident)
                    self._vectors.append(vec / norm)
                    self._metadatas.append(dict(meta))

    def update(self, ids, metadatas) -> None:
        self._require()
        with self._lock:
            for ident, meta in zip(ids, metadatas):
                if ident in self._pos:
                    self._metadatas[self._pos[ident]] = dict(meta)

    def delete(self, ids) -> None:
        self._require()
        gone = set(ids)
        with self._lock:
            keep = [n for n, i in enumerate(self._ids) if i not in gone]
            self._ids = [self._ids[n] for n in keep]
            self._vectors = [self._vectors[n] for n in keep]
            self._metadatas = [self._metadatas[n] for n in keep]
            self._pos = {i: n for n, i in enumerate(self._ids)}

    def query(self, vector: np.ndarray, n: int, where: Sequence[Condition] = ()) -> list[tuple[str, float]]:
        self._require()
        if not self._ids:
            return []
        rows = [r for r in range(len(self._ids)) if all(_holds(self._metadatas[r], c) for c in where)]
        if not rows:
            return []
        q = np.asarray(vector, dtype=np.float32)
        sims = np.vstack([self._vectors[r] for r in rows]) @ (q / (np.linalg.norm(q) or 1.0))  # cosine, as Chroma
        order = np.argsort(-sims, kind="stable")[: max(1, n)]
        return [(self._ids[rows[i]], float(sims[i])) for i in order]

    def scan(self, include_vectors: bool = True) -> Iterator[tuple[list[str], np.ndarray | None, list[dict]]]:
        self._require()
        if self._ids:
            yield list(self._ids), (np.vstack(self._vectors) if include_vectors else None), \
                [dict(m) for m in self._metadatas]

    def _require(self) -> None:
        if self._meta is None:
            raise StoreError(f"no index {self.name!r} yet: run `chatrec index`")


def _holds(meta: Mapping[str, object], c: Condition) -> bool:
    value = meta.get(c.field)
    if c.op in ("ge", "le"):
        if not isinstance(value, (int, float)):
            return False
        return value >= c.value if c.op == "ge" else value <= c.value
    values = set(value) if isinstance(value, (list, tuple)) else set()
    if c.op == "in_any":
        return bool(values & set(c.value))
    if c.op == "in_none":
        return not values & set(c.value)
    raise ValueError(f"unknown condition {c.op!r}")


class HashEmbedder:
    """Each word is a fixed pseudo-random direction; a text is the normalised sum of its words'."""

    def __init__(self, dimension: int = 64, name: str = "hash-embedder"):
        self.name = name
        self._dimension = dimension

    @property
    def backend(self) -> str:
        return "hash"

    @property
    def dimension(self) -> int:
        return self._dimension

    def _word(self, word: str) -> np.ndarray:
        seed = int.from_bytes(hashlib.sha256(word.encode("utf-8")).digest()[:8], "little")
        return np.random.default_rng(seed).standard_normal(self._dimension)

    def encode(self, texts: list[str]) -> np.ndarray:
        out = np.zeros((len(texts), self._dimension), dtype=np.float32)
        for n, text in enumerate(texts):
            words = re.findall(r"\w+", text.lower())
            vec = np.sum([self._word(w) for w in words], axis=0) if words else self._word("")
            out[n] = vec / (np.linalg.norm(vec) or 1.0)
        return out

    def query(self, text: str) -> np.ndarray:
        return self.encode([text])[0]


class MemoryState:
    """Profiles, events and history in dictionaries (the SQLite store's interface)."""

    def __init__(self):
        self._profiles: dict[str, Profile] = {}
        self._events: dict[str, list[tuple[str, str]]] = {}
        self._history: dict[str, list[tuple[str, str]]] = {}
        self._lock = threading.RLock()

    def load_profile(self, user_id: str) -> Profile:
        with self._lock:
            return self._profiles.get(user_id, Profile())

    def save_profile(self, user_id: str, profile: Profile) -> None:
        with self._lock:
            self._profiles[user_id] = profile

    def record_turn(self, user_id: str, profile: Profile, messages: list[tuple[str, str]]) -> None:
        with self._lock:
            self._profiles[user_id] = profile
            self._history.setdefault(user_id, []).extend(messages)

    def record_event(self, user_id: str, item_id: str, event: str, profile: Profile) -> None:
        with self._lock:
            self._profiles[user_id] = profile
            self._events.setdefault(user_id, []).append((item_id, event))

    def history(self, user_id: str, limit: int = 50) -> list[tuple[str, str]]:
        with self._lock:
            return list(self._history.get(user_id, []))[-limit:]

    def events(self, user_id: str) -> list[tuple[str, str]]:
        with self._lock:
            return list(self._events.get(user_id, []))

    def users(self) -> list[str]:
        with self._lock:
            return sorted(set(self._profiles) | set(self._history) | set(self._events))

    def forget(self, user_id: str) -> None:
        with self._lock:
            for store in (self._profiles, self._events, self._history):
                store.pop(user_id, None)

    def close(self) -> None:
        pass
