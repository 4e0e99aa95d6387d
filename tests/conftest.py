"""Shared fixtures. Real components: the bundled MiniLM embedder and real Chroma."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from contextlib import contextmanager
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("ANONYMIZED_TELEMETRY", "False")

ROOT = Path(__file__).resolve().parent.parent
CATALOG = ROOT / "data" / "movies.jsonl"
SHARED = ROOT.parent / "shared" / "data"
#: a ReDial sample that ships with the tests (CC BY 4.0; tests/fixtures/redial/README.md), so the ReDial
#: evaluation and tuning run in CI too: the first 24 conversations of valid_100 and the full movie list
REDIAL_FIXTURE = ROOT / "tests" / "fixtures" / "redial"
REDIAL_CONVERSATIONS = REDIAL_FIXTURE / "valid_first24.jsonl"
REDIAL_MOVIES = REDIAL_FIXTURE / "movies_with_mentions.csv"


@pytest.fixture(scope="session")
def embedder(tmp_path_factory):
    """The default embedder (ONNX Runtime, exported and verified once for the session)."""
    from chatrec.adapters.embedder import SentenceEmbedder

    return SentenceEmbedder(cache_dir=tmp_path_factory.mktemp("embed-cache"))


def make_app(data_dir: Path, model=None, state_path: Path | None = None, **settings):
    """The application over ``data_dir`` (real Chroma, real embedder), no LLM unless ``model`` is given,
    with its state in ``state_path`` when given."""
    from chatrec.adapters.sqlite_state import SqliteState
    from chatrec.app import App
    from chatrec.settings import Settings

    state = SqliteState(state_path) if state_path is not None else None
    return App(Settings(data_dir=data_dir, **{"llm": "none", **settings}), state=state, model=model)


@pytest.fixture(scope="session")
def default_app(default_data_dir):
    """The application over the full default catalogue's index, loaded once per test session (tests that
    change its behaviour model put it back)."""
    app = make_app(default_data_dir)
    app.recommender  # noqa: B018 (load the catalogue and the recommender once)
    return app


@pytest.fixture(scope="session")
def movie_records() -> list[dict]:
    with CATALOG.open(encoding="utf-8") as fh:
        return [json.loads(line) for line in fh]


@pytest.fixture
def small_catalog(tmp_path, movie_records) -> Path:
    """The first 120 movies, as a JSONL catalogue of our own."""
    path = tmp_path / "small.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in movie_records[:120]), encoding="utf-8")
    return path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run_cli(*args: str, env: dict | None = None, timeout: float = 600, input: str | None = None):
    """Run ``python -m chatrec`` in a fresh process and return the CompletedProcess."""
    full_env = {**os.environ, **(env or {})}
    return subprocess.run(
        [sys.executable, "-m", "chatrec", *args],
        capture_output=True, text=True, env=full_env, timeout=timeout, input=input, cwd=ROOT,
    )


@pytest.fixture(scope="session")
def default_data_dir(tmp_path_factory) -> Path:
    """A data dir holding the full default catalogue's index, built once per test session
    by the first `recommend` (the fresh-machine path). A developer re-running a few tests may point
    TEST_PREBUILT_DATA_DIR at a data dir built from the same catalogue: it is copied, not rebuilt (CI never
    sets it)."""
    data_dir = tmp_path_factory.mktemp("chatrec-data")
    prebuilt = os.environ.get("TEST_PREBUILT_DATA_DIR")
    if prebuilt:
        shutil.copytree(prebuilt, data_dir, dirs_exist_ok=True,
                        ignore=shutil.ignore_patterns("state.sqlite3*", "history"))
        return data_dir
    proc = run_cli("recommend", "space adventure", "--k", "3", env={"CHATREC_DATA_DIR": str(data_dir)}, timeout=1800)
    assert proc.returncode == 0, proc.stderr
    assert "Building the index" in proc.stderr or "Built the index" in proc.stderr
    return data_dir


def stop_process(proc: subprocess.Popen, grace: float = 20) -> None:
    """Terminate a server the tests started; kill it if it does not stop in time."""
    proc.terminate()
    try:
        proc.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=grace)


def private_data_dir(shared: Path, target: Path) -> Path:
    """A data dir that shares ``shared``'s index (symlinks) but keeps its own state database."""
    target.mkdir(parents=True, exist_ok=True)
    for entry in shared.iterdir():
        if not entry.name.startswith("state.sqlite3"):
            (target / entry.name).symlink_to(entry)
    return target


@contextmanager
def running_ui(data_dir: Path, timeout: float = 180, llm: str = "none"):
    """`chatrec ui --llm LLM` on a free 127.0.0.1 port over ``data_dir``; yields its URL once it answers."""
    port = free_port()
    env = {**os.environ, "CHATREC_DATA_DIR": str(data_dir), "GRADIO_ANALYTICS_ENABLED": "False"}
    proc = subprocess.Popen([sys.executable, "-m", "chatrec", "ui", "--host", "127.0.0.1", "--port", str(port),
                             "--llm", llm], cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True)
    url = f"http://127.0.0.1:{port}/"
    deadline = time.monotonic() + timeout
    try:
        while True:
            if proc.poll() is not None:
                pytest.fail(f"chatrec ui exited early:\n{proc.stdout.read()}")
            try:
                with urllib.request.urlopen(url, timeout=2) as resp:
                    if resp.status == 200:
                        break
            except OSError:
                if time.monotonic() > deadline:
                    pytest.fail("chatrec ui did not come up")
                time.sleep(0.5)
        yield url
    finally:
        stop_process(proc)


def _wait_ready(url: str, proc: subprocess.Popen, limit_s: float = 180) -> None:
    deadline = time.monotonic() + limit_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"llama.cpp server exited with {proc.returncode}")
        try:
            with urllib.request.urlopen(url + "/models", timeout=2) as resp:
                if resp.status == 200:
                    return
        except OSError:
            time.sleep(0.5)
    raise RuntimeError("llama.cpp server did not become ready")


@contextmanager
def running_llama_server(n_ctx: int):
    """``python -m llama_cpp.server`` with the bundled GGUF and an ``n_ctx`` window on a free 127.0.0.1 port;
    yields its /v1 URL once it answers, stops it afterwards."""
    from chatrec.llm.backends import default_gguf

    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "llama_cpp.server", "--model", str(default_gguf()), "--host", "127.0.0.1",
         "--port", str(port), "--n_ctx", str(n_ctx), "--verbose", "False"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}/v1"
    try:
        _wait_ready(url, proc)
        yield url
    finally:
        stop_process(proc)


def chroma_binary() -> str:
    exe = Path(sys.executable).with_name("chroma")
    return str(exe) if exe.exists() else (shutil.which("chroma") or "chroma")


@pytest.fixture
def chroma_server(tmp_path):
    """A real `chroma run` on a free 127.0.0.1 port, stopped after the test; yields its URL."""
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




def fact_lines(text: str, titles) -> bool:
    """Whether ``text`` is what an explanation falls back to: lines that each open with one pick's title (its
    facts: "Alien (1979): The crew of ..."), never the model's words."""
    lines = [line for line in text.splitlines() if line.strip()]
    return bool(lines) and all(any(line.startswith(t) for t in titles) for line in lines)
