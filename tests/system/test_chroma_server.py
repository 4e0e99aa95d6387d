"""The server path: a real `chroma run` on 127.0.0.1, started and stopped by the test."""

from __future__ import annotations

import json

import pytest

from chatrec.adapters.chroma import ChromaIndex
from chatrec.app import App
from chatrec.catalogue.importer import load_catalog
from chatrec.ports import StoreError
from chatrec.recommend.query import Query
from chatrec.settings import Settings
from conftest import free_port, run_cli

pytestmark = pytest.mark.slow


def test_index_and_recommend_through_a_chroma_server(tmp_path, embedder, small_catalog, chroma_server):
    app = App(Settings(data_dir=tmp_path / "local", chroma_url=chroma_server), "small", embedder=embedder)
    items = load_catalog(small_catalog)
    first = app.index.build(items)
    assert first.embedded == len(items)
    assert app.index.build(items).embedded == 0  # incremental over HTTP too
    assert app.index.info()["count"] == len(items)
    # nothing was written to an embedded Chroma in the data dir
    assert not (tmp_path / "local" / "chroma").exists()
    result = app.recommender.recommend(Query(text="toys that come to life"), k=5)
    assert result.items[0].item.title == "Toy Story"


def test_cli_uses_the_server_when_a_url_is_set(tmp_path, small_catalog, chroma_server):
    env = {"CHATREC_DATA_DIR": str(tmp_path / "d"), "CHATREC_CHROMA_URL": chroma_server}
    proc = run_cli("index", str(small_catalog), "--json", env=env)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["embedded"] == 120
    proc = run_cli("recommend", "toys that come to life", "--k", "3", "--json", env=env)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["items"][0]["title"] == "Toy Story"


def test_unreachable_server_is_a_clear_error(tmp_path):
    url = f"http://127.0.0.1:{free_port()}"
    with pytest.raises(StoreError, match="cannot reach the Chroma server"):
        ChromaIndex("x", url=url).exists()
    proc = run_cli("recommend", "x", env={"CHATREC_DATA_DIR": str(tmp_path), "CHATREC_CHROMA_URL": url})
    assert proc.returncode == 2 and "cannot reach the Chroma server" in proc.stderr
    assert "Traceback" not in proc.stderr
