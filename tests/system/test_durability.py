"""Durability with real processes: `kill -9` in the middle of a write burst and of an index build,
a read-only data directory and a full disk. Nothing acknowledged may be lost, nothing stored may be
damaged, and every failure is one clear `error:` line, never a traceback."""

from __future__ import annotations

import ctypes
import hashlib
import json
import os
import random
import resource
import select
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import ROOT, private_data_dir, run_cli

pytestmark = pytest.mark.slow
# Each test is bounded by its own timeout (func_only: the shared index build is timed by conftest),
# and every child process by a subprocess timeout or a deadline.

# A burst of feedback through the real engine on a private state DB. One line per call that
# returned: "ACK {json}". Stops by itself after MAX events (the test kills it long before).
DRIVER = r'''
import json, sys
from chatrec.app import App
from chatrec.settings import Settings

MAX = int(sys.argv[1])
users = sys.argv[2:]
engine = App(Settings(llm="none")).engine
sessions = [engine.session(u) for u in users]
for s in sessions:
    engine.turn(s, "a space adventure").text()
print("READY", flush=True)
EVENTS = ("view", "click", "like", "watched", "skip")
for i in range(MAX):
    s = sessions[i % len(sessions)]
    if i % 20 == 19:
        text = f"turn {i}: something with robots"
        engine.turn(s, text).text()
        ack = {"i": i, "user": s.user_id, "turn": text}
    else:
        n, event = 1 + i % 3, EVENTS[i % len(EVENTS)]
        item = s.shown[n - 1].item.id
        engine.feedback(s, n, event)
        ack = {"i": i, "user": s.user_id, "item": item, "event": event}
    print("ACK " + json.dumps(ack), flush=True)
'''


def _env(data_dir: Path, **extra) -> dict:
    return {**os.environ, "CHATREC_DATA_DIR": str(data_dir), "CHATREC_LLM": "none", **extra}


def _one_error_line(stderr: str) -> str:
    """The failure is reported as exactly one non-empty `error:` line and no traceback."""
    lines = [ln for ln in stderr.splitlines() if ln.strip()]
    assert "Traceback" not in stderr, stderr
    errors = [ln for ln in lines if ln.startswith("error:")]
    assert len(errors) == 1, stderr
    return errors[0]


class Lines:
    """A process's stdout read line by line without blocking past a deadline."""

    def __init__(self, proc: subprocess.Popen):
        self.proc, self.lines, self._buf = proc, [], b""

    def until(self, stop, seconds: float) -> list[str]:
        """Read lines until ``stop(lines)`` is true; fail on EOF or when ``seconds`` have passed."""
        deadline = time.monotonic() + seconds
        fd = self.proc.stdout.fileno()
        while not stop(self.lines):
            left = deadline - time.monotonic()
            if left <= 0:
                pytest.fail(f"timed out; last lines: {self.lines[-3:]}")
            ready, _, _ = select.select([fd], [], [], min(left, 1.0))
            if not ready:
                continue
            chunk = os.read(fd, 65536)
            if not chunk:
                err = self.proc.stderr.read().decode(errors="replace") if self.proc.stderr else ""
                pytest.fail(f"the process ended early (rc={self.proc.wait()}): {err[-2000:]}")
            self._add(chunk)
        return self.lines

    def drain(self) -> list[str]:
        """After the process ended: whatever it wrote before it died."""
        rest = self.proc.stdout.read()
        self._add(rest + b"\n" if rest or self._buf else b"")
        return self.lines

    def _add(self, chunk: bytes) -> None:
        self._buf += chunk
        *done, self._buf = self._buf.split(b"\n")
        self.lines.extend(line.decode(errors="replace") for line in done)


# -- kill -9 during a burst of feedback ---------------------------------------------------------------
@pytest.mark.timeout(240, func_only=True)
def test_kill_9_during_a_feedback_burst_loses_nothing_acknowledged(default_data_dir, tmp_path):
    from chatrec.core.scoring import EVENT_WEIGHTS
    from chatrec.adapters.sqlite_state import SqliteState

    data = private_data_dir(default_data_dir, tmp_path / "data")
    users = ["burst-a", "burst-b"]
    proc = subprocess.Popen([sys.executable, "-c", DRIVER, "100000", *users], cwd=ROOT, env=_env(data),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    out = Lines(proc)
    try:
        out.until(lambda ls: "READY" in ls, 150)
        target = random.Random().randint(150, 400)  # a different moment of the burst each run
        out.until(lambda ls: sum(ln.startswith("ACK") for ln in ls) >= target, 60)
        # The driver is still writing: kill it without warning, mid-burst.
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
        lines = out.drain()  # anything printed before it died was acknowledged too
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL, "the driver finished before it was killed"
    acks = [json.loads(ln[4:]) for ln in lines if ln.startswith("ACK ") and ln.endswith("}")]
    assert len(acks) >= 150

    db = data / "state.sqlite3"
    with sqlite3.connect(db) as raw:  # recovers the WAL like any restart would
        assert raw.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    store = SqliteState(db)  # the product's own reader, as after a restart
    try:
        found = 0
        for user in users:
            mine = [a for a in acks if a["user"] == user]
            acked_events = [(a["item"], a["event"]) for a in mine if "event" in a]
            stored = store.events(user)
            # every acknowledged event is stored, in order; at most the one in flight comes extra
            assert stored[:len(acked_events)] == acked_events
            assert len(stored) - len(acked_events) <= 1
            found += len(stored)
            said = {c for r, c in store.history(user, limit=10_000) if r == "user"}
            assert {a["turn"] for a in mine if "turn" in a} <= said
            # the profile row was written in the same transaction as each event: they agree
            profile = store.load_profile(user)
            totals: dict[str, float] = {}
            for item, event in stored:
                totals[item] = totals.get(item, 0.0) + EVENT_WEIGHTS[event]
            assert profile.events.keys() == totals.keys()
            assert all(abs(profile.events[k] - v) < 1e-9 for k, v in totals.items())
            assert {i for i, e in acked_events if e == "like"} <= set(profile.liked_items)
    finally:
        store.close()
    n_events = sum("event" in a for a in acks)
    print(f"\nkill -9 mid-burst: {len(acks)} calls acknowledged ({n_events} events); {found} events found "
          f"after restart ({found - n_events} unacknowledged one in flight)")

    # and the product itself starts on the killed database and shows the restored profile
    proc = subprocess.run([sys.executable, "-m", "chatrec", "chat", "--user", users[0]], input="/profile\n/quit\n",
                          capture_output=True, text=True, timeout=120, cwd=ROOT, env=_env(data))
    assert proc.returncode == 0, proc.stderr
    assert "Welcome back, burst-a" in proc.stdout
    liked = [ln for ln in proc.stdout.splitlines() if ln.startswith("liked items: ")]
    assert liked and liked[0] != "liked items: none"


# -- kill -9 during `chatrec index PATH` ------------------------------------------------------------
INSPECT = r'''
import json, sys
import numpy as np
from chatrec.adapters.chroma import ChromaIndex
index = ChromaIndex(sys.argv[2], sys.argv[1])
rows = [(i, v) for ids, vectors, _ in index.scan(include_vectors=True) for i, v in zip(ids, vectors)]
ids = [i for i, _ in rows]
# every vector is in the ANN index too: each sampled item is its own nearest neighbour
sample = sorted(rows)[:: max(1, len(rows) // 40)]
hits = sum(index.query(np.asarray(v), 1)[0][0] == i for i, v in sample)
info = {"collection": index.name, "exists": True, "count": index.count(), **index.metadata()}
print(json.dumps({"ids": ids, "info": {k: v for k, v in info.items() if k != "source"},
                  "self_hits": hits, "sampled": len(sample)}))
'''


def _inspect(data_dir: Path, collection: str) -> dict:
    proc = subprocess.run([sys.executable, "-c", INSPECT, str(data_dir), collection], capture_output=True,
                          text=True, timeout=120, cwd=ROOT, env=_env(data_dir))
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def _embeddings_in(chroma_sqlite: Path) -> int:
    """How many records Chroma has taken in so far (read-only peek; 0 while it is unreadable)."""
    try:
        with sqlite3.connect(f"file:{chroma_sqlite}?mode=ro", uri=True, timeout=0.2) as conn:
            return conn.execute("SELECT COUNT(*) FROM embeddings").fetchone()[0]
    except sqlite3.Error:
        return 0


def _index_data_dir(default_data_dir: Path, target: Path) -> Path:
    """An empty data dir of its own that reuses the session's verified ONNX export."""
    (target / "cache").mkdir(parents=True)
    (target / "cache" / "onnx").symlink_to(default_data_dir / "cache" / "onnx")
    return target


@pytest.mark.timeout(300, func_only=True)
def test_kill_9_during_index_then_the_next_run_resumes(default_data_dir, movie_records, tmp_path):
    records = movie_records[:400]
    catalogue = tmp_path / "killme.jsonl"
    catalogue.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    want = {str(r["id"]) for r in records}
    data = _index_data_dir(default_data_dir, tmp_path / "data")
    env = _env(data, CHATREC_INDEX_BATCH_SIZE="50")
    proc = subprocess.Popen([sys.executable, "-m", "chatrec", "index", str(catalogue), "--json"], cwd=ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 180
    try:
        while _embeddings_in(data / "chroma" / "chroma.sqlite3") < 100:  # two batches are in
            assert proc.poll() is None, f"index ended before it could be killed: {proc.communicate()}"
            assert time.monotonic() < deadline, "no progress"
            time.sleep(0.05)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL
    partial = _inspect(data, "killme")
    assert partial["info"]["state"] == "building"
    assert 100 <= len(partial["ids"]) < len(records)

    # an interrupted index is refused with a clear line that says how to resume
    proc = run_cli("recommend", "space adventure", env={**env, "CHATREC_COLLECTION": "killme"}, timeout=120)
    assert proc.returncode == 2
    assert "incomplete" in _one_error_line(proc.stderr) and "chatrec index" in proc.stderr

    # the next run embeds only what is missing
    proc = run_cli("index", str(catalogue), "--json", env=env, timeout=240)
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)
    assert report["total"] == len(records)
    assert report["unchanged"] == len(partial["ids"]) and report["embedded"] == len(records) - len(partial["ids"])
    print(f"\nkill -9 during index: {len(partial['ids'])}/{len(records)} stored when killed; "
          f"the resumed run embedded {report['embedded']}, kept {report['unchanged']}")

    done = _inspect(data, "killme")
    assert done["info"]["state"] == "ready" and done["info"]["count"] == len(records)
    assert len(done["ids"]) == len(set(done["ids"])) == len(records)
    assert set(done["ids"]) == want
    assert done["self_hits"] == done["sampled"]

    proc = run_cli("recommend", "space adventure", "--k", "5", "--json", env=env, timeout=120)
    assert proc.returncode == 0, proc.stderr
    items = json.loads(proc.stdout)["items"]
    assert len(items) == 5 and {i["id"] for i in items} <= want


# -- a read-only and a full data directory --------------------------------------------------------
SCRIPT = "space adventure\n/like 1\n/quit\n"


def copy_data_dir(shared: Path, target: Path) -> Path:
    """A writable copy of the shared index (its own Chroma files), reusing the ONNX export."""
    target.mkdir(parents=True)
    shutil.copytree(shared / "chroma", target / "chroma")
    shutil.copy2(shared / "active.json", target / "active.json")
    (target / "cache").mkdir()
    for entry in (shared / "cache").iterdir():
        if entry.name == "onnx":
            (target / "cache" / "onnx").symlink_to(entry)
        elif entry.is_file():
            shutil.copy2(entry, target / "cache" / entry.name)
    return target


def _chat(data: Path, script: str, preexec_fn=None, user: str = "alice") -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "chatrec", "chat", "--user", user], input=script,
                          capture_output=True, text=True, timeout=120, cwd=ROOT, env=_env(data),
                          preexec_fn=preexec_fn)


def _stored(data: Path, user: str = "alice") -> tuple[list, list]:
    from chatrec.adapters.sqlite_state import SqliteState

    with sqlite3.connect(data / "state.sqlite3") as raw:
        assert raw.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    store = SqliteState(data / "state.sqlite3")
    try:
        return store.events(user), store.history(user, limit=10_000)
    finally:
        store.close()


def _drop_root_file_powers():
    """preexec_fn: a root child loses CAP_DAC_OVERRIDE/CAP_DAC_READ_SEARCH, so file modes bind it."""
    libc = ctypes.CDLL(None, use_errno=True)
    for cap in (1, 2):  # CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH
        if libc.prctl(24, cap, 0, 0, 0) != 0:  # PR_CAPBSET_DROP; needs CAP_SETPCAP
            raise OSError(ctypes.get_errno(), "prctl(PR_CAPBSET_DROP)")


def _file_modes_bind(where: Path) -> bool:
    """Does a child started with ``_drop_root_file_powers`` fail to write into a 0o500 folder?"""
    probe = where / "probe"
    probe.mkdir(mode=0o500)
    try:
        proc = subprocess.run([sys.executable, "-c", f"open({str(probe / 'x')!r}, 'w')"],
                              preexec_fn=_drop_root_file_powers, capture_output=True, timeout=60)
        return proc.returncode != 0 and not (probe / "x").exists()
    except (OSError, subprocess.SubprocessError):
        return False
    finally:
        probe.chmod(0o700)


def _digests(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file() and not p.is_symlink()}


@pytest.mark.timeout(240, func_only=True)
def test_read_only_data_dir_is_one_clear_error_and_changes_nothing(default_data_dir, tmp_path):
    preexec = None
    if os.geteuid() == 0:  # root ignores file modes; a root child without CAP_DAC_OVERRIDE does not
        if not _file_modes_bind(tmp_path):
            pytest.skip("running as root without CAP_SETPCAP: file modes cannot bind; "
                        "test_data_dir_under_a_file_is_one_clear_error covers the unwritable case")
        preexec = _drop_root_file_powers
    data = copy_data_dir(default_data_dir, tmp_path / "data")
    assert _chat(data, SCRIPT).returncode == 0
    events, history = _stored(data)
    assert len(events) == 1 and history
    before = _digests(data)
    for p in [data, *data.rglob("*")]:
        if not p.is_symlink():
            p.chmod(0o500)
    try:
        for args in (["recommend", "space adventure", "--json"], ["chat", "--user", "alice"]):
            proc = subprocess.run([sys.executable, "-m", "chatrec", *args], input=SCRIPT, capture_output=True,
                                  text=True, timeout=120, cwd=ROOT, env=_env(data), preexec_fn=preexec)
            assert proc.returncode == 2, (args, proc.stderr)
            line = _one_error_line(proc.stderr)
            assert str(data) in line and "read-only" in line, line
    finally:
        for p in [data, *data.rglob("*")]:
            if not p.is_symlink():
                p.chmod(0o700)
    assert _digests(data) == before  # nothing was written, so nothing can be damaged
    # writable again: everything is where it was
    assert _stored(data) == (events, history)
    proc = _chat(data, "/profile\n/quit\n")
    assert proc.returncode == 0 and "Welcome back, alice" in proc.stdout, proc.stderr


@pytest.mark.timeout(120, func_only=True)
def test_data_dir_under_a_file_is_one_clear_error(tmp_path):
    """What root also cannot write: a data directory whose parent is a regular file."""
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("a file\n")
    for args in (["recommend", "space adventure"], ["chat", "--user", "alice"]):
        proc = run_cli(*args, env={"CHATREC_DATA_DIR": str(blocker / "data"), "CHATREC_LLM": "none"},
                       input="hi\n/quit\n", timeout=120)
        assert proc.returncode == 2, proc.stderr
        assert str(blocker / "data") in _one_error_line(proc.stderr)
    assert blocker.read_text() == "a file\n"


def _file_size_limit(n: int):
    """preexec_fn: no file may grow past ``n`` bytes (EFBIG, SIGXFSZ ignored): a disk that is full."""
    def apply():
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (n, n))
    return apply


@pytest.mark.timeout(300, func_only=True)
def test_full_disk_is_one_clear_error_and_damages_nothing(default_data_dir, small_catalog, tmp_path):
    data = copy_data_dir(default_data_dir, tmp_path / "data")
    assert _chat(data, SCRIPT).returncode == 0
    events, history = _stored(data)
    # The state DB's shared-memory file (32 KiB) still fits, its WAL soon does not: chatting until a
    # change cannot be stored. Ten writes need well over 40 kB of WAL.
    full = _file_size_limit(40_000)
    chat = "".join(f"{t}\n/like 1\n" for t in ("comedy", "horror", "a western", "romance", "thriller")) + "/quit\n"
    proc = _chat(data, chat, preexec_fn=full)
    assert proc.returncode == 2, proc.stderr
    line = _one_error_line(proc.stderr)
    assert "state database" in line and "is the disk full" in line and "Traceback" not in proc.stdout
    after_events, after_history = _stored(data)  # opens, passes integrity_check
    assert after_events[:len(events)] == events and after_history[:len(history)] == history
    assert len(after_events) < len(events) + 5  # the chat stopped at the write that failed

    # indexing into a full disk: one line; the existing index is untouched
    proc = subprocess.run([sys.executable, "-m", "chatrec", "index", str(small_catalog)], capture_output=True,
                          text=True, timeout=120, cwd=ROOT, env=_env(data), preexec_fn=full)
    assert proc.returncode == 2, proc.stderr
    assert "could not write the index" in _one_error_line(proc.stderr)
    proc = run_cli("recommend", "space adventure", "--k", "3", "--json", env={"CHATREC_DATA_DIR": str(data)},
                   timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert len(json.loads(proc.stdout)["items"]) == 3
    # with room again, the same catalogue indexes and the state DB takes writes
    proc = run_cli("index", str(small_catalog), "--json", env={"CHATREC_DATA_DIR": str(data)}, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["total"] == 120
    from chatrec.core.profile import Profile
    from chatrec.adapters.sqlite_state import SqliteState

    store = SqliteState(data / "state.sqlite3")
    try:
        store.record_event("alice", "1", "like", Profile())
    finally:
        store.close()
    assert len(_stored(data)[0]) == len(after_events) + 1
