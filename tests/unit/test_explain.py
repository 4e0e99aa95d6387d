"""Explanations: each line reviewed against its pick's facts; what fails is replaced, never shown."""

from __future__ import annotations

import pytest

from fakes import ScriptedModel as ScriptedBackend

from chatrec.core.items import Item
from chatrec.core.scoring import Breakdown
from chatrec.llm.backends import LLMError
from chatrec.llm.explain import Explainer, template
from chatrec.reading.titles import TitleIndex
from chatrec.recommend.results import Recommendation


def _recs():
    items = [Item(id="1", title="Alien", year=1979, genres=("Horror", "Sci-Fi")),
             Item(id="2", title="Toy Story", year=1995, genres=("Animation",))]
    return [Recommendation(it, Breakdown(0.9, 0.8, 0.5, 0.0, 0.79, ("sci-fi",))) for it in items]


TITLES = TitleIndex([("1", "Alien", 1979, 0.9, ()), ("2", "Toy Story", 1995, 0.9, ()),
                     ("9", "The Godfather", 1972, 0.9, ())])


def test_explanation_streams_and_passes_check():
    backend = ScriptedBackend("1. Alien fits your sci-fi mood. 2. Toy Story is light fun.")
    ex = Explainer(backend, TITLES)
    chunks = list(ex.stream(_recs(), "scary space"))
    assert len(chunks) > 5 and all(c.kind == "token" for c in chunks)
    assert ex.last_fallback_reason is None
    prompt = backend.calls[0][1][-1][1]
    assert "<<<PICKS" in prompt and "Alien (1979)" in prompt


@pytest.mark.parametrize("answer,reason", [
    ("1. Alien. 2. Also try The Godfather, a classic.", "not in the list"),
    ("Watch Jaws (1975) instead.", "not in the list"),
    ("", "empty"),
    (LLMError("timeout"), "LLM failed"),
])
def test_bad_explanations_fall_back_to_the_template(answer, reason):
    ex = Explainer(ScriptedBackend(answer), TITLES)
    text = ex.explain_text(_recs(), "x")
    assert reason in ex.last_fallback_reason
    assert text == template(_recs())
    assert "1. Alien (1979)" in text and "0.5·S 0.90" in text


def test_no_backend_means_template():
    ex = Explainer(None, TITLES)
    assert ex.explain_text(_recs()) == template(_recs())


def test_echoed_delimiters_are_dropped_from_the_stream():
    from chatrec.llm.explain import strip_markers

    def run(pieces):
        return "".join(strip_markers(iter(pieces)))

    assert run(["<<<", "PIC", "KS\n", "1. Heat", " (1995) fits\n", "2. X\n", "PICKS", ">>>"]) == \
        "1. Heat (1995) fits\n2. X\n"
    assert run(["1. A", "BC fits\n", "<", "<<REQUEST\nfoo"]) == "1. ABC fits\nfoo"
    assert run(["OK"]) == "OK" and run(["I think ", "<<<x"]) == "I think <<<x"
    # token by token: ordinary text is not held back
    assert list(strip_markers(iter(["1.", " Heat", " fits"]))) == ["1.", " Heat", " fits"]


def test_a_genre_word_that_is_also_a_title_is_not_an_off_list_title():
    titles = TitleIndex([("1", "Heat", 1995, 0.5, ()), ("9", "Romance", 1999, 0.9, ())])
    item = Item(id="1", title="Heat", year=1995, genres=("Crime", "Romance"))
    rec = Recommendation(item, Breakdown(0.9, 0.5, 0.5, 0.0, 0.7, ("romance",)))
    explainer = Explainer(None, titles)
    assert explainer.check("1. Heat (1995) — Crime, Romance; a tense classic", [rec]) is None
    plain = Recommendation(Item(id="1", title="Heat", year=1995, genres=("Crime",)), Breakdown(0.9, 0.5, 0.5, 0.0, 0.7))
    assert explainer.check("1. Heat fits, and so does Romance (1999)", [plain]) is not None


def test_a_listed_title_with_a_made_up_year_is_rejected():
    rec = Recommendation(Item(id="1", title="Alien", year=1979, genres=("Horror",)), Breakdown(0.9, 0.5, 0.5, 0.0, 0.7))
    explainer = Explainer(None)
    assert explainer.check("1. Alien (1979) — a horror classic in space", [rec]) is None
    assert "wrong year" in explainer.check("1. Alien (2007) — a horror classic in space", [rec])


# -- the review: each line about a pick states only that pick's facts ------------------------------

def _three():
    """Three picks with different facts: Alien is close and popular, Heat neither, Toy Story popular only."""
    return [
        Recommendation(Item(id="1", title="Alien", year=1979, genres=("Horror", "Sci-Fi"), tags=("space",)),
                       Breakdown(0.9, 0.8, 0.5, 0.0, 0.79, ("sci-fi", "space"))),
        Recommendation(Item(id="2", title="Heat", year=1995, genres=("Action", "Crime"), tags=("heist",)),
                       Breakdown(0.4, 0.2, 0.5, 0.0, 0.35, ("heist",))),
        Recommendation(Item(id="3", title="Toy Story", year=1995, genres=("Animation", "Comedy")),
                       Breakdown(0.3, 0.9, 0.0, 0.0, 0.42)),
    ]


def _reviewed(answer: str):
    ex = Explainer(ScriptedBackend(answer), TITLES)
    chunks = list(ex.stream(_three(), "x"))
    text = ""
    for c in chunks:
        text = c.text if c.kind == "replace" else text + c.text
    return ex, chunks, text


@pytest.mark.parametrize("bad_line,kind", [
    ("2. Heat (1995) — Animation, Comedy; a fun one", "wrong genre"),  # the next pick's genres, shifted
    ("2. Alien (1979) — Horror, Sci-Fi; a classic", "another pick's title"),  # pick 1 again under number 2
    ("2. Heat (1995) — Action, Crime; popular and well rated", "unsupported claim"),  # B is 0.2
    ("2. Heat (1995) — Action, Crime; close to what you asked for", "unsupported claim"),  # S is 0.4
    ("2. Heat (1995) — Action, Crime; matches space", "wrong tag"),  # Alien's matched tag
    ("2. Heat (2007) — Action, Crime; a tense one", "wrong year"),
])
def test_a_false_line_is_replaced_by_its_facts_and_the_rest_stays(bad_line, kind):
    good1 = "1. Alien (1979) — Horror, Sci-Fi; a space horror classic"
    good3 = "3. Toy Story (1995) — a popular Animation for the family"
    ex, chunks, text = _reviewed(f"{good1}\n{bad_line}\n{good3}")
    assert ex.last_fallback_reason is None
    assert [r.kind for r in ex.last_repairs] == [kind], ex.last_repairs
    assert chunks[-1].kind == "replace" and sum(c.kind == "replace" for c in chunks) == 1
    assert text.splitlines() == [good1, "2. Heat (1995) — Action, Crime; matches heist", good3]
    assert ex.check(text, _three()) is None  # what is shown holds no false statement


def test_true_lines_pass_untouched():
    answer = ("Here are your picks.\n1. Alien (1979) — a Sci-Fi horror classic, close to what you asked for\n"
              "2. Heat (1995) — a Crime story with no Romance and not a Comedy; matches heist\n"
              "3. Toy Story (1995) — popular Animation")
    ex, chunks, text = _reviewed(answer)
    assert ex.last_repairs == () and ex.last_fallback_reason is None
    assert all(c.kind == "token" for c in chunks) and text.strip() == answer


def test_a_title_word_is_not_a_genre_claim():
    rec = Recommendation(Item(id="7", title="War Horse", year=2011, genres=("Drama",)), Breakdown(0.9, 0.7, 0, 0, 0.7))
    assert Explainer(None).check("1. War Horse (2011) — a Drama about a horse", [rec]) is None
    assert "not a genre" in Explainer(None).check("1. War Horse (2011) — a War drama", [rec])


def test_genres_of_any_catalogue_are_facts_to_check():
    # a product catalogue: its categories are its genres
    recs = [Recommendation(Item(id="a", title="Kettle Pro", genres=("Kitchen",)), Breakdown(0.9, 0.7, 0, 0, 0.7)),
            Recommendation(Item(id="b", title="Trail Boots", genres=("Outdoor",)), Breakdown(0.9, 0.7, 0, 0, 0.7))]
    ex = Explainer(None)
    assert ex.check("1. Kettle Pro — great in the Kitchen\n2. Trail Boots — Outdoor gear", recs) is None
    assert "not a genre of Kettle Pro" in ex.check("1. Kettle Pro — Outdoor gear\n2. Trail Boots — Outdoor", recs)


def test_picks_the_model_skipped_are_appended_without_redrawing():
    ex, chunks, text = _reviewed("1. Alien (1979) fits your sci-fi mood.")
    assert all(c.kind == "token" for c in chunks)
    lines = text.strip().splitlines()
    assert lines[0].startswith("1. Alien (1979) fits") and lines[1].startswith("2. Heat (1995) — Action, Crime")
    assert lines[2].startswith("3. Toy Story (1995)") and len(lines) == 3


def test_numbered_items_on_one_line_are_read_one_by_one():
    ex, chunks, text = _reviewed("1. Alien fits your sci-fi mood. 2. Heat is a Crime story. 3. Toy Story is fun.")
    assert ex.last_repairs == () and all(c.kind == "token" for c in chunks)
    ex, chunks, text = _reviewed("1. Alien fits your sci-fi mood. 2. Heat is a Comedy. 3. Toy Story is fun.")
    assert [r.kind for r in ex.last_repairs] == ["wrong genre"]
    assert "2. Heat (1995) — Action, Crime" in text and "1. Alien fits your sci-fi mood." in text


def test_a_line_about_no_pick_is_dropped():
    ex, chunks, text = _reviewed("1. Alien (1979) — Sci-Fi\n2. Heat (1995) — Crime\n3. Toy Story (1995) — fun\n"
                                 "4. popular among fans")
    assert [r.kind for r in ex.last_repairs] == ["no such pick"]
    assert "4." not in text and text.count("\n") == 2


def test_an_answer_with_no_true_line_becomes_the_template():
    ex, chunks, text = _reviewed("1. Alien (1979) — Comedy\n2. Heat (1995) — Animation\n3. Toy Story (1995) — War")
    assert ex.last_fallback_reason.startswith("no line was right")
    assert text == template(_three())


def test_an_echoed_delimiter_one_bracket_short_is_dropped():
    from chatrec.llm.explain import strip_markers
    assert "".join(strip_markers(iter(["1. Heat fits\n", "PICKS>>"]))) == "1. Heat fits\n"
    assert "".join(strip_markers(iter(["<<PICKS\n", "1. Heat fits"]))) == "1. Heat fits"
