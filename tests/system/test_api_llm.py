"""The HTTP API with a model that talks: `chatrec serve --llm openai` against a fake OpenAI-compatible server
on 127.0.0.1 that takes 3 s per answer. The streamed turn's explanation comes from the model; feedback,
profiles, health and picks-only turns stay fast while it talks; a full LLM queue is a 503 with Retry-After;
the openai client streams the explanation through /v1/chat/completions."""

from __future__ import annotations

import re
import threading
import time
import uuid

import pytest

from conftest import private_data_dir
from fake_openai import FaultServer
from test_api import KEY, assert_clean_error, call, running_api, sse_events

pytestmark = pytest.mark.slow

ANSWER_S = 3.0
MOVIE = re.compile(r"<<<MOVIE\n(.+?) \(\d{4}\)\n")


def explain(body, headers):
    """A slow model asked about one pick per call (the explainer's prompt names it in its MOVIE block): it
    answers with a line the review keeps, so the test can tell the model's lines from the fact lines."""
    time.sleep(ANSWER_S)
    found = MOVIE.search(body["messages"][-1]["content"])
    return 200, (f"{found.group(1)} is a good fit for what you asked." if found else "A pick."), False


@pytest.fixture(scope="module")
def llm_server(default_data_dir, tmp_path_factory):
    fake = FaultServer(explain)
    base = tmp_path_factory.mktemp("api-llm")
    data = private_data_dir(default_data_dir, base / "data")
    # one LLM call at a time and no queue: a second explaining request meanwhile is refused
    env = {"CHATREC_API_KEY": KEY, "CHATREC_OPENAI_BASE_URL": fake.url, "OPENAI_API_KEY": "not-needed",
           "CHATREC_API_WORKERS": "1", "CHATREC_API_LLM_QUEUE": "0", "CHATREC_LLM_RETRIES": "0",
           "CHATREC_LLM_TIMEOUT": "30", "CHATREC_LOG_LEVEL": "INFO"}
    try:
        with running_api(data, base / "serve.log", llm="openai", env=env) as url:
            yield url, fake
    finally:
        fake.close()


def test_streamed_turn_explained_by_the_model_while_other_calls_stay_fast(llm_server):
    url, fake = llm_server
    user, other = f"talk-{uuid.uuid4().hex[:6]}", f"quiet-{uuid.uuid4().hex[:6]}"
    assert call(url, "GET", "/v1/health", key=None).json()["llm"].startswith("openai:")
    # the other user has a list to give feedback on (picks only: never waits for the model)
    assert call(url, "POST", f"/v1/users/{other}/turns", {"text": "a western", "explain": False}).status == 200
    before = len(fake.requests)
    result: dict = {}

    def streamed_turn():
        t0 = time.perf_counter()
        result["resp"] = call(url, "POST", f"/v1/users/{user}/turns", {"text": "a space adventure", "stream": True})
        result["seconds"] = time.perf_counter() - t0

    talker = threading.Thread(target=streamed_turn)
    talker.start()
    deadline = time.monotonic() + 20
    while call(url, "GET", "/v1/health", key=None).json()["lanes"]["llm_admitted"] < 1:
        assert time.monotonic() < deadline, "the explaining turn never reached the model"
        time.sleep(0.05)
    time.sleep(0.3)  # the model is now talking (3 s)
    fast = {}
    for name, method, path, body in (
        ("health", "GET", "/v1/health", None),
        ("profile", "GET", f"/v1/users/{other}/profile", None),
        ("feedback", "POST", f"/v1/users/{other}/feedback", {"pick": 1, "event": "like"}),
        ("picks-only turn", "POST", f"/v1/users/{other}/turns", {"text": "a funny western", "explain": False}),
        ("recommend", "POST", "/v1/recommend", {"text": "war films", "k": 3}),
    ):
        t0 = time.perf_counter()
        resp = call(url, method, path, body)
        fast[name] = time.perf_counter() - t0
        assert resp.status == 200, (name, resp.text[:300])
    busy = call(url, "POST", f"/v1/users/{other}/turns", {"text": "a comedy"})  # wants the model: queue is full
    assert_clean_error(busy, 503)
    assert busy.headers.get("retry-after") == "5" and busy.json()["error"]["type"] == "busy"
    talker.join(timeout=60)
    assert not talker.is_alive()
    assert max(fast.values()) < ANSWER_S, fast  # none of them waited for the model
    events = sse_events(result["resp"].body)
    kinds = [e for e, _ in events]
    assert kinds[0] == "picks" and kinds[-1] == "done" and "line" in kinds, kinds
    lines = [d for e, d in events if e == "line"]
    assert any(d["source"] == "model" and "is a good fit" in d["text"] for d in lines), lines
    assert events[-1][1]["explanation_fallback"] is None
    model_lines = [d for d in lines if d["source"] == "model"]
    # one model call per explained pick, and every one of them ended as a line
    assert result["seconds"] >= ANSWER_S * len(model_lines) and len(fake.requests) == before + len(model_lines)
    # the turn was stored with the model's lines once they ended
    history = call(url, "GET", f"/v1/users/{user}/history").json()["messages"]
    assert history[-1]["role"] == "assistant" and "is a good fit" in history[-1]["content"]
    print(f"\nwhile the model talked ({ANSWER_S:.0f} s): "
          + ", ".join(f"{k} {v * 1000:.0f} ms" for k, v in fast.items()))


def test_the_openai_client_streams_the_explanation(llm_server):
    import openai

    url, _ = llm_server
    client = openai.OpenAI(base_url=url + "/v1", api_key=KEY, max_retries=0, timeout=120)
    user = f"oa-llm-{uuid.uuid4().hex[:6]}"
    chunks = list(client.chat.completions.create(model="chatrec", stream=True, user=user,
                                                 messages=[{"role": "user", "content": "a space adventure"}]))
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    head, _, explanation = text.partition("\n\n")
    assert head.startswith("5 picks") and len(head.splitlines()) == 6
    assert "is a good fit" in explanation and chunks[-1].choices[0].finish_reason == "stop"
    done = client.chat.completions.create(model="chatrec", user=user,
                                          messages=[{"role": "user", "content": "something funny instead"}])
    content = done.choices[0].message.content
    assert content.startswith("5 picks (comedy") and "\n\n" in content and "is a good fit" in content


def test_a_client_that_leaves_mid_stream_frees_the_model_and_the_turn_is_stored(llm_server):
    """The client reads the picks event and hangs up while the model talks: the model's call finishes, its
    lane and queue place are given back, and the turn is in the user's history."""
    import http.client

    url, _ = llm_server
    user = f"leaver-{uuid.uuid4().hex[:6]}"
    conn = http.client.HTTPConnection(url.split("//", 1)[1], timeout=30)
    conn.request("POST", f"/v1/users/{user}/turns", body=b'{"text": "a heist film", "stream": true}',
                 headers={"Content-Type": "application/json", "Authorization": f"Bearer {KEY}"})
    resp = conn.getresponse()
    assert resp.status == 200
    first = resp.readline() + resp.readline()  # (HTTPResponse.readline undoes the chunked encoding)
    assert first.startswith(b"event: picks")
    conn.sock.close()  # gone while the model talks
    conn.close()
    deadline = time.monotonic() + 30
    while call(url, "GET", "/v1/health", key=None).json()["lanes"]["llm_admitted"] != 0:
        assert time.monotonic() < deadline, "the stream's place at the model was never given back"
        time.sleep(0.1)
    deadline = time.monotonic() + 10
    while not call(url, "GET", f"/v1/users/{user}/history").json()["messages"]:
        assert time.monotonic() < deadline, "the abandoned turn was not stored"
        time.sleep(0.1)
    said = call(url, "GET", f"/v1/users/{user}/history").json()["messages"]
    assert [m["content"] for m in said if m["role"] == "user"] == ["a heist film"]
    # and the next explaining turn gets the model (no leaked admission: the queue is 0 here)
    assert call(url, "POST", f"/v1/users/{user}/turns", {"text": "a funny heist film"}).status == 200
