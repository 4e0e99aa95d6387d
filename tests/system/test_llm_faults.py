"""LLM faults that tests/test_llm_hosted.py does not cover, each through a whole engine turn or the
real CLI: truncated JSON and a stream cut mid-answer (real HTTP server on 127.0.0.1), context
overflow for the local model and for a real ``llama_cpp.server`` with a smaller window than
configured, and a missing, garbage or truncated GGUF file. Every turn must still be answered (rules
extraction, template explanation), with a note where the user should know, and bounded attempts."""

from __future__ import annotations

import time

import pytest

from chatrec.llm.backends import LocalBackend, OpenAIBackend, default_gguf
from conftest import private_data_dir, run_cli, running_llama_server, fact_lines
from fake_openai import FaultServer

pytestmark = pytest.mark.slow


@pytest.fixture
def fault_server():
    servers = []

    def make(answer):
        servers.append(FaultServer(answer))
        return servers[-1]

    yield make
    for s in servers:
        s.close()


@pytest.fixture(scope="module")
def recommender(default_data_dir):
    return default_data_dir  # the engines below are built over this data dir


def engine_with(data_dir, backend, tmp_path, extractor="union"):
    from conftest import make_app

    return make_app(data_dir, model=backend, state_path=tmp_path / "state.sqlite3", extractor=extractor).engine


def answered(engine, text):
    """One whole turn; returns (reply, final text). The turn must rank and explain every pick."""
    session = engine.session("u")
    reply = engine.turn(session, text)
    final = reply.text()
    assert reply.kind == "picks" and len(reply.recommendations) == engine.k
    assert final.strip()
    return reply, final


# -- hosted: truncated JSON, cut stream ----------------------------------------------------------
@pytest.mark.timeout(120)
def test_truncated_json_and_a_cut_stream_still_answer_the_turn(recommender, fault_server, tmp_path, monkeypatch):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    server = fault_server(lambda body, headers: (200, '{"likes": ["Hor', False) if not body.get("stream")
                          else (200, "The first pick fits your mood because it", True))
    backend = OpenAIBackend("m", base_url=server.url, timeout=5, retries=2)
    engine = engine_with(recommender, backend, tmp_path)
    t0 = time.monotonic()
    reply, text = answered(engine, "a scary movie, no comedy")
    assert time.monotonic() - t0 < 30
    prefs = reply.preferences
    assert prefs["liked_tags"] == ["horror"] and prefs["disliked_tags"] == ["comedy"]  # the rules
    assert any("LLM unavailable" in n and "JSON" in n for n in reply.notes)  # the user is told
    # A stream cut mid-sentence (no finish_reason, no [DONE]) must not stand as the explanation.
    assert "stopped before the model finished" in (reply.outcome.fallback_reason or ""), text
    assert fact_lines(text, [r.item.display_title for r in reply.recommendations])
    # truncated JSON is not a transient fault: one extraction request, one stream, no retries
    assert len(server.requests) == 2, [bool(r.get("stream")) for r in server.requests]


# -- context overflow ------------------------------------------------------------------------------
LONG = "I want a funny movie about " + " ".join(f"word{i}" for i in range(215)) + " but no horror please"


@pytest.mark.timeout(300)
def test_local_model_context_overflow_is_trimmed_not_fatal(recommender, tmp_path):
    """A message longer than the whole window (llm_ctx=512) through extraction and explanation."""
    backend = LocalBackend(n_ctx=512, max_tokens=60)
    assert backend.count_tokens(LONG) > 512
    engine = engine_with(recommender, backend, tmp_path)
    calls = []
    real = backend.fit

    def spy(messages, max_tokens):
        fitted = real(messages, max_tokens)
        calls.append(sum(backend.count_tokens(c) for _, c in fitted) + max_tokens)
        return fitted

    backend.fit = spy  # measure what reaches llama.cpp: prompt + answer must fit the window
    reply, text = answered(engine, LONG)
    # extraction, then one call per explained pick (up to 3): each fits the window
    assert 2 <= len(calls) <= 4 and all(n < 512 for n in calls), calls
    assert not any("exceed" in n or "context" in n for n in reply.notes), reply.notes
    assert "comedy" in reply.preferences["liked_tags"] and "horror" in reply.preferences["disliked_tags"]
    reason = reply.outcome.fallback_reason or ""
    assert "LLM failed" not in reason, reason  # the model answered; its text may still fail the check


@pytest.fixture(scope="module")
def small_window_server():
    """A real llama.cpp server whose window (512) is smaller than chatrec is told (llm_ctx)."""
    with running_llama_server(n_ctx=512) as url:
        yield url


@pytest.mark.timeout(300)
def test_hosted_context_overflow(recommender, small_window_server, tmp_path, monkeypatch):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    # Misconfigured: chatrec believes the server has 8k tokens, so the long prompt is sent as is.
    wrong = OpenAIBackend("smollm2", base_url=small_window_server, timeout=60, retries=2, n_ctx=8192, max_tokens=60)
    reply, text = answered(engine_with(recommender, wrong, tmp_path / "a"), LONG)
    assert any("LLM unavailable" in n for n in reply.notes), reply.notes
    assert "comedy" in reply.preferences["liked_tags"]
    assert fact_lines(text, [r.item.display_title for r in reply.recommendations])  # the picks' facts
    # Configured right (llm_ctx = the server's window): the prompt is trimmed and the server answers.
    right = OpenAIBackend("smollm2", base_url=small_window_server, timeout=60, retries=0, n_ctx=512, max_tokens=60)
    engine = engine_with(recommender, right, tmp_path / "b")
    reply, text = answered(engine, LONG)
    assert not any("LLM unavailable" in n for n in reply.notes), reply.notes
    assert "LLM failed" not in (reply.outcome.fallback_reason or "")


# -- missing / corrupt model file ------------------------------------------------------------------
@pytest.fixture(scope="module")
def bad_models(tmp_path_factory):
    root = tmp_path_factory.mktemp("models")
    garbage = root / "garbage.gguf"
    garbage.write_bytes(b"this is not a model\n" * 1000)
    truncated = root / "truncated.gguf"
    with default_gguf().open("rb") as src, truncated.open("wb") as dst:
        dst.write(src.read(3_000_000))  # a real header, then the file ends
    return {"missing": root / "nope.gguf", "garbage": garbage, "truncated": truncated}


@pytest.mark.timeout(240)
@pytest.mark.parametrize("kind", ["missing", "garbage", "truncated"])
def test_bad_model_file_cli_still_recommends_and_says_why(default_data_dir, bad_models, tmp_path, kind):
    data = private_data_dir(default_data_dir, tmp_path / "data")
    proc = run_cli("recommend", "a scary movie", "--k", "3", "--explain", "--llm", "local",
                   env={"CHATREC_DATA_DIR": str(data), "CHATREC_LLM_MODEL": str(bad_models[kind])}, timeout=200)
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr
    warning = [line for line in proc.stderr.splitlines() if "LLM unavailable" in line]
    assert len(warning) == 1 and str(bad_models[kind].name) in warning[0], proc.stderr
    assert {"missing": "not found", "garbage": "not a GGUF", "truncated": "cannot load"}[kind] in warning[0]
    picks = [line for line in proc.stdout.splitlines() if line[:3].strip().rstrip(".").isdigit()]
    assert len(picks) >= 3 and " = S " in proc.stdout  # ranked, each with its score


@pytest.mark.timeout(240)
def test_truncated_model_in_the_chat(default_data_dir, bad_models, tmp_path):
    data = private_data_dir(default_data_dir, tmp_path / "data")
    proc = run_cli("chat", "--user", "t", input="a scary movie\n/quit\n",
                   env={"CHATREC_DATA_DIR": str(data), "CHATREC_LLM_MODEL": str(bad_models["truncated"])},
                   timeout=200)
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr + proc.stdout
    assert "LLM unavailable, continuing without it" in proc.stderr
    assert "1. " in proc.stdout and "Bye." in proc.stdout
