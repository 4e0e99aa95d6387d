"""The command-line contract on the full default catalogue, through real processes."""

from __future__ import annotations

import json

import pytest

from conftest import run_cli

pytestmark = pytest.mark.slow


def recommend(data_dir, *args):
    proc = run_cli("recommend", *args, "--json", env={"CHATREC_DATA_DIR": str(data_dir)})
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout), proc.stderr


def test_json_contract_and_score_formula(default_data_dir):
    data, _ = recommend(default_data_dir, "a funny animated movie for kids")
    items = data["items"]
    assert len(items) == 10
    for it in items:
        assert {"id", "title", "score", "tags", "breakdown"} <= set(it)
        b = it["breakdown"]
        assert set(b) == {"similarity", "behaviour", "content", "penalty"}
        assert all(0.0 <= b[k] <= 1.0 for k in b)
        expected = 0.5 * b["similarity"] + 0.3 * b["behaviour"] + 0.2 * b["content"] - b["penalty"]
        assert it["score"] == pytest.approx(expected, abs=1e-5)
    scores = [it["score"] for it in items]
    assert scores == sorted(scores, reverse=True)
    # tags include the genres: most of these should be animated
    assert sum("Animation" in it["tags"] for it in items) >= 5


def test_same_input_same_output(default_data_dir):
    a, _ = recommend(default_data_dir, "heist thriller", "--k", "7")
    b, _ = recommend(default_data_dir, "heist thriller", "--k", "7")
    assert a == b and len(a["items"]) == 7


def test_dislike_tag_pushes_items_out_of_the_top(default_data_dir):
    base, _ = recommend(default_data_dir, "a romantic comedy to watch on a date")
    romance_before = sum("Romance" in it["tags"] for it in base["items"])
    assert romance_before >= 5
    after, _ = recommend(default_data_dir, "a romantic comedy to watch on a date", "--dislike-tag", "Romance")
    romance_after = sum("Romance" in it["tags"] for it in after["items"])
    assert romance_after <= 1 < romance_before
    assert all(it["breakdown"]["penalty"] > 0 for it in after["items"] if "Romance" in it["tags"])
    filtered, _ = recommend(
        default_data_dir, "a romantic comedy to watch on a date", "--dislike-tag", "Romance", "--filter-disliked"
    )
    assert not any("Romance" in it["tags"] for it in filtered["items"])


def test_like_tag_raises_content(default_data_dir):
    data, _ = recommend(default_data_dir, "something to watch tonight", "--like-tag", "Horror")
    horror = [it for it in data["items"] if "Horror" in it["tags"]]
    assert len(horror) >= 7
    assert all(it["breakdown"]["content"] == 1.0 for it in horror)


def test_cold_start(default_data_dir):
    data, _ = recommend(default_data_dir, "")
    assert data["cold_start"] is True
    assert len(data["items"]) == 10
    assert all(it["breakdown"]["similarity"] == 0 for it in data["items"])
    human = run_cli("recommend", "", env={"CHATREC_DATA_DIR": str(default_data_dir)})
    assert human.returncode == 0
    assert "No preference known yet" in human.stdout


def test_unknown_tag_warns_with_closest(default_data_dir):
    data, err = recommend(default_data_dir, "space", "--like-tag", "comedyy")
    assert "unknown tag 'comedyy'" in err and "comedy" in err
    assert data["warnings"]


@pytest.mark.parametrize("k", ["0", "-3", "abc", "100000"])
def test_invalid_k_is_a_clear_error(default_data_dir, k):
    proc = run_cli("recommend", "space", "--k", k, env={"CHATREC_DATA_DIR": str(default_data_dir)})
    assert proc.returncode == 2
    assert "--k" in proc.stderr and "Traceback" not in proc.stderr


def test_reindex_unchanged_embeds_nothing(default_data_dir):
    proc = run_cli("index", "--json", env={"CHATREC_DATA_DIR": str(default_data_dir)})
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)
    assert report["embedded"] == 0 and report["total"] == 9742 and report["deleted"] == 0


def test_malformed_catalogue_via_cli(tmp_path):
    bad = tmp_path / "bad.csv"
    bad.write_text("id,title\n1,ok\n2,too,many\n", encoding="utf-8")
    proc = run_cli("index", str(bad), env={"CHATREC_DATA_DIR": str(tmp_path / "d")})
    assert proc.returncode == 2
    assert f"{bad}, line 3" in proc.stderr and "Traceback" not in proc.stderr


def test_unknown_setting_is_a_clear_error(tmp_path):
    proc = run_cli("recommend", "x", env={"CHATREC_DATA_DIR": str(tmp_path), "CHATREC_W_SIMILARTY": "0.4"})
    assert proc.returncode == 2
    assert "CHATREC_W_SIMILARTY" in proc.stderr and "CHATREC_W_SIMILARITY" in proc.stderr


def test_invalid_weight_is_a_clear_error(tmp_path):
    proc = run_cli("recommend", "x", env={"CHATREC_DATA_DIR": str(tmp_path), "CHATREC_W_CONTENT": "-1"})
    assert proc.returncode == 2 and "CHATREC_W_CONTENT" in proc.stderr and "Traceback" not in proc.stderr
