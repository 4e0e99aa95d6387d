"""Tests for chatrec.builders.movielens (the data/movies.jsonl builder)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from chatrec.builders.movielens import (
    FIELDS,
    build,
    build_text,
    imdb_id,
    main,
    match_tmdb,
    move_article,
    normalize_for_match,
    order_tags,
    parse_genres,
    parse_title,
    split_parentheses,
)

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


# --------------------------------------------------------------------------- titles


@pytest.mark.parametrize(
    ("raw", "title", "aka", "year"),
    [
        ("Matrix, The (1999)", "The Matrix", [], 1999),
        (
            "City of Lost Children, The (Cité des enfants perdus, La) (1995)",
            "The City of Lost Children",
            ["La Cité des enfants perdus"],
            1995,
        ),
        (
            "Léon: The Professional (a.k.a. The Professional) (Léon) (1994)",
            "Léon: The Professional",
            ["The Professional", "Léon"],
            1994,
        ),
        (
            "Good, the Bad and the Ugly, The (Buono, il brutto, il cattivo, Il) (1966)",
            "The Good, the Bad and the Ugly",
            ["Il Buono, il brutto, il cattivo"],
            1966,
        ),
        (
            "School of Flesh, The (École de la chair, L') (1998)",
            "The School of Flesh",
            ["L'École de la chair"],
            1998,
        ),
        ("Boot, Das (Boat, The) (1981)", "Das Boot", ["The Boat"], 1981),
        ("Vie en Rose, La (Môme, La) (2007)", "La Vie en Rose", ["La Môme"], 2007),
        ("Crow, The: Wicked Prayer (2005)", "The Crow: Wicked Prayer", [], 2005),
        (
            "Final Destination, The (Final Destination 4) (Final Destination in 3-D, The) (2009)",
            "The Final Destination",
            ["Final Destination 4", "The Final Destination in 3-D"],
            2009,
        ),
        (
            "European Vacation (aka National Lampoon's European Vacation) (1985)",
            "European Vacation",
            ["National Lampoon's European Vacation"],
            1985,
        ),
        # odd spacing in the raw data
        ("Blind Side, The  (2009)", "The Blind Side", [], 2009),
        (
            "From Dusk Till Dawn 2: Texas Blood Money (1999) ",
            "From Dusk Till Dawn 2: Texas Blood Money",
            [],
            1999,
        ),
        (
            "Man Escaped, A (Un  condamné à mort s'est échappé ou Le vent souffle où il veut) (1956)",
            "A Man Escaped",
            ["Un condamné à mort s'est échappé ou Le vent souffle où il veut"],
            1956,
        ),
        # parentheses that belong to the title
        ("(500) Days of Summer (2009)", "(500) Days of Summer", [], 2009),
        (
            "Evangelion: 1.0 You Are (Not) Alone (Evangerion shin gekijôban: Jo) (2007)",
            "Evangelion: 1.0 You Are (Not) Alone",
            ["Evangerion shin gekijôban: Jo"],
            2007,
        ),
        # commas that are not moved articles
        ("Monsters, Inc. (2001)", "Monsters, Inc.", [], 2001),
        ("Tinker, Tailor, Soldier, Spy (1979)", "Tinker, Tailor, Soldier, Spy", [], 1979),
        ("What's Up, Doc? (1972)", "What's Up, Doc?", [], 1972),
        # no year, or a year range
        ("Babylon 5", "Babylon 5", [], None),
        ("Death Note: Desu nôto (2006–2007)", "Death Note: Desu nôto", [], 2006),
        # an alternative title equal to the display title is dropped
        ("Heat, The (The Heat) (2013)", "The Heat", [], 2013),
    ],
)
def test_parse_title(raw, title, aka, year):
    assert parse_title(raw) == (title, aka, year)


def test_move_article_variants():
    assert move_article("Atalante, L'") == "L'Atalante"
    assert move_article("Misérables, Les") == "Les Misérables"
    assert move_article("Hip Hop Witch, Da") == "Da Hip Hop Witch"
    assert move_article("Power of Nightmares, The: The Rise of the Politics of Fear") == (
        "The Power of Nightmares: The Rise of the Politics of Fear"
    )
    assert move_article("Oh, God!") == "Oh, God!"
    assert move_article("  Matrix,   The ") == "The Matrix"


def test_split_parentheses():
    assert split_parentheses("A (B) (C (D))") == ("A", ["B", "C (D)"])
    assert split_parentheses("(500)") == ("(500)", [])
    assert split_parentheses("Broken (x") == ("Broken (x", [])


def test_parse_genres():
    assert parse_genres("Action|Sci-Fi|Thriller") == ["Action", "Sci-Fi", "Thriller"]
    assert parse_genres("(no genres listed)") == []
    assert parse_genres("") == []


def test_imdb_id():
    assert imdb_id("0114709") == "tt0114709"
    assert imdb_id("114709") == "tt0114709"
    assert imdb_id("") is None


# --------------------------------------------------------------------------- tags and text


def test_order_tags_counts_then_alphabetical():
    raw = ["Funny", "funny ", "sci-fi", "Sci-Fi", "SCI-FI", "atmospheric", "  ", "Zany"]
    raw.append("dark   comedy")
    assert order_tags(raw) == ["sci-fi", "funny", "atmospheric", "dark comedy", "zany"]
    assert order_tags([]) == []


def test_build_text():
    assert build_text("The Matrix", 1999, "A hacker  learns\nthe truth.") == (
        "The Matrix (1999). A hacker learns the truth."
    )
    assert build_text("The City of Lost Children", 1995, "") == "The City of Lost Children (1995)"
    assert build_text("Babylon 5", None, "") == "Babylon 5"
    assert build_text("Babylon 5", None, "A space station.") == "Babylon 5. A space station."
    assert build_text("What's Up, Doc?", None, "Chaos.") == "What's Up, Doc? Chaos."
    assert build_text("Airplane!", 1980, "  ") == "Airplane! (1980)"


def test_normalize_for_match():
    assert normalize_for_match("Misérables, Les") == "les miserables"
    assert normalize_for_match("Les Misérables") == "les miserables"
    assert normalize_for_match("Mr. & Mrs. Smith") == normalize_for_match("Mr and Mrs Smith")
    assert normalize_for_match("Schindler's List") == "schindlers list"
    assert normalize_for_match("Léon: The Professional") == "leon the professional"


# --------------------------------------------------------------------------- TMDB matching


def _tmdb(title, year, original=None):
    return {"title": title, "original_title": original or title, "year": year}


def test_match_tmdb_rules():
    movies = {
        1: {"title": "Linked", "aka": [], "year": 2000},
        2: {"title": "Exact", "aka": [], "year": 2001},
        3: {"title": "Near", "aka": [], "year": 2002},  # no tmdbId in links: ±1 allowed
        4: {"title": "Near Other", "aka": [], "year": 2002},  # links names another id: exact only
        5: {"title": "Linked", "aka": [], "year": 2000},  # would reuse the id-linked row
        6: {"title": "Twin", "aka": [], "year": 2005},  # two ML movies claim one row
        7: {"title": "Twin", "aka": [], "year": 2005},
        8: {"title": "Remade", "aka": [], "year": 1990},  # title not unique in TMDB: no ±1
        9: {"title": "Original Name Film", "aka": ["Nom Original"], "year": 2010},
    }
    links = {1: 100, 2: 999, 3: None, 4: 998, 5: None, 6: None, 7: None, 8: None, 9: None}
    tmdb = {
        100: _tmdb("Linked", 2000),
        200: _tmdb("Exact", 2001),
        300: _tmdb("Near", 2003),
        400: _tmdb("Near Other", 2003),
        600: _tmdb("Twin", 2005),
        800: _tmdb("Remade", 1991),
        801: _tmdb("Remade", 2015),
        900: _tmdb("Something Else", 2010, original="Nom Original"),
    }
    matched, counts = match_tmdb(movies, links, tmdb)
    assert matched == {1: 100, 2: 200, 3: 300, 9: 900}
    assert counts == {"tmdb_by_id": 1, "tmdb_by_title_year": 3, "tmdb_by_title_year_pm1": 1}


# --------------------------------------------------------------------------- CLI errors


def test_missing_source_is_a_clean_error(tmp_path, capsys):
    code = main(["--source", str(tmp_path / "nope"), "--out", str(tmp_path / "m.jsonl")])
    err = capsys.readouterr().err
    assert code == 2
    assert "source folder not found" in err and "Traceback" not in err
    assert not (tmp_path / "m.jsonl").exists()


def test_missing_file_is_a_clean_error(tmp_path, capsys):
    (tmp_path / "movielens-ml-latest-small").mkdir()
    code = main(["--source", str(tmp_path), "--out", str(tmp_path / "m.jsonl")])
    err = capsys.readouterr().err
    assert code == 2
    assert "tmdb_5000_movies.csv" in err and "ratings.csv" in err
    assert not (tmp_path / "m.jsonl").exists()


# --------------------------------------------------------------------------- real build


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    if not SHARED_DATA.is_dir():
        pytest.skip(f"raw data sets not available at {SHARED_DATA} (only present in the dev tree)")
    out_dir = tmp_path_factory.mktemp("catalogue")
    first, second = out_dir / "a" / "movies.jsonl", out_dir / "b" / "movies.jsonl"
    counts = build(SHARED_DATA, first)
    build(SHARED_DATA, second)
    return counts, first, second


def test_real_build(built):
    counts, first, second = built
    raw = first.read_bytes()
    assert raw == second.read_bytes(), "two builds from the same input must be byte-identical"
    lines = raw.decode("utf-8").splitlines()
    assert len(lines) == 9742
    records = [json.loads(line) for line in lines]
    assert all(tuple(r) == FIELDS for r in records)
    ids = [int(r["id"]) for r in records]
    assert len(set(ids)) == len(ids) and ids == sorted(ids)

    assert counts["movies"] == 9742
    assert counts["tmdb_by_id"] >= 3500
    assert counts["tmdb_matched"] == counts["tmdb_by_id"] + counts["tmdb_by_title_year"]
    assert counts["with_ratings"] == sum(1 for r in records if r["n_ratings"])
    assert counts["with_tags"] == sum(1 for r in records if r["tags"])

    matrix = next(r for r in records if r["id"] == "2571")
    assert matrix["title"] == "The Matrix"
    assert matrix["year"] == 1999
    assert "Sci-Fi" in matrix["genres"]
    assert matrix["overview"] and matrix["keywords"]
    assert matrix["text"].startswith("The Matrix (1999). ")
    assert matrix["imdb_id"] == "tt0133093" and matrix["tmdb_id"] == 603
    assert matrix["n_ratings"] > 0 and 0.5 <= matrix["mean_rating"] <= 5.0

    lost_children = next(r for r in records if r["id"] == "29")
    assert lost_children["title"] == "The City of Lost Children"
    assert lost_children["aka"] == ["La Cité des enfants perdus"]
