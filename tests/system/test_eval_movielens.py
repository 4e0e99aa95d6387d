"""MovieLens leave-last-out evaluation: split, metrics, baselines, builder; one slow run on the index."""

from __future__ import annotations

import gzip
import math
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest

from chatrec.builders import ratings as builder
from chatrec.eval import movielens as ml
from chatrec.eval.movielens import Case, Rating

ROOT = Path(__file__).resolve().parents[2]
RATINGS_GZ = ROOT / "data" / "ratings.csv.gz"


def case(user: int, items: str, test: str, rating: float = 4.0) -> Case:
    """A case whose history is ``items`` (one letter each) in time order."""
    return Case(user, tuple(Rating(user, it, rating, t) for t, it in enumerate(items)), test)


# -- split ------------------------------------------------------------------------------------
def test_split_holds_out_the_last_rating_by_time_then_numeric_movie_id():
    ratings = [
        (1, "50", 4.0, 300), (1, "7", 3.0, 100), (1, "9", 5.0, 300), (1, "10", 2.0, 300), (1, "8", 4.0, 200),
        (2, "1", 4.0, 10), (2, "2", 4.0, 5),
        (3, "1", 5.0, 1),  # one rating: skipped
    ]
    cases = ml.leave_last_out(ratings)
    assert [c.user for c in cases] == [1, 2]
    one, two = cases
    # ts 300 ties between 9, 10 and 50: movieId breaks it numerically, so 50 is last.
    assert one.test == "50"
    assert [r.item for r in one.history] == ["7", "8", "9", "10"]
    assert two.test == "1" and [r.item for r in two.history] == ["2"]


# -- metrics ----------------------------------------------------------------------------------
def test_hit_rate_and_ndcg_on_hand_computed_ranks():
    assert ml.rank_of(["a", "b", "c"], "c") == 3
    assert ml.rank_of(["a", "b", "c"], "z") is None
    assert ml.rank_of([str(i) for i in range(20)], "12") is None  # outside the top 10
    assert ml.ndcg(1) == 1.0 and ml.ndcg(3) == 0.5 and ml.ndcg(11) == 0.0 and ml.ndcg(None) == 0.0
    assert ml.ndcg(2) == pytest.approx(1 / math.log2(3))
    assert ml.hit(10) == 1.0 and ml.hit(11) == 0.0 and ml.hit(None) == 0.0
    # Four users: hits at ranks 1 and 3, two misses → HR 2/4, NDCG (1 + 0.5) / 4.
    assert ml.summarize([1, 3, None, None]) == {"hr@10": 0.5, "ndcg@10": 0.375}


# -- baselines --------------------------------------------------------------------------------
# Training counts: a 3, b 2, c 2, d 2, e 1.  cos(a,b) = 2/√6, cos(a,c) = 1/√6, cos(c,d) = 1/2.
TOY = [case(1, "ab", "z"), case(2, "abc", "z"), case(3, "cd", "z"), case(4, "de", "c"), case(5, "a", "z")]


def test_popularity_ranks_by_training_count_and_skips_history():
    assert ml.popularity_order(TOY) == ["a", "b", "c", "d", "e"]
    u4, u5 = ml.popularity_topk(TOY, TOY[3:], k=10)
    assert u4 == ["a", "b", "c"]
    assert u5 == ["b", "c", "d", "e"]


def test_item_knn_ranks_by_summed_cosine_and_skips_history():
    u4, u5 = ml.item_knn_topk(TOY, TOY[3:], k=10)
    assert u4[0] == "c"  # the only item co-rated with d; a and b follow on popularity
    assert u4 == ["c", "a", "b"]
    assert u5[:2] == ["b", "c"]  # 2/√6 > 1/√6; d and e share nothing with a
    for top, c in zip((u4, u5), TOY[3:]):
        assert not set(top) & c.seen
    # The test item c is rank 1 for item-kNN, rank 3 for popularity.
    assert ml.rank_of(u4, "c") == 1 and ml.rank_of(ml.popularity_topk(TOY, TOY[3:4])[0], "c") == 3


def test_baselines_never_train_on_test_items():
    # "t" is only ever a test item: no baseline can recommend it.
    cases = [case(1, "ab", "t"), case(2, "ab", "t"), case(3, "a", "b")]
    for fn in (ml.popularity_topk, ml.item_knn_topk):
        assert all("t" not in top for top in fn(cases, cases))


# -- the system's query -----------------------------------------------------------------------
def test_system_query_likes_events_and_exclusions():
    from chatrec.core.scoring import EVENT_WEIGHTS

    assert (ml.EVENT_LIKE, ml.EVENT_VIEW, ml.EVENT_DISLIKE) == (
        EVENT_WEIGHTS["like"], EVENT_WEIGHTS["view"], EVENT_WEIGHTS["dislike"],
    )
    history = tuple(Rating(1, str(i), 4.5, i) for i in range(25)) + (
        Rating(1, "100", 3.5, 30), Rating(1, "101", 2.5, 31), Rating(1, "102", 4.0, 32),
    )
    q = ml.system_query(Case(1, history, "999"))
    assert list(q.liked_items) == [str(i) for i in range(6, 25)] + ["102"]  # 20 most recent, last last
    assert set(q.liked_items.values()) == {1.0}
    assert q.user_events["0"] == 5.0 and q.user_events["100"] == 1.0 and q.user_events["101"] == -5.0
    assert q.exclude_ids == frozenset(r.item for r in history) and q.text == ""
    cold = ml.system_query(Case(2, (Rating(2, "5", 3.0, 1), Rating(2, "6", 1.0, 2)), "7"))
    assert cold.liked_items == {} and cold.is_cold and cold.user_events == {"5": 1.0, "6": -5.0}


class FakeRecommender:
    """Returns a fixed list; records the queries it saw."""

    def __init__(self, ids):
        self.ids, self.queries, self.likes = ids, [], None

    def use_likes(self, name, likes):
        self.likes = list(likes)

    def recommend(self, query, k=10):
        self.queries.append((query, k))
        return SimpleNamespace(items=[SimpleNamespace(item=SimpleNamespace(id=i)) for i in self.ids[:k]])


def write_ratings(path: Path, lines: list[str]) -> Path:
    with gzip.open(path, "wt", encoding="utf-8", newline="") as fh:
        fh.write("userId,movieId,rating,timestamp\n" + "".join(line + "\n" for line in lines))
    return path


def test_evaluate_reports_rounded_figures_for_the_scored_users(tmp_path):
    path = write_ratings(tmp_path / "r.csv.gz", [
        "1,10,4.0,1", "1,11,5.0,2", "1,12,4.0,3",  # test 12
        "2,10,4.0,1", "2,13,3.0,2",  # test 13
        "3,10,2.0,1", "3,11,4.0,2",  # test 11 (not scored with limit=2)
    ])
    fake = FakeRecommender(["12", "99", "98", "13"])
    out = ml.evaluate(fake, path, limit=2)
    assert out["n_users"] == 2 and len(fake.queries) == 2 and fake.queries[0][1] == 10
    # everyone's behaviour comes from the histories' likes (rating >= 4): never a held-out rating
    assert sorted(item for _, item in fake.likes) == ["10", "10", "11"]
    assert out["hr@10"] == 1.0 and out["ndcg@10"] == round((1 + 1 / math.log2(5)) / 2, 4)
    assert set(out["baselines"]) == {"popularity", "item_knn"}
    assert out["published"]["LlamaRec"] == {"hr@10": 0.1524, "ndcg@10": 0.0759}
    assert out["seconds"] >= 0 and any("leak" in n for n in out["notes"])
    assert "baselines" not in ml.evaluate(fake, path, baselines=False)


# -- loader and builder -----------------------------------------------------------------------
def test_loader_names_file_and_line_of_a_malformed_row(tmp_path):
    path = write_ratings(tmp_path / "bad.csv.gz", ["1,10,4.0,1", "1,11,four,2"])
    with pytest.raises(ValueError, match=rf"{path}:3: malformed"):
        ml.load_ratings(path)
    short = write_ratings(tmp_path / "short.csv.gz", ["1,10,4.0"])
    with pytest.raises(ValueError, match=rf"{short}:2"):
        ml.load_ratings(short)


def fake_source(root: Path) -> Path:
    src = root / "src"
    (src / "movielens-ml-latest-small").mkdir(parents=True)
    (src / "movielens-ml-latest-small" / "ratings.csv").write_bytes(
        b"userId,movieId,rating,timestamp\r\n"
        b"10,5,4.0,200\r\n2,30,3.5,100\r\n2,4,5.0,100\r\n10,1,1.0,100\r\n2,7,2.0,50\r\n"
    )
    return src


def test_builder_is_byte_identical_sorted_and_loadable(tmp_path):
    src = fake_source(tmp_path)
    first, second = tmp_path / "a" / "ml.csv.gz", tmp_path / "b" / "ml.csv.gz"
    assert builder.main(["--source", str(src), "--out", str(first)]) == 0
    assert builder.main(["--source", str(src), "--out", str(second)]) == 0
    assert first.read_bytes() == second.read_bytes()
    assert [p.name for p in first.parent.iterdir()] == ["ml.csv.gz"]  # no temp file left behind
    text = gzip.decompress(first.read_bytes()).decode()
    assert text == "userId,movieId,rating,timestamp\n2,7,2.0,50\n2,4,5.0,100\n2,30,3.5,100\n10,1,1.0,100\n10,5,4.0,200\n"
    assert ml.load_ratings(first)[0] == Rating(2, "7", 2.0, 50)


def test_builder_missing_source_is_one_line_and_exit_2(tmp_path, capsys):
    assert builder.main(["--source", str(tmp_path / "nope"), "--out", str(tmp_path / "o.csv.gz")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ratings file not found:") and err.count("\n") == 1
    assert not (tmp_path / "o.csv.gz").exists()


def test_shipped_ratings_file_matches_the_data_set():
    cases = ml.leave_last_out(ml.load_ratings(RATINGS_GZ))
    assert len(cases) == 610 and sum(len(c.history) + 1 for c in cases) == 100_836


def test_split_metrics_and_baselines_import_no_store_model_or_llm():
    code = (
        "import sys; from chatrec.eval import movielens as m\n"
        "c = m.leave_last_out([(1,'1',4.0,1),(1,'2',4.0,2),(2,'1',4.0,1),(2,'3',4.0,2)])\n"
        "m.summarize([m.rank_of(t, x.test) for t, x in zip(m.item_knn_topk(c, c), c)]); m.popularity_topk(c, c)\n"
        "heavy = ('chromadb', 'torch', 'sentence_transformers', 'llama_cpp', 'langchain_core', 'openai', 'chatrec.adapters', 'chatrec.app')\n"
        "print([k for k in sys.modules if k.startswith(heavy)])\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "[]"


# -- the real recommender ---------------------------------------------------------------------
@pytest.mark.slow
def test_evaluate_on_the_default_index(default_data_dir):
    from conftest import make_app

    out = ml.evaluate(make_app(default_data_dir).recommender, RATINGS_GZ, limit=60)
    assert out["n_users"] == 60
    figures = [out, *out["baselines"].values()]
    for f in figures:
        assert 0.0 <= f["ndcg@10"] <= f["hr@10"] <= 1.0
    assert set(out["baselines"]) == {"popularity", "item_knn"} and out["notes"]
