"""Catalogue import: CSV/JSONL, column mapping, clear errors naming file and line."""

import json

import pytest

from chatrec.catalogue.importer import CatalogError, load_catalog, parse_mapping
from chatrec.core.items import Item, tag_key, tag_vocabulary


def write(tmp_path, name, text):
    p = tmp_path / name
    p.write_text(text, encoding="utf-8")
    return p


def test_csv_with_mapping_and_list_columns(tmp_path):
    p = write(
        tmp_path,
        "products.csv",
        "sku,name,description,labels,price\n"
        'p1,Trail shoe,"Light, grippy shoe for mud",running|outdoor,90\n'
        "p2,Road shoe,Fast shoe for tarmac,running,120\n",
    )
    items = load_catalog(p, parse_mapping(["id=sku", "title=name", "text=description", "tags=labels"]))
    assert [i.id for i in items] == ["p1", "p2"]
    assert items[0].text == "Light, grippy shoe for mud"
    assert items[0].tags == ("running", "outdoor")
    assert items[0].tag_keys == frozenset({"running", "outdoor"})


def test_jsonl_lists_and_numbers(tmp_path):
    rows = [
        {"id": 1, "title": "Alpha", "text": "first", "tags": ["A", "b"], "genres": ["Drama"], "year": "1999"},
        {"id": "2", "title": "Beta", "tags": "x|y", "n_ratings": 3, "mean_rating": 4.5},
    ]
    p = write(tmp_path, "c.jsonl", "\n".join(json.dumps(r) for r in rows) + "\n\n")
    a, b = load_catalog(p)
    assert a.id == "1" and a.year == 1999 and a.all_tags == ("Drama", "A", "b")
    assert b.tags == ("x", "y") and b.n_ratings == 3 and b.mean_rating == 4.5


@pytest.mark.parametrize(
    "name,text,line,fragment",
    [
        ("bad.jsonl", '{"id": "1", "title": "ok"}\n{"id": "2", "title": \n', 2, "invalid JSON"),
        ("bad.jsonl", '{"id": "1", "title": "ok"}\n[1, 2]\n', 2, "expected a JSON object"),
        ("bad.jsonl", '{"id": "1", "title": "ok"}\n{"id": "1", "title": "again"}\n', 2, "duplicate id"),
        ("bad.jsonl", '{"id": "1"}\n', 1, "missing title"),
        ("bad.jsonl", '{"id": "1", "title": "t", "year": "soon"}\n', 1, "bad number"),
        ("bad.jsonl", '{"id": "1", "title": "t", "tags": {"a": 1}}\n', 1, "list"),
        ("bad.csv", "id,title\n1,ok\n2,ok,extra\n", 3, "more fields"),
        ("bad.csv", "id,title,text\n1,ok,x\n2\n", 3, "fewer fields"),
        ("bad.csv", "ident,name\n1,x\n", 1, "no column 'id'"),
        ("bad.csv", '"', 1, "malformed CSV header"),  # an unclosed quote in the header row
    ],
)
def test_malformed_files_name_file_and_line(tmp_path, name, text, line, fragment):
    p = write(tmp_path, name, text)
    with pytest.raises(CatalogError) as info:
        load_catalog(p)
    assert info.value.line == line
    assert str(p) in str(info.value) and f"line {line}" in str(info.value)
    assert fragment in str(info.value)


def test_unreadable_inputs(tmp_path):
    with pytest.raises(CatalogError, match="file not found"):
        load_catalog(tmp_path / "nope.csv")
    with pytest.raises(CatalogError, match="unknown file type"):
        load_catalog(write(tmp_path, "x.txt", "hi"))
    with pytest.raises(CatalogError, match="no items"):
        load_catalog(write(tmp_path, "empty.jsonl", "\n"))
    p = tmp_path / "latin1.csv"
    p.write_bytes("id,title\n1,caf\xe9\n".encode("latin-1"))
    with pytest.raises(CatalogError, match="not UTF-8"):
        load_catalog(p)


def test_mapping_errors():
    with pytest.raises(ValueError, match="FIELD=COLUMN"):
        parse_mapping(["text"])
    with pytest.raises(ValueError, match="unknown field"):
        parse_mapping(["colour=c"])


def test_content_hash_tracks_content_only():
    a = Item(id="1", title="T", text="x", tags=("a",))
    assert a.content_hash() == Item(id="1", title="T", text="x", tags=("a",)).content_hash()
    assert a.content_hash() != Item(id="1", title="T", text="y", tags=("a",)).content_hash()
    assert Item.from_record(a.to_record()) == a


def test_tag_key_and_vocabulary():
    assert tag_key("  Sci-Fi ") == "sci-fi"
    assert tag_key("Dark   Comedy!") == "dark comedy"
    vocab = tag_vocabulary([Item(id="1", title="a", genres=("Comedy",)), Item(id="2", title="b", tags=("comedy",))])
    assert set(vocab) == {"comedy"}


def test_embedding_text_leads_with_title_and_genres():
    item = Item(id="1", title="Alien", year=1979, genres=("Horror", "Sci-Fi"), text="In space.", tags=("creepy",))
    assert item.embedding_text().startswith("Alien (1979). Horror, Sci-Fi. In space.")
    assert "Tags: creepy." in item.embedding_text()
