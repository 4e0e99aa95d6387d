"""The catalogue index on real Chroma with the real embedder: incremental, resumable, model-checked, cached."""

from __future__ import annotations

import shutil
from dataclasses import replace

import numpy as np
import pytest

from chatrec.adapters.chroma import ChromaIndex
from chatrec.app import App
from chatrec.catalogue.importer import CatalogError, load_catalog
from chatrec.catalogue.index import CatalogueIndex
from chatrec.core.items import Item
from chatrec.ports import ModelMismatch, StoreError
from chatrec.recommend.query import Query
from chatrec.settings import Settings


def make_store(tmp_path, embedder, name="movies", batch_size=32):
    data = tmp_path / "data"
    return CatalogueIndex(ChromaIndex(name, data), embedder, data / "cache", batch_size)


def test_index_is_incremental_and_idempotent(tmp_path, embedder, small_catalog):
    store = make_store(tmp_path, embedder)
    items = load_catalog(small_catalog)
    first = store.build(items)
    assert (first.embedded, first.unchanged, first.deleted) == (len(items), 0, 0)
    table1 = store.catalogue()
    second = store.build(items)
    assert (second.embedded, second.unchanged, second.deleted) == (0, len(items), 0)
    table2 = store.catalogue()
    # re-indexing twice changes nothing: same ids, same vectors, same fingerprint
    assert table1.ids == table2.ids
    assert np.array_equal(table1.vectors, table2.vectors)
    assert table1.fingerprint == table2.fingerprint

    changed = [replace(items[0], text=items[0].text + " Now with dragons."), *items[1:-1]]
    third = store.build(changed)
    assert (third.embedded, third.deleted) == (1, 1)
    assert store.info()["count"] == len(changed)
    table3 = store.catalogue()
    assert items[-1].id not in table3.index_of
    assert table3.fingerprint != table1.fingerprint


def test_table_cache_survives_a_new_process_view(tmp_path, embedder, small_catalog, monkeypatch):
    store = make_store(tmp_path, embedder)
    items = load_catalog(small_catalog)
    store.build(items)
    t1 = store.catalogue()
    folders = list((tmp_path / "data" / "cache" / "catalogue").iterdir())
    assert len(folders) == 1 and folders[0].is_dir()
    fresh = make_store(tmp_path, embedder)  # a new client reads the cache, not Chroma pages
    monkeypatch.setattr(ChromaIndex, "scan", lambda *a, **k: pytest.fail("read the index instead of the cache"))
    t2 = fresh.catalogue()
    assert np.array_equal(t1.vectors, t2.vectors) and [t1.item(r) for r in range(t1.n)] == items
    assert [t2.item(r) for r in range(t2.n)] == items and t2.tag_counts == t1.tag_counts
    monkeypatch.undo()
    # a damaged cache is rebuilt from Chroma, not trusted
    (folders[0] / "meta.json").write_bytes(b"garbage")
    t3 = make_store(tmp_path, embedder).catalogue()
    assert np.allclose(t1.vectors, t3.vectors, atol=1e-6)


def test_resume_after_interruption(tmp_path, embedder, small_catalog):
    items = load_catalog(small_catalog)
    store = make_store(tmp_path, embedder, batch_size=20)

    def stop_after_two_batches(done, total):
        if done >= 40:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        store.build(items, progress=stop_after_two_batches)
    reopened = make_store(tmp_path, embedder, batch_size=20)
    assert not reopened.is_ready()
    with pytest.raises(StoreError, match="incomplete"):
        reopened.catalogue()
    report = reopened.build(items)
    assert report.embedded == len(items) - 40 and report.unchanged == 40
    assert reopened.is_ready() and reopened.info()["count"] == len(items)


def test_model_mismatch_is_a_clear_error(tmp_path, embedder, small_catalog):
    store = make_store(tmp_path, embedder)
    store.build(load_catalog(small_catalog))
    other = tmp_path / "another-minilm"
    shutil.copytree(embedder.path, other)
    from chatrec.adapters.embedder import SentenceEmbedder

    wrong = CatalogueIndex(ChromaIndex("movies", tmp_path / "data"), SentenceEmbedder(str(other)))
    with pytest.raises(ModelMismatch, match="chatrec index --rebuild"):
        wrong.catalogue()
    with pytest.raises(ModelMismatch):
        wrong.build(load_catalog(small_catalog))
    # the rebuild path works and records the new model
    report = wrong.build(load_catalog(small_catalog), rebuild=True)
    assert report.embedded == report.total
    assert wrong.info()["embedding_model"] == "another-minilm"


def test_malformed_file_leaves_index_untouched(tmp_path, embedder, small_catalog):
    app = App(Settings(data_dir=tmp_path / "data", catalog=small_catalog), "small", embedder=embedder)
    app.index_file(small_catalog)
    before = app.index.info()
    bad = tmp_path / "small.jsonl.bad.jsonl"
    lines = small_catalog.read_text().splitlines()
    lines[57] = lines[57][:-5]  # truncate one JSON object
    bad.write_text("\n".join(lines) + "\n")
    with pytest.raises(CatalogError, match="line 58"):
        app.index_file(bad)
    assert app.index.info() == before


def test_query_returns_the_known_best_item(tmp_path, embedder):
    """A synthetic catalogue where the right answer is known."""
    items = [
        Item(id="dog", title="Paws on Keys", text="A dog who learns to play the piano and joins a jazz band."),
        Item(id="ship", title="Deep Hull", text="Submarine crew trapped under the arctic ice."),
        Item(id="chef", title="Salt", text="A chef opens a tiny restaurant in Lisbon."),
        Item(id="heist", title="Vault", text="A crew of thieves plans a casino heist."),
    ]
    store = make_store(tmp_path, embedder, name="synthetic")
    store.build(items)
    for query, expected in [
        ("musical puppy", "dog"),
        ("submarine under ice", "ship"),
        ("cooking in Portugal", "chef"),
        ("robbing a casino", "heist"),
    ]:
        hits = store.index.query(embedder.query(query), 4)
        assert hits[0][0] == expected, (query, hits)
        # Chroma's cosine agrees with brute force over the cached columns
        table = store.catalogue()
        brute = table.vectors @ embedder.query(query)
        assert table.ids[int(np.argmax(brute))] == expected
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
    app = App(Settings(data_dir=tmp_path / "data", catalog=path, interactions=None), "courses", embedder=embedder)
    from chatrec.catalogue.importer import parse_mapping

    app.index_file(path, parse_mapping(["id=code", "title=name", "text=summary", "tags=topics"]))
    result = app.recommender.recommend(Query(text="learn to code", liked_tags={"programming": 1.0},
                                             disliked_tags={"advanced": 1.0}), k=4)
    ids = [r.item.id for r in result.items]
    assert ids[0] == "c1"
    assert ids.index("c3") > ids.index("c1")
    assert all(0 <= v <= 1 for r in result.items for v in r.breakdown.as_dict().values())


def test_an_imported_catalogue_maps_its_makers_to_the_people_roles(tmp_path, embedder):
    """A bookshop's "author" column (mapped, or named so) gives the same hard wishes as a film's director."""
    path = tmp_path / "books.csv"
    path.write_text(
        "isbn,title,blurb,author,year\n"
        "b1,Guards! Guards!,A dragon terrorises the city watch of Ankh-Morpork,Terry Pratchett,1989\n"
        "b2,Small Gods,A tortoise god and his last believer,Terry Pratchett,1992\n"
        "b3,The Hobbit,A hobbit joins dwarves to take back their mountain from a dragon,J. R. R. Tolkien,1937\n"
        "b4,Good Omens,An angel and a demon try to stop the apocalypse,Terry Pratchett|Neil Gaiman,1990\n"
        "b5,Stardust,A young man crosses a wall into faerie to find a fallen star,Neil Gaiman,1999\n",
        encoding="utf-8")
    app = App(Settings(data_dir=tmp_path / "data", catalog=path, interactions=None), "books", embedder=embedder)
    from chatrec.catalogue.importer import parse_mapping

    app.index_file(path, parse_mapping(["id=isbn", "text=blurb"]))  # "author" needs no mapping
    reply = app.one_shot.recommend("something by Terry Pratchett with a dragon", k=3)
    assert [r.item.id for r in reply.recommendations][0] == "b1"
    assert all("Terry Pratchett" in r.item.directors for r in reply.recommendations)
    assert reply.understood.startswith("by Terry Pratchett")
    gaiman = app.one_shot.recommend("not by Neil Gaiman, before 1995", k=3)
    assert {r.item.id for r in gaiman.recommendations} == {"b1", "b2", "b3"}
