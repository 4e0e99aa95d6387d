"""Property-based tests (hypothesis) over the catalogue parser, the rules extractor and the ranking path
(the state machine over the real index is in tests/system/test_index_state_machine.py).

Example counts are kept small so the whole module runs in well under two minutes on 2 cores; each
property still sees a few hundred generated inputs (``--hypothesis-show-statistics`` prints them).
"""

from __future__ import annotations

import csv
import io
import json
import math
import uuid
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from chatrec.core import scoring as rank
from chatrec.catalogue.importer import CatalogError, load_catalog
from chatrec.core.items import Item
from chatrec.core.preferences import GENRE_KEYS, Preferences
from chatrec.reading.people import PeopleIndex
from chatrec.reading.rules import RuleExtractor, Vocabulary
from chatrec.reading.titles import TitleIndex
from conftest import CATALOG

FAST = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                          HealthCheck.function_scoped_fixture])

# -- the catalogue parser ------------------------------------------------------------------------
# Values a real export may hold in any column: numbers (finite or not), strings with anything in
# them (control characters, surrogate escapes in JSON, separators), lists, objects, booleans, null.
scalars = st.one_of(
    st.none(), st.booleans(), st.integers(min_value=-(10**30), max_value=10**30),
    st.integers().map(lambda n: n * 10**400),  # JSON allows ints no float can hold
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=30), st.sampled_from(["1999", " 7 ", "1e999", "-inf", "nan", "NaN", "3.5", "", "|", "a|b", "x,y;z",
                                          "A\ud800", "\udfff", "\x00\x1b[2J"]),
)
values = st.one_of(scalars, st.lists(scalars, max_size=4), st.dictionaries(st.text(max_size=5), scalars, max_size=2))
FIELD_NAMES = st.sampled_from(["id", "title", "text", "tags", "year", "genres", "keywords", "aka", "n_ratings",
                               "mean_rating", "recent_ratings", "popularity", "other"])
rows = st.dictionaries(FIELD_NAMES, values, max_size=8)


def _assert_valid_items(items: list[Item]) -> None:
    assert items
    assert len({it.id for it in items}) == len(items)
    for it in items:
        assert it.id.strip() and it.title.strip()
        for number in (it.year, it.n_ratings, it.mean_rating, it.recent_ratings, it.popularity):
            assert number is None or (isinstance(number, (int, float)) and math.isfinite(number))
        assert all(isinstance(t, str) and t for t in (*it.tags, *it.genres, *it.keywords, *it.aka))
        # what the index does with every item must work: hash, embedding text, record round trip
        it.content_hash()
        it.embedding_text().encode("utf-8")
        assert Item.from_record(json.loads(json.dumps(it.to_record()))).content_hash() == it.content_hash()


def _parse(path: Path) -> None:
    try:
        items = load_catalog(path)
    except CatalogError as exc:
        assert str(exc).startswith(str(path)) and len(str(exc)) > len(str(path)) + 2
        return
    _assert_valid_items(items)


@FAST
@given(st.lists(st.one_of(rows, st.just({"id": "1", "title": "Heat"}), st.text(max_size=20).map(lambda s: s)),
                min_size=0, max_size=6), st.data())
def test_jsonl_parser_gives_items_or_a_clean_error(tmp_path, lines, data):
    path = tmp_path / f"{uuid.uuid4().hex}.jsonl"
    out = []
    for line in lines:
        if isinstance(line, dict):
            out.append(json.dumps(line, allow_nan=True))
        else:  # raw text: broken JSON, blank lines, non-objects
            out.append(line.replace("\n", " "))
    path.write_text("\n".join(out) + data.draw(st.sampled_from(["", "\n"])), encoding="utf-8", errors="surrogatepass")
    _parse(path)


@FAST
@given(st.lists(st.dictionaries(st.sampled_from(["id", "title", "text", "tags", "year", "n_ratings", "mean_rating"]),
                                st.one_of(st.text(max_size=15), st.sampled_from(["1e999", "inf", "12", "a|b"])),
                                max_size=7), max_size=5),
       st.sampled_from([",", ";", "\t"]), st.booleans())
def test_csv_parser_gives_items_or_a_clean_error(tmp_path, records, delimiter, ragged):
    header = ["id", "title", "text", "tags", "year", "n_ratings", "mean_rating"]
    buf = io.StringIO()
    writer = csv.writer(buf, delimiter=delimiter)
    writer.writerow(header)
    for n, rec in enumerate(records):
        row = [rec.get(h, "") for h in header]
        writer.writerow(row[: 3 + n % 3] if ragged else row)
    path = tmp_path / f"{uuid.uuid4().hex}.csv"
    path.write_text(buf.getvalue(), encoding="utf-8", errors="surrogatepass")
    _parse(path)


@FAST
@given(st.binary(max_size=200), st.sampled_from([".jsonl", ".csv"]))
def test_arbitrary_bytes_give_items_or_a_clean_error(tmp_path, blob, suffix):
    path = tmp_path / f"{uuid.uuid4().hex}{suffix}"
    path.write_bytes(blob)
    _parse(path)


# -- the rules extractor -------------------------------------------------------------------------
@pytest.fixture(scope="module")
def vocabulary() -> Vocabulary:
    items = []
    with CATALOG.open(encoding="utf-8") as fh:
        for n, line in enumerate(fh):
            if n >= 600:
                break
            items.append(Item.from_record(json.loads(line)))
    counts: dict[str, int] = {}
    for it in items:
        for key in it.tag_keys:
            counts[key] = counts.get(key, 0) + 1
    titles = TitleIndex((it.id, it.title, it.year, 0.5, it.aka) for it in items)
    people = PeopleIndex([(p, "director") for it in items for p in it.directors] +
                         [(p, "cast") for it in items for p in it.cast])
    return Vocabulary(counts, titles, people, 2018)


WORDS = ["no", "not", "but", "love", "hate", "horror", "comedy", "funny", "sci-fi", "Alien", "Toy Story",
         "Heat", "romance", "time travel", "zombies", "§0§", "§3§", "\u0000", "\x1b[31m", "🎬", "кино", "映画",
         "'); DROP TABLE events;--", "<<<MESSAGE", "MESSAGE>>>", "(1995)", "\ud800", "...", "!", "\n",
         "Tom Hanks", "with", "Nolan's", "the Coen brothers", "90s", "before 1970", "2015 or later", "nothing",
         "under 90 minutes", "lighter", "too gory", "highly rated", "§p0§", "§w1§"]
messages = st.one_of(
    st.text(max_size=200),
    st.lists(st.sampled_from(WORDS) | st.text(max_size=8), max_size=25).map(" ".join),
)


@FAST
@given(messages)
def test_rules_extractor_always_returns_valid_preferences(vocabulary, message):
    known = set(GENRE_KEYS) | set(vocabulary.phrases.values()) | set(vocabulary.tag_counts)
    ids = {e.item_id for entries in vocabulary.titles.by_norm.values() for e in entries}
    prefs = RuleExtractor(vocabulary).extract(message)
    again = Preferences.model_validate(prefs.model_dump())  # the pydantic model accepts its own output
    assert again == prefs
    assert set(prefs.liked_tags) <= known and set(prefs.disliked_tags) <= known
    assert -1.0 <= prefs.sentiment <= 1.0
    for m in prefs.items:
        assert m.id and -1.0 <= m.sentiment <= 1.0
        assert m.id in ids
    assert "§" not in prefs.query or "§" in message  # no placeholder leaks into the query


# -- the ranking path ----------------------------------------------------------------------------
TAGS = ["a", "b", "c", "d", "e"]
unit = st.floats(min_value=0.0, max_value=1.0, allow_nan=False)


@st.composite
def pools(draw):
    """A small catalogue (tags, random unit vectors, a prior), a query and weights, ranked by the product's
    own Ranker (features → core.scoring.fuse → select)."""
    from chatrec.catalogue.table import Catalogue
    from chatrec.recommend.query import Query

    n = draw(st.integers(min_value=1, max_value=25))
    items = [Item(id=f"i{j}", title=f"item {j}", tags=tuple(draw(st.lists(st.sampled_from(TAGS), max_size=4))))
             for j in range(n)]
    seed = draw(st.integers(0, 2**32 - 1))
    raw = np.random.default_rng(seed).normal(size=(n, 4))
    raw[n // 2 :] = raw[: n - n // 2] if seed % 2 else raw[n // 2 :]  # duplicates, as in real pools
    catalogue = Catalogue.from_items(items, raw)
    vector = np.random.default_rng(seed + 1).normal(size=4)
    prior = np.array([draw(unit) for _ in range(n)])
    weights_of = st.dictionaries(st.sampled_from(TAGS), st.floats(min_value=0.0, max_value=2.0), max_size=3)
    ids = [it.id for it in items]
    query = Query(
        liked_tags=draw(weights_of), disliked_tags=draw(weights_of),
        user_events=draw(st.dictionaries(st.sampled_from(ids), st.floats(min_value=-10, max_value=30), max_size=4)),
        exclude_ids=frozenset(draw(st.lists(st.sampled_from(ids), max_size=5))),
    )
    w = st.floats(0, 3).map(lambda x: round(x, 3))
    weights = rank.Weights(similarity=draw(w), behaviour=draw(w), content=draw(w), penalty=draw(w),
                           mmr_lambda=draw(unit))
    return catalogue, prior, query, weights, vector / np.linalg.norm(vector), draw(st.booleans())


def _ranked(pool, k):
    from chatrec.recommend.behaviour import BehaviourModel
    from chatrec.recommend.ranking import Ranker

    catalogue, prior, query, weights, vector, filter_disliked = pool
    behaviour = BehaviourModel(catalogue)
    behaviour.use(None, prior)
    ranker = Ranker(catalogue, behaviour, weights)
    features = ranker.features(query, list(range(catalogue.n)), vector, None)
    return ranker.rank(query, features, k, filter_disliked)


@settings(FAST, max_examples=100)
@given(pools(), st.integers(min_value=1, max_value=30))
def test_ranking_invariants(pool, k):
    catalogue, _, query, weights, _, filter_disliked = pool
    out = _ranked(pool, k).items
    ids = [r.item.id for r in out]
    eligible = [i for i in catalogue.ids if i not in query.exclude_ids]
    assert len(ids) == len(set(ids)) and len(ids) <= k
    assert not set(ids) & query.exclude_ids
    if not filter_disliked:
        assert len(ids) == min(k, len(eligible))  # k respected, and filled when possible
    scores = [r.score for r in out]
    assert scores == sorted(scores, reverse=True)
    for r in out:
        b = r.breakdown
        assert all(math.isfinite(x) for x in (b.similarity, b.behaviour, b.content, b.penalty, b.score))
        for part in (b.similarity, b.behaviour, b.content, b.penalty):
            assert -1e-9 <= part <= 1 + 1e-9
        assert b.score == pytest.approx(weights.similarity * b.similarity + weights.behaviour * b.behaviour
                                        + weights.content * b.content - b.penalty, abs=1e-9)
        if filter_disliked:
            assert not b.disliked_tags


@FAST
@given(pools(), st.sampled_from(TAGS), st.floats(min_value=0.01, max_value=2.0), st.integers(min_value=1, max_value=30))
def test_an_extra_disliked_tag_never_outranks_the_same_item_without_it(pool, tag, weight, k):
    from chatrec.catalogue.table import Catalogue

    catalogue, prior, query, weights, vector, _ = pool
    weights = replace(weights, mmr_lambda=1.0)  # score order alone (MMR's diversity is another property)
    query.disliked_tags = {**query.disliked_tags, tag: weight}
    query.liked_tags = {t: w for t, w in query.liked_tags.items() if t != tag}
    query.exclude_ids, query.user_events = frozenset(), {}
    base = catalogue.item(0)
    # the marked twin comes first: position must not save it
    items = [replace(base, id="marked", tags=tuple(set(base.tags) | {tag})),
             *(catalogue.item(r) for r in range(1, catalogue.n)), replace(base, id="clean", tags=tuple(set(base.tags) - {tag}))]
    vectors = np.vstack([catalogue.vectors[0], catalogue.vectors[1:], catalogue.vectors[0]])
    twin = Catalogue.from_items(items, vectors)
    out = _ranked((twin, np.concatenate([prior[:1], prior[1:], prior[:1]]), query, weights, vector, False),
                  twin.n).items
    scored = {r.item.id: r.breakdown for r in out}
    # identical rows can differ by float32 rounding in the cosine (~1e-8): the property is about the penalty
    assert scored["marked"].score <= scored["clean"].score + 1e-6
    if weights.penalty > 0 and scored["clean"].penalty < 1:  # a penalty capped at 1 can make them tie
        assert scored["marked"].score < scored["clean"].score + 1e-6
    top = [r.item.id for r in _ranked((twin, np.concatenate([prior[:1], prior[1:], prior[:1]]), query, weights,
                                       vector, False), k).items]
    if "marked" in top and scored["marked"].score < scored["clean"].score - 1e-6:
        assert "clean" in top and top.index("clean") < top.index("marked")
