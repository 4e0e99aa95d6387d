"""One contract, every vector index: the in-memory fake and real Chroma (embedded, and a `chroma run` server)
answer the same cases the same way, so engine tests on the fake say something about the product."""

from __future__ import annotations

import uuid

import numpy as np
import pytest

from chatrec.adapters.chroma import ChromaIndex
from chatrec.adapters.memory import MemoryIndex
from chatrec.core.constraints import Condition
from chatrec.ports import StoreError, VectorIndex

ROWS = {
    "a": ([1.0, 0.0, 0.0], {"year": 1990, "genres": ["Comedy"], "cast": ["Tom Hanks"], "runtime": 100}),
    "b": ([0.9, 0.1, 0.0], {"year": 1999, "genres": ["Comedy", "Drama"], "cast": ["Tom Hanks", "Meg Ryan"]}),
    "c": ([0.0, 1.0, 0.0], {"year": 1979, "genres": ["Horror", "Sci-Fi"], "directors": ["Ridley Scott"]}),
    "d": ([0.0, 0.9, 0.1], {"year": 2010, "genres": ["Sci-Fi"], "runtime": 148}),
    "e": ([0.1, 0.0, 1.0], {"genres": ["Drama"]}),
}


@pytest.fixture(params=["memory", "chroma", "chroma-server"])
def index(request, tmp_path) -> VectorIndex:
    name = f"contract-{uuid.uuid4().hex[:8]}"
    if request.param == "memory":
        yield MemoryIndex(name)
    elif request.param == "chroma":
        yield ChromaIndex(name, tmp_path)
    else:
        server = request.getfixturevalue("chroma_server")
        yield ChromaIndex(name, url=server)


def fill(index: VectorIndex) -> None:
    index.create({"embedding_model": "contract", "state": "building"})
    ids = list(ROWS)
    vectors = np.array([ROWS[i][0] for i in ids], dtype=np.float32)
    index.upsert(ids, vectors, [ROWS[i][1] for i in ids])


def test_lifecycle_and_metadata(index):
    assert not index.exists()
    with pytest.raises(StoreError):
        index.count()
    fill(index)
    assert index.exists() and index.count() == 5
    index.update_metadata(state="ready", fingerprint="f1")
    assert index.metadata()["state"] == "ready" and index.metadata()["embedding_model"] == "contract"
    index.delete(["e"])
    assert index.count() == 4
    pages = list(index.scan(include_vectors=True))
    assert sorted(i for ids, _, _ in pages for i in ids) == ["a", "b", "c", "d"]
    assert all(v.shape[1] == 3 for _, v, _ in pages)
    index.update(["a"], [{"year": 1991, "genres": ["Comedy"]}])
    meta = {i: m for ids, _, metas in index.scan(include_vectors=False) for i, m in zip(ids, metas)}
    assert meta["a"]["year"] == 1991
    index.drop()
    assert not index.exists()


@pytest.mark.parametrize("conditions,expected", [
    ((), {"a", "b", "c", "d", "e"}),
    ((Condition("year", "ge", 1990), Condition("year", "le", 1999)), {"a", "b"}),
    ((Condition("genres", "in_any", ["Sci-Fi", "Drama"]),), {"b", "c", "d", "e"}),
    ((Condition("genres", "in_none", ["Comedy"]),), {"c", "d", "e"}),
    ((Condition("cast", "in_any", ["Tom Hanks"]), Condition("year", "ge", 1995)), {"b"}),
    ((Condition("directors", "in_none", ["Ridley Scott"]), Condition("runtime", "le", 120)), {"a"}),
])
def test_nearest_with_conditions(index, conditions, expected):
    """Exactly the rows meeting every condition, nearest first, with their cosines (a missing field never
    meets a condition on it; a missing list holds nothing)."""
    fill(index)
    q = np.array([1.0, 0.2, 0.0])
    hits = index.query(q, 10, conditions)
    assert {i for i, _ in hits} == expected
    unit = {i: np.array(v) / np.linalg.norm(v) for i, (v, _) in ROWS.items()}
    exact = sorted(expected, key=lambda i: -float(unit[i] @ (q / np.linalg.norm(q))))
    assert [i for i, _ in hits] == exact
    for i, cosine in hits:
        assert cosine == pytest.approx(float(unit[i] @ (q / np.linalg.norm(q))), abs=1e-4)
