"""A bounded load test of `chatrec serve` on loopback: C concurrent clients × R requests each, mixed endpoints.

    python scripts/api_load.py                          # 50 × 20, --llm none
    python scripts/api_load.py --llm local --llm-turns 10   # the same, 10 of the turns explained by the model

It starts its own server (`chatrec serve --host 127.0.0.1 --port 0`, with a random API key) over a private
data dir that shares the index of CHATREC_DATA_DIR (symlinks) and keeps its own state database, so nothing
of yours is touched. Each client is one user with its own genre, an avoided tag of its own (its *marker*) and
a note token in every message; its requests cycle turn → profile → feedback → recommend. Every answer is
checked: a turn's "understood", a profile's tags and liked items, a recommendation's "understood" and size,
and at the end the user's history must hold this client's marker, likes and messages and never another's.

Printed: p50/p95/max per endpoint, errors, leaks, throughput, and what saturates first, with evidence:
the server's CPU (of all cores) and the machine's, the lanes' occupancy sampled from /v1/health (work
threads running/waiting, LLM running/waiting), and the state database's share of the wall time, estimated
from the number of writes × a write's cost measured on a copy of the database after the run.

Bounded: every request has a timeout, the whole run a deadline (--deadline), and the server is stopped at
the end in every case.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import re
import secrets
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
GENRES = ["comedy", "romance", "animation", "documentary", "war", "musical", "mystery", "drama", "action",
          "children", "film-noir", "western", "crime", "fantasy", "thriller", "sci-fi", "adventure", "horror"]
#: avoided-tag markers, calibrated at the start: only words the server reads as exactly that one disliked tag
CANDIDATES = """vampire shark dinosaur pirate ninja robots ghosts cowboy dragon gangster monster zombies nazis
werewolf witch alien submarine boxing samurai heist zombie aliens robot ghost pirates vampires sharks dinosaurs
dragons witches werewolves samurai ninjas gangsters monsters kidnapping prison hostage assassin mafia spy spies
terrorism hacker hackers cannibalism serial-killer poker chess baseball basketball football soccer hockey golf
surfing skiing wrestling martial-arts kung-fu karate swordplay circus magic wizard wizards fairy-tale mermaid
unicorn knight knights king queen princess prince castle jungle desert island arctic antarctica volcano
earthquake tornado tsunami hurricane flood plague virus pandemic cancer drugs alcohol gambling casino
las-vegas paris london tokyo new-york venice rome berlin moscow africa india china japan mexico""".split()


# -- the server -----------------------------------------------------------------------------------------
def private_data_dir(shared: Path, target: Path) -> Path:
    target.mkdir(parents=True, exist_ok=True)
    for entry in shared.iterdir():
        if not entry.name.startswith("state.sqlite3") and entry.name != "history":
            (target / entry.name).symlink_to(entry.resolve())
    return target


def start_server(data: Path, llm: str, key: str, log_path: Path, env_extra: dict, timeout: float = 300):
    env = {**os.environ, "CHATREC_DATA_DIR": str(data), "CHATREC_API_KEY": key, **env_extra}
    log = log_path.open("w")
    proc = subprocess.Popen([sys.executable, "-m", "chatrec", "serve", "--host", "127.0.0.1", "--port", "0",
                             "--llm", llm], cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=log, text=True)
    deadline = time.monotonic() + timeout
    found: dict = {}

    def read():
        for line in proc.stdout:
            m = re.search(r"chatrec API on (http://\S+)", line)
            if m:
                found["url"] = m.group(1)

    threading.Thread(target=read, daemon=True).start()
    while "url" not in found:
        if proc.poll() is not None or time.monotonic() > deadline:
            stop(proc)
            raise SystemExit(f"the server did not start:\n{log_path.read_text()[-2000:]}")
        time.sleep(0.2)
    return proc, found["url"]


def stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=20)


# -- a client -------------------------------------------------------------------------------------------
class Conn:
    """One keep-alive connection with the key; reconnects after an error."""

    def __init__(self, url: str, key: str, timeout: float):
        self.host = url.split("//", 1)[1]
        self.key, self.timeout = key, timeout
        self.conn = None

    def call(self, method: str, path: str, body=None) -> tuple[int, bytes]:
        headers = {"Authorization": f"Bearer {self.key}"}
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            headers["Content-Type"] = "application/json"
        for attempt in (1, 2):
            reused = self.conn is not None
            if self.conn is None:
                self.conn = http.client.HTTPConnection(self.host, timeout=self.timeout)
            try:
                self.conn.request(method, path, body=data, headers=headers)
                resp = self.conn.getresponse()
                return resp.status, resp.read()
            except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError):
                self.conn.close()
                self.conn = None
                # the server closed an idle keep-alive connection (after 30 s) as this request went out on
                # it: the request was not read, so it is sent again once on a new connection
                if not reused or attempt == 2:
                    raise
            except Exception:
                self.conn.close()
                self.conn = None
                raise
        raise AssertionError("unreachable")


class Client:
    def __init__(self, n: int, url: str, key: str, run: str, marker: str, others: list[str], llm_turn: bool,
                 timeout: float):
        self.n, self.run, self.marker, self.others = n, run, marker, others
        self.user = f"load-{run}-{n:02d}"
        self.genre = GENRES[n % len(GENRES)]
        self.k = 3 + n % 8  # recommend sizes differ between clients: a shared k would show
        self.llm_turn = llm_turn  # this client's first turn is explained by the model
        self.conn = Conn(url, key, timeout)
        self.sent: list[str] = []
        self.liked: list[str] = []
        self.timings: list[tuple[str, float, bool]] = []  # (endpoint, seconds, ok)
        self.model_s: list[float] = []  # explained turns: the explanation's own time (server side)
        self.leaks: list[str] = []  # another client's data seen by this one
        self.missing: list[str] = []  # this client's own data not where it should be
        self.errors: list[str] = []
        self.failed_turns = 0
        self._other = re.compile(r"\b(" + "|".join(re.escape(o) for o in others) + r")\b") if others else None

    def timed(self, name: str, method: str, path: str, body=None):
        t0 = time.perf_counter()
        try:
            status, raw = self.conn.call(method, path, body)
        except Exception as exc:  # noqa: BLE001 (counted)
            self.timings.append((name, time.perf_counter() - t0, False))
            self.errors.append(f"{name}: {type(exc).__name__}: {exc}")
            return None
        ok = status == 200
        self.timings.append((name, time.perf_counter() - t0, ok))
        if not ok:
            self.errors.append(f"{name}: HTTP {status}: {raw[:200]!r}")
            return None
        return json.loads(raw)

    def leak(self, where: str, text: str) -> None:
        m = self._other.search(text) if self._other else None
        if m:
            self.leaks.append(f"{where}: another client's marker {m.group(1)!r} in {text[:200]!r}")

    def run_requests(self, count: int) -> None:
        turns = 0
        for j in range(count):
            op = ("turn", "profile", "feedback", "recommend")[j % 4]
            if op == "turn":
                text = f"I'd like {self.genre} films but no {self.marker}, note {self.run}c{self.n:02d}t{turns:02d}"
                explain = self.llm_turn and turns == 0
                name = "turn (LLM explains)" if explain else "turn"
                out = self.timed(name, "POST", f"/v1/users/{self.user}/turns", {"text": text, "explain": explain})
                turns += 1
                self.sent.append(text)
                self.failed_turns += out is None  # may or may not have been stored
                if out is not None and explain and out.get("explanation_seconds") is not None:
                    self.model_s.append(out["explanation_seconds"])
                if out is not None:
                    if self.marker not in out["understood"]:
                        self.missing.append(f"turn: own marker missing from {out['understood']!r}")
                    self.leak("turn", out["understood"])
            elif op == "profile":
                out = self.timed("profile", "GET", f"/v1/users/{self.user}/profile")
                if out is not None:
                    self.check_profile(out, "profile")
            elif op == "feedback":
                pick = (j // 4) % 5 + 1
                out = self.timed("feedback", "POST", f"/v1/users/{self.user}/feedback", {"pick": pick, "event": "like"})
                if out is not None:
                    self.liked.append(out["header"].removeprefix("Liked ").removesuffix(". Updated picks:"))
                    self.leak("feedback", out["understood"])
            else:
                out = self.timed("recommend", "POST", "/v1/recommend",
                                 {"text": f"a {self.genre} film, no {self.marker}", "k": self.k})
                if out is not None:
                    if len(out["items"]) != self.k:
                        self.leaks.append(f"recommend: asked for {self.k} picks, got {len(out['items'])}")
                    self.leak("recommend", out["understood"])

    def check_profile(self, out: dict, where: str) -> None:
        view = out["profile"]
        if self.marker not in view["disliked_tags"]:
            self.missing.append(f"{where}: own marker missing from {view['disliked_tags']}")
        self.leak(where, " ".join(view["disliked_tags"]) + " " + out["understood"])
        want = list(dict.fromkeys(self.liked))
        if view["liked_items"] != want:
            extra = [t for t in view["liked_items"] if t not in want]
            (self.leaks if extra else self.missing).append(
                f"{where}: liked items {view['liked_items']} but this client liked {want}")

    def verify(self) -> None:
        """After the run: the stored history and profile are this client's alone."""
        out = self.timed("history (check)", "GET", f"/v1/users/{self.user}/history?limit=200")
        if out is not None:
            said = [m["content"] for m in out["messages"] if m["role"] == "user"]
            if [m for m in said if m not in self.sent]:
                strangers = [m for m in said if m not in self.sent]
                self.leaks.append(f"history: messages this client never sent: {strangers}")
            elif said != self.sent and not (self.failed_turns and len(self.sent) - len(said) <= self.failed_turns):
                self.missing.append(f"history: {len(said)} messages, expected this client's {len(self.sent)}")
            for m in out["messages"]:
                for other in re.findall(rf"note {self.run}c(\d\d)t", m["content"]):
                    if int(other) != self.n:
                        self.leaks.append(f"history: client {other}'s message in {self.user}'s history")
        out = self.timed("profile (check)", "GET", f"/v1/users/{self.user}/profile")
        if out is not None:
            self.check_profile(out, "final profile")


# -- evidence -------------------------------------------------------------------------------------------
def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime + stime


def machine_ticks() -> tuple[int, int]:
    values = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    idle = values[3] + values[4]
    return sum(values) - idle, sum(values)


class Monitor(threading.Thread):
    """Samples the lanes (GET /v1/health) every 0.25 s while the run lasts."""

    def __init__(self, url: str, key: str):
        super().__init__(daemon=True)
        self.conn = Conn(url, key, timeout=10)
        self.samples: list[dict] = []
        self.stopped = threading.Event()

    def run(self) -> None:
        while not self.stopped.is_set():
            try:
                status, raw = self.conn.call("GET", "/v1/health")
                if status == 200:
                    self.samples.append(json.loads(raw)["lanes"])
            except Exception:  # noqa: BLE001 (a missed sample)
                pass
            self.stopped.wait(0.25)


def sqlite_write_cost(state: Path, writes: int = 300) -> dict:
    """Seconds per stored turn and per stored event, measured on a copy of the run's state database."""
    from chatrec.adapters.sqlite_state import SqliteState
    from chatrec.core.profile import Profile

    with tempfile.TemporaryDirectory() as tmp:
        for suffix in ("", "-wal", "-shm"):
            if Path(f"{state}{suffix}").exists():
                shutil.copy(f"{state}{suffix}", f"{tmp}/state.sqlite3{suffix}")
        store = SqliteState(Path(tmp) / "state.sqlite3")
        profile = Profile()
        t0 = time.perf_counter()
        for i in range(writes):
            store.record_turn(f"probe-{i % 10}", profile, [("user", "x" * 80), ("assistant", "y" * 600)])
        turn = (time.perf_counter() - t0) / writes
        t0 = time.perf_counter()
        for i in range(writes):
            store.record_event(f"probe-{i % 10}", "1", "like", profile)
        event = (time.perf_counter() - t0) / writes
        store.close()
    return {"turn_write_ms": round(turn * 1000, 3), "event_write_ms": round(event * 1000, 3)}


def calibrate(conn: Conn, needed: int) -> list[str]:
    """Words the server reads as exactly one disliked tag, that tag being the word itself."""
    markers = []
    for word in dict.fromkeys(CANDIDATES):
        status, raw = conn.call("POST", "/v1/recommend", {"text": f"no {word}", "k": 1})
        if status != 200:
            continue
        prefs = json.loads(raw).get("preferences") or {}
        if prefs.get("disliked_tags") == [word] and not prefs.get("liked_tags"):
            markers.append(word)
        if len(markers) == needed:
            break
    return markers


def percentile_rows(timings: list[tuple[str, float, bool]]) -> list[dict]:
    rows = []
    for name in dict.fromkeys(t[0] for t in timings):
        ms = np.array([s for n, s, _ in timings if n == name]) * 1000
        errors = sum(1 for n, _, ok in timings if n == name and not ok)
        rows.append({"endpoint": name, "n": len(ms), "errors": errors, "p50_ms": round(float(np.percentile(ms, 50)), 1),
                     "p95_ms": round(float(np.percentile(ms, 95)), 1), "max_ms": round(float(ms.max()), 1)})
    return rows


def lane_summary(samples: list[dict], workers: int) -> dict:
    if not samples:
        return {}
    arr = {k: np.array([s[k] for s in samples]) for k in samples[0]}
    out = {f"{k}_mean": round(float(v.mean()), 2) for k, v in arr.items()}
    out |= {f"{k}_max": int(v.max()) for k, v in arr.items()}
    out["turn_lane_full_share"] = round(float((arr["turn_running"] >= workers).mean()), 3)
    out["samples"] = len(samples)
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--clients", type=int, default=50)
    ap.add_argument("--requests", type=int, default=20, help="requests per client (turn, profile, feedback, "
                    "recommend, in turn)")
    ap.add_argument("--llm", default="none", choices=("none", "local", "openai"))
    ap.add_argument("--llm-turns", type=int, default=10, help="with --llm: how many clients' first turn is "
                    "explained by the model (every other turn asks for picks only)")
    ap.add_argument("--workers", type=int, default=None, help="CHATREC_API_WORKERS for the server")
    ap.add_argument("--deadline", type=float, default=1200, help="seconds after which the run is abandoned")
    ap.add_argument("--timeout", type=float, default=600, help="seconds per request")
    ap.add_argument("--json", type=Path, help="also write the figures here")
    args = ap.parse_args()

    from chatrec.settings import Settings

    settings = Settings()
    workers = args.workers or settings.api_workers
    key = secrets.token_urlsafe(32)
    run = secrets.token_hex(3)
    tmp = Path(tempfile.mkdtemp(prefix="chatrec-load-"))
    data = private_data_dir(settings.data_dir, tmp / "data")
    env = {"CHATREC_API_WORKERS": str(workers), "CHATREC_API_SESSIONS": str(max(1024, args.clients * 2))}
    if args.llm != "none":
        env["CHATREC_API_LLM_QUEUE"] = str(max(16, args.llm_turns))
    print(f"starting chatrec serve --llm {args.llm} over {settings.data_dir} (state in {data}) ...", flush=True)
    proc, url = start_server(data, args.llm, key, tmp / "serve.log", env)
    try:
        setup = Conn(url, key, timeout=120)
        markers = calibrate(setup, args.clients)
        if len(markers) < args.clients:
            raise SystemExit(f"only {len(markers)} distinct markers for {args.clients} clients")
        llm_clients = set(range(args.llm_turns)) if args.llm != "none" else set()
        clients = [Client(n, url, key, run, markers[n], [m for m in markers if m != markers[n]], n in llm_clients,
                          args.timeout) for n in range(args.clients)]
        monitor = Monitor(url, key)
        barrier = threading.Barrier(args.clients + 1)

        def drive(c: Client) -> None:
            barrier.wait()
            try:
                c.run_requests(args.requests)
            except Exception as exc:  # noqa: BLE001
                c.errors.append(f"client crashed: {type(exc).__name__}: {exc}")

        threads = [threading.Thread(target=drive, args=(c,), daemon=True) for c in clients]
        for t in threads:
            t.start()
        cpu0, (busy0, total0), wall0, own0 = cpu_seconds(proc.pid), machine_ticks(), time.perf_counter(), os.times()
        monitor.start()
        barrier.wait()
        for t in threads:
            t.join(timeout=max(1.0, args.deadline - (time.perf_counter() - wall0)))
        wall = time.perf_counter() - wall0
        cpu1, (busy1, total1), own1 = cpu_seconds(proc.pid), machine_ticks(), os.times()
        monitor.stopped.set()
        hung = sum(t.is_alive() for t in threads)
        for c in clients:
            if not any(t.is_alive() for t in threads):
                c.verify()
        timings = [t for c in clients for t in c.timings]
        main_timings = [t for t in timings if "(check)" not in t[0]]
        cores = os.cpu_count() or 1
        writes = {"turns": sum(1 for n, _, ok in main_timings if n.startswith("turn") and ok),
                  "events": sum(1 for n, _, ok in main_timings if n == "feedback" and ok)}
        cost = sqlite_write_cost(data / "state.sqlite3")
        sqlite_s = writes["turns"] * cost["turn_write_ms"] / 1000 + writes["events"] * cost["event_write_ms"] / 1000
        result = {
            "command": "python scripts/api_load.py " + " ".join(sys.argv[1:]),
            "llm": args.llm, "clients": args.clients, "requests_per_client": args.requests,
            "llm_turns": len(llm_clients), "workers": workers, "cores": cores,
            "wall_s": round(wall, 1), "requests": len(main_timings),
            "throughput_rps": round(len(main_timings) / wall, 1),
            "errors": sum(len(c.errors) for c in clients), "leaks": sum(len(c.leaks) for c in clients),
            "own_data_missing": sum(len(c.missing) for c in clients),
            "hung_clients": hung,
            "endpoints": percentile_rows(timings),
            "server_cpu_share": round((cpu1 - cpu0) / wall / cores, 3),  # of all cores
            "machine_cpu_share": round((busy1 - busy0) / max(1, total1 - total0), 3),
            "load_client_cpu_share": round(((own1.user + own1.system) - (own0.user + own0.system)) / wall / cores, 3),
            "lanes": lane_summary(monitor.samples, workers),
            "explanation_s": [round(x, 1) for c in clients for x in c.model_s],
            "sqlite": {**cost, **writes, "estimated_busy_share": round(sqlite_s / wall, 4)},
            "first_errors": [e for c in clients for e in c.errors][:5],
            "first_leaks": [e for c in clients for e in c.leaks][:5],
            "first_missing": [e for c in clients for e in c.missing][:5],
        }
    finally:
        stop(proc)
    print_report(result)
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n")
    shutil.rmtree(tmp, ignore_errors=True)
    clean = not (result["errors"] or result["leaks"] or result["own_data_missing"] or result["hung_clients"])
    return 0 if clean else 1


def print_report(r: dict) -> None:
    print(f"\n{r['command']}")
    print(f"{r['clients']} clients × {r['requests_per_client']} requests, --llm {r['llm']}"
          + (f" ({r['llm_turns']} turns explained by the model)" if r["llm"] != "none" else "")
          + f", {r['workers']} work threads, {r['cores']} cores")
    print(f"{r['requests']} requests in {r['wall_s']} s = {r['throughput_rps']} req/s; errors {r['errors']}, "
          f"cross-user leaks {r['leaks']}, own data missing {r['own_data_missing']}, hung clients {r['hung_clients']}")
    print(f"{'endpoint':22} {'n':>5} {'errors':>6} {'p50 ms':>9} {'p95 ms':>9} {'max ms':>9}")
    for row in r["endpoints"]:
        print(f"{row['endpoint']:22} {row['n']:5} {row['errors']:6} {row['p50_ms']:9.1f} {row['p95_ms']:9.1f} "
              f"{row['max_ms']:9.1f}")
    lanes = r["lanes"]
    print(f"server CPU {r['server_cpu_share']:.0%} of {r['cores']} cores; machine {r['machine_cpu_share']:.0%} busy "
          f"(this load client {r['load_client_cpu_share']:.0%})")
    if lanes:
        print(f"turn lane: running mean {lanes['turn_running_mean']} / max {lanes['turn_running_max']} of "
              f"{r['workers']}, waiting mean {lanes['turn_waiting_mean']} / max {lanes['turn_waiting_max']}, "
              f"full {lanes['turn_lane_full_share']:.0%} of {lanes['samples']} samples")
        print(f"quick lane: running mean {lanes['quick_running_mean']} / max {lanes['quick_running_max']} of 8, "
              f"waiting mean {lanes['quick_waiting_mean']} / max {lanes['quick_waiting_max']}")
        print(f"LLM lane: running mean {lanes['llm_running_mean']}, waiting mean {lanes['llm_waiting_mean']} / "
              f"max {lanes['llm_waiting_max']}")
    if r["explanation_s"]:
        print(f"explanations by the model: {len(r['explanation_s'])}, each {min(r['explanation_s'])}–"
              f"{max(r['explanation_s'])} s of model time (the rest of an explained turn is waiting for the model)")
    s = r["sqlite"]
    print(f"state DB: {s['turns']} turns × {s['turn_write_ms']} ms + {s['events']} events × {s['event_write_ms']} ms "
          f"≈ {s['estimated_busy_share']:.1%} of the wall time")
    for line in r["first_errors"] + r["first_leaks"] + r["first_missing"]:
        print("  " + line)


if __name__ == "__main__":
    sys.exit(main())
