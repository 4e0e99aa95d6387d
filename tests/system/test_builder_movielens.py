"""Tests for chatrec.builders.movielens (the data/movies.jsonl builder)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from chatrec.builders.movielens import (
    FIELDS,
    build,
    build_text,
    first_by_id,
    fix_mojibake,
    fix_mojibake_runs,
    imdb_id,
    main,
    match_tmdb,
    match_tmdb10k,
    move_article,
    normalize_for_match,
    order_tags,
    parse_genres,
    parse_pipe_list,
    parse_runtime,
    parse_title,
    pick_sources,
    split_parentheses,
    trusted_enriched,
)

SHARED_DATA = Path(__file__).resolve().parents[2].parent / "shared" / "data"


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


# --------------------------------------------------------------------------- people and runtime


@pytest.mark.parametrize(
    ("raw", "fixed"),
    [
        ("LÃ©a Seydoux", "Léa Seydoux"),
        ("Alejandro GonzÃ¡lez IÃ±Ã¡rritu", "Alejandro González Iñárritu"),
        ("Ã“lafur Darri Ã“lafsson", "Ólafur Darri Ólafsson"),
        ("Tatjana PajkoviÄ‡", "Tatjana Pajković"),
        ("Jordi MollÃ\xa0", "Jordi Mollà"),  # the "à" ends in a no-break space
        # left as they are: correct already, plain ASCII, or a byte was lost (no cp1252 char)
        ("Léa Seydoux", "Léa Seydoux"),
        ("Guillermo del Toro", "Guillermo del Toro"),
        ("ToshirÅ Mifune", "ToshirÅ Mifune"),
        ("Miguel Ãngel Vivas", "Miguel Ãngel Vivas"),
        ("黒澤明", "黒澤明"),
        ("", ""),
    ],
)
def test_fix_mojibake(raw, fixed):
    assert fix_mojibake(raw) == fixed


def test_fix_mojibake_runs_repairs_what_it_can_in_a_text():
    text = "her fiancÃ©, from â€œcaptureâ€ to â€œkillâ€"
    # the closing quote lost its last byte: only that run stays as it was
    assert fix_mojibake_runs(text) == "her fiancé, from “captureâ€ to “killâ€"
    assert fix_mojibake(text) == text  # all or nothing on the whole string
    assert fix_mojibake_runs("Already fine: naïve café.") == "Already fine: naïve café."


def test_parse_pipe_list():
    assert parse_pipe_list("Tom Hanks|Tim Allen| Don Rickles |") == ["Tom Hanks", "Tim Allen", "Don Rickles"]
    assert parse_pipe_list("") == []
    assert parse_pipe_list(" | |") == []
    # de-duplicated, first occurrence kept in place
    assert parse_pipe_list("Jim Cummings|Travis Oates|Jim Cummings|Bud Luckey") == [
        "Jim Cummings", "Travis Oates", "Bud Luckey"
    ]
    # repaired per name, before stripping (else the no-break space of "Ã\xa0" is lost)
    assert parse_pipe_list("Michael B. Jordan|Phylicia RashÄd|Tessa Thompson|Michael PeÃ±a", repair=True) == [
        "Michael B. Jordan", "Phylicia RashÄd", "Tessa Thompson", "Michael Peña"
    ]
    assert parse_pipe_list("Irene MontalÃ\xa0|Bud Smith \t", repair=True) == ["Irene Montalà", "Bud Smith"]
    assert parse_pipe_list("LÃ©a Seydoux") == ["LÃ©a Seydoux"]  # no repair unless asked
    # two spellings that become one name after the repair
    assert parse_pipe_list("PenÃ©lope Cruz|Penélope Cruz", repair=True) == ["Penélope Cruz"]


@pytest.mark.parametrize(
    ("raw", "minutes"),
    [("81", 81), ("152.0", 152), (" 2 ", 2), ("900", 900), ("1440", 1440),
     ("0", None), ("", None), ("-5", None), ("1441", None), ("nan", None), ("inf", None), ("n/a", None)],
)
def test_parse_runtime(raw, minutes):
    assert parse_runtime(raw) == minutes


def test_trusted_enriched_only_where_tmdb_id_is_the_links_one():
    assert trusted_enriched("862", 862)
    assert trusted_enriched("862.0", 862)
    assert not trusted_enriched("8844", 862)  # title search found another film
    assert not trusted_enriched("", 862)
    assert not trusted_enriched("862", None)  # links.csv gives no tmdbId
    assert not trusted_enriched("", None)


def test_first_by_id_keeps_the_first_row_of_a_repeated_id():
    rows = [(42194, {"v": "first"}), (1, {"v": "one"}), (42194, {"v": "second"}), (42194, {"v": "third"})]
    kept, repeated = first_by_id(rows)
    assert kept == {42194: {"v": "first"}, 1: {"v": "one"}}
    assert list(kept) == [42194, 1]
    assert repeated == [42194]
    assert first_by_id([]) == ({}, [])


def test_match_tmdb10k_by_id_then_unambiguous_imdb():
    rows = {
        10: {"imdb_id": "tt0000010"},
        20: {"imdb_id": "tt0000020"},  # same film as links' tmdbId 99 (not among the rows)
        30: {"imdb_id": "tt0000030"},  # linked by id to movie 3, so never taken by IMDb id
        40: {"imdb_id": "tt0000040"},  # two rows share this IMDb id: ambiguous
        41: {"imdb_id": "tt0000040"},
        50: {"imdb_id": "tt0000050"},  # two movies claim it
        60: {"imdb_id": None},
    }
    links = {1: 10, 2: 99, 3: 30, 4: None, 5: None, 6: 98, 7: 97}
    imdb = {1: "tt0000010", 2: "tt0000020", 3: "tt0000030", 4: "tt0000030", 5: "tt0000040",
            6: "tt0000050", 7: "tt0000050"}
    matched, counts = match_tmdb10k(links, links, imdb, rows)
    assert matched == {1: 10, 3: 30, 2: 20}
    assert counts == {"tmdb10k_by_id": 2, "tmdb10k_by_imdb": 1}


def test_pick_sources_per_field_tmdb10k_first():
    t10 = {"directors": ["A Director"], "cast": [], "runtime": None, "overview": "From tmdb-10k."}
    en = {"directors": ["Other Spelling"], "cast": ["X", "Y", "Z"], "runtime": 95, "overview": "Enriched."}
    picked = pick_sources(t10, en)
    assert picked["directors"] == (["A Director"], "tmdb10k")
    assert picked["cast"] == (["X", "Y", "Z"], "enriched")  # tmdb-10k matched with an empty cast
    assert picked["runtime"] == (95, "enriched")
    assert picked["overview"] == ("From tmdb-10k.", "tmdb10k")
    assert pick_sources(None, None) == {k: (None, None) for k in ("directors", "cast", "runtime", "overview")}
    assert pick_sources(None, en)["directors"] == (["Other Spelling"], "enriched")


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
    assert "tmdb-movies.csv" in err and "movies_enriched.csv" in err
    assert not (tmp_path / "m.jsonl").exists()


def test_missing_column_in_a_new_source_is_a_clean_error(tmp_path, capsys):
    if not SHARED_DATA.is_dir():
        pytest.skip(f"raw data sets not available at {SHARED_DATA}")
    for sub in ("movielens-ml-latest-small", "tmdb-5000", "tmdb-ml-enriched"):
        (tmp_path / sub).symlink_to(SHARED_DATA / sub)
    (tmp_path / "tmdb-10k").mkdir()
    (tmp_path / "tmdb-10k" / "tmdb-movies.csv").write_text("id,imdb_id,cast\n1,tt0000001,A\n")
    code = main(["--source", str(tmp_path), "--out", str(tmp_path / "m.jsonl")])
    err = capsys.readouterr().err
    assert code == 2
    assert "tmdb-movies.csv: missing column(s) director, keywords, overview, runtime" in err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1
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


def _by_id(records: list[dict]) -> dict[str, dict]:
    return {r["id"]: r for r in records}


@pytest.fixture(scope="module")
def records(built):
    _, first, _ = built
    return _by_id([json.loads(line) for line in first.read_text(encoding="utf-8").splitlines()])


def test_real_build_people(built, records):
    counts, _, _ = built
    toy_story = records["1"]
    assert toy_story["directors"] == ["John Lasseter"]
    assert toy_story["cast"][0] == "Tom Hanks" and len(toy_story["cast"]) == 5
    assert toy_story["runtime"] == 81
    assert list(toy_story)[6:10] == ["keywords", "directors", "cast", "runtime"]

    dark_knight = records["58559"]
    assert dark_knight["directors"] == ["Christopher Nolan"]
    assert "Christian Bale" in dark_knight["cast"] and "Heath Ledger" in dark_knight["cast"]
    assert dark_knight["runtime"] == 152

    # names the checker compares exactly with TMDB's spelling
    assert "Bruce Willis" in records["1370"]["cast"]  # Die Hard 2
    assert records["2959"]["directors"] == ["David Fincher"]  # Fight Club
    assert "Stanley Kubrick" in records["1258"]["directors"]  # The Shining

    # repaired mojibake: "Alejandro GonzÃ¡lez IÃ±Ã¡rritu", "Jordi MollÃ\\xa0", "Michael PeÃ±a"
    assert records["139385"]["directors"] == ["Alejandro González Iñárritu"]  # The Revenant
    assert "Jordi Mollà" in records["6548"]["cast"]  # Bad Boys II
    assert "Michael Peña" in records["134130"]["cast"]  # The Martian
    assert not any("Ã" in n for n in records["139385"]["cast"] + records["6548"]["cast"])

    # before 1960 only the enrichment knows the film: first director, top 3 actors
    seven_samurai = records["2019"]
    assert seven_samurai["directors"] == ["Akira Kurosawa"]
    assert "Toshirō Mifune" in seven_samurai["cast"] and len(seven_samurai["cast"]) <= 3

    # several directors, all kept in TMDB order
    assert records["1136"]["directors"] == ["Terry Gilliam", "Terry Jones"]  # Monty Python and the Holy Grail

    values = list(records.values())
    assert all(isinstance(r["directors"], list) and isinstance(r["cast"], list) for r in values)
    assert all(len(r["cast"]) <= 5 for r in values)
    assert all(n == n.strip() and n for r in values for n in r["directors"] + r["cast"])
    assert all(len(set(r["cast"])) == len(r["cast"]) for r in values)
    assert all(r["runtime"] is None or (isinstance(r["runtime"], int) and 0 < r["runtime"] <= 1440)
               for r in values)

    assert counts["with_directors"] == sum(1 for r in values if r["directors"])
    assert counts["with_cast"] == sum(1 for r in values if r["cast"])
    assert counts["with_runtime"] == sum(1 for r in values if r["runtime"] is not None)
    # the shared README: about 8,050 of the 9,742 movies get a director and at least one actor
    assert 7900 <= counts["with_directors_and_cast"] <= 8200
    assert counts["tmdb10k_by_id"] >= 6200 and counts["tmdb10k_by_imdb"] >= 1
    assert counts["tmdb10k_repeated_ids"] == 1
    assert 5400 <= counts["enriched_trusted"] <= 5460
    assert counts["names_repaired"] > 500


def test_real_build_text_fallback(records):
    # TMDB 5000 keeps its overview and keywords where it matched ...
    assert records["2571"]["tmdb_id"] == 603 and records["2571"]["keywords"][:2] == ["saving the world", "artificial intelligence"]
    # ... and the films it lacks get tmdb-10k's (Jumanji) or the enrichment's
    jumanji = records["2"]
    assert jumanji["tmdb_id"] is None
    assert jumanji["overview"].startswith("When siblings Judy and Peter discover an enchanted board game")
    assert "board game" in jumanji["keywords"]
    assert jumanji["text"].startswith("Jumanji (1995). When siblings Judy and Peter")
    values = list(records.values())
    assert all("\n" not in r["overview"] for r in values if r["tmdb_id"] is None)
