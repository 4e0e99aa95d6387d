"""The Chroma item index over the real embedder: incremental, resumable, model-checked."""

from __future__ import annotations

import shutil
from dataclasses import replace

import numpy as np
import pytest

from chatrec.catalogue.importer import CatalogError, load_catalog
from chatrec.core.items import Item
from chatrec.recommender import Query, Recommender
from chatrec.settings import Settings
from chatrec.store import ItemStore, ModelMismatch, StoreError


def make_store(tmp_path, embedder, name="movies", batch_size=32):
    return ItemStore(tmp_path / "data", name, embedder=embedder, batch_size=batch_size)


def test_index_is_incremental_and_idempotent(tmp_path, embedder, small_catalog):
    store = make_store(tmp_path, embedder)
    items = load_catalog(small_catalog)
    first = store.index(items)
    assert (first.embedded, first.unchanged, first.deleted) == (len(items), 0, 0)
    table1 = store.table()
    second = store.index(items)
    assert (second.embedded, second.unchanged, second.deleted) == (0, len(items), 0)
    table2 = store.table()
    # re-indexing twice changes nothing: same ids, same vectors, same fingerprint
    assert [i.id for i in table1.items] == [i.id for i in table2.items]
    assert np.array_equal(table1.matrix, table2.matrix)
    assert table1.fingerprint == table2.fingerprint

    changed = [replace(items[0], text=items[0].text + " Now with dragons."), *items[1:-1]]
    third = store.index(changed)
    assert (third.embedded, third.deleted) == (1, 1)
    assert store.info()["count"] == len(changed)
    table3 = store.table()
    assert items[-1].id not in table3.index_of
    assert table3.fingerprint != table1.fingerprint


def test_table_cache_survives_a_new_process_view(tmp_path, embedder, small_catalog):
    store = make_store(tmp_path, embedder)
    store.index(load_catalog(small_catalog))
    t1 = store.table()
    cache_files = list((tmp_path / "data" / "cache").glob("*.npz"))
    assert len(cache_files) == 1
    fresh = make_store(tmp_path, embedder)  # a new client reads the cache, not Chroma pages
    t2 = fresh.table()
    assert np.array_equal(t1.matrix, t2.matrix) and t1.items == t2.items
    # a damaged cache is rebuilt from Chroma, not trusted
    cache_files[0].write_bytes(b"garbage")
    t3 = make_store(tmp_path, embedder).table()
    assert np.allclose(t1.matrix, t3.matrix, atol=1e-6)


def test_resume_after_interruption(tmp_path, embedder, small_catalog):
    items = load_catalog(small_catalog)
    store = make_store(tmp_path, embedder, batch_size=20)

    def stop_after_two_batches(done, total):
        if done >= 40:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        store.index(items, progress=stop_after_two_batches)
    reopened = make_store(tmp_path, embedder, batch_size=20)
    assert not reopened.is_ready()
    with pytest.raises(StoreError, match="incomplete"):
        reopened.table()
    report = reopened.index(items)
    assert report.embedded == len(items) - 40 and report.unchanged == 40
    assert reopened.is_ready() and reopened.info()["count"] == len(items)


def test_model_mismatch_is_a_clear_error(tmp_path, embedder, small_catalog):
    store = make_store(tmp_path, embedder)
    store.index(load_catalog(small_catalog))
    other = tmp_path / "another-minilm"
    shutil.copytree(embedder.path, other)
    wrong = ItemStore(tmp_path / "data", "movies", embedding_model=str(other))
    with pytest.raises(ModelMismatch, match="chatrec index --rebuild"):
        wrong.table()
    with pytest.raises(ModelMismatch):
        wrong.index(load_catalog(small_catalog))
    # the rebuild path works and records the new model
    report = wrong.index(load_catalog(small_catalog), rebuild=True)
    assert report.embedded == report.total
    assert wrong.info()["embedding_model"] == "another-minilm"


def test_malformed_file_leaves_index_untouched(tmp_path, embedder, small_catalog):
    settings = Settings(data_dir=tmp_path / "data", catalog=small_catalog)
    rec = Recommender(settings, store=make_store(tmp_path, embedder, name="small"))
    rec.index_file(small_catalog)
    before = rec.store.info()
    bad = tmp_path / "small.jsonl.bad.jsonl"
    lines = small_catalog.read_text().splitlines()
    lines[57] = lines[57][:-5]  # truncate one JSON object
    bad.write_text("\n".join(lines) + "\n")
    with pytest.raises(CatalogError, match="line 58"):
        rec.index_file(bad)
    assert rec.store.info() == before


def test_query_returns_the_known_best_item(tmp_path, embedder):
    """A synthetic catalogue where the right answer is known."""
    items = [
        Item(id="dog", title="Paws on Keys", text="A dog who learns to play the piano and joins a jazz band."),
        Item(id="ship", title="Deep Hull", text="Submarine crew trapped under the arctic ice."),
        Item(id="chef", title="Salt", text="A chef opens a tiny restaurant in Lisbon."),
        Item(id="heist", title="Vault", text="A crew of thieves plans a casino heist."),
    ]
    store = make_store(tmp_path, embedder, name="synthetic")
    store.index(items)
    for query, expected in [
        ("musical puppy", "dog"),
        ("submarine under ice", "ship"),
        ("cooking in Portugal", "chef"),
        ("robbing a casino", "heist"),
    ]:
        hits = store.query(embedder.query(query), 4)
        assert hits[0][0] == expected, (query, hits)
        # Chroma's cosine agrees with brute force over the cached matrix
        table = store.table()
        brute = table.matrix @ embedder.query(query)
        assert table.items[int(np.argmax(brute))].id == expected
        assert hits[0][1] == pytest.approx(float(brute.max()), abs=1e-4)


def test_recommender_ranks_other_catalogues(tmp_path, embedder):
    path = tmp_path / "courses.csv"
    path.write_text(
        "code,name,summary,topics\n"
        "c1,Intro to Python,Variables loops and functions for beginners,programming|beginner\n"
        "c2,Watercolour Basics,Painting landscapes with watercolour,art|beginner\n"
        "c3,Advanced Rust,Ownership lifetimes and async in Rust,programming|advanced\n"
        "c4,Music Theory,Scales chords and harmony,music|beginner\n",
        encoding="utf-8",
    )
    settings = Settings(data_dir=tmp_path / "data", catalog=path)
    rec = Recommender(settings, store=make_store(tmp_path, embedder, name="courses"))
    from chatrec.catalogue.importer import parse_mapping

    rec.index_file(path, parse_mapping(["id=code", "title=name", "text=summary", "tags=topics"]))
    result = rec.recommend(Query(text="learn to code", liked_tags={"programming": 1.0},
                                 disliked_tags={"advanced": 1.0}), k=4)
    ids = [r.item.id for r in result.items]
    assert ids[0] == "c1"
    assert ids.index("c3") > ids.index("c1")
    assert all(0 <= v <= 1 for r in result.items for v in r.breakdown.as_dict().values())
