"""The catalogue index as a hypothesis state machine, on real embedded Chroma with the real embedder: every
add, change, delete and re-index keeps the index, its metadata and the loaded columns equal to the model."""

from __future__ import annotations

import json
import uuid
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, settings, strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

from chatrec.core.items import Item
from conftest import CATALOG

# -- the item store as a state machine -----------------------------------------------------------
POOL_SIZE = 30


@pytest.fixture(scope="module")
def store_pool(embedder):
    """~30 real catalogue items and the shared (ONNX, verified) embedder."""
    items = []
    with CATALOG.open(encoding="utf-8") as fh:
        for n, line in enumerate(fh):
            if n % 300 == 0:
                items.append(Item.from_record(json.loads(line)))
            if len(items) == POOL_SIZE:
                break
    return items, embedder


class StoreMachine(RuleBasedStateMachine):
    """The model is a dict id → Item; every operation goes through ItemStore's public ``index`` API
    (add = index with one more item, update = changed text, delete = index without it, re-index =
    the same list again or ``rebuild=True``). Invariants compare Chroma with the model."""

    pool: list[Item] = []
    embedder = None
    root: Path | None = None
    k = 5

    def __init__(self):
        super().__init__()
        from chatrec.adapters.chroma import ChromaIndex
        from chatrec.catalogue.index import CatalogueIndex

        self.store = CatalogueIndex(ChromaIndex(f"c{uuid.uuid4().hex[:12]}", self.root), self.embedder,
                                    cache_dir=self.root / "cache", batch_size=7)
        self.model: dict[str, Item] = {}
        self.version: dict[str, int] = {}
        self.vectors: dict[str, np.ndarray] = {}
        self.indexed = False

    def _index(self, rebuild: bool = False) -> None:
        report = self.store.build(list(self.model.values()), rebuild=rebuild)
        assert report.total == len(self.model)
        self.indexed = True

    @rule(n=st.integers(min_value=0, max_value=POOL_SIZE - 1))
    def add(self, n):
        item = self.pool[n]
        assume(item.id not in self.model)
        self.model[item.id] = item
        self._index()

    @rule(n=st.integers(min_value=0, max_value=POOL_SIZE - 1), words=st.sampled_from(
        ["Now with dragons.", "A heist in space.", "", "Zombies on a train.", "🎬 кино"]))
    def update(self, n, words):
        ident = self.pool[n].id
        assume(ident in self.model)
        self.version[ident] = self.version.get(ident, 0) + 1
        self.model[ident] = replace(self.pool[n], text=f"{self.pool[n].text} {words} v{self.version[ident]}")
        self._index()

    @rule(n=st.integers(min_value=0, max_value=POOL_SIZE - 1))
    def delete(self, n):
        ident = self.pool[n].id
        assume(ident in self.model)
        del self.model[ident]
        self._index()

    @rule(rebuild=st.booleans())
    def reindex(self, rebuild):
        self._index(rebuild=rebuild)

    def _vector(self, item: Item) -> np.ndarray:
        text = item.embedding_text()
        if text not in self.vectors:
            self.vectors[text] = self.embedder.encode([text])[0]
        return self.vectors[text]

    @invariant()
    def chroma_matches_the_model(self):
        if not self.indexed:
            return
        index = self.store.index
        assert index.count() == len(self.model)
        got = [(i, m) for ids, _, metas in index.scan(include_vectors=False) for i, m in zip(ids, metas)]
        assert len(got) == len({i for i, _ in got}) == len(self.model)
        assert {i for i, _ in got} == set(self.model)
        for ident, meta in got:
            item = self.model[ident]
            assert meta["hash"] == item.content_hash()
            assert meta.get("year") == item.year and meta.get("genres", []) == list(item.genres)
        assert self.store.is_ready()

    @invariant()
    def table_matches_the_model(self):
        if not self.indexed or not self.model:
            return
        table = self.store.catalogue()
        assert set(table.ids) == set(self.model)
        for row in range(table.n):
            it = table.item(row)
            assert it == self.model[it.id]
            assert float(table.vectors[row] @ self._vector(it)) > 0.9999

    @invariant()
    def top_k_recall_against_brute_force(self):
        if not self.indexed or not self.model:
            return
        ids = sorted(self.model)
        matrix = np.vstack([self._vector(self.model[i]) for i in ids])
        for probe in ids[:2]:
            q = matrix[ids.index(probe)] * 0.7 + matrix[-1] * 0.3
            q = q / np.linalg.norm(q)
            k = min(self.k, len(ids))
            exact = {ids[j] for j in np.argsort(-(matrix @ q), kind="stable")[:k]}
            got = {i for i, _ in self.store.index.query(q, k)}
            assert len(got) == k
            assert len(got & exact) / k >= 0.8, (got, exact)


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_index_state_machine(store_pool, tmp_path):
    items, embedder = store_pool
    StoreMachine.pool, StoreMachine.embedder, StoreMachine.root = items, embedder, tmp_path / "store"
    StoreMachine.TestCase.settings = settings(max_examples=12, stateful_step_count=12, deadline=None,
                                              suppress_health_check=list(HealthCheck))
    StoreMachine.TestCase().runTest()
