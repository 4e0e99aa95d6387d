"""Durable state in SQLite: user profiles, behaviour events and chat history.

One file ``state.sqlite3`` under ``CHATREC_DATA_DIR``, in WAL mode so the UI's readers never block
a writer; every change is one transaction. ``secure_delete`` is on and ``forget`` checkpoints and
truncates the WAL, so a forgotten user's rows are overwritten on disk, not just unlinked.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from contextlib import contextmanager
from pathlib import Path

from chatrec.core.profile import Profile

SCHEMA = """
CREATE TABLE IF NOT EXISTS users (
    user_id TEXT PRIMARY KEY,
    created REAL NOT NULL,
    seen REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS profiles (
    user_id TEXT PRIMARY KEY REFERENCES users(user_id) ON DELETE CASCADE,
    profile TEXT NOT NULL,
    updated REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS events (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    user_id TEXT NOT NULL REFERENCES users(user_id) ON DELETE CASCADE,
    item_id TEXT NOT NULL,
    event TEXT NOT NULL,
    ts REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS events_user ON events(user_id);
CREATE TABLE IF NOT EXISTS messages (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    user_id TEXT NOT NULL REFERENCES users(user_id) ON DELETE CASCADE,
    role TEXT NOT NULL,
    content TEXT NOT NULL,
    ts REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS messages_user ON messages(user_id);
"""


class StateError(RuntimeError):
    pass


#: seconds an open keeps retrying while other processes hold the new database's locks
OPEN_PATIENCE = 30.0


def _is_busy(exc: BaseException) -> bool:
    return isinstance(exc, sqlite3.OperationalError) and any(w in str(exc) for w in ("locked", "busy"))


class SqliteState:
    """Thread-safe: one connection per store, guarded by a lock (the UI calls from worker threads)."""

    def __init__(self, path: Path):
        from tenacity import Retrying, retry_if_exception, stop_after_delay, wait_random_exponential

        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        # Processes that open a new database at the same moment race to switch it to WAL and create the
        # tables; SQLite answers some of those lock upgrades "database is locked" at once instead of
        # waiting out the busy timeout. Such an open is retried from scratch for a while.
        retrying = Retrying(retry=retry_if_exception(_is_busy), stop=stop_after_delay(OPEN_PATIENCE),
                            wait=wait_random_exponential(multiplier=0.02, max=0.5), reraise=True)
        try:
            for attempt in retrying:
                with attempt:
                    self._conn = self._connect()
        except sqlite3.DatabaseError as exc:
            raise StateError(f"cannot open the state database {self.path}: {exc}") from None
        self._lock = threading.RLock()

    def _connect(self) -> sqlite3.Connection:
        conn = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None, timeout=10)
        try:
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA foreign_keys=ON")
            conn.execute("PRAGMA secure_delete=ON")
            conn.execute("PRAGMA synchronous=NORMAL")
            # one write transaction: BEGIN IMMEDIATE waits for a process that is creating the tables
            conn.executescript(f"BEGIN IMMEDIATE;{SCHEMA}COMMIT;")
        except BaseException:
            conn.close()
            raise
        return conn

    @contextmanager
    def _tx(self):
        with self._lock:
            try:
                self._conn.execute("BEGIN IMMEDIATE")
                try:
                    yield self._conn
                    self._conn.execute("COMMIT")
                except BaseException:
                    if self._conn.in_transaction:  # a failed COMMIT leaves it open; SQLite may have rolled back
                        self._conn.execute("ROLLBACK")
                    raise
            except sqlite3.OperationalError as exc:
                # A full disk, a read-only file or a lock held past the timeout surfaced as a bare
                # "unexpected OperationalError: disk I/O error". Say which file, and that this change
                # was not stored: the transaction rolled back, everything committed before is intact.
                hint = ("another process held it too long" if "locked" in str(exc)
                        else "is the disk full or the data directory read-only?")
                raise StateError(f"could not save to the state database {self.path}: {exc}; this change was "
                                 f"not stored ({hint})") from None

    def _touch(self, conn, user_id: str) -> None:
        now = time.time()
        conn.execute(
            "INSERT INTO users(user_id, created, seen) VALUES (?, ?, ?) "
            "ON CONFLICT(user_id) DO UPDATE SET seen = excluded.seen",
            (user_id, now, now),
        )

    @staticmethod
    def _put_profile(conn, user_id: str, profile: Profile, now: float) -> None:
        conn.execute(
            "INSERT INTO profiles(user_id, profile, updated) VALUES (?, ?, ?) "
            "ON CONFLICT(user_id) DO UPDATE SET profile = excluded.profile, updated = excluded.updated",
            (user_id, json.dumps(profile.to_json()), now),
        )

    # -- profiles -------------------------------------------------------------------------------
    def load_profile(self, user_id: str) -> Profile:
        with self._lock:
            row = self._conn.execute("SELECT profile FROM profiles WHERE user_id = ?", (user_id,)).fetchone()
        if row is None:
            return Profile()
        try:
            return Profile.from_json(json.loads(row[0]))
        except (ValueError, TypeError, AttributeError):
            return Profile()  # a damaged row must not lock the user out; the next save repairs it

    def save_profile(self, user_id: str, profile: Profile) -> None:
        with self._tx() as conn:
            self._touch(conn, user_id)
            self._put_profile(conn, user_id, profile, time.time())

    def record_turn(self, user_id: str, profile: Profile, messages: list[tuple[str, str]]) -> None:
        """A turn's messages and the profile it produced, in one transaction."""
        with self._tx() as conn:
            self._touch(conn, user_id)
            now = time.time()
            conn.executemany(
                "INSERT INTO messages(user_id, role, content, ts) VALUES (?, ?, ?, ?)",
                [(user_id, role, content, now) for role, content in messages],
            )
            self._put_profile(conn, user_id, profile, now)

    def record_event(self, user_id: str, item_id: str, event: str, profile: Profile) -> None:
        with self._tx() as conn:
            self._touch(conn, user_id)
            now = time.time()
            conn.execute("INSERT INTO events(user_id, item_id, event, ts) VALUES (?, ?, ?, ?)",
                         (user_id, item_id, event, now))
            self._put_profile(conn, user_id, profile, now)

    def history(self, user_id: str, limit: int = 50) -> list[tuple[str, str]]:
        with self._lock:
            rows = self._conn.execute(
                "SELECT role, content FROM messages WHERE user_id = ? ORDER BY id DESC LIMIT ?", (user_id, limit)
            ).fetchall()
        return [(r, c) for r, c in reversed(rows)]

    def events(self, user_id: str) -> list[tuple[str, str]]:
        with self._lock:
            return [tuple(r) for r in self._conn.execute(
                "SELECT item_id, event FROM events WHERE user_id = ? ORDER BY id", (user_id,))]

    def users(self) -> list[str]:
        with self._lock:
            return [r[0] for r in self._conn.execute("SELECT user_id FROM users ORDER BY user_id")]

    # -- forget ----------------------------------------------------------------------------------
    def forget(self, user_id: str) -> None:
        """Delete every row of this user, then push the deletion through the WAL onto disk."""
        with self._tx() as conn:
            for table in ("messages", "events", "profiles", "users"):
                conn.execute(f"DELETE FROM {table} WHERE user_id = ?", (user_id,))  # noqa: S608 (fixed names)
        with self._lock:
            self._conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            self._conn.execute("VACUUM")  # rebuilds the file: freed pages and indexes keep nothing
            self._conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")

    def close(self) -> None:
        with self._lock:
            self._conn.close()
