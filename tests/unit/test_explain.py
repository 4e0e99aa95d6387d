"""The template of the picks' facts (what an explanation falls back to) shows the weights applied."""

from __future__ import annotations

from chatrec.core.items import Item
from chatrec.core.scoring import Breakdown
from chatrec.llm.explain import template
from chatrec.reading.titles import TitleIndex
from chatrec.recommend.results import Recommendation


def _recs():
    items = [Item(id="1", title="Alien", year=1979, genres=("Horror", "Sci-Fi"),
                  text="Alien (1979). The crew of a space tug meets a deadly creature.", keywords=("spaceship",)),
             Item(id="2", title="Toy Story", year=1995, genres=("Animation",),
                  text="Toy Story (1995). A cowboy doll is threatened by a new spaceman toy.")]
    return [Recommendation(it, Breakdown(0.9, 0.8, 0.5, 0.0, 0.79, ("sci-fi",))) for it in items]


TITLES = TitleIndex([("1", "Alien", 1979, 0.9, ()), ("2", "Toy Story", 1995, 0.9, ()),
                     ("9", "The Godfather", 1972, 0.9, ())])


def test_template_shows_the_weights_applied():
    text = template(_recs(), (0.6, 0.25, 0.15))
    assert "0.6·S 0.90 + 0.25·B 0.80 + 0.15·C 0.50" in text and "0.5·S" not in text
    assert "1. Alien (1979)" in text


# The explainer (scripted answers, the review, the metrics) is tested in test_explain_lines.py.
