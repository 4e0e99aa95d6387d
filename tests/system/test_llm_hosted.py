"""The hosted path for real: llama-cpp-python's OpenAI-compatible server on 127.0.0.1, reached
through the OpenAI backend; and the faults a hosted model has (down, slow, 500, garbage), served
by small real HTTP servers so the client, its timeouts and its retries all run for real."""

from __future__ import annotations

import json
import logging
import time

import pytest

from chatrec.core.items import Item
from chatrec.llm.backends import CUT_MARK, OpenAIBackend
from chatrec.llm.explain import ExplainContext, Explainer, fact_line
from chatrec.llm.extract import Extractor, LLMExtractor
from chatrec.reading.rules import RuleExtractor
from chatrec.core.scoring import Breakdown
from conftest import free_port, run_cli, running_llama_server, fact_lines
from fake_openai import FaultServer

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def llama_server():
    """``python -m llama_cpp.server`` with the bundled GGUF on a free port; stopped after the module."""
    with running_llama_server(n_ctx=2048) as url:
        yield url


@pytest.fixture
def no_key(monkeypatch):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)


def _recs():
    items = [
        Item(id="1", title="Toy Story", year=1995, genres=("Animation", "Comedy"), text="Toys come to life."),
        Item(id="2", title="Heat", year=1995, genres=("Crime", "Thriller"), text="A thief and a detective."),
    ]

    class Rec:
        def __init__(self, item, s):
            self.item = item
            self.breakdown = Breakdown(similarity=s, behaviour=0.5, content=0.4, penalty=0.0, score=0.5 * s + 0.23,
                                       matched_tags=("comedy",) if item.id == "1" else ())

    return [Rec(items[0], 0.8), Rec(items[1], 0.4)]


# -- against the real llama.cpp server ----------------------------------------------------------
def test_extraction_through_the_openai_backend(llama_server, no_key):
    backend = OpenAIBackend("smollm2", base_url=llama_server, timeout=60, retries=1)
    extractor = LLMExtractor(backend)
    answer = extractor.extract("something funny, no romance")
    assert backend._schema_mode in ("json_schema", "json_object")  # structured output was used
    enum = set(extractor.schema["properties"]["likes"]["items"]["enum"])
    assert set(answer.likes) <= enum and set(answer.dislikes) <= enum
    assert -1.0 <= answer.sentiment <= 1.0
    combined = Extractor(RuleExtractor(), extractor, mode="union").extract("something funny, no romance")
    assert "comedy" in combined.liked_tags and "romance" in combined.disliked_tags


def test_explanation_streams_through_the_openai_backend(llama_server, no_key):
    backend = OpenAIBackend("smollm2", base_url=llama_server, timeout=60, retries=1, max_tokens=60)
    pieces = list(backend.stream([("user", "Say hello in five words.")], max_tokens=24))
    assert len(pieces) >= 3  # token by token, not one block
    cut = list(backend.stream([("user", "Describe three famous films in detail.")], max_tokens=5))
    assert cut[-1] == CUT_MARK and "".join(cut[:-1]).strip()  # the budget ended it, and the answer says so
    explainer = Explainer(backend)
    assert explainer.capable and explainer._strategy_name() == "free"  # no grammar over HTTP: the same prompt
    e = explainer.explain(_recs(), ExplainContext(request="something funny"))
    lines = list(e)
    assert [l.pick for l in lines] == [0, 1]  # a line per pick, model's or facts
    assert e.outcome.first_visible_s is not None and e.outcome.lines_written == 2
    for line in lines:  # shown only after the same review as the local model's
        assert explainer.review_line(line.text, _recs(), line.pick) is None
        if line.source == "facts":
            assert line.text == fact_line(_recs()[line.pick], context=ExplainContext(request="something funny"))


def test_cli_explain_against_the_server(llama_server, default_data_dir, no_key):
    proc = run_cli(
        "recommend", "a funny animated movie, no horror", "--k", "3", "--explain", "--llm", "openai", "--json",
        env={"CHATREC_DATA_DIR": str(default_data_dir), "CHATREC_OPENAI_BASE_URL": llama_server,
             "CHATREC_OPENAI_MODEL": "smollm2", "OPENAI_API_KEY": "sk-test-SECRET-should-never-print"},
    )
    assert proc.returncode == 0, proc.stderr
    data = json.loads(proc.stdout)
    assert len(data["items"]) == 3 and data["explanation"].strip()
    assert "horror" in data["preferences"]["disliked_tags"]
    assert "SECRET" not in proc.stdout + proc.stderr


# -- faults ----------------------------------------------------------------------------------
GARBAGE = "Sure! {{{ not json, and you should watch Titanic (1997)"


def bad_server(mode: str, delay: float = 0.0) -> FaultServer:
    """A server that answers in one bad way: ``error`` (HTTP 500) or ``garbage`` (not JSON, an invented title)."""

    def answer(body, headers):
        if delay:
            time.sleep(delay)
        if mode == "error":
            return 500, '{"error": {"message": "boom"}}', False
        return 200, GARBAGE, False

    return FaultServer(answer)


@pytest.fixture
def fault_server(request):
    servers = []

    def make(mode, delay=0.0):
        servers.append(bad_server(mode, delay))
        return servers[-1]

    yield make
    for s in servers:
        s.close()


def _turn(backend, caplog):
    """One turn's LLM work (extraction + explanation); both must complete with fallbacks."""
    caplog.set_level(logging.INFO)
    prefs = Extractor(RuleExtractor(), LLMExtractor(backend), mode="union").extract("a scary movie, no comedy")
    assert prefs.liked_tags == ["horror"] and prefs.disliked_tags == ["comedy"]
    assert any("LLM unavailable" in n for n in prefs.notes)
    e = Explainer(backend).explain(_recs(), ExplainContext(request="a scary movie"))
    lines = list(e)
    assert [(l.pick, l.source) for l in lines] == [(0, "facts"), (1, "facts")]  # the facts, no error
    assert lines[0].text == "Toy Story (1995): Toys come to life."
    assert e.outcome.fallback_reason and e.outcome.withdrawn
    return prefs, e.outcome


def test_server_down(no_key, caplog):
    backend = OpenAIBackend("m", base_url=f"http://127.0.0.1:{free_port()}/v1", timeout=2, retries=2)
    t0 = time.monotonic()
    _turn(backend, caplog)
    assert time.monotonic() - t0 < 30
    assert "LLM extraction failed, using the rules alone" in caplog.text
    assert "cannot connect to http://127.0.0.1:" in caplog.text and "(3 attempts)" in caplog.text


def test_slow_server_times_out_with_bounded_retries(fault_server, no_key, caplog):
    server = fault_server("garbage", delay=3.0)
    backend = OpenAIBackend("m", base_url=server.url, timeout=0.5, retries=1)
    t0 = time.monotonic()
    _turn(backend, caplog)
    assert time.monotonic() - t0 < 20
    assert "timed out: no answer from" in caplog.text and "within 0.5 s" in caplog.text
    # extraction: json_schema attempt + 1 retry (timeouts are not a reason to try the next format);
    # explanation stream: one attempt. Nothing more.
    assert len(server.requests) == 3


def test_http_500_retries_are_bounded(fault_server, no_key, caplog):
    server = fault_server("error")
    backend = OpenAIBackend("m", base_url=server.url, timeout=5, retries=2)
    _turn(backend, caplog)
    assert "HTTP 500 from" in caplog.text and "(3 attempts)" in caplog.text
    assert len(server.requests) == 3 + 1  # extraction: 1 + 2 retries; explanation stream: 1


def test_garbage_output_falls_back(fault_server, no_key, caplog):
    server = fault_server("garbage")
    backend = OpenAIBackend("m", base_url=server.url, timeout=5, retries=2)
    prefs, outcome = _turn(backend, caplog)
    assert "no JSON object" in caplog.text or "invalid JSON" in caplog.text
    assert "not in the list" in outcome.fallback_reason and "Titanic" in outcome.fallback_reason


def test_cli_with_the_server_down_still_answers(default_data_dir, no_key):
    proc = run_cli(
        "recommend", "a scary movie", "--k", "3", "--explain", "--llm", "openai", "--json",
        env={"CHATREC_DATA_DIR": str(default_data_dir),
             "CHATREC_OPENAI_BASE_URL": f"http://127.0.0.1:{free_port()}/v1",
             "CHATREC_LLM_TIMEOUT": "2", "CHATREC_LLM_RETRIES": "1"},
    )
    assert proc.returncode == 0, proc.stderr
    data = json.loads(proc.stdout)
    assert len(data["items"]) == 3
    assert fact_lines(data["explanation"], [f"{it['title']} ({it['year']})" for it in data["items"]])
    assert "LLM failed" in data["explanation_fallback"]
    assert "explanation failed, using the fact lines" in proc.stderr
    assert "Traceback" not in proc.stderr
