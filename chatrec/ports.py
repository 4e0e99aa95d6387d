"""The small interfaces between chatrec and the outside world; the real adapters live behind them.

| port | real adapter | in-memory fake (tests) |
|---|---|---|
| :class:`VectorIndex` (nearest items, metadata filters) | ``adapters.chroma.ChromaIndex`` (embedded or server) | ``adapters.memory.MemoryIndex`` |
| :class:`Embedder` (text → unit vectors) | ``adapters.embedder.SentenceEmbedder`` (ONNX Runtime / PyTorch) | ``adapters.memory.HashEmbedder`` |
| :class:`ChatModel` (complete / stream) | ``llm.backends.LocalBackend`` (llama.cpp), ``llm.backends.OpenAIBackend`` | ``tests/fakes.py`` ``ScriptedModel`` |
| :class:`StateStore` (profiles, events, history) | ``adapters.sqlite_state.SqliteState`` | ``adapters.memory.MemoryState`` |

A new vector store is one class implementing :class:`VectorIndex` (and a branch in ``chatrec.app``); a new
LLM backend one class implementing :class:`ChatModel`. ``tests/system/test_vector_index_contract.py`` runs
the same cases against every :class:`VectorIndex`.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from typing import Protocol, runtime_checkable

import numpy as np

from chatrec.core.constraints import Condition
from chatrec.core.profile import Profile
from chatrec.llm.backends import ChatBackend as ChatModel  # noqa: F401  (the chat-model port lives with its adapters)


class StoreError(RuntimeError):
    """An index problem the user can act on; the message says what to do."""


class ModelMismatch(StoreError):
    """The index was built with another embedding model than the configured one."""


@runtime_checkable
class VectorIndex(Protocol):
    """One collection of item vectors with metadata (cosine space)."""

    name: str
    location: str  # where it lives, for messages ("/data/chroma", "http://127.0.0.1:8000")

    def exists(self) -> bool: ...

    def create(self, metadata: Mapping[str, object]) -> None: ...

    def drop(self) -> None: ...

    def metadata(self) -> dict: ...

    def update_metadata(self, **changes: object) -> None: ...

    def count(self) -> int: ...

    def upsert(self, ids: Sequence[str], vectors: np.ndarray, metadatas: Sequence[Mapping[str, object]],
               documents: Sequence[str] | None = None) -> None: ...

    def update(self, ids: Sequence[str], metadatas: Sequence[Mapping[str, object]]) -> None: ...

    def delete(self, ids: Sequence[str]) -> None: ...

    def query(self, vector: np.ndarray, n: int, where: Sequence[Condition] = ()) -> list[tuple[str, float]]:
        """The ``n`` nearest items meeting every condition: ``[(id, cosine)]``, nearest first."""
        ...

    def scan(self, include_vectors: bool = True) -> Iterator[tuple[list[str], np.ndarray | None, list[dict]]]:
        """Every item, page by page: (ids, vectors or None, metadatas)."""
        ...


@runtime_checkable
class Embedder(Protocol):
    name: str  # recorded in the index: another model's vectors must not be mixed in

    @property
    def backend(self) -> str: ...

    @property
    def dimension(self) -> int: ...

    def encode(self, texts: list[str]) -> np.ndarray: ...

    def query(self, text: str) -> np.ndarray: ...


@runtime_checkable
class StateStore(Protocol):
    def load_profile(self, user_id: str) -> Profile: ...

    def save_profile(self, user_id: str, profile: Profile) -> None: ...

    def record_turn(self, user_id: str, profile: Profile, messages: list[tuple[str, str]]) -> None: ...

    def record_event(self, user_id: str, item_id: str, event: str, profile: Profile) -> None: ...

    def history(self, user_id: str, limit: int = 50) -> list[tuple[str, str]]: ...

    def events(self, user_id: str) -> list[tuple[str, str]]: ...

    def users(self) -> list[str]: ...

    def forget(self, user_id: str) -> None: ...

    def close(self) -> None: ...
