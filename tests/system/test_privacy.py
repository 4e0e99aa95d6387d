"""Privacy through the real `chatrec chat` process (a pseudo-terminal, so readline history is real):
after /forget no byte of the user's messages is left anywhere under the data dir (state database incl.
WAL, Chroma's files, caches, the history file); message text never reaches the logs, even at DEBUG,
unless CHATREC_LOG_MESSAGES=true; API keys never appear in output, errors or logs."""

from __future__ import annotations

import json
import os
import sys
import uuid
from pathlib import Path

import pexpect
import pytest

from conftest import ROOT, private_data_dir, run_cli, fact_lines
from fake_openai import FaultServer

pytestmark = pytest.mark.slow


def grep_tree(root: Path, needle: str) -> list[str]:
    """Files under ``root`` (following the index symlinks) whose bytes hold ``needle`` (UTF-8 or UTF-16)."""
    hits = []
    forms = [needle.encode(), needle.encode("utf-16-le")]
    for path in root.rglob("*"):
        if path.is_file():
            data = path.read_bytes()
            if any(f in data for f in forms):
                hits.append(str(path.relative_to(root)))
    return hits


def chat(data_dir: Path, user: str, lines: list[str], extra_env: dict | None = None, llm: str = "none") -> str:
    """A pexpect session; returns everything the terminal showed (stdout + stderr, as a user sees it)."""
    env = {**os.environ, "CHATREC_DATA_DIR": str(data_dir), "TERM": "xterm", "COLUMNS": "200",
           "CHATREC_LOG_LEVEL": "DEBUG", **(extra_env or {})}
    child = pexpect.spawn(sys.executable, ["-m", "chatrec", "chat", "--user", user, "--llm", llm], cwd=str(ROOT),
                          env=env, encoding="utf-8", timeout=120, dimensions=(50, 200))
    seen = []
    child.expect("\r\n> ")
    seen.append(child.before)
    for line in lines:
        child.sendline(line)
        child.expect("\r\n> " if line != "/quit" else pexpect.EOF)
        seen.append(child.before)
    child.close()
    assert child.exitstatus == 0, "".join(seen)
    out = "".join(seen)
    assert "Traceback" not in out
    return out


@pytest.fixture
def data_dir(default_data_dir, tmp_path):
    return private_data_dir(default_data_dir, tmp_path / "data")


@pytest.mark.timeout(300)
def test_forget_leaves_no_trace_and_debug_logs_hold_no_message_text(data_dir):
    marker = f"zq{uuid.uuid4().hex[:10]}x"
    user = f"user-{uuid.uuid4().hex[:6]}"
    out = chat(data_dir, user, [f"a heist movie about {marker}, no horror", "/like 1", f"more {marker} please",
                                "/quit"])
    assert marker not in out.replace(f"a heist movie about {marker}, no horror", "").replace(
        f"more {marker} please", "")  # only the echo of what was typed; DEBUG logs hold no message text
    before = grep_tree(data_dir, marker)
    assert any("state.sqlite3" in h for h in before), before  # the test can see the marker when it is there
    assert any(h.startswith("history") for h in before), before
    assert not [h for h in before if "chroma" in h or "cache" in h], before  # never embedded into the index
    chat(data_dir, user, ["/forget", "/quit"])
    after = grep_tree(data_dir, marker)
    assert after == [], after
    assert grep_tree(data_dir, user) in ([], ["history/" + user + ".history"]) or not grep_tree(data_dir, user)


@pytest.mark.timeout(300)
def test_opt_in_message_logging_is_only_in_the_log_stream(data_dir):
    """With CHATREC_LOG_MESSAGES=true the text goes to the log (stderr), which forget cannot reach
    (README says so); nothing of it stays under the data dir after /forget."""
    marker = f"zq{uuid.uuid4().hex[:10]}y"
    proc = run_cli("chat", "--user", "optin", "--llm", "none", input=f"a heist about {marker}\n/forget\n/quit\n",
                   env={"CHATREC_DATA_DIR": str(data_dir), "CHATREC_LOG_MESSAGES": "true",
                        "CHATREC_LOG_LEVEL": "INFO"}, timeout=200)
    assert proc.returncode == 0, proc.stderr
    assert marker in proc.stderr  # opted in: logged
    assert grep_tree(data_dir, marker) == []
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert "CHATREC_LOG_MESSAGES" in readme and "forget cannot" in readme.lower()


@pytest.fixture
def echo_server():
    """A hosted endpoint that fails with HTTP 500 and echoes the request headers (key included) and the
    prompt in its error body, padded so the key straddles where error texts get cut."""

    def answer(body, headers):
        echoed = json.dumps({"headers": headers, "messages": body.get("messages")})
        return 500, json.dumps({"error": {"message": "x" * 180 + " upstream failed: " + echoed}}), False

    server = FaultServer(answer)
    yield server
    server.close()


@pytest.mark.timeout(300)
def test_api_key_and_message_never_in_output_errors_or_logs(data_dir, echo_server):
    key = f"sk-{uuid.uuid4().hex}{uuid.uuid4().hex}"
    marker = f"zq{uuid.uuid4().hex[:10]}k"
    env = {"CHATREC_DATA_DIR": str(data_dir), "OPENAI_API_KEY": key, "CHATREC_OPENAI_BASE_URL": echo_server.url,
           "CHATREC_LLM_RETRIES": "1", "CHATREC_LLM_TIMEOUT": "5", "CHATREC_LOG_LEVEL": "DEBUG",
           "CHATREC_EXTRACTOR": "union"}
    proc = run_cli("recommend", f"a heist about {marker}", "--k", "3", "--explain", "--llm", "openai", "--json",
                   env=env, timeout=200)
    assert proc.returncode == 0, proc.stderr
    assert echo_server.requests and len(echo_server.requests) <= 3  # 1 + 1 retry, then the stream once
    data = json.loads(proc.stdout)
    assert fact_lines(data["explanation"], [f"{it['title']} ({it['year']})" for it in data["items"]])
    everything = proc.stdout + proc.stderr
    for n in (12, 20):  # no piece of the key, not even its start
        assert key[:n] not in everything and key[-n:] not in everything
    assert "Traceback" not in everything
    assert marker not in proc.stderr  # the prompt the server echoed is not logged either
    chat_out = chat(data_dir, "keyuser", ["a heist", "/quit"],
                    {"OPENAI_API_KEY": key, "CHATREC_OPENAI_BASE_URL": echo_server.url, "CHATREC_LLM": "openai",
                     "CHATREC_LLM_RETRIES": "0", "CHATREC_LOG_LEVEL": "DEBUG", "CHATREC_EXTRACTOR": "union"},
                    llm="openai")
    assert key[:12] not in chat_out and key[-12:] not in chat_out
    assert grep_tree(data_dir, key[:12]) == []
    # CHATREC_OPENAI_API_KEY is not a setting: refused by name, the value is never echoed
    proc = run_cli("recommend", "x", env={"CHATREC_DATA_DIR": str(data_dir), "CHATREC_OPENAI_API_KEY": key}, timeout=60)
    assert proc.returncode == 2 and "CHATREC_OPENAI_API_KEY" in proc.stderr and key[:12] not in proc.stderr
