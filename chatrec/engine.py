"""The chat engine: one turn is extract → update profile → retrieve → rank → explain.

The REPL and the web UI only render what this returns. Feedback on a pick (like, dislike,
watched, ...) updates the profile and re-ranks the current candidate pool at once, with no LLM
call and no store query. State lives in SQLite (:mod:`chatrec.state`) so a user id restores the
profile across restarts.
"""

from __future__ import annotations

import logging
import re
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from chatrec import profile as prof
from chatrec.catalog import tag_key
from chatrec.llm.explain import Chunk, Explainer, reason
from chatrec.profile import Profile
from chatrec.recommender import CONTEXT_ITEMS, Query, Recommendation, Recommender, context_seeds
from chatrec.settings import Settings
from chatrec.state import StateStore

log = logging.getLogger(__name__)

CLARIFY = (
    "What are you in the mood for? Tell me a genre, a film you loved, or something to avoid "
    "(for example: \"something funny, no romance\" or \"more like Alien\"). Meanwhile, some popular picks:"
)
EVENT_VERBS = {"like": "Liked", "dislike": "Disliked", "watched": "Marked as watched", "purchase": "Bought",
               "view": "Viewed", "click": "Opened", "skip": "Skipped"}


#: Longest message read. The embedder reads ~256 word pieces and the model a 2k-token window, so a
#: longer message adds nothing but time: a 1 MB paste took minutes of tokenising before this cap.
MAX_MESSAGE_CHARS = 2000
#: on a like, this many of the items most co-liked with the new likes join the pool (a re-rank stays ~ms)
LIKE_COLLAB_ROWS = 30
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")
_SURROGATE = re.compile("[\ud800-\udfff]")


def clean_message(text: str, limit: int = MAX_MESSAGE_CHARS) -> tuple[str, list[str]]:
    """A user message made safe to process, and notes for the user about what was changed.

    Control characters (terminal escapes, NUL, backspace) become spaces; lone surrogates (from
    invalid UTF-8 read with ``surrogateescape``, or a broken client) become U+FFFD, because the
    tokenizer, SQLite and llama.cpp all refuse them; text past ``limit`` characters is dropped.
    """
    notes: list[str] = []
    text = _SURROGATE.sub("\ufffd", text or "")
    text = _CONTROL.sub(" ", text).strip()
    if len(text) > limit:
        notes.append(f"Your message was long ({len(text):,} characters); I read only the first {limit:,}.")
        text = text[:limit].rstrip()
    return text, notes


class EngineError(ValueError):
    """A request the engine cannot carry out (bad item number, unknown event); says why."""


@dataclass
class Reply:
    """What one turn or one event returns: a header line, the picks, and a text stream."""

    kind: str  # "picks" | "clarify" | "rerank" | "more"
    header: str
    recommendations: list[Recommendation]
    stream: Iterator[Chunk] = field(default_factory=lambda: iter(()))
    preferences: dict | None = None
    notes: list[str] = field(default_factory=list)
    seconds: float = 0.0

    def text(self) -> str:
        """Consume the stream; a ``replace`` chunk replaces what came before."""
        out = ""
        for chunk in self.stream:
            out = chunk.text if chunk.kind == "replace" else out + chunk.text
        return out


@dataclass
class Session:
    user_id: str
    profile: Profile = field(default_factory=Profile)
    history: list[tuple[str, str]] = field(default_factory=list)
    shown: list[Recommendation] = field(default_factory=list)
    earlier: set[str] = field(default_factory=set)  # shown on earlier pages of this list (/more)
    pool: list[int] = field(default_factory=list)  # candidate rows of the current list
    arrays: object = None  # recommender.Pool of ``pool``, gathered once per retrieval
    request: str = ""
    # picks shown on earlier turns, oldest first: what the conversation has been about (they seed the
    # collaborative part, as a human recommender's own suggestions steer the next ones; ReDial, docs/RESULTS.md)
    context: list[str] = field(default_factory=list)


class ChatEngine:
    def __init__(self, settings: Settings, recommender: Recommender | None = None, backend=None,
                 state: StateStore | None = None, k: int = 5):
        from chatrec.llm.extract import build_extractor

        self.settings = settings
        self.recommender = recommender or Recommender(settings)
        self.backend = backend
        self.state = state or StateStore(Path(settings.data_dir) / "state.sqlite3")
        self.k = k
        rec = self.recommender
        self.extractor = build_extractor(
            settings, rec.catalogue, backend if settings.extractor != "rules" else None, rec.store.embedder
        )
        self.explainer = Explainer(backend, self.extractor.rules.vocabulary.titles)
        self._locks: dict[str, threading.Lock] = {}
        self.last_rerank_s: float | None = None  # the re-rank alone, for the benchmark

    # -- sessions ---------------------------------------------------------------------------------
    def session(self, user_id: str) -> Session:
        """The stored profile and history of ``user_id`` (empty for a new user)."""
        session = Session(user_id, self.state.load_profile(user_id), self.state.history(user_id, limit=20))
        if not session.profile.is_empty:  # show where the user left off, without an LLM call
            self._rank(session, fresh=True)
        return session

    def lock(self, session: Session) -> threading.Lock:
        return self._locks.setdefault(session.user_id, threading.Lock())

    # -- one message ------------------------------------------------------------------------------
    def turn(self, session: Session, text: str) -> Reply:
        t0 = time.perf_counter()
        text, notes = clean_message(text)
        prefs = self.extractor.extract(text, session.history[-6:]) if text else None
        notes += [n for n in (prefs.notes if prefs else []) if n.startswith("LLM unavailable")]
        mentioned = prefs.mentioned() if prefs else {}
        unclear = prefs is None or prof.is_unclear(prefs.liked_tags, prefs.disliked_tags, mentioned, prefs.query)
        # "no horror please", "I hated Prometheus": only something to avoid, so the request stays what it
        # was (embedding this text would ask for what the user just turned down)
        refines = prefs is not None and not prefs.liked_tags and not any(v > 0 for v in mentioned.values()) \
            and prof.only_filler(prefs.query) and bool(session.profile.last_query)
        if prefs is not None:
            session.profile = prof.apply_preferences(
                session.profile, prefs.liked_tags, prefs.disliked_tags, mentioned,
                query="" if unclear or refines else (prefs.query or text),
                item_genres=self.recommender.genres_of([*mentioned, *session.profile.liked_items]),
            )
        if unclear and session.profile.is_empty:
            session.shown = self.recommender.recommend(Query(exclude_ids=session.profile.excluded), k=self.k).items
            session.pool, session.earlier, session.request = [], set(), ""
            reply = Reply("clarify", CLARIFY, list(session.shown), notes=notes)
            self._save_turn(session, text, CLARIFY)
            reply.seconds = time.perf_counter() - t0
            return reply
        if session.request:  # the last list answered a request (not a clarifying question's cold picks)
            session.context = [*session.context, *(r.item.id for r in session.shown)][-2 * CONTEXT_ITEMS:]
        session.request = session.profile.last_query if unclear or refines else text
        # a pick the user liked stays in the list it came from, but a new request brings new picks:
        # its own like events would otherwise keep it at #1 of every later list
        session.earlier = set(session.profile.liked_items)
        self._rank(session, fresh=True)
        header = self._header(session.profile, len(session.shown))
        reply = Reply("picks", header, list(session.shown), preferences=prefs.model_dump() if prefs else None,
                      notes=notes)
        reply.stream = self._explain_and_save(session, text, header, reply)
        reply.seconds = time.perf_counter() - t0
        return reply

    def _explain_and_save(self, session: Session, text: str, header: str, reply: Reply) -> Iterator[Chunk]:
        """Stream the explanation; when it ends, store the turn (history and profile) in one go, under the
        session's lock: a renderer that lets feedback in while the model talks (the UI) may be storing one."""
        answer = ""
        try:
            for chunk in self.explainer.stream(reply.recommendations, session.request):
                answer = chunk.text if chunk.kind == "replace" else answer + chunk.text
                yield chunk
        finally:
            with self.lock(session):
                self._save_turn(session, text, f"{header}\n{answer}".strip())

    def _save_turn(self, session: Session, text: str, answer: str) -> None:
        messages = [("user", text), ("assistant", answer)] if text else [("assistant", answer)]
        session.history.extend(messages)
        if self.settings.log_messages:
            log.info("turn of %s: %r -> %r", session.user_id, text, answer[:200])
        self.state.record_turn(session.user_id, session.profile, messages)

    # -- feedback: no LLM, no store query -------------------------------------------------------
    def feedback(self, session: Session, which: int | str, event: str) -> Reply:
        t0 = time.perf_counter()
        rec = self._pick(session, which)
        if event not in prof.EVENTS:
            raise EngineError(f"unknown event {event!r}; use one of {', '.join(prof.EVENTS)}")
        item = rec.item
        # An item lends its genres to the profile, not its hundreds of user tags.
        lent = [tag_key(g) for g in item.genres] or list(item.tag_keys)[:3]
        session.profile = prof.apply_event(session.profile, item.id, event, lent)
        if event in ("like", "watched", "purchase"):
            known = set(session.pool)
            extra = [r for r in self.recommender.neighbours([item.id]) if r not in known]
            session.pool = session.pool + extra
        t1 = time.perf_counter()
        self._rank(session, fresh=False)
        self.last_rerank_s = time.perf_counter() - t1
        self.state.record_event(session.user_id, item.id, event, session.profile)
        header = f"{EVENT_VERBS[event]} {item.display_title}. Updated picks:"
        return Reply("rerank", header, list(session.shown), seconds=time.perf_counter() - t0)

    def more(self, session: Session) -> Reply:
        session.earlier |= {r.item.id for r in session.shown}
        self._rank(session, fresh=not session.pool)
        if not session.shown:
            return Reply("more", "No more picks for this request; tell me something new.", [])
        return Reply("more", "More picks:", list(session.shown))

    def why(self, session: Session, which: int | str) -> str:
        r = self._pick(session, which)
        b = r.breakdown
        w = self.recommender.weights
        lines = [
            f"{r.item.display_title} — score {b.score:.3f}",
            f"  = {w.similarity:g}·S {b.similarity:.3f}  (similarity to what you asked for)",
            f"  + {w.behaviour:g}·B {b.behaviour:.3f}  (behaviour: your events on it and everyone's ratings)",
            f"  + {w.content:g}·C {b.content:.3f}  (your liked tags it has: {', '.join(b.matched_tags) or 'none'})",
        ]
        if b.penalty:
            lines.append(f"  − penalty {b.penalty:.3f}  (disliked tags it has: {', '.join(b.disliked_tags)})")
        tags = ", ".join(r.item.all_tags[:8])
        lines.append(f"  tags: {tags}")
        lines.append(f"  why: {reason(r)}")
        return "\n".join(lines)

    # -- profile ----------------------------------------------------------------------------------
    def reset(self, session: Session) -> None:
        """Start over: empty profile (stored), current list cleared. History is kept."""
        session.profile = Profile()
        session.shown, session.pool, session.earlier, session.request = [], [], set(), ""
        session.context = []
        self.state.save_profile(session.user_id, session.profile)

    def forget(self, session: Session) -> None:
        """Delete every stored trace of this user and start from nothing."""
        self.state.forget(session.user_id)
        session.profile = Profile()
        session.history.clear()
        session.shown, session.pool, session.earlier, session.request = [], [], set(), ""
        session.context = []

    def remove_tag(self, session: Session, tag: str) -> Reply:
        session.profile = prof.remove_tag(session.profile, tag)
        self.state.save_profile(session.user_id, session.profile)
        session.earlier = set()
        self._rank(session, fresh=True)
        return Reply("rerank", f"Removed {tag!r} from your profile. Updated picks:", list(session.shown))

    def profile_view(self, session: Session) -> dict:
        p = session.profile
        titles = self.recommender.catalogue.table

        def title(i: str) -> str:
            row = titles.index_of.get(i)
            return titles.items[row].display_title if row is not None else i

        return {
            "liked_tags": {t: round(w, 2) for t, w in sorted(p.liked_tags.items(), key=lambda kv: -kv[1])},
            "disliked_tags": {t: round(w, 2) for t, w in sorted(p.disliked_tags.items(), key=lambda kv: -kv[1])},
            "liked_items": [title(i) for i in p.liked_items],
            "disliked_items": [title(i) for i in sorted(p.disliked_items)],
            "watched_items": [title(i) for i in sorted(p.seen_items - p.disliked_items)],
        }

    # -- internals --------------------------------------------------------------------------------
    def _query(self, session: Session) -> Query:
        p = session.profile
        return Query(
            text=session.request or p.last_query,
            liked_tags=p.liked_tags,
            disliked_tags=p.disliked_tags,
            liked_items=p.liked_items,
            user_events=p.events,
            exclude_ids=p.excluded | frozenset(session.earlier),
            context_items=context_seeds(session.context, p, self.settings.context_seed),
        )

    def _rank(self, session: Session, fresh: bool) -> None:
        """Rank the session's pool; ``fresh`` first retrieves a new pool (query, profile, liked items)."""
        rec = self.recommender
        query = self._query(session)
        vector = rec.user_vector(query)
        collab = rec.collaborative(query)
        if fresh:
            session.pool = rec.retrieve(query, vector, collab)
            session.arrays = None
        else:  # a like changes who the user resembles: their favourites join the pool
            known = set(session.pool)
            session.pool = session.pool + [r for r in rec.collab_rows(collab, n=LIKE_COLLAB_ROWS) if r not in known]
        if session.arrays is None:
            session.arrays = rec.pool(session.pool)
        elif len(session.arrays) != len(session.pool):
            session.arrays = rec.extend_pool(session.arrays, session.pool[len(session.arrays):])
        session.shown = rec.rank_rows(query, session.arrays, vector, self.k, collab=collab).items

    def _pick(self, session: Session, which: int | str) -> Recommendation:
        if isinstance(which, int) or (isinstance(which, str) and which.strip().isdigit()):
            n = int(which)
            if not 1 <= n <= len(session.shown):
                raise EngineError(
                    f"no pick number {n}: the list has {len(session.shown)}" if session.shown
                    else "there is no list yet: tell me what you like first"
                )
            return session.shown[n - 1]
        for r in session.shown:
            if r.item.id == which:
                return r
        raise EngineError(f"item {which!r} is not in the current list")

    @staticmethod
    def _header(p: Profile, n: int) -> str:
        parts = []
        likes = [t for t, _ in sorted(p.liked_tags.items(), key=lambda kv: -kv[1])[:4]]
        if likes:
            parts.append("into " + ", ".join(likes))
        dislikes = [t for t, _ in sorted(p.disliked_tags.items(), key=lambda kv: -kv[1])[:3]]
        if dislikes:
            parts.append("avoiding " + ", ".join(dislikes))
        return f"{n} picks" + (f" ({'; '.join(parts)})" if parts else "") + ":"
