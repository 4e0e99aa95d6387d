"""Concurrency with real processes: 20 sessions × 20 turns against one `chatrec ui` (Gradio's HTTP API,
from threads, 127.0.0.1 only), and several `chatrec` processes on one data directory at once."""

from __future__ import annotations

import html
import json
import os
import re
import subprocess
import sys
import threading
import time
import urllib.request
import uuid

import numpy as np
import pytest

from conftest import ROOT, private_data_dir, run_cli, running_ui

pytestmark = pytest.mark.slow
# Each test is bounded by its own timeout (func_only: the shared index build is timed by conftest),
# and every child process by a subprocess timeout or a deadline.

SESSIONS, TURNS, LIKE_EVERY = 20, 20, 4
# Each session likes a genre and avoids a topic of its own: the avoided tag is its marker, which no
# other session's profile may ever show. The rules read each phrase as exactly that tag (no title).
GENRES = ["comedy", "romance", "animation", "documentary", "war", "musical", "mystery", "drama", "action",
          "children", "film-noir"]
MARKERS = ["vampire", "shark", "dinosaur", "pirate", "ninja", "robots", "ghosts", "cowboy", "dragon", "gangster",
           "monster", "zombies", "nazis", "werewolf", "witch", "alien", "submarine", "boxing", "samurai", "heist"]
CARD = re.compile(r"data-item-id='([^']*)'><div class='card-title'>\d+\. (.*?)</div>")


def value(output):
    """A component's value in a client result (updates come as {"value": ..., "visible": ...})."""
    return output.get("value") if isinstance(output, dict) else output


def text_of(message: dict) -> str:
    content = message["content"]
    return content if isinstance(content, str) else " ".join(part.get("text", "") for part in content)


def marker_re(tag: str) -> re.Pattern:
    return re.compile(rf"(?<![\w-]){re.escape(tag)} \(")  # as the profile prints a tag: "shark (1)"


@pytest.fixture(scope="module")
def ui(default_data_dir, tmp_path_factory):
    data = private_data_dir(default_data_dir, tmp_path_factory.mktemp("load") / "data")
    with running_ui(data) as url:
        yield url, data


def call(url: str, api: str, data: list, timeout: float = 120) -> list:
    """One event through Gradio's HTTP API (what gradio_client does, minus its per-call overhead of
    ~0.2 s here): POST /gradio_api/call/NAME, then read its event stream to the end."""
    base = f"{url}gradio_api/call/{api}"
    req = urllib.request.Request(base, data=json.dumps({"data": data}).encode(),
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=timeout) as resp:
        event_id = json.load(resp)["event_id"]
    with urllib.request.urlopen(f"{base}/{event_id}", timeout=timeout) as resp:
        stream = resp.read().decode("utf-8")
    kind, payload = None, None
    for block in stream.split("\n\n"):
        lines = dict(line.split(": ", 1) for line in block.splitlines() if ": " in line)
        if lines.get("event") in ("complete", "error"):
            kind, payload = lines["event"], lines.get("data")
    if kind != "complete":
        raise RuntimeError(f"/{api} ended with {kind}: {payload!r}")
    return json.loads(payload)


class Session:
    """One scripted browser with its own named profile (the id the page keeps in localStorage)."""

    def __init__(self, url: str, n: int):
        self.url, self.n = url, n
        self.sid = f"load-{n:02d}-{uuid.uuid4().hex[:8]}"
        self.genre, self.marker = GENRES[n % len(GENRES)], MARKERS[n]
        self.chat: list = []
        self.sent: list[str] = []
        self.liked: list[str] = []  # titles, in the order liked
        self.turn_s: list[float] = []
        self.like_s: list[float] = []
        self.problems: list[str] = []

    def message(self, j: int) -> str:
        return f"I'd like {self.genre} films but no {self.marker}, note s{self.n:02d}x{j:02d}"

    def check_profile(self, md: str, where: str) -> None:
        if not marker_re(self.marker).search(md):
            self.problems.append(f"{where}: own marker {self.marker!r} missing from {md!r}")
        for other in MARKERS:
            if other != self.marker and marker_re(other).search(md):
                self.problems.append(f"{where}: another session's tag {other!r} in {md!r}")
        liked = re.search(r"\*\*Liked:\*\* (.*?)  \n", md)
        want = ", ".join(dict.fromkeys(self.liked)) or "none yet"
        if not liked or liked.group(1) != want:
            self.problems.append(f"{where}: liked items {liked and liked.group(1)!r}, expected {want!r}")

    def check_chat(self, chat: list, where: str) -> None:
        said = [text_of(m) for m in chat if m["role"] == "user"]
        if said != self.sent:
            self.problems.append(f"{where}: chat holds {said[-3:]!r}, expected {self.sent[-3:]!r}")

    def check_picks(self, chat: list, cards: list, where: str) -> None:
        """The reply's header speaks of this session's profile, and its picks are the cards sent with it."""
        answer = text_of(chat[-1]) if chat and chat[-1]["role"] == "assistant" else ""
        header = answer.split("\n", 1)[0]
        if f"avoiding {self.marker}" not in header and not re.search(rf"avoiding .*\b{self.marker}\b", header):
            self.problems.append(f"{where}: reply header {header!r} lacks {self.marker!r}")
        listed = re.findall(r"^\d+\. (.+?) — ", answer, flags=re.M)
        shown = [html.unescape(m.group(2)) for m in (CARD.search(value(c) or "") for c in cards) if m]
        if listed != shown or len(shown) != 5:
            self.problems.append(f"{where}: the reply lists {listed!r} but the cards show {shown!r}")

    def run(self) -> None:
        out = call(self.url, "load", [self.sid])
        if out[0] != self.sid or out[1]:
            self.problems.append(f"load: a fresh named profile came back with {out[:2]!r}")
        for j in range(TURNS):
            text = self.message(j)
            t0 = time.perf_counter()
            out = call(self.url, "send", [text, self.chat, self.sid])
            self.turn_s.append(time.perf_counter() - t0)
            self.sent.append(text)
            self.chat, cards, md = out[0], out[2:7], out[-2]  # ..., 5 cards, 5 button rows, profile, tags
            self.check_chat(self.chat, f"turn {j}")
            self.check_picks(self.chat, cards, f"turn {j}")
            self.check_profile(md, f"turn {j}")
            if j % LIKE_EVERY == LIKE_EVERY - 1:
                first = CARD.search(value(cards[0]) or "")
                if not first:
                    self.problems.append(f"turn {j}: no first card in {value(cards[0])!r}")
                    continue
                t0 = time.perf_counter()
                out = call(self.url, "like_1", [self.sid])
                self.like_s.append(time.perf_counter() - t0)
                self.liked.append(html.unescape(first.group(2)))
                self.check_profile(out[-2], f"like after turn {j}")

    def reload(self) -> None:
        """A fresh page with the same named profile: the server's own history and profile."""
        out = call(self.url, "load", [self.sid])
        self.check_chat(out[1], "reload")
        for m in out[1]:
            text = text_of(m)
            for other in range(SESSIONS):
                if other != self.n and f"note s{other:02d}x" in text:
                    self.problems.append(f"reload: session {other}'s message in history: {text!r}")
        self.check_profile(out[-4], "reload")  # load ends with: profile, take-back choices, message box, Send


@pytest.mark.timeout(420, func_only=True)
def test_twenty_sessions_twenty_turns_stay_isolated(ui):
    url, data = ui
    sessions: list[Session] = []
    errors: list[str] = []
    lock = threading.Lock()

    def drive(n: int) -> None:
        try:
            s = Session(url, n)
            with lock:
                sessions.append(s)
            s.run()
        except Exception as exc:  # noqa: BLE001 (every failure is counted, with its session)
            with lock:
                errors.append(f"session {n}: {type(exc).__name__}: {exc}")

    t0 = time.perf_counter()
    threads = [threading.Thread(target=drive, args=(n,), daemon=True) for n in range(SESSIONS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=max(1.0, 360 - (time.perf_counter() - t0)))
    wall = time.perf_counter() - t0
    assert not any(t.is_alive() for t in threads), "a session hung"
    assert errors == []
    for s in sessions:
        s.reload()
    problems = [p for s in sessions for p in s.problems]
    assert problems == [], problems[:5]
    turns = np.array([x for s in sessions for x in s.turn_s]) * 1000
    likes = np.array([x for s in sessions for x in s.like_s]) * 1000
    assert len(turns) == SESSIONS * TURNS and len(sessions) == SESSIONS
    print(f"\n{SESSIONS}x{TURNS} turns (+{len(likes)} likes) in {wall:.1f}s, 0 errors; turn latency "
          f"p50 {np.percentile(turns, 50):.0f} ms, p95 {np.percentile(turns, 95):.0f} ms; like latency "
          f"p50 {np.percentile(likes, 50):.0f} ms, p95 {np.percentile(likes, 95):.0f} ms")

    # the server's store agrees: every session's turns and likes are stored under its own id only
    from chatrec.adapters.sqlite_state import SqliteState

    store = SqliteState(data / "state.sqlite3")
    try:
        for s in sessions:
            said = [c for r, c in store.history(s.sid, limit=1000) if r == "user"]
            assert said == s.sent
            assert [e for _, e in store.events(s.sid)] == ["like"] * len(s.liked)
    finally:
        store.close()


# -- several processes on one data directory --------------------------------------------------------
def _communicate_all(procs: dict[str, subprocess.Popen], inputs: dict[str, str], timeout: float) -> dict:
    """Feed and drain every process at once (threads), so none waits on a full pipe; kill on timeout."""
    results: dict[str, tuple] = {}

    def one(name: str) -> None:
        try:
            results[name] = procs[name].communicate(inputs.get(name), timeout=timeout)
        except subprocess.TimeoutExpired:
            procs[name].kill()
            results[name] = (*procs[name].communicate(), "TIMEOUT")

    threads = [threading.Thread(target=one, args=(name,)) for name in procs]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout + 60)
    return results


@pytest.mark.timeout(300, func_only=True)
def test_chats_and_writers_share_one_data_dir(default_data_dir, tmp_path):
    """Two `chatrec chat` REPLs and two feedback bursts on one state database, all at once: every
    process finishes, nothing is locked out, every write lands."""
    from chatrec.adapters.sqlite_state import SqliteState
    from test_durability import DRIVER

    data = private_data_dir(default_data_dir, tmp_path / "data")
    env = {**os.environ, "CHATREC_DATA_DIR": str(data), "CHATREC_LLM": "none"}
    script = "".join(f"{t}\n/like 1\n/watched 2\n" for t in ("something funny", "a space adventure", "a western",
                                                               "scary ghosts", "a love story", "a heist")) + "/quit\n"
    n_events = 200
    procs = {}
    for user in ("ann", "bob"):
        procs[user] = subprocess.Popen([sys.executable, "-m", "chatrec", "chat", "--user", user], cwd=ROOT, env=env,
                                       stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    for user in ("w1", "w2"):
        procs[user] = subprocess.Popen([sys.executable, "-c", DRIVER, str(n_events), user], cwd=ROOT, env=env,
                                       stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                       text=True)
    t0 = time.perf_counter()
    results = _communicate_all(procs, {"ann": script, "bob": script}, timeout=180)
    wall = time.perf_counter() - t0
    for name, (out, err, *timed_out) in results.items():
        assert not timed_out, f"{name} hung: {err[-2000:]}"
        assert procs[name].returncode == 0, f"{name}: {err[-2000:]}"
        assert "locked" not in err and "Traceback" not in err, f"{name}: {err[-2000:]}"
    for user in ("ann", "bob"):
        out = results[user][0]
        assert out.count("Marked as watched") == 6 and out.count("Liked ") == 6, out[-2000:]
    store = SqliteState(data / "state.sqlite3")
    try:
        for user in ("ann", "bob"):
            assert [e for _, e in store.events(user)] == ["like", "watched"] * 6
            assert len([c for r, c in store.history(user, limit=100) if r == "user"]) == 6
        for user in ("w1", "w2"):
            acks = [json.loads(ln[4:]) for ln in results[user][0].splitlines() if ln.startswith("ACK ")]
            assert len(acks) == n_events
            assert store.events(user) == [(a["item"], a["event"]) for a in acks if "event" in a]
        stored = sum(len(store.events(user)) for user in procs)
    finally:
        store.close()
    print(f"\n2 chats + 2 writers on one state DB: all finished in {wall:.1f}s, {stored} events stored")


READER = r'''
import sys
from chatrec.app import App
from chatrec.settings import Settings

engine = App(Settings(llm="none")).engine
session = engine.session("reader")
print("READY", flush=True)
topics = ("a space adventure", "something funny", "scary ghosts", "a western", "a love story")
for i in range(int(sys.argv[1])):
    reply = engine.turn(session, f"{topics[i % len(topics)]} {i}")
    reply.text()
    print("ACK", i, len(reply.recommendations), flush=True)
'''


@pytest.mark.timeout(300, func_only=True)
def test_index_while_another_process_reads(default_data_dir, small_catalog, tmp_path):
    """`chatrec index PATH` writes into the Chroma folder a chatting process is querying: both carry on."""
    from test_durability import Lines, copy_data_dir

    data = copy_data_dir(default_data_dir, tmp_path / "data")
    env = {**os.environ, "CHATREC_DATA_DIR": str(data), "CHATREC_LLM": "none"}
    reader = subprocess.Popen([sys.executable, "-c", READER, "100000"], cwd=ROOT, env=env, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE)
    out = Lines(reader)
    try:
        out.until(lambda ls: "READY" in ls, 150)
        writer = subprocess.Popen([sys.executable, "-m", "chatrec", "index", str(small_catalog), "--json"], cwd=ROOT,
                                  env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            while writer.poll() is None:  # the reader keeps answering while the writer runs
                n = len(out.lines)
                out.until(lambda ls, n=n: len(ls) > n, 60)
            during = sum(ln.startswith("ACK") for ln in out.lines)
            report, err = writer.communicate(timeout=30)
        finally:
            if writer.poll() is None:
                writer.kill()
                writer.wait(timeout=30)
        assert writer.returncode == 0, err
        assert json.loads(report)["total"] == 120
        out.until(lambda ls: sum(ln.startswith("ACK") for ln in ls) >= during + 20, 60)  # and after it
    finally:
        reader.kill()
        reader.wait(timeout=30)
    acks = [ln.split() for ln in out.lines if ln.startswith("ACK")]
    assert all(a[2] == "5" for a in acks)
    err = reader.stderr.read().decode(errors="replace")
    assert "Traceback" not in err and "locked" not in err, err[-2000:]
    print(f"\nindex while reading: the reader answered {during} turns while `chatrec index` ran, "
          f"{len(acks) - during} after")
    # the new collection is complete and active (the reader showed the old one still answers)
    proc = run_cli("recommend", "space adventure", "--k", "3", "--json", env={"CHATREC_DATA_DIR": str(data)},
                   timeout=120)
    assert proc.returncode == 0, proc.stderr
    items = json.loads(proc.stdout)["items"]
    assert len(items) == 3 and {i["id"] for i in items} <= {json.loads(ln)["id"] for ln in small_catalog.open()}


OPENER = """
import os, sys, time
from pathlib import Path
from chatrec.core.profile import Profile
from chatrec.adapters.sqlite_state import SqliteState, StateError
db, user, ready, go = sys.argv[1:5]
Path(ready).touch()
deadline = time.monotonic() + 60
while not os.path.exists(go) and time.monotonic() < deadline:
    time.sleep(0.0005)
try:
    SqliteState(Path(db)).save_profile(user, Profile())
except StateError as exc:
    sys.exit(f"StateError: {exc}")
"""


@pytest.mark.timeout(300, func_only=True)
def test_processes_that_create_the_state_database_at_once_all_get_in(tmp_path):
    """Six processes open one new state database at the same instant (released together once all have
    imported). Before the open was retried, some got "database is locked" from SQLite's race to switch a
    new file to WAL: a round failed about one time in six, so 30 rounds catch it nearly always."""
    from chatrec.adapters.sqlite_state import SqliteState

    for round_ in range(30):
        base = tmp_path / f"r{round_}"
        base.mkdir()
        db, go = base / "state.sqlite3", base / "go"
        procs = [subprocess.Popen([sys.executable, "-c", OPENER, str(db), f"u{i}", str(base / f"ready{i}"), str(go)],
                                  cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
                 for i in range(6)]
        deadline = time.monotonic() + 60
        while not all((base / f"ready{i}").exists() for i in range(6)) and time.monotonic() < deadline:
            time.sleep(0.01)
        go.touch()
        for i, p in enumerate(procs):
            _, err = p.communicate(timeout=90)
            assert p.returncode == 0, f"round {round_}, process {i}: {err[-1000:]}"
        store = SqliteState(db)
        assert set(store.users()) == {f"u{i}" for i in range(6)}
