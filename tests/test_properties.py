"""Property-based tests (hypothesis) over the catalogue parser, the rules extractor, the pure ranker
and, as a state machine, the item store on real embedded Chroma with the real embedder.

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
from hypothesis import HealthCheck, assume, given, settings, strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

from chatrec import rank
from chatrec.catalog import CatalogError, Item, load_catalog
from chatrec.llm.extract import GENRE_KEYS, Preferences, RuleExtractor, Vocabulary
from chatrec.titles import TitleIndex
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
    return Vocabulary(counts, titles)


WORDS = ["no", "not", "but", "love", "hate", "horror", "comedy", "funny", "sci-fi", "Alien", "Toy Story",
         "Heat", "romance", "time travel", "zombies", "§0§", "§3§", "\u0000", "\x1b[31m", "🎬", "кино", "映画",
         "'); DROP TABLE events;--", "<<<MESSAGE", "MESSAGE>>>", "(1995)", "\ud800", "...", "!", "\n"]
messages = st.one_of(
    st.text(max_size=200),
    st.lists(st.sampled_from(WORDS) | st.text(max_size=8), max_size=25).map(" ".join),
)


@FAST
@given(messages)
def test_rules_extractor_always_returns_valid_preferences(vocabulary, message):
    known = set(GENRE_KEYS) | set(vocabulary.phrases.values())
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


# -- the pure ranker -----------------------------------------------------------------------------
TAGS = ["a", "b", "c", "d", "e"]
unit = st.floats(min_value=0.0, max_value=1.0, allow_nan=False)


@st.composite
def pools(draw):
    n = draw(st.integers(min_value=1, max_value=25))
    cands = [rank.Candidate(
        id=f"i{j}", cosine=draw(st.floats(min_value=-1.0, max_value=1.0)),
        tags=frozenset(draw(st.lists(st.sampled_from(TAGS), max_size=4))), global_engagement=draw(unit),
    ) for j in range(n)]
    weights_of = st.dictionaries(st.sampled_from(TAGS), st.floats(min_value=0.0, max_value=2.0), max_size=3)
    request = rank.RankRequest(
        liked_tags=draw(weights_of), disliked_tags=draw(weights_of),
        user_events=draw(st.dictionaries(st.sampled_from([c.id for c in cands]),
                                         st.floats(min_value=-10, max_value=30), max_size=4)),
        exclude_ids=frozenset(draw(st.lists(st.sampled_from([c.id for c in cands]), max_size=5))),
        filter_disliked=draw(st.booleans()),
    )
    w = st.floats(0, 3).map(lambda x: round(x, 3))
    weights = rank.Weights(similarity=draw(w), behaviour=draw(w), content=draw(w), penalty=draw(w),
                           mmr_lambda=draw(unit))
    vecs = None
    seed = draw(st.none() | st.integers(0, 2**32 - 1))
    if seed is not None:  # item vectors for MMR: random unit rows (duplicates included, as in real pools)
        raw = np.random.default_rng(seed).normal(size=(n, 4))
        raw[n // 2 :] = raw[: n - n // 2] if seed % 2 else raw[n // 2 :]
        vecs = raw / np.linalg.norm(raw, axis=1, keepdims=True)
    return cands, request, weights, vecs


@settings(FAST, max_examples=100)
@given(pools(), st.integers(min_value=1, max_value=30))
def test_ranking_invariants(pool, k):
    cands, request, weights, vecs = pool
    out = rank.rank(cands, request, k, weights, vecs)
    ids = [r.id for r in out]
    eligible = [c for c in cands if c.id not in request.exclude_ids]
    assert len(ids) == len(set(ids)) and len(ids) <= k
    assert not set(ids) & request.exclude_ids
    if not request.filter_disliked:
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
        if request.filter_disliked:
            assert not b.disliked_tags


@FAST
@given(pools(), st.sampled_from(TAGS), st.floats(min_value=0.01, max_value=2.0), st.integers(min_value=1, max_value=30))
def test_an_extra_disliked_tag_never_outranks_the_same_item_without_it(pool, tag, weight, k):
    cands, request, weights, _ = pool
    request.disliked_tags = {**request.disliked_tags, tag: weight}
    request.liked_tags = {t: w for t, w in request.liked_tags.items() if t != tag}
    base = cands[0]
    clean = replace(base, id="clean", tags=base.tags - {tag})
    marked = replace(base, id="marked", tags=base.tags | {tag})
    request.exclude_ids = request.exclude_ids - {"clean", "marked"}
    request.user_events = {}
    pool_ = [*cands[1:], marked, clean]  # the marked twin comes first: position must not save it
    breakdowns = {r.id: r.breakdown for r in rank.score_candidates(pool_, request, weights)}
    scored = {i: b.score for i, b in breakdowns.items()}
    assert scored["marked"] <= scored["clean"]
    if weights.penalty > 0 and breakdowns["clean"].penalty < 1:  # a penalty capped at 1 can make them tie
        assert scored["marked"] < scored["clean"]
    out = [r.id for r in rank.rank(pool_, request, k, weights)]
    if "marked" in out and scored["marked"] < scored["clean"]:
        assert "clean" in out and out.index("clean") < out.index("marked")


# -- the item store as a state machine -----------------------------------------------------------
POOL_SIZE = 30


@pytest.fixture(scope="module")
def store_pool(embedder):
    """~30 real catalogue items and the shared (ONNX, verified) embedder."""
    items = []
    with CATALOG.open(encoding="utf-8") as fh:
        for n, line in enumerate(fh):
            if n % 300 == 0:
                items.append(Item.from_record(json.loads(line)))
            if len(items) == POOL_SIZE:
                break
    return items, embedder


class StoreMachine(RuleBasedStateMachine):
    """The model is a dict id → Item; every operation goes through ItemStore's public ``index`` API
    (add = index with one more item, update = changed text, delete = index without it, re-index =
    the same list again or ``rebuild=True``). Invariants compare Chroma with the model."""

    pool: list[Item] = []
    embedder = None
    root: Path | None = None
    k = 5

    def __init__(self):
        super().__init__()
        from chatrec.store import ItemStore

        self.store = ItemStore(self.root, f"c{uuid.uuid4().hex[:12]}", embedder=self.embedder, batch_size=7)
        self.model: dict[str, Item] = {}
        self.version: dict[str, int] = {}
        self.vectors: dict[str, np.ndarray] = {}
        self.indexed = False

    def _index(self, rebuild: bool = False) -> None:
        report = self.store.index(list(self.model.values()), rebuild=rebuild)
        assert report.total == len(self.model)
        self.indexed = True

    @rule(n=st.integers(min_value=0, max_value=POOL_SIZE - 1))
    def add(self, n):
        item = self.pool[n]
        assume(item.id not in self.model)
        self.model[item.id] = item
        self._index()

    @rule(n=st.integers(min_value=0, max_value=POOL_SIZE - 1), words=st.sampled_from(
        ["Now with dragons.", "A heist in space.", "", "Zombies on a train.", "🎬 кино"]))
    def update(self, n, words):
        ident = self.pool[n].id
        assume(ident in self.model)
        self.version[ident] = self.version.get(ident, 0) + 1
        self.model[ident] = replace(self.pool[n], text=f"{self.pool[n].text} {words} v{self.version[ident]}")
        self._index()

    @rule(n=st.integers(min_value=0, max_value=POOL_SIZE - 1))
    def delete(self, n):
        ident = self.pool[n].id
        assume(ident in self.model)
        del self.model[ident]
        self._index()

    @rule(rebuild=st.booleans())
    def reindex(self, rebuild):
        self._index(rebuild=rebuild)

    def _vector(self, item: Item) -> np.ndarray:
        text = item.embedding_text()
        if text not in self.vectors:
            self.vectors[text] = self.embedder.encode([text])[0]
        return self.vectors[text]

    @invariant()
    def chroma_matches_the_model(self):
        if not self.indexed:
            return
        coll = self.store._get_collection()
        assert coll.count() == len(self.model)
        got = coll.get(include=["metadatas"])
        assert len(got["ids"]) == len(set(got["ids"])) == len(self.model)
        assert set(got["ids"]) == set(self.model)
        for ident, meta in zip(got["ids"], got["metadatas"]):
            assert meta["hash"] == self.model[ident].content_hash()
        assert self.store.is_ready()

    @invariant()
    def table_matches_the_model(self):
        if not self.indexed or not self.model:
            return
        table = self.store.table()
        assert {it.id for it in table.items} == set(self.model)
        for it, row in zip(table.items, table.matrix):
            assert it == self.model[it.id]
            assert float(row @ self._vector(it)) > 0.9999

    @invariant()
    def top_k_recall_against_brute_force(self):
        if not self.indexed or not self.model:
            return
        ids = sorted(self.model)
        matrix = np.vstack([self._vector(self.model[i]) for i in ids])
        for probe in ids[:2]:
            q = matrix[ids.index(probe)] * 0.7 + matrix[-1] * 0.3
            q = q / np.linalg.norm(q)
            k = min(self.k, len(ids))
            exact = {ids[j] for j in np.argsort(-(matrix @ q), kind="stable")[:k]}
            got = {i for i, _ in self.store.query(q, k)}
            assert len(got) == k
            assert len(got & exact) / k >= 0.8, (got, exact)


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_item_store_state_machine(store_pool, tmp_path):
    items, embedder = store_pool
    StoreMachine.pool, StoreMachine.embedder, StoreMachine.root = items, embedder, tmp_path / "store"
    StoreMachine.TestCase.settings = settings(max_examples=12, stateful_step_count=12, deadline=None,
                                              suppress_health_check=list(HealthCheck))
    StoreMachine.TestCase().runTest()
