"""The server path: a real `chroma run` on 127.0.0.1, started and stopped by the test."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from chatrec.catalogue.importer import load_catalog
from chatrec.recommender import Query, Recommender
from chatrec.settings import Settings
from chatrec.store import ItemStore, StoreError
from conftest import free_port, run_cli

pytestmark = pytest.mark.slow


def chroma_binary() -> str:
    exe = Path(sys.executable).with_name("chroma")
    return str(exe) if exe.exists() else (shutil.which("chroma") or "chroma")


@pytest.fixture
def chroma_server(tmp_path):
    port = free_port()
    log = (tmp_path / "chroma.log").open("w")
    proc = subprocess.Popen(
        [chroma_binary(), "run", "--path", str(tmp_path / "server-db"), "--host", "127.0.0.1", "--port", str(port)],
        stdout=log, stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"chroma run exited: {(tmp_path / 'chroma.log').read_text()}")
        try:
            with urllib.request.urlopen(f"{url}/api/v2/heartbeat", timeout=1):
                break
        except OSError:
            time.sleep(0.2)
    else:
        proc.kill()
        pytest.fail("chroma run did not start within 60 s")
    yield url
    proc.terminate()
    try:
        proc.wait(timeout=15)
    except subprocess.TimeoutExpired:
        proc.kill()
    log.close()


def test_index_and_recommend_through_a_chroma_server(tmp_path, embedder, small_catalog, chroma_server):
    store = ItemStore(tmp_path / "local", "small", chroma_url=chroma_server, embedder=embedder)
    items = load_catalog(small_catalog)
    first = store.index(items)
    assert first.embedded == len(items)
    assert store.index(items).embedded == 0  # incremental over HTTP too
    assert store.info()["count"] == len(items)
    # nothing was written to an embedded Chroma in the data dir
    assert not (tmp_path / "local" / "chroma").exists()

    rec = Recommender(Settings(data_dir=tmp_path / "local", chroma_url=chroma_server), store=store)
    result = rec.recommend(Query(text="toys that come to life"), k=5)
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
        ItemStore(tmp_path, "x", chroma_url=url).info()
    proc = run_cli("recommend", "x", env={"CHATREC_DATA_DIR": str(tmp_path), "CHATREC_CHROMA_URL": url})
    assert proc.returncode == 2 and "cannot reach the Chroma server" in proc.stderr
    assert "Traceback" not in proc.stderr
