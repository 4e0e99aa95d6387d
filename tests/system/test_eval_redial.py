"""The ReDial protocol: cases, fresh-only, metrics, catalogue join; and the command on real data."""

from __future__ import annotations

import json
from collections import Counter

import pytest

from chatrec.core.items import Item
from chatrec.eval import redial
from conftest import REDIAL_CONVERSATIONS, REDIAL_MOVIES, run_cli

CONV = {
    "conversationId": "c1",
    "initiatorWorkerId": 1,
    "respondentWorkerId": 2,
    "movieMentions": {"10": "Alien  (1979)", "20": "Heat (1995)", "30": "Up (2009)"},
    "initiatorQuestions": {"10": {"liked": 1}, "20": {"liked": 0}, "30": {"liked": 2}},
    "messages": [
        {"senderWorkerId": 2, "text": "Have you seen @10 ?"},  # respondent, but no earlier message
        {"senderWorkerId": 1, "text": "I loved @10 but I hated @20"},
        {"senderWorkerId": 2, "text": "Then try @30 or @10"},
        {"senderWorkerId": 1, "text": "ok"},
        {"senderWorkerId": 2, "text": "@99 is unknown, @30 again"},
    ],
}


def test_cases_follow_the_protocol():
    all_cases = list(redial.cases(CONV, fresh_only=False))
    assert [c.targets for c in all_cases] == [["30", "10"], ["30"]]
    first = all_cases[0]
    assert first.context[-1] == ("user", "I loved Alien (1979) but I hated Heat (1995)")  # names, not @ids
    assert first.earlier == {"10", "20"}
    fresh = list(redial.cases(CONV, fresh_only=True))
    assert [c.targets for c in fresh] == [["30"]]  # @10 was mentioned before; @30 again is not fresh


def test_the_recommenders_earlier_picks_seed_later_cases():
    """The system plays the recommender: titles it named earlier are context seeds (at the setting's
    weight) unless the seeker liked or disliked them; the seeker's own titles go to the profile."""
    from types import SimpleNamespace

    from chatrec.llm.extract import Extractor
    from chatrec.reading.rules import RuleExtractor, Vocabulary
    from chatrec.reading.titles import TitleIndex

    titles = TitleIndex([("10", "Alien", 1979, 0.9, ()), ("20", "Heat", 1995, 0.9, ()), ("30", "Up", 2009, 0.9, ()),
                         ("40", "Jaws", 1975, 0.9, ())])
    conv = {
        "conversationId": "c2", "initiatorWorkerId": 1, "respondentWorkerId": 2,
        "movieMentions": {"10": "Alien (1979)", "20": "Heat (1995)", "30": "Up (2009)", "40": "Jaws (1975)"},
        "messages": [
            {"senderWorkerId": 1, "text": "Hi, I want a movie tonight"},
            {"senderWorkerId": 2, "text": "Have you seen @10 ?"},
            {"senderWorkerId": 1, "text": "No. I hated @20 though"},
            {"senderWorkerId": 2, "text": "Then try @30"},
            {"senderWorkerId": 1, "text": "ok"},
            {"senderWorkerId": 2, "text": "Or @40 or @20"},
        ],
    }
    extractor = Extractor(RuleExtractor(Vocabulary({}, titles)))
    rec = SimpleNamespace(genres_of=lambda ids: {})
    ranker = redial.ProductRanker(rec, extractor, fresh_only=True, context_seed=0.5)
    opening, first, second = (ranker.query(c) for c in redial.cases(conv, True))
    assert opening.context_items == {}
    assert first.context_items == {"10": 0.5} and "20" in first.exclude_ids
    assert second.context_items == {"10": 0.5, "30": 0.5}  # "Up (2009)": one common word, read by its year
    off = redial.ProductRanker(rec, extractor, fresh_only=True, context_seed=0.0)
    assert all(not off.query(c).context_items for c in redial.cases(conv, True))


def test_metrics():
    m = redial.metrics([1, 5, 40, None])
    assert m["n_pairs"] == 4
    assert m["recall@1"] == 0.25 and m["recall@10"] == 0.5 and m["recall@50"] == 0.75
    assert m["ndcg@10"] == pytest.approx(round((1 + 1 / 2.584963) / 4, 4), abs=1e-4)
    assert m["mrr"] == pytest.approx(round((1 + 0.2 + 1 / 40) / 4, 4))


def test_join_catalogue_by_title_and_year():
    enriched = [Item(id="1", title="Alien", year=1979, genres=("Horror", "Sci-Fi"), n_ratings=100),
                Item(id="2", title="The Heat", year=2013, genres=("Comedy",)),
                Item(id="3", title="Up", year=2009, genres=("Animation",))]
    movies = [("10", "Alien", 1979, 5), ("20", "Heat", 1995, 3), ("30", "Up", 2010, 1), ("40", "Up", None, 1)]
    items, counts = redial.join_catalogue(movies, enriched)
    by_id = {it.id: it for it in items}
    assert by_id["10"].genres == ("Horror", "Sci-Fi") and by_id["10"].popularity == 5.0
    assert by_id["20"].genres == ()  # "Heat (1995)" is not "The Heat (2013)": title-only
    assert by_id["30"].genres == ("Animation",)  # year off by one
    assert by_id["40"].genres == ("Animation",)  # no year, unambiguous title
    assert counts["matched"] == 3 and counts["match_rate"] == 0.75


def test_join_catalogue_third_pass_matches_subtitles_and_spellings_but_not_lookalikes():
    enriched = [Item(id="1", title="Jumanji: Welcome to the Jungle", year=2017, genres=("Adventure",)),
                Item(id="2", title="Avengers: Infinity War - Part I", year=2018, genres=("Action",)),
                Item(id="3", title="Old Boy", year=2003, genres=("Thriller",)),
                Item(id="4", title="Diary of the Dead", year=2007, genres=("Horror",)),
                Item(id="5", title="The Blair Witch Project", year=1999, genres=("Horror",)),
                Item(id="6", title="Wild Oats", year=2016, genres=("Comedy",)),
                Item(id="7", title="Jumanji", year=1995, genres=("Fantasy",))]
    movies = [("10", "Jumanji", 2017, 9), ("20", "Avengers: Infinity War", 2018, 5), ("30", "Oldboy", 2003, 3),
              ("40", "Day of the Dead", 2008, 1), ("50", "The Blair Witch Project", 1999, 4),
              ("60", "The Blair Bitch Project", 1999, 1), ("70", "Wild", 2016, 2), ("80", "Jumanji", 1995, 7)]
    items, counts = redial.join_catalogue(movies, enriched)
    by_id = {it.id: it for it in items}
    assert by_id["10"].genres == ("Adventure",)  # the 2017 film, not the 1995 one
    assert by_id["80"].genres == ("Fantasy",)
    assert by_id["20"].genres == ("Action",)  # a title up to the subtitle's " - "
    assert by_id["30"].genres == ("Thriller",)  # a near-identical spelling, same year
    assert by_id["40"].genres == ()  # another year and another film
    assert by_id["50"].genres == ("Horror",) and by_id["60"].genres == ()  # taken by the exact match
    assert by_id["70"].genres == ()  # "Wild" is not the start of a subtitle of "Wild Oats"
    assert counts["matched_loose"] == 3 and counts["matched"] == 5


def test_join_catalogue_fourth_pass_gives_duplicate_ids_their_film():
    enriched = [Item(id="1", title="The Notebook", year=2004, genres=("Romance",)),
                Item(id="2", title="Anchorman: The Legend of Ron Burgundy", year=2004, genres=("Comedy",)),
                Item(id="3", title="Star Wars: Episode IV - A New Hope", year=1977, genres=("Sci-Fi",)),
                Item(id="4", title="Star Wars: Episode V - The Empire Strikes Back", year=1980, genres=("Sci-Fi",))]
    movies = [("10", "The Notebook", 2004, 200), ("11", "The Notebook", 2013, 137),  # a wrong-year duplicate id
              ("20", "Anchorman: The Legend of Ron Burgundy", 2004, 90), ("21", "Anchorman", None, 131),
              ("30", "Star Wars: Episode IV - A New Hope", 1977, 50), ("31", "Star Wars: Episode V - The Empire Strikes Back",
                                                                         1980, 40),
              ("32", "Star Wars", None, 141),  # names two films: stays title-only
              ("40", "The Notebook", None, 3),
              ("50", "Flatliners", 2017, 9)]  # no film of that title at all
    items, counts = redial.join_catalogue(movies, enriched)
    by_id = {it.id: it for it in items}
    assert by_id["11"].genres == ("Romance",) and by_id["11"].extra == {"source_id": "1"}
    assert by_id["11"].year == 2013 and by_id["11"].popularity == 137.0  # its own name and mentions
    assert by_id["21"].genres == ("Comedy",)  # the title up to the subtitle, no year given
    assert by_id["32"].genres == () and by_id["50"].genres == ()
    assert by_id["40"].genres == ("Romance",)  # no year, one film of that title (the first pass)
    assert by_id["10"].genres == ("Romance",)
    assert counts["matched_twin"] == 2 and counts["matched"] == 7


def test_popularity_ranker_skips_earlier_mentions_when_fresh_only():
    ranker = redial.PopularityRanker(Counter({"10": 9, "30": 5, "20": 1}), fresh_only=True)
    case = next(redial.cases(CONV, fresh_only=True))
    assert ranker.rank(case, k=2) == ["30"]  # 10 and 20 were mentioned earlier


def test_movie_names_parse_with_double_spaces():
    assert redial.parse_movie_name("Bridesmaids  (2011)") == ("Bridesmaids", 2011)
    assert redial.parse_movie_name("How to Train Your Dragon ") == ("How to Train Your Dragon", None)
    assert redial.parse_movie_name("Why Him%3F (2016)") == ("Why Him?", 2016)  # the file URL-encodes some


def test_sentiment_pairs_read_the_seekers_words():
    class Fake:
        def extract(self, text, history=()):
            from chatrec.core.preferences import MentionedItem, Preferences

            items = [MentionedItem(title="Alien", id="10", sentiment=0.8),
                     MentionedItem(title="Heat", id="20", sentiment=-0.7)]
            return Preferences(items=items)

    assert sorted(redial.sentiment_pairs(CONV, Fake())) == [(0, -0.7), (1, 0.8)]
    assert redial.macro_f1([0, 1, 1], [0, 1, 1]) == 1.0


def test_bad_input_is_a_clear_error(tmp_path):
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"messages": []}\n')
    with pytest.raises(redial.RedialError, match="bad.jsonl:1"):
        redial.load_conversations(bad)


@pytest.mark.slow
def test_eval_redial_command_on_real_conversations(default_data_dir):
    proc = run_cli(
        "eval", "redial", "--conversations", str(REDIAL_CONVERSATIONS),
        "--movies", str(REDIAL_MOVIES), "--fresh-only", "--limit", "15",
        "--baselines", "--json", env={"CHATREC_DATA_DIR": str(default_data_dir)}, timeout=1500,
    )
    assert proc.returncode == 0, proc.stderr
    data = json.loads(proc.stdout)
    for key in ("n_pairs", "recall@1", "recall@10", "recall@50", "ndcg@10", "mrr"):
        assert key in data
    assert data["n_pairs"] > 10 and 0 <= data["recall@1"] <= data["recall@10"] <= data["recall@50"] <= 1
    assert set(data["baselines"]) == {"popularity", "embedding"}
    assert 0.4 < data["catalogue_match"]["match_rate"] <= 1
    # the user's active collection is untouched by the evaluation
    assert json.loads((default_data_dir / "active.json").read_text())["collection"] == "movies"
